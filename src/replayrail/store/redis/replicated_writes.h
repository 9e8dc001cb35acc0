#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "replayrail/resp/connection.h"

namespace replayrail::store::redis {

// Writes that are acknowledged only once `replicas` replicas have them (RedisStore's
// Options::wait_replicas). WAIT holds up its connection until the replicas confirm, so a WAIT
// per write would send them one replica round trip apart (rr_redis_store_bench: 19k/s from 64
// publishers). Instead writes go out as one pipeline that ends in one WAIT, which covers them
// all: the same pipeline, hence the same connection (a WAIT on a connection opened since covers
// nothing). One pipeline is out at a time; the writes that arrive meanwhile go in the next,
// sent when it returns. Group commit, as the local store's writer does for fsync.
//
// Threads: send() may be called from any thread and completes on the caller's executor; the
// gathering runs on a strand.
class ReplicatedWrites : public std::enable_shared_from_this<ReplicatedWrites> {
 public:
  ReplicatedWrites(boost::asio::any_io_executor executor,
                   std::shared_ptr<resp::Connection> connection, int replicas,
                   std::chrono::milliseconds timeout);

  // Sends `encoded` in the next pipeline; its replies as an array (even for one command), then
  // WAIT's answer, the number of replicas that confirmed, as the last element.
  boost::asio::awaitable<result<resp::Reply>> send(resp::Encoded encoded) {
    return boost::asio::async_initiate<decltype(boost::asio::use_awaitable),
                                       void(result<resp::Reply>)>(
        [self = shared_from_this()](auto handler, resp::Encoded encoded) {
          auto executor = boost::asio::get_associated_executor(handler, self->strand_);
          self->join(std::move(encoded), {std::move(handler), std::move(executor)});
        },
        boost::asio::use_awaitable, std::move(encoded));
  }

 private:
  using Handler = boost::asio::any_completion_handler<void(result<resp::Reply>)>;
  struct Joiner {
    Handler handler;
    boost::asio::any_io_executor executor;
    std::size_t first = 0, count = 0;  // its commands in the pipeline
  };

  void join(resp::Encoded encoded, Joiner joiner);
  void flush();
  static void complete(Joiner joiner, result<resp::Reply> value);

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  std::shared_ptr<resp::Connection> connection_;
  std::string wait_replicas_, wait_timeout_;  // WAIT's arguments
  resp::Encoded pending_;                     // the next pipeline, without its WAIT
  std::vector<Joiner> joiners_;
  bool flush_posted_ = false;
  bool in_flight_ = false;  // a pipeline is out: the next waits for its answer
};

}  // namespace replayrail::store::redis
