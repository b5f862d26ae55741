"""Figures for live updates (WebSocket). Prints a table; not a test. Needs the local stack up.

  * delay from an HTTP write (sending the PATCH) to the WebSocket frame at a subscribed client,
    p50/p95 over BENCH_WS_WRITES (1,000) sequential writes — the API Gateway, the function, the
    events table's stream, the relay, SQS, the broadcaster and the @connections post;
  * broadcast of one event to BENCH_WS_CONNECTIONS (1,000) subscribed connections: from the
    write to the first and the last client frame, and the broadcaster's own fan-out time from
    its log line; then the same with FAN_OUT_CONCURRENCY=1 (one post after another) to compare.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

WRITES = int(os.environ.get("BENCH_WS_WRITES", "1000"))
# Writes again with a pause between them, so the previous write's activity and notification
# work is not still running on the same cores (the bare pipeline has no such neighbours).
SPACED_WRITES = int(os.environ.get("BENCH_WS_SPACED_WRITES", "200"))
GAP = float(os.environ.get("BENCH_WS_GAP_SECONDS", "0.3"))
CONNECTIONS = int(os.environ.get("BENCH_WS_CONNECTIONS", "1000"))
USERS = 50  # connections are spread over this many users (one presence item each)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Bench:
    def __init__(self):
        self.stack = json.loads((ROOT / ".local" / "stack.json").read_text())
        kw = dict(endpoint_url=self.stack["aws_endpoint"], region_name=self.stack["region"],
                  aws_access_key_id="test", aws_secret_access_key="test")
        self.logs = boto3.client("logs", **kw)
        self.lam = boto3.client("lambda", **kw)
        self.http = requests.Session()
        self.editor = oidc.mint("bench-ws-" + uuid.uuid4().hex[:4], "editor", "Bench")
        self.rows: list[tuple[str, str]] = []

    def create(self) -> str:
        r = self.http.post(f"{self.stack['http_url']}/episodes", json={"title": "ws bench"},
                           headers={"Authorization": f"Bearer {self.editor}"})
        r.raise_for_status()
        return r.json()["id"]

    def patch(self, eid: str, version: int, title: str) -> None:
        r = self.http.patch(f"{self.stack['http_url']}/episodes/{eid}", json={"title": title, "version": version},
                            headers={"Authorization": f"Bearer {self.editor}"})
        if r.status_code != 204:
            raise SystemExit(f"PATCH {r.status_code}: {r.text}")

    async def open(self, token: str, eid: str):
        ws = await connect(self.stack["ws_url"], subprotocols=["episodes.v1", f"bearer.{token}"],
                           open_timeout=60, max_queue=None)
        await ws.send(json.dumps({"action": "subscribe", "episode_id": eid}))
        while json.loads(await ws.recv())["type"] != "subscribed":
            pass
        return ws

    # ---- write → frame
    async def delay(self, writes_count: int, gap: float) -> None:
        eid = self.create()
        ws = await self.open(oidc.mint("bench-viewer", "viewer", "Viewer"), eid)
        delays, writes = [], []
        loop = asyncio.get_running_loop()
        for i in range(1, writes_count + 1):
            await asyncio.sleep(gap)
            title = f"t{i}"
            started = time.perf_counter()
            await loop.run_in_executor(None, self.patch, eid, i, title)
            written = time.perf_counter()
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if f["type"] == "event" and f["event"]["data"].get("changes", {}).get("title") == title:
                    break
            delays.append((time.perf_counter() - started) * 1000)
            writes.append((written - started) * 1000)
        await ws.close()
        how = "back to back" if not gap else f"{gap:.1f} s apart"
        self.rows.append((f"HTTP write → WebSocket frame, p50 / p95 over {writes_count} writes {how}",
                          f"{pct(delays, 50):.0f} / {pct(delays, 95):.0f} ms"))
        self.rows.append(("  of which the PATCH itself (through API Gateway), p50",
                          f"{statistics.median(writes):.0f} ms"))

    # ---- fan-out
    def set_concurrency(self, value: str | None) -> None:
        name = f"{self.stack['stack_name']}-broadcast-worker"
        env = self.lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        if value is None:
            env.pop("FAN_OUT_CONCURRENCY", None)
        else:
            env["FAN_OUT_CONCURRENCY"] = value
        self.lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
        time.sleep(2)

    def fan_out_log(self, since_ms: int, connections: int) -> float | None:
        group = f"/aws/lambda/{self.stack['stack_name']}-broadcast-worker"
        found = None
        for page in self.logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since_ms):
            for e in page["events"]:
                if '"broadcast"' not in e["message"]:
                    continue
                fields = json.loads(e["message"])["fields"]
                if fields.get("what") == "episode.updated" and fields.get("connections") == connections:
                    found = fields["fan_out_ms"]
        return found

    async def fan_out(self) -> None:
        eid = self.create()
        tokens = [oidc.mint(f"bench-fan-{u}-{uuid.uuid4().hex[:4]}", "viewer", f"Fan {u}") for u in range(USERS)]
        gate = asyncio.Semaphore(32)

        async def one(i):
            async with gate:
                return await self.open(tokens[i % USERS], eid)

        started = time.perf_counter()
        clients = await asyncio.gather(*(one(i) for i in range(CONNECTIONS)))
        self.rows.append((f"open + subscribe {CONNECTIONS} connections (32 at a time)",
                          f"{time.perf_counter() - started:.1f} s"))
        await asyncio.sleep(8)  # let the presence.joined broadcasts of the set-up pass

        async def drain(ws):
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 0.05)
            except (asyncio.TimeoutError, Exception):
                pass

        version = 1
        for label, concurrency in (("concurrent (64 in flight)", None), ("one after another", "1")):
            self.set_concurrency(concurrency)
            # One unmeasured broadcast first: the reconfigured function starts cold.
            await asyncio.get_running_loop().run_in_executor(None, self.patch, eid, version, f"warm-{version}")
            version += 1
            await asyncio.sleep(5)
            await asyncio.gather(*(drain(ws) for ws in clients))
            title = f"fan-{version}"
            since = int(time.time() * 1000)
            t0 = time.perf_counter()
            await asyncio.get_running_loop().run_in_executor(None, self.patch, eid, version, title)
            version += 1

            async def until_frame(ws):
                while True:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if f["type"] == "event" and f["event"]["data"].get("changes", {}).get("title") == title:
                        return (time.perf_counter() - t0) * 1000

            arrivals = sorted(await asyncio.gather(*(until_frame(ws) for ws in clients)))
            time.sleep(3)
            own = self.fan_out_log(since, CONNECTIONS)
            self.rows.append((f"one event to {CONNECTIONS} connections, {label}: write → first / last frame",
                              f"{arrivals[0]:.0f} / {arrivals[-1]:.0f} ms"))
            self.rows.append((f"  broadcaster's own fan-out time ({label})",
                              f"{own:.0f} ms" if own is not None else "no log line found"))
        self.set_concurrency(None)
        await asyncio.gather(*(ws.close() for ws in clients))

    def report(self) -> None:
        width = max(len(k) for k, _ in self.rows)
        print(f"\nrealtime figures ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")
        for k, v in self.rows:
            print(f"  {k:<{width}}  {v}")


async def main() -> None:
    b = Bench()
    if WRITES:
        await b.delay(WRITES, 0.0)
    if SPACED_WRITES:
        await b.delay(SPACED_WRITES, GAP)
    if CONNECTIONS:
        await b.fan_out()
    b.report()


if __name__ == "__main__":
    asyncio.run(main())
