#pragma once

// The audit trail: who changed what, kept as events (the mission's "auditable"). Each change an
// admin makes through the API (a topic created, configured, purged or deleted, a consumer group
// created, reset or deleted, a token minted) is appended, once made, to one channel
// (`--audit-channel`, `replayrail.audit` by default): `type` says what was done
// (`topic.purged`), `actor` who did it (the token's role and subject), `payload` to what and
// with what result, `metadata.remote` from where. It is a channel like the others, so it is
// replayed, followed live and archived with the hash chain (`replayrail audit verify` covers
// it), as Confluent's audit log topic and JetStream's API advisories are. Only the server
// writes to it.

#include <boost/json/object.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "replayrail/auth/jwt.h"
#include "replayrail/server/metrics.h"
#include "replayrail/topics.h"

namespace replayrail::server {

// One change, as a handler describes it: `topic.purged` and what it did.
struct AuditEntry {
  std::string type;
  boost::json::object details;
  bool by_admin_secret = false;  // made by whoever showed the admin secret (a minted token)
};

// Who asked for a change; views of the request, which outlives its handling.
struct Requester {
  const auth::Claims* token = nullptr;  // null: auth is off, or a route without a token
  std::string_view remote;              // the client's address and port
  std::string_view traceparent;         // the request's W3C traceparent, kept when valid
};

class AuditTrail {
 public:
  // `channel` empty: no trail (nothing recorded, every channel as any other). `metrics` may be
  // null.
  AuditTrail(Topics& topics, std::string channel, Metrics* metrics)
      : topics_(topics), channel_(std::move(channel)), metrics_(metrics) {}

  bool is_trail(std::string_view channel) const { return !channel_.empty() && channel == channel_; }

  // forbidden unless `token` may read `channel`: its channels claim allows it and, for the
  // trail, the token is an admin's or its channels claim names the trail (a forwarder's consumer
  // token limited to it). A token whose claim limits nothing reads the trail only if admin.
  result<void> may_read(const auth::Claims& token, std::string_view channel) const;
  // forbidden for the trail: only the server writes to it.
  result<void> may_publish(std::string_view channel) const;
  // forbidden for a trail of more than one partition (its records keep one order).
  result<void> may_partition(std::string_view channel, std::optional<std::uint32_t> count) const;

  // Appends `entry` by `who` to the trail (nothing when there is none) and waits until it is
  // stored. A failure (the store unreachable) is logged and counted, not returned: the change
  // was made and its answer stands.
  store::task<void> record(const AuditEntry& entry, const Requester& who);

 private:
  Topics& topics_;
  std::string channel_;
  Metrics* metrics_;
};

}  // namespace replayrail::server
