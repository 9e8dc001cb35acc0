#include "replayrail/archive/archive.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "replayrail/archive/rows.h"
#include "replayrail/core/event.h"
#include "replayrail/core/fingerprint.h"

namespace replayrail::archive {

namespace {

using store::task;
using Hash = Fingerprint;  // 32 bytes of SHA-256

// How long ago the event `id` was stored, by its id's time (zero for one from a clock ahead).
std::chrono::milliseconds waited(StreamId id) {
  const std::uint64_t now = unix_now_ms();
  return std::chrono::milliseconds(now > id.ms ? static_cast<std::int64_t>(now - id.ms) : 0);
}

constexpr const char* kSchema = R"sql(
BEGIN;
SET LOCAL client_min_messages = warning;  -- no notice for each table that exists already
-- Two archivers starting together must not both create the tables.
SELECT pg_advisory_xact_lock(7243020601);
CREATE TABLE IF NOT EXISTS rr_archive_events (
  stream      text        NOT NULL,
  ms          bigint      NOT NULL,
  seq         bigint      NOT NULL,
  event_id    text        NOT NULL,
  channel     text        NOT NULL,
  type        text        NOT NULL,
  payload     text        NOT NULL,
  actor       text        NOT NULL,
  metadata    text        NOT NULL,
  created_at  text        NOT NULL,
  prev_hash   bytea       NOT NULL,
  hash        bytea       NOT NULL,
  archived_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, ms, seq)
);
CREATE TABLE IF NOT EXISTS rr_archive_cursors (
  stream     text        PRIMARY KEY,
  ms         bigint      NOT NULL,
  seq        bigint      NOT NULL,
  hash       bytea       NOT NULL,
  events     bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS rr_archive_gaps (
  stream    text        NOT NULL,
  after_ms  bigint      NOT NULL,
  after_seq bigint      NOT NULL,
  first_ms  bigint      NOT NULL,
  first_seq bigint      NOT NULL,
  noted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, first_ms, first_seq)
);
CREATE OR REPLACE FUNCTION rr_archive_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['rr_archive_events', 'rr_archive_gaps'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = t || '_append_only') THEN
      EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON %I FOR EACH ROW '
                     'EXECUTE FUNCTION rr_archive_append_only()', t || '_append_only', t);
      EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT '
                     'EXECUTE FUNCTION rr_archive_append_only()', t || '_no_truncate', t);
    END IF;
  END LOOP;
END $$;
COMMIT;
)sql";

// Whether the tables above exist, with their triggers. Then nothing is created: a role that may
// only write rows (no CREATE on the schema, not the tables' owner) archives as well as the owner,
// since even CREATE … IF NOT EXISTS needs CREATE on the schema.
constexpr const char* kSchemaReady = R"sql(
SELECT to_regclass('rr_archive_cursors') IS NOT NULL AND
       (SELECT count(*) FROM pg_trigger
         WHERE tgrelid IN (to_regclass('rr_archive_events'), to_regclass('rr_archive_gaps'))
           AND tgname IN ('rr_archive_events_append_only', 'rr_archive_events_no_truncate',
                          'rr_archive_gaps_append_only', 'rr_archive_gaps_no_truncate')) = 4
)sql";

constexpr const char* kColumns =
    "stream, ms, seq, event_id, channel, type, payload, actor, metadata, created_at, prev_hash, "
    "hash";

// SHA-256(prev ‖ canonical): one link of a stream's chain.
Hash link(const Hash& prev, std::string_view canonical) {
  return sha256(
      {std::string_view(reinterpret_cast<const char*>(prev.data()), prev.size()), canonical});
}

std::optional<Hash> from_hex(std::string_view hex) {
  Hash out{};
  if (hex.size() != 2 * out.size()) return std::nullopt;
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, out[i], 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return std::nullopt;
  }
  return out;
}

// A bytea parameter in PostgreSQL's hex text form.
std::string bytea(const Hash& h) { return "\\x" + to_hex(h); }

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(pg::Connection& db) : db_(db) {}
  ~Transaction() {
    if (open_) db_.rollback();
  }
  result<void> begin() {
    RR_TRY(db_.begin());
    open_ = true;
    return {};
  }
  result<void> commit() {
    open_ = false;
    return db_.commit();
  }

 private:
  pg::Connection& db_;
  bool open_ = false;
};

}  // namespace

