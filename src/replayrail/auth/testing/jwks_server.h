#pragma once

// For tests: an identity provider's JWK set URL. An HTTP server on 127.0.0.1 (a free port) that
// answers every request with the status and body set last, counts the requests, and can be made
// to hold them without an answer (a provider that hangs); and, once told, its OpenID Connect
// discovery document. Header-only; includers link Boost and Threads.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace replayrail::auth::testing {

class JwksServer {
 public:
  JwksServer() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~JwksServer() {
    io_.stop();
    thread_.join();
  }
  JwksServer(const JwksServer&) = delete;
  JwksServer& operator=(const JwksServer&) = delete;

  std::string url(const std::string& path = "/.well-known/jwks.json") const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + path;
  }
  // What the requests from now on are answered (with a Location header when given).
  void answer(unsigned status, std::string body, std::string location = {}) {
    std::lock_guard lock(mu_);
    status_ = status;
    body_ = std::move(body);
    location_ = std::move(location);
  }
  // A JWK set of these JWKs (KeyPair::jwk), with 200.
  void publish(const std::vector<boost::json::object>& jwks) {
    boost::json::array keys;
    for (const auto& jwk : jwks) keys.push_back(jwk);
    answer(200, boost::json::serialize(boost::json::object{{"keys", std::move(keys)}}));
  }
  // From now on GET /.well-known/openid-configuration answers a discovery document naming
  // `issuer` and url() as its jwks_uri (`issuer`: the default, this server's own address).
  void discovery(std::string issuer = {}) {
    if (issuer.empty()) issuer = url("");
    std::lock_guard lock(mu_);
    discovery_ = boost::json::serialize(
        boost::json::object{{"issuer", issuer},
                            {"jwks_uri", url()},
                            {"response_types_supported", boost::json::array{"code"}}});
  }
  // Requests from now on are read and never answered (until the server goes).
  void hang() {
    std::lock_guard lock(mu_);
    hanging_ = true;
  }
  std::size_t requests() const { return requests_.load(); }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      serve(std::move(s));
      accept();
    });
  }
  // On the server's thread, blocking: the tests' clients send their request at once.
  void serve(boost::asio::ip::tcp::socket socket) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(socket, buffer, req, ec);
    if (ec) return;
    ++requests_;
    std::lock_guard lock(mu_);
    if (hanging_) {
      held_.push_back(std::move(socket));
      return;
    }
    http::response<http::string_body> res{static_cast<http::status>(status_), 11};
    res.set(http::field::content_type, "application/json");
    if (!discovery_.empty() && req.target() == "/.well-known/openid-configuration") {
      res.result(http::status::ok);
      res.body() = discovery_;
      res.prepare_payload();
      http::write(socket, res, ec);
      return;
    }
    if (!location_.empty()) res.set(http::field::location, location_);
    res.body() = body_;
    res.prepare_payload();
    http::write(socket, res, ec);
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::mutex mu_;
  unsigned status_ = 404;  // guarded by mu_, as the three below
  std::string body_ = "{}";
  std::string location_;
  std::string discovery_;  // empty: none
  bool hanging_ = false;
  std::vector<boost::asio::ip::tcp::socket> held_;
  std::atomic<std::size_t> requests_ = 0;
  std::thread thread_;
};

}  // namespace replayrail::auth::testing
