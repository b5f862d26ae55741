"""Domain events reach the activity log through stream → relay → SQS → worker, exactly once in
effect, and the feed API serves it."""

from __future__ import annotations

import json
import time
import uuid

from conftest import eventually


def activity(api, token, episode_id, **params):
    r = api.request("GET", f"/episodes/{episode_id}/activity", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_each_change_becomes_exactly_one_activity_entry(api, tokens, events_of):
    alice = tokens["alice"]
    ep = api.create(alice, title="Audit me", season=3, number=7)
    eid = ep["id"]
    assert api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_production", "version": 1}).status_code == 204
    assert api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "Audited", "version": 2}).status_code == 204
    assert api.request("DELETE", f"/episodes/{eid}", alice).status_code == 204

    eventually(lambda: len(activity(api, tokens["vic"], eid)["items"]) >= 4)
    time.sleep(1.0)  # anything extra would show up now
    items = activity(api, tokens["vic"], eid)["items"]
    assert [i["action"] for i in items] == ["episode.deleted", "episode.updated", "episode.updated", "episode.created"]
    assert [i["id"] for i in items] == [e["id"] for e in reversed(events_of(eid))], "one entry per event, same ids"
    assert [i["summary"] for i in items] == [
        "Alice deleted S3E7",
        "Alice edited the title of S3E7",
        "Alice moved S3E7 to in_production",
        "Alice created S3E7",
    ]
    first = items[-1]
    assert first["actor"] == {"id": f"alice-{tokens['run']}", "name": "Alice"}
    assert first["resource"] == {"type": "episode", "id": eid}
    assert first["correlation_id"] and first["request_id"] and first["occurred_at"]

    # Pagination over the feed, newest first, bound to the episode.
    page = activity(api, alice, eid, limit=3)
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = activity(api, alice, eid, limit=3, cursor=page["next_cursor"])
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in items]
    other = api.create(alice)["id"]
    r = api.request("GET", f"/episodes/{other}/activity", alice, params={"cursor": page["next_cursor"]})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "cursor"


def test_admin_feed_filters_and_permissions(api, tokens):
    bob, ada = tokens["bob"], tokens["ada"]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
    eid = api.create(bob, title="Bob's show")["id"]
    bob_id = f"bob-{tokens['run']}"
    found = eventually(
        lambda: [i for i in api.request("GET", "/activity", ada, params={"actor": bob_id, "limit": 100}).json()["items"] if i["episode_id"] == eid]
    )
    assert found[0]["action"] == "episode.created" and found[0]["actor"]["id"] == bob_id
    by_action = api.request("GET", "/activity", ada, params={"action": "episode.created", "from": started, "limit": 100}).json()
    assert eid in [i["episode_id"] for i in by_action["items"]]
    assert all(i["action"] == "episode.created" for i in by_action["items"])
    future = api.request("GET", "/activity", ada, params={"from": "2099-01-01T00:00:00Z"}).json()
    assert future["items"] == []
    assert api.request("GET", "/activity", tokens["alice"]).status_code == 403
    assert api.request("GET", "/activity", tokens["vic"]).status_code == 403
    assert api.request("GET", "/activity").status_code == 401
    for params, field in [({"action": "episode.exploded"}, "action"), ({"from": "yesterday"}, "from"), ({"limit": 0}, "limit"), ({"colour": "red"}, "colour")]:
        r = api.request("GET", "/activity", ada, params=params)
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == field, (params, r.text)
    assert api.request("GET", "/episodes/not-an-id/activity", ada).status_code == 400
    # Immutable through the API.
    assert api.request("DELETE", f"/episodes/{eid}/activity", ada).status_code in (404, 405)


def golden_event(episode_id: str, event_id: str) -> dict:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    event = json.loads((root / "events" / "domain" / "episode.created.json").read_text())
    event["id"] = event_id
    event["episode_id"] = episode_id
    event["resource"]["id"] = episode_id
    event["data"]["episode"]["id"] = episode_id
    return event


def fresh_v7() -> str:
    import os

    h = f"{int(time.time() * 1000):012x}" + "7" + os.urandom(2).hex()[:3] + "9" + os.urandom(8).hex()[:15]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def activity_items(aws, stack, episode_id):
    out = aws("dynamodb").query(
        TableName=stack["outputs"]["ActivityTableName"],
        KeyConditionExpression="episode_id = :e",
        ExpressionAttributeValues={":e": {"S": episode_id}},
        ConsistentRead=True,
    )
    return out["Items"]


def test_the_same_message_delivered_twice_changes_nothing(aws, stack):
    sqs = aws("sqs")
    episode_id, event_id = fresh_v7(), fresh_v7()
    body = json.dumps(golden_event(episode_id, event_id))
    sqs.send_message(QueueUrl=stack["outputs"]["ActivityQueueUrl"], MessageBody=body)
    first = eventually(lambda: activity_items(aws, stack, episode_id))
    sqs.send_message(QueueUrl=stack["outputs"]["ActivityQueueUrl"], MessageBody=body)
    time.sleep(3)
    again = activity_items(aws, stack, episode_id)
    assert len(again) == 1 and again == first


def test_poison_messages_go_to_the_dead_letter_queue_and_the_rest_is_written(aws, stack):
    sqs = aws("sqs")
    good = [golden_event(fresh_v7(), fresh_v7()) for _ in range(2)]
    marker = uuid.uuid4().hex
    unknown_type = {**good[0], "id": fresh_v7(), "episode_id": fresh_v7(), "type": "episode.exploded", "marker": marker}
    sqs.send_message_batch(
        QueueUrl=stack["outputs"]["ActivityQueueUrl"],
        Entries=[
            {"Id": "good0", "MessageBody": json.dumps(good[0])},
            {"Id": "poison", "MessageBody": json.dumps(unknown_type)},
            {"Id": "junk", "MessageBody": f"not json {marker}"},
            {"Id": "good1", "MessageBody": json.dumps(good[1])},
        ],
    )
    for g in good:
        eventually(lambda g=g: activity_items(aws, stack, g["episode_id"]))
    dlq = stack["outputs"]["ActivityDeadLetterQueueUrl"]
    parked: list[str] = []

    def both_parked():
        for m in sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            if marker in m["Body"]:
                parked.append(m["Body"])
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
        return len(parked) >= 2

    eventually(both_parked)
    assert activity_items(aws, stack, unknown_type["episode_id"]) == []


def test_writes_succeed_while_the_worker_is_down_and_nothing_is_lost(api, tokens, aws, stack):
    lam = aws("lambda")
    worker = f"{stack['stack_name']}-activity-worker"
    mappings = lam.list_event_source_mappings(FunctionName=worker)["EventSourceMappings"]
    assert mappings, "the activity worker has an SQS event source"
    uuid_ = mappings[0]["UUID"]
    lam.update_event_source_mapping(UUID=uuid_, Enabled=False)
    try:
        time.sleep(1)
        ep = api.create(tokens["alice"], title="Written while the worker sleeps")
        time.sleep(3)
        assert activity(api, tokens["alice"], ep["id"])["items"] == []
    finally:
        lam.update_event_source_mapping(UUID=uuid_, Enabled=True)
    items = eventually(lambda: activity(api, tokens["alice"], ep["id"])["items"])
    assert [i["action"] for i in items] == ["episode.created"]
