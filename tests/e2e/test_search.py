"""Search (`GET /episodes?q=`): the search worker, fed by the relay, keeps an index in DynamoDB
(one entry per token and episode); the episodes API ranks its matches and checks each page
against the episodes as they are.

Every test searches for a word made up for it, so that the other tests' episodes never match."""

from __future__ import annotations

import json
import random
import string
import time

from conftest import eventually, people


def made_up_word() -> str:
    return "zq" + "".join(random.choice(string.ascii_lowercase) for _ in range(8))


def search(api, token, **params) -> list[dict]:
    r = api.request("GET", "/episodes", token, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def titles(items) -> list[str]:
    return [e["title"] for e in items]


def found_titles(api, token, want: list[str], **params) -> list[str]:
    """Waits until the search answers exactly `want` (the index follows the pipeline)."""
    return eventually(lambda: titles(search(api, token, **params)) == want and want or None)


def index_items(stack, dynamodb, episode_id: str) -> tuple[dict | None, list[dict]]:
    """The episode's index record and its entries, read straight from the table."""
    table = stack["outputs"]["SearchTableName"]
    record = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"e#{episode_id}"}, "sk": {"S": "record"}},
                               ConsistentRead=True).get("Item")
    entries, start = [], None
    while True:
        kw = {"ExclusiveStartKey": start} if start else {}
        out = dynamodb.scan(TableName=table, FilterExpression="contains(sk, :e)",
                            ExpressionAttributeValues={":e": {"S": f"#{episode_id}"}}, **kw)
        entries += out["Items"]
        start = out.get("LastEvaluatedKey")
        if not start:
            return record, sorted(entries, key=lambda i: i["sk"]["S"])


def test_words_are_found_folded_by_prefix_all_required_and_ranked(api):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (_, alice), (_, vic) = p["alice"], p["vic"]
    w = made_up_word()
    api.create(alice, title=f"Pilóto {w}", series="Harbour Lights", description="Rain.")
    api.create(alice, title="The Storm", series=f"{w.upper()} nights", description="A pilot boat and harbour.")
    api.create(alice, title=f"{w} harbour pilots", series="Harbour", description=f"The harbour at night, {w}.")
    api.create(alice, title=f"Kitchen {w}", series="Kitchen", description="Nothing else.")

    # Case and accents ignored, prefixes of words, every word required; three fields matched
    # first, then two (newest first), then one.
    found_titles(api, vic, [f"{w} harbour pilots", "The Storm", f"Pilóto {w}"], q=f"PILOT {w[:5]} harb")
    # The accent is ignored both ways; "piloto" is longer than "pilot(s)", so finds only itself.
    assert titles(search(api, vic, q=f"PILOTO {w}")) == [f"Pilóto {w}"]
    assert titles(search(api, vic, q=f"pilót {w}")) == [f"{w} harbour pilots", "The Storm", f"Pilóto {w}"]
    assert titles(search(api, vic, q=f"pil {w}")) == [f"{w} harbour pilots", "The Storm", f"Pilóto {w}"]
    assert titles(search(api, vic, q=f"{w} kitch")) == [f"Kitchen {w}"]
    assert search(api, vic, q=f"{w} snow") == []
    # A one-character word matches only that word, not every word starting with it.
    assert search(api, vic, q=f"{w} p") == []
    # The items are whole episodes, as the list serves them.
    [storm] = search(api, vic, q=f"{w} storm")
    assert storm["series"] == f"{w.upper()} nights" and storm["version"] == 1 and "id" in storm


