#pragma once

// The archive as the history replays read (DESIGN §6, "replay reads span tiers"): the events a
// store trimmed, read back from rr_archive_events for a cursor older than the store keeps.
//
// It answers for a range only when the archive holds all of it: the stream's archive cursor has
// reached the end of the range, and no gap (events trimmed before they were archived) lies after
// the reader's cursor. Otherwise the store's replay_window_expired stands.

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "replayrail/archive/archive.h"
#include "replayrail/archive/pg.h"
#include "replayrail/store/history.h"

namespace replayrail::archive {

// One archived stream, as rr_archive_cursors has it.
struct ArchivedStream {
  std::string stream;
  std::uint64_t events = 0;
  StreamId last_id;
  std::string head;        // hex hash of its last archived event
  std::uint64_t gaps = 0;  // ranges trimmed before they were archived
  std::string updated_at;  // of the last batch, as PostgreSQL prints it
};

// An archived event with its links in the stream's chain (hex).
struct ArchivedEvent {
  EventPtr event;
  std::string prev_hash, hash;
};

// What search() looks for: events of `stream` after `after`, oldest first, at most `limit`;
// when set, only those of that type, with that event_id and published by that token subject
// (metadata.publisher.sub, which the server writes when auth is on).
struct ArchiveQuery {
  std::string stream;
  StreamId after;
  std::size_t limit = 100;
  std::string type;
  std::string event_id;
  std::string publisher;
};

// Thread-safe. libpq blocks, so queries run on threads of its own; the awaiting coroutine
// resumes on its own executor. Connections are opened when first needed (a server may start
// while PostgreSQL is down) and dropped after a failure. Besides replays (range()), it answers
// the dashboard's archive pages (/v1/archive/…): the streams, a search, a chain's check.
class ArchiveHistory final : public store::History {
 public:
  explicit ArchiveHistory(std::string database_url, std::size_t threads = 2);
  // Waits for the queries in progress.
  ~ArchiveHistory() override;

  store::task<result<std::optional<std::vector<EventPtr>>>> range(std::string_view stream,
                                                                  StreamId after, StreamId through,
                                                                  std::size_t limit) override;

  // Every archived stream, by name (none before the first archive pass).
  store::task<result<std::vector<ArchivedStream>>> streams();
  store::task<result<std::vector<ArchivedEvent>>> search(ArchiveQuery query);
  // archive::verify() of one stream (nullopt: nothing archived of it).
  store::task<result<std::optional<ChainReport>>> verify(std::string stream);

 private:
  using Range = std::optional<std::vector<EventPtr>>;
  // Runs `fn(connection)` on one of the pool's threads with a connection of its own.
  template <class T, class Fn>
  store::task<result<T>> with_connection(Fn fn);
  result<Range> query(pg::Connection& db, const std::string& stream, StreamId after,
                      StreamId through, std::size_t limit);
  // tables_exist(), remembered once true (the tables are never dropped by the archive).
  result<bool> archived(pg::Connection& db);

  std::string url_;
  std::mutex mu_;
  std::vector<pg::Connection> idle_;
  std::atomic<bool> tables_seen_ = false;
  boost::asio::thread_pool pool_;
};

}  // namespace replayrail::archive
