"""Notifications: the right people hear about the right events, exactly once, and each user
sees and changes only their own."""

from __future__ import annotations

import json
import threading
import time

from conftest import eventually, notification_totals, people
from faults import function_env
from test_realtime import Client


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
    assert notes(api, bob)[0]["count"] == 1, "counted once"


def counts(api, token) -> tuple[int, int]:
    c = api.request("GET", "/me/notifications/unread-count", token).json()
    return c["unread"], c["unseen"]


def test_moves_within_the_window_are_one_notification_grown_in_place_and_live(api, stack):
    """Issue 19: four moves of one episode by Alice within the batching window (60 s) are one
    notification for Bob, counting 4, re-sent over the WebSocket as it grows; the bell counts
    it once. Bob's own move of it, and Alice's deletion, are notifications of their own."""
    p = people(("alice", "editor"), ("bob", "editor"), ("carol", "viewer"))
    (_, alice), (_, bob), (_, carol) = p["alice"], p["bob"], p["carol"]
    eid = api.create(alice, title="Pilot", season=2, number=4)["id"]
    for t in (bob, carol):
        assert api.request("PUT", f"/episodes/{eid}/watch", t).status_code == 204
    live = Client(stack["ws_url"], bob)
    try:
        assert live.ask("ping")["type"] == "pong"
        path = ["in_production", "in_review", "in_production", "in_review"]
        for version, status in enumerate(path, start=1):
            move(api, alice, eid, version, status)
        eventually(lambda: notification_totals(api, bob)["counted"] == 4)
        [n] = notes(api, bob)
        assert n["count"] == 4 and len(n["changes"]) == 4
        assert n["summary"] == "Alice moved S2E4 4 times", n["summary"]
        assert [c["summary"] for c in n["changes"]][-1] == "Alice moved S2E4 to in_review"
        assert n["state"] == "unseen" and n["updated_at"] >= n["created_at"]
        assert counts(api, bob) == (1, 1), "the bell counts notifications, not events"
        # The realtime queue is a standard queue with several broadcasters: the copies may come
        # in any order, and a client keeps the one of the highest revision.
        every = set(range(1, n["revision"] + 1))
        frames = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not every <= {f["notification"]["revision"] for f in frames}:
            frames += [f for f in live.drain(0.5) if f["type"] == "notification"]
        assert {f["notification"]["id"] for f in frames} == {n["id"]}, "one notification, re-sent"
        revisions = [f["notification"]["revision"] for f in frames]
        assert set(revisions) == every, revisions
        newest = max(frames, key=lambda f: f["notification"]["revision"])
        assert newest["notification"]["count"] == 4
    finally:
        live.close()

    # Another actor, another kind: their own notifications.
    move(api, bob, eid, 5, "published")
    assert api.request("DELETE", f"/episodes/{eid}", alice).status_code == 204
    eventually(lambda: notification_totals(api, carol)["counted"] == 6)
    kinds = sorted((n["actor"]["name"], n["type"], n["count"]) for n in notes(api, carol))
    assert kinds == [("Alice", "episode.deleted", 1), ("Alice", "episode.updated", 4),
                     ("Bob", "episode.updated", 1)], kinds
    assert counts(api, carol) == (3, 3)


def test_a_read_notification_or_a_closed_window_starts_a_new_one(api, stack, aws):
    p = people(("alice", "editor"), ("bob", "viewer"))
    (_, alice), (_, bob) = p["alice"], p["bob"]
    eid = api.create(alice, title="Windows")["id"]
    assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
    with function_env(stack, aws, ["notification-worker"], {"NOTIFICATION_BATCH_SECONDS": "4"}):
        move(api, alice, eid, 1, "in_production")
        eventually(lambda: notification_totals(api, bob)["counted"] == 1)
        [first] = notes(api, bob)
        assert api.request("POST", f"/me/notifications/{first['id']}/read", bob).status_code == 204
        move(api, alice, eid, 2, "in_review")  # within the window, but the first was read
        eventually(lambda: notification_totals(api, bob)["counted"] == 2)
        assert [n["count"] for n in notes(api, bob)] == [1, 1]
        assert counts(api, bob) == (1, 1)
        time.sleep(4.5)
        move(api, alice, eid, 3, "in_production")  # the second's window has closed
        eventually(lambda: notification_totals(api, bob)["counted"] == 3)
        assert [n["count"] for n in notes(api, bob)] == [1, 1, 1]
        assert counts(api, bob) == (2, 2)
    with function_env(stack, aws, ["notification-worker"], {"NOTIFICATION_BATCH_SECONDS": "0"}):
        move(api, alice, eid, 4, "in_review")
        move(api, alice, eid, 5, "in_production")
        eventually(lambda: notification_totals(api, bob)["counted"] == 5)
        assert [n["count"] for n in notes(api, bob)] == [1] * 5, "batching off: one per event"


