"""Retention: how long activity entries, notifications and presence history are kept is a
template parameter each, written on the items as their TTL (`expires_at`) by the functions
that write them; and a notification the TTL removes comes off the bell's counts, once.

ministack neither applies the CloudFormation TTL setting nor emits a stream record when its
TTL deletes an item (see local-stack.md), so the removal is made here as DynamoDB's TTL makes
it: a delete of the item, which the table's stream carries as a REMOVE with the old image."""

from __future__ import annotations

import datetime as dt
import time

from conftest import eventually, people
from faults import function_env
from test_realtime import Client

DAY = 86_400


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def counts(api, token) -> tuple[int, int]:
    r = api.request("GET", "/me/notifications/unread-count", token)
    assert r.status_code == 200, r.text
    return r.json()["unread"], r.json()["unseen"]


def notes(api, token) -> list[dict]:
    r = api.request("GET", "/me/notifications", token, params={"state": "all"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def moved(api, token, eid):
    r = api.request("PATCH", f"/episodes/{eid}", token, json={"status": "in_production", "version": 1})
    assert r.status_code == 204, r.text


def test_an_expired_notification_comes_off_the_counts_once(api, dynamodb, stack):
    p = people(("alice", "editor"), ("bob", "viewer"))
    (_, alice), (bob_id, bob) = p["alice"], p["bob"]
    # Two episodes: two notifications for bob (one batch per episode).
    episodes = [api.create(alice, title=f"Kept {i}")["id"] for i in range(2)]
    for eid in episodes:
        assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
        moved(api, alice, eid)
    eventually(lambda: counts(api, bob) == (2, 2))
    by_episode = {n["episode_id"]: n for n in notes(api, bob)}
    unread, read = by_episode[episodes[0]], by_episode[episodes[1]]
    assert api.request("POST", f"/me/notifications/{read['id']}/read", bob).status_code == 204
    assert counts(api, bob) == (1, 1)

    table = stack["outputs"]["NotificationsTableName"]

    def item(note):
        key = {"user_id": {"S": bob_id}, "sk": {"S": f"n#{note['id']}"}}
        return key, dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    # The TTL: an unread one 365 days after its latest change, a read one 90 days after reading.
    (unread_key, unread_item), (read_key, read_item) = item(unread), item(read)
    read_at = next(n for n in notes(api, bob) if n["id"] == read["id"])["read_at"]
    assert abs(int(unread_item["expires_at"]["N"]) - (at(unread["updated_at"]) + 365 * DAY)) <= 2
    assert abs(int(read_item["expires_at"]["N"]) - (at(read_at) + 90 * DAY)) <= 2

    # The read one expires: nothing it counted, nothing changes.
    dynamodb.delete_item(TableName=table, Key=read_key)
    time.sleep(3)
    assert counts(api, bob) == (1, 1)
    # The unread one expires: off both counts, once.
    dynamodb.delete_item(TableName=table, Key=unread_key)
    eventually(lambda: counts(api, bob) == (0, 0))
    time.sleep(2)
    assert counts(api, bob) == (0, 0) and notes(api, bob) == []


def entry_expiry(dynamodb, stack, eid: str, action: str) -> tuple[float, int] | None:
    out = dynamodb.query(
        TableName=stack["outputs"]["ActivityTableName"],
        KeyConditionExpression="episode_id = :e",
        ExpressionAttributeValues={":e": {"S": eid}},
    )["Items"]
    entries = [i for i in out if i["action"]["S"] == action]
    if not entries:
        return None
    [entry] = entries
    return at(entry["occurred_at"]["S"]), int(entry["expires_at"]["N"])


def test_activity_entries_are_kept_as_long_as_the_parameter_says(api, dynamodb, stack, aws):
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Audited")["id"]
    eventually(lambda: entry_expiry(dynamodb, stack, eid, "episode.created"))
    occurred, expires = entry_expiry(dynamodb, stack, eid, "episode.created")
    assert abs(expires - (occurred + 365 * DAY)) <= 2, "ActivityRetentionDays' default"
    with function_env(stack, aws, ["activity-worker"], {"ACTIVITY_RETENTION_DAYS": "7"}):
        moved(api, alice, eid)
        eventually(lambda: entry_expiry(dynamodb, stack, eid, "episode.updated"))
    occurred, expires = entry_expiry(dynamodb, stack, eid, "episode.updated")
    assert abs(expires - (occurred + 7 * DAY)) <= 2


def test_presence_history_is_kept_as_long_as_the_parameter_says(api, dynamodb, stack):
    (carol_id, carol) = people(("carol", "viewer"))["carol"]
    (_, alice) = people(("alice", "editor"))["alice"]
    eid = api.create(alice, title="Looked at")["id"]
    client = Client(stack["ws_url"], carol)
    try:
        client.subscribe(eid)
        key = {"episode_id": {"S": eid}, "user_id": {"S": carol_id}}
        table = stack["outputs"]["PresenceTableName"]
        item = eventually(lambda: dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item"))
        assert abs(int(item["expires_at"]["N"]) - (at(item["last_seen"]["S"]) + 30 * DAY)) <= 2
    finally:
        client.close()
