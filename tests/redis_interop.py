#!/usr/bin/python3
"""Writes and reads ReplayRail events in Redis the way the Python ReplayRail library does:
stream `<prefix>:<channel>`, entry fields event_id, channel, type, payload, actor, metadata,
created_at (payload/actor/metadata as JSON text, actor "null" when absent).

  redis_interop.py write PORT PREFIX CHANNEL   adds three events, prints their ids
  redis_interop.py read PORT PREFIX CHANNEL    prints every entry as one JSON line
"""
import json
import sys
import uuid
from datetime import datetime, timezone

import redis


def main():
    action, port, prefix, channel = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    key = f"{prefix}:{channel}"
    if action == "write":
        for n in range(3):
            fields = {
                "event_id": str(uuid.uuid4()),
                "channel": channel,
                "type": "order.created",
                "payload": json.dumps({"order_id": f"ord_{n}", "note": "caf\u00e9"}),
                "actor": json.dumps({"type": "waiter", "id": "usr_123"}) if n else "null",
                "metadata": json.dumps({"correlation_id": f"req_{n}"}),
                "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            }
            print(r.xadd(key, fields, maxlen=10000), flush=True)
    elif action == "read":
        for entry_id, fields in r.xrange(key):
            fields["id"] = entry_id
            fields["payload"] = json.loads(fields["payload"])
            fields["actor"] = json.loads(fields["actor"])
            fields["metadata"] = json.loads(fields["metadata"])
            print(json.dumps(fields, sort_keys=True), flush=True)
    else:
        sys.exit(f"unknown action {action}")


if __name__ == "__main__":
    main()
