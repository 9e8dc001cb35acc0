#pragma once

// The archive as the history replays read (DESIGN §6, "replay reads span tiers"): the events a
// store trimmed, read back from rr_archive_events for a cursor older than the store keeps.
//
// It answers for a range only when the archive holds all of it: the stream's archive cursor has
// reached the end of the range, and no gap (events trimmed before they were archived) lies after
// the reader's cursor. Otherwise the store's replay_window_expired stands.

#include <boost/asio/thread_pool.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "replayrail/archive/pg.h"
#include "replayrail/store/history.h"

namespace replayrail::archive {

// Thread-safe. libpq blocks, so queries run on threads of its own; the awaiting coroutine
// resumes on its own executor. Connections are opened when first needed (a server may start
// while PostgreSQL is down) and dropped after a failure.
class ArchiveHistory final : public store::History {
 public:
  explicit ArchiveHistory(std::string database_url, std::size_t threads = 2);
  // Waits for the queries in progress.
  ~ArchiveHistory() override;

  store::task<result<std::optional<std::vector<EventPtr>>>> range(std::string_view stream,
                                                                  StreamId after, StreamId through,
                                                                  std::size_t limit) override;

 private:
  using Range = std::optional<std::vector<EventPtr>>;
  // range(), blocking, on one of the pool's threads.
  result<Range> read(const std::string& stream, StreamId after, StreamId through,
                     std::size_t limit);
  result<Range> query(pg::Connection& db, const std::string& stream, StreamId after,
                      StreamId through, std::size_t limit);

  std::string url_;
  std::mutex mu_;
  std::vector<pg::Connection> idle_;
  boost::asio::thread_pool pool_;
};

}  // namespace replayrail::archive
