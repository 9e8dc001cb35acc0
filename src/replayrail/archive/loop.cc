#include "replayrail/archive/loop.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace replayrail::archive {

namespace {

boost::asio::awaitable<void> pass_into(Archiver& archiver, const std::atomic<bool>* stop,
                                       std::optional<result<Pass>>& out) {
  out.emplace(co_await archiver.pass(stop));
}

}  // namespace

result<Pass> run_pass(Archiver& archiver, const std::atomic<bool>* stop) {
  boost::asio::io_context io;
  std::optional<result<Pass>> out;
  boost::asio::co_spawn(io, pass_into(archiver, stop, out), boost::asio::detached);
  io.run();
  return std::move(*out);
}

ArchiveLoop::ArchiveLoop(std::shared_ptr<store::Store> store, ArchiveOptions options,
                         std::chrono::milliseconds interval, OnPass on_pass)
    : store_(std::move(store)),
      options_(std::move(options)),
      interval_(interval),
      on_pass_(std::move(on_pass)) {
  if (!options_.interrupt) options_.interrupt = std::make_shared<pg::Interrupt>();
  thread_ = std::thread([this] { run(); });
}

void ArchiveLoop::request_stop() {
  {
    std::lock_guard lock(mu_);  // so that run() cannot miss the wake-up between check and wait
    stopping_ = true;
  }
  wake_.notify_all();
}

bool ArchiveLoop::stop_within(std::chrono::milliseconds grace) {
  request_stop();
  std::unique_lock lock(mu_);
  return wake_.wait_for(lock, grace, [this] { return !in_pass_; });
}

void ArchiveLoop::stop() {
  request_stop();
  if (thread_.joinable()) thread_.join();
}

void ArchiveLoop::run() {
  std::unique_ptr<Archiver> archiver;
  bool failing = false;  // logged once per outage
  for (;;) {
    {
      std::lock_guard lock(mu_);  // so that stop_within() sees either no pass or this one
      if (stopping_) break;
      in_pass_ = true;
    }
    auto done = [&]() -> result<Pass> {
      if (!archiver) RR_TRY_ASSIGN(archiver, Archiver::open(store_, options_));
      return run_pass(*archiver, &stopping_);
    }();
    {
      std::lock_guard lock(mu_);
      in_pass_ = false;
    }
    wake_.notify_all();
    if (stopping_) break;         // a pass cut short by the store closing is no outage
    if (!done) archiver.reset();  // a fresh connection next time
    if (on_pass_) on_pass_(done);
    if (done && failing) spdlog::info("archive: working again");
    if (!done && !failing) {
      spdlog::warn("archive: {}; trying again every {} ms", done.error().message,
                   interval_.count());
    }
    failing = !done;
    if (done && done->events > 0) {
      spdlog::debug(
          "archive: {} events from {} streams ({} gaps, {} streams busy elsewhere), the oldest "
          "stored {} ms before",
          done->events, done->streams, done->gaps, done->busy, done->lag.count());
    }
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, interval_, [this] { return stopping_.load(); });
  }
}

}  // namespace replayrail::archive
