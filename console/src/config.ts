/** What the console is pointed at: written next to the build (`config.json`) by whoever serves it
 * — locally from the deployed stack, on AWS when publishing. */
export interface Config {
  api_url: string;
  ws_url: string;
  issuer: string;
  client_id: string;
  /** How the WebSocket carries the token: "subprotocol" (AWS), or "query" where the emulator
   * does not pass the echoed subprotocol on (ministack; see the README's known gaps). */
  ws_token: "subprotocol" | "query";
  /** OAuth scopes asked for (Cognito's hosted UI wants "openid"; the local issuer takes any). */
  scope?: string;
  /** Where "Sign out" goes: Cognito's `/logout?client_id=…&logout_uri=…` (it keeps a session of
   * its own). None: the page forgets the token and signs in again. */
  logout_url?: string;
}

export async function loadConfig(): Promise<Config> {
  const r = await fetch("/config.json", { cache: "no-store" });
  if (!r.ok) throw new Error(`config.json: ${r.status}`);
  const c = (await r.json()) as Config;
  for (const k of ["api_url", "ws_url", "issuer", "client_id"] as const) {
    if (typeof c[k] !== "string" || !c[k]) throw new Error(`config.json lacks ${k}`);
  }
  return c;
}