result<std::unique_ptr<Archiver>> Archiver::open(std::shared_ptr<store::Store> store,
                                                 ArchiveOptions options) {
  pg::Connection db;
  RR_TRY_ASSIGN(db, pg::Connection::open(options.database_url, options.interrupt));
  pg::Result ready;
  RR_TRY_ASSIGN(ready, db.exec(kSchemaReady));
  if (pg::text(ready, 0, 0) != "t") {
    if (auto created = db.run(kSchema); !created) {
      Error e = created.error();
      e.message = "cannot create the archive's tables (" + e.message +
                  "): a role that may create them must open the archive once first; this one "
                  "then needs only the grants docs/archive.md lists";
      return e;
    }
  }
  // Each batch is COPied here (fast), then inserted from here with ON CONFLICT DO NOTHING (which
  // COPY cannot do): idempotent, at COPY's speed.
  RR_TRY(
      db.run("CREATE TEMP TABLE rr_archive_batch (LIKE rr_archive_events INCLUDING DEFAULTS) "
             "ON COMMIT DELETE ROWS"));
  return std::unique_ptr<Archiver>(
      new Archiver(std::move(store), std::move(options), std::move(db)));
}

task<result<Pass>> Archiver::pass(const std::atomic<bool>* stop) {
  Pass pass;
  std::vector<std::string> streams;
  RR_CO_TRY_ASSIGN(streams, co_await store_->list_streams());
  for (const auto& stream : streams) {
    if (stop && *stop) break;
    ++pass.streams;
    pg::Result locked;
    RR_CO_TRY_ASSIGN(locked,
                     db_.exec("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", {stream}));
    if (pg::text(locked, 0, 0) != "t") {
      ++pass.busy;
      continue;
    }
    auto copied = co_await archive_stream(stream, pass, stop);
    auto unlocked = db_.exec("SELECT pg_advisory_unlock(hashtextextended($1, 0))", {stream});
    if (!copied) co_return copied.error();
    if (!unlocked) co_return unlocked.error();
    pass.events += *copied;
  }
  co_return pass;
}

task<result<std::uint64_t>> Archiver::archive_stream(const std::string& stream, Pass& pass,
                                                     const std::atomic<bool>* stop) {
  // Where the stream's chain stands: its last archived id and hash (none yet: 0-0 and zeros).
  StreamId after{};
  Hash head{};
  pg::Result cursor;
  RR_CO_TRY_ASSIGN(cursor, db_.exec("SELECT ms, seq, encode(hash, 'hex') FROM rr_archive_cursors "
                                    "WHERE stream = $1",
                                    {stream}));
  StreamId from{};  // the range starts after this id
  if (PQntuples(cursor.get()) == 1) {
    after = from = {number(cursor, 0, 0), number(cursor, 0, 1)};
    auto h = from_hex(pg::text(cursor, 0, 2));
    if (!h) co_return make_error(errc::internal, "the archive cursor of " + stream + " is corrupt");
    head = *h;
  } else {
    // Archived for the first time: what the store trimmed already is lost to the archive, and a
    // range from 0-0 would not say so (it starts at the first event kept).
    auto info = co_await store_->info(stream);
    if (!info && info.error().code == errc::stream_not_found) co_return 0;  // deleted meanwhile
    if (!info) co_return info.error();
    if (!info->trimmed_through.is_zero()) {
      RR_CO_TRY(note_gap(stream, after, info->trimmed_through.next(), pass));
      from = info->trimmed_through;
    }
  }

  std::uint64_t copied = 0;
  while (!(stop && *stop)) {
    auto page = co_await store_->range(stream, from, options_.batch, "");
    if (!page && page.error().code == errc::replay_window_expired && page.error().first_available) {
      // Trimmed before it was archived: noted, and the chain goes on from what is left.
      const StreamId first = *page.error().first_available;
      RR_CO_TRY(note_gap(stream, after, first, pass));
      from = first.prev();
      continue;
    }
    if (!page) {
      if (page.error().code == errc::stream_not_found) break;  // deleted meanwhile
      co_return page.error();
    }
    if (page->empty()) break;
    if (copied == 0) pass.lag = std::max(pass.lag, waited(page->front()->id));

    std::string rows;
    Hash prev = head;
    for (const auto& e : *page) {
      const Hash hash = link(prev, render_envelope(*e));
      const std::string ms = std::to_string(e->id.ms), seq = std::to_string(e->id.seq);
      const std::string prev_bytea = bytea(prev), hash_bytea = bytea(hash);
      for (std::string_view field :
           {std::string_view(stream), std::string_view(ms), std::string_view(seq),
            std::string_view(e->event_id), std::string_view(e->channel), std::string_view(e->type),
            std::string_view(e->payload), std::string_view(e->actor), std::string_view(e->metadata),
            std::string_view(e->created_at), std::string_view(prev_bytea),
            std::string_view(hash_bytea)}) {
        pg::append_copy_text(rows, field);
        rows += '\t';
      }
      rows.back() = '\n';
      prev = hash;
    }
    const StreamId last = page->back()->id;

    // The rows and the cursor, in one transaction.
    Transaction tx(db_);
    RR_CO_TRY(tx.begin());
    RR_CO_TRY(db_.copy("COPY rr_archive_batch (" + std::string(kColumns) + ") FROM STDIN", rows));
    RR_CO_TRY(db_.exec("INSERT INTO rr_archive_events (" + std::string(kColumns) + ") SELECT " +
                       kColumns +
                       " FROM rr_archive_batch ON CONFLICT (stream, ms, seq) DO NOTHING"));
    RR_CO_TRY(
        db_.exec("INSERT INTO rr_archive_cursors (stream, ms, seq, hash, events) VALUES ($1, $2, "
                 "$3, $4, $5) "
                 "ON CONFLICT (stream) DO UPDATE SET ms = EXCLUDED.ms, seq = EXCLUDED.seq, "
                 "hash = EXCLUDED.hash, events = rr_archive_cursors.events + EXCLUDED.events, "
                 "updated_at = now()",
                 {stream, std::to_string(last.ms), std::to_string(last.seq), bytea(prev),
                  std::to_string(page->size())}));
    RR_CO_TRY(tx.commit());

    copied += page->size();
    after = from = last;
    head = prev;
    if (page->size() < options_.batch) break;
  }
  co_return copied;
}

