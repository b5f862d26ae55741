"""Faults AWS really produces, injected between the functions and the emulator by microburst
(tests/e2e/faults.py): throttled DynamoDB, lost responses, SQS failing, S3 slowing down,
`@connections` throttling and 410. Each test checks the promise of the design: a request either
succeeds or answers 503 problem+json with Retry-After and changes nothing; a side effect that
fails is retried until it happens, once. `make chaos` runs the same scenarios larger and prints
the table the README shows (tests/chaos.py)."""

from __future__ import annotations

import time
import uuid

import oidc
import pytest
from conftest import eventually
from faults import FaultProxy
from test_realtime import Client


def people(*specs):
    run = uuid.uuid4().hex[:6]
    return {name: (f"{name}-{run}", oidc.mint(f"{name}-{run}", role, name.capitalize())) for name, role in specs}


@pytest.fixture(scope="module")
def proxy(stack, aws) -> FaultProxy:
    return FaultProxy(stack, aws("lambda"))


@pytest.fixture
def live(stack):
    opened: list[Client] = []

    def open_client(token):
        c = Client(stack["ws_url"], token)
        opened.append(c)
        return c

    yield open_client
    for c in opened:
        c.close()


def activity_actions(api, token, eid) -> list[str]:
    r = api.request("GET", f"/episodes/{eid}/activity", token, params={"limit": 100})
    assert r.status_code == 200, r.text
    return sorted(i["action"] for i in r.json()["items"])


