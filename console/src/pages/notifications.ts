/**
 * The bell's page: the user's notifications, newest first, by state; what it shows is marked
 * seen; read one, read all, archive and unarchive; what to mute. A notification may count
 * several changes (one episode, one kind, one actor, within the batching window).
 */
import { h, replace, when } from "../dom";
import type { App } from "../main";

interface Change {
  event_id: string;
  at: string;
  summary: string;
}

interface Notification {
  id: string;
  type: string;
  summary: string;
  /** None for one about the log itself (an export). */
  episode_id?: string;
  /** An export's download, valid for an hour. */
  link: string | null;
  created_at: string;
  updated_at: string;
  count: number;
  changes: Change[];
  seen: boolean;
  read: boolean;
  archived: boolean;
}

/** The event types a person can be notified of (`domain::notification`'s rules). */
const TYPES: [string, string][] = [
  ["episode.updated", "Status changes of episodes I watch"],
  ["episode.deleted", "Deletion of episodes I watch"],
  ["job.failed", "Failures of jobs I started"],
  ["activity.exported", "Exports of the audit log I asked for (admins)"],
];

/** The list's states (`GET /me/notifications?state=`). */
const STATES: [string, string][] = [
  ["inbox", "Inbox"],
  ["unread", "Unread"],
  ["unseen", "New"],
  ["read", "Read"],
  ["archived", "Archived"],
  ["all", "All"],
];

export async function notificationsPage(app: App): Promise<void> {
  const list = h("ul", { class: "feed", "aria-label": "Notifications" });
  const message = h("p", { role: "status", "aria-live": "polite" });
  const state = h("select", { id: "state", onchange: () => void load() },
    ...STATES.map(([value, text]) => h("option", { value }, text)));
  const more = h("button", { class: "plain", onclick: () => void load(true) }, "More");
  let cursor: string | null = null;

  async function load(append = false): Promise<void> {
    const q = new URLSearchParams({ limit: "20", state: state.value });
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
    // What the page showed is seen (still unread): the bell's "new" goes down.
    const shown = body.items.filter((n) => !n.seen).map((n) => n.id);
    if (shown.length) {
      await app.api.request("POST", "/me/notifications/seen", { ids: shown });
      await app.refreshBell();
    }
  }

  function item(n: Notification): HTMLLIElement {
    const act = (path: string, after: () => void) => h("button", { class: "plain", onclick: async () => {
      await app.api.request("POST", `/me/notifications/${n.id}/${path}`);
      after();
      await app.refreshBell();
    } }, path === "read" ? "Mark read" : path === "archive" ? "Archive" : "Unarchive");
    const read = act("read", () => {
      li.classList.replace("unread", "read");
      li.querySelector("strong")?.remove();
      link.focus();
      read.remove();
    });
    const archive = act(n.archived ? "unarchive" : "archive", () => {
      if (state.value === "all") void load();
      else li.remove();
      link.focus();
    });
    // Where it leads: an export's download, else its episode.
    const link = n.link
      ? h("a", { href: n.link, download: "" }, n.summary)
      : n.episode_id
        ? h("a", { href: `#/episodes/${n.episode_id}` }, n.summary)
        : h("span", { tabindex: "-1" }, n.summary);
    const changes = n.count > 1
      ? h("details", {}, h("summary", {}, `${n.count} changes`),
        h("ol", {}, ...n.changes.map((c) => h("li", {}, c.summary, " ", h("span", { class: "muted" }, when(c.at))))))
      : null;
    const li = h("li", { class: n.read ? "read" : "unread", "data-id": n.id },
      n.read ? null : h("strong", {}, "New: "),
      link, " ",
      h("span", { class: "muted" }, when(n.updated_at)), " ",
      n.read ? null : read, " ",
      archive,
      changes,
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
      h("div", { class: "row" }, h("div", { class: "check" }, h("label", { for: "state" }, "Show "), state), readAll),
      list, message, more),
    h("section", { "aria-labelledby": "prefs-title" }, h("h2", { id: "prefs-title" }, "Preferences"), prefs, saved),
  );
  await load();
}
