#pragma once

// RESP2 encoding and decoding. hiredis is used only to decode replies (redisReader); commands are
// encoded here (see encode_command), and the I/O is ours (connection.h).

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replayrail/common/errc.h"

struct redisReader;

namespace replayrail::resp {

// One reply. `str` holds bulk and simple strings and error messages.
struct Reply {
  enum class Type { string, status, error, integer, nil, array };

  Type type = Type::nil;
  std::string str;
  std::int64_t integer = 0;
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::error; }
  bool is_nil() const { return type == Type::nil; }
  // Error replies start with their kind: "NOGROUP …", "BUSYGROUP …", "WRONGTYPE …".
  bool error_is(std::string_view kind) const {
    return is_error() && str.starts_with(kind) &&
           (str.size() == kind.size() || str[kind.size()] == ' ');
  }
};

// Appends the RESP encoding of one command to `out`.
void encode_command(std::string& out, std::span<const std::string_view> args);

// One or more commands encoded for the wire, to be sent back to back (Connection::send).
struct Encoded {
  std::string bytes;
  std::size_t commands = 0;
  std::vector<std::size_t> starts;  // where each command begins in `bytes`

  void add(std::span<const std::string_view> args) {
    starts.push_back(bytes.size());
    encode_command(bytes, args);
    ++commands;
  }
  // The commands at `indices` (ascending), each after an ASKING when `asking` (a Redis Cluster
  // redirection to a node importing the slot: ASKING holds for one command).
  Encoded subset(std::span<const std::size_t> indices, bool asking) const;
  // add("XACK", key, group, id): any mix of strings and string_views, without copying them.
  template <class... Args>
  void add_args(const Args&... args) {
    const std::array<std::string_view, sizeof...(Args)> views{std::string_view(args)...};
    add(views);
  }
};

// Incremental decoder: feed bytes as they arrive, take complete replies out.
// Not thread-safe; one per connection.
class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  void feed(std::string_view bytes);
  // Forgets everything fed so far (a new connection starts a new stream).
  void reset();
  // The next complete reply; nullopt while more bytes are needed. A protocol error is
  // errc::store_unavailable and leaves the decoder unusable (drop the connection).
  result<std::optional<Reply>> next();

 private:
  redisReader* reader_;
};

}  // namespace replayrail::resp
