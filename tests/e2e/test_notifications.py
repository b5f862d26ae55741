"""Notifications: the right people hear about the right events, exactly once, and each user
sees and changes only their own."""

from __future__ import annotations

import json
import time

from conftest import eventually, people


def unread(api, token):
    r = api.request("GET", "/me/notifications/unread-count", token)
    assert r.status_code == 200, r.text
    return r.json()["unread"]


def notes(api, token, **params):
    r = api.request("GET", "/me/notifications", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def move(api, token, eid, version, status):
    r = api.request("PATCH", f"/episodes/{eid}", token, json={"status": status, "version": version})
    assert r.status_code == 204, r.text


def test_watchers_hear_of_status_changes_and_deletion_but_not_of_their_own(api, tokens):
    p = people(("alice", "editor"), ("bob", "editor"), ("carol", "viewer"), ("dave", "viewer"))
    (alice_id, alice), (bob_id, bob), (_, carol), (_, dave) = p["alice"], p["bob"], p["carol"], p["dave"]
    eid = api.create(alice, title="Watched", season=1, number=2)["id"]
    assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
    assert api.request("PUT", f"/episodes/{eid}/watch", carol).status_code == 204
    assert api.request("PUT", f"/episodes/{eid}/watch", carol).status_code == 204, "idempotent"

    move(api, alice, eid, 1, "in_production")  # alice acts: bob and carol hear, alice does not
    eventually(lambda: unread(api, bob) == 1 and unread(api, carol) == 1)
    [n] = notes(api, bob)
    assert n["type"] == "episode.updated" and n["episode_id"] == eid and not n["read"]
    assert n["summary"] == "Alice moved S1E2 to in_production"
    assert n["actor"] == {"id": alice_id, "name": "Alice"}

    # A title-only edit notifies nobody; a status change by bob reaches alice (the creator).
    assert api.request("PATCH", f"/episodes/{eid}", bob, json={"title": "Renamed", "version": 2}).status_code == 204
    move(api, bob, eid, 3, "in_review")
    eventually(lambda: unread(api, alice) == 1)
    eventually(lambda: unread(api, carol) == 2)
    time.sleep(1.5)
    assert unread(api, bob) == 1, "nobody is told of their own action"
    assert unread(api, alice) == 1 and unread(api, dave) == 0

    # Unwatching stops it; deletion reaches the remaining watchers.
    assert api.request("DELETE", f"/episodes/{eid}/watch", carol).status_code == 204
    assert api.request("DELETE", f"/episodes/{eid}", alice).status_code == 204
    eventually(lambda: unread(api, bob) == 2)
    assert notes(api, bob)[0]["type"] == "episode.deleted"
    time.sleep(1.0)
    assert unread(api, carol) == 2


def test_opt_out_per_event_type(api):
    p = people(("alice", "editor"), ("bob", "viewer"), ("carol", "viewer"))
    (_, alice), (_, bob), (_, carol) = p["alice"], p["bob"], p["carol"]
    eid = api.create(alice)["id"]
    for t in (bob, carol):
        assert api.request("PUT", f"/episodes/{eid}/watch", t).status_code == 204
    assert api.request("GET", "/me/notification-preferences", carol).json() == {"muted_event_types": []}
    r = api.request("PUT", "/me/notification-preferences", carol, json={"muted_event_types": ["episode.updated"]})
    assert r.status_code == 200 and r.json() == {"muted_event_types": ["episode.updated"]}
    assert api.request("GET", "/me/notification-preferences", carol).json() == {"muted_event_types": ["episode.updated"]}
    move(api, alice, eid, 1, "in_production")
    eventually(lambda: unread(api, bob) == 1)
    time.sleep(1.5)
    assert unread(api, carol) == 0
    assert api.request("DELETE", f"/episodes/{eid}", alice).status_code == 204
    eventually(lambda: unread(api, carol) == 1), "deletion is not muted"

    for body, field in [
        ({"muted_event_types": ["episode.exploded"]}, "muted_event_types/0"),
        ({"muted_event_types": "all"}, "muted_event_types"),
        ({"mute": []}, "mute"),
    ]:
        r = api.request("PUT", "/me/notification-preferences", carol, json=body)
        assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], r.text
    r = api.request("PUT", "/me/notification-preferences", carol, data="{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.request("PUT", "/me/notification-preferences", carol, data="{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert api.request("GET", "/me/notification-preferences", carol).json() == {"muted_event_types": ["episode.updated"]}


def test_reading_is_exact_and_private(api):
    p = people(("alice", "editor"), ("bob", "viewer"), ("eve", "viewer"))
    (_, alice), (_, bob), (_, eve) = p["alice"], p["bob"], p["eve"]
    eids = [api.create(alice)["id"] for _ in range(3)]
    for eid in eids:
        assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
        move(api, alice, eid, 1, "in_production")
    eventually(lambda: unread(api, bob) == 3)
    items = notes(api, bob)
    assert len(items) == 3 and [i["episode_id"] for i in items] == list(reversed(eids)), "newest first"

    first = items[0]["id"]
    # Another user cannot see or touch bob's notifications.
    assert notes(api, eve) == []
    assert api.request("POST", f"/me/notifications/{first}/read", eve).status_code == 404
    assert unread(api, bob) == 3

    assert api.request("POST", f"/me/notifications/{first}/read", bob).status_code == 204
    assert api.request("POST", f"/me/notifications/{first}/read", bob).status_code == 204, "idempotent"
    assert unread(api, bob) == 2
    assert [i["id"] for i in notes(api, bob, unread="true")] == [i["id"] for i in items[1:]]
    assert notes(api, bob)[0]["read"] is True

    page = notes(api, bob, limit=1)
    assert len(page) == 1
    r = api.request("POST", "/me/notifications/read-all", bob)
    assert r.status_code == 200 and r.json() == {"marked": 2, "more": False}
    assert unread(api, bob) == 0 and notes(api, bob, unread="true") == []
    assert api.request("POST", "/me/notifications/read-all", bob).json() == {"marked": 0, "more": False}

    assert api.request("POST", "/me/notifications/not-an-id/read", bob).status_code == 400
    assert api.request("GET", "/me/notifications", bob, params={"unread": "maybe"}).status_code == 400
    assert api.request("GET", "/me/notifications").status_code == 401


def test_watching_needs_an_existing_episode(api):
    p = people(("bob", "viewer"))
    _, bob = p["bob"]
    missing = "01a213ea-bcea-7231-95fb-08c52221b2de"
    assert api.request("PUT", f"/episodes/{missing}/watch", bob).status_code == 404
    assert api.request("PUT", "/episodes/nope/watch", bob).status_code == 400


def test_the_same_event_delivered_twice_notifies_once(api, aws, stack):
    p = people(("alice", "editor"), ("bob", "viewer"))
    (_, alice), (_, bob) = p["alice"], p["bob"]
    eid = api.create(alice)["id"]
    assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
    move(api, alice, eid, 1, "in_production")
    eventually(lambda: unread(api, bob) == 1)
    # Replay the stored event straight into the notification queue, twice.
    events = aws("dynamodb").query(
        TableName=stack["outputs"]["EventsTableName"],
        KeyConditionExpression="episode_id = :e",
        ExpressionAttributeValues={":e": {"S": eid}},
    )["Items"]
    updated = next(json.loads(i["payload"]["S"]) for i in events if i["type"]["S"] == "episode.updated")
    for _ in range(2):
        aws("sqs").send_message(QueueUrl=stack["outputs"]["NotificationsQueueUrl"], MessageBody=json.dumps(updated))
    time.sleep(3)
    assert unread(api, bob) == 1 and len(notes(api, bob)) == 1
