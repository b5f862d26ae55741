"""Search on a catalogue of 10,000 episodes (issue 20), through the running local stack.

1. **Index writes per change**, through the real path: episodes created, retitled and moved
   through the HTTP API, indexed by the search worker from the relay's events; the worker's
   `episode indexed` lines give the entries and the record writes each change cost, and its
   `batch handled` lines the write units.
2. **A catalogue of BENCH_SEARCH_CATALOGUE (10,000) episodes**, written straight into the
   episodes table and the search table, shaped as the API and the worker write them (titles,
   series and descriptions drawn from a Zipf vocabulary; the tokens are ASCII words, which the
   worker folds to themselves). The worker-indexed episodes of step 1 are checked against this
   code's index of them first, so the seeded entries are the worker's.
3. **Queries** (30 each): a rare word, a common word, a type-ahead prefix, two words, a word with
   a rare status. HTTP p50 / p95 at the client; from the function's `request handled` lines its
   time and DynamoDB calls; at AWS's rates, the read units from the sizes of the entries each
   word's Query returns (the emulator bills every Query half a unit whatever it returns) plus
   the page's BatchGetItem, and the cost per 1,000 searches (reads, Lambda, HTTP API).

    python tests/bench/search.py     # prints the figures (make bench runs it too)
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))
import cost  # noqa: E402
import migrate_list_keys  # noqa: E402  (tests/bench/lists.py puts infra/ on the path too)
import oidc  # noqa: E402
from lists import billed_bytes, v7_id  # noqa: E402

CATALOGUE = int(os.environ.get("BENCH_SEARCH_CATALOGUE", "10000"))
CHANGES = int(os.environ.get("BENCH_SEARCH_CHANGES", "30"))
QUERIES = int(os.environ.get("BENCH_SEARCH_QUERIES", "30"))
MEMORY_MB = 128
FIELDS = {"title": 1, "series": 2, "description": 4}
STATUSES = ["draft"] * 50 + ["in_production"] * 25 + ["in_review"] * 15 + ["published"] * 9 + ["archived"]

random.seed(20)
SYLLABLES = ["ka", "lo", "mi", "ne", "ra", "to", "su", "vi", "do", "pe", "an", "el", "or", "is", "un", "ha", "bo", "ce"]
VOCABULARY = sorted({"".join(random.choice(SYLLABLES) for _ in range(random.randint(2, 4))) for _ in range(6000)})
random.shuffle(VOCABULARY)
COMMON = ["the", "a", "and", "of", "in", "to", "with", "at", "on", "for"]
SERIES = [" ".join(random.choice(VOCABULARY[:400]).capitalize() for _ in range(2)) for _ in range(60)]
ZIPF = [1 / (i + 1) for i in range(len(VOCABULARY))]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def words(n: int) -> list[str]:
    return random.choices(VOCABULARY, weights=ZIPF, k=n)


def text_fields() -> dict:
    title = " ".join(w.capitalize() for w in words(random.randint(2, 5)))
    description = " ".join(random.choice(COMMON) if random.random() < 0.3 else w for w in words(random.randint(15, 40)))
    return {"title": title, "series": random.choice(SERIES), "description": description.capitalize() + "."}


def terms(fields: dict) -> dict[str, int]:
    """The index's terms of ASCII text, as `domain::search::Terms::of` makes them."""
    out: dict[str, int] = {}
    for name, bit in FIELDS.items():
        text = fields.get(name) or ""
        for w in "".join(c.lower() if c.isalnum() else " " for c in text).split():
            w = w[:32]
            out[w] = out.get(w, 0) | bit
    return out


