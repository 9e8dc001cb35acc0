#pragma once

// What the failover tests of the Redis store share: a reader and a publisher that keep going
// through an outage, retrying what fails as store_unavailable (any other failure throws).

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "replayrail/store/store.h"

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

}  // namespace replayrail::testing
