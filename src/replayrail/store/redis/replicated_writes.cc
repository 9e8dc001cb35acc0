#include "replayrail/store/redis/replicated_writes.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace replayrail::store::redis {

namespace asio = boost::asio;
using resp::Reply;

ReplicatedWrites::ReplicatedWrites(asio::any_io_executor executor,
                                   std::shared_ptr<resp::Connection> connection, int replicas,
                                   std::chrono::milliseconds timeout)
    : strand_(asio::make_strand(executor)),
      connection_(std::move(connection)),
      wait_replicas_(std::to_string(replicas)),
      wait_timeout_(std::to_string(timeout.count())) {}

void ReplicatedWrites::join(resp::Encoded encoded, Joiner joiner) {
  asio::dispatch(strand_, [self = shared_from_this(), encoded = std::move(encoded),
                           joiner = std::move(joiner)]() mutable {
    joiner.first = self->pending_.commands;
    joiner.count = encoded.commands;
    for (std::size_t start : encoded.starts) {
      self->pending_.starts.push_back(self->pending_.bytes.size() + start);
    }
    self->pending_.bytes += encoded.bytes;
    self->pending_.commands += encoded.commands;
    self->joiners_.push_back(std::move(joiner));
    // The writes of this turn join this pipeline; it goes when the strand next runs, or when
    // the one in flight returns.
    if (!self->in_flight_ && !std::exchange(self->flush_posted_, true)) {
      asio::post(self->strand_, [self] { self->flush(); });
    }
  });
}

void ReplicatedWrites::flush() {
  flush_posted_ = false;
  if (in_flight_ || pending_.commands == 0) return;
  in_flight_ = true;
  resp::Encoded batch = std::exchange(pending_, {});
  batch.add_args("WAIT", wait_replicas_, wait_timeout_);
  asio::co_spawn(
      strand_,
      [](std::shared_ptr<ReplicatedWrites> self, resp::Encoded batch,
         std::vector<Joiner> joiners) -> asio::awaitable<void> {
        auto reply = co_await self->connection_->send(std::move(batch));
        // What joined meanwhile goes next, as one pipeline: one pipeline in flight at a time is
        // what lets the next one gather every writer this one answers.
        self->in_flight_ = false;
        self->flush();
        for (auto& joiner : joiners) {
          if (!reply) {
            complete(std::move(joiner), reply.error());
            continue;
          }
          Reply own;
          own.type = Reply::Type::array;
          for (std::size_t i = joiner.first; i < joiner.first + joiner.count; ++i) {
            own.elements.push_back(std::move(reply->elements.at(i)));
          }
          own.elements.push_back(reply->elements.back());  // WAIT's answer
          complete(std::move(joiner), std::move(own));
        }
      }(shared_from_this(), std::move(batch), std::exchange(joiners_, {})),
      asio::detached);
}

void ReplicatedWrites::complete(Joiner joiner, result<Reply> value) {
  asio::post(joiner.executor,
             [handler = std::move(joiner.handler), value = std::move(value)]() mutable {
               std::move(handler)(std::move(value));
             });
}

}  // namespace replayrail::store::redis
