"""One busy episode (issue 15), measured through the running local stack:

  * presence: N viewers (N people, one connection each) open one episode, 32 at a time. Every
    client keeps every frame. Counted: the presence frames posted (against N(N-1)/2, what one
    `presence.joined` per join to everyone already there cost before rounds), the rounds, the
    most presence frames one connection got in one round (1 is the rule), the connections that
    closed; then one write, and the time from it to the `event` frame at each connection
    (p50 / last). N from BENCH_PRESENCE_VIEWERS (100,300,1000).
  * notification fan-out: one status move of an episode W people watch (the watch items are
    written straight into the table). From the notification worker's log line: its DynamoDB
    calls and time for that event, against ceil(W / 50) transactions (50 notifications and
    their counters each) plus the reads. W from BENCH_WATCHERS (10,100,1000).

  * the episode list against the catalogue's size, sharded and in one partition: `lists.py`.

    python tests/bench/scale.py     # prints the figures (make bench runs it too)
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lists  # noqa: E402

VIEWERS = [int(n) for n in os.environ.get("BENCH_PRESENCE_VIEWERS", "100,300,1000").split(",") if n]
WATCHERS = [int(n) for n in os.environ.get("BENCH_WATCHERS", "10,100,1000").split(",") if n]
AT_ONCE = 32
QUIET_S = 4.0  # presence is settled once no presence frame came for this long
PING_S = 110.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Stack:
    def __init__(self):
        self.info = json.loads((ROOT / ".local" / "stack.json").read_text())
        self.kw = dict(endpoint_url=self.info["aws_endpoint"], region_name=self.info["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
        self.http = requests.Session()
        self.editor_id = "bench-scale-" + uuid.uuid4().hex[:6]
        self.editor = oidc.mint(self.editor_id, "editor", "Bench")

    def call(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, self.info["http_url"] + path,
                                 headers={"Authorization": f"Bearer {self.editor}"}, timeout=60, **kw)

    def create(self, title: str) -> str:
        r = self.call("POST", "/episodes", json={"title": title})
        r.raise_for_status()
        return r.json()["id"]

    def patch(self, eid: str, body: dict) -> None:
        r = self.call("PATCH", f"/episodes/{eid}", json=body)
        if r.status_code != 204:
            raise SystemExit(f"PATCH {r.status_code}: {r.text}")

    def log_fields(self, function: str, since_ms: int) -> list[dict]:
        logs = boto3.client("logs", **self.kw)
        group = f"/aws/lambda/{self.info['stack_name']}-{function}"
        out = []
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since_ms):
            for e in page["events"]:
                try:
                    out.append(json.loads(e["message"]).get("fields", {}))
                except (ValueError, AttributeError):
                    pass
        return out


class Viewer:
    """One connection that keeps every frame it receives, with when it came."""

    def __init__(self, ws):
        self.ws = ws
        self.frames: list[tuple[float, dict]] = []
        self.subscribed = asyncio.Event()
        self.closed = False
        self.task = asyncio.create_task(self._read())
        self.pinger = asyncio.create_task(self._ping())

    async def _ping(self):
        """A viewer not seen for 2 minutes is not listed, and 1,000 joins take longer than that
        on the emulator: each pings every PING_S (inside the 2 minutes; clients are asked for 30 s,
        but the emulator's one ws-api process would then spend its time on pings, not joins)."""
        try:
            while True:
                await asyncio.sleep(PING_S)
                await self.ws.send(json.dumps({"action": "ping"}))
        except Exception:  # noqa: BLE001 - closed
            pass

    async def _read(self):
        try:
            async for message in self.ws:
                frame = json.loads(message)
                self.frames.append((time.perf_counter(), frame))
                if frame["type"] == "subscribed":
                    self.subscribed.set()
        except Exception:  # noqa: BLE001 - a dropped connection is counted, not raised
            pass
        self.closed = True

    def presence(self) -> list[dict]:
        return [f for _, f in self.frames if f["type"] in ("presence", "presence.occupancy")]


async def presence(stack: Stack, n: int) -> dict:
    eid = stack.create(f"presence bench {n}")
    tag = uuid.uuid4().hex[:4]
    tokens = [oidc.mint(f"bench-pr-{tag}-{i}", "viewer", f"Viewer {i}") for i in range(n)]
    gate = asyncio.Semaphore(AT_ONCE)

    refused = 0

    async def join(token):
        nonlocal refused
        async with gate:
            # As a client does: a handshake refused while the emulator is saturated is retried.
            for attempt in range(4):
                try:
                    ws = await connect(stack.info["ws_url"], subprotocols=["episodes.v1", f"bearer.{token}"],
                                       open_timeout=120, max_queue=None, ping_interval=None)
                    break
                except (InvalidStatus, TimeoutError, OSError):
                    refused += 1
                    if attempt == 3:
                        raise
                    await asyncio.sleep(2 ** attempt)
            v = Viewer(ws)
            await ws.send(json.dumps({"action": "subscribe", "episode_id": eid}))
            await asyncio.wait_for(v.subscribed.wait(), 300)
            return v

    started = time.perf_counter()
    viewers = await asyncio.gather(*(join(t) for t in tokens))
    joined_s = time.perf_counter() - started
    # Settled: every connection has the whole count, and nothing more came for a while.
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        await asyncio.sleep(1)
        last = max((t for v in viewers for t, f in v.frames if f["type"].startswith("presence")), default=0)
        told = [v.presence()[-1]["count"] if v.presence() else 0 for v in viewers]
        if min(told) == n and time.perf_counter() - last > QUIET_S:
            break
    settled_s = time.perf_counter() - started
    frames = [f for v in viewers for f in v.presence()]
    per_round = max((sum(1 for f in v.presence() if f["round"] == r)
                     for v in viewers for r in {f["round"] for f in v.presence()}), default=0)
    rounds = sorted({f["round"] for f in frames})
    told_all = sum(1 for v in viewers if v.presence() and v.presence()[-1]["count"] == n)

    # One write, and its frame at every connection.
    title = f"after {n} joined"
    t0 = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, stack.patch, eid, {"title": title, "version": 1})

    def arrival(v):
        for t, f in v.frames:
            if f["type"] == "event" and f["event"]["data"].get("changes", {}).get("title") == title:
                return (t - t0) * 1000
        return None

    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        arrivals = [arrival(v) for v in viewers]
        if all(a is not None for a in arrivals):
            break
        await asyncio.sleep(0.2)
    got = sorted(a for a in arrivals if a is not None)
    dropped = sum(1 for v in viewers if v.closed)
    for v in viewers:
        v.pinger.cancel()
    await asyncio.gather(*(v.ws.close() for v in viewers), return_exceptions=True)
    return {
        "viewers": n, "join_s": round(joined_s, 1), "settled_s": round(settled_s, 1),
        "presence_frames": len(frames),
        "occupancy_frames": sum(1 for f in frames if f["type"] == "presence.occupancy"),
        "frames_before_rounds": n * (n - 1) // 2,
        "rounds": len(rounds), "most_per_connection_per_round": per_round,
        "told_the_final_count": told_all, "dropped": dropped, "handshakes_retried": refused,
        "write_to_frame_p50_ms": round(pct(got, 50)) if got else None,
        "write_to_frame_last_ms": round(got[-1]) if got else None,
        "frames_received": len(got),
    }


