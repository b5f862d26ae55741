"""A small OIDC issuer on loopback that stands in for Cognito in the local stack.

It keeps one RSA signing key under .local/oidc/, serves the discovery document and the JWKS that
API Gateway's JWT authorizer fetches, and mints RS256 tokens for any user and role:

    python infra/local/oidc.py serve                  # http://127.0.0.1:4580
    python infra/local/oidc.py token --user alice --role editor

Tokens carry iss, aud, sub, name, cognito:groups (the role, as a one-group list: the claim the
functions read by default, as Cognito puts a user's groups in it), iat, nbf, exp, and a kid
that names the key.

For the console it is also an authorization server, local only: an OAuth 2.0 authorization-code
flow with PKCE (S256 only), as Cognito's hosted UI serves it on AWS. `GET /authorize` shows a
page to choose a user id, a display name and a role (no password: anyone on this machine may be
anyone); submitting it redirects to the client's `redirect_uri` (one of CONSOLE_ORIGINS) with a
one-time code valid for 60 s; `POST /token` exchanges the code and its `code_verifier` for an
ID token (also given as the access token), which the console sends to the APIs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import os
import re
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parents[2]
KEY_PATH = Path(os.environ.get("OIDC_KEY_PATH", ROOT / ".local" / "oidc" / "signing-key.pem"))
HOST = "127.0.0.1"
PORT = int(os.environ.get("OIDC_PORT", "4580"))
ISSUER = os.environ.get("OIDC_ISSUER", f"http://{HOST}:{PORT}")
AUDIENCE = os.environ.get("OIDC_AUDIENCE", "episodes-api")
ROLES = ("viewer", "editor", "admin")
# The browser origins allowed to sign in here (the console's), and where the codes may go.
CONSOLE_ORIGINS = tuple(
    o.strip() for o in os.environ.get("CONSOLE_ORIGINS", "http://localhost:5173,http://127.0.0.1:5173").split(",") if o.strip()
)
CODE_SECONDS = 60
USER_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_key(path: Path = KEY_PATH) -> rsa.RSAPrivateKey:
    """The issuer's signing key, created on first use and kept (0600) for later runs."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = generate_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def public_jwk(key: rsa.RSAPrivateKey) -> dict:
    numbers = key.public_key().public_numbers()
    jwk = {"e": b64url(_int_bytes(numbers.e)), "kty": "RSA", "n": b64url(_int_bytes(numbers.n))}
    # RFC 7638 thumbprint as the key id: stable for the key, different for any other.
    kid = b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()).digest())[:16]
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def sign(claims: dict, key: rsa.RSAPrivateKey, kid: str | None = None) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid or public_jwk(key)["kid"]}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def claims_for(
    user: str,
    role: str = "viewer",
    name: str | None = None,
    ttl: int = 3600,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
) -> dict:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": user,
        "name": name or user.capitalize(),
        "cognito:groups": [role],
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl,
    }


def mint(user: str, role: str = "viewer", name: str | None = None, ttl: int = 3600, **overrides) -> str:
    """A valid token from this issuer; `overrides` replace or add claims (for negative tests)."""
    claims = {**claims_for(user, role, name, ttl), **overrides}
    return sign(claims, load_key())


def discovery() -> dict:
    return {
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/.well-known/jwks.json",
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "subject_types_supported": ["public"],
    }


def redirect_allowed(uri: str) -> bool:
    """Only the console's own callback, exactly: `<origin>/` of a console origin (compared as
    given, so no control character, path or query can ride along into a Location header)."""
    return uri in {f"{o}/" for o in CONSOLE_ORIGINS}


LOOPBACK_HOSTS = {f"{h}:{PORT}" for h in ("127.0.0.1", "localhost", "[::1]")}


class Codes:
    """One-time authorization codes, in memory: code -> what the token request must match."""

    def __init__(self):
        self._lock = threading.Lock()
        self._codes: dict[str, dict] = {}

    def issue(self, grant: dict) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = time.time()
            self._codes = {k: v for k, v in self._codes.items() if v["expires"] > now}
            self._codes[code] = {**grant, "expires": now + CODE_SECONDS}
        return code

    def take(self, code: str) -> dict | None:
        with self._lock:
            grant = self._codes.pop(code, None)
        return grant if grant and grant["expires"] > time.time() else None


