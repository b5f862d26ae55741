"""The console on loopback: builds console/ (npm ci, then Vite) and serves the build on
http://localhost:5173 (bound to 127.0.0.1) with its configuration, `config.json`, made from the deployed stack.

    python infra/local/console.py build     # npm ci when the lockfile changed, then vite build
    python infra/local/console.py serve     # serve console/dist and /config.json (from .local/stack.json)

`stack.py up` does both. On AWS the same build is published to the console bucket with a
config.json naming the stack's URLs (see the README).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
DIST = CONSOLE / "dist"
STACK_JSON = ROOT / ".local" / "stack.json"
HOST = "127.0.0.1"
PORT = int(os.environ.get("CONSOLE_PORT", "5173"))
# Bound to 127.0.0.1, browsed as localhost: the origin the template's CorsAllowedOrigins allows by
# default (a browser resolves localhost to loopback itself).
URL = f"http://localhost:{PORT}"


def build() -> None:
    lock = CONSOLE / "package-lock.json"
    stamp = CONSOLE / "node_modules" / ".lock-sha256"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CONSOLE, check=True)
        stamp.write_text(digest)
    subprocess.run(["npm", "run", "-s", "build"], cwd=CONSOLE, check=True)


def config(stack: dict) -> dict:
    return {
        "api_url": stack["http_url"],
        "ws_url": stack["ws_url"],
        "issuer": stack["issuer"],
        "client_id": stack["audience"],
        # ministack does not pass the echoed subprotocol on (README, known gaps): the token goes
        # as ?token= locally; on AWS as the subprotocol.
        "ws_token": "query",
    }


def csp(stack: dict) -> str:
    c = config(stack)
    origin = lambda url: "{0}://{1}".format(*urlsplit(url)[:2])  # noqa: E731
    connect = " ".join(dict.fromkeys(["'self'"] + [origin(u) for u in (c["api_url"], c["ws_url"], c["issuer"], stack["aws_endpoint"])]))
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")


class Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?")[0] == "/config.json":
            body = json.dumps(config(json.loads(STACK_JSON.read_text()))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def end_headers(self) -> None:
        # The security headers the template's ConsoleHeaders policy makes CloudFront send on AWS,
        # the CSP naming this stack's endpoints (no inline script; the token lives in memory, so
        # what may run and where it may connect is the guard).
        self.send_header("Content-Security-Policy", csp(json.loads(STACK_JSON.read_text())))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "strict-origin-when-cross-origin")
        super().end_headers()

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("console: " + (fmt % args) + "\n")


def serve() -> None:
    server = ThreadingHTTPServer((HOST, PORT), partial(Handler, directory=str(DIST)))
    print(f"console on {URL}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["build", "serve"])
    args = p.parse_args()
    build() if args.command == "build" else serve()


if __name__ == "__main__":
    main()
