"""Exports of the activity log: an admin asks for the entries of the filters of `GET /activity`;
the export worker (fed by the exports table's stream) writes them to S3 as JSON Lines and CSV;
the export ends with download links, a notification to the admin and its own audit entry."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time

import requests

from conftest import eventually, people
from test_realtime import unknown_episode_id


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def whole_log(api, token, **params) -> list[dict]:
    """Every page of GET /activity with these filters."""
    items, cursor = [], None
    while True:
        q = dict(params, limit=100) | ({"cursor": cursor} if cursor else {})
        r = api.request("GET", "/activity", token, params=q)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


def finished(api, token, location) -> dict:
    def done():
        r = api.request("GET", location, token)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["state"] in ("succeeded", "failed") else None

    return eventually(done, timeout=90)


def download(url: str) -> str:
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    assert "attachment" in r.headers.get("Content-Disposition", "")
    return r.text


def test_an_export_holds_exactly_what_the_log_serves_and_is_audited_and_told(api):
    p = people(("alice", "editor"), ("bob", "editor"), ("root", "admin"))
    (alice_id, alice), (_, bob), (root_id, root) = p["alice"], p["bob"], p["root"]
    since = now_iso()
    eid = api.create(alice, title='Pilot, "the first"', season=1, number=1)["id"]
    other = api.create(bob, title="=HYPERLINK(\"http://evil\")")["id"]
    for version, status in enumerate(["in_production", "in_review", "in_production"], start=1):
        r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": status, "version": version})
        assert r.status_code == 204, r.text
    r = api.request("PATCH", f"/episodes/{other}", bob, json={"status": "in_production", "version": 1})
    assert r.status_code == 204, r.text
    eventually(lambda: len(whole_log(api, root, actor=alice_id, **{"from": since})) == 4)
    expected = whole_log(api, root, actor=alice_id, **{"from": since})

    r = api.request("POST", "/activity/exports", root, json={"actor": alice_id, "from": since})
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "queued" and r.json()["downloads"] == []
    location = r.headers["Location"]
    assert location == f"/activity/exports/{r.json()['id']}"
    export = finished(api, root, location)
    assert export["state"] == "succeeded", export
    assert export["entries"] == len(expected) == 4
    assert export["filters"] == {"actor": alice_id, "from": export["filters"]["from"]}
    formats = {d["format"]: d for d in export["downloads"]}
    assert set(formats) == {"jsonl", "csv"}

    # JSON Lines: each entry exactly as GET /activity serves it, newest first.
    lines = download(formats["jsonl"]["url"]).splitlines()
    assert [json.loads(line) for line in lines] == expected
    assert formats["jsonl"]["bytes"] == len("\n".join(lines)) + 1
    # CSV: a header, then a row per entry, quoted where needed.
    rows = list(csv.DictReader(io.StringIO(download(formats["csv"]["url"]), newline="")))
    assert [row["id"] for row in rows] == [e["id"] for e in expected]
    assert {row["actor_id"] for row in rows} == {alice_id}
    assert rows[-1]["summary"] == expected[-1]["summary"]
    assert json.loads(rows[0]["metadata"]) == expected[0]["metadata"]

    # The export is audited: its own entry, about no episode.
    [own] = eventually(lambda: whole_log(api, root, resource_type="export", resource_id=export["id"]))
    assert own["action"] == "activity.exported" and "episode_id" not in own
    assert own["actor"]["id"] == root_id
    assert own["metadata"]["export"]["entries"] == 4
    assert own["summary"] == "Root exported 4 activity entries"

    # The admin is told, with a link that downloads the JSON Lines.
    def told():
        r = api.request("GET", "/me/notifications", root)
        assert r.status_code == 200, r.text
        return [n for n in r.json()["items"] if n["type"] == "activity.exported"]

    [note] = eventually(told)
    assert "episode_id" not in note and note["summary"] == own["summary"]
    assert [json.loads(line) for line in download(note["link"]).splitlines()] == expected


def test_an_export_of_an_episode_and_an_action_and_an_empty_one(api):
    p = people(("alice", "editor"), ("root", "admin"))
    (_, alice), (_, root) = p["alice"], p["root"]
    eid = api.create(alice, title="Filtered")["id"]
    r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_production", "version": 1})
    assert r.status_code == 204, r.text
    eventually(lambda: len(whole_log(api, root, episode_id=eid)) == 2)
    r = api.request("POST", "/activity/exports", root, json={"episode_id": eid, "action": "episode.updated"})
    assert r.status_code == 202, r.text
    export = finished(api, root, r.headers["Location"])
    assert export["entries"] == 1
    [line] = download(next(d["url"] for d in export["downloads"] if d["format"] == "jsonl")).splitlines()
    assert json.loads(line)["action"] == "episode.updated" and json.loads(line)["episode_id"] == eid

    # Nothing matches (a range that ends before it starts is empty, as GET /activity takes it):
    # two files all the same, the CSV only its header.
    r = api.request("POST", "/activity/exports", root,
                    json={"from": "2026-12-01T00:00:00Z", "to": "2001-01-01T00:00:00Z"})
    assert r.status_code == 202, r.text
    empty = finished(api, root, r.headers["Location"])
    assert empty["state"] == "succeeded" and empty["entries"] == 0
    by_format = {d["format"]: download(d["url"]) for d in empty["downloads"]}
    assert by_format["jsonl"] == ""
    assert by_format["csv"].splitlines() == [
        "id,occurred_at,action,actor_id,actor_name,resource_type,resource_id,episode_id,summary,request_id,correlation_id,metadata"
    ]


def test_exports_are_for_admins_and_bad_requests_change_nothing(api, dynamodb, stack):
    p = people(("alice", "editor"), ("root", "admin"))
    (_, alice), (_, root) = p["alice"], p["root"]
    table = stack["outputs"]["ExportsTableName"]
    before = dynamodb.scan(TableName=table, Select="COUNT")["Count"]
    assert api.request("POST", "/activity/exports", alice, json={}).status_code == 403
    assert api.request("POST", "/activity/exports", None, json={}).status_code == 401
    for body in ({"action": "episode.exploded"}, {"actor": 7}, {"colour": "red"}, {"from": "soon"},
                 {"to": None}, {"episode_id": "nope"}, []):
        r = api.request("POST", "/activity/exports", root, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    r = api.request("POST", "/activity/exports", root, data="{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = api.request("POST", "/activity/exports", root, data="{}", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = api.request("POST", "/activity/exports", root, data='{"to": "' + "x" * 5000 + '"}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    time.sleep(1)
    assert dynamodb.scan(TableName=table, Select="COUNT")["Count"] == before, "nothing was asked for"
    missing = unknown_episode_id()  # a well-formed UUIDv7 nobody made
    assert api.request("GET", f"/activity/exports/{missing}", root).status_code == 404
    assert api.request("GET", f"/activity/exports/{missing}", alice).status_code == 403
    assert api.request("GET", "/activity/exports/not-an-id", root).status_code == 400
