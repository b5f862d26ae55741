"""Faults AWS really produces, injected between the functions and the emulator by microburst
(tests/e2e/faults.py): throttled DynamoDB, lost responses, SQS failing, S3 slowing down,
`@connections` throttling and 410. Each test checks the promise of the design: a request either
succeeds or answers 503 problem+json with Retry-After and changes nothing; a side effect that
fails is retried until it happens, once. `make chaos` runs the same scenarios larger and prints
the table the README shows (tests/chaos.py, from the rows `record` keeps)."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from conftest import eventually, notification_totals, people
from faults import SCALE, FaultProxy, dead_letters, miscount, record
from test_realtime import Client


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


def test_throttled_dynamodb_answers_503_with_retry_after_and_half_writes_nothing(api, stack, aws, dynamodb, events_of, proxy):
    """The episodes API under throttling: every third write and a share of reads throttled on
    every attempt the SDK makes. Each request succeeds or answers 503; what succeeded is stored
    with its one event, what did not left no trace; each stored event reaches the activity log once."""
    (_, alice), = people(("alice", "editor")).values()
    tag = uuid.uuid4().hex[:8]
    created, failed_creates, updated = {}, 0, {}
    ok = unavailable = 0
    dlq_before = dead_letters(aws, stack)
    with proxy.route("episodes-api", ("dynamodb",)):
        proxy.rules([
            # Writes: 3 throttled attempts (the SDK's whole budget: a 503), then 6 that pass.
            {"service": "dynamodb", "operation": "TransactWriteItems", "sequence": {"fail": 3, "pass": 6},
             "error": {"code": "ThrottlingException", "status": 400}},
            {"service": "dynamodb", "operation": "GetItem", "probability": 0.3,
             "error": {"code": "ProvisionedThroughputExceededException", "status": 400}},
        ])
        for i in range(8 * SCALE):
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
                unavailable += 1
            else:
                ok += 1
        fired = proxy.fired(service="dynamodb")
    recovering = time.monotonic()
    ok += len(created) + len(updated)
    unavailable += failed_creates + len(created) - len(updated)
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
    recovery = time.monotonic() - recovering
    time.sleep(2)
    lost, doubled = miscount({e: expected(e) for e in stored}, {e: activity_actions(api, alice, e) for e in stored})
    record("DynamoDB throttled (episodes API)", f"{8 * SCALE} creates, their edits and reads",
           f"{len(fired)} throttles: every 3rd write on all 3 tries, 30% of reads", ok, unavailable, lost, doubled,
           dead_letters(aws, stack) - dlq_before, recovery)
    assert (lost, doubled) == (0, 0), "each event once"


def test_a_write_whose_answer_is_lost_is_retried_to_one_write_and_one_event(api, stack, aws, dynamodb, events_of, proxy):
    """The transaction commits and the connection drops before the answer arrives. The SDK sends it
    again with the same ClientRequestToken, which DynamoDB (and the emulator) answers as the first
    time: the client gets its 201 or 204, and there is one episode, one version, one event."""
    (_, alice), = people(("alice", "editor")).values()
    tag = uuid.uuid4().hex[:8]
    with proxy.route("episodes-api", ("dynamodb",)):
        proxy.rules([{"service": "dynamodb", "operation": "TransactWriteItems", "sequence": {"fail": 1, "pass": 1},
                      "response": {"abort_frac": 0.2}}])
        ids = []
        dlq_before = dead_letters(aws, stack)
        for i in range(4 * SCALE):
            r = api.request("POST", "/episodes", alice, json={"title": f"Lost answer {tag} {i}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        for eid in ids:
            r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_production", "version": 1})
            assert r.status_code == 204, r.text
        aborted = [f for f in proxy.fired() if f["action"] == "response:abort"]
    recovering = time.monotonic()
    assert len(aborted) == 2 * len(ids), "every write lost its first answer"
    assert set(stored_episodes(stack, dynamodb, tag)) == set(ids)
    for eid in ids:
        assert sorted(e["type"] for e in events_of(eid)) == ["episode.created", "episode.updated"]
    want = ["episode.created", "episode.updated"]
    eventually(lambda: all(activity_actions(api, alice, e) == want for e in ids), timeout=60)
    recovery = time.monotonic() - recovering
    time.sleep(2)
    lost, doubled = miscount({e: want for e in ids}, {e: activity_actions(api, alice, e) for e in ids})
    record("DynamoDB answer lost after the commit", f"{len(ids)} creates, {len(ids)} edits",
           f"{len(aborted)} connections cut mid-answer", 2 * len(ids), 0, lost, doubled,
           dead_letters(aws, stack) - dlq_before, recovery)
    assert (lost, doubled) == (0, 0)


def test_a_create_whose_every_answer_is_lost_is_repeated_safely_with_its_idempotency_key(api, stack, aws, dynamodb, events_of, proxy):
    """Every try the SDK makes commits and loses its answer: the client gets a 503 for a create
    that happened. Repeated with the same `Idempotency-Key`, the create answers 200 with the
    episode the first one made; there is one episode and one event."""
    (_, alice), = people(("alice", "editor")).values()
    tag = uuid.uuid4().hex[:8]
    dlq_before = dead_letters(aws, stack)
    body = {"title": f"Lost thrice {tag}"}
    answers = []
    with proxy.route("episodes-api", ("dynamodb",)):
        for i in range(SCALE):
            key = f"create-{tag}-{i}"
            proxy.rules([{"service": "dynamodb", "operation": "TransactWriteItems", "times": 3,
                          "response": {"abort_frac": 0.2}}])
            first = api.request("POST", "/episodes", alice, json=body | {"description": key}, headers={"Idempotency-Key": key})
            assert_unavailable(first)
            again = api.request("POST", "/episodes", alice, json=body | {"description": key}, headers={"Idempotency-Key": key})
            assert again.status_code == 200, again.text
            assert again.headers["Location"] == f"/episodes/{again.json()['id']}"
            answers.append(again.json()["id"])
            other = api.request("POST", "/episodes", alice, json={"title": "Something else"}, headers={"Idempotency-Key": key})
            assert other.status_code == 409, other.text
        cut = len([f for f in proxy.fired() if f["action"] == "response:abort"])
    stored = stored_episodes(stack, dynamodb, tag)
    assert set(stored) == set(answers), "one episode per key, the one the repeat answered"
    for eid in answers:
        assert [e["type"] for e in events_of(eid)] == ["episode.created"]
    eventually(lambda: all(activity_actions(api, alice, e) == ["episode.created"] for e in answers), timeout=60)
    lost, doubled = miscount({e: ["episode.created"] for e in answers}, {e: activity_actions(api, alice, e) for e in answers})
    record("DynamoDB answer lost on every try, the create repeated with its key", f"{SCALE} creates, each sent twice with one Idempotency-Key",
           f"{cut} connections cut mid-answer", 2 * SCALE, SCALE, lost, doubled + len(stored) - len(answers),
           dead_letters(aws, stack) - dlq_before, None)
    assert (lost, doubled) == (0, 0)


def test_events_written_while_sqs_fails_arrive_once_everywhere_after_it_recovers(api, stack, aws, proxy, live):
    """The relay's SendMessageBatch fails for a while (500s, resets, held connections), then
    recovers. The writes succeed meanwhile; afterwards every event is in the activity log once,
    every watcher's notification is there once, and the live subscriber has every event."""
    p = people(("alice", "editor"), ("bob", "editor"))
    (_, alice), (_, bob) = p["alice"], p["bob"]
    n = min(3 * SCALE, 20)  # one connection subscribes to at most 20 episodes
    eids = [api.create(alice, title=f"Through the SQS outage {i}")["id"] for i in range(n)]
    dlq_before = dead_letters(aws, stack)
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
        fired = proxy.fired(service="sqs")
        assert fired, "the relay met the outage"
        assert all(activity_actions(api, alice, e) == ["episode.created"] for e in eids), "nothing got through"
    recovered = time.monotonic()

    want = ["episode.created", "episode.updated", "episode.updated"]
    eventually(lambda: all(activity_actions(api, alice, e) == want for e in eids), timeout=90)
    edits = 2 * n
    # Alice's two moves of an episode are one notification of count 2 (batching).
    eventually(lambda: notification_totals(api, bob)["counted"] == edits, timeout=60)
    frames = []
    deadline = time.monotonic() + 60
    while len({f["event"]["id"] for f in frames}) < edits and time.monotonic() < deadline:
        frames += [f for f in bob_live.drain(1.0) if f["type"] == "event" and f["event"]["type"] == "episode.updated"]
    recovery = time.monotonic() - recovered
    time.sleep(2)
    frames += [f for f in bob_live.drain(1.0) if f["type"] == "event" and f["event"]["type"] == "episode.updated"]
    lost, doubled = miscount({e: want for e in eids}, {e: activity_actions(api, alice, e) for e in eids})
    totals = notification_totals(api, bob)
    counted = totals["counted"]
    distinct_frames = len({f["event"]["id"] for f in frames})
    # A frame can come twice (the relay's batch sent again): the client drops an id at or
    # below the last it applied (README, "Order"); what matters is that none is missing.
    lost += max(0, edits - counted) + (edits - distinct_frames)
    doubled += max(0, counted - edits)
    record("SQS failing for the relay", f"{edits} status changes on {n} watched, subscribed episodes",
           f"{len(fired)} SendMessageBatch failed (resets, 500s, 1.5 s holds) for 6 s", edits, 0, lost, doubled,
           dead_letters(aws, stack) - dlq_before, recovery)
    assert all(activity_actions(api, alice, e) == want for e in eids), "each event once in the activity log"
    assert counted == edits, "each event counted once"
    assert totals["unread"] == totals["listed_unread"] == n, "the bell counts notifications, exactly"
    assert distinct_frames == edits, "every event reached the live subscriber"
    print(f"recovered in {recovery:.1f} s; {len(frames)} frames for {edits} events")


