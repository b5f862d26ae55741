"""Figures for the media jobs (`make bench`, or `BENCH_ONLY=media make bench`): each job type on
a BENCH_MEDIA_MINUTES (60) minute stereo 48 kHz 16-bit WAV and on the same programme as a 192
kbit/s MP3, both made by ffmpeg, uploaded to the local stack and run by the real job worker.

For each: the worker's own streaming rate (MiB/s of the file, from the job's result), × real
time (the file's duration over the time the worker took), the wall time from the job's POST to
`succeeded`, and the job worker's peak memory (VmHWM of its bootstrap, read from /proc; the
worker's processes are stopped before each job, so each peak is that job's alone).

The local stack's job worker is the `local` profile build (its media crates optimised, the rest
not); on AWS it is the release build on 1769 MB (one vCPU) by default. The function's timeout
is raised to 600 s for the run and put back afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

MIB = 1024 * 1024
#: What the worker may hold while it decodes, whatever the file's length (it starts at about 24 MiB).
PEAK_MIB = 64
MINUTES = float(os.environ.get("BENCH_MEDIA_MINUTES", "60"))
TYPES = ["checksum", "media-probe", "loudness", "waveform"]


def worker_processes(function: str) -> dict[int, int]:
    """pid → VmHWM (KiB) of every process running `function`'s bootstrap."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"AWS_LAMBDA_FUNCTION_NAME={function}".encode() not in env:
                continue
            if not Path(f"/proc/{pid}/exe").resolve().name == "bootstrap":
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    found[int(pid)] = int(line.split()[1])
        except OSError:
            continue
    return found


def configure(lam, name: str, **changes) -> None:
    lam.update_function_configuration(FunctionName=name, **changes)
    deadline = time.monotonic() + 30
    while lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus") == "InProgress":
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: configuration update still in progress")
        time.sleep(0.2)


def make_files(folder: Path) -> dict[str, tuple[Path, str]]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is needed (apt-get install ffmpeg)")
    seconds = MINUTES * 60
    source = ["-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=0.3:r=48000:d={seconds},"
              "volume='0.4+0.6*abs(sin(t/7))':eval=frame,aformat=channel_layouts=stereo"]
    wav, mp3 = folder / "programme.wav", folder / "programme.mp3"
    run = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    subprocess.run([*run, *source, "-c:a", "pcm_s16le", str(wav)], check=True)
    subprocess.run([*run, "-i", str(wav), "-c:a", "libmp3lame", "-b:a", "192k", str(mp3)], check=True)
    return {"WAV": (wav, "audio/wav"), "MP3": (mp3, "audio/mpeg")}


def measure() -> list[dict]:
    stack = json.loads((ROOT / ".local" / "stack.json").read_text())
    url = stack["http_url"]
    s = requests.Session()
    auth = {"Authorization": f"Bearer {oidc.mint('bench-media-' + uuid.uuid4().hex[:4], 'editor', 'Bench')}"}
    eid = s.post(f"{url}/episodes", json={"title": "media jobs bench"}, headers=auth).json()["id"]
    function = f"{stack['stack_name']}-job-worker"
    lam = boto3.client("lambda", endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    before = lam.get_function_configuration(FunctionName=function)

    def upload(path: Path, content_type: str) -> str:
        size = path.stat().st_size
        r = s.post(f"{url}/episodes/{eid}/files", headers=auth,
                   json={"name": path.name, "content_type": content_type, "size": size}).json()
        up, fid = r["upload"], r["file"]["id"]
        with path.open("rb") as f:
            if up["kind"] == "single":
                s.put(up["url"], data=f.read(), headers=up["headers"]).raise_for_status()
            else:
                for part in up["parts"]:
                    f.seek((part["number"] - 1) * up["part_size"])
                    s.put(part["url"], data=f.read(up["part_size"])).raise_for_status()
        s.post(f"{url}/files/{fid}/complete", headers=auth).raise_for_status()
        return fid

    def wait(jid: str, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            j = s.get(f"{url}/jobs/{jid}", headers=auth).json()
            if j["state"] in ("succeeded", "failed", "cancelled"):
                return j
            time.sleep(0.1)
        raise SystemExit(f"job {jid} did not finish")

    rows = []
    env = before["Environment"]["Variables"]
    try:
        configure(lam, function, Timeout=600, Environment={"Variables": env | {"JOB_LEASE_SECONDS": "610"}})
        with tempfile.TemporaryDirectory(prefix="media-bench-") as folder:
            files = make_files(Path(folder))
            for label, (path, content_type) in files.items():
                fid = upload(path, content_type)
                size_mib = path.stat().st_size / MIB
                for job_type in TYPES:
                    # A fresh worker process for each job: its peak is this job's alone.
                    for pid in worker_processes(function):
                        os.kill(pid, signal.SIGKILL)
                    time.sleep(0.5)
                    started = time.perf_counter()
                    r = s.post(f"{url}/episodes/{eid}/jobs", headers=auth, json={"type": job_type, "file_id": fid})
                    r.raise_for_status()
                    job = wait(r.json()["id"])
                    wall = time.perf_counter() - started
                    if job["state"] != "succeeded":
                        raise SystemExit(f"{job_type} on the {label}: {job['state']}: {job['error']}")
                    peaks = worker_processes(function)
                    rate = job["result"].get("mib_per_second")
                    worked = size_mib / rate if rate else wall
                    rows.append({"file": label, "minutes": MINUTES, "mib": round(size_mib, 1), "type": job_type,
                                 "mib_per_second": rate, "realtime": round(MINUTES * 60 / worked, 1),
                                 "wall_s": round(wall, 2),
                                 "peak_mib": round(max(peaks.values()) / 1024, 1) if peaks else None})
                    print(f"  {label} {job_type}: {rows[-1]}", flush=True)
    finally:
        configure(lam, function, Timeout=before["Timeout"], Environment={"Variables": env})
    return rows


def table_rows(media: list[dict]) -> list[tuple[str, str, str, str, str]]:
    out = []
    for r in media:
        rate = f"{r['mib_per_second']:,.1f} MiB/s, " if r["mib_per_second"] else ""
        peak = f"; peak RSS {r['peak_mib']} MiB" if r["peak_mib"] is not None else ""
        within = r["peak_mib"] is not None and r["peak_mib"] <= PEAK_MIB
        out.append(("media jobs", f"{r['type']} on a {r['minutes']:g}-minute stereo 48 kHz {r['file']} ({r['mib']:,} MiB)",
                    f"{rate}{r['realtime']:,}× real time; POST → succeeded {r['wall_s']} s{peak}",
                    f"peak ≤ {PEAK_MIB} MiB whatever the length", "✅" if within else "❌"))
    return out


if __name__ == "__main__":
    for row in table_rows(measure()):
        print("  ".join(row))
