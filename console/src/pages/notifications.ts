/** The bell's page: the user's notifications, newest first; read one, read all; what to mute. */
import { h, replace, when } from "../dom";
import type { App } from "../main";

interface Notification {
  id: string;
  type: string;
  summary: string;
  episode_id: string;
  created_at: string;
  read: boolean;
}

/** The event types a person can be notified of (`domain::notification`'s rules). */
const TYPES: [string, string][] = [
  ["episode.updated", "Status changes of episodes I watch"],
  ["episode.deleted", "Deletion of episodes I watch"],
  ["job.failed", "Failures of jobs I started"],
];

export async function notificationsPage(app: App): Promise<void> {
  const list = h("ul", { class: "feed", "aria-label": "Notifications" });
  const message = h("p", { role: "status", "aria-live": "polite" });
  const unreadOnly = h("input", { type: "checkbox", id: "unread-only", onchange: () => void load() });
  const more = h("button", { class: "plain", onclick: () => void load(true) }, "More");
  let cursor: string | null = null;

  async function load(append = false): Promise<void> {
    const q = new URLSearchParams({ limit: "20" });
    if (unreadOnly.checked) q.set("unread", "true");
    if (append && cursor) q.set("cursor", cursor);
    const route = app.routeSeq;
    const { body } = await app.api.request<{ items: Notification[]; next_cursor: string | null }>("GET", `/me/notifications?${q}`);
    if (route !== app.routeSeq) return;
    cursor = body.next_cursor;
    const items = body.items.map(item);
    if (append) list.append(...items);
    else replace(list, ...items);
    message.textContent = list.children.length ? "" : "Nothing here.";
    more.hidden = !cursor;
  }

  function item(n: Notification): HTMLLIElement {
    const read = h("button", { class: "plain", onclick: async () => {
      await app.api.request("POST", `/me/notifications/${n.id}/read`);
      li.classList.add("read");
      li.querySelector("strong")?.remove();
      link.focus();
      read.remove();
      await app.refreshBell();
    } }, "Mark read");
    const link = h("a", { href: `#/episodes/${n.episode_id}` }, n.summary);
    const li = h("li", { class: n.read ? "read" : "unread" },
      n.read ? null : h("strong", {}, "New: "),
      link, " ",
      h("span", { class: "muted" }, when(n.created_at)), " ",
      n.read ? null : read,
    );
    return li;
  }

  const readAll = h("button", { onclick: async () => {
    // At most 1,000 a call: again while the API says there are more.
    for (let i = 0; i < 100; i++) {
      const { body } = await app.api.request<{ marked: number; more: boolean }>("POST", "/me/notifications/read-all");
      if (!body.more) break;
    }
    await app.refreshBell();
    await load();
  } }, "Mark all read");

  const prefs = h("fieldset", {}, h("legend", {}, "Notify me of"));
  const saved = h("p", { role: "status", "aria-live": "polite" });
  const route = app.routeSeq;
  const { body: current } = await app.api.request<{ muted_event_types: string[] }>("GET", "/me/notification-preferences");
  if (route !== app.routeSeq) return;
  for (const [type, text] of TYPES) {
    const id = `pref-${type.replace(".", "-")}`;
    const box = h("input", { type: "checkbox", id, checked: !current.muted_event_types.includes(type), onchange: async () => {
      const muted = TYPES.filter(([t]) => !(document.getElementById(`pref-${t.replace(".", "-")}`) as HTMLInputElement).checked).map(([t]) => t);
      await app.api.request("PUT", "/me/notification-preferences", { muted_event_types: muted });
      saved.textContent = "Preferences saved.";
    } });
    prefs.append(h("div", { class: "check" }, box, h("label", { for: id }, text)));
  }

  app.onNotification = () => void load();
  replace(app.main,
    h("h1", {}, "Notifications"),
    h("section", { "aria-labelledby": "inbox-title" },
      h("h2", { id: "inbox-title" }, "Inbox"),
      h("div", { class: "row" }, h("div", { class: "check" }, unreadOnly, h("label", { for: "unread-only" }, "Unread only")), readAll),
      list, message, more),
    h("section", { "aria-labelledby": "prefs-title" }, h("h2", { id: "prefs-title" }, "Preferences"), prefs, saved),
  );
  await load();
}
