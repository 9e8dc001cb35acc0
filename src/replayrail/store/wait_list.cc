#include "replayrail/store/wait_list.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace replayrail::store {

namespace asio = boost::asio;

asio::awaitable<bool> WaitList::Waiter::wait(std::optional<Millis> timeout) {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  if (!timeout) {
    auto [ec] = co_await channel_.async_receive(token);
    co_return !ec;
  }
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(channel_.get_executor(), *timeout);
  auto which = co_await (channel_.async_receive(token) || timer.async_wait(token));
  co_return which.index() == 0 && !std::get<0>(std::get<0>(which));
}

WaitList::Registration::Registration(WaitList& list, std::shared_ptr<Waiter> waiter,
                                     std::vector<std::string> streams)
    : list_(list), waiter_(std::move(waiter)), streams_(std::move(streams)) {
  std::lock_guard lock(list_.mu_);
  if (list_.closed_) waiter_->wake();
  for (const auto& s : streams_) list_.waiters_[s].push_back(waiter_);
}

WaitList::Registration::~Registration() {
  std::lock_guard lock(list_.mu_);
  for (const auto& s : streams_) {
    auto it = list_.waiters_.find(s);
    if (it == list_.waiters_.end()) continue;
    std::erase(it->second, waiter_);
    if (it->second.empty()) list_.waiters_.erase(it);
  }
}

void WaitList::notify(std::string_view stream) {
  std::lock_guard lock(mu_);
  auto it = waiters_.find(stream);
  if (it == waiters_.end()) return;
  for (auto& w : it->second) w->wake();
}

void WaitList::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (auto& [stream, waiters] : waiters_) {
    for (auto& w : waiters) w->wake();
  }
}

}  // namespace replayrail::store
