/**
 * The audit log, for admins: the whole activity log, filtered, newest first, in pages; and an
 * export of every entry the filters match (JSON Lines and CSV), followed until it ends.
 */
import { h, replace, when } from "../dom";
import type { App } from "../main";

interface Entry {
  id: string;
  action: string;
  summary: string;
  actor: { id: string; name: string };
  resource: { type: string; id: string };
  episode_id?: string;
  occurred_at: string;
}

interface Export {
  id: string;
  state: "queued" | "running" | "succeeded" | "failed";
  entries: number | null;
  error: string | null;
  downloads: { format: "jsonl" | "csv"; url: string; bytes: number }[];
}

export async function auditPage(app: App): Promise<void> {
  const field = (id: string, text: string, attrs: Record<string, string> = {}) => {
    const input = h("input", { id, name: id, ...attrs });
    return { input, box: h("div", { class: "grow" }, h("label", { for: id }, text), input) };
  };
  const episode = field("a-episode", "Episode (id)");
  const actor = field("a-actor", "Actor (user id)");
  const action = field("a-action", "Action (e.g. episode.updated)");
  const from = field("a-from", "From", { type: "datetime-local" });
  const to = field("a-to", "To", { type: "datetime-local" });
  const rows = h("tbody");
  const message = h("p", { role: "status", "aria-live": "polite" });
  const more = h("button", { class: "plain", onclick: () => void load(true) }, "More");
  let cursor: string | null = null;

  /** The filters as `GET /activity` and `POST /activity/exports` name them. */
  function filters(): Record<string, string> {
    const f: Record<string, string> = {};
    if (episode.input.value) f.episode_id = episode.input.value.trim();
    if (actor.input.value) f.actor = actor.input.value.trim();
    if (action.input.value) f.action = action.input.value.trim();
    if (from.input.value) f.from = new Date(from.input.value).toISOString();
    if (to.input.value) f.to = new Date(to.input.value).toISOString();
    return f;
  }

  const exportStatus = h("p", { role: "status", "aria-live": "polite", id: "export-status" });
  const downloads = h("ul", { id: "export-downloads" });
  const exportButton = h("button", { type: "button", id: "export", onclick: () => void startExport() }, "Export these entries");

  async function startExport(): Promise<void> {
    exportButton.setAttribute("disabled", "");
    replace(downloads);
    exportStatus.className = "";
    exportStatus.textContent = "Export queued…";
    try {
      let { body } = await app.api.request<Export>("POST", "/activity/exports", filters());
      // Follow it until it ends (a few seconds for most; a long range takes minutes).
      for (let i = 0; i < 600 && (body.state === "queued" || body.state === "running"); i++) {
        await new Promise((r) => setTimeout(r, 1000));
        body = (await app.api.request<Export>("GET", `/activity/exports/${body.id}`)).body;
        exportStatus.textContent = `Export ${body.state}…`;
      }
      if (body.state === "succeeded") {
        exportStatus.textContent = `Export ready: ${body.entries} entries (links valid for an hour).`;
        replace(downloads, ...body.downloads.map((d) =>
          h("li", {}, h("a", { href: d.url, download: "" }, d.format === "csv" ? "Download CSV" : "Download JSON Lines"),
            " ", h("span", { class: "muted" }, `${d.bytes} bytes`))));
      } else {
        exportStatus.textContent = body.error ?? `Export ${body.state}.`;
        exportStatus.className = body.state === "failed" ? "error" : "";
      }
    } catch (e) {
      exportStatus.textContent = (e as Error).message;
      exportStatus.className = "error";
    } finally {
      exportButton.removeAttribute("disabled");
    }
  }

  async function load(append = false): Promise<void> {
    const q = new URLSearchParams({ limit: "50", ...filters() });
    if (append && cursor) q.set("cursor", cursor);
    try {
      const { body } = await app.api.request<{ items: Entry[]; next_cursor: string | null }>("GET", `/activity?${q}`);
      cursor = body.next_cursor;
      const items = body.items.map((e) => h("tr", {},
        h("td", {}, when(e.occurred_at)),
        h("td", {}, e.actor.name, " ", h("span", { class: "muted" }, e.actor.id)),
        h("td", {}, e.action),
        h("td", {}, e.episode_id ? h("a", { href: `#/episodes/${e.episode_id}` }, e.summary) : e.summary),
      ));
      if (append) rows.append(...items);
      else replace(rows, ...items);
      message.textContent = rows.children.length ? "" : "No entries match.";
      message.className = "";
      more.hidden = !cursor;
    } catch (e) {
      message.textContent = (e as Error).message;
      message.className = "error";
    }
  }

  replace(app.main,
    h("h1", {}, "Audit log"),
    h("section", { "aria-labelledby": "filter-title" },
      h("h2", { id: "filter-title" }, "Filter"),
      h("form", { onsubmit: (ev: Event) => { ev.preventDefault(); void load(); } },
        h("div", { class: "row" }, episode.box, actor.box, action.box, from.box, to.box, h("button", { type: "submit" }, "Apply"))),
    ),
    h("section", { "aria-labelledby": "export-title" },
      h("h2", { id: "export-title" }, "Export"),
      h("p", { class: "muted" }, "Every entry the filters match, as JSON Lines and CSV. You are notified when it is ready."),
      exportButton, exportStatus, downloads),
    h("section", { "aria-labelledby": "log-title" },
      h("h2", { id: "log-title" }, "Entries"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Who"), h("th", { scope: "col" }, "Action"), h("th", { scope: "col" }, "What"))), rows),
      message, more),
  );
  await load();
}
