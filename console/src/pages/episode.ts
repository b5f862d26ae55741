/** One episode: edit it (a conflict shows what changed meanwhile and offers to re-apply), move
 * its status (only the legal moves), delete it; who is here now; its live activity. */
import { MOVES, Problem, type Episode } from "../api";
import { h, initials, label, replace, when } from "../dom";
import { firstIdAt, type DomainEvent, type Viewer } from "../live";
import type { App } from "../main";
import { filesAndJobs } from "./files";

interface Entry {
  id: string;
  summary: string;
  occurred_at: string;
}

type Editable = Pick<Episode, "title" | "description" | "series">;
const FIELDS: (keyof Editable)[] = ["title", "description", "series"];

export async function episodePage(app: App, id: string): Promise<void> {
  const route = app.routeSeq;
  let episode: Episode;
  try {
    episode = (await app.api.get(id)).body;
  } catch (e) {
    if (route !== app.routeSeq) return;
    replace(app.main, h("h1", {}, "Episode"), h("p", { class: "error" }, e instanceof Problem && e.status === 404 ? "This episode does not exist (or was deleted)." : (e as Error).message), h("a", { href: "#/episodes" }, "Back to the episodes"));
    return;
  }
  const canEdit = app.session.role !== "viewer";
  const heading = h("h1", {}, episode.title);
  const meta = h("p", { class: "muted" });
  const inputs = {
    title: h("input", { id: "f-title", required: true, maxlength: "200", disabled: !canEdit }),
    description: h("textarea", { id: "f-description", disabled: !canEdit }),
    series: h("input", { id: "f-series", maxlength: "200", disabled: !canEdit }),
  };
  const conflict = h("div", { role: "alert" });
  const saved = h("p", { role: "status", "aria-live": "polite", tabindex: "-1" });
  const moves = h("div", { class: "row", role: "group", "aria-label": "Move the status" });
  const here = h("ul", { class: "avatars", "aria-label": "Here now" });
  const hereCount = h("span", { class: "muted" });
  const feed = h("ol", { class: "feed", reversed: true });
  const danger = h("div");

  const value = (f: keyof Editable): string | null => {
    const v = inputs[f].value;
    return f === "series" && v === "" ? null : v;
  };
  const mine = (): Partial<Editable> => {
    const changes: Partial<Editable> = {};
    for (const f of FIELDS) if (value(f) !== (episode[f] ?? null)) (changes as Record<string, unknown>)[f] = value(f);
    return changes;
  };
  /** Shows `next` (the stored episode): a field the user has not touched takes its value, one
   * they are editing keeps what they typed. */
  const fill = (next: Episode = episode) => {
    // A field someone else changed while the user was editing it: say so (their typing is kept,
    // and saving it would replace the other change).
    const typed = (f: keyof Editable) => inputs[f].value;
    const clashes = FIELDS.filter((f) => next !== episode && typed(f) !== (episode[f] ?? "")
      && (next[f] ?? "") !== (episode[f] ?? "") && typed(f) !== (next[f] ?? ""));
    if (clashes.length) {
      replace(conflict, h("div", { class: "notice" }, h("h2", {}, "Changed meanwhile"),
        h("p", {}, `${next.updated_by.name} changed ${clashes.join(", ")} while you were editing: `,
          clashes.map((f) => `${f} “${next[f] ?? ""}”`).join(", "), ". Saving keeps your text instead.")));
    }
    for (const f of FIELDS) {
      if (inputs[f].value === (episode[f] ?? "") || next === episode) inputs[f].value = next[f] ?? "";
    }
    episode = next;
    heading.textContent = episode.title;
    document.title = `${episode.title} · Episodes`;
    replace(meta, h("span", { class: "status" }, label(episode.status)), ` · version ${episode.version} · last changed ${when(episode.updated_at)} by ${episode.updated_by.name}`);
    replace(moves, ...(canEdit ? MOVES[episode.status].map((to) => h("button", { class: "plain", onclick: () => void move(to) }, `Move to ${label(to)}`)) : []));
  };

  async function reload(): Promise<void> {
    fill((await app.api.get(id)).body);
  }

  async function save(changes: Partial<Editable>, version: number): Promise<void> {
    replace(conflict);
    saved.textContent = "";
    try {
      await app.api.patch(id, version, changes);
      episode = (await app.api.get(id)).body;
      fill();
      saved.textContent = "Saved.";
    } catch (e) {
      if (e instanceof Problem && (e.status === 412 || e.status === 409)) {
        const theirs = (await app.api.get(id)).body;
        showConflict(changes, theirs);
      } else {
        saved.textContent = (e as Error).message;
      }
    }
  }

  function showConflict(changes: Partial<Editable>, theirs: Episode): void {
    const changed = FIELDS.filter((f) => (theirs[f] ?? null) !== (episode[f] ?? null));
    replace(conflict, h("div", { class: "notice" },
      h("h2", {}, "Changed meanwhile"),
      h("p", {}, `${theirs.updated_by.name} saved version ${theirs.version} while you were editing.`),
      h("ul", {}, ...changed.map((f) => h("li", {}, `${f}: “${theirs[f] ?? ""}” (was “${episode[f] ?? ""}”)`)), changed.length ? null : h("li", {}, "the status or other fields")),
      h("p", {}, "Your changes: ", Object.entries(changes).map(([k, v]) => `${k} “${v ?? ""}”`).join(", ")),
      h("div", { class: "row" },
        h("button", { onclick: () => { episode = theirs; void save(changes, theirs.version).then(() => saved.focus()); } }, "Re-apply my changes"),
        h("button", { class: "plain", onclick: () => { episode = theirs; fill(); replace(conflict); saved.textContent = "Their version is shown."; saved.focus(); } }, "Discard mine"),
      ),
    ));
  }

  async function move(to: Episode["status"]): Promise<void> {
    try {
      await app.api.patch(id, episode.version, { status: to } as Partial<Episode>);
      saved.textContent = `Moved to ${label(to)}.`;
    } catch (e) {
      saved.textContent = e instanceof Problem && e.status === 412 ? "Someone changed it meanwhile: shown as it is now." : (e as Error).message;
    }
    await reload();
    (moves.querySelector("button") as HTMLButtonElement | null ?? saved).focus();
  }

  /** The feed, newest first by event id, whatever order entries come in. */
  const addEntry = (e: Entry) => {
    const li = h("li", { "data-id": e.id }, e.summary, " ", h("span", { class: "muted" }, when(e.occurred_at)));
    const older = Array.from(feed.children).find((c) => ((c as HTMLElement).dataset.id ?? "") < e.id);
    feed.insertBefore(li, older ?? null);
  };

  // Who else is editing which field: a note beside it.
  const editingNotes = Object.fromEntries(FIELDS.map((f) => [f, h("span", { class: "muted editing", id: `editing-${f}`, "aria-live": "polite" })])) as Record<keyof Editable, HTMLElement>;
  const showHere = (viewers: Viewer[] | null, count: number) => {
    replace(here, ...(viewers ?? []).map((v) => h("li", { title: v.name }, h("span", { class: "avatar", "aria-hidden": "true" }, initials(v.name)), v.name,
      v.editing && v.id !== app.session.user ? h("span", { class: "muted" }, ` (editing ${v.editing.replace(/_/g, " ")})`) : null)));
    hereCount.textContent = `${count} ${count === 1 ? "person" : "people"} here`;
    for (const f of FIELDS) {
      const others = (viewers ?? []).filter((v) => v.editing === f && v.id !== app.session.user).map((v) => v.name);
      editingNotes[f].textContent = others.length ? `${others.join(", ")} ${others.length === 1 ? "is" : "are"} editing this` : "";
    }
  };
  if (canEdit) {
    for (const f of FIELDS) {
      const say = () => app.live.editing(f);
      inputs[f].addEventListener("focus", say);
      inputs[f].addEventListener("input", say);
      inputs[f].addEventListener("blur", () => app.live.editing(null));
    }
  }

  if (canEdit) {
    const ask = (): void => {
      const start = h("button", { class: "plain", onclick: () => {
        const confirm = h("button", { class: "danger", onclick: async () => {
          try {
            await app.api.remove(id, episode.version);
            location.hash = "#/episodes";
          } catch (e) {
            saved.textContent = (e as Error).message;
          }
        } }, "Delete for good");
        replace(danger, h("p", {}, "Delete this episode? Its files and jobs go with it."), h("div", { class: "row" }, confirm, h("button", { class: "plain", onclick: ask }, "Keep it")));
        confirm.focus();
      } }, "Delete episode");
      replace(danger, start);
    };
    ask();
  }

  const attached = filesAndJobs(app, id);
  const watching = h("p", { role: "status", "aria-live": "polite" });
  const watchAs = (method: "PUT" | "DELETE", told: string) => async () => {
    try {
      await app.api.request(method, `/episodes/${id}/watch`);
      watching.textContent = told;
    } catch (e) {
      watching.textContent = (e as Error).message;
    }
  };
  const watch = h("div", { class: "row" },
    h("button", { class: "plain", onclick: watchAs("PUT", "You watch this episode: you are notified of its status changes.") }, "Watch"),
    h("button", { class: "plain", onclick: watchAs("DELETE", "You no longer watch this episode.") }, "Unwatch"),
  );

  // The newest entries of the activity log first: the feed starts with them, and live events
  // follow from the newest (the log is written a moment after each event, so the resume
  // replays what it does not have yet).
  let entries: Entry[] = [];
  try {
    entries = (await app.api.request<{ items: Entry[] }>("GET", `/episodes/${id}/activity?limit=10`)).body.items;
  } catch {
    // The feed is a convenience; the page works without it.
  }
  if (route !== app.routeSeq) return;
  fill();
  replace(app.main,
    h("p", {}, h("a", { href: "#/episodes" }, "← All episodes")),
    heading,
    meta,
    h("section", { "aria-labelledby": "here-title" }, h("h2", { id: "here-title" }, "Here now"), hereCount, here),
    h("section", { "aria-labelledby": "edit-title" },
      h("h2", { id: "edit-title" }, "Details"),
      h("form", { onsubmit: (ev: Event) => { ev.preventDefault(); const c = mine(); if (Object.keys(c).length) void save(c, episode.version); else saved.textContent = "Nothing to save."; } },
        h("label", { for: "f-title" }, "Title"), inputs.title, editingNotes.title,
        h("label", { for: "f-description" }, "Description"), inputs.description, editingNotes.description,
        h("label", { for: "f-series" }, "Series"), inputs.series, editingNotes.series,
        canEdit ? h("div", { class: "row" }, h("button", { type: "submit" }, "Save")) : null,
      ),
      saved,
      conflict,
      moves,
    ),
    h("section", { "aria-labelledby": "watch-title" }, h("h2", { id: "watch-title" }, "Watch"), watch, watching),
    attached.section,
    h("section", { "aria-labelledby": "feed-title" }, h("h2", { id: "feed-title" }, "Activity"), feed),
    canEdit ? h("section", { "aria-labelledby": "danger-title" }, h("h2", { id: "danger-title" }, "Delete"), danger) : null,
  );

  for (const e of entries) addEntry(e);
  app.onPresence = showHere;
  app.onEvent = (e: DomainEvent) => {
    addEntry({ id: e.id, summary: summarize(e), occurred_at: e.occurred_at });
    attached.changed(e.type);
    if (e.type === "episode.deleted") {
      replace(conflict, h("p", { class: "notice" }, `${e.actor.name} deleted this episode.`));
      return;
    }
    if (e.type.startsWith("episode.")) {
      // While the user edits, the form keeps the version they started from: saving then meets
      // the change (412) and shows it, rather than quietly writing over it.
      if (Object.keys(mine()).length > 0) {
        saved.textContent = `${e.actor.name} changed this episode meanwhile; saving will show you what changed.`;
      } else {
        void reload();
      }
    }
  };
  app.live.follow(id, entries[0]?.id ?? firstIdAt(new Date(episode.created_at).getTime() - 1), entries.map((e) => e.id));
}

function summarize(e: DomainEvent): string {
  const who = e.actor.name;
  switch (e.type) {
    case "episode.updated": {
      const changes = (e.data.changes ?? {}) as Record<string, unknown>;
      if ("status" in changes) return `${who} moved it to ${label(String(changes.status))}`;
      return `${who} changed ${Object.keys(changes).join(", ")}`;
    }
    case "episode.created":
      return `${who} created it`;
    case "episode.deleted":
      return `${who} deleted it`;
    case "file.uploaded":
    case "file.deleted":
    case "file.downloaded": {
      const file = (e.data.file ?? {}) as { name?: string };
      return `${who} ${e.type.slice(5)} ${file.name ?? "a file"}`;
    }
    default:
      return e.type.startsWith("job.") ? `${label(e.type.slice(4))}: a job (${who})` : `${who}: ${e.type}`;
  }
}
