"""`make bench` (issue 7): one table of the figures that judge a change, each beside its target,
and the same table as Markdown and the raw figures as JSON under results/ (not committed).

    make up && make bench                      # the issue's sizes (about 25 minutes on 2 cores)
    make bench-quick                           # a tenth of the requests and events (about 6 minutes)
    BENCH_ONLY=functions make bench            # only the functions on their own (no pipeline)
    BENCH_ONLY=pipeline make bench             # only the pipeline through the running stack
    BENCH_ONLY=scale make bench                # only one busy episode: presence and fan-out (issue 15)
    BENCH_ONLY=lists make bench                # only the episode list against the catalogue's size
    BENCH_ONLY=media make bench                # only the media jobs on an hour of WAV and of MP3 (needs ffmpeg)
    BENCH_ONLY=search make bench               # only search on 10,000 episodes (issue 20)

Needs the local stack (`make up` or `make dev`); builds the AWS release binaries first.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charts  # noqa: E402
import cost  # noqa: E402
import functions  # noqa: E402
import media_jobs  # noqa: E402
import pipeline_live  # noqa: E402
import scale  # noqa: E402
import search  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ONLY = os.environ.get("BENCH_ONLY", "")

INIT_ABOVE_FLOOR_MS = 3.0
BINARY_MIB = 8.0
# The job worker carries the decoders of seven audio codecs (symphonia), the loudness meter and
# the image codecs: its own bound, checked like the others'.
BINARY_MIB_OF = {"job-worker": 10.0}
RSS_MIB = 20.0
OVERHEAD_MS = 1.0
FAN_OUT_SPEED_UP = 20.0
# Routes that read or write one item: exactly one DynamoDB call each (a write and its event are
# one transaction).
SINGLE_ITEM = {
    "POST /episodes", "GET /episodes/{id}", "PATCH /episodes/{id}", "DELETE /episodes/{id}",
    "GET /files/{id}", "GET /jobs/{id}", "PUT /episodes/{id}/watch", "DELETE /episodes/{id}/watch",
    "GET /me/notification-preferences", "PUT /me/notification-preferences",
    "POST /me/notifications/{id}/read", "GET /me/notifications/unread-count",
}
# Single-item writes that are one transaction (the item and its domain event).
WRITES = {"POST /episodes", "PATCH /episodes/{id}", "DELETE /episodes/{id}"}
# Single-item writes that are one PutItem, UpdateItem or DeleteItem.
PUTS = {"PUT /episodes/{id}/watch", "DELETE /episodes/{id}/watch", "PUT /me/notification-preferences",
        "POST /me/notifications/{id}/read"}
REFERENCE = {functions.FLOOR: "hello-world (floor)", functions.PLAIN: "plain SDK function (reference)"}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")))
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    ministack = subprocess.run([str(Path(sys.executable).parent / "pip"), "show", "ministack"],
                               capture_output=True, text=True).stdout
    version = next((line.split(":", 1)[1].strip() for line in ministack.splitlines() if line.startswith("Version")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1), "kernel": platform.release(),
            "rustc": rustc, "emulator": f"ministack {version}", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def ok(flag: bool) -> str:
    return "✅" if flag else "❌"


def fmt_lat(r: dict) -> str:
    return f"{r['p50_ms']:.2f} / {r['p95_ms']:.2f} / {r['p99_ms']:.2f}"


def rows_for(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(group, figure, measured, target, verdict)"""
    rows = []
    f = results.get("functions")
    if f:
        cold = f["cold_start"]
        floor = cold[functions.FLOOR]["init_ms"]
        for name, c in cold.items():
            label = REFERENCE.get(name, name)
            measured = (f"{c['init_ms']:.2f} ms ({c['init_ms'] - floor:+.2f}, {c['init_ms'] / floor:.2f}× floor); "
                        f"first invoke {c['first_invoke_ms']:.1f} ms")
            if name in REFERENCE:
                rows.append(("cold start", f"init: {label}", measured, "—", ""))
            else:
                limit = floor + INIT_ABOVE_FLOOR_MS
                rows.append(("cold start", f"init: {name}", measured, f"≤ {limit:.2f} ms (floor + 3)",
                             ok(c["init_ms"] <= limit)))
        for name, c in cold.items():
            label = REFERENCE.get(name, name)
            if name in REFERENCE:
                rows.append(("footprint", f"binary: {label}", f"{c['binary_mib']:.2f} MiB", "—", ""))
            else:
                bound = BINARY_MIB_OF.get(name, BINARY_MIB)
                rows.append(("footprint", f"binary: {name}", f"{c['binary_mib']:.2f} MiB", f"≤ {bound:.0f} MiB",
                             ok(c["binary_mib"] <= bound)))
        for name, r in f["rss"].items():
            rows.append(("footprint", f"peak RSS: {name}", f"{r['peak_mib']:.1f} MiB after {r['invokes']:,} invokes",
                         f"≤ {RSS_MIB:.0f} MiB", ok(r["peak_mib"] <= RSS_MIB and r["invokes"] >= 1000)))
        fl = f["emulator_floor"]
        for op in ("GetItem", "PutItem", "TransactWriteItems"):
            rows.append(("request cost", f"floor: the emulator's {op} (raw HTTP), p50 / p95 / p99",
                         f"c1 {fmt_lat(fl[f'{op} c1'])} ms; c16 {fmt_lat(fl[f'{op} c16'])} ms", "—", ""))
        rows.append(("request cost", "floor: the harness's round trip (hello-world echo), p50 / p95 / p99",
                     f"c1 {fmt_lat(fl['harness c1'])} ms; c16 {fmt_lat(fl['harness c16'])} ms", "—", ""))
        by_route: dict[tuple[str, str], dict[int, dict]] = {}
        for r in f["routes"]:
            by_route.setdefault((r["function"], r["route"]), {})[r["concurrency"]] = r
        for (fn, route), per in by_route.items():
            c1, c16 = per.get(1), per.get(16)
            calls = sorted({k for r in per.values() for k in r["dynamodb_calls"]})
            ddb = ", ".join(calls) if calls else "?"
            aws = sorted({k for r in per.values() for k in r["aws_calls"]})
            floor_op = "TransactWriteItems" if route in WRITES else "PutItem" if route in PUTS else "GetItem"
            own = fl.get(f"{floor_op} c1 before {fn}", fl[f"{floor_op} c1"])
            overhead = c1["p50_ms"] - own["p50_ms"]
            measured = (f"DynamoDB {ddb} (AWS {', '.join(map(str, aws))}); c1 {fmt_lat(c1)} ms; "
                        f"c16 {fmt_lat(c16)} ms" if c16 else "")
            if c1.get("own_p50_ms") is not None:
                measured += f"; own time (c1 p50, AWS wait excluded) {c1['own_p50_ms']:.2f} ms"
            if route in SINGLE_ITEM:
                one = calls == ["1"]
                measured += f"; overhead {overhead:+.2f} ms over {floor_op} ({own['p50_ms']:.2f})"
                rows.append(("request cost", f"{fn}: {route}", measured, "1 DynamoDB call; overhead ≤ 1 ms p50",
                             ok(one and overhead <= OVERHEAD_MS)))
            else:
                rows.append(("request cost", f"{fn}: {route}", measured, "—", ""))
        for name, b in f["batches"].items():
            fresh = f"fresh batch {b['fresh']}; " if "fresh" in b else ""
            spread = (f"over {b['batches']:,} batches median {b['median']:g} (min {b['min']}, max {b['max']})"
                      if "batches" in b else "")
            rows.append(("worker efficiency", f"DynamoDB calls per 10-message batch: {name}", fresh + spread, "—", ""))
        fan = f["fan_out"]
        seq, par = fan["one at a time"], fan["bounded concurrency (default)"]
        speed_up = seq["fan_out_ms"] / par["fan_out_ms"]
        rows.append(("pipeline", f"fan-out of one event to {f['fan_out_connections']:,} connections "
                                 f"(@connections answering in {f['fan_out_post_ms']:g} ms)",
                     f"{par['fan_out_ms']:.0f} ms ({par['most_in_flight']} in flight) vs {seq['fan_out_ms']:,.0f} ms "
                     f"one at a time: {speed_up:.1f}×", f"≥ {FAN_OUT_SPEED_UP:.0f}×", ok(speed_up >= FAN_OUT_SPEED_UP)))
    p = results.get("pipeline")
    if p:
        t = p["throughput"]
        secs = t["seconds"]
        slowest = max(secs.values()) if len(secs) == 4 else float("nan")
        rows.append(("pipeline", f"{t['events']:,} events → activity, notifications, frames (events/s)",
                     f"{t['events'] / slowest:.0f} events/s (all delivered in {slowest:.1f} s; " +
                     ", ".join(f"{k} {v:.1f} s" for k, v in sorted(secs.items())) + ")", "—", ""))
        w = p["write_to_frame"]
        rows.append(("pipeline", f"HTTP write → WebSocket frame, p50 / p95 ({w['writes']} writes {w['gap_s']:g} s apart)",
                     f"{w['p50_ms']:.0f} / {w['p95_ms']:.0f} ms (the PATCH itself {w['patch_p50_ms']:.0f} ms)", "—", ""))
    sc = results.get("scale")
    if sc:
        for r in sc["presence"]:
            n = r["viewers"]
            rows.append(("one busy episode", f"presence frames posted while {n:,} viewers join (was N(N-1)/2 = "
                                             f"{r['frames_before_rounds']:,})",
                         f"{r['presence_frames']:,} in {r['rounds']} rounds ({r['occupancy_frames']:,} counts), "
                         f"≤ {r['most_per_connection_per_round']} per connection per round; joins took {r['join_s']} s",
                         f"≤ 3 N = {3 * n:,} per window", ok(r["most_per_connection_per_round"] <= 1)))
            rows.append(("one busy episode", f"{n:,} connections: dropped; told the final count",
                         f"{r['dropped']} dropped; {r['told_the_final_count']:,} of {n:,} told", "0 dropped",
                         ok(r["dropped"] == 0)))
            rows.append(("one busy episode", f"then one write → event frame at all {n:,}, p50 / last",
                         f"{r['write_to_frame_p50_ms']} / {r['write_to_frame_last_ms']} ms "
                         f"({r['frames_received']:,} of {n:,} received)", "—", ok(r["frames_received"] == n)))
        for r in sc.get("lists", []):
            n, lay = r["catalogue"], r["layout"]
            before = ""
            if "before_sharding_first_page_aws_read_units" in r:
                before = (f"; the one query of before: {r['before_sharding_first_page_aws_read_units']:g} / "
                          f"{r['before_sharding_page_of_100_aws_read_units']:g} RRU")
            rows.append(("episode list", f"GET /episodes?limit=20 over {n:,} episodes, {lay}: p50 / p95; function p50",
                         f"{r['first_page_p50_ms']} / {r['first_page_p95_ms']} ms; {r['first_page_function_p50_ms']} ms "
                         f"({r['first_page_function_queries']:g} queries)", "—", ""))
            rows.append(("episode list", f"{n:,} episodes, {lay}: a page of 20 / of 100 at AWS rates",
                         f"{r['first_page_queries']} / {r['page_of_100_queries']} queries, "
                         f"{r['first_page_aws_read_units']:g} / {r['page_of_100_aws_read_units']:g} RRU{before}", "—", ""))
            rows.append(("episode list", f"{n:,} episodes, {lay}: the whole list in pages of 100",
                         f"{r['walk_pages']} pages in {r['walk_s']} s ({r['walk_page_p50_ms']} ms a page)"
                         + (f"; then the migration moved {r['migration_moved']:,} in {r['migration_s']} s"
                            if "migration_s" in r else ""), "—", ok(r["walk_listed"] >= n)))
        for r in sc["notifications"]:
            w = r["watchers"]
            rows.append(("one busy episode", f"a status move for {w:,} watchers: DynamoDB calls, worker time",
                         f"{r['dynamodb_calls']} calls in {r['duration_ms']:.0f} ms ({r['batches']} batch(es))",
                         f"≈ ⌈W/49⌉ = {math.ceil(w / 49)} (+ reads)", ""))
    rows += media_jobs.table_rows(results.get("media", []))
    rows += search.table_rows(results.get("search"))
    rows += cost.rows(results)
    return rows


