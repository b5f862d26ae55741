"""Dead letters can come back: a message that fails until its cause is fixed is parked in its
queue's dead-letter queue by SQS (five receives), and `make redrive` sends it back once the cause
is gone; its effect then happens once."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid

import oidc
from conftest import ROOT, eventually
from faults import miscount, record


def depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                    "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def activity(api, token, eid) -> list[str]:
    r = api.request("GET", f"/episodes/{eid}/activity", token, params={"limit": 100})
    assert r.status_code == 200, r.text
    return sorted(i["action"] for i in r.json()["items"])


def test_a_parked_message_is_redriven_after_the_fix_and_processed_once(api, stack, aws):
    alice = oidc.mint(f"alice-{uuid.uuid4().hex[:6]}", "editor", "Alice")
    out, sqs, iam = stack["outputs"], aws("sqs"), aws("iam")
    queue, dlq = out["ActivityQueueUrl"], out["ActivityDeadLetterQueueUrl"]
    # The test owns the activity dead-letter queue meanwhile: what other tests left there (they
    # check and delete their own poison messages as they park) goes, in flight or not.
    sqs.purge_queue(QueueUrl=dlq)
    eventually(lambda: depth(sqs, dlq) == 0, timeout=30)
    eid = api.create(alice, title="Parked")["id"]
    eventually(lambda: activity(api, alice, eid) == ["episode.created"], timeout=60)

    role = aws("lambda").get_function_configuration(FunctionName=f"{stack['stack_name']}-activity-worker")["Role"].rsplit("/", 1)[-1]
    # The cause: the worker may not write its table (a grant removed by mistake).
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "dynamodb:BatchWriteItem", "Resource": "*"}]}
    before = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["VisibilityTimeout"])["Attributes"]
    with contextlib.ExitStack() as undo:
        # Each change is undone, whichever step fails.
        iam.put_role_policy(RoleName=role, PolicyName="test-broken-grant", PolicyDocument=json.dumps(deny))
        undo.callback(iam.delete_role_policy, RoleName=role, PolicyName="test-broken-grant")
        # Five receives a second apart instead of three minutes apart.
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "1"})
        undo.callback(sqs.set_queue_attributes, QueueUrl=queue, Attributes=before)
        time.sleep(1)
        r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "Parked 2", "version": 1})
        assert r.status_code == 204, r.text
        eventually(lambda: depth(sqs, dlq) >= 1, timeout=90)
        assert activity(api, alice, eid) == ["episode.created"]
    time.sleep(1)
    done = subprocess.run(["make", "-s", "redrive", "QUEUE=activity"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # Ours, and any other event the broken grant parked meanwhile (they are all written once).
    assert report["moved"] >= 1 and report["not_moved"] == 0 and report["by"] in ("copy", "StartMessageMoveTask"), report
    redriven = time.monotonic()
    want = ["episode.created", "episode.updated"]
    eventually(lambda: activity(api, alice, eid) == want, timeout=60)
    recovery = time.monotonic() - redriven
    time.sleep(2)
    lost, doubled = miscount({eid: want}, {eid: activity(api, alice, eid)})
    record("a poison message redriven after the fix", "1 edit", "the worker's write denied (IAM) for 5 receives",
           1, 0, lost, doubled, depth(sqs, dlq), recovery)
    assert activity(api, alice, eid) == want, "processed once"
    assert depth(sqs, dlq) == 0
