#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/resp/connection.h"

namespace replayrail::resp {

// Redis Cluster's hash slot of a key: CRC16 of the key, or of its hash tag (what lies between the
// first "{" and the next "}", when that is not empty), modulo 16384.
std::uint16_t key_slot(std::string_view key);

// A Redis Cluster (DESIGN §8): the slot map read with CLUSTER SLOTS, one pipelined Connection
// per primary, and each command sent to the primary serving its keys' slot.
//
// Redirections are followed here, so callers see what a single Redis would answer:
//   MOVED     the slot has a new owner: the map is corrected at once, refreshed in the background,
//             and the command sent to the owner;
//   ASK       the slot is being migrated and this key has moved already: the command goes once to
//             the importing node, after ASKING;
//   TRYAGAIN  a multi-key command during a migration: sent again after a short pause.
// A command a node answered with a redirection did not run there, so sending it on is safe; in a
// pipeline only the redirected commands are sent again, in their order. Replicas are not read.
//
// Every node is reached with the seed URL's credentials and TLS settings; cluster mode has no
// SELECT (db 0 only).
// Threads: send() may be called from any thread and completes on the caller's executor.
// Lifecycle: start() returns at once and reads the map in the background; until it is known,
// send() waits briefly, then fails with store_unavailable. stop() closes every connection.
class Cluster : public std::enable_shared_from_this<Cluster> {
 public:
  static constexpr std::size_t kSlots = 16384;

  struct Options {
    RedisUrl url;  // a seed node; the others are learned from it
    Millis connect_wait{500};
  };
  // A primary: its address ("host:port"), as a URL (for connections of a caller's own, such
  // as blocking reads), and the shared pipelined connection to it.
  struct Node {
    std::string address;
    RedisUrl url;
    std::shared_ptr<Connection> connection;
  };

  static std::shared_ptr<Cluster> start(boost::asio::any_io_executor executor, Options options);

  // How commands reach a node ("host:port"), answering as Connection::send does. By default on
  // the node's shared connection; a caller may send on connections of its own (RedisStore's
  // writes that wait for replicas: each WAIT must follow its writes on their connection).
  using Route =
      std::function<boost::asio::awaitable<result<Reply>>(const std::string& address, Encoded)>;

  // Sends commands whose keys all hash to `slot`: the reply of one, or the replies of several
  // as one array reply, in order, like Connection::send. With `route`, every round (the first
  // and each redirected one) goes through it.
  boost::asio::awaitable<result<Reply>> send(std::uint16_t slot, Encoded encoded, Route route = {});

  // The primary serving `slot` now; nullopt while the map does not say.
  std::optional<Node> node(std::uint16_t slot) const;
  // Every primary that serves slots.
  std::vector<Node> primaries() const;

  // The URL of the node at `address` ("host:port"): the seed's credentials and TLS settings.
  RedisUrl url_of(const std::string& address) const;

  // Records a redirection a caller's own connection received (MOVED <slot> <host:port>) and
  // refreshes the map; false when `reply` is not a MOVED error.
  bool redirected(const Reply& reply);

  // Waits until the slot map is known and the primaries' connections are up; true when ready.
  boost::asio::awaitable<bool> wait_ready(Millis timeout);
  bool ready() const;
  // store_unavailable, saying why the map is not known (not a cluster, no node reachable…).
  Error not_ready_error() const;

  void stop();

 private:
  Cluster(boost::asio::any_io_executor executor, Options options);

  // send()'s rounds after the first answer (`first`) held a redirection or TRYAGAIN.
  boost::asio::awaitable<result<Reply>> redirect(std::uint16_t slot, Encoded encoded, Reply first,
                                                 const Route& route);
  // One round: `encoded` to the node at `address` (the slot's owner when empty), through
  // `route` or on the node's shared connection.
  boost::asio::awaitable<result<Reply>> send_to(std::string address, std::uint16_t slot,
                                                Encoded encoded, const Route& route);
  // The connection to `address` ("host:port"), started on first use.
  std::shared_ptr<Connection> connection_to(const std::string& address);
  // Asks for a refresh of the map (coalesced; at most one runs).
  void request_refresh();
  boost::asio::awaitable<void> refresh_loop();
  boost::asio::awaitable<result<void>> refresh_once();
  bool stopped() const;

  boost::asio::any_io_executor executor_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;  // the refresh loop
  Options options_;
  boost::asio::steady_timer wake_;  // the refresh loop waits here for requests
  bool refresh_requested_ = false;  // on strand_
  boost::asio::steady_timer ready_signal_;

  mutable std::mutex mu_;                // guards the members below
  std::vector<std::string> slot_owner_;  // address per slot; empty: unknown
  std::vector<std::string> owners_;      // the addresses in slot_owner_, each once, sorted
  std::map<std::string, std::shared_ptr<Connection>> connections_;  // by "host:port"
  bool known_ = false;                                              // a map was read
  bool stopped_ = false;
  std::string last_failure_;  // why the last refresh failed, for errors
};

}  // namespace replayrail::resp
