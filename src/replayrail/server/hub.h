#pragma once

// The fanout hub (DESIGN §4): per process, at most one live reader per stream however many
// subscribers; each event is serialised once into an immutable Frame and the same bytes go to
// every subscriber on every thread.
//
//   Feed        one per watched stream: a coroutine reading the store from the hub's position H
//               (blocking reads: in-process notification for memory/local, XREAD BLOCK for redis)
//               and posting each Batch once to every event-loop thread that has subscribers.
//   Subscriber  one subscription on one connection, on that connection's thread: replays from
//               its own cursor P with range() until it reaches the feed, then takes live batches.
//               A batch that does not follow P (batch.prev > P) means a gap: it catches up from
//               the store again. So there is never a gap and never an id <= P twice.
//   Outbox      a connection's queue of frames to write, shared by its subscriptions, with one
//               write in flight (the session's writer coroutine drains it).
//
// Slow consumers: when a connection's Outbox passes its byte limit, a `catchup` subscriber stops
// taking live batches and reads from the store from its own cursor once the Outbox has drained
// (memory stays bounded, nothing is lost); `disconnect` ends the subscription (close 4429);
// `latest` drops what is queued and not yet written and reports the skipped range.
//
// Threads: Hub methods are thread-safe. A Subscriber and its Outbox live on one event-loop
// thread and are only touched there.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/container/deque.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "replayrail/common/errc.h"
#include "replayrail/common/stream_id.h"
#include "replayrail/common/string_map.h"
#include "replayrail/core/event.h"
#include "replayrail/store/history.h"
#include "replayrail/store/store.h"

namespace replayrail::server {

// One event, serialised once.
struct Frame {
  StreamId id;
  std::string id_text;  // the cursor as text (SSE `id:`)
  std::string json;     // the envelope
  // SSE ends a `data:` field at a line break. An envelope holding one (JSON whitespace in a
  // payload kept as its producer wrote it: through the library, or into a shared Redis) is sent
  // as one `data:` line per line, which EventSource joins with "\n": the same JSON. Empty when
  // the envelope is one line, as it is for everything published over HTTP.
  std::string sse_data;
};

// Events a feed read in one go, shared read-only by every subscriber of the stream.
struct Batch {
  std::string stream;
  std::string epoch;  // the stream's epoch (empty while the feed has not learnt it)
  StreamId prev;      // the feed's position before these events: they follow it without a gap
  std::vector<Frame> frames;
};
using BatchPtr = std::shared_ptr<const Batch>;

Frame make_frame(const Event& e);

enum class SlowPolicy { catchup, disconnect, latest };

class Subscriber;

// Bytes a subscription writes around each frame's envelope (the v1 protocol's wrapper).
struct Wrap {
  std::string prefix;
  std::string suffix;
};

// A connection's outbound queue. Items are frames of shared batches (never copied) or messages
// of the connection's own (control messages). Lifecycle: shared by the session and its
// subscribers' catch-up coroutines.
class Outbox {
 public:
  struct Item {
    BatchPtr batch;  // the frame is batch->frames[index]; null for a message
    std::size_t index = 0;
    std::shared_ptr<const Wrap> wrap;  // around the frame; null: the bare envelope
    std::shared_ptr<const std::string> message;
    const void* owner = nullptr;  // the subscriber that queued it (identity only)

    const Frame& frame() const { return batch->frames[index]; }
  };
  struct Dropped {
    StreamId first, last;
    std::uint64_t count = 0;
  };

  Outbox(boost::asio::any_io_executor executor, std::size_t byte_limit);

  void push_frame(const void* owner, std::shared_ptr<const Wrap> wrap, const BatchPtr& batch,
                  std::size_t index);
  void push_message(std::string message);
  // Takes the next item, waiting for one: an empty Item (no batch, no message) when `idle`
  // passed first; nullopt once closed, or finished and drained.
  boost::asio::awaitable<std::optional<Item>> pop(std::chrono::milliseconds idle);
  // Takes what is queued without waiting (at most `max`), for a gathered write.
  void pop_ready(std::vector<Item>& out, std::size_t max);
  // The item was written: its bytes leave the count and waiters for room are woken.
  void written(const Item& item);
  // Drops what is queued and ends pop().
  void close();
  // Takes nothing more; pop() ends once what is queued was taken (shutdown flushes).
  void finish();
  bool closed() const { return closed_; }
  bool idle(const Item& item) const { return !item.batch && !item.message; }
  bool empty() const { return items_.empty(); }

  std::size_t bytes() const { return bytes_; }
  bool over_limit() const { return bytes_ > byte_limit_; }
  // Waits until the queue holds at most half the limit, or is closed.
  boost::asio::awaitable<void> wait_for_room();
  // Drops `owner`'s queued frames (not the one being written), except its newest when
  // `keep_newest`.
  Dropped drop(const void* owner, bool keep_newest);

 private:
  static std::size_t size_of(const Item& item);