AUTHORIZE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · local issuer</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}}
main{{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}}
h1{{font-size:1.4rem;margin-top:0}} label{{display:block;margin:.8rem 0 .2rem;font-weight:600}}
input,select{{width:100%;padding:.5rem;font:inherit;border:1px solid #767c89;border-radius:4px;box-sizing:border-box}}
button{{margin-top:1.2rem;padding:.6rem 1.2rem;font:inherit;background:#1f5bd8;color:#fff;border:0;border-radius:4px}}
p.note{{color:#4a5060;font-size:.9rem}}
</style></head><body><main>
<h1>Sign in to the episodes console</h1>
<p class="note">The local stack's issuer: choose who you are. No password; local only.</p>
<form method="post" action="/authorize">
<label for="user">User id</label><input id="user" name="user" required pattern="[A-Za-z0-9._@\\-]{{1,64}}" value="alice" autocomplete="username">
<label for="name">Display name</label><input id="name" name="name" required maxlength="80" value="Alice">
<label for="role">Role</label><select id="role" name="role">{roles}</select>
{hidden}
<button type="submit">Sign in</button>
</form></main></body></html>
"""


AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "code_challenge",
                    "code_challenge_method", "scope", "nonce")


class Handler(BaseHTTPRequestHandler):
    server_version = "local-oidc/1"

    def _from_loopback_name(self) -> bool:
        """A request naming another host (DNS rebinding: a page of some site whose name now
        points at 127.0.0.1) gets nothing: this issuer mints any user's tokens."""
        if self.headers.get("Host") in LOOPBACK_HOSTS:
            return True
        self._json(421, {"error": "misdirected", "error_description": "call this issuer by its loopback address"})
        return False

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._from_loopback_name():
            return
        path, _, query = self.path.partition("?")
        if path == "/.well-known/openid-configuration":
            self._json(200, discovery())
        elif path == "/.well-known/jwks.json":
            self._json(200, {"keys": [public_jwk(self.server.key)]})  # type: ignore[attr-defined]
        elif path == "/health":
            self._json(200, {"status": "ok"})
        elif path == "/authorize":
            self._authorize_page({k: v[0] for k, v in parse_qs(query).items()})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._from_loopback_name():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 16_384:
            return self._json(413, {"error": "invalid_request", "error_description": "too large"})
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        if self.path == "/authorize":
            self._authorize(form)
        elif self.path == "/token":
            self._token(form)
        else:
            self._json(404, {"error": "not found"})

    def do_OPTIONS(self) -> None:  # noqa: N802 (a preflight of the token request)
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Access-Control-Allow-Headers", "content-type")
        self.end_headers()

    def _check(self, p: dict) -> str | None:
        """Why an authorization request is refused (None: it is fine)."""
        if p.get("response_type") != "code":
            return "response_type must be code"
        if p.get("client_id") != AUDIENCE:
            return "unknown client_id"
        if not redirect_allowed(p.get("redirect_uri", "")):
            return "redirect_uri is not a registered console origin"
        if p.get("code_challenge_method") != "S256" or not re.fullmatch(r"[A-Za-z0-9_-]{43}", p.get("code_challenge", "")):
            return "PKCE with S256 is required"
        return None

    def _refuse(self, why: str) -> None:
        self._html(400, f"<!doctype html><html lang=en><title>Refused</title><main><h1>Sign-in refused</h1><p>{html.escape(why)}</p></main></html>")

    def _authorize_page(self, p: dict) -> None:
        why = self._check(p)
        if why:
            return self._refuse(why)
        hidden = "".join(f'<input type="hidden" name="{k}" value="{html.escape(p[k], quote=True)}">'
                         for k in AUTHORIZE_PARAMS if k in p)
        roles = "".join(f'<option value="{r}"{" selected" if r == "editor" else ""}>{r}</option>' for r in ROLES)
        self._html(200, AUTHORIZE_PAGE.format(roles=roles, hidden=hidden))

    def _authorize(self, form: dict) -> None:
        why = self._check(form)
        user, name, role = form.get("user", ""), form.get("name", "").strip(), form.get("role", "")
        if not why and (not USER_ID.fullmatch(user) or role not in ROLES or not name or len(name) > 80):
            why = "a user id (letters, digits, . _ @ -), a display name and a role are needed"
        if why:
            return self._refuse(why)
        code = self.server.codes.issue({  # type: ignore[attr-defined]
            "user": user, "name": name, "role": role, "client_id": form["client_id"],
            "redirect_uri": form["redirect_uri"], "challenge": form["code_challenge"], "nonce": form.get("nonce"),
        })
        query = {"code": code} | ({"state": form["state"]} if "state" in form else {})
        self.send_response(302)
        self.send_header("Location", form["redirect_uri"] + ("&" if "?" in form["redirect_uri"] else "?") + urlencode(query))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _token(self, form: dict) -> None:
        def refuse(error: str, detail: str) -> None:
            self._json(400, {"error": error, "error_description": detail}, cors=True)

        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type", "only authorization_code")
        grant = self.server.codes.take(form.get("code", ""))  # type: ignore[attr-defined]
        if not grant:
            return refuse("invalid_grant", "unknown, used or expired code")
        if form.get("client_id") != grant["client_id"] or form.get("redirect_uri") != grant["redirect_uri"]:
            return refuse("invalid_grant", "client_id or redirect_uri differ from the authorization request")
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest()) != grant["challenge"]:
            return refuse("invalid_grant", "code_verifier does not match the code_challenge")
        claims = claims_for(grant["user"], grant["role"], grant["name"])
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        token = sign(claims, self.server.key)  # type: ignore[attr-defined]
        self._json(200, {"id_token": token, "access_token": token, "token_type": "Bearer",
                         "expires_in": claims["exp"] - claims["iat"]}, cors=True)

    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin in CONSOLE_ORIGINS:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    def _html(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                                                    "form-action 'self' " + " ".join(CONSOLE_ORIGINS))
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, body: dict, cors: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store" if cors else "max-age=300")
        if cors:
            self._cors()
        else:
            # Discovery and keys are public documents, read by browsers too (as Cognito's are).
            self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("oidc: " + (fmt % args) + "\n")


def serve() -> None:
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.key = load_key()  # type: ignore[attr-defined]
    server.codes = Codes()  # type: ignore[attr-defined]
    print(f"oidc issuer on {ISSUER}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve discovery and JWKS on loopback")
    token = sub.add_parser("token", help="print a signed token")
    token.add_argument("--user", required=True)
    token.add_argument("--role", choices=ROLES, default="viewer")
    token.add_argument("--name")
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    args = parser.parse_args()
    if args.command == "serve":
        serve()
    else:
        print(mint(args.user, args.role, args.name, args.ttl))


if __name__ == "__main__":
    main()
