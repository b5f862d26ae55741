"""Processing jobs against the local stack, on real files the tests make (a WAV, a PNG, random
bytes): each job type end to end, retries with backoff, failure past the maximum with its
notification, cancel while queued and while running, retry, duplicate delivery, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
import uuid
import wave
import zlib

import boto3
import pytest
import requests
from conftest import eventually, people


def wav_bytes(seconds=2, rate=8000, channels=2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x01\x02" * channels * rate * seconds)
    return out.getvalue()


def png_bytes(width=300, height=150) -> bytes:
    raw = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x % 256, y % 256, 128))
                   for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def upload(api, token, eid, data: bytes, name: str, content_type: str) -> str:
    r = api.request("POST", f"/episodes/{eid}/files", token,
                    json={"name": name, "content_type": content_type, "size": len(data)})
    assert r.status_code == 201, r.text
    up, fid = r.json()["upload"], r.json()["file"]["id"]
    assert requests.put(up["url"], data=data, headers=up["headers"], timeout=60).status_code == 200
    assert api.request("POST", f"/files/{fid}/complete", token).status_code == 200
    return fid


def start(api, token, eid, body, **kw):
    r = api.request("POST", f"/episodes/{eid}/jobs", token, json=body, **kw)
    assert r.status_code == 202, r.text
    return r.json()


def job(api, token, jid):
    r = api.request("GET", f"/jobs/{jid}", token)
    assert r.status_code == 200, r.text
    return r.json()


def ends(api, token, jid, state, timeout=60.0):
    return eventually(lambda: (j := job(api, token, jid))["state"] == state and j, timeout=timeout)


def actions(api, token, eid):
    r = api.request("GET", f"/episodes/{eid}/activity", token, params={"limit": 100})
    return [i["action"] for i in r.json()["items"]]


def test_checksum_streams_the_file_and_records_its_sha256_and_size(api):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Checksum")["id"]
    data = uuid.uuid4().bytes * 65536 * 5  # 5 MiB: large enough to report progress
    fid = upload(api, alice, eid, data, "master.mp3", "audio/mpeg")
    created = start(api, alice, eid, {"type": "checksum", "file_id": fid})
    assert created["state"] == "queued" and created["attempts"] == 0
    done = ends(api, alice, created["id"], "succeeded")
    assert done["result"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert done["result"]["size"] == len(data) and done["progress"] == 100 and done["attempts"] == 1
    file = api.request("GET", f"/files/{fid}", alice).json()
    assert file["metadata"]["checksum"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    seen = eventually(lambda: (a := actions(api, alice, eid)) and "job.succeeded" in a and a)
    for action in ("job.created", "job.started", "job.progress", "job.succeeded"):
        assert action in seen


def test_media_probe_reads_a_wav_and_records_it_on_the_file(api):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Probe")["id"]
    fid = upload(api, alice, eid, wav_bytes(seconds=2, rate=8000, channels=2), "take.wav", "audio/wav")
    done = ends(api, alice, start(api, alice, eid, {"type": "media-probe", "file_id": fid})["id"], "succeeded")
    media = api.request("GET", f"/files/{fid}", alice).json()["metadata"]["media"]
    assert media == done["result"]
    assert media["sample_rate"] == 8000 and media["channels"] == 2 and media["duration_seconds"] == 2.0
    assert media["bits_per_sample"] == 16 and media["bit_rate"] > 0 and media["codec"]


def test_thumbnail_writes_a_resized_png_as_a_new_file(api):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Art")["id"]
    fid = upload(api, alice, eid, png_bytes(300, 150), "cover.png", "image/png")
    done = ends(api, alice, start(api, alice, eid, {"type": "thumbnail", "file_id": fid,
                                                    "params": {"max_size": 100}})["id"], "succeeded")
    # The job's file is named by the job: every attempt of it writes the same file and key.
    assert done["result"]["file_id"] == done["id"]
    thumb = api.request("GET", f"/files/{done['result']['file_id']}", alice).json()
    assert thumb["status"] == "available" and thumb["content_type"] == "image/png"
    files = api.request("GET", f"/episodes/{eid}/files", alice).json()["items"]
    assert sorted(f["id"] for f in files) == sorted([fid, done["id"]])
    assert thumb["name"] == "cover (thumbnail).png" and thumb["episode_id"] == eid
    url = api.request("GET", f"/files/{thumb['id']}/download", alice).json()["url"]
    assert png_size(requests.get(url, timeout=30).content) == (100, 50)


def test_a_job_that_fails_twice_then_succeeds(api):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Flaky")["id"]
    fid = upload(api, alice, eid, b"flaky bytes", "a.mp3", "audio/mpeg")
    jid = start(api, alice, eid, {"type": "checksum", "file_id": fid, "params": {"inject_failures": 2}})["id"]
    done = ends(api, alice, jid, "succeeded", timeout=90)
    assert done["attempts"] == 3 and done["error"] is None
    seen = eventually(lambda: (a := actions(api, alice, eid)) and "job.succeeded" in a and a)
    assert seen.count("job.retry_scheduled") == 2 and seen.count("job.started") == 3


def test_past_the_maximum_a_job_fails_once_notifies_its_requester_and_can_be_retried(api):
    p = people(("alice", "editor"),)
    alice_id, alice = p["alice"]
    eid = api.create(alice, title="Doomed job")["id"]
    fid = upload(api, alice, eid, b"bytes", "a.mp3", "audio/mpeg")
    jid = start(api, alice, eid, {"type": "checksum", "file_id": fid, "params": {"inject_failures": 3}})["id"]
    failed = ends(api, alice, jid, "failed", timeout=120)
    assert failed["attempts"] == 3 and "injected failure 3 of 3" in failed["error"]
    seen = eventually(lambda: (a := actions(api, alice, eid)) and "job.failed" in a and a)
    assert seen.count("job.failed") == 1
    notes = eventually(lambda: [n for n in api.request("GET", "/me/notifications", alice).json()["items"]
                                if n["type"] == "job.failed"])
    assert len(notes) == 1 and notes[0]["episode_id"] == eid
    # A retry starts over (the injected failures were for the first run only).
    r = api.request("POST", f"/jobs/{jid}/retry", alice)
    assert r.status_code == 202 and r.json()["state"] == "queued", r.text
    assert ends(api, alice, jid, "succeeded")["attempts"] == 1
    assert "job.retried" in actions(api, alice, eid)
    assert api.request("POST", f"/jobs/{jid}/retry", alice).status_code == 409, "a succeeded job is not retried"


def test_a_corrupt_file_fails_without_retries(api):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Corrupt")["id"]
    fid = upload(api, alice, eid, b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "bad.wav", "audio/wav")
    failed = ends(api, alice, start(api, alice, eid, {"type": "media-probe", "file_id": fid})["id"], "failed")
    assert failed["attempts"] == 1 and "not a readable media file" in failed["error"]


def test_cancel_while_queued_and_while_running(api, stack, aws):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Cancel")["id"]
    fid = upload(api, alice, eid, b"some bytes", "a.mp3", "audio/mpeg")

    # While running: the worker pauses (test hook), the cancel lands, it stops at its checkpoint.
    running = start(api, alice, eid, {"type": "checksum", "file_id": fid, "params": {"inject_pause_seconds": 4}})
    ends(api, alice, running["id"], "running")
    r = api.request("POST", f"/jobs/{running['id']}/cancel", alice)
    assert r.status_code == 202 and r.json()["cancel_requested"] is True, r.text
    cancelled = ends(api, alice, running["id"], "cancelled", timeout=30)
    assert cancelled["result"] is None, "a cancelled job never completes"

    # While queued: no worker takes jobs for a moment.
    lam = aws("lambda")
    mapping = next(m["UUID"] for m in lam.list_event_source_mappings(FunctionName=f"{stack['stack_name']}-job-worker")["EventSourceMappings"])
    lam.update_event_source_mapping(UUID=mapping, Enabled=False)
    try:
        queued = start(api, alice, eid, {"type": "checksum", "file_id": fid})
        r = api.request("POST", f"/jobs/{queued['id']}/cancel", alice)
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    finally:
        lam.update_event_source_mapping(UUID=mapping, Enabled=True)
    time.sleep(4)
    assert job(api, alice, queued["id"])["state"] == "cancelled", "the worker skips a cancelled job"
    assert api.request("POST", f"/jobs/{queued['id']}/cancel", alice).status_code == 409
    seen = eventually(lambda: (a := actions(api, alice, eid)).count("job.cancelled") == 2 and a)
    assert seen


def test_a_duplicate_delivery_runs_the_job_once(api, stack, events_of):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Twice")["id"]
    fid = upload(api, alice, eid, b"twice", "a.mp3", "audio/mpeg")
    jid = start(api, alice, eid, {"type": "checksum", "file_id": fid})["id"]
    sqs = boto3.client("sqs", endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    for _ in range(3):  # on top of the relay's own message
        sqs.send_message(QueueUrl=stack["outputs"]["JobsQueueUrl"], MessageBody=json.dumps({"job_id": jid}))
    done = ends(api, alice, jid, "succeeded")
    time.sleep(3)
    assert job(api, alice, jid)["attempts"] == done["attempts"] == 1
    started = [e for e in events_of(eid) if e["type"] == "job.started"]
    assert len(started) == 1


def test_bad_job_requests_are_refused_at_post(api, tokens):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (_, alice), (_, vic) = p["alice"], p["vic"]
    eid = api.create(alice, title="Strict jobs")["id"]
    other = api.create(alice, title="Other")["id"]
    wav = upload(api, alice, eid, wav_bytes(1), "a.wav", "audio/wav")
    elsewhere = upload(api, alice, other, b"x", "b.mp3", "audio/mpeg")
    pending = api.request("POST", f"/episodes/{eid}/files", alice,
                          json={"name": "p.png", "content_type": "image/png", "size": 3}).json()["file"]["id"]
    for body, field in [
        ({"type": "transcode", "file_id": wav}, "type"),
        ({"file_id": wav}, "type"),
        ({"type": "checksum"}, "file_id"),
        ({"type": "checksum", "file_id": "nope"}, "file_id"),
        ({"type": "checksum", "file_id": elsewhere}, "another episode"),
        ({"type": "checksum", "file_id": pending}, "not available"),
        ({"type": "thumbnail", "file_id": wav}, "cannot read"),
        ({"type": "thumbnail", "file_id": wav, "params": {"max_size": 5}}, "max_size"),
        ({"type": "checksum", "file_id": wav, "params": {"speed": 2}}, "params.speed"),
        ({"type": "checksum", "file_id": wav, "params": [1]}, "params"),
        ({"type": "checksum", "file_id": wav, "priority": 1}, "priority"),
    ]:
        r = api.request("POST", f"/episodes/{eid}/jobs", alice, json=body)
        assert r.status_code == 422 and field in r.text, (body, r.status_code, r.text)
    assert api.request("POST", f"/episodes/{eid}/jobs", vic, json={"type": "checksum", "file_id": wav}).status_code == 403
    missing = str(uuid.uuid4())
    missing = f"{missing[:14]}7{missing[15:]}"
    assert api.request("POST", f"/episodes/{missing}/jobs", alice, json={"type": "checksum", "file_id": wav}).status_code == 404
    assert api.request("GET", f"/jobs/{missing}", alice).status_code == 404
    assert api.request("GET", "/jobs/nope", alice).status_code == 400
    assert api.request("GET", f"/episodes/{eid}/jobs", alice, params={"state": "sleeping"}).status_code == 400
    assert api.request("POST", f"/episodes/{eid}/jobs", alice, data="{", headers={"content-type": "application/json"}).status_code == 400
    # Nothing was created by any of that.
    assert api.request("GET", f"/episodes/{eid}/jobs", alice).json()["items"] == []

    # Idempotency: the same key and body give the same job; another body is a conflict.
    body = {"type": "checksum", "file_id": wav}
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = api.request("POST", f"/episodes/{eid}/jobs", alice, json=body, headers=key)
    again = api.request("POST", f"/episodes/{eid}/jobs", alice, json=body, headers=key)
    assert first.status_code == 202 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other_body = api.request("POST", f"/episodes/{eid}/jobs", alice, json={"type": "media-probe", "file_id": wav}, headers=key)
    assert other_body.status_code == 409
    assert api.request("POST", f"/episodes/{eid}/jobs", alice, json=body, headers={"Idempotency-Key": "x" * 300}).status_code == 400
    listed = api.request("GET", f"/episodes/{eid}/jobs", alice).json()["items"]
    assert [j["id"] for j in listed] == [first.json()["id"]]
    ends(api, alice, first.json()["id"], "succeeded")
    only = api.request("GET", f"/episodes/{eid}/jobs", alice, params={"state": "succeeded"}).json()["items"]
    assert [j["id"] for j in only] == [first.json()["id"]]
    assert api.request("POST", f"/jobs/{first.json()['id']}/cancel", alice).status_code == 409