class Bench:
    def __init__(self):
        self.info = json.loads((ROOT / ".local" / "stack.json").read_text())
        kw = dict(endpoint_url=self.info["aws_endpoint"], region_name=self.info["region"],
                  aws_access_key_id="test", aws_secret_access_key="test")
        self.ddb = boto3.client("dynamodb", **kw)
        self.logs = boto3.client("logs", **kw)
        out = self.info["outputs"]
        self.episodes, self.index = out["EpisodesTableName"], out["SearchTableName"]
        self.http = requests.Session()
        run = uuid.uuid4().hex[:6]
        self.editor = oidc.mint(f"bench-search-{run}", "editor", "Bench")
        self.seeded: list[str] = []
        self.entries: list[dict] = []

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return self.http.request(method, self.info["http_url"] + path, timeout=60,
                                 headers={"Authorization": f"Bearer {self.editor}"} | kw.pop("headers", {}), **kw)

    def lines(self, function: str, since_ms: int, message: str) -> list[dict]:
        group = f"/aws/lambda/{self.info['stack_name']}-{function}"
        out = []
        for page in self.logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since_ms):
            for e in page["events"]:
                try:
                    f = json.loads(e["message"]).get("fields", {})
                except (ValueError, AttributeError):
                    continue
                if f.get("message") == message:
                    out.append(f)
        return out

    def record(self, episode_id: str) -> dict | None:
        return self.ddb.get_item(TableName=self.index, ConsistentRead=True,
                                 Key={"pk": {"S": f"e#{episode_id}"}, "sk": {"S": "record"}}).get("Item")

    def wait_indexed(self, wanted: dict[str, int]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all((self.record(e) or {}).get("v", {}).get("N") == str(v) for e, v in wanted.items()):
                return
            time.sleep(0.5)
        raise SystemExit("the search worker did not index the bench's changes within 120 s")

    # ------------------------------------------------------------------ 1. writes per change
    def changes(self) -> dict:
        since = int(time.time() * 1000)
        made = {}
        for _ in range(CHANGES):
            f = text_fields()
            r = self.api("POST", "/episodes", json=f)
            assert r.status_code == 201, r.text
            made[r.json()["id"]] = f
        self.wait_indexed({e: 1 for e in made})
        created = self.lines("search-worker", since, "episode indexed")
        # The indexed entries are the ones this code makes: the seed below is the worker's.
        for eid, f in made.items():
            held = {t: int(v["N"]) for t, v in self.record(eid)["terms"]["M"].items()}
            assert held == terms(f), (eid, held, terms(f))

        since_edit = int(time.time() * 1000)
        for eid in made:
            title = " ".join(w.capitalize() for w in words(random.randint(2, 5)))
            r = self.api("PATCH", f"/episodes/{eid}", json={"title": title, "version": 1})
            assert r.status_code == 204, r.text
        self.wait_indexed({e: 2 for e in made})
        edited = self.lines("search-worker", since_edit, "episode indexed")

        since_move = int(time.time() * 1000)
        for eid in made:
            r = self.api("PATCH", f"/episodes/{eid}", json={"status": "in_production", "version": 2})
            assert r.status_code == 204, r.text
        self.wait_indexed({e: 3 for e in made})
        moved = self.lines("search-worker", since_move, "episode indexed")
        batches = self.lines("search-worker", since, "batch handled")

        for eid in made:
            assert self.api("DELETE", f"/episodes/{eid}").status_code == 204
        self.seeded_through_api = list(made)

        def mean(lines, k):
            return round(statistics.mean(f[k] for f in lines), 1) if lines else None

        units = sum(b.get("dynamodb_write_units", 0) for b in batches)
        indexed = len(created) + len(edited) + len(moved)
        return {
            "created": len(created), "created_entry_writes": mean(created, "entry_writes"),
            "created_record_writes": mean(created, "record_writes"),
            "retitled": len(edited), "retitled_entry_writes": mean(edited, "entry_writes"),
            "retitled_record_writes": mean(edited, "record_writes"),
            "moved": len(moved), "moved_entry_writes": mean(moved, "entry_writes"),
            "moved_record_writes": mean(moved, "record_writes"),
            "write_units_per_change": round(units / max(1, indexed), 1),
        }

    # ------------------------------------------------------------------ 2. the catalogue
    def write(self, table: str, requests_: list[dict]) -> None:
        for i in range(0, len(requests_), 25):
            req = {table: requests_[i:i + 25]}
            while req:
                req = self.ddb.batch_write_item(RequestItems=req).get("UnprocessedItems") or None

    def seed(self, n: int) -> None:
        started = int(time.time() * 1000) - 86_400_000 * 365
        episodes, entries = [], []
        for i in range(n):
            ms = started + i * 3000
            eid = v7_id(ms)
            at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ms / 1000))
            f = text_fields()
            status = random.choice(STATUSES)
            k = migrate_list_keys.shard(eid)
            self.seeded.append(eid)
            episodes.append({"PutRequest": {"Item": {
                "id": {"S": eid}, "title": {"S": f["title"]}, "description": {"S": f["description"]},
                "series": {"S": f["series"]}, "status": {"S": status}, "version": {"N": "1"},
                "created_at": {"S": at}, "created_by": {"S": "bench-seed"}, "created_by_name": {"S": "Seed"},
                "updated_at": {"S": at}, "updated_by": {"S": "bench-seed"}, "updated_by_name": {"S": "Seed"},
                "list_pk": {"S": f"episodes#{k}"}, "status_pk": {"S": f"{status}#{k}"},
            }}})
            t = terms(f)
            for token, bits in t.items():
                entries.append({"pk": {"S": f"t#{token[:2]}"}, "sk": {"S": f"{token}#{eid}"}, "f": {"N": str(bits)}})
            entries.append({"pk": {"S": f"e#{eid}"}, "sk": {"S": "record"}, "v": {"N": "1"},
                            "terms": {"M": {tok: {"N": str(b)} for tok, b in t.items()}}})
        self.write(self.episodes, episodes)
        self.write(self.index, [{"PutRequest": {"Item": e}} for e in entries])
        self.entries = entries

    def remove_seeded(self) -> None:
        self.write(self.episodes, [{"DeleteRequest": {"Key": {"id": {"S": e}}}} for e in self.seeded])
        self.write(self.index, [{"DeleteRequest": {"Key": {"pk": e["pk"], "sk": e["sk"]}}} for e in self.entries])

    # ------------------------------------------------------------------ 3. queries
    def word_units(self, word: str) -> tuple[int, float, int]:
        """One word's Query at AWS's rates: pages, read units (half a unit per 4 KB of the
        items' sizes, per 1 MB page) and entries."""
        prefix = word + "#" if len(word) == 1 else word
        pages, units, count, start = 0, 0.0, 0, None
        while True:
            kw = {"ExclusiveStartKey": start} if start else {}
            out = self.ddb.query(TableName=self.index, KeyConditionExpression="pk = :p AND begins_with(sk, :w)",
                                 ExpressionAttributeValues={":p": {"S": f"t#{word[:2]}"}, ":w": {"S": prefix}}, **kw)
            size = sum(billed_bytes(i) for i in out["Items"])
            pages, count = pages + 1, count + len(out["Items"])
            units += max(1, math.ceil(size / 4096)) * 0.5
            start = out.get("LastEvaluatedKey")
            if not start:
                return pages, units, count

    def query(self, name: str, params: dict) -> dict:
        since = int(time.time() * 1000)
        client, items = [], 0
        for _ in range(QUERIES):
            t = time.perf_counter()
            r = self.api("GET", "/episodes", params=params | {"limit": 20})
            client.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
            items = len(r.json()["items"])
        time.sleep(1.5)
        handled = [f for f in self.lines("episodes-api", since, "request handled")
                   if f.get("method") == "GET" and f.get("path") == "/episodes"]
        fn_ms = statistics.median(f["latency_us"] for f in handled) / 1000 if handled else 0
        calls = statistics.median(f.get("dynamodb_calls", 0) for f in handled) if handled else 0
        word_list = [w for w in "".join(c.lower() if c.isalnum() else " " for c in params["q"]).split()]
        # The emulator's own time for the words' Queries, asked from here: on ministack a Query
        # takes time with the table's size, whatever it returns.
        t = time.perf_counter()
        per_word = [self.word_units(w) for w in word_list]
        emulator_ms = (time.perf_counter() - t) * 1000
        queries = sum(p for p, _, _ in per_word)
        entries = sum(c for _, _, c in per_word)
        # The page's episodes: BatchGetItem, half a unit per item under 4 KB, one read per
        # page of `limit` ids (calls beyond the words' queries).
        batch_gets = max(0, calls - queries)
        # A page of 20 reads 20 ids a call; with a status, 100 (episodes-api/src/search.rs).
        # Strongly consistent: a unit per item of up to 4 KB.
        ids_a_read = min(100 if params.get("status") else 20, min(c for _, _, c in per_word))
        read_units = sum(u for _, u, _ in per_word) + batch_gets * ids_a_read * 1.0
        p = cost.PRICES
        per_search = (read_units * p["dynamodb_read_unit"] + p["lambda_request"] + p["http_api_request"]
                      + fn_ms / 1000 * MEMORY_MB / 1024 * p["lambda_gb_second_arm64"])
        return {
            "name": name, "q": params["q"], "status": params.get("status"), "items": items,
            "p50_ms": round(pct(client, 50), 1), "p95_ms": round(pct(client, 95), 1),
            "function_p50_ms": round(fn_ms, 1), "emulator_query_ms": round(emulator_ms, 1),
            "dynamodb_calls": calls, "word_queries": queries,
            "entries_read": entries, "aws_read_units": read_units,
            "cost_per_1000_usd": round(per_search * 1000, 5),
            "reads_per_1000_usd": round(read_units * p["dynamodb_read_unit"] * 1000, 5),
        }

    def queries(self) -> list[dict]:
        counts: dict[str, int] = {}
        for e in self.entries:
            if e["pk"]["S"].startswith("t#"):
                tok = e["sk"]["S"].rsplit("#", 1)[0]
                counts[tok] = counts.get(tok, 0) + 1
        ranked = sorted(counts, key=counts.get)
        rare = next(t for t in ranked if counts[t] >= 3 and len(t) > 4)
        common_word = max((t for t in counts if t not in COMMON), key=counts.get)
        series = SERIES[0].split()
        return [
            self.query("a rare word", {"q": rare}),
            self.query("a common word", {"q": common_word}),
            self.query("a three-letter prefix", {"q": common_word[:3]}),
            self.query("two words (series)", {"q": f"{series[0][:4]} {series[1]}"}),
            self.query("a common word, status archived", {"q": common_word, "status": "archived"}),
            self.query("the most common word: \"the\"", {"q": "the"}),
        ]