  // Boost's deque allocates nothing until the first item; std::deque allocates ~600 bytes at
  // once, per connection, idle or not.
  boost::container::deque<Item> items_;
  std::size_t bytes_ = 0;
  std::size_t byte_limit_;
  bool closed_ = false;
  bool finishing_ = false;
  // Used as events on the connection's thread: waiters wait until cancelled.
  boost::asio::steady_timer has_items_;
  boost::asio::steady_timer has_room_;
};

class Hub;

// One subscription: see the top of this file. Lives on its connection's thread; the callbacks
// run there too and must not destroy the Subscriber (the session drops it afterwards).
class Subscriber {
 public:
  struct Options {
    std::string stream;
    StreamId position;  // P: the last id the client has (its start cursor)
    std::string epoch;  // expected epoch; empty: take the stream's
    SlowPolicy policy = SlowPolicy::catchup;
    std::size_t page = 100;            // events per catch-up range()
    std::shared_ptr<const Wrap> wrap;  // null: bare envelopes
    // When replay first reaches the live edge (v1 `caught_up`).
    std::function<void(StreamId position)> on_caught_up;
    // A terminal error ended the subscription.
    std::function<void(const Error&)> on_error;
    // `latest` skipped events it had queued.
    std::function<void(const Outbox::Dropped&)> on_skipped;
  };

  Subscriber(Hub& hub, std::size_t thread, std::shared_ptr<Outbox> outbox, Options options);
  ~Subscriber();
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Attaches to the stream's feed and starts replay from the cursor; call once.
  void start();

  const std::string& stream() const { return options_.stream; }
  StreamId position() const { return position_; }
  bool ended() const { return ended_; }
  // Times it was detached to catch up from the store after falling behind.
  std::uint64_t catchups() const { return catchups_; }

 private:
  friend class Hub;
  enum class Mode { catching_up, live };

  void on_batch(const BatchPtr& batch);
  void take(const BatchPtr& batch);  // live: queue the frames after P
  void fail(const Error& e);
  void start_catchup();
  // Applies the batches buffered while catching up; false when they do not follow P.
  bool go_live();
  static boost::asio::awaitable<void> catchup(Subscriber* self, std::shared_ptr<bool> alive,
                                              std::shared_ptr<Outbox> outbox);

  Hub& hub_;
  std::size_t thread_;
  std::shared_ptr<Outbox> outbox_;
  Options options_;
  StreamId position_;
  Mode mode_ = Mode::catching_up;
  bool attached_ = false;
  bool catchup_running_ = false;
  bool caught_up_once_ = false;
  bool ended_ = false;
  std::uint64_t catchups_ = 0;
  // Live batches met while catching up (bounded). A vector: an empty std::deque allocates,
  // and idle subscribers are many.
  std::vector<BatchPtr> buffered_;
  std::size_t buffered_bytes_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

struct HubOptions {
  std::size_t feed_batch = 1000;               // events per feed read
  store::Millis feed_block{1000};              // a feed looks up this often to see if it is idle
  std::size_t buffered_bytes_limit = 1 << 20;  // live batches a catching-up subscriber keeps
  // Gathering: once a feed has handed a batch on, it waits before reading the next, so that a
  // busy stream's events reach each subscriber in fewer, larger writes (a write costs about as
  // much as the fanout's other work for a handful of events). The wait grows with the stream's
  // subscribers, `gather_per_subscriber` each, about what a round of writes to them takes, and
  // is at most `gather_max` (0: never wait). A stream's first event after a quiet spell (no
  // batch within the wait) is read and sent at once.
  std::chrono::microseconds gather_per_subscriber{10};
  std::chrono::microseconds gather_max{10'000};
  // Each batch a feed read, on the feed's thread (metrics: delivery lag).
  std::function<void(const Batch&)> on_feed_batch;
  // Where catch-ups read what the store trimmed (the archive); null: none. Outlives the hub.
  store::History* history = nullptr;
};

// Totals over every thread since the hub started (subscribers: now).
struct HubStats {
  std::uint64_t subscribers = 0;
  std::uint64_t deliveries = 0;  // frames queued for subscribers, live and replayed
  std::uint64_t catchups = 0;    // slow subscribers detached to catch up from the store
};

class Hub {
 public:
  // One executor per event-loop thread; a subscriber says which it runs on by index.
  Hub(store::Store& store, std::vector<boost::asio::any_io_executor> threads,
      HubOptions options = {});
  ~Hub();

  store::Store& store() { return store_; }
  const HubOptions& options() const { return options_; }

  // Live feeds (watched streams), for tests and metrics.
  std::size_t feeds() const;
  HubStats stats() const;

 private:
  friend class Subscriber;
  struct Feed;
  struct Local;  // one thread's subscribers by stream; touched only on that thread

  void attach(Subscriber* s);
  void detach(Subscriber* s);
  // A subscriber of the stream on `thread` came (`on`) or went; `toggle`: it was the thread's
  // first or last, so the thread starts or stops wanting the stream's live events.
  void watch(const std::string& stream, std::size_t thread, bool on, bool toggle);
  static boost::asio::awaitable<void> run_feed(Hub* hub, std::shared_ptr<bool> alive,
                                               std::shared_ptr<Feed> feed);
  // On `thread`: hands the batch to its subscribers of the stream.
  void deliver(std::size_t thread, const BatchPtr& batch);
  // On `thread`: the feed failed; its subscribers of the stream end with `error`.
  void deliver_error(std::size_t thread, const std::string& stream, const Error& error);
  // Counts on `thread` (its Local's counters have that one writer).
  void count(std::size_t thread, std::int64_t subscribers, std::uint64_t deliveries,
             std::uint64_t catchups);

  store::Store& store_;
  std::vector<boost::asio::any_io_executor> threads_;
  HubOptions options_;
  std::vector<std::unique_ptr<Local>> locals_;
  mutable std::mutex mu_;
  StringMap<std::shared_ptr<Feed>> feeds_;
  std::size_t next_feed_thread_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace replayrail::server
