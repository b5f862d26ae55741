"""The pipeline measured through the running local stack (issue 7): everything deployed, the
emulator's own stream, queues, event source mappings and WebSocket API in between.

  * throughput: BENCH_EVENTS (10,000) status changes written straight into the events table
    (the outbox) for BENCH_EPISODES (10) episodes that one user watches and follows over one
    WebSocket connection; timed until every event is an activity entry, a notification for the
    watcher, and an `event` frame received by the client (and its `notification` frames);
  * HTTP write → WebSocket frame: p50/p95 over BENCH_FRAME_WRITES (200) PATCHes, BENCH_FRAME_GAP
    (0.2 s) apart, the frame carrying that write's change.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import requests
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000"))
EPISODES = int(os.environ.get("BENCH_EPISODES", "10"))
FRAME_WRITES = int(os.environ.get("BENCH_FRAME_WRITES", "200"))
FRAME_GAP = float(os.environ.get("BENCH_FRAME_GAP", "0.2"))
STATUSES = ["in_production", "in_review", "in_production"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def write_outbox(kw: dict, table: str, items: list[dict], writers: int = 4) -> None:
    """Batch-writes event items straight into the events table, `writers` threads at once."""

    def writer(chunk):
        c = boto3.client("dynamodb", **kw)
        for j in range(0, len(chunk), 25):
            req = {table: chunk[j:j + 25]}
            while req:
                req = c.batch_write_item(RequestItems=req).get("UnprocessedItems") or None

    threads = [threading.Thread(target=writer, args=(items[k::writers],)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def v7(ms: int) -> str:
    r = uuid.uuid4().int & ((1 << 74) - 1)
    value = (ms << 80) | (0x7 << 76) | ((r >> 62) << 64) | (0b10 << 62) | (r & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


class Live:
    def __init__(self) -> None:
        self.stack = json.loads((ROOT / ".local" / "stack.json").read_text())
        self.kw = dict(endpoint_url=self.stack["aws_endpoint"], region_name=self.stack["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
        self.ddb = boto3.client("dynamodb", **self.kw)
        self.http = requests.Session()
        tag = uuid.uuid4().hex[:6]
        self.editor_id, self.watcher_id = f"bench-ed-{tag}", f"bench-w-{tag}"
        self.editor = {"Authorization": f"Bearer {oidc.mint(self.editor_id, 'editor', 'Ed')}"}
        self.watcher_token = oidc.mint(self.watcher_id, "viewer", "Wes")

    def url(self, path: str) -> str:
        return f"{self.stack['http_url']}{path}"

    def create(self, title: str) -> str:
        r = self.http.post(self.url("/episodes"), json={"title": title}, headers=self.editor)
        r.raise_for_status()
        return r.json()["id"]

    async def client(self, episodes: list[str]):
        ws = await connect(self.stack["ws_url"], subprotocols=["episodes.v1", f"bearer.{self.watcher_token}"],
                           open_timeout=60, max_queue=None)
        for ep in episodes:
            await ws.send(json.dumps({"action": "subscribe", "episode_id": ep}))
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
        return ws

    # ---- throughput
    async def throughput(self) -> dict:
        episodes = [self.create(f"pipeline {i}") for i in range(EPISODES)]
        watcher = {"Authorization": f"Bearer {self.watcher_token}"}
        for ep in episodes:
            self.http.put(self.url(f"/episodes/{ep}/watch"), headers=watcher).raise_for_status()
        ws = await self.client(episodes)
        await asyncio.sleep(3)
        ours = set()
        golden = json.loads((ROOT / "events" / "domain" / "episode.updated.json").read_text())
        items = []
        base = int(time.time() * 1000)
        for i in range(EVENTS):
            ep = episodes[i % EPISODES]
            e = json.loads(json.dumps(golden))
            e["id"] = v7(base + i)
            e["episode_id"] = e["resource"]["id"] = ep
            e["actor"] = {"id": self.editor_id, "name": "Ed", "role": "editor"}
            e["correlation_id"] = e["request_id"] = f"bench{i}"
            e["data"] = {"changes": {"status": STATUSES[i % 3]}, "version": i // EPISODES + 2}
            ours.add(e["id"])
            items.append({"PutRequest": {"Item": {
                "episode_id": {"S": ep}, "event_id": {"S": e["id"]}, "type": {"S": e["type"]},
                "occurred_at": {"S": e["occurred_at"]}, "payload": {"S": json.dumps(e)},
                "expires_at": {"N": str(int(time.time()) + 86400)}}}})
        frames = {"event": 0, "notification": 0}
        done_at: dict[str, float] = {}

        async def receive():
            while frames["event"] < EVENTS or frames["notification"] < EVENTS:
                f = json.loads(await ws.recv())
                if f["type"] == "event" and f["event"]["id"] in ours:
                    frames["event"] += 1
                elif f["type"] == "notification":
                    frames["notification"] += 1
                for k in ("event", "notification"):
                    if frames[k] >= EVENTS and f"{k} frames" not in done_at:
                        done_at[f"{k} frames"] = time.perf_counter()

        out = self.stack["outputs"]
        def count(table, key, values):
            total = 0
            for v in values:
                kwargs = dict(TableName=table, KeyConditionExpression=f"{key} = :k",
                              ExpressionAttributeValues={":k": {"S": v}}, Select="COUNT")
                while True:
                    r = self.ddb.query(**kwargs)
                    total += r["Count"]
                    if "LastEvaluatedKey" not in r:
                        break
                    kwargs["ExclusiveStartKey"] = r["LastEvaluatedKey"]
            return total

        before = {"activity entries": count(out["ActivityTableName"], "episode_id", episodes),
                  "notifications": count(out["NotificationsTableName"], "user_id", [self.watcher_id])}
        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()

        await asyncio.get_running_loop().run_in_executor(None, write_outbox, self.kw, out["EventsTableName"], items)
        written = time.perf_counter() - t0

        deadline = time.monotonic() + 900
        counts = {}
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:
            activity = await loop.run_in_executor(None, count, out["ActivityTableName"], "episode_id", episodes)
            notes = await loop.run_in_executor(None, count, out["NotificationsTableName"], "user_id", [self.watcher_id])
            counts = {
                "activity entries": activity - before["activity entries"],
                "notifications": notes - before["notifications"],
                "event frames": frames["event"], "notification frames": frames["notification"],
            }
            for k in ("activity entries", "notifications"):
                if counts[k] >= EVENTS and k not in done_at:
                    done_at[k] = time.perf_counter()
            if len(done_at) == 4:
                break
            await asyncio.sleep(1)
        receiver.cancel()
        await ws.close()
        return {"events": EVENTS, "episodes": EPISODES, "written_s": written, "counts": counts,
                "seconds": {k: v - t0 for k, v in done_at.items()}}

    # ---- write → frame
    async def write_to_frame(self) -> dict:
        ep = self.create("frame delay")
        ws = await self.client([ep])
        loop = asyncio.get_running_loop()
        delays, writes = [], []
        for i in range(1, FRAME_WRITES + 1):
            await asyncio.sleep(FRAME_GAP)
            title = f"t{i}"
            started = time.perf_counter()
            r = await loop.run_in_executor(None, lambda: self.http.patch(
                self.url(f"/episodes/{ep}"), json={"title": title, "version": i}, headers=self.editor))
            if r.status_code not in (200, 204):
                raise SystemExit(f"PATCH {r.status_code}: {r.text}")
            writes.append((time.perf_counter() - started) * 1000)
            while True:
                f = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if f["type"] == "event" and f["event"]["data"].get("changes", {}).get("title") == title:
                    break
            delays.append((time.perf_counter() - started) * 1000)
        await ws.close()
        return {"writes": FRAME_WRITES, "gap_s": FRAME_GAP, "p50_ms": pct(delays, 50), "p95_ms": pct(delays, 95),
                "patch_p50_ms": pct(writes, 50)}


async def measure() -> dict:
    live = Live()
    return {"throughput": await live.throughput(), "write_to_frame": await live.write_to_frame()}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure()), indent=2))