def notifications(stack: Stack, w: int) -> dict:
    eid = stack.create(f"watch bench {w}")  # its creator watches it
    table = stack.info["outputs"]["WatchesTableName"]
    ddb = boto3.client("dynamodb", **stack.kw)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    items = [{"PutRequest": {"Item": {"episode_id": {"S": eid}, "user_id": {"S": f"bench-w-{eid[-6:]}-{i}"},
                                      "since": {"S": now}, "reason": {"S": "asked"}}}} for i in range(w - 1)]
    for i in range(0, len(items), 25):
        req = {table: items[i:i + 25]}
        while req:
            req = ddb.batch_write_item(RequestItems=req).get("UnprocessedItems") or None
    time.sleep(4)  # the creation's own event has gone through
    since = int(time.time() * 1000)
    stack.patch(eid, {"status": "in_production", "version": 1})
    found: list[dict] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(2)
        found = [f for f in stack.log_fields("notification-worker", since) if f.get("message") == "batch handled"]
        if found and time.time() * 1000 - since > 6000:
            break
    calls = sum(f.get("dynamodb_calls", 0) for f in found)
    spent = sum(f.get("duration_ms", 0.0) for f in found)
    return {"watchers": w, "dynamodb_calls": calls, "duration_ms": round(spent, 1), "batches": len(found),
            "transactions_expected": math.ceil(w / 50)}


async def measure() -> dict:
    stack = Stack()
    out: dict = {"presence": [], "notifications": []}
    out["lists"] = lists.measure()
    for w in WATCHERS:
        out["notifications"].append(notifications(stack, w))
        print(f"  notifications, {w} watchers: {out['notifications'][-1]}", flush=True)
    for n in VIEWERS:
        out["presence"].append(await presence(stack, n))
        print(f"  presence, {n} viewers: {out['presence'][-1]}", flush=True)
        await asyncio.sleep(5)
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure()), indent=2))
