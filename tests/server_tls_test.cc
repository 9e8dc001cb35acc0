// `replayrail serve --tls-cert --tls-key`: HTTPS, WSS and SSE over TLS from the real binary, a
// plain request answered with a clear 400, the CLI clients over https://, and certificate files
// that cannot serve refused at start.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "replayrail/auth/jwks_refresher.h"
#include "replayrail/store/testing/temp_dir.h"
#include "support/child_process.h"
#include "support/http_exchange.h"
#include "support/redis_server.h"

namespace replayrail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Tls = beast::ssl_stream<beast::tcp_stream>;

// A self-signed certificate for 127.0.0.1 and localhost, and its key, in `dir`.
void make_certificate(const std::filesystem::path& dir, const std::string& name) {
  const std::string make =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      (dir / (name + "-key.pem")).string() + " -out " + (dir / (name + ".pem")).string() +
      " >/dev/null 2>&1";
  ASSERT_EQ(std::system(make.c_str()), 0) << "openssl could not make a certificate";
}

class ServerTls : public ::testing::Test {
 protected:
  void SetUp() override {
    make_certificate(dir_.path(), "server");
    port_ = testing::free_port();
    server_ = std::make_unique<testing::ChildProcess>(std::vector<std::string>{
        RR_SERVER_BINARY, "serve", "--store", "memory", "--listen", address(), "--tls-cert", cert(),
        "--tls-key", (dir_.path() / "server-key.pem").string()});
    auto line = server_->read_line(std::chrono::seconds(20));
    ASSERT_TRUE(line) << "the server did not start";
    EXPECT_NE(line->find("serving on https://"), std::string::npos) << *line;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string cert() const { return (dir_.path() / "server.pem").string(); }

  // TCP connected, then TLS, trusting the certificate the client's context trusts.
  void connect(Tls& stream) {
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(stream).connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    stream.handshake(ssl::stream_base::client);
  }
  // Trusting `trusted` only (the server's certificate by default).
  ssl::context client_context(std::string trusted = {}) {
    ssl::context context(ssl::context::tls_client);
    context.load_verify_file(trusted.empty() ? cert() : trusted);
    context.set_verify_mode(ssl::verify_peer);
    return context;
  }

  http::response<http::string_body> call(http::verb verb, const std::string& target,
                                         std::string body = {}) {
    asio::io_context io;
    auto context = client_context();
    Tls stream(io, context);
    connect(stream);
    return testing::exchange(stream, verb, target, std::move(body));
  }

  std::string publish(const std::string& type) {
    auto res = call(http::verb::post, "/events/orders", R"({"type":")" + type + R"("})");
    EXPECT_EQ(res.result_int(), 201u) << res.body();
    return boost::json::parse(res.body()).at("event").at("id").as_string().c_str();
  }

  // GET /sse/orders from the start on a connected `sse`; reads until the event `id` has come
  // and returns the text read.
  static std::string read_sse_until(Tls& sse, const std::string& id) {
    http::request<http::empty_body> req{http::verb::get, "/sse/orders?last_event_id=0-0", 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(sse, req);
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> head;
    http::read_header(sse, buffer, head);
    EXPECT_EQ(head.get().result_int(), 200u);
    std::string text = beast::buffers_to_string(buffer.data());
    while (text.find("id: " + id) == std::string::npos) {
      char chunk[4096];
      text.append(chunk, sse.read_some(asio::buffer(chunk)));
    }
    return text;
  }

  std::uint16_t port_ = 0;
  testing::TempDir dir_{"server-tls"};
  std::unique_ptr<testing::ChildProcess> server_;
};

TEST_F(ServerTls, HttpsWssAndSseCarryEventsOverTls) {
  const std::string first = publish("order.created");
  auto page = call(http::verb::get, "/events/orders");
  ASSERT_EQ(page.result_int(), 200u);
  EXPECT_EQ(boost::json::parse(page.body()).at("events").at(0).at("id").as_string(), first);

  // WSS: replay from the start, then live.
  asio::io_context io;
  auto context = client_context();
  websocket::stream<Tls> ws(io, context);
  connect(ws.next_layer());
  beast::get_lowest_layer(ws).expires_never();
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  ws.handshake("127.0.0.1", "/ws/orders?last_event_id=0-0");
  beast::flat_buffer frame;
  ws.read(frame);
  EXPECT_EQ(boost::json::parse(beast::buffers_to_string(frame.data())).at("id").as_string(), first);
  frame.clear();
  const std::string second = publish("order.paid");
  ws.read(frame);
  EXPECT_EQ(boost::json::parse(beast::buffers_to_string(frame.data())).at("id").as_string(),
            second);
  ws.close(websocket::close_code::normal);

  // SSE over TLS.
  Tls sse(io, context);
  connect(sse);
  const std::string text = read_sse_until(sse, second);
  EXPECT_LT(text.find("id: " + first), text.find("id: " + second));
}

// A server that ends an SSE stream (here, shutting down) closes TLS as TLS ends: close_notify,
// so the client reads the end of the stream, not a truncation (EventSource reconnects either
// way; other clients may report the truncation as an attack).
TEST_F(ServerTls, AnSseStreamTheServerEndsEndsWithCloseNotify) {
  const std::string id = publish("order.created");
  asio::io_context io;
  auto context = client_context();
  Tls sse(io, context);
  connect(sse);
  read_sse_until(sse, id);
  ASSERT_EQ(::kill(server_->pid(), SIGTERM), 0);
  boost::system::error_code ec;
  char chunk[4096];
  while (!ec) sse.read_some(asio::buffer(chunk), ec);
  EXPECT_EQ(ec, asio::error::eof) << ec.message();
  // The client answers with its own close_notify, as a client ending cleanly does.
  sse.shutdown(ec);
  const int status = server_->wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// SIGHUP loads the certificate files again (a renewed certificate): new connections get the new
// one, connections made before keep going, and files that cannot serve leave the current one.
TEST_F(ServerTls, SighupLoadsTheCertificateAgain) {
  asio::io_context io;
  auto old_context = client_context();
  websocket::stream<Tls> ws(io, old_context);
  connect(ws.next_layer());
  beast::get_lowest_layer(ws).expires_never();
  ws.handshake("127.0.0.1", "/ws/orders");

  const auto dir = dir_.path();
  std::filesystem::copy_file(dir / "server.pem", dir / "old.pem");
  make_certificate(dir, "next");
  const auto replace = std::filesystem::copy_options::overwrite_existing;
  std::filesystem::copy_file(dir / "next.pem", dir / "server.pem", replace);
  std::filesystem::copy_file(dir / "next-key.pem", dir / "server-key.pem", replace);
  server_->kill(SIGHUP);
  auto handshakes = [&](const std::filesystem::path& trusted) {
    auto context = client_context(trusted.string());
    Tls stream(io, context);
    try {
      connect(stream);
      return true;
    } catch (const boost::system::system_error&) {
      return false;
    }
  };
  for (int tries = 0; tries < 100 && !handshakes(dir / "next.pem"); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(handshakes(dir / "next.pem")) << "new connections present the new certificate";
  EXPECT_FALSE(handshakes(dir / "old.pem"));

  const std::string id = publish("order.created");
  beast::flat_buffer frame;
  ws.read(frame);
  EXPECT_EQ(boost::json::parse(beast::buffers_to_string(frame.data())).at("id").as_string(), id)
      << "a subscriber from before the reload goes on";

  std::ofstream(dir / "server.pem") << "not a certificate\n";
  server_->kill(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(handshakes(dir / "next.pem")) << "a file that cannot serve leaves the current one";
}

// A JWK set URL over https (--auth-jwks-url): the provider's certificate is checked as the CLI
// clients check the server's, against the system's authorities or SSL_CERT_FILE. This server
// serves no JWK set; that its page of events is what the fetch refuses shows TLS and HTTP went
// through.
TEST_F(ServerTls, AJwkSetUrlOverHttpsChecksTheProvidersCertificate) {
  const std::string url = "https://127.0.0.1:" + std::to_string(port_) + "/events/keys?after=0-0";
  ::unsetenv("SSL_CERT_FILE");
  auto untrusted = auth::fetch_jwks(url, std::chrono::seconds(10));
  ASSERT_FALSE(untrusted);
  EXPECT_NE(untrusted.error().message.find("certificate verify failed"), std::string::npos)
      << untrusted.error().message;
  ::setenv("SSL_CERT_FILE", cert().c_str(), 1);
  auto trusted = auth::fetch_jwks(url, std::chrono::seconds(10));
  ::unsetenv("SSL_CERT_FILE");
  ASSERT_FALSE(trusted);
  EXPECT_NE(trusted.error().message.find("not a JWK set"), std::string::npos)
      << trusted.error().message;
}

TEST_F(ServerTls, PlainHttpIsAnsweredWithAClearError) {
  asio::io_context io;
  beast::tcp_stream plain(io);
  plain.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  auto res = testing::exchange(plain, http::verb::get, "/healthz");
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_NE(res.body().find("HTTPS only"), std::string::npos) << res.body();
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(call(http::verb::get, "/healthz").result_int(), 200u) << "TLS on the same port";
}

TEST_F(ServerTls, TheCliClientsTrustTheServerThroughSslCertFile) {
  const std::string url = "https://127.0.0.1:" + std::to_string(port_);
  auto trusted = [&](const std::string& how) {
    return std::vector<std::string>{
        "/usr/bin/env", "SSL_CERT_FILE=" + how, RR_SERVER_BINARY, "publish", "--url", url,
        "orders",       "order.created"};
  };
  testing::ChildProcess ok(trusted(cert()));
  auto line = ok.read_line(std::chrono::seconds(10));
  ASSERT_TRUE(line);
  EXPECT_NE(line->find(R"("type":"order.created")"), std::string::npos) << *line;
  int status = ok.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Without the certificate among what it trusts, the client refuses the server: unreachable.
  make_certificate(dir_.path(), "other");
  testing::ChildProcess refused(trusted((dir_.path() / "other.pem").string()));
  status = refused.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
}

TEST_F(ServerTls, BenchLoadsTheServerOverHttpsAndWss) {
  testing::ChildProcess bench(std::vector<std::string>{
      "/usr/bin/env", "SSL_CERT_FILE=" + cert(), RR_SERVER_BINARY, "bench", "--url",
      "https://127.0.0.1:" + std::to_string(port_), "--events", "300", "--subscribers", "3"});
  std::string out;
  while (auto line = bench.read_line(std::chrono::seconds(30))) out += *line + "\n";
  const int status = bench.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("published 300"), std::string::npos) << out;
  EXPECT_NE(out.find("delivered 900 to 3 subscribers"), std::string::npos) << out;
  EXPECT_NE(out.find("lost 0, duplicates 0"), std::string::npos) << out;
}

TEST(ServerTlsStart, CertificatesThatCannotServeAreRefusedAtStart) {
  testing::TempDir dir("server-tls-start");
  make_certificate(dir.path(), "a");
  make_certificate(dir.path(), "b");
  auto start = [&](std::vector<std::string> tls) {
    std::vector<std::string> argv{
        RR_SERVER_BINARY, "serve",    "--store",
        "memory",         "--listen", "127.0.0.1:" + std::to_string(testing::free_port())};
    argv.insert(argv.end(), tls.begin(), tls.end());
    argv.insert(argv.begin(), {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1"});
    testing::ChildProcess server(argv);
    std::string out;
    while (auto line = server.read_line(std::chrono::seconds(10))) out += *line + "\n";
    const int status = server.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << out;
    return out;
  };
  const std::string a = (dir.path() / "a.pem").string(),
                    a_key = (dir.path() / "a-key.pem").string();
  const std::string b_key = (dir.path() / "b-key.pem").string();
  EXPECT_NE(start({"--tls-cert", a}).find("give both --tls-cert and --tls-key"), std::string::npos);
  EXPECT_NE(start({"--tls-cert", a + ".missing", "--tls-key", a_key})
                .find("cannot load the TLS certificate"),
            std::string::npos);
  EXPECT_NE(start({"--tls-cert", a, "--tls-key", b_key}).find("key values mismatch"),
            std::string::npos);
  // Client authorities: over TLS only, and a file that holds some.
  EXPECT_NE(start({"--tls-client-ca", a}).find("--tls-client-ca needs --tls-cert"),
            std::string::npos);
  EXPECT_NE(start({"--tls-cert", a, "--tls-key", a_key, "--tls-client-ca", a_key})
                .find("cannot load the TLS client authorities"),
            std::string::npos);
}

// `--tls-client-ca`: mutual TLS. A client with a certificate the authority signed is served;
// one with none, or with a certificate of its own making, does not get through the handshake.
TEST(ServerMutualTls, OnlyClientsWithACertificateOfTheAuthorityAreServed) {
  testing::TempDir dir("server-mtls");
  make_certificate(dir.path(), "server");
  make_certificate(dir.path(), "ca");
  make_certificate(dir.path(), "stranger");
  auto path = [&](const std::string& name) { return (dir.path() / name).string(); };
  const std::string sign =
      "openssl req -new -newkey rsa:2048 -nodes -subj /CN=publisher-1 -keyout " +
      path("client-key.pem") + " -out " + path("client.csr") + " >/dev/null 2>&1 && " +
      "openssl x509 -req -days 1 -in " + path("client.csr") + " -CA " + path("ca.pem") +
      " -CAkey " + path("ca-key.pem") + " -CAcreateserial -out " + path("client.pem") +
      " >/dev/null 2>&1";
  ASSERT_EQ(std::system(sign.c_str()), 0) << "openssl could not sign a client certificate";
  const auto port = testing::free_port();
  testing::ChildProcess server({RR_SERVER_BINARY, "serve", "--store", "memory", "--listen",
                                "127.0.0.1:" + std::to_string(port), "--tls-cert",
                                path("server.pem"), "--tls-key", path("server-key.pem"),
                                "--tls-client-ca", path("ca.pem")});
  auto line = server.read_line(std::chrono::seconds(20));
  ASSERT_TRUE(line && line->find("serving on https://") != std::string::npos)
      << line.value_or("(no output)");

  // GET /healthz showing `cert` (none when empty); the status, or 0 when TLS failed.
  auto health = [&](const std::string& cert) -> unsigned {
    asio::io_context io;
    ssl::context context(ssl::context::tls_client);
    context.load_verify_file(path("server.pem"));
    context.set_verify_mode(ssl::verify_peer);
    if (!cert.empty()) {
      context.use_certificate_chain_file(path(cert + ".pem"));
      context.use_private_key_file(path(cert + "-key.pem"), ssl::context::pem);
    }
    Tls stream(io, context);
    try {
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
      beast::get_lowest_layer(stream).connect(
          tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
      stream.handshake(ssl::stream_base::client);
      // With TLS 1.3 the server checks the client's certificate after the client's handshake
      // ends: a refusal shows on the first exchange.
      return testing::exchange(stream, http::verb::get, "/healthz").result_int();
    } catch (const boost::system::system_error&) {
      return 0;
    }
  };
  EXPECT_EQ(health("client"), 200u);
  EXPECT_EQ(health(""), 0u) << "no certificate";
  EXPECT_EQ(health("stranger"), 0u) << "a certificate no authority given signed";
  EXPECT_EQ(health("client"), 200u) << "served still";

  // The CLI clients show the certificate REPLAYRAIL_TLS_CLIENT_CERT and _KEY name.
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  auto cli = [&](std::vector<std::string> env, const std::string& command) {
    std::vector<std::string> argv{"/usr/bin/env", "SSL_CERT_FILE=" + path("server.pem")};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {RR_SERVER_BINARY, command, "--url", url, "orders"});
    if (command == "publish") argv.push_back("order.created");
    testing::ChildProcess p(argv);
    const int status = p.wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  const std::vector<std::string> client_env{"REPLAYRAIL_TLS_CLIENT_CERT=" + path("client.pem"),
                                            "REPLAYRAIL_TLS_CLIENT_KEY=" + path("client-key.pem")};
  EXPECT_EQ(cli(client_env, "publish"), 0);
  EXPECT_EQ(cli(client_env, "replay"), 0);
  EXPECT_EQ(cli({}, "publish"), 3) << "no certificate: unreachable";
  EXPECT_EQ(cli({client_env[0]}, "publish"), 2) << "a certificate without its key";
  EXPECT_EQ(cli({client_env[0], "REPLAYRAIL_TLS_CLIENT_KEY=" + path("missing.pem")}, "replay"), 2);
}

}  // namespace
}  // namespace replayrail
