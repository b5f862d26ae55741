"""A small OIDC issuer on loopback that stands in for Cognito in the local stack.

It keeps one RSA signing key under .local/oidc/, serves the discovery document and the JWKS that
API Gateway's JWT authorizer fetches, and mints RS256 tokens for any user and role:

    python infra/local/oidc.py serve                  # http://127.0.0.1:4580
    python infra/local/oidc.py token --user alice --role editor

Tokens carry iss, aud, sub, name, cognito:groups (the role, as a one-group list: the claim the
functions read by default, as Cognito puts a user's groups in it), iat, nbf, exp, and a kid
that names the key.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parents[2]
KEY_PATH = Path(os.environ.get("OIDC_KEY_PATH", ROOT / ".local" / "oidc" / "signing-key.pem"))
HOST = "127.0.0.1"
PORT = int(os.environ.get("OIDC_PORT", "4580"))
ISSUER = os.environ.get("OIDC_ISSUER", f"http://{HOST}:{PORT}")
AUDIENCE = os.environ.get("OIDC_AUDIENCE", "episodes-api")
ROLES = ("viewer", "editor", "admin")


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
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "local-oidc/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/.well-known/openid-configuration":
            self._json(200, discovery())
        elif self.path == "/.well-known/jwks.json":
            self._json(200, {"keys": [public_jwk(self.server.key)]})  # type: ignore[attr-defined]
        elif self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=300")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("oidc: " + (fmt % args) + "\n")


def serve() -> None:
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.key = load_key()  # type: ignore[attr-defined]
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