def test_seen_read_and_archived_with_exact_counts_under_concurrent_changes(api):
    """The bell marks what it showed seen; reading and archiving move both counts; while
    Alice keeps moving episodes and Bob works through his inbox from two tabs, the counts stay
    the notifications in each state."""
    p = people(("alice", "editor"), ("bob", "viewer"), ("eve", "viewer"))
    (_, alice), (_, bob), (_, eve) = p["alice"], p["bob"], p["eve"]
    eids = [api.create(alice, title=f"Inbox {i}")["id"] for i in range(8)]
    for eid in eids:
        assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code == 204
        move(api, alice, eid, 1, "in_production")
    eventually(lambda: unread(api, bob) == 8)
    assert counts(api, bob) == (8, 8)
    shown = [n["id"] for n in notes(api, bob, limit=5)]
    r = api.request("POST", "/me/notifications/seen", bob, json={"ids": shown})
    assert r.status_code == 200 and r.json() == {"marked": 5}, r.text
    assert api.request("POST", "/me/notifications/seen", bob, json={"ids": shown}).json() == {"marked": 0}
    assert api.request("POST", "/me/notifications/seen", eve, json={"ids": shown}).json() == {"marked": 0}
    assert counts(api, bob) == (8, 3)
    assert {n["id"] for n in notes(api, bob, state="unseen")} == {n["id"] for n in notes(api, bob)} - set(shown)

    # Archive: out of the inbox and both counts; unarchive: back, read.
    victim = shown[0]
    assert api.request("POST", f"/me/notifications/{victim}/archive", eve).status_code == 404
    assert api.request("POST", f"/me/notifications/{victim}/archive", bob).status_code == 204
    assert api.request("POST", f"/me/notifications/{victim}/archive", bob).status_code == 204, "idempotent"
    assert counts(api, bob) == (7, 3)
    assert victim not in [n["id"] for n in notes(api, bob)]
    [archived] = notes(api, bob, state="archived")
    assert archived["id"] == victim and archived["archived"] and archived["read"]
    assert api.request("POST", f"/me/notifications/{victim}/unarchive", bob).status_code == 204
    assert [n["id"] for n in notes(api, bob, state="read")] == [victim]
    assert counts(api, bob) == (7, 3)

    # Concurrently: Alice moves each episode again (growing the unread ones, opening new ones
    # for the read one), one tab marks pages seen, another reads and archives.
    errors: list[str] = []

    def alice_moves():
        for eid in eids:
            r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_review", "version": 2})
            if r.status_code != 204:
                errors.append(f"move {r.status_code}")

    def tab_sees():
        for _ in range(6):
            ids = [n["id"] for n in notes(api, bob, limit=10)]
            r = api.request("POST", "/me/notifications/seen", bob, json={"ids": ids})
            if r.status_code != 200:
                errors.append(f"seen {r.status_code}")

    def tab_reads():
        for n in notes(api, bob, limit=6)[1:6]:
            for action in ("read", "archive") if n["id"] in shown else ("read",):
                r = api.request("POST", f"/me/notifications/{n['id']}/{action}", bob)
                if r.status_code != 204:
                    errors.append(f"{action} {r.status_code}")

    threads = [threading.Thread(target=f) for f in (alice_moves, tab_sees, tab_reads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    eventually(lambda: notification_totals(api, bob)["counted"] == 16, timeout=60)
    time.sleep(2)
    totals = notification_totals(api, bob)
    assert totals["unread"] == totals["listed_unread"], totals
    assert totals["unseen"] == totals["listed_unseen"], totals
    assert totals["unseen"] <= totals["unread"]

    r = api.request("POST", "/me/notifications/read-all", bob)
    assert r.status_code == 200 and r.json()["more"] is False
    assert counts(api, bob) == (0, 0)
    assert all(n["read"] and n["seen"] for n in notes(api, bob, state="all"))

    for body, field in [({"ids": "all"}, "ids"), ({"ids": ["nope"]}, "ids/0"), ({}, "ids"),
                        ({"ids": [shown[0], shown[0]]}, "ids/1"), ({"ids": [], "all": True}, "all"),
                        ({"ids": [shown[0]] * 101}, "ids")]:
        r = api.request("POST", "/me/notifications/seen", bob, json=body)
        assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], (body, r.text)
    assert api.request("GET", "/me/notifications", bob, params={"state": "new"}).status_code == 400
    assert api.request("POST", "/me/notifications/not-an-id/archive", bob).status_code == 400
    assert api.request("POST", "/me/notifications/seen", json={"ids": []}).status_code == 401
