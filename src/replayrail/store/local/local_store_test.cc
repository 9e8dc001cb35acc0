#include "replayrail/store/local/local_store.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "replayrail/store/local/sqlite.h"
#include "replayrail/store/testing/conformance.h"
#include "replayrail/store/testing/helpers.h"
#include "replayrail/store/testing/temp_dir.h"

namespace replayrail::testing {

// Each store gets its own directory, removed with the store.
std::shared_ptr<store::Store> make_local_store(boost::asio::any_io_executor) {
  auto dir = std::make_shared<TempDir>("local-conformance");
  auto opened = store::LocalStore::open({.dir = dir->path()});
  if (!opened) throw std::runtime_error(opened.error().message);
  std::shared_ptr<store::LocalStore> s = *opened;
  return std::shared_ptr<store::Store>(s.get(), [s, dir](store::Store*) mutable {
    s.reset();
    dir.reset();
  });
}

INSTANTIATE_TEST_SUITE_P(Local, StoreConformance,
                         ::testing::Values(StoreFactory{"local", make_local_store}),
                         StoreConformance::name_of);

}  // namespace replayrail::testing

namespace replayrail::store {
namespace {

using testing::TempDir;

NewEvent sample(std::string_view payload = R"({"n":1})") {
  EventInput in{.channel = "s", .type = "t", .payload = payload};
  return make_event(in).value();
}

std::vector<NewEvent> samples(int n) {
  std::vector<NewEvent> out;
  for (int i = 0; i < n; ++i) out.push_back(sample());
  return out;
}

// Appends one event to `stream` and adds the stream's name to `finished` when that returned.
boost::asio::awaitable<void> append_noting(Store& s, std::string stream, AppendOptions options,
                                           std::vector<std::string>& finished) {
  auto appended = co_await s.append(stream, sample(), options);
  EXPECT_TRUE(appended) << appended.error().message;
  finished.push_back(stream);
}

boost::asio::awaitable<void> append_batch_noting(Store& s, std::string stream, int events,
                                                 AppendOptions options,
                                                 std::vector<std::string>& finished) {
  auto appended = co_await s.append_batch(stream, samples(events), options);
  EXPECT_TRUE(appended) << appended.error().message;
  finished.push_back(stream);
}

// Removes the entries of `stream` below `before`, expects `removed` of them, and adds the
// stream's name to `finished` when that returned.
boost::asio::awaitable<void> trim_before_noting(Store& s, std::string stream, StreamId before,
                                                std::uint64_t removed,
                                                std::vector<std::string>& finished) {
  auto trimmed = co_await s.trim_before(stream, before);
  EXPECT_TRUE(trimmed) << trimmed.error().message;
  if (trimmed) {
    EXPECT_EQ(*trimmed, removed);
  }
  finished.push_back(stream);
}

// After `wait`: checks nothing in `finished` returned yet, and closes the store.
boost::asio::awaitable<void> close_later(Store& s, std::chrono::milliseconds wait,
                                         const std::vector<std::string>& finished) {
  boost::asio::steady_timer later(co_await boost::asio::this_coro::executor, wait);
  co_await later.async_wait(boost::asio::use_awaitable);
  EXPECT_TRUE(finished.empty());
  s.close();
}

// CPU time this process has used (every thread).
std::chrono::microseconds process_cpu() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto us = [](const timeval& t) {
    return std::chrono::microseconds(t.tv_sec * 1'000'000 + t.tv_usec);
  };
  return us(usage.ru_utime) + us(usage.ru_stime);
}

// While an append waits for its stream's trim, which a trigger stops at a known row (every
// delete from there on fails, so the trim's transactions roll back): once the trim reached that
// row, it must stand still for 300 ms, and the append wait; then the trigger goes.
boost::asio::awaitable<void> refuse_deletes_for_a_while(Store& s, std::filesystem::path db_path,
                                                        std::uint64_t stuck_length,
                                                        const std::vector<std::string>& finished) {
  boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((co_await s.info("big")).value().length > stuck_length &&
         std::chrono::steady_clock::now() < deadline) {
    pause.expires_after(std::chrono::milliseconds(5));
    co_await pause.async_wait(boost::asio::use_awaitable);
  }
  EXPECT_EQ((co_await s.info("big")).value().length, stuck_length);
  const auto cpu_before = process_cpu();
  pause.expires_after(std::chrono::milliseconds(300));
  co_await pause.async_wait(boost::asio::use_awaitable);
  // A writer retrying at once would keep a core busy (~300 ms); it tries every 100 ms.
  EXPECT_LT(process_cpu() - cpu_before, std::chrono::milliseconds(100));
  EXPECT_EQ((co_await s.info("big")).value().length, stuck_length);
  EXPECT_TRUE(finished.empty());
  auto db = sqlite::Connection::open(db_path, false).value();
  EXPECT_TRUE(db->exec("PRAGMA busy_timeout=5000; DROP TRIGGER refuse"));
}

boost::asio::awaitable<void> delete_and_refill(Store& s, std::string stream, int events) {
  EXPECT_TRUE((co_await s.delete_stream(stream)).value());
  EXPECT_TRUE(co_await s.append_batch(stream, samples(events), {}));
}

class LocalStoreTest : public ::testing::Test {
 protected:
  std::shared_ptr<LocalStore> open(LocalStore::Options o = {}) {
    o.dir = dir_.path();
    auto r = LocalStore::open(std::move(o));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }
  template <class T>
  T run(boost::asio::awaitable<T> t) {
    return testing::run(io_, std::move(t));
  }
  // Runs two coroutines concurrently until both finished.
  void all(boost::asio::awaitable<void> a, boost::asio::awaitable<void> b) {
    std::vector<boost::asio::awaitable<void>> tasks;
    tasks.push_back(std::move(a));
    tasks.push_back(std::move(b));
    testing::run_all(io_, std::move(tasks));
  }
  // A store whose stream "big" holds 20,000 events and that trims one entry per transaction:
  // lowering its limit leaves a trim that goes on for 20,000 transactions.
  std::shared_ptr<LocalStore> open_with_trim_backlog() {
    auto s = open({.fsync = local::Fsync::never, .trim_chunk = 1});
    (void)run(s->append_batch("big", samples(20'000), {})).value();  // throws if it failed
    return s;
  }
  void set_pragma(const std::string& sql) {
    auto db = sqlite::Connection::open(dir_.path() / "replayrail.db", false).value();
    ASSERT_TRUE(db->exec(sql));
  }

  TempDir dir_{"local"};
  boost::asio::io_context io_;
};

TEST_F(LocalStoreTest, EverythingSurvivesAReopen) {
  StreamId last;
  std::string epoch;
  {
    auto s = open();
    for (int i = 0; i < 5; ++i) last = run(s->append("s", sample(), {})).value().event->id;
    ASSERT_TRUE(run(s->group_create("s", "g", Cursor::beginning(), false)));
    std::vector<GroupCursor> fresh{{"s", std::nullopt}};
    ASSERT_TRUE(run(s->read_group("g", "c", fresh, {2, std::nullopt})));
    ASSERT_TRUE(run(s->create_topic("orders", 4)));
    epoch = run(s->info("s")).value().epoch;
  }
  auto s = open();
  auto info = run(s->info("s")).value();
  EXPECT_EQ(info.length, 5u);
  EXPECT_EQ(info.last_id, last);
  EXPECT_EQ(info.epoch, epoch);
  ASSERT_EQ(info.groups.size(), 1u);
  EXPECT_EQ(info.groups[0].pending, 2u);
  EXPECT_EQ(run(s->get_topic("orders")).value()->partitions, 4u);
  EXPECT_GT(run(s->append("s", sample(), {})).value().event->id, last);
  auto dup = run(s->append("s", sample(), {}));
  ASSERT_TRUE(dup);
}

TEST_F(LocalStoreTest, IdsAreNeverReusedAcrossRestartsTrimsAndClockSteps) {
  std::uint64_t now = 2'000'000'000'000;
  auto clock = [&] { return now; };
  StreamId last;
  {
    auto s = open({.now_ms = clock});
    for (int i = 0; i < 3; ++i) last = run(s->append("s", sample(), {1})).value().event->id;
  }
  now = 1'000'000'000'000;  // the clock stepped back while the store was down
  auto s = open({.now_ms = clock});
  auto next = run(s->append("s", sample(), {1})).value().event->id;
  EXPECT_GT(next, last);
  EXPECT_EQ(next, (StreamId{2'000'000'000'000, 3}));
}

// One large transaction (here 6 MB of events, then trimmed away) grows the WAL; once a checkpoint
// has copied it, the next commits cut the file back to the limit instead of leaving it that large.
TEST_F(LocalStoreTest, TheWalIsCutBackAfterALargeTransaction) {
  auto s = open({.fsync = local::Fsync::never, .wal_size_limit = 1 << 20});
  const std::string payload = R"({"x":")" + std::string(100'000, 'x') + "\"}";
  std::vector<NewEvent> big;
  for (int i = 0; i < 60; ++i) big.push_back(sample(payload));
  ASSERT_TRUE(run(s->append_batch("s", std::move(big), {})));
  const auto wal = dir_.path() / "replayrail.db-wal";
  EXPECT_GT(std::filesystem::file_size(wal), 6'000'000u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(run(s->append("s", sample(), {1})));
  EXPECT_LE(std::filesystem::file_size(wal), 1u << 20);
}

TEST_F(LocalStoreTest, SecondOpenOfTheDirectoryIsRefused) {
  auto first = open();
  auto second = LocalStore::open({.dir = dir_.path()});
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("data directory in use"), std::string::npos);
}

TEST_F(LocalStoreTest, NewerSchemaIsRefused) {
  open().reset();
  set_pragma("PRAGMA user_version=99");
  auto r = LocalStore::open({.dir = dir_.path()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::store_unavailable);
  EXPECT_NE(r.error().message.find("schema version 99"), std::string::npos) << r.error().message;
}

TEST_F(LocalStoreTest, SchemaVersion1IsMigrated) {
  {
    auto s = open();
    ASSERT_TRUE(run(s->append("s", sample(), {})));
    ASSERT_TRUE(run(s->group_create("s", "g", Cursor::beginning(), false)));
  }
  // What a version 1 database looked like: groups without options, topics without retention.
  set_pragma(
      "ALTER TABLE groups DROP COLUMN max_deliveries; ALTER TABLE topics DROP COLUMN max_length; "
      "ALTER TABLE topics DROP COLUMN max_age_ms; PRAGMA user_version=1;");
  auto s = open();
  ASSERT_TRUE(s);
  auto info = run(s->info("s"));
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_EQ(info->groups.size(), 1u);
  EXPECT_EQ(info->groups[0].max_deliveries, 0u);
  EXPECT_EQ(info->length, 1u);
  ASSERT_TRUE(run(s->group_create("s", "h", Cursor::beginning(), false, {4})));
  EXPECT_EQ(run(s->info("s"))->groups[1].max_deliveries, 4u);
  s.reset();
  auto db = sqlite::Connection::open(dir_.path() / "replayrail.db", false).value();
  auto version = db->prepare("PRAGMA user_version").value();
  ASSERT_TRUE(version.step().value());
  EXPECT_EQ(version.int64(0), local::kSchemaVersion);
}

TEST_F(LocalStoreTest, SchemaVersion2IsMigrated) {
  ASSERT_TRUE(run(open()->create_topic("orders", 4)));
  // What a version 2 database looked like: topics without retention.
  set_pragma(
      "ALTER TABLE topics DROP COLUMN max_length; ALTER TABLE topics DROP COLUMN max_age_ms; "
      "PRAGMA user_version=2;");
  auto s = open();
  auto t = run(s->get_topic("orders"));
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_TRUE(t->has_value());
  EXPECT_EQ((*t)->partitions, 4u);
  EXPECT_EQ((*t)->retention, TopicRetention{}) << "the server's";
  const TopicRetention own{.max_length = 10, .max_age = Millis(60'000)};
  ASSERT_TRUE(run(s->set_topic_retention("orders", own)));
  EXPECT_EQ(run(s->get_topic("orders"))->value().retention, own);
}

TEST_F(LocalStoreTest, ForeignDatabaseIsRefused) {
  {
    auto db = sqlite::Connection::open(dir_.path() / "replayrail.db", true).value();
    ASSERT_TRUE(db->exec("CREATE TABLE mine (x)"));
  }
  auto r = LocalStore::open({.dir = dir_.path()});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a ReplayRail database"), std::string::npos)
      << r.error().message;
}

// Each fsync policy is the SQLite synchronous level it names (schema.h), and the names parse.
TEST_F(LocalStoreTest, FsyncPoliciesSetTheirSynchronousLevel) {
  const std::pair<const char*, int> levels[] = {{"always", 2}, {"batch", 1}, {"never", 0}};
  for (auto [name, level] : levels) {
    auto fsync = local::parse_fsync(name);
    ASSERT_TRUE(fsync) << name;
    auto db = sqlite::Connection::open(dir_.path() / "fsync.db", true).value();
    ASSERT_TRUE(local::configure(*db, *fsync));
    auto synchronous = db->prepare("PRAGMA synchronous").value();
    ASSERT_TRUE(synchronous.step().value());
    EXPECT_EQ(synchronous.int64(0), level) << name;
  }
  EXPECT_FALSE(local::parse_fsync("sometimes"));
  EXPECT_FALSE(local::parse_fsync("ALWAYS"));
}

// Counts the fsyncs SQLite makes of WAL files. While it lives it wraps the default VFS (the
// file layer every connection opened meanwhile uses), passing every call through unchanged.
class WalSyncCounter {
 public:
  WalSyncCounter() {
    base_ = sqlite3_vfs_find(nullptr);
    vfs_ = *base_;
    vfs_.zName = "replayrail-wal-sync-counter";
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + base_->szOsFile;
    vfs_.xOpen = &open_file;
    EXPECT_EQ(sqlite3_vfs_register(&vfs_, 1), SQLITE_OK);
  }
  ~WalSyncCounter() { sqlite3_vfs_unregister(&vfs_); }

  int syncs() const { return syncs_.load(); }

 private:
  // Ours, followed in the same allocation by the default VFS's own file object.
  struct File {
    sqlite3_file base;
    sqlite3_file* real;
    bool wal;
  };
  static sqlite3_file* real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

  static int open_file(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out) {
    auto* file = reinterpret_cast<File*>(f);
    file->real = reinterpret_cast<sqlite3_file*>(file + 1);
    file->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = base_->xOpen(base_, name, file->real, flags, out);
    file->base.pMethods = file->real->pMethods ? &kMethods : nullptr;
    return rc;
  }
  static int sync_file(sqlite3_file* f, int flags) {
    if (reinterpret_cast<File*>(f)->wal) ++syncs_;
    return real(f)->pMethods->xSync(real(f), flags);
  }

  // Every other method calls the wrapped file's.
  template <auto Member, class... A>
  static auto forward(sqlite3_file* f, A... a)
      -> decltype((std::declval<const sqlite3_io_methods&>().*Member)(f, a...)) {
    return (real(f)->pMethods->*Member)(real(f), a...);
  }
  static constexpr sqlite3_io_methods kMethods = {
      3,
      &forward<&sqlite3_io_methods::xClose>,
      &forward<&sqlite3_io_methods::xRead, void*, int, sqlite3_int64>,
      &forward<&sqlite3_io_methods::xWrite, const void*, int, sqlite3_int64>,
      &forward<&sqlite3_io_methods::xTruncate, sqlite3_int64>,
      &sync_file,
      &forward<&sqlite3_io_methods::xFileSize, sqlite3_int64*>,
      &forward<&sqlite3_io_methods::xLock, int>,
      &forward<&sqlite3_io_methods::xUnlock, int>,
      &forward<&sqlite3_io_methods::xCheckReservedLock, int*>,
      &forward<&sqlite3_io_methods::xFileControl, int, void*>,
      &forward<&sqlite3_io_methods::xSectorSize>,
      &forward<&sqlite3_io_methods::xDeviceCharacteristics>,
      &forward<&sqlite3_io_methods::xShmMap, int, int, int, void volatile**>,
      &forward<&sqlite3_io_methods::xShmLock, int, int, int>,
      &forward<&sqlite3_io_methods::xShmBarrier>,
      &forward<&sqlite3_io_methods::xShmUnmap, int>,
      &forward<&sqlite3_io_methods::xFetch, sqlite3_int64, int, void**>,
      &forward<&sqlite3_io_methods::xUnfetch, sqlite3_int64, void*>,
  };

  static inline sqlite3_vfs* base_ = nullptr;
  static inline std::atomic<int> syncs_ = 0;
  sqlite3_vfs vfs_;
};

// fsync=always: every commit fsyncs the WAL before the append is acknowledged. (Also shows that
// WalSyncCounter sees the store's fsyncs.)
TEST_F(LocalStoreTest, FsyncAlwaysSyncsEveryCommit) {
  WalSyncCounter counter;
  auto s = open({.fsync = local::Fsync::always});
  for (int i = 0; i < 3; ++i) {
    int before = counter.syncs();
    ASSERT_TRUE(run(s->append("s", sample(), {})));
    EXPECT_GE(counter.syncs(), before + 1);
  }
}

// Waits, up to a generous bound, until `count()` passes `than`; returns when it did.
template <class Count>
std::chrono::steady_clock::time_point wait_past(Count count, int than) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count() <= than && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::chrono::steady_clock::now();
}

// fsync=batch: a commit is acknowledged without an fsync, and the writer fsyncs the WAL once,
// an interval after it; nothing more while nothing is written.
TEST_F(LocalStoreTest, FsyncBatchSyncsTheWalAnIntervalAfterACommit) {
  using namespace std::chrono_literals;
  constexpr auto kInterval = 300ms;
  WalSyncCounter counter;
  auto syncs = [&] { return counter.syncs(); };
  auto s = open({.fsync = local::Fsync::batch, .fsync_interval = kInterval});
  // The first commit into a new WAL also fsyncs its header (SQLite): let it and its timed fsync
  // pass.
  ASSERT_TRUE(run(s->append("s", sample(), {})));
  wait_past(syncs, counter.syncs());

  int before = counter.syncs();
  auto appending = std::chrono::steady_clock::now();
  ASSERT_TRUE(run(s->append("s", sample(), {})));
  auto synced = wait_past(syncs, before);
  EXPECT_EQ(counter.syncs(), before + 1);
  EXPECT_GE(synced - appending, kInterval) << "fsynced before the interval was over";
  std::this_thread::sleep_for(2 * kInterval);
  EXPECT_EQ(counter.syncs(), before + 1) << "fsynced again with nothing written";
}

// Closing the store fsyncs what fsync=batch has not yet, long before the interval is over.
TEST_F(LocalStoreTest, FsyncBatchSyncsWhenClosed) {
  WalSyncCounter counter;
  auto s = open({.fsync = local::Fsync::batch, .fsync_interval = std::chrono::minutes(10)});
  ASSERT_TRUE(run(s->append("s", sample(), {})));
  int before = counter.syncs();
  s->close();
  wait_past([&] { return counter.syncs(); }, before);
  EXPECT_EQ(counter.syncs(), before + 1);
}

// fsync=never leaves the WAL to the OS: no fsync at commit, none later.
TEST_F(LocalStoreTest, FsyncNeverNeverSyncsTheWal) {
  WalSyncCounter counter;
  auto s = open({.fsync = local::Fsync::never, .fsync_interval = std::chrono::milliseconds(50)});
  int before = counter.syncs();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(run(s->append("s", sample(), {})));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(counter.syncs(), before);
}

TEST_F(LocalStoreTest, FsyncBatchWithoutAPositiveIntervalIsRefused) {
  auto r =
      LocalStore::open({.dir = dir_.path(), .fsync = local::Fsync::batch, .fsync_interval = {}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::invalid_argument);
  EXPECT_NE(r.error().message.find("fsync interval"), std::string::npos) << r.error().message;
}

TEST_F(LocalStoreTest, CorruptFileFailsWithAClearError) {
  {
    std::ofstream junk(dir_.path() / "replayrail.db", std::ios::binary);
    for (int i = 0; i < 4096; ++i) junk.put(static_cast<char>(i * 31 + 7));
  }
  auto r = LocalStore::open({.dir = dir_.path()});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::store_unavailable);
  EXPECT_NE(r.error().message.find("not a database"), std::string::npos) << r.error().message;
}

TEST_F(LocalStoreTest, UnwritableDirectoryFailsWithAClearError) {
  auto r = LocalStore::open({.dir = "/proc/replayrail-cannot-be-here"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, errc::store_unavailable);
  EXPECT_NE(r.error().message.find("replayrail-cannot-be-here"), std::string::npos);
}

// A limit on the size of the files this process writes (RLIMIT_FSIZE), for as long as it lives:
// a write past it fails (EFBIG, with SIGXFSZ ignored) as a write to a full disk does.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limited = saved_;
    limited.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*saved_handler_)(int) = SIG_DFL;
};

// The disk has no more room for the database's files: appends fail with store_unavailable and
// are not stored, nothing acknowledged is lost, reads go on, and once there is room the same
// store appends again (no reopen), its ids still increasing, its file intact.
TEST_F(LocalStoreTest, AFullDiskRefusesAppendsAndTheStoreGoesOnOnceThereIsRoom) {
  auto s = open();
  const std::string payload = R"({"x":")" + std::string(2000, 'x') + R"("})";
  std::vector<StreamId> acknowledged;
  int refused = 0;
  {
    FileSizeLimit full(256 * 1024);  // the WAL reaches it long before its first checkpoint
    for (int i = 0; i < 1000 && refused < 5; ++i) {
      auto appended = run(s->append("s", sample(payload), {}));
      if (appended) {
        acknowledged.push_back(appended->event->id);
      } else {
        EXPECT_EQ(appended.error().code, errc::store_unavailable);
        EXPECT_NE(appended.error().message.find("SQLite"), std::string::npos)
            << appended.error().message;
        ++refused;
      }
    }
    ASSERT_EQ(refused, 5) << "the file size limit was never reached";
    ASSERT_GT(acknowledged.size(), 10u);
    EXPECT_EQ(testing::ids_of(run(s->range("s", StreamId{}, 10'000, {})).value()), acknowledged)
        << "reads go on, and see exactly what was acknowledged";
  }
  auto next = run(s->append("s", sample(payload), {}));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_GT(next->event->id, acknowledged.back());
  acknowledged.push_back(next->event->id);
  s.reset();
  s = open();
  EXPECT_EQ(testing::ids_of(run(s->range("s", StreamId{}, 10'000, {})).value()), acknowledged);
  EXPECT_EQ(run(s->info("s")).value().length, acknowledged.size());
  auto db = sqlite::Connection::open(dir_.path() / "replayrail.db", false).value();
  auto check = db->prepare("PRAGMA integrity_check").value();
  ASSERT_TRUE(check.step().value());
  EXPECT_EQ(check.text(0), "ok");
}

TEST_F(LocalStoreTest, ExpiredIdempotencyRecordsAreForgotten) {
  std::uint64_t now = 2'000'000'000'000;
  auto s = open({.now_ms = [&] { return now; }});
  NewEvent e = make_event({.channel = "s", .type = "t", .event_id = "once"}).value();
  ASSERT_FALSE(run(s->append("s", e, {0, std::chrono::seconds(10)})).value().duplicate);
  now += 5'000;
  EXPECT_TRUE(run(s->append("s", e, {0, std::chrono::seconds(10)})).value().duplicate);
  now += 6'000;
  EXPECT_FALSE(run(s->append("s", e, {0, std::chrono::seconds(10)})).value().duplicate);
}

// A MAXLEN far below a stream's length is reached over several transactions of `trim_chunk`
// deletes each: the exact append that asked for it returns once the stream is down to it, and
// other writes complete meanwhile instead of waiting for the whole trim.
TEST_F(LocalStoreTest, AFarLowerMaxlenIsTrimmedInChunksWhileOtherWritesGoOn) {
  auto s = open({.fsync = local::Fsync::never, .trim_chunk = 100});
  auto stored = run(s->append_batch("big", samples(5000), {})).value();
  std::vector<std::string> finished;
  all(append_noting(*s, "big", {10}, finished), append_noting(*s, "other", {10}, finished));
  EXPECT_EQ(finished, (std::vector<std::string>{"other", "big"}));
  auto info = run(s->info("big")).value();
  EXPECT_EQ(info.length, 10u);
  EXPECT_EQ(info.first_id, stored[4991].event->id);  // the newest 9 of the 5000, and the new one
  EXPECT_EQ(info.trimmed_through, stored[4990].event->id);
}

// The chunk bounds only what a stream had over its limit before: a stream at its limit stays
// at it in the transaction of a batch far larger than the chunk.
TEST_F(LocalStoreTest, ABatchLargerThanTheTrimChunkIsTrimmedInItsOwnTransaction) {
  auto s = open({.fsync = local::Fsync::never, .trim_chunk = 100});
  ASSERT_TRUE(run(s->append_batch("big", samples(10), {})));
  std::vector<std::string> finished;
  all(append_batch_noting(*s, "big", 500, {10}, finished),
      append_noting(*s, "other", {10}, finished));
  EXPECT_EQ(finished, (std::vector<std::string>{"big", "other"}));
  EXPECT_EQ(run(s->info("big")).value().length, 10u);
}

// trim_before deletes as a MAXLEN trim does, `trim_chunk` entries a transaction: a long past
// goes without holding other writes up meanwhile.
TEST_F(LocalStoreTest, ALongPastIsExpiredInChunksWhileOtherWritesGoOn) {
  auto s = open({.fsync = local::Fsync::never, .trim_chunk = 100});
  auto stored = run(s->append_batch("big", samples(5000), {})).value();
  std::vector<std::string> finished;
  all(trim_before_noting(*s, "big", stored[4000].event->id, 4000, finished),
      append_noting(*s, "other", {}, finished));
  EXPECT_EQ(finished, (std::vector<std::string>{"other", "big"}));
  auto info = run(s->info("big")).value();
  EXPECT_EQ(info.length, 1000u);
  EXPECT_EQ(info.first_id, stored[4000].event->id);
  EXPECT_EQ(info.trimmed_through, stored[3999].event->id);
}

// An expiry while a MAXLEN trim is unfinished: both delete the oldest entries, and the stream
// ends at its MAXLEN with the length it records matching what it holds.
TEST_F(LocalStoreTest, ExpiryDuringAnUnfinishedMaxlenTrimLeavesTheRightLength) {
  auto s = open({.fsync = local::Fsync::never, .trim_chunk = 100});
  auto stored = run(s->append_batch("big", samples(5000), {})).value();
  // MAXLEN ~ returns at its commit; its trim to 10 goes on, 100 entries a transaction.
  ASSERT_TRUE(run(s->append("big", sample(), {.maxlen = 10, .approximate = true})));
  auto removed = run(s->trim_before("big", stored[2500].event->id));
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_LE(*removed, 2500u) << "what the MAXLEN trim deleted first is not counted again";
  for (int i = 0; i < 1000 && run(s->info("big")).value().length > 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto info = run(s->info("big")).value();
  EXPECT_EQ(info.length, 10u);
  auto page = run(s->range("big", {}, 100, {})).value();
  ASSERT_EQ(page.size(), 10u);
  EXPECT_EQ(page.front()->id, stored[4991].event->id);
  EXPECT_EQ(info.trimmed_through, stored[4990].event->id);
}

// MAXLEN ~ promises no exact length: its append returns at its commit, and the trim goes on in
// the writer's next transactions, with nothing else to write.
TEST_F(LocalStoreTest, AnApproximateMaxlenDoesNotWaitForItsTrim) {
  auto s = open_with_trim_backlog();
  ASSERT_TRUE(run(s->append("big", sample(), {.maxlen = 10, .approximate = true})));
  // 20,000 transactions of one delete each are still going on.
  EXPECT_GT(run(s->info("big")).value().length, 10u);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (run(s->info("big")).value().length > 10 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(run(s->info("big")).value().length, 10u);
}

// Closing the store completes an append still waiting for its trim (it is stored); the trim goes
// on when the stream is next appended to.
TEST_F(LocalStoreTest, ClosingCompletesAnAppendWaitingForItsTrim) {
  {
    auto s = open_with_trim_backlog();
    std::vector<std::string> finished;
    // 20,000 transactions of one delete each take longer than 50 ms.
    all(append_noting(*s, "big", {10}, finished),
        close_later(*s, std::chrono::milliseconds(50), finished));
    EXPECT_EQ(finished, std::vector<std::string>{"big"});
  }
  auto s = open();
  EXPECT_GT(run(s->info("big")).value().length, 10u);
  ASSERT_TRUE(run(s->append("big", sample(), {10})));
  EXPECT_EQ(run(s->info("big")).value().length, 10u);
}

// A trim whose transactions fail is tried again later (not in a loop that spins): it stands
// still meanwhile, and the append waiting for it completes once it can go on.
TEST_F(LocalStoreTest, ATrimThatFailsIsTriedAgainAndItsAppendWaits) {
  auto s = open({.fsync = local::Fsync::never, .trim_chunk = 1});
  auto stored = run(s->append_batch("big", samples(20'000), {})).value();
  // The trigger is made before the trim starts: made during it, it would have to win the write
  // lock from a writer that takes it again at once, and could lose until the trim is done.
  const StreamId refused = stored[1000].event->id;
  set_pragma("CREATE TRIGGER refuse BEFORE DELETE ON events WHEN (OLD.ms, OLD.seq) >= (" +
             std::to_string(refused.ms) + ", " + std::to_string(refused.seq) +
             ") BEGIN SELECT RAISE(ABORT, 'refused'); END;");
  std::vector<std::string> finished;
  // The 1000 events before `refused` go; the 19,000 from it and the new one stay.
  all(append_noting(*s, "big", {10}, finished),
      refuse_deletes_for_a_while(*s, dir_.path() / "replayrail.db", 19'001, finished));
  EXPECT_EQ(finished, std::vector<std::string>{"big"});
  EXPECT_EQ(run(s->info("big")).value().length, 10u);
}

// Deleting a stream ends its trim: the append waiting for it returns, and a stream made again
// under that name is not trimmed to the old limit.
TEST_F(LocalStoreTest, DeletingAStreamEndsItsUnfinishedTrim) {
  auto s = open_with_trim_backlog();
  std::vector<std::string> finished;
  all(append_noting(*s, "big", {10}, finished), delete_and_refill(*s, "big", 20));
  EXPECT_EQ(finished, std::vector<std::string>{"big"});
  ASSERT_TRUE(run(s->append("other", sample(), {})));  // one more transaction
  EXPECT_EQ(run(s->info("big")).value().length, 20u);
}

}  // namespace
}  // namespace replayrail::store
