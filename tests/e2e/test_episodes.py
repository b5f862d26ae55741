"""The episodes API end to end: the happy path, concurrency, permissions and the outbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def unused_v7_id() -> str:
    """A well-formed UUIDv7 that no episode has (random bits never drawn by the API)."""
    h = f"{int(time.time() * 1000):012x}" + "7" + os.urandom(2).hex()[:3] + "8" + os.urandom(8).hex()[:15]
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def test_health_needs_no_token_and_reports_the_version(api):
    r = api.request("GET", "/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["function"] == "episodes-api" and body["version"]


def test_create_get_update_delete_with_one_event_per_change(api, tokens, events_of, raw_episode):
    alice = tokens["alice"]
    r = api.request(
        "POST",
        "/episodes",
        alice,
        json={"title": "  The Pilot  ", "series": "Night Shift", "season": 2, "number": 4, "air_date": "2027-03-01"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    eid = created["id"]
    assert r.headers["Location"] == f"/episodes/{eid}"
    assert r.headers["ETag"] == '"1"'
    assert created["title"] == "The Pilot"
    assert created["status"] == "draft" and created["version"] == 1
    assert created["created_by"] == {"id": f"alice-{tokens['run']}", "name": "Alice"}

    r = api.request("GET", f"/episodes/{eid}", tokens["vic"])
    assert r.status_code == 200 and r.json() == created and r.headers["ETag"] == '"1"'

    # A stale If-Match is 412 and a stale body version 409, and neither writes anything.
    r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "x"}, headers={"If-Match": '"7"'})
    assert r.status_code == 412 and r.headers["Content-Type"] == "application/problem+json"
    # It says who saved first: the version the episode is at and its save.
    saved_first = r.json()["current"]
    assert saved_first["version"] == 1 and saved_first["saved_by"] == created["created_by"], r.text
    assert saved_first["saved_at"] == created["updated_at"], r.text
    r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "x", "version": 7})
    assert r.status_code == 409, r.text
    assert r.json()["current"]["version"] == 1

    r = api.request(
        "PATCH",
        f"/episodes/{eid}",
        alice,
        json={"status": "in_production", "season": None, "description": "Cold open."},
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 204, r.text
    assert r.headers["ETag"] == '"2"'
    got = api.request("GET", f"/episodes/{eid}", alice).json()
    assert got["status"] == "in_production" and got["season"] is None and got["description"] == "Cold open."
    assert got["version"] == 2 and got["title"] == "The Pilot"

    # The edit made from version 1 is now stale.
    r = api.request("PATCH", f"/episodes/{eid}", tokens["bob"], json={"title": "Late edit", "version": 1})
    assert r.status_code == 409
    assert api.request("GET", f"/episodes/{eid}", alice).json()["title"] == "The Pilot"

    r = api.request("DELETE", f"/episodes/{eid}", alice)
    assert r.status_code == 204
    assert api.request("GET", f"/episodes/{eid}", alice).status_code == 404
    assert api.request("DELETE", f"/episodes/{eid}", alice).status_code == 404
    assert api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "y", "version": 3}).status_code == 404

    events = events_of(eid)
    assert [e["type"] for e in events] == ["episode.created", "episode.updated", "episode.deleted"]
    for e in events:
        assert e["actor"]["id"] == f"alice-{tokens['run']}" and e["actor"]["name"] == "Alice"
        assert e["episode_id"] == eid and e["resource"] == {"type": "episode", "id": eid}
        assert e["schema_version"] == 1 and e["correlation_id"] and e["occurred_at"]
    assert events[0]["data"]["episode"]["title"] == "The Pilot"
    assert events[1]["data"] == {
        "changes": {"status": "in_production", "season": None, "description": "Cold open."},
        "version": 2,
    }
    tombstone = raw_episode(eid)
    assert "deleted_at" in tombstone and "list_pk" not in tombstone and "expires_at" in tombstone


def test_correlation_id_is_carried_into_the_event(api, tokens, events_of):
    r = api.request("POST", "/episodes", tokens["alice"], json={"title": "Traced"}, headers={"X-Correlation-Id": "trace-42"})
    assert r.status_code == 201
    assert events_of(r.json()["id"])[0]["correlation_id"] == "trace-42"
    # Without one, the API Gateway request id ties the request to its events.
    r = api.request("POST", "/episodes", tokens["alice"], json={"title": "Untraced"})
    event = events_of(r.json()["id"])[0]
    # (On AWS that is also the apigw-requestid response header; ministack sends another id there.)
    assert event["request_id"] and event["correlation_id"] == event["request_id"]


def test_status_moves_follow_the_state_machine(api, tokens, events_of):
    alice = tokens["alice"]
    ep = api.create(alice)
    eid, version = ep["id"], 1

    def move(status):
        return api.request("PATCH", f"/episodes/{eid}", alice, json={"status": status}, headers={"If-Match": f'"{version}"'})

    for illegal in ("published", "archived", "in_review", "draft"):
        r = move(illegal)
        assert r.status_code == 409, (illegal, r.text)
        assert r.json()["type"] == "/problems/illegal-transition"
    for legal in ("in_production", "in_review", "in_production", "in_review", "published", "archived"):
        r = move(legal)
        assert r.status_code == 204, (legal, r.text)
        version += 1
    assert move("published").status_code == 409
    assert api.request("GET", f"/episodes/{eid}", alice).json()["status"] == "archived"
    assert len(events_of(eid)) == 1 + 6, "refused moves wrote no events"


def test_list_newest_first_with_cursor_pagination_and_status_filter(api, tokens):
    alice = tokens["alice"]
    mine = [api.create(alice, series=f"paging-{tokens['run']}")["id"] for _ in range(5)]
    newest_first = list(reversed(mine))

    seen, cursor, pages = [], None, 0
    while len(seen) < 5:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        r = api.request("GET", "/episodes", alice, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        pages += 1
        assert cursor, "more episodes exist, so a cursor must be given"
    assert seen[:5] == newest_first and pages == 3

    # Walk to the end with big pages: the cursor runs out and no id repeats.
    all_ids, cursor = [], None
    for _ in range(1000):
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        body = api.request("GET", "/episodes", alice, params=params).json()
        all_ids += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert cursor is None and len(all_ids) == len(set(all_ids))
    assert all_ids == sorted(all_ids, reverse=True), "newest first"
    assert set(mine) <= set(all_ids)

    moved = mine[0]
    r = api.request("PATCH", f"/episodes/{moved}", alice, json={"status": "in_production", "version": 1})
    assert r.status_code == 204
    in_prod = api.request("GET", "/episodes", alice, params={"status": "in_production", "limit": 100}).json()
    assert moved in [e["id"] for e in in_prod["items"]]
    assert all(e["status"] == "in_production" for e in in_prod["items"])
    drafts = api.request("GET", "/episodes", alice, params={"status": "draft", "limit": 100}).json()
    assert moved not in [e["id"] for e in drafts["items"]]

    # A deleted episode leaves the lists.
    assert api.request("DELETE", f"/episodes/{mine[1]}", alice).status_code == 204
    first = api.request("GET", "/episodes", alice, params={"limit": 10}).json()
    assert mine[1] not in [e["id"] for e in first["items"]]

    # A cursor is bound to its filter.
    c = api.request("GET", "/episodes", alice, params={"limit": 1}).json()["next_cursor"]
    r = api.request("GET", "/episodes", alice, params={"status": "draft", "cursor": c})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "cursor"


def listed(api, token, eid: str, oldest: str, status: str | None = None) -> int:
    """How many times `eid` comes in the list, paged from the newest until past `oldest`."""
    seen, cursor = 0, None
    for _ in range(1000):
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {}) | ({"status": status} if status else {})
        r = api.request("GET", "/episodes", token, params=params)
        assert r.status_code == 200, r.text
        ids = [e["id"] for e in r.json()["items"]]
        seen += ids.count(eid)
        cursor = r.json()["next_cursor"]
        if not cursor or not ids or ids[-1] <= oldest:
            return seen
    raise AssertionError("the list did not end")


def test_the_lists_are_sharded_and_episodes_written_before_are_migrated(api, tokens, stack, dynamodb, raw_episode):
    """Each episode's list keys are one of 8 shards (the id's last byte mod 8, as the migration
    computes it); an episode with the bare keys of before is listed once, and
    `infra/migrate_list_keys.py` moves it to its shard, once, without changing what is listed."""
    sys.path.insert(0, str(ROOT / "infra"))
    import migrate_list_keys as m

    alice = tokens["alice"]
    made = [api.create(alice)["id"] for _ in range(6)]
    for eid in made:
        item = raw_episode(eid)
        assert item["list_pk"]["S"] == f"episodes#{m.shard(eid)}"
        assert item["status_pk"]["S"] == f"draft#{m.shard(eid)}"
    old = made[2]
    dynamodb.update_item(
        TableName=stack["outputs"]["EpisodesTableName"],
        Key={"id": {"S": old}},
        UpdateExpression="SET list_pk = :all, status_pk = :draft",
        ExpressionAttributeValues={":all": {"S": "episodes"}, ":draft": {"S": "draft"}},
    )
    for status in (None, "draft"):
        assert [listed(api, alice, eid, made[0], status) for eid in made] == [1] * 6, status

    run = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "migrate_list_keys.py"), "--local"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    report = json.loads(run.stdout)
    assert report["moved"] >= 1 and report["scanned"] >= 6, report
    item = raw_episode(old)
    assert (item["list_pk"]["S"], item["status_pk"]["S"]) == (f"episodes#{m.shard(old)}", f"draft#{m.shard(old)}")
    for status in (None, "draft"):
        assert [listed(api, alice, eid, made[0], status) for eid in made] == [1] * 6, status
    # Run again, nothing is left to move.
    again = json.loads(subprocess.run(
        [sys.executable, str(ROOT / "infra" / "migrate_list_keys.py"), "--local", "--dry-run"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout)
    assert again["moved"] == 0, again


def test_permissions(api, tokens, events_of):
    ep = api.create(tokens["alice"])
    eid = ep["id"]
    # Viewers read but never write.
    assert api.request("GET", f"/episodes/{eid}", tokens["vic"]).status_code == 200
    assert api.request("GET", "/episodes", tokens["vic"]).status_code == 200
    for method, path, body in [
        ("POST", "/episodes", {"title": "nope"}),
        ("PATCH", f"/episodes/{eid}", {"title": "nope", "version": 1}),
        ("DELETE", f"/episodes/{eid}", None),
    ]:
        r = api.request(method, path, tokens["vic"], json=body)
        assert r.status_code == 403, (method, r.text)
        assert r.headers["Content-Type"] == "application/problem+json"
    # Editors edit anyone's episode but delete only their own; admins delete any.
    assert api.request("PATCH", f"/episodes/{eid}", tokens["bob"], json={"title": "Bob's cut", "version": 1}).status_code == 204
    r = api.request("DELETE", f"/episodes/{eid}", tokens["bob"])
    assert r.status_code == 403, r.text
    assert api.request("GET", f"/episodes/{eid}", tokens["vic"]).status_code == 200
    assert api.request("DELETE", f"/episodes/{eid}", tokens["ada"]).status_code == 204
    assert [e["type"] for e in events_of(eid)] == ["episode.created", "episode.updated", "episode.deleted"]
    assert events_of(eid)[2]["actor"]["name"] == "Ada"


def test_unknown_ids_and_routes(api, tokens):
    alice = tokens["alice"]
    missing = unused_v7_id()
    r = api.request("GET", f"/episodes/{missing}", alice)
    assert r.status_code == 404 and r.json()["status"] == 404
    for bad in ("42", "not-an-id", str(uuid.uuid4())):
        r = api.request("GET", f"/episodes/{bad}", alice)
        assert r.status_code == 400, bad
        assert r.json()["errors"][0]["field"] == "id"
