"""The media jobs and jobs on upload, against the local stack, on files ffmpeg makes (a tool
nobody here wrote, installed by .ci/run): loudness in every audio format the stack accepts,
checked against ffmpeg's own EBU R128 meter (its `ebur128` filter) on the same bytes; EBU Tech
3341's first signal read to ±0.1 LU; waveforms downloaded and read as audiowaveform JSON;
MP4, MOV and WebM video probed; and the jobs that start by themselves when a file becomes
available — by the stack's default rules (the template's, set on the functions for the test)
and by an episode's own — once per file however often the upload is confirmed, in the
activity log and live."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import ROOT, eventually, people
from faults import function_env
from test_jobs import ends, start, upload
from test_realtime import Client

FFMPEG = shutil.which("ffmpeg")
RULES_ACTOR = "system:upload-rules"


def ffmpeg(*args: str) -> subprocess.CompletedProcess:
    if FFMPEG is None:
        pytest.fail("ffmpeg is not installed (.ci/run installs it with apt-get)")
    return subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-y", *args],
                          capture_output=True, text=True, timeout=120, check=True)


def make(tmp: Path, name: str, source: list[str], *codec: str) -> bytes:
    out = tmp / name
    ffmpeg(*source, *codec, str(out))
    return out.read_bytes()


def sine(level_dbfs: float, seconds: float, rate: int = 48000) -> list[str]:
    """A stereo 1 kHz sine whose peak is `level_dbfs` (EBU Tech 3341's signals)."""
    a = 10 ** (level_dbfs / 20)
    expr = f"{a}*sin(2*PI*1000*t)"
    return ["-f", "lavfi", "-i", f"aevalsrc=exprs={expr}|{expr}:s={rate}:d={seconds}"]


def programme(seconds: float = 24) -> list[str]:
    """Stereo pink noise (the same every run: seeded), its second half 10 dB down: loud enough
    to gate, with a loudness range of about 10 LU (as EBU Tech 3342's first case)."""
    return ["-f", "lavfi", "-i",
            f"anoisesrc=color=pink:amplitude=0.25:r=48000:d={seconds}:seed=3341,"
            f"volume='if(lt(t,{seconds / 2}),1,0.316)':eval=frame,aformat=channel_layouts=stereo"]


def ffmpeg_loudness(path: Path) -> dict:
    """ffmpeg's EBU R128 meter on the file (its summary: one decimal)."""
    err = ffmpeg("-i", str(path), "-af", "ebur128=peak=true+sample", "-f", "null", "-").stderr
    summary = err[err.rindex("Summary:"):]

    def value(label: str) -> float:
        return float(re.search(rf"{label}:\s+(-?[\d.]+|-inf)", summary).group(1))

    return {"integrated": value("I"), "range": value("LRA"),
            "true_peak": float(re.search(r"True peak:\s+Peak:\s+(-?[\d.]+)", summary).group(1)),
            "sample_peak": float(re.search(r"Sample peak:\s+Peak:\s+(-?[\d.]+)", summary).group(1))}


def template_rules() -> str:
    """The template's default rules for jobs on upload, as deployed on AWS."""
    text = (ROOT / "infra" / "template.yaml").read_text()
    block = text[text.index("  UploadJobs:"):]
    default = re.search(r"Default: '(.*)'", block).group(1)
    json.loads(default)
    return default


def stack_rules(stack, aws, rules: str):
    """The stack's rules for jobs on upload set to `rules` on both functions that read them,
    inside the block; put back as they were whatever happens."""
    return function_env(stack, aws, ("job-worker", "jobs-api"), {"UPLOAD_JOBS": rules})


def jobs_of(api, token, eid) -> list[dict]:
    r = api.request("GET", f"/episodes/{eid}/jobs", token, params={"limit": 100})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def download(api, token, fid) -> bytes:
    r = api.request("GET", f"/files/{fid}/download", token)
    assert r.status_code == 200, r.text
    return requests.get(r.json()["url"], timeout=30).content


def test_an_upload_starts_the_stacks_default_jobs_once_as_the_system(api, stack, aws, events_of, tmp_path):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (_, alice), (_, vic) = p["alice"], p["vic"]
    eid = api.create(alice, title="On upload")["id"]
    live = Client(stack["ws_url"], vic)
    try:
        live.subscribe(eid)
        # EBU Tech 3341 case 1: a stereo 1 kHz sine at −23 dBFS for 20 s reads −23.0 LUFS.
        data = make(tmp_path, "case1.wav", sine(-23, 20), "-c:a", "pcm_s16le")
        with stack_rules(stack, aws, template_rules()):
            served = api.request("GET", f"/episodes/{eid}/upload-rules", vic).json()
            assert [j["type"] for j in served["effective"]["audio"]["jobs"]] == [
                "checksum", "media-probe", "loudness", "waveform"]
            assert served["effective"]["audio"]["from"] == "stack"
            fid = upload(api, alice, eid, data, "case 1.wav", "audio/wav")
            # The upload is confirmed again (a client retrying): the same file, no new event.
            assert api.request("POST", f"/files/{fid}/complete", alice).status_code == 200
            jobs = eventually(lambda: (js := jobs_of(api, alice, eid)) and len(js) >= 4
                              and all(j["state"] == "succeeded" for j in js) and js, timeout=90)
            # Its event delivered twice more (as SQS may, or a redrive): no job starts again.
            uploaded = [e for e in events_of(eid) if e["type"] == "file.uploaded" and e["resource"]["id"] == fid]
            assert len(uploaded) == 1, uploaded
            sqs = aws("sqs")
            for _ in range(2):
                sqs.send_message(QueueUrl=stack["outputs"]["JobsQueueUrl"], MessageBody=json.dumps(uploaded[0]))
            # Both received (none waiting; earlier tests may leave messages in flight), then
            # handled: the worker answers a second delivery in milliseconds.
            eventually(lambda: sqs.get_queue_attributes(
                QueueUrl=stack["outputs"]["JobsQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"],
            )["Attributes"]["ApproximateNumberOfMessages"] == "0", timeout=30)
            time.sleep(2)
        jobs = jobs_of(api, alice, eid)
        assert sorted(j["type"] for j in jobs) == ["checksum", "loudness", "media-probe", "waveform"]
        assert {j["created_by"]["id"] for j in jobs} == {RULES_ACTOR}
        assert {j["file_id"] for j in jobs} == {fid}
        by_type = {j["type"]: j for j in jobs}

        loud = by_type["loudness"]["result"]
        assert abs(loud["integrated_lufs"] - -23.0) <= 0.1, loud
        assert abs(loud["sample_peak_dbfs"] - -23.0) <= 0.05, loud
        # The default target is the podcast one: −23 LUFS is 7 LU too quiet.
        assert loud["verdict"]["passed"] is False and loud["verdict"]["target"]["integrated_lufs"] == -16.0
        assert any("below" in problem for problem in loud["verdict"]["problems"]), loud

        file = api.request("GET", f"/files/{fid}", alice).json()
        meta = file["metadata"]
        assert meta["loudness"]["integrated_lufs"] == loud["integrated_lufs"]
        assert meta["media"]["sample_rate"] == 48000 and meta["media"]["channels"] == 2
        wave_id = meta["waveform"]["file_id"]
        assert wave_id == by_type["waveform"]["result"]["file_id"]
        waveform = json.loads(download(api, alice, wave_id))
        # 20 points a second by default: 2,400 samples a point at 48 kHz.
        assert (waveform["version"], waveform["channels"], waveform["bits"]) == (2, 1, 8)
        assert waveform["samples_per_pixel"] == 2400 and waveform["length"] == 400
        peak = round(10 ** (-23 / 20) * 32767 / 256)
        assert len(waveform["data"]) == 800
        assert all(abs(v) in range(peak - 1, peak + 2) for v in waveform["data"]), waveform["data"][:10]
        # The waveform is a file of the episode, and started nothing itself.
        listed = api.request("GET", f"/episodes/{eid}/files", alice).json()["items"]
        assert sorted(f["id"] for f in listed) == sorted([fid, wave_id])

        # In the activity log, as the system, and live.
        entries = eventually(lambda: (r := api.request("GET", f"/episodes/{eid}/activity", alice,
                                                       params={"limit": 100}).json()["items"])
                             and sum(e["action"] == "job.succeeded" for e in r) == 4 and r, timeout=30)
        created = [e for e in entries if e["action"] == "job.created"]
        assert len(created) == 4 and {e["actor"]["id"] for e in created} == {RULES_ACTOR}
        for j in jobs:
            live.wait_for(lambda f, j=j: f["type"] == "event" and f["event"]["type"] == "job.succeeded"
                          and f["event"]["resource"]["id"] == j["id"], timeout=30)
    finally:
        live.close()


def test_an_episodes_own_rules_replace_the_stacks_for_their_kinds(api, stack, aws, tmp_path):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (_, alice), (_, vic) = p["alice"], p["vic"]
    eid = api.create(alice, title="Broadcast")["id"]
    with stack_rules(stack, aws, template_rules()):
        own_rules_replace_the_stacks(api, eid, alice, vic, tmp_path)
    # Cleared: the episode follows the stack again.
    r = api.request("DELETE", f"/episodes/{eid}/upload-rules", alice)
    assert r.status_code == 200 and r.json()["episode"] == {}, r.text
    assert api.request("GET", f"/episodes/{eid}/upload-rules", vic).json()["effective"]["audio"]["from"] == "stack"


def own_rules_replace_the_stacks(api, eid, alice, vic, tmp_path):
    rules = {"audio": [{"type": "loudness", "params": {"preset": "ebu-r128"}}], "image": []}
    assert api.request("PUT", f"/episodes/{eid}/upload-rules", vic, json=rules).status_code == 403
    r = api.request("PUT", f"/episodes/{eid}/upload-rules", alice, json={"audio": ["thumbnail"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "audio.0.type", r.text
    r = api.request("PUT", f"/episodes/{eid}/upload-rules", alice, json=rules)
    assert r.status_code == 200, r.text
    assert r.json()["effective"]["audio"]["from"] == "episode"
    assert r.json()["updated_by"]["id"].startswith("alice-")

    # Audio: the episode's one job instead of the stack's four. Tech 3341 case 1 meets EBU R128
    # (−23 LUFS ± 0.5 LU, true peak ≤ −1 dBTP).
    wav = upload(api, alice, eid, make(tmp_path, "a.wav", sine(-23, 20), "-c:a", "pcm_s16le"),
                 "a.wav", "audio/wav")
    # Images: nothing, instead of the stack's thumbnail. Video: the stack's checksum and probe.
    upload(api, alice, eid, make(tmp_path, "c.png", ["-f", "lavfi", "-i", "color=c=red:s=64x64:d=1"],
                                 "-frames:v", "1"), "c.png", "image/png")
    mp4 = upload(api, alice, eid, make(tmp_path, "v.mp4", ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"],
                                       "-c:v", "libx264", "-pix_fmt", "yuv420p"), "v.mp4", "video/mp4")
    jobs = eventually(lambda: (js := jobs_of(api, alice, eid)) and len(js) >= 3
                      and all(j["state"] == "succeeded" for j in js) and js, timeout=60)
    time.sleep(3)
    jobs = jobs_of(api, alice, eid)
    assert sorted((j["type"], j["file_id"]) for j in jobs) == sorted(
        [("loudness", wav), ("checksum", mp4), ("media-probe", mp4)]), jobs
    result = next(j for j in jobs if j["type"] == "loudness")["result"]
    assert result["verdict"]["passed"] is True, result
    assert result["verdict"]["target"] == {"integrated_lufs": -23.0, "tolerance_lu": 0.5,
                                           "max_true_peak_dbtp": -1.0}


FORMATS = [
    # name, content type, ffmpeg codec arguments, tolerance against ffmpeg's meter (LU; it
    # prints one decimal)
    ("take.wav", "audio/wav", ["-c:a", "pcm_s24le"], 0.1),
    ("take.flac", "audio/flac", ["-c:a", "flac"], 0.1),
    ("take.mp3", "audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "192k"], 0.1),
    ("take.m4a", "audio/mp4", ["-c:a", "aac", "-b:a", "192k"], 0.1),
    ("take.aac", "audio/aac", ["-c:a", "aac", "-b:a", "192k", "-f", "adts"], 0.1),
    ("take.ogg", "audio/ogg", ["-c:a", "libvorbis", "-q:a", "6"], 0.1),
]


def test_loudness_agrees_with_ffmpegs_meter_in_every_audio_format(api, tmp_path):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Formats")["id"]
    started = {}
    for name, content_type, codec, _ in FORMATS:
        data = make(tmp_path, name, programme(), *codec)
        fid = upload(api, alice, eid, data, name, content_type)
        started[name] = start(api, alice, eid, {"type": "loudness", "file_id": fid})["id"]
    for name, _, _, tolerance in FORMATS:
        done = ends(api, alice, started[name], "succeeded", timeout=90)["result"]
        theirs = ffmpeg_loudness(tmp_path / name)
        print(name, {k: done[k] for k in ("integrated_lufs", "loudness_range_lu", "true_peak_dbtp",
                                           "sample_peak_dbfs")}, "ffmpeg:", theirs)
        assert abs(done["integrated_lufs"] - theirs["integrated"]) <= tolerance, (name, done, theirs)
        # The meters take short-term blocks at different rates (one a second here, as
        # libebur128; ffmpeg ten): on a programme with a step they agree.
        assert abs(done["loudness_range_lu"] - theirs["range"]) <= 0.2, (name, done, theirs)
        assert abs(done["true_peak_dbtp"] - theirs["true_peak"]) <= 0.2, (name, done, theirs)
        assert abs(done["sample_peak_dbfs"] - theirs["sample_peak"]) <= 0.1, (name, done, theirs)
        assert done["sample_rate"] == 48000 and done["channels"] == 2, (name, done)


def test_video_is_probed_per_track(api, tmp_path):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Video")["id"]
    picture = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"]
    cases = {
        "clip.mp4": ("video/mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"],
                     "mp4", "h264", "aac"),
        "clip.mov": ("video/quicktime", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"],
                     "mov", "h264", "aac"),
        "clip.webm": ("video/webm", ["-c:v", "libvpx-vp9", "-b:v", "200k", "-c:a", "libopus", "-ac", "2"],
                      "webm", "vp9", "opus"),
    }
    started = {}
    for name, (content_type, codec, *_) in cases.items():
        fid = upload(api, alice, eid, make(tmp_path, name, picture, *codec), name, content_type)
        started[name] = start(api, alice, eid, {"type": "media-probe", "file_id": fid})["id"]
    for name, (_, _, container, video_codec, audio_codec) in cases.items():
        got = ends(api, alice, started[name], "succeeded", timeout=60)["result"]
        assert got["kind"] == "video" and got["container"] == container, (name, got)
        assert math.isclose(got["duration_seconds"], 2.0, abs_tol=0.1), (name, got)
        video = [t for t in got["tracks"] if t["type"] == "video"]
        audio = [t for t in got["tracks"] if t["type"] == "audio"]
        assert len(video) == 1 and len(audio) == 1, (name, got)
        assert (video[0]["codec"], video[0]["width"], video[0]["height"]) == (video_codec, 320, 240), (name, got)
        if video[0]["frame_rate"] is not None or container != "webm":
            assert math.isclose(video[0]["frame_rate"], 25.0, abs_tol=0.01), (name, got)
        assert audio[0]["codec"] == audio_codec and audio[0]["channels"] == 2, (name, got)
        assert audio[0]["sample_rate"] == 48000, (name, got)
