// The shape of GET /v1/metrics/summary (docs/platform-api.md).
export interface GroupSummary {
  group: string;
  pending: number;
  lag: number;
  consumers: number;
}
export interface PartitionSummary {
  partition: number;
  stream: string;
  length: number;
  first_id: string;
  last_id: string;
  groups: GroupSummary[];
}
// A retention setting and where it comes from: the topic's own, or the server's. 0: no limit.
export interface RetentionSetting {
  value: number;
  source: 'topic' | 'server';
}
export interface Retention {
  max_length: RetentionSetting; // newest events kept per partition
  max_age_ms: RetentionSetting;
}
export interface TopicSummary {
  topic: string;
  partitions: number;
  created_at: string;
  retention: Retention;
  length: number;
  streams: PartitionSummary[];
  groups: GroupSummary[];
}
// A channel that is no topic: published to with POST /events/{channel} only, or a dead-letter
// stream.
export interface ChannelSummary {
  channel: string;
  length: number;
  first_id: string;
  last_id: string;
  groups: GroupSummary[];
}
export interface Summary {
  topics: TopicSummary[];
  channels: ChannelSummary[]; // the first 100 by name
  channels_total: number;
  connections: number;
  streaming_sessions: number;
  subscriptions: number;
  rates: { published_per_second: number; delivered_per_second: number };
  // Null unless the server archives to PostgreSQL (--database-url).
  archive: { lag_seconds: number; last_success: number; events: number; failed_passes: number } | null;
}

// "10000 events, 7d": what a topic keeps per partition, a setting of its own marked with *.
export function retentionText(r: Retention): string {
  const own = (s: RetentionSetting) => (s.source === 'topic' ? '*' : '');
  const length = r.max_length.value === 0 ? 'any number of events' : `${r.max_length.value} events`;
  const age = r.max_age_ms.value === 0 ? 'any age' : duration(r.max_age_ms.value);
  return `${length}${own(r.max_length)}, ${age}${own(r.max_age_ms)}`;
}

// The largest unit that divides `ms`: 7d, 36h, 90s, 250ms.
function duration(ms: number): string {
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  for (const [unit, size] of units) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

// "7d", "12h", "90s", "250ms" (or "0": no limit) in milliseconds, as the CLI's --max-age takes
// them; anything else throws, saying what is expected.
export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(text);
  if (!m || (!m[2] && m[1] !== '0')) {
    throw new Error(`max age must be a number with a unit (ms, s, m, h, d), e.g. 7d, or 0; not "${text}"`);
  }
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return Number(m[1]) * unit[m[2] ?? 'ms'];
}
