#pragma once

// What every TLS client here does the same way: the CLI clients, the load generator and the
// Redis connection. Header-only; its includers link OpenSSL.

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/system/error_code.hpp>
#include <cstdlib>
#include <optional>
#include <string>

namespace replayrail::tls_client {

// A client context that checks servers against the system's authorities: OpenSSL's default
// store, which SSL_CERT_FILE or SSL_CERT_DIR replace (a private authority, a self-signed
// certificate).
inline boost::asio::ssl::context trusting_the_system() {
  boost::asio::ssl::context context(boost::asio::ssl::context::tls_client);
  context.set_default_verify_paths();
  context.set_verify_mode(boost::asio::ssl::verify_peer);
  return context;
}

// With REPLAYRAIL_TLS_CLIENT_CERT and REPLAYRAIL_TLS_CLIENT_KEY set (PEM files, both or
// neither): `context` shows that certificate to a server that asks for one (mutual TLS), as the
// CLI clients and the load generator do. What is wrong with them, or nothing.
inline std::optional<std::string> use_client_certificate(boost::asio::ssl::context& context) {
  const char* cert = std::getenv("REPLAYRAIL_TLS_CLIENT_CERT");
  const char* key = std::getenv("REPLAYRAIL_TLS_CLIENT_KEY");
  if (!cert && !key) return std::nullopt;
  if (!cert || !key) {
    return "REPLAYRAIL_TLS_CLIENT_CERT and REPLAYRAIL_TLS_CLIENT_KEY go together: set both";
  }
  boost::system::error_code ec;
  context.use_certificate_chain_file(cert, ec);
  if (ec)
    return std::string("cannot load REPLAYRAIL_TLS_CLIENT_CERT ") + cert + ": " + ec.message();
  context.use_private_key_file(key, boost::asio::ssl::context::pem, ec);
  if (ec) return std::string("cannot load REPLAYRAIL_TLS_CLIENT_KEY ") + key + ": " + ec.message();
  return std::nullopt;
}

// Before the handshake with `host`: SNI, and, when verifying, a certificate that must name
// `host`.
template <class TlsStream>
boost::system::error_code name_server(TlsStream& stream, const std::string& host,
                                      bool verify = true) {
  if (!SSL_set_tlsext_host_name(stream.native_handle(), host.c_str())) {
    return {static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()};
  }
  if (verify) stream.set_verify_callback(boost::asio::ssl::host_name_verification(host));
  return {};
}

}  // namespace replayrail::tls_client