def markdown(rows, m: dict) -> str:
    out = [f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
           f"{m['rustc']}, {m['emulator']}; command: `make up && make bench`.", "",
           "| | figure | measured | target | |", "|---|---|---|---|---|"]
    out += [f"| {g} | {fig} | {meas} | {tgt} | {v} |" for g, fig, meas, tgt, v in rows]
    return "\n".join(out) + "\n"


def main() -> None:
    stack = json.loads((ROOT / ".local" / "stack.json").read_text())
    results: dict = {"machine": machine()}
    if ONLY in ("", "functions"):
        binaries = functions.release_binaries()
        results["functions"] = asyncio.run(functions.Bench(stack, binaries).run())
    if ONLY in ("", "pipeline"):
        results["pipeline"] = asyncio.run(pipeline_live.measure())
    if ONLY in ("", "scale"):
        results["scale"] = asyncio.run(scale.measure())
    if ONLY in ("", "media"):
        results["media"] = media_jobs.measure()
    if ONLY in ("", "search"):
        results["search"] = search.measure()
    if ONLY == "lists":
        results["scale"] = {"lists": scale.lists.measure(), "presence": [], "notifications": []}
    rows = rows_for(results)
    folder = ROOT / "results"
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (folder / f"bench-{stamp}.json").write_text(json.dumps(results, indent=2))
    md = markdown(rows, results["machine"])
    (folder / f"bench-{stamp}.md").write_text(md)
    (folder / "latest.md").write_text(md)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print()
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(5)).rstrip())
    print(f"\nwritten: results/bench-{stamp}.json, results/bench-{stamp}.md (and results/latest.md)")
    if "scale" in results:
        for path in charts.draw(results["scale"], results["machine"]):
            print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