result<void> Archiver::note_gap(const std::string& stream, StreamId after, StreamId first,
                                Pass& pass) {
  RR_TRY(
      db_.exec("INSERT INTO rr_archive_gaps (stream, after_ms, after_seq, first_ms, first_seq) "
               "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
               {stream, std::to_string(after.ms), std::to_string(after.seq),
                std::to_string(first.ms), std::to_string(first.seq)}));
  ++pass.gaps;
  spdlog::warn(
      "archive: stream={} lost the events after id={} before they were archived; archiving on "
      "from id={}",
      stream, after.to_string(), first.to_string());
  return {};
}

result<std::vector<ChainReport>> verify(const std::string& database_url,
                                        std::optional<std::string> stream) {
  pg::Connection db;
  RR_TRY_ASSIGN(db, pg::Connection::open(database_url));
  return verify(db, std::move(stream));
}

result<std::vector<ChainReport>> verify(pg::Connection& db, std::optional<std::string> stream) {
  bool archived = false;
  RR_TRY_ASSIGN(archived, tables_exist(db));
  if (!archived) return std::vector<ChainReport>{};  // nothing archived yet
  std::vector<std::string> streams;
  if (stream) {
    streams.push_back(*stream);
  } else {
    pg::Result all;
    RR_TRY_ASSIGN(all, db.exec("SELECT DISTINCT stream FROM rr_archive_events ORDER BY stream"));
    for (int i = 0; i < PQntuples(all.get()); ++i) streams.push_back(pg::text(all, i, 0));
  }
  std::vector<ChainReport> reports;
  for (const auto& name : streams) {
    ChainReport report{.stream = name};
    Hash prev{};
    StreamId after{};
    constexpr int kPage = 5000;
    while (!report.broken) {
      pg::Result rows;
      RR_TRY_ASSIGN(rows, db.exec("SELECT " + std::string(kEventColumns) +
                                      ", encode(prev_hash, 'hex'), encode(hash, 'hex') FROM "
                                      "rr_archive_events WHERE stream = $1 "
                                      "AND (ms, seq) > ($2::bigint, $3::bigint) ORDER BY ms, seq "
                                      "LIMIT " +
                                      std::to_string(kPage),
                                  {name, std::to_string(after.ms), std::to_string(after.seq)}));
      const int n = PQntuples(rows.get());
      for (int i = 0; i < n && !report.broken; ++i) {
        const Event e = read_event(rows, i);
        const auto stored_prev = from_hex(pg::text(rows, i, 9));
        const auto stored = from_hex(pg::text(rows, i, 10));
        if (!stored_prev || *stored_prev != prev) {
          report.broken =
              e.id.to_string() + ": its prev_hash is not the hash of the event before it";
        } else if (!stored || *stored != link(prev, render_envelope(e))) {
          report.broken = e.id.to_string() + ": its content does not match its hash";
        } else {
          prev = *stored;
          after = e.id;
          ++report.events;
        }
      }
      if (n < kPage) break;
    }
    pg::Result gaps;
    RR_TRY_ASSIGN(gaps, db.exec("SELECT count(*) FROM rr_archive_gaps WHERE stream = $1", {name}));
    report.gaps = number(gaps, 0, 0);
    report.head = to_hex(prev);
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace replayrail::archive