def stored_episodes(stack, dynamodb, tag: str) -> dict[str, dict]:
    """Every stored episode whose title carries `tag` (a test-side Scan: the API has no search)."""
    items, start = [], {}
    while True:
        page = dynamodb.scan(TableName=stack["outputs"]["EpisodesTableName"], ConsistentRead=True,
                             FilterExpression="contains(title, :t)", ExpressionAttributeValues={":t": {"S": tag}}, **start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    return {i["id"]["S"]: i for i in items}


def assert_unavailable(r) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["type"] == "/problems/unavailable"


def test_throttled_dynamodb_answers_503_with_retry_after_and_half_writes_nothing(api, stack, dynamodb, events_of, proxy):
    """The episodes API under throttling: every third write and a share of reads throttled on
    every attempt the SDK makes. Each request succeeds or answers 503; what succeeded is stored
    with its one event, what did not left no trace; each stored event reaches the activity log once."""
    (_, alice), = people(("alice", "editor")).values()
    tag = uuid.uuid4().hex[:8]
    created, failed_creates, updated = {}, 0, {}
    with proxy.route("episodes-api", ("dynamodb",)):
        proxy.rules([
            # Writes: 3 throttled attempts (the SDK's whole budget: a 503), then 6 that pass.
            {"service": "dynamodb", "operation": "TransactWriteItems", "sequence": {"fail": 3, "pass": 6},
             "error": {"code": "ThrottlingException", "status": 400}},
            {"service": "dynamodb", "operation": "GetItem", "probability": 0.3,
             "error": {"code": "ProvisionedThroughputExceededException", "status": 400}},
        ])
        for i in range(8):
            r = api.request("POST", "/episodes", alice, json={"title": f"Throttled {tag} {i}"})
            if r.status_code == 201:
                created[r.json()["id"]] = 1
            else:
                assert_unavailable(r)
                failed_creates += 1
        for eid in list(created):
            r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_production", "version": 1})
            if r.status_code == 204:
                updated[eid] = True
            else:
                assert_unavailable(r)
            r = api.request("GET", f"/episodes/{eid}", alice)
            assert r.status_code == 200 or r.status_code == 503, r.text
            if r.status_code == 503:
                assert_unavailable(r)
        fired = proxy.fired(service="dynamodb")
    assert failed_creates >= 1 and created, (failed_creates, len(created))
    assert any(f["operation"] == "TransactWriteItems" for f in fired)

    stored = stored_episodes(stack, dynamodb, tag)
    assert set(stored) == set(created), "exactly the creates answered 201 are stored"
    for eid, item in stored.items():
        moved = eid in updated
        assert item["status"]["S"] == ("in_production" if moved else "draft")
        assert int(item["version"]["N"]) == (2 if moved else 1)
        assert sorted(e["type"] for e in events_of(eid)) == (["episode.created", "episode.updated"] if moved else ["episode.created"])

    def expected(eid):
        return ["episode.created", "episode.updated"] if eid in updated else ["episode.created"]

    eventually(lambda: all(activity_actions(api, alice, e) == expected(e) for e in stored), timeout=60)
    time.sleep(2)
    assert all(activity_actions(api, alice, e) == expected(e) for e in stored), "each event once"


def test_a_write_whose_answer_is_lost_is_retried_to_one_write_and_one_event(api, stack, dynamodb, events_of, proxy):
    """The transaction commits and the connection drops before the answer arrives. The SDK sends it
    again with the same ClientRequestToken, which DynamoDB (and the emulator) answers as the first
    time: the client gets its 201 or 204, and there is one episode, one version, one event."""
    (_, alice), = people(("alice", "editor")).values()
    tag = uuid.uuid4().hex[:8]
    with proxy.route("episodes-api", ("dynamodb",)):
        proxy.rules([{"service": "dynamodb", "operation": "TransactWriteItems", "sequence": {"fail": 1, "pass": 1},
                      "response": {"abort_frac": 0.2}}])
        ids = []
        for i in range(4):
            r = api.request("POST", "/episodes", alice, json={"title": f"Lost answer {tag} {i}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        for eid in ids:
            r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_production", "version": 1})
            assert r.status_code == 204, r.text
        aborted = [f for f in proxy.fired() if f["action"] == "response:abort"]
    assert len(aborted) == 8, "every write lost its first answer"
    assert set(stored_episodes(stack, dynamodb, tag)) == set(ids)
    for eid in ids:
        assert sorted(e["type"] for e in events_of(eid)) == ["episode.created", "episode.updated"]
    eventually(lambda: all(activity_actions(api, alice, e) == ["episode.created", "episode.updated"] for e in ids), timeout=60)


def test_events_written_while_sqs_fails_arrive_once_everywhere_after_it_recovers(api, stack, proxy, live):
    """The relay's SendMessageBatch fails for a while (500s, resets, held connections), then
    recovers. The writes succeed meanwhile; afterwards every event is in the activity log once,
    every watcher's notification is there once, and the live subscriber has every event."""
    p = people(("alice", "editor"), ("bob", "editor"))
    (_, alice), (_, bob) = p["alice"], p["bob"]
    eids = [api.create(alice, title=f"Through the SQS outage {i}")["id"] for i in range(3)]
    bob_live = live(bob)
    for eid in eids:
        assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
        bob_live.subscribe(eid)
    eventually(lambda: all(activity_actions(api, alice, e) == ["episode.created"] for e in eids), timeout=60)

    with proxy.route("event-relay", ("sqs",)):
        proxy.rules([
            {"service": "sqs", "operation": "SendMessageBatch", "sequence": {"fail": 1, "pass": 2}, "reset": True},
            {"service": "sqs", "operation": "SendMessageBatch", "probability": 0.5,
             "error": {"code": "InternalError", "status": 500}},
            {"service": "sqs", "operation": "SendMessageBatch", "timeout_ms": 1500},
        ])
        started = time.monotonic()
        for eid in eids:
            for version, status in ((1, "in_production"), (2, "in_review")):
                r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": status, "version": version})
                assert r.status_code == 204, "a request does not wait for its side effects"
        time.sleep(max(0.0, 6 - (time.monotonic() - started)))
        assert proxy.fired(service="sqs"), "the relay met the outage"
        assert all(activity_actions(api, alice, e) == ["episode.created"] for e in eids), "nothing got through"
    recovered = time.monotonic()

    want = ["episode.created", "episode.updated", "episode.updated"]
    eventually(lambda: all(activity_actions(api, alice, e) == want for e in eids), timeout=90)
    eventually(lambda: api.request("GET", "/me/notifications/unread-count", bob).json()["unread"] == 6, timeout=60)
    recovery = time.monotonic() - recovered
    frames = []
    deadline = time.monotonic() + 60
    while len({f["event"]["id"] for f in frames}) < 6 and time.monotonic() < deadline:
        frames += [f for f in bob_live.drain(1.0) if f["type"] == "event" and f["event"]["type"] == "episode.updated"]
    time.sleep(2)
    frames += [f for f in bob_live.drain(1.0) if f["type"] == "event" and f["event"]["type"] == "episode.updated"]
    assert all(activity_actions(api, alice, e) == want for e in eids), "each event once in the activity log"
    assert api.request("GET", "/me/notifications/unread-count", bob).json()["unread"] == 6, "each notification once"
    assert len({f["event"]["id"] for f in frames}) == 6, "every event reached the live subscriber"
    print(f"recovered in {recovery:.1f} s; {len(frames)} frames for 6 events")
