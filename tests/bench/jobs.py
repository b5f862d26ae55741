"""Figures for processing jobs. Prints a table; not a test. Needs the local stack up.

  * checksum throughput on a BENCH_JOB_MIB (200) MiB file in the emulator's S3: as the worker
    measured its own streaming, and from the job's POST to `succeeded`;
  * the job worker's peak memory (VmHWM of its bootstrap processes, read from /proc) before and
    after that job — it streams, so the peak must not grow with the file;
  * jobs per second for BENCH_TRIVIAL_JOBS (200) checksum jobs on a 1 KiB file, created by 8
    clients at once, from the first POST until the last one succeeded.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

MIB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_JOB_MIB", "200"))
TRIVIAL = int(os.environ.get("BENCH_TRIVIAL_JOBS", "200"))


def worker_peaks(function: str) -> dict[int, int]:
    """VmHWM (KiB) of every process running `function`'s bootstrap."""
    peaks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"AWS_LAMBDA_FUNCTION_NAME={function}".encode() not in env:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(pid)] = int(line.split()[1])
        except OSError:
            continue
    return peaks


def main() -> None:
    stack = json.loads((ROOT / ".local" / "stack.json").read_text())
    url = stack["http_url"]
    s = requests.Session()
    auth = {"Authorization": f"Bearer {oidc.mint('bench-jobs-' + uuid.uuid4().hex[:4], 'editor', 'Bench')}"}
    eid = s.post(f"{url}/episodes", json={"title": "jobs bench"}, headers=auth).json()["id"]
    rows = []

    def upload(data_size: int, name: str) -> str:
        r = s.post(f"{url}/episodes/{eid}/files", headers=auth,
                   json={"name": name, "content_type": "audio/mpeg", "size": data_size}).json()
        up, fid = r["upload"], r["file"]["id"]
        block = os.urandom(MIB)
        if up["kind"] == "single":
            s.put(up["url"], data=block[:data_size], headers=up["headers"]).raise_for_status()
        else:
            for part in up["parts"]:
                start = (part["number"] - 1) * up["part_size"]
                length = min(up["part_size"], data_size - start)
                body = (block * (length // MIB + 1))[:length]
                s.put(part["url"], data=body).raise_for_status()
        s.post(f"{url}/files/{fid}/complete", headers=auth).raise_for_status()
        return fid

    def wait(jid: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            j = s.get(f"{url}/jobs/{jid}", headers=auth).json()
            if j["state"] in ("succeeded", "failed", "cancelled"):
                return j
            time.sleep(0.05)
        raise SystemExit(f"job {jid} did not finish")

    # ---- checksum throughput and memory
    big = upload(SIZE_MIB * MIB, "big.mp3")
    function = f"{stack['stack_name']}-job-worker"
    # Warm the worker, so its processes exist to be measured.
    wait(s.post(f"{url}/episodes/{eid}/jobs", headers=auth, json={"type": "checksum", "file_id": upload(1024, "warm.mp3")}).json()["id"])
    before = worker_peaks(function)
    started = time.perf_counter()
    job = wait(s.post(f"{url}/episodes/{eid}/jobs", headers=auth, json={"type": "checksum", "file_id": big}).json()["id"])
    wall = time.perf_counter() - started
    after = worker_peaks(function)
    if job["state"] != "succeeded":
        raise SystemExit(f"checksum job {job['state']}: {job['error']}")
    rows.append((f"checksum of a {SIZE_MIB} MiB file: worker's streaming rate", f"{job['result']['mib_per_second']} MiB/s"))
    rows.append(("  POST → succeeded (wall)", f"{wall:.2f} s = {SIZE_MIB / wall:.0f} MiB/s"))
    if after:
        rows.append(("job worker peak RSS (VmHWM) before → after, per process",
                     ", ".join(f"{before.get(p, 0) / 1024:.1f} → {after[p] / 1024:.1f} MiB" for p in sorted(after))))
    else:
        rows.append(("job worker peak RSS", "no worker process found in /proc (not a local ministack?)"))

    # ---- trivial jobs per second
    tiny = upload(1024, "tiny.mp3")

    def create(_):
        r = requests.post(f"{url}/episodes/{eid}/jobs", headers=auth, json={"type": "checksum", "file_id": tiny})
        r.raise_for_status()
        return r.json()["id"]

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(TRIVIAL)))
    created = time.perf_counter() - started
    states = [wait(j)["state"] for j in ids]
    total = time.perf_counter() - started
    rows.append((f"{TRIVIAL} trivial checksum jobs (8 clients creating)", f"{TRIVIAL / total:.1f} jobs/s end to end "
                 f"({total:.1f} s; creating them took {created:.1f} s); {states.count('succeeded')} succeeded"))

    width = max(len(k) for k, _ in rows)
    print(f"\njobs figures ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


if __name__ == "__main__":
    main()
