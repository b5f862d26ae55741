/** The audit log, for admins: the whole activity log, filtered, newest first, in pages. */
import { h, replace, when } from "../dom";
import type { App } from "../main";

interface Entry {
  id: string;
  action: string;
  summary: string;
  actor: { id: string; name: string };
  resource: { type: string; id: string };
  episode_id: string | null;
  occurred_at: string;
}

export async function auditPage(app: App): Promise<void> {
  const field = (id: string, text: string, attrs: Record<string, string> = {}) => {
    const input = h("input", { id, name: id, ...attrs });
    return { input, box: h("div", { class: "grow" }, h("label", { for: id }, text), input) };
  };
  const actor = field("a-actor", "Actor (user id)");
  const action = field("a-action", "Action (e.g. episode.updated)");
  const from = field("a-from", "From", { type: "datetime-local" });
  const to = field("a-to", "To", { type: "datetime-local" });
  const rows = h("tbody");
  const message = h("p", { role: "status", "aria-live": "polite" });
  const more = h("button", { class: "plain", onclick: () => void load(true) }, "More");
  let cursor: string | null = null;

  async function load(append = false): Promise<void> {
    const q = new URLSearchParams({ limit: "50" });
    if (actor.input.value) q.set("actor", actor.input.value);
    if (action.input.value) q.set("action", action.input.value);
    if (from.input.value) q.set("from", new Date(from.input.value).toISOString());
    if (to.input.value) q.set("to", new Date(to.input.value).toISOString());
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
        h("div", { class: "row" }, actor.box, action.box, from.box, to.box, h("button", { type: "submit" }, "Apply"))),
    ),
    h("section", { "aria-labelledby": "log-title" },
      h("h2", { id: "log-title" }, "Entries"),
      h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "When"), h("th", { scope: "col" }, "Who"), h("th", { scope: "col" }, "Action"), h("th", { scope: "col" }, "What"))), rows),
      message, more),
  );
  await load();
}
