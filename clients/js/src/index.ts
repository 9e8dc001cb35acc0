// ReplayRail's TypeScript client (DESIGN §7): publish, replay, and subscribe over WebSocket
// with automatic reconnection from the last cursor, so that a subscriber sees every event once:
// no gap (it resumes after the last id it received) and no duplicate (ids at or below the last
// one, and event_ids already seen, are dropped). Runs in browsers (the dashboard uses it) and in
// any runtime with fetch and WebSocket.

/** The event envelope, as the server sends it everywhere. */
export interface RailEvent {
  id: string;
  event_id: string;
  channel: string;
  type: string;
  payload: unknown;
  actor: unknown;
  metadata: Record<string, unknown>;
  created_at: string;
}

/** What a publish sends (POST /events/{channel}). */
export interface PublishInput {
  type: string;
  payload?: unknown;
  actor?: unknown;
  metadata?: Record<string, unknown>;
  event_id?: string;
  partition_key?: string;
}

/** An error the server answered with: its code (e.g. replay_window_expired) and HTTP status. */
export class RailError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly firstAvailable?: string,
  ) {
    super(message);
    this.name = 'RailError';
  }
}

export interface ClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8000 (default: the page's origin). */
  url?: string;
  /** A JWT, sent as a bearer token (and as ?token= on WebSockets); none while auth is off. */
  token?: string;
}

export type Status = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface SubscribeOptions {
  /** Start after this cursor ("0-0": from the start); default: events published from now on. */
  after?: string;
  onEvent: (event: RailEvent) => void;
  onStatus?: (status: Status) => void;
  /** A terminal error: the subscription is closed (a bad channel, an expired cursor, 401/403). */
  onError?: (error: RailError) => void;
  /** Reconnection back-off bounds in ms (default 250 and 5000). */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export interface Subscription {
  /** The last id delivered: where a reconnection resumes. */
  readonly cursor: string | undefined;
  close(): void;
}

// Close codes the server ends a subscription with for good (4000 + the HTTP status of the
// error): reconnecting with the same cursor would fail the same way.
const TERMINAL_CLOSES = new Set([4400, 4401, 4403, 4404, 4410]);
// How many event_ids a subscription remembers to drop duplicates (a publisher's retry that was
// stored twice under different ids cannot be told apart; one with the same event_id can).
const REMEMBERED_IDS = 10_000;

/** Compares two stream ids `<ms>-<seq>` numerically. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

export class ReplayRailClient {
  private readonly base: string;
  private readonly token?: string;

  constructor(options: ClientOptions = {}) {
    const origin = typeof location !== 'undefined' ? location.origin : 'http://127.0.0.1:8000';
    this.base = (options.url ?? origin).replace(/\/+$/, '');
    this.token = options.token || undefined;
  }

  /** Stores an event; resolves to it with its cursor (a retried event_id: the first one). */
  async publish(channel: string, input: PublishInput): Promise<RailEvent> {
    const body = await this.request('POST', `/events/${encodeURIComponent(channel)}`, input);
    return (body as { event: RailEvent }).event;
  }

  /** A page of events after `after` ("0-0": from the start), and the cursor for the next. */
  async replay(
    channel: string,
    after = '0-0',
    limit = 100,
  ): Promise<{ events: RailEvent[]; next: string }> {
    const query = `after=${encodeURIComponent(after)}&limit=${limit}`;
    return (await this.request('GET', `/events/${encodeURIComponent(channel)}?${query}`)) as {
      events: RailEvent[];
      next: string;
    };
  }

  /** Any JSON endpoint of the API (e.g. /v1/metrics/summary), with the client's token. */
  async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: reported below
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string; first_available?: string } })
        ?.error;
      throw new RailError(
        err?.code ?? 'http_' + res.status,
        err?.message ?? (text || res.statusText),
        res.status,
        err?.first_available,
      );
    }
    return parsed;
  }

  /**
   * Follows a channel: replay after `after`, then live. On a dropped connection it reconnects
   * with the last id it delivered, backing off between attempts, until close().
   */
  subscribe(channel: string, options: SubscribeOptions): Subscription {
    const minDelay = options.minDelayMs ?? 250;
    const maxDelay = options.maxDelayMs ?? 5000;
    let cursor = options.after;
    let socket: WebSocket | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    let delay = minDelay;
    const seen = new Set<string>();

    const status = (s: Status) => options.onStatus?.(s);
    const remember = (eventId: string) => {
      seen.add(eventId);
      if (seen.size > REMEMBERED_IDS) seen.delete(seen.values().next().value as string);
    };

    const connect = () => {
      const url = new URL(this.base.replace(/^http/, 'ws') + `/ws/${encodeURIComponent(channel)}`);
      if (cursor !== undefined) url.searchParams.set('last_event_id', cursor);
      if (this.token) url.searchParams.set('token', this.token);
      status(socket ? 'reconnecting' : 'connecting');
      const ws = new WebSocket(url.toString());
      socket = ws;
      ws.onopen = () => {
        delay = minDelay;
        status('live');
      };
      ws.onmessage = (message) => {
        const event = JSON.parse(String(message.data)) as RailEvent;
        if (cursor !== undefined && compareIds(event.id, cursor) <= 0) return;
        cursor = event.id;
        if (seen.has(event.event_id)) return;
        remember(event.event_id);
        options.onEvent(event);
      };
      ws.onclose = (close) => {
        if (closed || socket !== ws) return;
        if (TERMINAL_CLOSES.has(close.code)) {
          closed = true;
          const [code, ...rest] = close.reason.split(': ');
          options.onError?.(new RailError(code, rest.join(': ') || close.reason, close.code - 4000));
          status('closed');
          return;
        }
        status('reconnecting');
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, maxDelay);
      };
    };
    // Without a cursor the subscription starts at the channel's last id now, resolved first, so
    // that a reconnection before any event arrived resumes there rather than at "latest" again.
    const start = async () => {
      if (cursor === undefined) {
        try {
          cursor = (await this.replay(channel, '$', 1)).next;
        } catch (e) {
          if (closed) return;
          if (e instanceof RailError && e.status >= 400 && e.status < 500) {
            closed = true;
            options.onError?.(e);
            status('closed');
            return;
          }
          status('reconnecting');
          timer = setTimeout(start, delay);
          delay = Math.min(delay * 2, maxDelay);
          return;
        }
      }
      if (!closed) connect();
    };
    void start();

    return {
      get cursor() {
        return cursor;
      },
      close() {
        closed = true;
        if (timer) clearTimeout(timer);
        socket?.close(1000);
        status('closed');
      },
    };
  }
}
