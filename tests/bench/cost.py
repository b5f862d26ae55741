"""What each operation costs at AWS list prices (issue 15), from the figures `make bench`
measured: per HTTP route, the function's time (its own `request handled` line) at the
template's memory size and DynamoDB's request units (`ReturnConsumedCapacity`, which the
emulator reports from item sizes as DynamoDB does for item reads, writes and transactions, but
as a flat half unit for every Query and Scan whatever it returns: the query routes' read units
here are a floor; `lists.py` prices the episode list from item sizes); per event through the pipeline, each
worker's time, units and queue requests per message (10-message batches); per live frame, a
WebSocket message. Then a month for a stated team.

What it does not price: storage (DynamoDB, S3, logs), data transfer, CloudWatch alarms and
logs ingestion, cold starts (init is billed since August 2025, about 25 ms each here; see the
cold-start figures) and the free tiers. Durations are measured on this machine's x86 cores
against the emulator; Lambda at 128 MB runs on a fraction of a core, so treat the
duration part as a floor.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# List prices, us-east-1, on-demand, as published on the AWS pricing pages on this date.
PRICES_DATE = "2026-12-01"
PRICES = {
    "lambda_request": 0.20 / 1e6,                 # per invocation
    "lambda_gb_second_arm64": 0.0000133334,       # first 7.5 billion GB-s a month
    "dynamodb_read_unit": 0.125 / 1e6,            # on-demand read request unit
    "dynamodb_write_unit": 0.625 / 1e6,           # on-demand write request unit
    "sqs_request": 0.40 / 1e6,                    # standard queue, per 64 KB chunk
    "http_api_request": 1.00 / 1e6,               # first 300 million a month, per 512 KB
    "websocket_message": 1.00 / 1e6,              # first billion a month, per 32 KB, both ways
    "websocket_connection_minute": 0.25 / 1e6,
    "s3_put": 0.005 / 1000,                       # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,
}

# A month of a stated team (the example): what each figure below is multiplied by.
TEAM = {
    "people": 50,
    "episodes": 2000,            # in the catalogue
    "edits": 20000,              # PATCHes a month, each an event through the pipeline
    "connected_hours": 100,      # browsers with the WebSocket open, summed
    # Assumed, not measured: what a team does around its edits.
    "reads_per_edit": 10,        # GET /episodes/{id}, lists, activity, notifications
    "watchers_per_episode": 3,   # notifications per event
    "connections_per_episode": 2,  # frames per event
    "uploads": 2000,             # files a month (create + one PUT + complete)
    "downloads": 10000,
}

# Which function serves which route, and the memory sizes, read from the template.
TEMPLATE = ROOT / "infra" / "template.yaml"


def memory_mb() -> dict[str, int]:
    """Each function's MemorySize (the Globals default unless it sets its own)."""
    text = TEMPLATE.read_text()
    default = int(re.search(r"Globals:.*?MemorySize:\s*(\d+)", text, re.S).group(1))
    sizes = {}
    for block in re.split(r"\n  (?=[A-Za-z]+:\n    Type: AWS::Serverless::Function)", text):
        name = re.search(r'FunctionName: !Sub "\$\{AWS::StackName\}-([a-z-]+)"', block)
        if name and "AWS::Serverless::Function" in block:
            own = re.search(r"\n      MemorySize:\s*(\d+)", block)
            sizes[name.group(1)] = int(own.group(1)) if own else default
    return sizes


def lambda_cost(memory: int, ms: float) -> float:
    billed_s = math.ceil(ms) / 1000  # billed per millisecond, rounded up
    return PRICES["lambda_request"] + PRICES["lambda_gb_second_arm64"] * memory / 1024 * billed_s


def route_costs(routes: list[dict]) -> list[dict]:
    """Per HTTP route at concurrency 1: API Gateway, Lambda and DynamoDB, in dollars."""
    mem = memory_mb()
    out = []
    for r in routes:
        if r["concurrency"] != 1 or r.get("handler_p50_ms") is None:
            continue
        fn = r["function"]
        lam = lambda_cost(mem.get(fn, 128), r["handler_p50_ms"])
        ddb = (r["read_units_median"] * PRICES["dynamodb_read_unit"]
               + r["write_units_median"] * PRICES["dynamodb_write_unit"])
        out.append({"route": r["route"], "function": fn, "memory_mb": mem.get(fn, 128),
                    "ms": r["handler_p50_ms"], "read_units": r["read_units_median"],
                    "write_units": r["write_units_median"], "api": PRICES["http_api_request"],
                    "lambda": lam, "dynamodb": ddb, "total": PRICES["http_api_request"] + lam + ddb})
    return out


