"""The scale curves of `make bench` (issue 15) as PNG charts under results/charts/, which the
README shows (that folder is committed; the rest of results/ is not).

    python tests/bench/charts.py results/bench-<stamp>.json    # redraw from a run's figures
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "results" / "charts"


def _save(fig, name: str, caption: str) -> Path:
    fig.text(0.01, 0.01, caption, fontsize=7, color="#555")
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    path = FOLDER / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(scale: dict, machine: dict) -> list[Path]:
    FOLDER.mkdir(parents=True, exist_ok=True)
    caption = f"make bench, {machine.get('date', '?')}, {machine.get('cores', '?')} cores, {machine.get('emulator', '?')}"
    written = []
    p = scale.get("presence") or []
    if p:
        n = [r["viewers"] for r in p]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(n, [r["presence_frames"] for r in p], "o-", label="presence frames posted (rounds)")
        ax.plot(n, [r["frames_before_rounds"] for r in p], "s--", label="one frame per join to all: N(N-1)/2")
        ax.plot(n, [3 * x for x in n], ":", label="3 N (the target per window; joins here span many windows)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("viewers joining one episode (N)")
        ax.set_ylabel("frames")
        ax.set_title("Presence frames vs viewers")
        ax.legend(fontsize=8)
        written.append(_save(fig, "presence-frames.png", caption))

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(n, [r["write_to_frame_p50_ms"] for r in p], "o-", label="p50")
        ax.plot(n, [r["write_to_frame_last_ms"] for r in p], "s-", label="last connection")
        ax.set_xlabel("subscribed connections")
        ax.set_ylabel("HTTP write → event frame (ms)")
        ax.set_title("Fan-out time vs connections")
        ax.legend(fontsize=8)
        written.append(_save(fig, "fan-out.png", caption))
    w = scale.get("notifications") or []
    if w:
        x = [r["watchers"] for r in w]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(x, [r["dynamodb_calls"] for r in w], "o-", label="DynamoDB calls for the event (measured)")
        ax.plot(x, [r["transactions_expected"] for r in w], "s--", label="ceil(W / 50) transactions")
        ax.plot(x, x, ":", label="one transaction per watcher (before)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("watchers of the episode (W)")
        ax.set_ylabel("DynamoDB calls")
        ax.set_title("Notification fan-out: calls vs watchers")
        ax.legend(fontsize=8)
        written.append(_save(fig, "notification-calls.png", caption))
    lists = scale.get("lists") or []
    if lists:
        fig, ax = plt.subplots(figsize=(6, 4))
        for layout, mark in (("sharded", "o-"), ("one partition", "s--")):
            rs = [r for r in lists if r["layout"] == layout]
            if rs:
                x = [r["catalogue"] for r in rs]
                ax.plot(x, [r["first_page_p50_ms"] for r in rs], mark, label=f"first page of 20, p50 ({layout})")
                ax.plot(x, [r["walk_page_p50_ms"] for r in rs], mark, alpha=0.5,
                        label=f"each page of 100, walking it all ({layout})")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("episodes in the catalogue")
        ax.set_ylabel("GET /episodes, HTTP (ms)")
        ax.set_title("List latency vs catalogue size, on the emulator")
        ax.legend(fontsize=7)
        fig.text(0.01, 0.04, "The emulator sorts a whole index partition on every Query; DynamoDB reads only\n"
                             "the items it returns, so there a page's time does not grow with the catalogue.",
                 fontsize=6, color="#555")
        written.append(_save(fig, "list-latency.png", caption))
    return written


if __name__ == "__main__":
    results = json.loads(Path(sys.argv[1]).read_text())
    for path in draw(results.get("scale", {}), results.get("machine", {})):
        print(f"written: {path.relative_to(ROOT)}")