def test_status_and_cursors_combine_with_the_words(api):
    p = people(("alice", "editor"))
    _, alice = p["alice"]
    w = made_up_word()
    made = [api.create(alice, title=f"Tide {i} {w}") for i in range(5)]
    moved = made[1]
    r = api.request("PATCH", f"/episodes/{moved['id']}", alice, json={"status": "in_production", "version": 1})
    assert r.status_code == 204, r.text

    found_titles(api, alice, [f"Tide 1 {w}"], q=w, status="in_production")
    found_titles(api, alice, [f"Tide {i} {w}" for i in reversed(range(5))], q=w)
    # Pages of two, newest first (every one matches one field), none twice.
    seen, cursor = [], None
    while True:
        r = api.request("GET", "/episodes", alice, params={"q": w, "limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) <= 2
        seen += titles(r.json()["items"])
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Tide {i} {w}" for i in reversed(range(5))]
    # A cursor is bound to its words and status.
    r = api.request("GET", "/episodes", alice, params={"q": w, "limit": 2})
    cursor = r.json()["next_cursor"]
    for other in ({"q": w + "x"}, {"q": w, "status": "draft"}, {}):
        r = api.request("GET", "/episodes", alice, params=other | {"cursor": cursor})
        assert r.status_code == 400, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["cursor"]


def test_an_edit_is_found_a_deletion_is_not_and_redelivery_changes_nothing(api, stack, dynamodb, aws, events_of):
    p = people(("alice", "editor"))
    _, alice = p["alice"]
    w, v = made_up_word(), made_up_word()
    eid = api.create(alice, title=f"Calm {w}", description="Before the storm.")["id"]
    found_titles(api, alice, [f"Calm {w}"], q=w)

    # The title loses the word and gains another: found by the new one, not by the old.
    r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": f"Storm {v}", "version": 1})
    assert r.status_code == 204, r.text
    found_titles(api, alice, [f"Storm {v}"], q=v)
    assert search(api, alice, q=w) == []
    eventually(lambda: (index_items(stack, dynamodb, eid)[0] or {}).get("v", {}).get("N") == "2")
    record, entries = index_items(stack, dynamodb, eid)
    assert "claim_owner" not in record and "pending" not in record
    assert {e["sk"]["S"].rsplit("#", 1)[0] for e in entries} == {"storm", v, "before", "the"}
    assert {e["sk"]["S"]: e["f"]["N"] for e in entries}[f"storm#{eid}"] == "5", "title and description"

    # The created event again, late, then the update again: the index holds what it held.
    queue = stack["outputs"]["SearchQueueUrl"]
    sqs = aws("sqs")
    sent_ms = int(time.time() * 1000)
    sent = [json.dumps(event) for event in events_of(eid)]
    for body in sent:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    # The worker says what it made of them: each batch of this episode's events is one line
    # (the whole queue need not be empty: other tests' messages may wait out a fault).
    logs = aws("logs")

    def worker_lines() -> list[dict]:
        group = f"/aws/lambda/{stack['stack_name']}-search-worker"
        out = []
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=sent_ms):
            for e in page["events"]:
                try:
                    f = json.loads(e["message"]).get("fields", {})
                except (ValueError, AttributeError):
                    continue
                if f.get("episode_id") == eid:
                    out.append(f)
        return out

    lines = eventually(worker_lines, timeout=60)
    assert {f["message"] for f in lines} == {"index already current"}, lines
    assert index_items(stack, dynamodb, eid) == (record, entries)
    marker = api.create(alice, title=f"After {w} {v}")["id"]
    found_titles(api, alice, [f"After {w} {v}", f"Storm {v}"], q=v)

    # Deleted: never answered again, and its entries and record go.
    r = api.request("DELETE", f"/episodes/{eid}", alice, headers={"If-Match": '"2"'})
    assert r.status_code == 204, r.text
    assert titles(search(api, alice, q=v)) == [f"After {w} {v}"], "checked against the episode at once"
    eventually(lambda: index_items(stack, dynamodb, eid) == (None, []))
    assert index_items(stack, dynamodb, marker)[1], "the other episode keeps its entries"


def test_bad_searches_are_400_and_anyone_signed_in_may_search(api):
    p = people(("vic", "viewer"))
    _, vic = p["vic"]
    for q, why in [("a b c d e f g h i", "at most 8"), ("x" * 201, "at most 200")]:
        r = api.request("GET", "/episodes", vic, params={"q": q})
        assert r.status_code == 400, (q, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        [error] = r.json()["errors"]
        assert error["field"] == "q" and why in error["message"], (q, error)
    # No letter or digit: no words, nothing found.
    for q in ("", "!? ..."):
        r = api.request("GET", "/episodes", vic, params={"q": q})
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, (q, r.text)
    r = api.request("GET", "/episodes", vic, params={"q": "pilot", "status": "done", "limit": 0})
    assert r.status_code == 400
    assert sorted(e["field"] for e in r.json()["errors"]) == ["limit", "status"]
    r = api.request("GET", "/episodes", vic, params=[("q", "a"), ("q", "b")])
    assert r.status_code == 400, r.text
    r = api.request("GET", "/episodes", None, params={"q": "pilot"})
    assert r.status_code == 401
    # Eight distinct words are fine, repeats count once, and words of any script count.
    for q in ("a b c d e f g h a b", "東京 ライブ", "Pilóto " * 5):
        r = api.request("GET", "/episodes", vic, params={"q": q})
        assert r.status_code == 200, (q, r.text)
