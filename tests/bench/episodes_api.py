"""Figures for the episodes API (issue: the episodes slice). Prints a table; not a test.

    make bench        # or: .venv/bin/python tests/bench/episodes_api.py

Measures, on this machine:
  * the stripped release binary size of episodes-api (built with the AWS release profile);
  * its init time: process start to its first Runtime API poll, against a minimal Runtime API
    on loopback (median of 20 starts);
  * DynamoDB calls per request for every route, counted by the function's SDK interceptor and
    read back from its log lines (`aws_calls`);
  * p50/p95 latency of create and get over 1,000 requests each through the local stack's API
    Gateway and JWT authorizer, beside the emulator's floor: a direct GetItem, and GET /health
    (the same function through the same API Gateway, no authorizer, no AWS call).
Needs the local stack up (`make up` or `make dev`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

N = int(os.environ.get("BENCH_REQUESTS", "1000"))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def release_binary() -> Path:
    subprocess.run(
        [str(Path(sys.executable).parent / "cargo-lambda"), "lambda", "build", "--release", "--x86-64",
         "--compiler", "cargo", "--lambda-dir", "target/lambda-release", "--bin", "episodes-api"],
        cwd=ROOT, check=True,
    )
    return ROOT / "target" / "lambda-release" / "episodes-api" / "bootstrap"


def init_time_ms(binary: Path, runs: int = 20) -> float:
    first_poll: dict[str, float] = {}
    polled = threading.Event()

    class RuntimeApi(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.endswith("/invocation/next"):
                first_poll.setdefault("t", time.perf_counter())
                polled.set()
                time.sleep(5)  # hold the poll; the process is killed meanwhile

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The deployed function's own configuration (written by stack.py), on a fake Runtime API.
    env_file = ROOT / ".local" / "env" / "episodes-api.env"
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    env.update({
        "PATH": os.environ["PATH"],
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
        "AWS_LAMBDA_FUNCTION_NAME": "episodes-api",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    })
    times = []
    for _ in range(runs):
        first_poll.clear()
        polled.clear()
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not polled.wait(10):
            proc.kill()
            raise SystemExit(f"the function never polled the Runtime API (exit code {proc.wait()})")
        times.append((first_poll["t"] - t0) * 1000)
        proc.kill()
        proc.wait()
    server.shutdown()
    return statistics.median(times)


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    stack = json.loads((ROOT / ".local" / "stack.json").read_text())
    url = stack["http_url"]
    s = requests.Session()
    token = oidc.mint("bench-editor", "editor", "Bench")
    auth = {"Authorization": f"Bearer {token}"}
    ddb = boto3.client("dynamodb", endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    rows: list[tuple[str, str]] = []

    binary = release_binary()
    rows.append(("release binary, stripped (x86_64)", f"{binary.stat().st_size / 2**20:.2f} MiB"))
    zipped = ROOT / "target" / "lambda-release" / "episodes-api" / "bootstrap.zip"
    if not zipped.exists():
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(binary, "bootstrap")
    rows.append(("release zip", f"{zipped.stat().st_size / 2**20:.2f} MiB"))
    rows.append(("init: start → first Runtime API poll (median of 20)", f"{init_time_ms(binary):.2f} ms"))

    # Warm up, then every route once more for the call counts.
    s.get(f"{url}/health")
    since = int(time.time() * 1000)
    created = s.post(f"{url}/episodes", json={"title": "bench"}, headers=auth).json()
    eid = created["id"]
    s.get(f"{url}/episodes/{eid}", headers=auth)
    s.get(f"{url}/episodes?limit=20", headers=auth)
    s.get(f"{url}/episodes?status=draft&limit=20", headers=auth)
    s.patch(f"{url}/episodes/{eid}", json={"title": "bench 2"}, headers={**auth, "If-Match": '"1"'})
    s.patch(f"{url}/episodes/{eid}", json={"title": "stale"}, headers={**auth, "If-Match": '"1"'})
    s.patch(f"{url}/episodes/{eid}", json={"status": "published", "version": 2}, headers=auth)
    s.delete(f"{url}/episodes/{eid}", headers=auth)
    s.get(f"{url}/episodes/{eid}", headers=auth)
    time.sleep(1.0)
    logs = boto3.client("logs", endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                        aws_access_key_id="test", aws_secret_access_key="test")
    group = f"/aws/lambda/{stack['stack_name']}-episodes-api"
    calls: dict[str, list[int]] = defaultdict(list)
    token_seen = False
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since):
        for e in page["events"]:
            token_seen |= token.split(".")[2][:20] in e["message"]
            if '"request handled"' not in e["message"]:
                continue
            f = json.loads(e["message"])["fields"]
            path = f["path"].replace(eid, "{id}")
            calls[f"{f['method']} {path} → {f['status']}"].append(f["aws_calls"])
    for route, counts in sorted(calls.items()):
        rows.append((f"DynamoDB calls: {route}", ", ".join(map(str, counts))))
    rows.append(("token fragments in function logs", "found!" if token_seen else "none"))

    # Latency through the emulated API Gateway (+ JWT authorizer).
    ids: list[str] = []
    create = timed(lambda: ids.append(s.post(f"{url}/episodes", json={"title": "bench"}, headers=auth).json()["id"]), N)
    get = timed(lambda: s.get(f"{url}/episodes/{ids[0]}", headers=auth).raise_for_status(), N)
    health = timed(lambda: s.get(f"{url}/health").raise_for_status(), N)
    table = stack["outputs"]["EpisodesTableName"]
    getitem = timed(lambda: ddb.get_item(TableName=table, Key={"id": {"S": ids[0]}}), N)
    for name, xs in [
        ("POST /episodes (create)", create),
        ("GET /episodes/{id} (get)", get),
        ("floor: GET /health, same API + function, no auth", health),
        ("floor: direct DynamoDB GetItem (boto3)", getitem),
    ]:
        rows.append((f"{name}, p50 / p95 over {N}", f"{pct(xs, 50):.1f} / {pct(xs, 95):.1f} ms"))

    width = max(len(k) for k, _ in rows)
    print(f"\nepisodes-api figures ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
