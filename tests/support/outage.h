#pragma once

// What the failover tests of the Redis store share: a reader and a publisher that keep going
// through an outage, retrying what fails as store_unavailable (any other failure throws); and
// batches appended until Redis is out of memory.

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "replayrail/store/store.h"
#include "replayrail/store/testing/run.h"

namespace replayrail::testing {

// An event whose payload is {"n": n}, with event_id "e<n>" when `chosen_id`.
inline NewEvent numbered_event(const std::string& stream, int n, bool chosen_id = false) {
  const std::string payload = R"({"n":)" + std::to_string(n) + "}";
  const std::string event_id = "e" + std::to_string(n);
  EventInput in{.channel = stream, .type = "t", .payload = payload};
  if (chosen_id) in.event_id = event_id;
  return make_event(in).value();
}

// Reads `stream` after `after` with blocking reads into `seen` until `done` is set and at least
// `want` events came (or 2000 rounds).
inline boost::asio::awaitable<void> read_through_outage(store::Store& st, std::string stream,
                                                        StreamId after, std::vector<StreamId>& seen,
                                                        std::size_t want, const bool& done) {
  using namespace std::chrono_literals;
  boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
  for (int round = 0; round < 2000 && !(done && seen.size() >= want); ++round) {
    std::vector<store::StreamCursor> cursors{{stream, after, {}}};
    auto r = co_await st.read(cursors, {50, 30s});
    if (!r) {
      if (r.error().code != errc::store_unavailable) throw std::runtime_error(r.error().message);
      pause.expires_after(50ms);
      co_await pause.async_wait(boost::asio::use_awaitable);
      continue;
    }
    for (auto& batch : *r) {
      for (auto& e : batch.events) seen.push_back(e->id);
    }
    if (!seen.empty()) after = seen.back();
  }
}

// Appends events numbered from `first_n` until `want` are acknowledged (into `acked`) or 30 s
// passed; counts the refusals; sets `done` at the end.
inline boost::asio::awaitable<void> publish_through_outage(store::Store& st, std::string stream,
                                                           int first_n, std::size_t want,
                                                           std::vector<StreamId>& acked,
                                                           int& refused, bool& done) {
  using namespace std::chrono_literals;
  boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor);
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  while (acked.size() < want && std::chrono::steady_clock::now() < give_up) {
    auto r = co_await st.append(
        stream, numbered_event(stream, first_n + static_cast<int>(acked.size())), {});
    if (r) {
      acked.push_back(r->event->id);
    } else {
      if (r.error().code != errc::store_unavailable) throw std::runtime_error(r.error().message);
      ++refused;
      pause.expires_after(50ms);
      co_await pause.async_wait(boost::asio::use_awaitable);
    }
  }
  done = true;
}

// Appends batches of 40 events of 8 KB to `stream` (which holds `stored` events) until Redis,
// given a maxmemory, refuses one (at most 100 batches), checking after each that the stream
// holds exactly what the accepted batches stored: a batch is stored whole or not at all.
// Returns the refused batch's error; nullopt when none was refused.
inline std::optional<Error> batches_until_refused(boost::asio::io_context& io, store::Store& st,
                                                  const std::string& stream, std::uint64_t stored) {
  const std::string payload = R"({"x":")" + std::string(8 * 1024, 'x') + "\"}";
  for (int round = 0; round < 100; ++round) {
    std::vector<NewEvent> events;
    for (int i = 0; i < 40; ++i) {
      events.push_back(make_event({.channel = stream, .type = "t", .payload = payload}).value());
    }
    auto appended = run(io, st.append_batch(stream, std::move(events), {}));
    if (appended) stored += 40;
    const std::uint64_t length = run(io, st.info(stream)).value().length;
    if (length != stored) {
      ADD_FAILURE() << "batch " << round << " was stored in part: " << length << " events, not "
                    << stored;
      return std::nullopt;
    }
    if (!appended) return appended.error();
  }
  return std::nullopt;
}

}  // namespace replayrail::testing
