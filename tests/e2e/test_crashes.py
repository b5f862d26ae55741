"""Workers killed in the middle of their work (`kill -9` of the `bootstrap` the emulator runs
natively, as a crashed or timed-out Lambda sandbox dies): the queue delivers the batch again and
its effects happen once; a job whose worker died is claimed again after its lease, or failed on
its last attempt, and never runs twice at once.

The queues' visibility timeouts (180 s, 720 s) and the job lease (130 s) are shortened for the
test and put back after, keeping the template's order: function timeout < lease < visibility."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import eventually, people
from faults import FaultProxy, configure, dead_letters, miscount, record


@pytest.fixture(scope="module")
def proxy(stack, aws) -> FaultProxy:
    return FaultProxy(stack, aws("lambda"))


def bootstraps(function: str) -> list[int]:
    """The pids of the emulator's processes running `function` (every warm sandbox of it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if not os.readlink(proc / "exe").endswith("/bootstrap"):
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"AWS_LAMBDA_FUNCTION_NAME={function}".encode() in env:
            pids.append(int(proc.name))
    return pids


def kill(function: str) -> int:
    pids = bootstraps(function)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


@contextlib.contextmanager
def visibility(sqs, queue_url: str, seconds: int):
    before = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(seconds)})
    try:
        yield
    finally:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=before)


@contextlib.contextmanager
def function_timeout(aws, stack, function: str, seconds: int):
    lam = aws("lambda")
    name = f"{stack['stack_name']}-{function}"
    before = lam.get_function_configuration(FunctionName=name)["Timeout"]
    configure(lam, name, Timeout=seconds)
    try:
        yield
    finally:
        configure(lam, name, Timeout=before)


def activity(api, token, eid) -> list[str]:
    r = api.request("GET", f"/episodes/{eid}/activity", token, params={"limit": 100})
    assert r.status_code == 200, r.text
    return sorted(i["action"] for i in r.json()["items"])


def test_an_activity_worker_killed_mid_batch_has_its_batch_redelivered_and_written_once(api, stack, aws, proxy):
    (_, alice), = people(("alice", "editor")).values()
    function = f"{stack['stack_name']}-activity-worker"
    eid = api.create(alice, title="Crash")["id"]
    eventually(lambda: activity(api, alice, eid) == ["episode.created"], timeout=60)
    dlq_before = dead_letters(aws, stack)
    # Function timeout 5 s < visibility 6 s (the template's order, shortened).
    with function_timeout(aws, stack, "activity-worker", 5), visibility(aws("sqs"), stack["outputs"]["ActivityQueueUrl"], 6), \
            proxy.route("activity-worker", ("dynamodb",)):
        # Its writes take 3 s each: the batch is surely in flight when the worker dies.
        proxy.rules([{"service": "dynamodb", "operation": "BatchWriteItem", "latency": 3000}])
        for version in range(1, 4):
            r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": f"Crash {version}", "version": version})
            assert r.status_code == 204, r.text
        eventually(lambda: proxy.fired(operation="BatchWriteItem"), timeout=30)
        assert kill(function) >= 1, "the worker runs natively"
        killed_at = time.monotonic()
        written_before = activity(api, alice, eid)
        proxy.rules([])
        want = ["episode.created"] + ["episode.updated"] * 3
        eventually(lambda: activity(api, alice, eid) == want, timeout=60)
        recovered = time.monotonic() - killed_at
    time.sleep(2)
    lost, doubled = miscount({eid: want}, {eid: activity(api, alice, eid)})
    record("activity worker killed mid-batch", "3 edits in one batch", "kill -9 during its write", 3, 0,
           lost, doubled, dead_letters(aws, stack) - dlq_before, recovered)
    assert activity(api, alice, eid) == want, "the redelivered batch wrote each entry once"
    assert dead_letters(aws, stack) == dlq_before, "nothing parked"
    print(f"written before the kill: {written_before}; all written {recovered:.1f} s after it")


def job(api, token, jid) -> dict:
    r = api.request("GET", f"/jobs/{jid}", token)
    assert r.status_code == 200, r.text
    return r.json()


@contextlib.contextmanager
def short_job_lease(aws, stack, lease: int, timeout: int):
    """The job worker with a `lease` and a function `timeout` of a few seconds."""
    lam = aws("lambda")
    name = f"{stack['stack_name']}-job-worker"
    before = lam.get_function_configuration(FunctionName=name)
    env = dict(before["Environment"]["Variables"]) | {"JOB_LEASE_SECONDS": str(lease)}
    try:
        configure(lam, name, Timeout=timeout, Environment={"Variables": env})
        yield
    finally:
        configure(lam, name, Timeout=before["Timeout"], Environment=before["Environment"])


def kill_while_running(api, token, jid, function: str, attempt: int) -> None:
    eventually(lambda: (j := job(api, token, jid))["state"] == "running" and j["attempts"] == attempt, timeout=60)
    assert kill(function) >= 1


def job_actions(api, token, eid) -> list[str]:
    r = api.request("GET", f"/episodes/{eid}/activity", token, params={"limit": 100})
    return [i["action"] for i in reversed(r.json()["items"]) if i["action"].startswith("job.")]


def test_a_job_whose_worker_dies_is_claimed_again_after_its_lease_or_failed_on_its_last_attempt(api, stack, aws):
    from test_jobs import upload

    (_, alice), = people(("alice", "editor")).values()
    function = f"{stack['stack_name']}-job-worker"
    eid = api.create(alice, title="Dead workers")["id"]
    fid = upload(api, alice, eid, b"some bytes", "a.mp3", "audio/mpeg")
    dlq_before = dead_letters(aws, stack)
    started = time.monotonic()
    # Function timeout 5 s < lease 6 s < visibility 8 s; each attempt pauses 3 s before working.
    with visibility(aws("sqs"), stack["outputs"]["JobsQueueUrl"], 8), short_job_lease(aws, stack, lease=6, timeout=5):
        body = {"type": "checksum", "file_id": fid, "params": {"inject_pause_seconds": 3}}
        r = api.request("POST", f"/episodes/{eid}/jobs", alice, json=body)
        assert r.status_code == 202, r.text
        reclaimed = r.json()["id"]
        kill_while_running(api, alice, reclaimed, function, attempt=1)
        done = eventually(lambda: (j := job(api, alice, reclaimed))["state"] == "succeeded" and j, timeout=90)
        assert done["attempts"] == 2, "claimed again once the dead worker's lease was over"

        r = api.request("POST", f"/episodes/{eid}/jobs", alice, json=body)
        assert r.status_code == 202, r.text
        doomed = r.json()["id"]
        for attempt in (1, 2, 3):
            kill_while_running(api, alice, doomed, function, attempt)
        failed = eventually(lambda: (j := job(api, alice, doomed))["state"] == "failed" and j, timeout=90)
    assert failed["attempts"] == 3 and failed["error"], failed
    seen = eventually(lambda: (a := job_actions(api, alice, eid)) and a.count("job.failed") == 1 and a, timeout=60)
    # Each job's outcome once: one success, one failure; 2 + 3 starts, none overlapping a lease.
    ends = seen.count("job.succeeded") + seen.count("job.failed")
    record("job worker killed during attempts", "2 checksum jobs (3 s each), lease 6 s",
           "4 kills: once for the first job, on every attempt of the second", 1, 0, max(0, 2 - ends),
           max(0, ends - 2) + max(0, seen.count("job.started") - 5), dead_letters(aws, stack) - dlq_before,
           time.monotonic() - started)
    assert seen.count("job.succeeded") == 1 and seen.count("job.started") == 2 + 3, seen
