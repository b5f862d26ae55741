/** An episode's files (upload with progress, straight to S3 by the presigned URLs, multipart for
 * big files; download; delete) and its jobs (start one on a file, progress that moves live,
 * cancel, retry). */
import { Problem } from "../api";
import { h, label, replace } from "../dom";
import type { App } from "../main";

interface EpisodeFile {
  id: string;
  name: string;
  size: number;
  content_type: string;
  status: "pending" | "available";
  created_at: string;
  uploaded_by: { id: string; name: string };
}

type Upload =
  | { kind: "single"; method: string; url: string; headers: Record<string, string>; complete: string }
  | { kind: "multipart"; part_size: number; parts: { number: number; url: string }[]; complete: string };

interface Job {
  id: string;
  type: string;
  file_id: string;
  state: string;
  progress: number;
  attempts: number;
  cancel_requested: boolean;
  error: { message?: string } | string | null;
  created_at: string;
}

/** Headers a browser sets itself and refuses to be given. */
const FORBIDDEN = new Set(["content-length", "host"]);

function put(url: string, body: Blob, headers: Record<string, string>, progress: (sent: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [k, v] of Object.entries(headers)) if (!FORBIDDEN.has(k.toLowerCase())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => progress(e.loaded);
    xhr.onload = () => (xhr.status < 300 ? resolve() : reject(new Error(`the upload was refused (${xhr.status})`)));
    xhr.onerror = () => reject(new Error("the upload failed (network)"));
    xhr.send(body);
  });
}

