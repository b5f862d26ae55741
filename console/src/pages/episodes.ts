/**
 * The episodes list: newest first, a status filter, pages, and a create form for editors; a
 * search box (type-ahead: words of the title, series and description) ranks the matches.
 */
import { Problem, STATUSES, type Episode, type Status } from "../api";
import { h, label, replace, when } from "../dom";
import type { App } from "../main";

export async function episodesPage(app: App): Promise<void> {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const status = (params.get("status") ?? "") as Status | "";
  let cursors: (string | null)[] = [null];
  let at = 0;
  let timer: number | undefined;
  const search = h("input", {
    id: "search", type: "search", value: params.get("q") ?? "", maxlength: "200", placeholder: "Words of the title, series or description",
    oninput: () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(() => {
        cursors = [null];
        at = 0;
        // Bookmarkable, without a hashchange that would draw the page again.
        const q = new URLSearchParams();
        if (status) q.set("status", status);
        if (search.value.trim()) q.set("q", search.value.trim());
        history.replaceState(null, "", `#/episodes${q.size ? `?${q}` : ""}`);
        void load();
      }, 250);
    },
  });

  const rows = h("tbody");
  const message = h("p", { role: "status", "aria-live": "polite" });
  const prev = h("button", { class: "plain", onclick: () => { at -= 1; void load(); } }, "Previous page");
  const next = h("button", { class: "plain", onclick: () => { at += 1; void load(); } }, "Next page");
  const filter = h("select", { id: "status-filter", onchange: () => {
    const q = new URLSearchParams();
    if (filter.value) q.set("status", filter.value);
    if (search.value.trim()) q.set("q", search.value.trim());
    location.hash = q.size ? `#/episodes?${q}` : "#/episodes";
  } },
    h("option", { value: "" }, "Every status"),
    ...STATUSES.map((s) => h("option", { value: s, selected: s === status }, label(s))),
  );

  async function load(): Promise<void> {
    message.textContent = "Loading…";
    try {
      const route = app.routeSeq;
      const words = search.value.trim();
      const { body } = await app.api.list(status, cursors[at], 20, words);
      if (route !== app.routeSeq || words !== search.value.trim()) return;
      cursors[at + 1] = body.next_cursor;
      replace(rows, ...body.items.map(row));
      rows.dataset.loaded = `${status || "every"}:${at}${words ? `:${words}` : ""}`;
      message.className = "";
      message.textContent = body.items.length ? "" : words ? "No episode has these words." : "No episodes yet.";
      prev.disabled = at === 0;
      next.disabled = !body.next_cursor;
    } catch (e) {
      message.textContent = (e as Error).message;
      message.className = "error";
    }
  }

  function row(e: Episode): HTMLTableRowElement {
    return h("tr", {},
      h("td", {}, h("a", { href: `#/episodes/${e.id}` }, e.title)),
      h("td", {}, h("span", { class: "status" }, label(e.status))),
      h("td", {}, e.series ?? ""),
      h("td", {}, when(e.updated_at), " by ", e.updated_by.name),
    );
  }

  const create = app.session.role === "viewer" ? null : createForm(app);
  replace(app.main,
    h("h1", {}, "Episodes"),
    create,
    h("section", { "aria-labelledby": "list-title" },
      h("h2", { id: "list-title" }, "Newest first"),
      h("div", { class: "row" },
        h("div", { class: "grow" }, h("label", { for: "search" }, "Search"), search),
        h("div", {}, h("label", { for: "status-filter" }, "Status"), filter)),
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Title"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Series"), h("th", { scope: "col" }, "Last change"))),
        rows,
      ),
      message,
      h("div", { class: "row" }, prev, next),
    ),
  );
  await load();
}

function createForm(app: App): HTMLElement {
  const title = h("input", { id: "new-title", name: "title", required: true, maxlength: "200" });
  const series = h("input", { id: "new-series", name: "series", maxlength: "200" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", {
    onsubmit: async (ev: Event) => {
      ev.preventDefault();
      error.textContent = "";
      try {
        const { body } = await app.api.create({ title: title.value, ...(series.value ? { series: series.value } : {}) });
        location.hash = `#/episodes/${body.id}`;
      } catch (e) {
        error.textContent = e instanceof Problem ? `${e.title}: ${e.detail}` : (e as Error).message;
      }
    },
  },
    h("div", { class: "row" },
      h("div", { class: "grow" }, h("label", { for: "new-title" }, "Title"), title),
      h("div", { class: "grow" }, h("label", { for: "new-series" }, "Series (optional)"), series),
      h("button", { type: "submit" }, "Create episode"),
    ),
    error,
  );
  return h("section", { "aria-labelledby": "create-title" }, h("h2", { id: "create-title" }, "New episode"), form);
}
