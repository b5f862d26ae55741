/** Live updates: one WebSocket for the page, subscribed to the episode on screen.
 *
 * Events carry UUIDv7 ids that grow with each change; the connection keeps the last one applied
 * per episode, drops any frame at or below it, and after a reconnect sends `resume` with it, so
 * a network drop loses no event. Presence frames carry a round number; one not above the last
 * applied is dropped. */
import type { Config } from "./config";
import type { Session } from "./auth";

export interface Viewer {
  id: string;
  name: string;
  since: string;
  last_seen: string;
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

export class Live {
  private ws: WebSocket | null = null;
  private episode: string | null = null;
  private lastEvent: string | null = null;
  private lastRound = -1;
  private retry = 0;
  private pinger: number | undefined;
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly session: () => Session,
    private readonly on: Handlers,
  ) {}

  /** Follows one episode (the one on screen); `after` is the last event already shown. */
  follow(episode: string, after: string | null): void {
    if (this.episode && this.episode !== episode) this.send({ action: "unsubscribe", episode_id: this.episode });
    this.episode = episode;
    this.lastEvent = after;
    this.lastRound = -1;
    if (!this.ws) this.connect();
    else if (this.ws.readyState === WebSocket.OPEN) this.subscribe();
  }

  /** Connects without following an episode: notifications still arrive. */
  start(): void {
    if (!this.ws) this.connect();
  }

  stop(): void {
    if (this.episode) this.send({ action: "unsubscribe", episode_id: this.episode });
    this.episode = null;
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }

  private connect(): void {
    const token = this.session().token;
    this.on.state(this.retry ? "reconnecting" : "connecting");
    const ws =
      this.config.ws_token === "query"
        ? new WebSocket(`${this.config.ws_url}?token=${encodeURIComponent(token)}`)
        : new WebSocket(this.config.ws_url, ["episodes.v1", `bearer.${token}`]);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      this.on.state("live");
      this.subscribe();
      clearInterval(this.pinger);
      this.pinger = window.setInterval(() => this.send({ action: "ping" }), PING_MS);
    };
    ws.onmessage = (m) => this.frame(JSON.parse(String(m.data)));
    ws.onclose = () => {
      clearInterval(this.pinger);
      this.ws = null;
      if (this.closed) return;
      this.retry += 1;
      this.on.state("reconnecting");
      const wait = Math.min(10_000, 250 * 2 ** Math.min(this.retry, 6)) * (0.5 + Math.random() / 2);
      window.setTimeout(() => this.connect(), wait);
    };
  }

  private subscribe(): void {
    if (!this.episode) return;
    this.send({ action: "subscribe", episode_id: this.episode });
    if (this.lastEvent) this.send({ action: "resume", episode_id: this.episode, after: this.lastEvent });
  }

  private send(message: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private apply(e: DomainEvent): void {
    if (e.episode_id !== this.episode) return;
    if (this.lastEvent && e.id <= this.lastEvent) return;
    this.lastEvent = e.id;
    this.on.event(e);
  }

  private frame(f: Record<string, any>): void {
    switch (f.type) {
      case "subscribed":
        if (f.episode_id === this.episode && f.round >= this.lastRound) {
          this.lastRound = f.round;
          this.on.presence(f.viewers.length || !f.count ? f.viewers : null, f.count);
        }
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
      case "resumed":
        for (const e of f.events as DomainEvent[]) this.apply(e);
        if (f.more && this.episode === f.episode_id && this.lastEvent) {
          this.send({ action: "resume", episode_id: this.episode, after: this.lastEvent });
        }
        break;
      case "event.ref":
        // Too large for a frame: ask for it (and anything after the last applied) by resume.
        if (this.episode === f.episode_id && this.lastEvent) {
          this.send({ action: "resume", episode_id: this.episode, after: this.lastEvent });
        }
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
