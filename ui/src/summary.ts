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
export interface Summary {
  topics: TopicSummary[];
  connections: number;
  streaming_sessions: number;
  subscriptions: number;
  rates: { published_per_second: number; delivered_per_second: number };
  // Null unless the server archives to PostgreSQL (--database-url).
  archive: { lag_seconds: number; last_success: number; events: number; failed_passes: number } | null;
}