export function filesAndJobs(app: App, episode: string): { section: HTMLElement; changed: (type: string) => void } {
  const canEdit = app.session.role !== "viewer";
  const files = h("tbody");
  const jobs = h("tbody");
  const message = h("p", { role: "status", "aria-live": "polite" });
  const bar = h("progress", { max: "100", value: "0", id: "upload-progress", "aria-label": "Upload progress", hidden: true });
  const chooser = h("input", { type: "file", id: "file-input" });
  let known: EpisodeFile[] = [];

  async function loadFiles(): Promise<void> {
    const { body } = await app.api.request<{ items: EpisodeFile[] }>("GET", `/episodes/${episode}/files?limit=100`);
    known = body.items;
    replace(files, ...known.map(fileRow));
    if (!known.length) replace(files, h("tr", {}, h("td", { colspan: "4", class: "muted" }, "No files yet.")));
  }

  async function loadJobs(): Promise<void> {
    const { body } = await app.api.request<{ items: Job[] }>("GET", `/episodes/${episode}/jobs?limit=100`);
    replace(jobs, ...body.items.map(jobRow));
    if (!body.items.length) replace(jobs, h("tr", {}, h("td", { colspan: "4", class: "muted" }, "No jobs yet.")));
  }

  function fileRow(f: EpisodeFile): HTMLTableRowElement {
    const actions = h("td", {});
    if (f.status === "available") {
      actions.append(h("button", { class: "plain", onclick: () => void attempt(async () => {
        const { body } = await app.api.request<{ url: string }>("GET", `/files/${f.id}/download`);
        const a = h("a", { href: body.url, download: f.name });
        document.body.append(a);
        a.click();
        a.remove();
      }) }, `Download ${f.name}`));
      if (canEdit) {
        actions.append(" ", h("button", { class: "plain", onclick: () => void start(f, "checksum") }, `Checksum ${f.name}`));
      }
    }
    if (canEdit) {
      actions.append(" ", h("button", { class: "plain", onclick: () => void attempt(async () => {
        await app.api.request("DELETE", `/files/${f.id}`);
        await loadFiles();
        message.textContent = `${f.name} deleted.`;
      }) }, `Delete ${f.name}`));
    }
    return h("tr", {}, h("td", {}, f.name), h("td", {}, `${(f.size / 1024).toFixed(1)} KB`), h("td", {}, label(f.status)), actions);
  }

  function jobRow(j: Job): HTMLTableRowElement {
    const file = known.find((f) => f.id === j.file_id)?.name ?? j.file_id;
    const actions = h("td", {});
    if (canEdit && ["queued", "retrying", "running"].includes(j.state) && !j.cancel_requested) {
      actions.append(h("button", { class: "plain", onclick: () => void act(j, "cancel") }, "Cancel"));
    }
    if (canEdit && ["failed", "cancelled"].includes(j.state)) {
      actions.append(h("button", { class: "plain", onclick: () => void act(j, "retry") }, "Retry"));
    }
    const error = j.error ? (typeof j.error === "string" ? j.error : j.error.message ?? "") : "";
    return h("tr", { "data-job": j.id },
      h("td", {}, `${j.type} of ${file}`),
      h("td", {}, h("progress", { max: "100", value: String(j.progress), "aria-label": `${j.type} of ${file}: progress` }), ` ${j.progress} %`),
      h("td", { class: "job-state" }, label(j.state), j.cancel_requested && j.state === "running" ? " (cancel requested)" : "", error ? ` (${error})` : ""),
      actions,
    );
  }

  async function attempt(what: () => Promise<void>): Promise<void> {
    try {
      await what();
    } catch (e) {
      message.textContent = e instanceof Problem ? `${e.title}: ${e.detail}` : (e as Error).message;
    }
  }

  async function start(f: EpisodeFile, type: string): Promise<void> {
    try {
      await app.api.request("POST", `/episodes/${episode}/jobs`, { type, file_id: f.id }, { "Idempotency-Key": crypto.randomUUID() });
      await loadJobs();
    } catch (e) {
      message.textContent = (e as Error).message;
    }
  }

  async function act(j: Job, what: "cancel" | "retry"): Promise<void> {
    try {
      await app.api.request("POST", `/jobs/${j.id}/${what}`);
    } catch (e) {
      message.textContent = e instanceof Problem ? e.detail || e.title : (e as Error).message;
    }
    await loadJobs();
  }

  async function upload(file: File): Promise<void> {
    message.textContent = "";
    bar.hidden = false;
    bar.value = 0;
    try {
      const { body } = await app.api.request<{ file: EpisodeFile; upload: Upload }>("POST", `/episodes/${episode}/files`, {
        name: file.name,
        content_type: file.type || "application/octet-stream",
        size: file.size,
      });
      const u = body.upload;
      const shown = (sent: number) => { bar.value = Math.round((100 * sent) / Math.max(1, file.size)); };
      if (u.kind === "single") {
        await put(u.url, file, u.headers, shown);
      } else {
        let done = 0;
        for (const part of u.parts) {
          const slice = file.slice((part.number - 1) * u.part_size, part.number * u.part_size);
          await put(part.url, slice, {}, (sent) => shown(done + sent));
          done += slice.size;
        }
      }
      bar.value = 100;
      await app.api.request("POST", u.complete);
      message.textContent = `${file.name} uploaded.`;
      await loadFiles();
    } catch (e) {
      message.textContent = e instanceof Problem ? `${e.title}: ${e.detail}` : (e as Error).message;
    }
  }

  const section = h("section", { "aria-labelledby": "files-title" },
    h("h2", { id: "files-title" }, "Files"),
    canEdit ? h("form", { onsubmit: (ev: Event) => { ev.preventDefault(); const f = chooser.files?.[0]; if (f) void upload(f); } },
      h("div", { class: "row" }, h("div", { class: "grow" }, h("label", { for: "file-input" }, "Upload a file"), chooser), h("button", { type: "submit" }, "Upload")),
      bar) : null,
    message,
    h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Size"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Actions"))), files),
    h("h2", { id: "jobs-title" }, "Jobs"),
    h("table", { "aria-labelledby": "jobs-title" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Job"), h("th", { scope: "col" }, "Progress"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Actions"))), jobs),
  );
  void loadFiles().then(loadJobs);
  return {
    section,
    changed: (type: string) => {
      if (type.startsWith("file.")) void loadFiles();
      if (type.startsWith("job.")) void loadJobs();
    },
  };
}

