/** The console: sign-in, then a hash router over the pages. */
import "./style.css";
import { Api } from "./api";
import { completeSignIn, signIn, type Session } from "./auth";
import { loadConfig, type Config } from "./config";
import { h, replace } from "./dom";
import { Live, type DomainEvent, type Viewer } from "./live";
import { episodePage } from "./pages/episode";
import { episodesPage } from "./pages/episodes";
import { analyticsPage } from "./pages/analytics";
import { auditPage } from "./pages/audit";
import { notificationsPage } from "./pages/notifications";

export interface App {
  config: Config;
  session: Session;
  api: Api;
  live: Live;
  main: HTMLElement;
  /** Set by the page on screen: what to do with live frames. */
  onEvent: ((e: DomainEvent) => void) | null;
  onPresence: ((viewers: Viewer[] | null, count: number) => void) | null;
  onNotification: (() => void) | null;
  /** Grows with each navigation: a page that awaited checks it is still the one on screen. */
  routeSeq: number;
  /** Reads the exact unread and unseen counts again (after a notification, a read, read all). */
  refreshBell: () => Promise<void>;
}

async function start(): Promise<void> {
  const main = document.getElementById("main") as HTMLElement;
  const status = document.getElementById("status") as HTMLElement;
  let config: Config;
  try {
    config = await loadConfig();
  } catch (e) {
    replace(main, h("p", { class: "error" }, `The console is not configured: ${(e as Error).message}`));
    return;
  }
  let session: Session | null = null;
  try {
    session = await completeSignIn(config);
  } catch (e) {
    replace(main, h("p", { class: "error" }, (e as Error).message), h("button", { onclick: () => signIn(config) }, "Sign in again"));
    return;
  }
  if (!session) {
    await signIn(config);
    return;
  }
  const current = session;
  const expired = () => void signIn(config);
  // At expiry, back to the issuer (a token is never renewed silently from storage: there is
  // none); two minutes before, a warning, so that nobody loses a form they are filling in.
  window.setTimeout(expired, Math.max(0, current.expires - Date.now() - 5_000));
  window.setTimeout(() => {
    status.textContent = "Your sign-in ends in 2 minutes: save your changes.";
    status.className = "conn down";
  }, Math.max(0, current.expires - Date.now() - 120_000));
  const app: App = {
    config,
    session: current,
    api: new Api(config, () => current, expired),
    live: null as unknown as Live,
    main,
    onEvent: null,
    onPresence: null,
    onNotification: null,
    routeSeq: 0,
    refreshBell: async () => {},
  };
  const bell = h("a", { href: "#/notifications", class: "bell", id: "bell" }, "Notifications");
  const refreshBell = async () => {
    try {
      const { body } = await app.api.request<{ unread: number; unseen: number }>("GET", "/me/notifications/unread-count");
      // Unseen: unread ones the bell's page has not shown yet (new, or grown since).
      bell.textContent = `Notifications (${body.unread} unread${body.unseen ? ` · ${body.unseen} new` : ""})`;
      bell.dataset.unread = String(body.unread);
      bell.dataset.unseen = String(body.unseen);
    } catch {
      // The count is read again at the next notification or action.
    }
  };
  app.refreshBell = refreshBell;
  app.live = new Live(config, () => current, {
    event: (e) => app.onEvent?.(e),
    notification: () => {
      void refreshBell();
      app.onNotification?.();
    },
    presence: (v, c) => app.onPresence?.(v, c),
    state: (s) => {
      status.textContent = s === "live" ? "Live" : s === "connecting" ? "Connecting…" : "Reconnecting…";
      status.className = s === "reconnecting" ? "conn down" : "conn";
    },
  });
  replace(
    document.getElementById("who") as HTMLElement,
    bell,
    " ",
    current.role === "admin" ? h("a", { href: "#/activity" }, "Audit log") : null,
    " ",
    current.role === "viewer" ? null : h("a", { href: "#/analytics", id: "analytics-link" }, "Analytics"),
    " ",
    `${current.name} (${current.role}) `,
    // Cognito keeps a session of its own: its logout endpoint (config `logout_url`) ends it.
    h("button", { class: "plain", onclick: () => { if (config.logout_url) location.assign(config.logout_url); else { location.hash = ""; location.reload(); } } }, "Sign out"),
  );

  const route = () => {
    app.routeSeq += 1;
    document.title = "Episodes console";
    app.onEvent = null;
    app.onPresence = null;
    app.onNotification = null;
    const m = location.hash.match(/^#\/episodes\/([0-9a-f-]{36})$/);
    if (m) {
      void episodePage(app, m[1]);
    } else {
      app.live.stop();
      if (location.hash.startsWith("#/notifications")) void notificationsPage(app);
      else if (location.hash.startsWith("#/activity") && current.role === "admin") void auditPage(app);
      else if (location.hash.startsWith("#/analytics") && current.role !== "viewer") void analyticsPage(app);
      else void episodesPage(app);
    }
    main.focus();
  };
  window.addEventListener("hashchange", route);
  app.live.start();
  void refreshBell();
  route();
}

void start();
