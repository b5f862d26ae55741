/** Live updates: one WebSocket for the page, subscribed to the episode on screen.
 *
 * The realtime queue is a standard queue with several broadcasters, so events may arrive out of
 * order or twice. The connection keeps the ids it has applied (a bounded set) and drops only
 * those. After a (re)subscription is confirmed, it sends `resume` from a watermark a few seconds
 * before the newest event applied, so an event that was still on its way, or posted while the
 * socket was down, comes back; the ids seen already are dropped again. Presence frames carry a
 * round number; one not above the last applied is dropped. */
import type { Config } from "./config";
import type { Session } from "./auth";

export interface Viewer {
  id: string;
  name: string;
  since: string;
  last_seen: string;
  /** The field they are editing now, if any. */
  editing?: string;
}

export interface DomainEvent {
  id: string;
  type: string;
  occurred_at: string;
  actor: { id: string; name: string; role: string };
  episode_id: string;
  data: Record<string, unknown>;
}

export interface Handlers {
  event(e: DomainEvent): void;
  /** A notification for this user (to every connection of theirs, subscribed or not). */
  notification(n: Record<string, unknown>): void;
  presence(viewers: Viewer[] | null, count: number): void;
  state(s: "connecting" | "live" | "reconnecting"): void;
}

const PING_MS = 30_000;
/** How often an `editing` is repeated while the person keeps typing (it lapses after 30 s). */
const EDITING_REFRESH_MS = 10_000;
/** How far before the newest event a resume starts: more than delivery can reorder (a frame
 * reposted to a throttled connection comes up to about 15 s late: 2 + 4 + 6 s of delays). */
const REPLAY_MS = 30_000;
const SEEN_MAX = 2_000;

/** The smallest UUIDv7 of a millisecond (a resume's `after` is exclusive). */
export function firstIdAt(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

function msOf(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

export class Live {
  private ws: WebSocket | null = null;
  private episode: string | null = null;
  /** Resume from after this id: events up to it are reflected on screen. */
  private from: string | null = null;
  private seen = new Set<string>();
  private lastRound = -1;
  private retry = 0;
  private pinger: number | undefined;
  private editingField: string | null = null;
  private editingSent = 0;
  private reconnect: number | undefined;
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly session: () => Session,
    private readonly on: Handlers,
  ) {}

  /** Follows one episode (the one on screen). `from`: events up to this id are on screen;
   * `seen`: the ids of those the page showed already (its activity feed). */
  follow(episode: string, from: string, seen: string[]): void {
    if (this.episode && this.episode !== episode) this.send({ action: "unsubscribe", episode_id: this.episode });
    this.episode = episode;
    this.from = from;
    this.seen = new Set(seen);
    this.lastRound = -1;
    if (this.ws?.readyState === WebSocket.OPEN) this.subscribe();
    else this.start();
  }

  /** Connects without following an episode: notifications still arrive. */
  start(): void {
    if (!this.ws && this.reconnect === undefined) this.connect();
  }

  stop(): void {
    if (this.episode) this.send({ action: "unsubscribe", episode_id: this.episode });
    this.episode = null;
  }

  /** Tells the others on the episode what this person is editing (`null`: nothing). Sent again
   * while they keep editing, at most every `EDITING_REFRESH_MS`: the server lets it lapse after
   * 30 s without one. */
  editing(field: string | null): void {
    if (!this.episode) return;
    const now = Date.now();
    if (field === null) {
      if (this.editingField !== null) this.send({ action: "idle", episode_id: this.episode });
      this.editingField = null;
      return;
    }
    if (field === this.editingField && now - this.editingSent < EDITING_REFRESH_MS) return;
    this.send({ action: "editing", episode_id: this.episode, field });
    this.editingField = field;
    this.editingSent = now;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }

  private connect(): void {
    window.clearTimeout(this.reconnect);
    this.reconnect = undefined;
    const token = this.session().token;
    this.on.state(this.retry ? "reconnecting" : "connecting");
    const ws =
      this.config.ws_token === "query"
        ? new WebSocket(`${this.config.ws_url}?token=${encodeURIComponent(token)}`)
        : new WebSocket(this.config.ws_url, ["episodes.v1", `bearer.${token}`]);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.retry = 0;
      this.on.state("live");
      this.subscribe();
      window.clearInterval(this.pinger);
      this.pinger = window.setInterval(() => this.send({ action: "ping" }), PING_MS);
    };
    ws.onmessage = (m) => {
      if (this.ws === ws) this.frame(JSON.parse(String(m.data)));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return; // an older socket's late close
      window.clearInterval(this.pinger);
      this.ws = null;
      if (this.closed) return;
      this.retry += 1;
      this.on.state("reconnecting");
      const wait = Math.min(10_000, 250 * 2 ** Math.min(this.retry, 6)) * (0.5 + Math.random() / 2);
      this.reconnect = window.setTimeout(() => this.connect(), wait);
    };
  }

  private subscribe(): void {
    // The resume goes once the subscription is confirmed: an event committed between the two
    // is then either posted to this connection or in the history the resume reads.
    if (this.episode) this.send({ action: "subscribe", episode_id: this.episode });
  }

  private resume(after: string): void {
    if (this.episode) this.send({ action: "resume", episode_id: this.episode, after });
  }

  private send(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private apply(e: DomainEvent): void {
    if (e.episode_id !== this.episode || this.seen.has(e.id)) return;
    this.seen.add(e.id);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value as string);
    if (!this.from || e.id > this.from) this.from = e.id;
    this.on.event(e);
  }

  private frame(f: Record<string, any>): void {
    switch (f.type) {
      case "subscribed":
        if (f.episode_id !== this.episode) break;
        if (f.round >= this.lastRound) {
          this.lastRound = f.round;
          this.on.presence(f.viewers.length || !f.count ? f.viewers : null, f.count);
        }
        if (this.from) this.resume(firstIdAt(msOf(this.from) - REPLAY_MS));
        break;
      case "presence":
      case "presence.occupancy":
        if (f.episode_id === this.episode && f.round > this.lastRound) {
          this.lastRound = f.round;
          this.on.presence(f.type === "presence" ? f.viewers : null, f.count);
        }
        break;
      case "event":
        this.apply(f.event as DomainEvent);
        break;
      case "resumed": {
        const events = f.events as DomainEvent[];
        for (const e of events) this.apply(e);
        // The next page starts after this one's last event, not after the newest seen.
        if (f.more && f.episode_id === this.episode && events.length) this.resume(events[events.length - 1].id);
        break;
      }
      case "event.ref":
        // Too large for a frame: fetched by a resume from just before it.
        if (f.episode_id === this.episode) this.resume(firstIdAt(msOf(f.event_id) - 1));
        break;
      case "notification":
        this.on.notification(f.notification as Record<string, unknown>);
        break;
      case "error":
        if (f.status === 401) this.ws?.close();
        break;
    }
  }
}
