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
export interface TopicSummary {
  topic: string;
  partitions: number;
  created_at: string;
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
