"""`make chaos`: the fault, crash, redrive and load scenarios of tests/e2e (test_faults.py,
test_crashes.py, test_redrive.py, test_load.py), CHAOS_SCALE times larger than `make test` runs them, then the
table of what they measured (results/reliability.json), as the README shows it.

Needs the local stack (`make up`). Every scenario also asserts its invariants, so a lost or
doubled effect fails the run as well as showing in the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "reliability.json"
HEADERS = ["scenario", "load", "faults injected", "requests ok / 503", "events lost", "effects doubled",
           "new messages in DLQs", "time to recover"]


def table(report: dict) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in report["rows"]:
        recovery = "—" if r["recovery_s"] is None else f"{r['recovery_s']} s"
        lines.append(f"| {r['scenario']} | {r['load']} | {r['faults']} | {r['ok']} / {r['unavailable']} | "
                     f"{r['lost']} | {r['doubled']} | {r['dead_letters']} | {recovery} |")
    return "\n".join(lines)


def main() -> int:
    scale = os.environ.get("CHAOS_SCALE", "5")
    OUT.unlink(missing_ok=True)
    code = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/e2e/test_faults.py",
         "tests/e2e/test_crashes.py", "tests/e2e/test_redrive.py", "tests/e2e/test_load.py"],
        cwd=ROOT, env={**os.environ, "CHAOS_SCALE": scale}).returncode
    if not OUT.exists():
        print("no figures were written (did the stack answer?)", file=sys.stderr)
        return code or 1
    report = json.loads(OUT.read_text())
    print(f"\nReliability, CHAOS_SCALE={report['scale']} (results/reliability.json):\n")
    print(table(report))
    return code


if __name__ == "__main__":
    sys.exit(main())
