#pragma once

// The PostgreSQL archive (DESIGN §6): every event of every stream, copied from the store into
// one append-only table, each row chained to the one before it in its stream by
// hash = SHA-256(prev_hash ‖ canonical event), so that any change to the archive shows.
//
// Tables (created when missing):
// - rr_archive_events: stream, ms, seq (the primary key, so a copy is idempotent), the envelope's
//   fields as stored (payload, actor and metadata as their exact JSON text), prev_hash, hash,
//   archived_at. A trigger refuses UPDATE, DELETE and TRUNCATE.
// - rr_archive_cursors: per stream, the last archived id and hash, written in the same
//   transaction as the rows.
// - rr_archive_gaps: events the store trimmed before they were archived (append-only too).
//
// Several archivers may run at once (one per server node): a stream is copied by one at a time,
// under a PostgreSQL advisory lock on its name; the others skip it for that pass.
//
// The canonical event is the envelope as the server renders it (render_envelope): the same bytes
// every reader receives.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replayrail/archive/pg.h"
#include "replayrail/store/store.h"

namespace replayrail::archive {

struct ArchiveOptions {
  std::string database_url;  // postgresql://…
  std::size_t batch = 1000;  // events per transaction
  // Cuts the archive's connection when fired (a pass blocked on a PostgreSQL that hangs).
  std::shared_ptr<pg::Interrupt> interrupt;
};

// What one pass did.
struct Pass {
  std::uint64_t events = 0;   // archived now
  std::uint64_t streams = 0;  // looked at
  std::uint64_t busy = 0;     // skipped: another archiver held them
  std::uint64_t gaps = 0;     // ranges trimmed before they were archived, noted
  // The archive's lag: how long the oldest event found waiting had been stored (by its id's
  // time) when the pass read it; zero when nothing was waiting.
  std::chrono::milliseconds lag{0};
};

// Not thread-safe: one pass at a time. Blocking (libpq): run passes on a thread of their own.
class Archiver {
 public:
  // Connects and creates the tables when missing.
  static result<std::unique_ptr<Archiver>> open(std::shared_ptr<store::Store> store,
                                                ArchiveOptions options);

  // Copies every stream's events after its archived cursor, a batch per transaction. Returns
  // early, between batches, once `stop` (when given) is set.
  store::task<result<Pass>> pass(const std::atomic<bool>* stop = nullptr);

 private:
  Archiver(std::shared_ptr<store::Store> store, ArchiveOptions options, pg::Connection db)
      : store_(std::move(store)), options_(std::move(options)), db_(std::move(db)) {}
  store::task<result<std::uint64_t>> archive_stream(const std::string& stream, Pass& pass,
                                                    const std::atomic<bool>* stop);
  // Notes that the events of `stream` after `after` and before `first` were trimmed before they
  // were archived.
  result<void> note_gap(const std::string& stream, StreamId after, StreamId first, Pass& pass);

  std::shared_ptr<store::Store> store_;
  ArchiveOptions options_;
  pg::Connection db_;
};

// One stream's chain, checked from its first archived event to its last.
struct ChainReport {
  std::string stream;
  std::uint64_t events = 0;
  std::uint64_t gaps = 0;             // noted trimmed ranges (not a break: the chain spans them)
  std::string head;                   // hex hash of the last event
  std::optional<std::string> broken;  // the first broken link: its id and what is wrong
};

// Recomputes the chain of `stream` (nullopt: of every archived stream).
result<std::vector<ChainReport>> verify(const std::string& database_url,
                                        std::optional<std::string> stream = std::nullopt);
// The same over a connection the caller has.
result<std::vector<ChainReport>> verify(pg::Connection& db,
                                        std::optional<std::string> stream = std::nullopt);

}  // namespace replayrail::archive
