"""Figures for the event pipeline (issue: domain events to SQS, activity log, notifications).
Prints a table; not a test. Needs the local stack up (`make up` or `make dev`).

  * events per second from the events table through relay → SQS → activity worker, for
    BENCH_EVENTS (10,000) `episode.created` events written straight into the outbox table;
  * DynamoDB calls per worker batch, from the workers' own `batch handled` log lines;
  * delay from an episode write (the API's 201) to its activity entry, p50/p95 over
    BENCH_DELAY_SAMPLES (100) creates through the HTTP API.
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

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from pipeline_live import write_outbox  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000"))
SAMPLES = int(os.environ.get("BENCH_DELAY_SAMPLES", "100"))
EPISODES = 10


def v7(ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if ms is None else ms
    h = f"{ms:012x}" + "7" + os.urandom(2).hex()[:3] + "8" + os.urandom(8).hex()[:15]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    stack = json.loads((ROOT / ".local" / "stack.json").read_text())
    out = stack["outputs"]
    kw = dict(endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
              aws_access_key_id="test", aws_secret_access_key="test")
    ddb = boto3.client("dynamodb", **kw)
    logs = boto3.client("logs", **kw)
    golden = json.loads((ROOT / "events" / "domain" / "episode.created.json").read_text())
    rows = []

    # ---- throughput
    episodes = [v7() for _ in range(EPISODES)]
    items = []
    for i in range(EVENTS):
        ep = episodes[i % EPISODES]
        e = json.loads(json.dumps(golden))
        e["id"], e["episode_id"], e["resource"]["id"] = v7(), ep, ep
        e["data"]["episode"]["id"] = ep
        items.append({"PutRequest": {"Item": {
            "episode_id": {"S": ep}, "event_id": {"S": e["id"]}, "type": {"S": e["type"]},
            "occurred_at": {"S": e["occurred_at"]}, "payload": {"S": json.dumps(e)},
            "expires_at": {"N": str(int(time.time()) + 86400)}}}})
    since = int(time.time() * 1000)
    t0 = time.perf_counter()

    write_outbox(kw, out["EventsTableName"], items)
    written = time.perf_counter() - t0

    def activity_count():
        total = 0
        for ep in episodes:
            kwargs = dict(TableName=out["ActivityTableName"], KeyConditionExpression="episode_id = :e",
                          ExpressionAttributeValues={":e": {"S": ep}}, Select="COUNT")
            while True:
                r = ddb.query(**kwargs)
                total += r["Count"]
                if "LastEvaluatedKey" not in r:
                    break
                kwargs["ExclusiveStartKey"] = r["LastEvaluatedKey"]
        return total

    deadline = time.monotonic() + 900
    count = 0
    while time.monotonic() < deadline:
        count = activity_count()
        if count >= EVENTS:
            break
        time.sleep(1)
    elapsed = time.perf_counter() - t0
    rows.append((f"{EVENTS} events written to the outbox table", f"{written:.1f} s ({EVENTS / written:.0f} events/s)"))
    rows.append((f"outbox → relay → SQS → activity worker, {count} entries", f"{elapsed:.1f} s → {count / elapsed:.0f} events/s"))

    # ---- a realistic batch: status changes of episodes with a watcher each. The workers'
    # event sources are paused while the events pile up, so they arrive as full batches.
    lam = boto3.client("lambda", **kw)
    mappings = [m["UUID"] for w in ("activity-worker", "notification-worker")
                for m in lam.list_event_source_mappings(FunctionName=f"{stack['stack_name']}-{w}")["EventSourceMappings"]]
    http = requests.Session()
    editor = {"Authorization": f"Bearer {oidc.mint('bench-ed-' + uuid.uuid4().hex[:4], 'editor', 'Ed')}"}
    watcher = {"Authorization": f"Bearer {oidc.mint('bench-w-' + uuid.uuid4().hex[:4], 'viewer', 'Wes')}"}
    ids = [http.post(f"{stack['http_url']}/episodes", json={"title": "batch", "season": 1, "number": i + 1},
                     headers=editor).json()["id"] for i in range(10)]
    for i in ids:
        http.put(f"{stack['http_url']}/episodes/{i}/watch", headers=watcher)
    time.sleep(3)
    mixed_since = int(time.time() * 1000)
    for u in mappings:
        lam.update_event_source_mapping(UUID=u, Enabled=False)
    time.sleep(2)
    for i in ids:
        http.patch(f"{stack['http_url']}/episodes/{i}", json={"status": "in_production", "version": 1}, headers=editor)
    time.sleep(3)
    for u in mappings:
        lam.update_event_source_mapping(UUID=u, Enabled=True)
    time.sleep(6)

    # ---- calls per batch, from the workers' logs
    time.sleep(2)
    for label, start, end in [("created events", since, mixed_since), ("status changes, 1 watcher each", mixed_since, None)]:
        for worker in ("activity-worker", "notification-worker"):
            per_size = defaultdict(list)
            group = f"/aws/lambda/{stack['stack_name']}-{worker}"
            for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=start):
                for e in page["events"]:
                    if end and e["timestamp"] >= end:
                        continue
                    if '"batch handled"' in e["message"]:
                        f = json.loads(e["message"])["fields"]
                        per_size[f["messages"]].append(f["dynamodb_calls"])
            for size in sorted(per_size, reverse=True)[:1]:
                calls = per_size[size]
                rows.append((f"{worker}, {label}: DynamoDB calls per {size}-message batch ({len(calls)} batches)",
                             f"min {min(calls)}, median {statistics.median(calls)}, max {max(calls)}"))

    # ---- write → activity delay
    s = requests.Session()
    token = oidc.mint("bench-" + uuid.uuid4().hex[:4], "editor", "Bench")
    url = stack["http_url"]
    delays = []
    for _ in range(SAMPLES):
        r = s.post(f"{url}/episodes", json={"title": "delay"}, headers={"Authorization": f"Bearer {token}"})
        done = time.perf_counter()
        eid = r.json()["id"]
        while True:
            q = ddb.query(TableName=out["ActivityTableName"], KeyConditionExpression="episode_id = :e",
                          ExpressionAttributeValues={":e": {"S": eid}}, Select="COUNT")
            if q["Count"]:
                delays.append((time.perf_counter() - done) * 1000)
                break
            if time.perf_counter() - done > 30:
                raise SystemExit("an activity entry took over 30 s")
            time.sleep(0.005)
    rows.append((f"episode write (201) → activity entry, p50 / p95 over {SAMPLES}",
                 f"{pct(delays, 50):.0f} / {pct(delays, 95):.0f} ms"))

    width = max(len(k) for k, _ in rows)
    print(f"\npipeline figures ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
