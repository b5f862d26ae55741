"""Production analytics: the analytics worker, fed by the relay, keeps each episode's timeline of
status moves and the figures it makes (episodes per status, stays in each status, publications
per week) and each job attempt's outcome; `GET /analytics/episodes` and `GET /analytics/jobs`
serve them over a period, to editors and admins.

The figures are the whole catalogue's, which other tests change at the same time: the exact
checks use events placed in an hour of the past of their own (sent to the analytics queue as the
relay sends them), and the live path is checked on one episode's own items."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from pathlib import Path

from conftest import eventually, people

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "events" / "domain"


def v7_id(ms: int) -> str:
    h = f"{ms & 0xFFFFFFFFFFFF:012x}7{os.urandom(2).hex()[:3]}{8 + os.urandom(1)[0] % 4:x}{os.urandom(8).hex()[:15]}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def an_hour_of_its_own() -> dt.datetime:
    """A random hour between 2003 and 2012: no other test puts figures there."""
    start = dt.datetime(2003, 1, 1, tzinfo=dt.timezone.utc)
    return start + dt.timedelta(hours=random.randrange(24 * 365 * 10))


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def episode_event(kind: str, episode: str, at: dt.datetime, data: dict) -> dict:
    e = golden(kind)
    ms = int(at.timestamp() * 1000)
    e.update(id=v7_id(ms), occurred_at=iso(at), episode_id=episode, data=data)
    e["resource"] = {"type": "episode", "id": episode}
    return e


def job_events(job_type: str, end: str, at: dt.datetime, seconds: float | None, attempts: int = 1) -> list[dict]:
    """One attempt of a new job: its start `seconds` before `at` (none when None), and its end
    (`end`: job.succeeded, job.failed or job.retry_scheduled)."""
    job_id = v7_id(int(at.timestamp() * 1000))
    out = []
    for kind, when in ([("job.started", at - dt.timedelta(seconds=seconds))] if seconds is not None else []) + [(end, at)]:
        e = golden(kind)
        e["data"]["job"].update(id=job_id, type=job_type, attempts=attempts)
        e.update(id=v7_id(int(when.timestamp() * 1000)), occurred_at=iso(when))
        e["resource"]["id"] = job_id
        out.append(e)
    return out


def send(aws, stack, events: list[dict]) -> None:
    sqs = aws("sqs")
    for e in events:
        sqs.send_message(QueueUrl=stack["outputs"]["AnalyticsQueueUrl"], MessageBody=json.dumps(e))


def report(api, token, path: str, start: dt.datetime, hours: int = 2) -> dict:
    r = api.request("GET", path, token,
                    params={"from": iso(start), "to": iso(start + dt.timedelta(hours=hours))})
    assert r.status_code == 200, r.text
    return r.json()


def by_status(body: dict) -> dict:
    return {s["status"]: s for s in body["statuses"]}


def test_time_in_status_and_publications_are_exact_under_reordering_and_redelivery(api, stack, aws):
    p = people(("ed", "editor"))
    _, ed = p["ed"]
    h = an_hour_of_its_own()
    eid = v7_id(int(h.timestamp() * 1000))
    minutes = lambda m: h + dt.timedelta(minutes=m)  # noqa: E731
    created = episode_event("episode.created", eid, minutes(0),
                            {"episode": golden("episode.created")["data"]["episode"] | {"id": eid}})
    moves = [episode_event("episode.updated", eid, minutes(m), {"changes": {"status": s}, "version": v})
             for m, s, v in [(10, "in_production", 2), (30, "in_review", 3), (60, "published", 4)]]
    edit = episode_event("episode.updated", eid, minutes(40), {"changes": {"title": "Other"}, "version": 5})
    # Out of order, each twice, with an edit that is not a status move.
    send(aws, stack, [moves[2], moves[0], edit, moves[2], created, moves[1], moves[0], created])

    def settled():
        body = report(api, ed, "/analytics/episodes", h)
        s = by_status(body)
        counted = [s[x]["time_in_status"]["count"] for x in ("draft", "in_production", "in_review")]
        return body if counted == [1, 1, 1] else None

    body = eventually(settled, timeout=60)
    s = by_status(body)
    assert s["draft"]["time_in_status"]["median_seconds"] == 600
    assert s["in_production"]["time_in_status"]["p90_seconds"] == 1200
    assert s["in_review"]["time_in_status"]["median_seconds"] == 1800
    assert s["published"]["time_in_status"]["count"] == 0, "still published: no stay ended"
    week = (h.date() - dt.timedelta(days=h.weekday())).isoformat()
    weeks = {w["week"]: w["published"] for w in body["weeks"]}
    assert weeks.get(week) == 1 and sum(weeks.values()) == 1, weeks
    # Every status is listed, in workflow order, with today's counts.
    assert [x["status"] for x in body["statuses"]] == ["draft", "in_production", "in_review", "published", "archived"]

    # Deleted: its publication goes; its stays happened and stay.
    send(aws, stack, [episode_event("episode.deleted", eid, minutes(90), {})])
    eventually(lambda: sum(w["published"] for w in report(api, ed, "/analytics/episodes", h)["weeks"]) == 0
               or None, timeout=60)
    assert by_status(report(api, ed, "/analytics/episodes", h))["draft"]["time_in_status"]["count"] == 1


def test_job_outcomes_count_each_attempt_once(api, stack, aws):
    p = people(("ada", "admin"))
    _, ada = p["ada"]
    h = an_hour_of_its_own()
    minute = lambda m: h + dt.timedelta(minutes=m)  # noqa: E731
    ok1 = job_events("thumbnail", "job.succeeded", minute(5), 2.0)
    ok2 = job_events("thumbnail", "job.succeeded", minute(6), 4.0)
    # A failed attempt to be tried again, and one that failed for good.
    retrying = job_events("thumbnail", "job.retry_scheduled", minute(7), 10.0)
    failed = job_events("thumbnail", "job.failed", minute(8), 8.0, attempts=3)
    # An end whose start never came: counted, not measured.
    other = job_events("checksum", "job.succeeded", minute(9), None)
    # Ends before starts, everything twice.
    events = [e for attempt in (ok1, ok2, retrying, failed) for e in reversed(attempt)] + other
    send(aws, stack, events + events)

    def settled():
        body = report(api, ada, "/analytics/jobs", h)
        t = {x["type"]: x for x in body["types"]}
        counted = (t["thumbnail"]["succeeded"], t["thumbnail"]["failed"], t["thumbnail"]["duration"]["count"],
                   t["checksum"]["succeeded"])
        return t if counted == (2, 2, 4, 1) else None

    t = eventually(settled, timeout=60)
    assert t["thumbnail"]["success_rate"] == 0.5
    assert t["thumbnail"]["duration"] == {"count": 4, "median_seconds": 4.0, "p90_seconds": 10.0, "p99_seconds": 10.0}
    assert (t["checksum"]["succeeded"], t["checksum"]["failed"]) == (1, 0)
    assert t["checksum"]["duration"]["count"] == 0
    assert t["loudness"] == {"type": "loudness", "succeeded": 0, "failed": 0, "success_rate": None,
                             "duration": {"count": 0, "median_seconds": None, "p90_seconds": None, "p99_seconds": None}}


def test_an_episode_moved_through_the_api_is_counted_once_from_the_relay(api, stack, dynamodb):
    p = people(("alice", "editor"))
    _, alice = p["alice"]
    eid = api.create(alice, title="Counted once")["id"]
    for version, status in enumerate(["in_production", "in_review", "published"], start=1):
        r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": status, "version": version})
        assert r.status_code == 204, r.text
    table = stack["outputs"]["AnalyticsTableName"]

    def timeline():
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"e#{eid}"}, "sk": {"S": "timeline"}},
                                 ConsistentRead=True).get("Item")
        t = json.loads(item["timeline"]["S"]) if item else {}
        return t if len(t.get("moves", {})) == 4 else None

    t = eventually(timeline, timeout=60)
    assert [m["status"] for _, m in sorted(t["moves"].items(), key=lambda kv: int(kv[0]))] == [
        "draft", "in_production", "in_review", "published"]
    # Its three finished stays, one item each.
    for status in ("draft", "in_production", "in_review"):
        out = dynamodb.query(TableName=table, KeyConditionExpression="pk = :p",
                             FilterExpression="contains(sk, :e)",
                             ExpressionAttributeValues={":p": {"S": f"stay#{status}"}, ":e": {"S": eid}})
        assert len(out["Items"]) == 1, (status, out["Items"])
    now = dt.datetime.now(dt.timezone.utc)
    body = report(api, alice, "/analytics/episodes", now - dt.timedelta(hours=1))
    assert by_status(body)["published"]["episodes"] >= 1
    assert sum(w["published"] for w in body["weeks"]) >= 1


def test_the_analytics_are_for_editors_and_admins_and_periods_are_checked(api):
    p = people(("vic", "viewer"), ("ed", "editor"))
    (_, vic), (_, ed) = p["vic"], p["ed"]
    for path in ("/analytics/episodes", "/analytics/jobs"):
        r = api.request("GET", path, vic)
        assert r.status_code == 403, r.text
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert api.request("GET", path, None).status_code == 401
        for params, fields in [({"from": "yesterday"}, ["from"]),
                               ({"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, ["from"]),
                               ({"since": "2026-01-01T00:00:00Z"}, ["since"])]:
            r = api.request("GET", path, ed, params=params)
            assert r.status_code == 400, (path, params, r.text)
            assert [e["field"] for e in r.json()["errors"]] == fields, (path, params, r.json())
        # A period that ends before it starts holds nothing.
        r = api.request("GET", path, ed, params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
        assert r.status_code == 200, r.text
        assert r.json().get("weeks", []) == [] and all(
            x.get("succeeded", 0) == 0 and x.get("time_in_status", {"count": 0})["count"] == 0
            for x in r.json().get("types", []) + r.json().get("statuses", []))
        r = api.request("GET", path, ed)
        assert r.status_code == 200, r.text
        body = r.json()
        start, end = dt.datetime.fromisoformat(body["from"]), dt.datetime.fromisoformat(body["to"])
        assert abs((end - start) - dt.timedelta(days=30)) < dt.timedelta(seconds=1), "30 days by default"
