"""The episode list against the size of the catalogue (issue 15, hot keys), through the running
local stack.

The `by-recency` and `by-status` indexes are written across 8 partition keys (`episodes#k`) and
merged on read, so that writes spread over 8 index partitions instead of one. For each catalogue
size N (BENCH_CATALOGUE, default 100,1000,10000; episodes are written straight into the table,
shaped as the API writes them) this measures `GET /episodes` in both layouts:

  * sharded: as every write since the sharding leaves it;
  * one partition: every episode under the bare `episodes` key, as before the sharding (read by
    this code, which also queries the 8 shards, empty then). The layout is made by rewriting the
    items, then `infra/migrate_list_keys.py` moves them back, and its time is reported.

Per layout: the first page of 20, 30 times (HTTP latency p50 / p95 at the client, and from the
function's own `request handled` lines its time and DynamoDB queries); a walk of the whole
catalogue in pages of 100 (requests, time, queries per page); and what a page costs in read
units at AWS's rates, from the sizes of the items each query returns (the emulator bills every
Query half a unit, whatever it returns), beside what the single query of before cost.

    python tests/bench/lists.py     # prints the figures (make bench runs it with the scale part)
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
sys.path.insert(0, str(ROOT / "infra"))
import migrate_list_keys  # noqa: E402
import oidc  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_CATALOGUE", "100,1000,10000").split(",") if n]
FIRST_PAGES = 30
DESCRIPTION = ("A cold open in the rain, the titles, then the long scene at the harbour where the two "
               "of them finally talk. Notes: keep the music low under the dialogue; the second act "
               "needs the wide shot from Tuesday. ") * 2


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def v7_id(ms: int) -> str:
    h = f"{ms & 0xFFFFFFFFFFFF:012x}7{os.urandom(2).hex()[:3]}{8 + os.urandom(1)[0] % 4:x}{os.urandom(8).hex()[:15]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def billed_bytes(item: dict) -> int:
    """An item's size as DynamoDB bills it: attribute names and values (numbers about one byte
    per two digits, plus one)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        (kind, x), = value.items()
        if kind == "S":
            size += len(x.encode())
        elif kind == "N":
            size += (len(x.lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
        else:
            size += len(json.dumps(x).encode())
    return size


def read_units(items: list[dict]) -> float:
    """What one eventually consistent Query costs: half a unit per 4 KB returned, at least half."""
    return max(1, math.ceil(sum(billed_bytes(i) for i in items) / 4096)) * 0.5


class Catalogue:
    def __init__(self):
        self.info = json.loads((ROOT / ".local" / "stack.json").read_text())
        kw = dict(endpoint_url=self.info["aws_endpoint"], region_name=self.info["region"],
                  aws_access_key_id="test", aws_secret_access_key="test")
        self.ddb = boto3.client("dynamodb", **kw)
        self.logs = boto3.client("logs", **kw)
        self.table = self.info["outputs"]["EpisodesTableName"]
        self.http = requests.Session()
        self.token = oidc.mint("bench-lists-" + uuid.uuid4().hex[:6], "viewer", "Bench")
        self.started_ms = int(time.time() * 1000) - 86_400_000 * 30
        self.seeded: list[str] = []

    def get(self, params: dict) -> tuple[float, dict]:
        t = time.perf_counter()
        r = self.http.get(self.info["http_url"] + "/episodes", params=params,
                          headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            raise SystemExit(f"GET /episodes {r.status_code}: {r.text}")
        return ms, r.json()

    def listed(self) -> list[dict]:
        items, start = [], None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            page = self.ddb.scan(TableName=self.table, FilterExpression="attribute_exists(list_pk)", **kw)
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def write(self, items: list[dict]) -> None:
        for i in range(0, len(items), 25):
            req = {self.table: [{"PutRequest": {"Item": it}} for it in items[i:i + 25]]}
            while req:
                req = self.ddb.batch_write_item(RequestItems=req).get("UnprocessedItems") or None

    def seed(self, count: int) -> None:
        """`count` more episodes, sharded as the API writes them, older than any made so far."""
        items = []
        for _ in range(count):
            self.started_ms -= 37
            eid = v7_id(self.started_ms)
            at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.started_ms / 1000))
            k = migrate_list_keys.shard(eid)
            self.seeded.append(eid)
            items.append({
                "id": {"S": eid}, "title": {"S": f"Episode {eid[-6:]}"}, "description": {"S": DESCRIPTION},
                "status": {"S": "draft"}, "version": {"N": "1"}, "series": {"S": "Harbour"},
                "created_at": {"S": at}, "created_by": {"S": "bench-seed"}, "created_by_name": {"S": "Seed"},
                "updated_at": {"S": at}, "updated_by": {"S": "bench-seed"}, "updated_by_name": {"S": "Seed"},
                "list_pk": {"S": f"episodes#{k}"}, "status_pk": {"S": f"draft#{k}"},
            })
        self.write(items)

    def remove_seeded(self) -> None:
        """The seeded episodes go again: on the emulator a list's time grows with its partition,
        so they would slow every later figure on the same stack."""
        for i in range(0, len(self.seeded), 25):
            req = {self.table: [{"DeleteRequest": {"Key": {"id": {"S": eid}}}} for eid in self.seeded[i:i + 25]]}
            while req:
                req = self.ddb.batch_write_item(RequestItems=req).get("UnprocessedItems") or None
        self.seeded = []

    def unshard(self) -> int:
        """Every listed episode under the bare keys, as before the sharding."""
        items = self.listed()
        for it in items:
            it["list_pk"] = {"S": "episodes"}
            it["status_pk"] = {"S": it["status"]["S"]}
        self.write(items)
        return len(items)

    def query(self, key: str, before: str | None, limit: int) -> tuple[list[dict], bool]:
        cond, values = "list_pk = :pk", {":pk": {"S": key}}
        if before:
            cond, values = cond + " AND id < :before", values | {":before": {"S": before}}
        out = self.ddb.query(TableName=self.table, IndexName="by-recency", KeyConditionExpression=cond,
                             ExpressionAttributeValues=values, ScanIndexForward=False, Limit=limit)
        return out["Items"], "LastEvaluatedKey" in out

    def aws_cost(self, keys: list[str], want: int) -> tuple[int, float]:
        """The queries one page takes over `keys` and their read units at AWS's rates, replaying
        the adapter's merge (`aws_adapters::shards`) with the same limits: the emulator bills
        every Query half a unit whatever it returns, so the units are taken from the sizes."""
        parts = [{"items": [], "before": None, "more": True} for _ in keys]
        limit = min(want, 2 * math.ceil(want / len(keys)) + 2)
        got, queries, units = 0, 0, 0.0
        while got < want:
            for i, p in enumerate(parts):
                if not p["items"] and p["more"]:
                    items, more = self.query(keys[i], p["before"], limit)
                    queries, units = queries + 1, units + read_units(items)
                    p["more"] = more and bool(items)
                    p["before"] = items[-1]["id"]["S"] if items else p["before"]
                    p["items"] = items
            heads = [(p["items"][0]["id"]["S"], i) for i, p in enumerate(parts) if p["items"]]
            if not heads:
                break
            parts[max(heads)[1]]["items"].pop(0)
            got += 1
            limit = want - got
        return queries, units

    def handled(self, since_ms: int) -> list[dict]:
        group = f"/aws/lambda/{self.info['stack_name']}-episodes-api"
        out = []
        for page in self.logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since_ms):
            for e in page["events"]:
                try:
                    f = json.loads(e["message"]).get("fields", {})
                except (ValueError, AttributeError):
                    continue
                if f.get("message") == "request handled" and f.get("method") == "GET" and f.get("path") == "/episodes":
                    out.append(f)
        return out

    def measure(self, layout: str, n: int) -> dict:
        since = int(time.time() * 1000)
        first = [self.get({"limit": 20})[0] for _ in range(FIRST_PAGES)]
        time.sleep(1.5)
        lines = self.handled(since)
        since = int(time.time() * 1000)
        t, pages, cursor, seen = time.perf_counter(), 0, None, 0
        while True:
            _, body = self.get({"limit": 100} | ({"cursor": cursor} if cursor else {}))
            pages += 1
            seen += len(body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                break
        walk_s = time.perf_counter() - t
        time.sleep(1.5)
        walk = self.handled(since)
        med = lambda fs, k: statistics.median(f.get(k, 0) for f in fs) if fs else None  # noqa: E731
        keys = [f"episodes#{k}" for k in range(migrate_list_keys.LIST_SHARDS)] + ["episodes"]
        first_q, first_u = self.aws_cost(keys, 21)
        walk_q, walk_u = self.aws_cost(keys, 101)
        aws = {"first_page_queries": first_q, "first_page_aws_read_units": first_u,
               "page_of_100_queries": walk_q, "page_of_100_aws_read_units": walk_u}
        if layout == "one partition":
            # What the code before the sharding spent on the same data: one query of limit + 1.
            aws["before_sharding_first_page_aws_read_units"] = read_units(self.query("episodes", None, 21)[0])
            aws["before_sharding_page_of_100_aws_read_units"] = read_units(self.query("episodes", None, 101)[0])
        return aws | {
            "catalogue": n, "layout": layout,
            "first_page_p50_ms": round(pct(first, 50), 1), "first_page_p95_ms": round(pct(first, 95), 1),
            "first_page_function_p50_ms": round(med(lines, "latency_us") / 1000, 1) if lines else None,
            "first_page_function_queries": med(lines, "dynamodb_calls"),
            "walk_pages": pages, "walk_listed": seen, "walk_s": round(walk_s, 2),
            "walk_page_p50_ms": round(walk_s / pages * 1000, 1),
            "walk_queries_per_page": round(sum(f.get("dynamodb_calls", 0) for f in walk) / max(1, len(walk)), 2),
        }


def measure() -> list[dict]:
    c = Catalogue()
    out = []
    have = len(c.listed())
    for n in SIZES:
        if have < n:
            c.seed(n - have)
        have = max(have, n)
        out.append(c.measure("sharded", have))
        print(f"  list, {have:,} episodes, sharded: {out[-1]}", flush=True)
        c.unshard()
        out.append(c.measure("one partition", have))
        print(f"  list, {have:,} episodes, one partition: {out[-1]}", flush=True)
        t = time.perf_counter()
        run = subprocess.run([sys.executable, str(ROOT / "infra" / "migrate_list_keys.py"), "--local"],
                             capture_output=True, text=True)
        if run.returncode:
            raise SystemExit(f"the migration: {run.stdout} {run.stderr}")
        report = json.loads(run.stdout)
        out[-1]["migration_s"] = round(time.perf_counter() - t, 1)
        out[-1]["migration_moved"] = report["moved"]
        print(f"  migration: {report} in {out[-1]['migration_s']} s", flush=True)
    c.remove_seeded()
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