def measure() -> dict:
    b = Bench()
    changes = b.changes()
    print(f"  search, writes per change: {changes}", flush=True)
    t = time.perf_counter()
    b.seed(CATALOGUE)
    seed_s = round(time.perf_counter() - t, 1)
    tokens = sum(1 for e in b.entries if e["pk"]["S"].startswith("t#"))
    print(f"  search: seeded {CATALOGUE:,} episodes, {tokens:,} entries in {seed_s} s", flush=True)
    try:
        queries = b.queries()
        for q in queries:
            print(f"  search, {CATALOGUE:,} episodes: {q}", flush=True)
    finally:
        b.remove_seeded()
    return {"catalogue": CATALOGUE, "entries": tokens, "entries_per_episode": round(tokens / CATALOGUE, 1),
            "changes": changes, "queries": queries}


def table_rows(r: dict | None) -> list[tuple[str, str, str, str, str]]:
    if not r:
        return []
    c = r["changes"]
    rows = [
        ("search", "index writes per change: created / retitled / status moved (entries + record)",
         f"{c['created_entry_writes']} + {c['created_record_writes']} / {c['retitled_entry_writes']} + "
         f"{c['retitled_record_writes']} / {c['moved_entry_writes']} + {c['moved_record_writes']}; "
         f"{c['write_units_per_change']} write units a change", "—", ""),
    ]
    for q in r["queries"]:
        rows.append(("search", f"{r['catalogue']:,} episodes ({r['entries']:,} entries): {q['name']}, p50 / p95",
                     f"{q['p50_ms']} / {q['p95_ms']} ms; function {q['function_p50_ms']} ms "
                     f"(the emulator's Queries alone {q['emulator_query_ms']} ms), "
                     f"{q['dynamodb_calls']:g} calls, {q['entries_read']:,} entries, {q['aws_read_units']:g} RRU; "
                     f"${q['cost_per_1000_usd']:.4f} per 1,000", "—", ""))
    return rows


if __name__ == "__main__":
    out = measure()
    for row in table_rows(out):
        print("  ".join(row[:3]))
