/** Sign-in: the OAuth 2.0 authorization-code flow with PKCE (S256) against the issuer named in
 * the configuration (the local issuer, or Cognito's hosted UI), found by OIDC discovery.
 *
 * The token lives in memory only. What survives the redirect to the issuer and back (the PKCE
 * verifier, the state, where to return) is kept in sessionStorage for that one round trip and
 * removed when it comes back. At expiry the user is sent to sign in again. */
import type { Config } from "./config";

export interface Session {
  token: string;
  user: string;
  name: string;
  role: "viewer" | "editor" | "admin";
  expires: number; // ms since the epoch
}

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

const PENDING = "console.signin";

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n: number): string {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function challenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return b64url(new Uint8Array(digest));
}

async function discover(issuer: string): Promise<Discovery> {
  const r = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!r.ok) throw new Error(`the issuer's discovery document: ${r.status}`);
  return (await r.json()) as Discovery;
}

function redirectUri(): string {
  return `${location.origin}/`;
}

/** The claims of a JWT, unverified: the APIs verify it; the console only shows who it is. */
function claims(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

function roleOf(c: Record<string, unknown>): Session["role"] {
  const groups = Array.isArray(c["cognito:groups"]) ? (c["cognito:groups"] as unknown[]) : [];
  if (groups.includes("admin")) return "admin";
  if (groups.includes("editor")) return "editor";
  return "viewer";
}

export function sessionFrom(token: string): Session {
  const c = claims(token);
  const user = String(c.sub ?? "");
  return {
    token,
    user,
    name: String(c.name ?? c.preferred_username ?? c.email ?? user),
    role: roleOf(c),
    expires: Number(c.exp ?? 0) * 1000,
  };
}

/** Sends the browser to the issuer's sign-in page; comes back to `redirectUri()`. */
export async function signIn(config: Config): Promise<never> {
  const d = await discover(config.issuer);
  const verifier = random(32);
  const state = random(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: location.hash || "#/episodes" }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope ?? "openid",
    state,
    code_challenge: await challenge(verifier),
    code_challenge_method: "S256",
  });
  location.assign(`${d.authorization_endpoint}?${q}`);
  return new Promise<never>(() => {});
}

/** Back from the issuer with `?code=…&state=…`: exchanges the code for a token. None when this
 * page load is not such a return. */
export async function completeSignIn(config: Config): Promise<Session | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (!code) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null") as
    | { verifier: string; state: string; back: string }
    | null;
  sessionStorage.removeItem(PENDING);
  // The code leaves the address bar (and the history) whatever happens next.
  history.replaceState(null, "", `/${pending?.back ?? "#/episodes"}`);
  if (!pending || params.get("state") !== pending.state) throw new Error("the sign-in came back with another state");
  const d = await discover(config.issuer);
  const r = await fetch(d.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: config.client_id,
      code_verifier: pending.verifier,
    }),
  });
  const body = (await r.json()) as { id_token?: string; error_description?: string };
  if (!r.ok || !body.id_token) throw new Error(`sign-in failed: ${body.error_description ?? r.status}`);
  return sessionFrom(body.id_token);
}
