/**
 * Production analytics, for editors and admins: episodes per status now, time in each status
 * and publications per week over a period, jobs per type. Bar charts drawn as SVG, each with
 * its figures in a table beside it for screen readers and copying.
 */
import { h, label, replace } from "../dom";
import type { App } from "../main";

interface Durations {
  count: number;
  median_seconds: number | null;
  p90_seconds: number | null;
  p99_seconds: number | null;
}

interface EpisodeAnalytics {
  from: string;
  to: string;
  statuses: { status: string; episodes: number; time_in_status: Durations }[];
  weeks: { week: string; published: number }[];
}

interface JobAnalytics {
  from: string;
  to: string;
  types: { type: string; succeeded: number; failed: number; success_rate: number | null; duration: Durations }[];
}

const SVG = "http://www.w3.org/2000/svg";

function svg(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A horizontal bar chart: one bar per row, its value written at its end. */
function bars(id: string, title: string, rows: { name: string; value: number; text: string }[]): HTMLElement {
  const width = 520, row = 26, left = 130;
  const max = Math.max(1, ...rows.map((r) => r.value));
  const chart = svg("svg", { id, role: "img", "aria-label": title, width, height: rows.length * row + 8, class: "chart" });
  rows.forEach((r, i) => {
    const y = i * row + 4;
    const w = Math.round(((width - left - 90) * r.value) / max);
    chart.append(
      svg("text", { x: 0, y: y + 16, class: "chart-label" }, r.name),
      svg("rect", { x: left, y, width: Math.max(w, r.value > 0 ? 2 : 0), height: row - 8, class: "chart-bar", "data-value": r.value }),
      svg("text", { x: left + w + 6, y: y + 16, class: "chart-value" }, r.text),
    );
  });
  return h("figure", {}, h("figcaption", {}, title), chart as unknown as HTMLElement);
}

function duration(seconds: number | null): string {
  if (seconds === null) return "—";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function day(iso: string): string {
  return iso.slice(0, 10);
}

export async function analyticsPage(app: App): Promise<void> {
  const to = new Date();
  const from = new Date(to.getTime() - 30 * 86_400_000);
  const fromInput = h("input", { id: "an-from", type: "date", value: day(from.toISOString()) });
  const toInput = h("input", { id: "an-to", type: "date", value: day(to.toISOString()) });
  const message = h("p", { role: "status", "aria-live": "polite", id: "analytics-status" });
  const figures = h("div", { id: "analytics" });

  async function load(): Promise<void> {
    message.className = "";
    message.textContent = "Loading…";
    const q = new URLSearchParams();
    // Whole days: from the start of the first to the end of the last.
    if (fromInput.value) q.set("from", new Date(`${fromInput.value}T00:00:00Z`).toISOString());
    if (toInput.value) q.set("to", new Date(new Date(`${toInput.value}T00:00:00Z`).getTime() + 86_400_000).toISOString());
    try {
      const route = app.routeSeq;
      const [episodes, jobs] = await Promise.all([
        app.api.request<EpisodeAnalytics>("GET", `/analytics/episodes?${q}`),
        app.api.request<JobAnalytics>("GET", `/analytics/jobs?${q}`),
      ]);
      if (route !== app.routeSeq) return;
      render(episodes.body, jobs.body);
      message.textContent = `From ${day(episodes.body.from)} to ${day(episodes.body.to)}.`;
      figures.dataset.loaded = "true";
    } catch (e) {
      message.className = "error";
      message.textContent = (e as Error).message;
    }
  }

  function render(e: EpisodeAnalytics, j: JobAnalytics): void {
    const statusRows = e.statuses.map((s) => ({ name: label(s.status), value: s.episodes, text: String(s.episodes) }));
    const stayRows = e.statuses.map((s) => ({
      name: label(s.status),
      value: s.time_in_status.median_seconds ?? 0,
      text: s.time_in_status.count ? `${duration(s.time_in_status.median_seconds)} (p90 ${duration(s.time_in_status.p90_seconds)}, ${s.time_in_status.count} stays)` : "no stays",
    }));
    const weekRows = e.weeks.map((w) => ({ name: `week of ${w.week}`, value: w.published, text: String(w.published) }));
    const jobRows = j.types.map((t) => ({
      name: t.type,
      value: t.success_rate === null ? 0 : Math.round(t.success_rate * 100),
      text: t.success_rate === null ? "no runs" : `${Math.round(t.success_rate * 100)} % of ${t.succeeded + t.failed}`,
    }));
    replace(figures,
      h("section", { "aria-labelledby": "an-status" }, h("h2", { id: "an-status" }, "Episodes per status now"),
        bars("chart-statuses", "Episodes per status", statusRows)),
      h("section", { "aria-labelledby": "an-stays" }, h("h2", { id: "an-stays" }, "Time in each status"),
        bars("chart-stays", "Median time in status (stays that ended in the period)", stayRows)),
      h("section", { "aria-labelledby": "an-weeks" }, h("h2", { id: "an-weeks" }, "Published per week"),
        bars("chart-weeks", "Episodes first published per week", weekRows)),
      h("section", { "aria-labelledby": "an-jobs" }, h("h2", { id: "an-jobs" }, "Jobs"),
        bars("chart-jobs", "Success rate per job type", jobRows),
        h("table", { id: "jobs-table" },
          h("thead", {}, h("tr", {}, ...["Type", "Succeeded", "Failed", "Median", "p90", "p99"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, ...j.types.map((t) => h("tr", {},
            h("td", {}, t.type), h("td", {}, String(t.succeeded)), h("td", {}, String(t.failed)),
            h("td", {}, duration(t.duration.median_seconds)), h("td", {}, duration(t.duration.p90_seconds)),
            h("td", {}, duration(t.duration.p99_seconds)),
          ))),
        )),
    );
  }

  replace(app.main,
    h("h1", {}, "Analytics"),
    h("form", { class: "row", onsubmit: (ev: Event) => { ev.preventDefault(); void load(); } },
      h("div", {}, h("label", { for: "an-from" }, "From"), fromInput),
      h("div", {}, h("label", { for: "an-to" }, "To"), toInput),
      h("button", { type: "submit", id: "an-show" }, "Show"),
    ),
    message,
    figures,
  );
  await load();
}