def objects_of(stack, aws, eid) -> set[str]:
    s3 = aws("s3")
    out = s3.list_objects_v2(Bucket=stack["outputs"]["FilesBucketName"], Prefix=f"episodes/{eid}/")
    return {o["Key"].rsplit("/", 1)[-1] for o in out.get("Contents", [])}


def test_s3_slowing_down_delays_uploads_and_jobs_but_they_finish_and_leave_no_orphans(api, stack, aws, proxy):
    """S3 answers SlowDown (503) to every try the SDK makes once in a while, and is slow: completing
    an upload answers 503 and changes nothing (the client completes again), a job's attempt fails
    and is retried,
    a derived file's answer is lost once. Everything ends done, and the bucket holds exactly the
    episode's files."""
    from test_jobs import ends, png_bytes, start

    (_, alice), = people(("alice", "editor")).values()
    eid = api.create(alice, title="Slow S3")["id"]
    dlq_before = dead_letters(aws, stack)
    slow = {"service": "s3", "latency": {"min": 100, "max": 300}}
    slow_down = {"code": "SlowDown", "status": 503}
    # The upload URL is presigned for the host the function calls S3 at: ask for it before the
    # files API goes through the proxy, which cannot forward a presigned request.
    data = png_bytes(300, 150)
    r = api.request("POST", f"/episodes/{eid}/files", alice, json={"name": "cover.png", "content_type": "image/png", "size": len(data)})
    assert r.status_code == 201, r.text
    up, fid = r.json()["upload"], r.json()["file"]["id"]
    assert requests.put(up["url"], data=data, headers=up["headers"], timeout=60).status_code == 200
    with proxy.route("files-api", ("s3",)):
        # (Only the failures: microburst drops a forwarded HEAD's Content-Length.)
        proxy.rules([{"service": "s3", "operation": "HeadObject", "error": slow_down}])
        assert_unavailable(api.request("POST", f"/files/{fid}/complete", alice))
        head_faults = len(proxy.fired())
    assert api.request("GET", f"/files/{fid}", alice).json()["status"] == "pending", "a 503 changes nothing"
    again = api.request("POST", f"/files/{fid}/complete", alice)
    assert again.status_code == 200, again.text
    with proxy.route("job-worker", ("s3",)):
        proxy.rules([
            {"service": "s3", "operation": "GetObject", "sequence": {"fail": 3, "pass": 1}, "error": slow_down},
            {"service": "s3", "operation": "PutObject", "times": 1, "response": {"abort_frac": 0.0}},
            slow,
        ])
        checksum = ends(api, alice, start(api, alice, eid, {"type": "checksum", "file_id": fid})["id"], "succeeded", timeout=90)
        thumb = ends(api, alice, start(api, alice, eid, {"type": "thumbnail", "file_id": fid,
                                                         "params": {"max_size": 100}})["id"], "succeeded", timeout=90)
        injected = proxy.fired()
    fired = {f["action"] for f in injected if not f["action"].startswith("latency")}
    assert checksum["attempts"] == 2 and thumb["attempts"] == 2, (checksum["attempts"], thumb["attempts"])
    assert "response:abort" in fired and "error:SlowDown" in fired, fired
    files = api.request("GET", f"/episodes/{eid}/files", alice).json()["items"]
    objects = objects_of(stack, aws, eid)
    want = {fid, thumb["id"]}
    jobs_done = sum(j["state"] == "succeeded" for j in (checksum, thumb))
    record("S3 slowing down (files API, job worker)", "1 upload completed (twice: a 503 first), a checksum and a thumbnail job",
           f"{sum(not f['action'].startswith('latency') for f in injected) + head_faults} SlowDown or cut answers, "
           f"100-300 ms on every call", 1 + jobs_done, 1, len(want - objects), len(objects - want),
           dead_letters(aws, stack) - dlq_before, None)
    assert sorted(f["id"] for f in files) == sorted(want)
    assert all(f["status"] == "available" for f in files)
    assert objects == want, "no orphan objects"