# Queue requests per event: the relay's SendMessageBatch (10 a call) to the activity,
# notifications and realtime queues, and per queue a ReceiveMessage and a DeleteMessageBatch
# per 10-message batch (the event source mapping's long polls while idle are not counted).
QUEUES_PER_EVENT = 3
SQS_PER_EVENT = QUEUES_PER_EVENT * (0.1 + 0.2) + 0.1 + 0.2  # + the notices to the realtime queue


def event_cost(batches: dict) -> dict:
    """One domain event through the pipeline, from the workers' 10-message batches."""
    mem = memory_mb()
    parts = {}
    for name in ("activity-worker", "notification-worker", "broadcast-worker"):
        b = batches.get(name)
        if not b or "duration_ms_median" not in b:
            continue
        lam = lambda_cost(mem.get(name, 128), b["duration_ms_median"]) / 10
        ddb = (b["read_units_median"] * PRICES["dynamodb_read_unit"]
               + b["write_units_median"] * PRICES["dynamodb_write_unit"]) / 10
        parts[name] = lam + ddb
    # The relay: one invocation per stream batch (up to 10 records), no DynamoDB calls.
    parts["event-relay"] = lambda_cost(mem.get("event-relay", 128), 20) / 10
    parts["sqs"] = SQS_PER_EVENT * PRICES["sqs_request"]
    return {"parts": parts, "total": sum(parts.values())}


def month(routes: list[dict], event: dict) -> dict:
    """The stated team's month, from the per-operation costs."""
    by = {r["route"]: r["total"] for r in routes}

    def route(prefix: str) -> float:
        return next((v for k, v in by.items() if k.startswith(prefix)), 0.0)

    t = TEAM
    lines = {
        "edits (PATCH)": t["edits"] * route("PATCH /episodes/{id}"),
        "reads (GET an episode)": t["edits"] * t["reads_per_edit"] * route("GET /episodes/{id}"),
        "events through the pipeline": t["edits"] * event["total"],
        "live frames (one per connection per event)":
            t["edits"] * t["connections_per_episode"] * PRICES["websocket_message"],
        "notifications as frames": t["edits"] * t["watchers_per_episode"] * PRICES["websocket_message"],
        "connection minutes": t["connected_hours"] * 60 * PRICES["websocket_connection_minute"],
        # A ping every 30 s: a message in, one ws-api invocation (about 2 ms, one UpdateItem
        # per subscription), the pong out.
        "pings": t["connected_hours"] * 120 * (2 * PRICES["websocket_message"] + lambda_cost(128, 3)
                                               + 2 * PRICES["dynamodb_write_unit"]),
        "uploads (create, PUT to S3, complete)":
            t["uploads"] * (route("POST /episodes/{id}/files") + route("POST /files/{id}/complete")
                            + PRICES["s3_put"]),
        "downloads (presign, GET from S3)": t["downloads"] * (route("GET /files/{id}/download") + PRICES["s3_get"]),
    }
    return {"lines": lines, "total": sum(lines.values())}


def rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """Rows for the bench table: each route's cost per million, an event's, the month."""
    f = results.get("functions")
    if not f:
        return []
    routes = route_costs(f.get("routes", []))
    if not routes:
        return []
    out = []
    for r in routes:
        out.append(("cost (per million)", f"{r['route']} ({r['function']}, {r['memory_mb']} MB)",
                    f"${r['total'] * 1e6:,.2f} (API ${r['api'] * 1e6:.2f}, Lambda ${r['lambda'] * 1e6:.2f}, "
                    f"DynamoDB ${r['dynamodb'] * 1e6:.2f}: {r['read_units']:g} RRU + {r['write_units']:g} WRU)",
                    f"prices of {PRICES_DATE}", ""))
    ev = event_cost(f.get("batches", {}))
    out.append(("cost (per million)", "one domain event through the pipeline (relay, activity, "
                                      "notifications, broadcast, SQS)",
                f"${ev['total'] * 1e6:,.2f} (" + ", ".join(f"{k} ${v * 1e6:.2f}" for k, v in ev["parts"].items()) + ")",
                f"prices of {PRICES_DATE}", ""))
    m = month(routes, ev)
    out.append(("cost (a month)", f"{TEAM['people']} people, {TEAM['episodes']:,} episodes, {TEAM['edits']:,} edits, "
                                  f"{TEAM['connected_hours']} connected hours (tests/bench/cost.py TEAM)",
                f"${m['total']:,.2f} (" + ", ".join(f"{k} ${v:.2f}" for k, v in m["lines"].items()) + ")",
                "storage and free tiers not counted", ""))
    return out
