"""The outbox holds: when SQS refuses the relay, episode requests still succeed, nothing is
lost, and every event is delivered once SQS takes messages again.

The fault is injected with IAM (the local stack enforces it): an explicit Deny on sqs:* is put
on the relay's role, so every SendMessageBatch fails as it would in an outage of SQS."""

from __future__ import annotations

import json
import time

from conftest import eventually


def relay_role(aws, stack) -> str:
    fn = aws("lambda").get_function_configuration(FunctionName=f"{stack['stack_name']}-event-relay")
    return fn["Role"].rsplit("/", 1)[-1]


def activity_count(api, token, eid) -> int:
    r = api.request("GET", f"/episodes/{eid}/activity", token)
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def test_events_written_while_sqs_refuses_the_relay_arrive_once_it_is_back(api, tokens, aws, stack):
    iam = aws("iam")
    role = relay_role(aws, stack)
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}],
    }
    alice = tokens["alice"]
    iam.put_role_policy(RoleName=role, PolicyName="test-sqs-outage", PolicyDocument=json.dumps(deny))
    try:
        time.sleep(1)
        # Requests succeed: they only write DynamoDB (entity + event, one transaction).
        eids = []
        for i in range(3):
            ep = api.create(alice, title=f"During the outage {i}")
            eids.append(ep["id"])
            r = api.request("PATCH", f"/episodes/{ep['id']}", alice, json={"status": "in_production", "version": 1})
            assert r.status_code == 204
        time.sleep(4)
        assert [activity_count(api, alice, e) for e in eids] == [0, 0, 0], "nothing got through the outage"
    finally:
        iam.delete_role_policy(RoleName=role, PolicyName="test-sqs-outage")
    # The stream delivers the failed batch again; every event arrives, none twice.
    eventually(lambda: all(activity_count(api, alice, e) == 2 for e in eids), timeout=60)
    time.sleep(2)
    assert [activity_count(api, alice, e) for e in eids] == [2, 2, 2]
