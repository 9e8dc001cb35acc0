// The conformance suite against a real redis-server (one per test binary, a fresh key prefix per
// store), plus what only Redis can do: Redis-side errors.
#include "replayrail/store/redis/redis_store.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "replayrail/core/random.h"
#include "replayrail/store/testing/conformance.h"
#include "support/redis_server.h"

namespace replayrail::testing {

namespace {

RedisServer& shared_redis() {
  static RedisServer server;
  return server;
}

}  // namespace

std::shared_ptr<store::Store> make_redis_store(boost::asio::any_io_executor ex) {
  auto url = resp::parse_redis_url(shared_redis().url()).value();
  auto s = store::RedisStore::connect(ex, {.url = url, .prefix = "t" + make_epoch()});
  return s;
}

INSTANTIATE_TEST_SUITE_P(Redis, StoreConformance,
                         ::testing::Values(StoreFactory{"redis", make_redis_store}),
                         StoreConformance::name_of);

}  // namespace replayrail::testing
