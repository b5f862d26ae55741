"""Figures for the files API. Prints a table; not a test. Needs the local stack up.

For BENCH_FILES (200) small files, each through its whole life — create (presigned PUT), the
PUT to S3 (not the API), complete, get, list, download (presigned GET), delete — the p50 / p95
latency of every route through the local API Gateway and JWT authorizer, and the AWS calls each
route made (DynamoDB, S3 and SQS, counted by the function's SDK interceptor and read back from
its `request handled` log lines; presigning makes no call).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

N = int(os.environ.get("BENCH_FILES", "200"))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    stack = json.loads((ROOT / ".local" / "stack.json").read_text())
    url = stack["http_url"]
    s = requests.Session()
    auth = {"Authorization": f"Bearer {oidc.mint('bench-files-' + uuid.uuid4().hex[:4], 'editor', 'Bench')}"}
    eid = s.post(f"{url}/episodes", json={"title": "files bench"}, headers=auth).json()["id"]
    data = b"x" * 4096
    times: dict[str, list[float]] = defaultdict(list)

    def timed(route, call):
        t = time.perf_counter()
        r = call()
        times[route].append((time.perf_counter() - t) * 1000)
        if r.status_code >= 300:
            raise SystemExit(f"{route}: {r.status_code} {r.text}")
        return r

    since = int(time.time() * 1000)
    for _ in range(N):
        body = {"name": "take.wav", "content_type": "audio/wav", "size": len(data)}
        created = timed("POST /episodes/{id}/files", lambda: s.post(f"{url}/episodes/{eid}/files", json=body, headers=auth)).json()
        fid, up = created["file"]["id"], created["upload"]
        timed("(PUT to S3, presigned)", lambda: s.put(up["url"], data=data, headers=up["headers"]))
        timed("POST /files/{id}/complete", lambda: s.post(f"{url}/files/{fid}/complete", headers=auth))
        timed("GET /files/{id}", lambda: s.get(f"{url}/files/{fid}", headers=auth))
        timed("GET /episodes/{id}/files", lambda: s.get(f"{url}/episodes/{eid}/files?limit=20", headers=auth))
        timed("GET /files/{id}/download", lambda: s.get(f"{url}/files/{fid}/download", headers=auth))
        timed("DELETE /files/{id}", lambda: s.delete(f"{url}/files/{fid}", headers=auth))
    health: list[float] = []
    for _ in range(N):
        t = time.perf_counter()
        s.get(f"{url}/health")
        health.append((time.perf_counter() - t) * 1000)

    time.sleep(2)
    logs = boto3.client("logs", endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                        aws_access_key_id="test", aws_secret_access_key="test")
    calls: dict[str, list[int]] = defaultdict(list)
    group = f"/aws/lambda/{stack['stack_name']}-files-api"
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since):
        for e in page["events"]:
            if '"request handled"' not in e["message"]:
                continue
            f = json.loads(e["message"])["fields"]
            parts = f["path"].strip("/").split("/")
            route = "/".join("{id}" if len(p) == 36 else p for p in parts)
            calls[f"{f['method']} /{route}"].append(f["aws_calls"])

    print(f"\nfiles API figures ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {N} files)")
    print(f"  {'route':<32} {'p50 ms':>8} {'p95 ms':>8}   AWS calls per request")
    for route, xs in times.items():
        c = calls.get(route)
        calls_text = "" if c is None else f"{statistics.median(c):g} (min {min(c)}, max {max(c)})"
        print(f"  {route:<32} {pct(xs, 50):>8.1f} {pct(xs, 95):>8.1f}   {calls_text}")
    print(f"  {'floor: GET /health (no authorizer, no AWS call)':<32} {pct(health, 50):>8.1f} {pct(health, 95):>8.1f}")


if __name__ == "__main__":
    main()
