/** The HTTP API, with the session's token. Errors are the API's RFC 9457 problems. */
import type { Config } from "./config";
import type { Session } from "./auth";

export type Status = "draft" | "in_production" | "in_review" | "published" | "archived";

export const STATUSES: Status[] = ["draft", "in_production", "in_review", "published", "archived"];

/** The legal moves, as `domain::EpisodeStatus::can_move_to` has them. */
export const MOVES: Record<Status, Status[]> = {
  draft: ["in_production"],
  in_production: ["in_review"],
  in_review: ["published", "in_production"],
  published: ["archived"],
  archived: [],
};

export interface UserRef {
  id: string;
  name: string;
}

export interface Episode {
  id: string;
  title: string;
  description: string;
  series: string | null;
  season: number | null;
  number: number | null;
  air_date: string | null;
  status: Status;
  version: number;
  created_at: string;
  created_by: UserRef;
  updated_at: string;
  updated_by: UserRef;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail || title);
  }
}

export class Api {
  constructor(
    private readonly config: Config,
    private readonly session: () => Session,
    private readonly expired: () => void,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ body: T; etag: string | null }> {
    const s = this.session();
    if (Date.now() >= s.expires) {
      this.expired();
      throw new Problem(401, "Signed out", "your sign-in has expired");
    }
    const r = await fetch(this.config.api_url + path, {
      method,
      headers: {
        Authorization: `Bearer ${s.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (r.status === 401) this.expired();
    const text = await r.text();
    const parsed = text ? JSON.parse(text) : null;
    if (!r.ok) {
      throw new Problem(r.status, parsed?.title ?? r.statusText, parsed?.detail ?? "");
    }
    return { body: parsed as T, etag: r.headers.get("ETag") };
  }

  /** The list, or with `search` a search (`q`): ranked by fields matched, then newest. */
  list(status: Status | "", cursor: string | null, limit = 20, search = ""): Promise<{ body: Page<Episode> }> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (search.trim()) q.set("q", search.trim());
    if (status) q.set("status", status);
    if (cursor) q.set("cursor", cursor);
    return this.request("GET", `/episodes?${q}`);
  }

  get(id: string) {
    return this.request<Episode>("GET", `/episodes/${encodeURIComponent(id)}`);
  }

  create(fields: Partial<Episode>) {
    return this.request<Episode>("POST", "/episodes", fields);
  }

  /** A change from the version edited: 412 when someone else changed it meanwhile. */
  patch(id: string, version: number, changes: Partial<Episode>) {
    return this.request<null>("PATCH", `/episodes/${encodeURIComponent(id)}`, changes, { "If-Match": `"${version}"` });
  }

  remove(id: string, version: number) {
    return this.request<null>("DELETE", `/episodes/${encodeURIComponent(id)}`, undefined, { "If-Match": `"${version}"` });
  }
}
