#pragma once

// For tests: key pairs made on the spot, and JWTs signed with them as an identity provider signs
// its tokens (RS256, ES256, EdDSA), to check what auth::verify accepts and refuses.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "replayrail/auth/jwt.h"

namespace replayrail::auth::testing {

class KeyPair {
 public:
  static KeyPair rsa(unsigned bits = 2048) {
    return KeyPair(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits)),
                   "RS256");
  }
  static KeyPair ec(const char* curve = "P-256") {
    return KeyPair(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve), "ES256");
  }
  static KeyPair ed25519() {
    return KeyPair(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), "EdDSA");
  }

  // `BEGIN PUBLIC KEY`, as identity providers publish their keys.
  std::string public_pem() const {
    return pem([&](BIO* bio) { PEM_write_bio_PUBKEY(bio, key_.get()); });
  }

  // The public key as a JWK (RFC 7517), named `kid`.
  boost::json::object jwk(const std::string& kid) const {
    auto b64 = [](const unsigned char* data, std::size_t size) {
      return base64url_encode(std::string_view(reinterpret_cast<const char*>(data), size));
    };
    boost::json::object out{{"kid", kid}, {"use", "sig"}};
    unsigned char buf[1024];
    std::size_t size = 0;
    if (algorithm_ == "RS256") {
      out["kty"] = "RSA";
      for (auto [name, field] :
           {std::pair{OSSL_PKEY_PARAM_RSA_N, "n"}, {OSSL_PKEY_PARAM_RSA_E, "e"}}) {
        BIGNUM* bn = nullptr;
        EVP_PKEY_get_bn_param(key_.get(), name, &bn);
        int n = BN_bn2bin(bn, buf);
        BN_free(bn);
        out[field] = b64(buf, static_cast<std::size_t>(n));
      }
    } else if (algorithm_ == "ES256") {
      EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf,
                                      sizeof buf, &size);  // 0x04 ‖ x ‖ y
      const std::size_t half = (size - 1) / 2;
      out["kty"] = "EC";
      out["crv"] = half == 32 ? "P-256" : half == 48 ? "P-384" : "P-521";
      out["x"] = b64(buf + 1, half);
      out["y"] = b64(buf + 1 + half, half);
    } else {
      out["kty"] = "OKP";
      out["crv"] = "Ed25519";
      size = sizeof buf;
      EVP_PKEY_get_raw_public_key(key_.get(), buf, &size);
      out["x"] = b64(buf, size);
    }
    return out;
  }

  // A self-signed certificate of the public key (`BEGIN CERTIFICATE`).
  std::string certificate_pem() const {
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key_.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("issuer.test"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509_sign(cert.get(), key_.get(), algorithm_ == "EdDSA" ? nullptr : EVP_sha256());
    return pem([&](BIO* bio) { PEM_write_bio_X509(bio, cert.get()); });
  }

  // A token of `claims`, its header naming `alg` (by default the key's own algorithm) and, when
  // given, the key's id `kid`.
  std::string sign(const boost::json::object& claims, std::string alg = {},
                   const std::string& kid = {}) const {
    if (alg.empty()) alg = algorithm_;
    boost::json::object header{{"alg", alg}, {"typ", "JWT"}};
    if (!kid.empty()) header["kid"] = kid;
    std::string input = base64url_encode(boost::json::serialize(header)) + "." +
                        base64url_encode(boost::json::serialize(claims));
    return input + "." + base64url_encode(signature(input));
  }

  // The signature of `input` as a JWS carries it (ES256: r ‖ s).
  std::string signature(std::string_view input) const {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    const EVP_MD* md = algorithm_ == "EdDSA" ? nullptr : EVP_sha256();
    std::size_t size = 0;
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &size, data, input.size()) != 1) {
      throw std::runtime_error("signing failed");
    }
    std::string out(size, '\0');
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &size, data,
                   input.size());
    out.resize(size);
    if (algorithm_ != "ES256") return out;
    const auto* der = reinterpret_cast<const unsigned char*>(out.data());
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
        d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(out.size())), ECDSA_SIG_free);
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), reinterpret_cast<unsigned char*>(raw.data()) + 32,
                 32);
    return raw;
  }

 private:
  // What `write` puts in a memory BIO, as text.
  template <class Write>
  static std::string pem(Write write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    write(bio.get());
    char* data = nullptr;
    long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
  }
  KeyPair(EVP_PKEY* key, std::string algorithm) : key_(key, EVP_PKEY_free), algorithm_(algorithm) {
    if (!key) throw std::runtime_error("key generation failed");
  }
  std::shared_ptr<EVP_PKEY> key_;
  std::string algorithm_;
};

}  // namespace replayrail::auth::testing
