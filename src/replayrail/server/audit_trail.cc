#include "replayrail/server/audit_trail.h"

#include <spdlog/spdlog.h>

#include "replayrail/core/event.h"
#include "replayrail/core/json_text.h"

namespace replayrail::server {

namespace json = boost::json;

namespace {

// Who, as the event's actor: {"type":<role>,"id":<sub>} for a token, {"type":"admin_secret"}
// for whoever showed the admin secret (`entry`'s), null with auth off.
std::string actor_json(const AuditEntry& entry, const Requester& who) {
  if (entry.by_admin_secret) return to_json(json::object{{"type", "admin_secret"}});
  if (who.token) {
    json::value id = nullptr;
    if (!who.token->subject.empty()) id = json::string_view(who.token->subject);
    return to_json(json::object{{"type", auth::to_string(who.token->role)}, {"id", id}});
  }
  return "null";
}

}  // namespace

result<void> AuditTrail::may_read(const auth::Claims& token, std::string_view channel) const {
  RR_TRY(auth::check_channel(token, channel));
  if (is_trail(channel) && !auth::allows(token, auth::Role::admin) && token.channels.empty()) {
    return make_error(errc::forbidden, channel_ +
                                           " is the audit trail: reading it takes an admin "
                                           "token, or one whose channels claim names it");
  }
  return {};
}

result<void> AuditTrail::may_publish(std::string_view channel) const {
  if (!is_trail(channel)) return {};
  return make_error(errc::forbidden,
                    channel_ + " is the audit trail: only the server writes to it");
}

result<void> AuditTrail::may_partition(std::string_view channel,
                                       std::optional<std::uint32_t> count) const {
  if (!is_trail(channel) || !count || *count == 1) return {};
  return make_error(errc::topic_conflict,
                    channel_ +
                        " is the audit trail: it keeps one partition, so its records "
                        "keep one order");
}

store::task<void> AuditTrail::record(const AuditEntry& entry, const Requester& who) {
  if (channel_.empty()) co_return;
  PublishBody body;
  body.type = entry.type;
  body.payload = to_json(entry.details);
  const std::string actor = actor_json(entry, who);
  body.actor = actor;
  json::object metadata{{"remote", json::string_view(who.remote)}};
  if (is_traceparent(who.traceparent)) {
    metadata["traceparent"] = json::string_view(who.traceparent);
  }
  body.metadata = to_json(metadata);
  std::vector<PublishBody> events{std::move(body)};
  auto stored = co_await topics_.ingest(channel_, events, 1);
  std::optional<Error> failed;
  if (!stored) {
    failed = stored.error();
  } else if (const auto& one = stored->events.front(); one.error) {
    failed = *one.error;
  }
  if (metrics_) metrics_->audit_record(!failed);
  if (failed) {
    // The change stands (it was made); the log keeps who made it.
    spdlog::error("audit record {} by {} not stored in {}: {}: {} ({})", entry.type, actor,
                  channel_, to_string(failed->code), failed->message, to_json(entry.details));
  }
}

}  // namespace replayrail::server