def test_throttled_and_gone_connections_live_ones_get_every_frame_and_exactly_the_gone_are_forgotten(api, stack, aws, dynamodb, proxy, live):
    """Posts to connections are throttled (429) on a share of tries, and a third of the episode's
    subscribers are gone (their sockets closed without a $disconnect: API Gateway answers 410)."""
    (alice_id, alice), = people(("alice", "editor")).values()
    eid = api.create(alice, title="Crowded")["id"]
    dlq_before = dead_letters(aws, stack)
    clients = [live(alice) for _ in range(min(4 * SCALE, 40))]
    for c in clients:
        c.subscribe(eid)
    out = stack["outputs"]
    expires = str(int(time.time()) + 3600)
    ghosts = ["ghost" + uuid.uuid4().hex[:11] for _ in range(len(clients) // 2)]
    for ghost in ghosts:
        dynamodb.put_item(TableName=out["ConnectionsTableName"], Item={
            "connection_id": {"S": ghost}, "user_id": {"S": alice_id}, "user_name": {"S": "Alice"},
            "connected_at": {"S": "2026-11-25T00:00:00.000Z"}, "last_seen": {"S": "2026-11-25T00:00:00.000Z"},
            "subscriptions": {"SS": [eid]}, "expires_at": {"N": expires}})
        dynamodb.put_item(TableName=out["SubscriptionsTableName"], Item={
            "episode_id": {"S": eid}, "connection_id": {"S": ghost}, "user_id": {"S": alice_id}, "expires_at": {"N": expires}})
    endpoint = proxy.lam.get_function_configuration(FunctionName=f"{stack['stack_name']}-broadcast-worker")["Environment"]["Variables"]["CONNECTIONS_ENDPOINT"]
    with proxy.route("broadcast-worker", CONNECTIONS_ENDPOINT=proxy.proxied(endpoint)):
        # (No operation named: microburst finds none under the emulator's /_aws/execute-api/ path;
        # the worker only posts here.)
        proxy.rules([{"service": "apigatewaymanagementapi", "sequence": {"fail": 1, "pass": 2},
                      "error": {"code": "LimitExceededException", "status": 429}}])
        for version in range(1, 6):
            r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": f"Crowded {version}", "version": version})
            assert r.status_code == 204, r.text
        got: list[list[str]] = [[] for _ in clients]
        deadline = time.monotonic() + 60
        while any(len(set(g)) < 5 for g in got) and time.monotonic() < deadline:
            for c, g in zip(clients, got):
                g += [f["event"]["id"] for f in c.drain(0.2) if f["type"] == "event" and f["event"]["type"] == "episode.updated"]
        throttled = [f for f in proxy.fired() if "LimitExceeded" in f["action"]]
    assert throttled, "posts were throttled"
    lost = sum(5 - len(set(g)) for g in got)
    doubled = sum(len(g) - len(set(g)) for g in got)
    record("@connections throttled, some gone", f"5 edits to {len(clients)} live and {len(ghosts)} gone connections",
           f"{len(throttled)} posts throttled (429), {len(ghosts)} answered 410", 5 * len(clients), 0, lost, doubled,
           dead_letters(aws, stack) - dlq_before, None)
    assert [len(set(g)) for g in got] == [5] * len(clients), "every live connection got every frame"
    assert doubled == 0, "no frame twice (nothing was delivered again)"

    def forgotten(ghost):
        conn = dynamodb.get_item(TableName=out["ConnectionsTableName"], Key={"connection_id": {"S": ghost}})
        sub = dynamodb.get_item(TableName=out["SubscriptionsTableName"], Key={"episode_id": {"S": eid}, "connection_id": {"S": ghost}})
        return "Item" not in conn and "Item" not in sub

    eventually(lambda: all(forgotten(g) for g in ghosts))
    subs = dynamodb.query(TableName=out["SubscriptionsTableName"], KeyConditionExpression="episode_id = :e",
                          ExpressionAttributeValues={":e": {"S": eid}})["Items"]
    assert len(subs) == len(clients), "exactly the gone connections were forgotten"


def test_a_throttling_storm_longer_than_a_posts_patience_is_ridden_out_by_reposts(api, stack, aws, proxy, live):
    """Every post to `@connections` is throttled until every connection's post has run out of
    patience (its 3 tries). The broadcaster queues the frame again for exactly the connections
    that did not get it (a `repost` notice, 2 s later, then 4, then 6); the storm ends; every live
    connection gets the frame, once."""
    (_, alice), = people(("alice", "editor")).values()
    eid = api.create(alice, title="Storm")["id"]
    dlq_before = dead_letters(aws, stack)
    clients = [live(alice) for _ in range(min(3 * SCALE, 20))]
    for c in clients:
        c.subscribe(eid)

    def updates(c):
        return [f["event"]["id"] for f in c.drain(0.2) if f["type"] == "event" and f["event"]["type"] == "episode.updated"]

    endpoint = proxy.lam.get_function_configuration(FunctionName=f"{stack['stack_name']}-broadcast-worker")["Environment"]["Variables"]["CONNECTIONS_ENDPOINT"]
    with proxy.route("broadcast-worker", CONNECTIONS_ENDPOINT=proxy.proxied(endpoint)):
        proxy.rules([{"service": "apigatewaymanagementapi", "error": {"code": "LimitExceededException", "status": 429}}])
        started = time.monotonic()
        r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "Storm 2", "version": 1})
        assert r.status_code == 204, r.text
        presence_queue = stack["outputs"]["PresenceQueueUrl"]

        def reposts_queued():
            a = aws("sqs").get_queue_attributes(QueueUrl=presence_queue, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
            return int(a["Attributes"]["ApproximateNumberOfMessagesDelayed"])

        # The posts have run out of patience and a repost waits in the presence queue.
        eventually(lambda: len(proxy.fired()) >= 3 * len(clients) and reposts_queued(), timeout=60)
        time.sleep(1)
        during = [updates(c) for c in clients]
        throttled = [f for f in proxy.fired() if "LimitExceeded" in f["action"]]
        proxy.rules([])
        got: list[list[str]] = [[] for _ in clients]
        deadline = time.monotonic() + 60
        while any(not g for g in got) and time.monotonic() < deadline:
            for c, g in zip(clients, got):
                g += updates(c)
        recovery = time.monotonic() - started
        time.sleep(1)
        for c, g in zip(clients, got):
            g += updates(c)
    assert not any(during), "nothing got through the storm"
    lost = sum(1 for g in got if not g)
    doubled = sum(len(g) - len(set(g)) for g in got)
    record("@connections: every post throttled until reposts are queued", f"1 edit to {len(clients)} live connections",
           f"{len(throttled)} posts throttled (429)", len(clients), 0, lost, doubled,
           dead_letters(aws, stack) - dlq_before, recovery)
    assert (lost, doubled) == (0, 0), got
