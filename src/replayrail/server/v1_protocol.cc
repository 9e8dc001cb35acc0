#include "replayrail/server/v1_protocol.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "replayrail/core/json_text.h"

namespace replayrail::server {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

namespace {

constexpr std::int64_t kMaxInFlight = 10'000;

}  // namespace

json::object error_object(const Error& e) {
  json::object inner{{"code", to_string(e.code)}, {"message", e.message}};
  if (e.first_available) inner["first_available"] = e.first_available->to_string();
  return inner;
}

std::string v1_message(std::string_view type, const std::string* sub, json::object fields) {
  json::object out{{"type", type}};
  if (sub) out["sub"] = *sub;
  for (auto& [k, v] : fields) out[k] = std::move(v);
  return to_json(out);
}

std::string v1_error(const std::string* sub, const Error& e, json::object fields) {
  fields["error"] = error_object(e);
  return v1_message("error", sub, std::move(fields));
}

result<GroupSubscriptionOptions> parse_group_subscribe(const json::object& msg) {
  auto parsed = Body::of(msg, {"op", "sub", "topic", "group", "consumer", "partitions",
                               "max_in_flight", "claim_idle_ms", "max_deliveries"});
  if (!parsed) return parsed.error();
  const Body& body = *parsed;
  GroupSubscriptionOptions o;
  RR_TRY_ASSIGN(o.topic, body.required_text("topic"));
  RR_TRY_ASSIGN(o.group, body.required_text("group"));
  RR_TRY_ASSIGN(o.consumer, body.required_text("consumer"));
  RR_TRY_ASSIGN(o.partitions, body.partitions());
  std::int64_t n;
  RR_TRY_ASSIGN(n, body.integer("max_in_flight", 100, 1, kMaxInFlight));
  o.max_in_flight = static_cast<std::size_t>(n);
  RR_TRY_ASSIGN(n, body.integer("claim_idle_ms", 0, 0, kMaxRequestNumber));
  o.claim_idle = Millis(n);
  RR_TRY_ASSIGN(o.max_deliveries, body.max_deliveries());
  if (o.max_deliveries && o.claim_idle.count() == 0) {
    return make_error(errc::invalid_argument,
                      "max_deliveries needs claim_idle_ms: only claimed messages are delivered "
                      "again");
  }
  return o;
}

GroupSubscription::GroupSubscription(asio::any_io_executor executor, Topics& topics,
                                     std::shared_ptr<Outbox> outbox, std::string name,
                                     GroupSubscriptionOptions options,
                                     std::uint32_t partition_count,
                                     const std::atomic<bool>& stopping)
    : topics_(topics),
      outbox_(std::move(outbox)),
      name_(std::move(name)),
      options_(std::move(options)),
      partitions_(options_.partitions),
      stopping_(stopping),
      wake_(std::move(executor), Clock::time_point::max()) {
  if (partitions_.empty()) {
    for (std::uint32_t p = 0; p < partition_count; ++p) partitions_.push_back(p);
  }
}

bool GroupSubscription::done() const { return stopped_ || stopping_ || outbox_->closed(); }

void GroupSubscription::stop() {
  stopped_ = true;
  wake_.cancel();
}

asio::awaitable<void> GroupSubscription::run(std::shared_ptr<GroupSubscription> self) {
  const bool claims = options_.claim_idle.count() > 0;
  // Claims look again this often: soon enough after a message became claimable.
  const Millis claim_every = std::min(options_.claim_idle, options_.block);
  auto next_claim = Clock::now();
  while (!done()) {
    const std::size_t budget =
        options_.max_in_flight - std::min(options_.max_in_flight, in_flight_.size());
    if (budget == 0) {
      // Everything it may have is out: wait for an ack.
      wake_.expires_after(options_.block);
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (claims && Clock::now() >= next_claim) {
      next_claim = Clock::now() + claim_every;
      auto claimed = co_await topics_.claim(options_.topic, options_.group, options_.consumer,
                                            options_.claim_idle, budget, StreamId{},
                                            options_.max_deliveries, options_.partitions);
      if (done()) break;
      if (!claimed) {
        fail(claimed.error());
        break;
      }
      deliver(claimed->claimed);
      continue;
    }
    auto block = options_.block;
    if (claims) {
      auto until_claim = std::chrono::ceil<Millis>(next_claim - Clock::now());
      block = std::clamp(until_claim, Millis(1), block);
    }
    auto [partitions, count] = plan(budget);
    auto read = co_await topics_.read_group(options_.topic, options_.group, options_.consumer,
                                            count, block, std::move(partitions));
    if (done()) break;
    if (!read) {
      fail(read.error());
      break;
    }
    deliver(*read);
  }
  ended_ = true;
  self.reset();  // held until here: the subscription lives as long as its loop
}

std::pair<std::vector<std::uint32_t>, std::size_t> GroupSubscription::plan(std::size_t budget) {
  if (budget >= partitions_.size()) return {partitions_, budget / partitions_.size()};
  // Fewer messages wanted than partitions: one each from `budget` of them, taking turns.
  std::vector<std::uint32_t> some;
  for (std::size_t i = 0; i < budget; ++i) {
    some.push_back(partitions_[(next_partition_ + i) % partitions_.size()]);
  }
  next_partition_ = (next_partition_ + budget) % partitions_.size();
  return {std::move(some), 1};
}

void GroupSubscription::deliver(std::vector<PartitionMessage>& messages) {
  for (const auto& m : messages) {
    in_flight_.emplace(m.partition, m.message.id);
    std::string text = R"({"type":"message","sub":)";
    append_json_string(text, name_);
    text.push_back(',');
    append_message_members(text, m);
    text.push_back('}');
    outbox_->push_message(std::move(text));
  }
}

void GroupSubscription::fail(const Error& e) {
  outbox_->push_message(v1_error(&name_, e));
  stopped_ = true;
}

asio::awaitable<void> GroupSubscription::ack(std::vector<PartitionIds> items) {
  auto acked = co_await topics_.ack(options_.topic, options_.group, items);
  if (outbox_->closed()) co_return;
  if (!acked) {
    outbox_->push_message(v1_error(&name_, acked.error(), {{"op", "ack"}}));
    co_return;
  }
  for (const auto& item : items) {
    for (const auto& id : item.ids) in_flight_.erase({item.partition, id});
  }
  wake_.cancel();
  outbox_->push_message(v1_message("acked", &name_, {{"acked", *acked}}));
}

}  // namespace replayrail::server
