"""Live updates and presence over the WebSocket API, with real WebSocket clients through the
emulated API Gateway: tokens at $connect, subscribe/unsubscribe/ping/resume, the broadcaster's
frames, presence across tabs and refreshes, and clean-up of connections that are gone."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import uuid

import oidc
import pytest
import requests
from conftest import eventually, people
from faults import function_env
from jsonschema import Draft7Validator
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

GRACE = 2.0  # PresenceGraceSeconds of the local stack (infra/local/stack.py)
QUIET = GRACE + 3.0  # long enough for a presence.left that should not come


class Frames:
    """Every frame a client receives is checked against the AsyncAPI document the stack serves
    (`ServerFrame`: the frame for its `type`, and for events the data of their type)."""

    def __init__(self, http_url: str):
        doc = requests.get(http_url + "/asyncapi.json", timeout=30).json()
        self.validator = Draft7Validator({"$ref": "#/components/schemas/ServerFrame", "components": doc["components"]})
        self.checked = 0

    def problems(self, frame: dict) -> list[str]:
        self.checked += 1
        return [f"{frame.get('type')}: {e.message} at {list(e.absolute_path)}" for e in self.validator.iter_errors(frame)]


class Client:
    """A WebSocket client that keeps every frame it receives, in order, on a reader thread."""

    frames_contract: Frames | None = None

    def __init__(self, url: str, token: str | None, via: str = "protocol"):
        self.off_contract: list[str] = []
        self._exit = contextlib.ExitStack()
        if via == "protocol":
            protocols = ["episodes.v1"] + ([f"bearer.{token}"] if token else [])
            self.ws = self._exit.enter_context(connect(url, subprotocols=protocols, open_timeout=15))
        else:
            self.ws = self._exit.enter_context(connect(f"{url}?token={token}", open_timeout=15))
        self.frames: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                frame = json.loads(self.ws.recv())
                if Client.frames_contract is not None:
                    self.off_contract += Client.frames_contract.problems(frame)
                self.frames.put(frame)
        except ConnectionClosed:
            pass

    def send(self, **message):
        self.ws.send(json.dumps(message))

    def wait_for(self, match, timeout: float = 20.0) -> dict:
        """The first frame (seen or new) that `match`es; fails after `timeout`."""
        for f in self.seen:
            if match(f):
                self.seen.remove(f)
                return f
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                f = self.frames.get(timeout=left)
            except queue.Empty:
                break
            if match(f):
                return f
            self.seen.append(f)
        pytest.fail(f"no matching frame within {timeout}s; got {self.seen[-5:]}")

    def drain(self, seconds: float) -> list[dict]:
        """Everything that arrives within `seconds` (and what was seen before)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(self.frames.get(timeout=left))
            except queue.Empty:
                break
        got, self.seen = self.seen, []
        return got

    def ask(self, action: str, **args) -> dict:
        """Sends a message and returns its answer (the frame for it, or an error about it)."""
        answers = {"subscribe": "subscribed", "unsubscribe": "unsubscribed", "ping": "pong", "resume": "resumed",
                   "editing": "editing", "idle": "editing"}
        self.send(action=action, **args)
        return self.wait_for(
            lambda f: f["type"] in (answers.get(action), "event.ref") or (f["type"] == "error"),
        )

    def subscribe(self, episode_id: str) -> dict:
        answer = self.ask("subscribe", episode_id=episode_id)
        assert answer["type"] == "subscribed", answer
        return answer

    def close(self):
        self._exit.close()


@pytest.fixture(scope="session")
def frames_contract(stack) -> Frames:
    Client.frames_contract = Frames(stack["http_url"])
    return Client.frames_contract


@pytest.fixture
def ws(stack, frames_contract):
    opened: list[Client] = []

    def open_client(token, via="protocol"):
        c = Client(stack["ws_url"], token, via)
        opened.append(c)
        return c

    yield open_client
    for c in opened:
        c.close()
    off = [p for c in opened for p in c.off_contract]
    assert not off, f"frames that do not follow the AsyncAPI document: {off[:5]}"


def unknown_episode_id() -> str:
    """A well-formed UUIDv7 that names no episode."""
    u = str(uuid.uuid4())
    return f"{u[:14]}7{u[15:]}"


def presence_of(api, token, eid):
    r = api.request("GET", f"/episodes/{eid}/presence", token)
    assert r.status_code == 200, r.text
    return r.json()


def ids(users):
    return [u["id"] for u in users]


def presence_frames(frames, eid):
    return [f for f in frames if f["type"] in ("presence", "presence.occupancy") and f["episode_id"] == eid]


def joined(user_id):
    return lambda f: f["type"] == "presence" and user_id in ids(f["joined"])


def left(user_id):
    return lambda f: f["type"] == "presence" and user_id in ids(f["left"])


def is_event(kind, eid):
    return lambda f: f["type"] == "event" and f["episode_id"] == eid and f["event"]["type"] == kind


def test_a_subscriber_receives_another_users_edit_in_order(api, ws):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (alice_id, alice), (vic_id, vic) = p["alice"], p["vic"]
    eid = api.create(alice, title="Live")["id"]
    viewer = ws(vic)
    answer = viewer.subscribe(eid)
    assert [v["id"] for v in answer["viewers"]] == [vic_id]
    assert answer["count"] == 1 and answer["heartbeat_seconds"] == 30
    editor = ws(alice)
    editor.subscribe(eid)

    for version, title in ((1, "Live 2"), (2, "Live 3")):
        r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": title, "version": version})
        assert r.status_code == 204, r.text
    frames = [viewer.wait_for(is_event("episode.updated", eid)) for _ in range(2)]
    # The realtime queue is a standard queue and the broadcaster runs concurrently (as on AWS),
    # so frames may arrive out of order: their event ids put them back in the order written.
    frames.sort(key=lambda f: f["event"]["id"])
    assert [f["event"]["data"]["changes"]["title"] for f in frames] == ["Live 2", "Live 3"]
    assert frames[0]["event"]["actor"]["id"] == alice_id
    # The editor's own connection hears of it too (their other tabs stay current).
    editor.wait_for(is_event("episode.updated", eid))
    # Both are listed as viewers, and the viewer heard the editor join (in a presence round).
    round_ = viewer.wait_for(joined(alice_id))
    assert set(ids(round_["viewers"])) == {alice_id, vic_id} and round_["count"] == 2
    assert {v["id"] for v in presence_of(api, vic, eid)["viewers"]} == {alice_id, vic_id}


def test_three_tabs_are_one_viewer_and_a_refresh_is_not_a_departure(api, ws):
    p = people(("alice", "editor"), ("carol", "viewer"), ("dave", "viewer"))
    (_, alice), (carol_id, carol), (dave_id, dave) = p["alice"], p["carol"], p["dave"]
    eid = api.create(alice, title="Presence")["id"]
    watcher = ws(dave)
    watcher.subscribe(eid)

    tabs = [ws(carol) for _ in range(3)]
    for tab in tabs:
        tab.subscribe(eid)
    viewers = presence_of(api, dave, eid)["viewers"]
    assert sorted(v["id"] for v in viewers) == sorted([carol_id, dave_id]), "one entry per user"

    # Two tabs close: carol is still there.
    tabs[0].close()
    tabs[1].close()
    # A refresh of the last tab: closed and back within the grace period.
    tabs[2].close()
    again = ws(carol)
    again.subscribe(eid)
    frames = presence_frames(watcher.drain(QUIET), eid)
    about_carol = [("joined" if carol_id in ids(f["joined"]) else "left") for f in frames
                   if carol_id in ids(f["joined"]) + ids(f["left"])]
    assert about_carol == ["joined"], about_carol
    assert all(carol_id in ids(f["viewers"]) for f in frames), "listed throughout the refresh"
    assert carol_id in {v["id"] for v in presence_of(api, dave, eid)["viewers"]}

    # The last tab goes for good: presence.left, once, after the grace period.
    again.close()
    gone = watcher.wait_for(left(carol_id), timeout=GRACE + 20)
    assert gone["episode_id"] == eid and [u["name"] for u in gone["left"]] == ["Carol"]
    assert ids(gone["viewers"]) == [dave_id] and gone["count"] == 1
    after = presence_of(api, dave, eid)
    assert carol_id not in {v["id"] for v in after["viewers"]}
    assert carol_id in {u["id"] for u in after["last_seen"]}, "last seen is kept"
    assert not [f for f in presence_frames(watcher.drain(1.0), eid)
                if carol_id in ids(f["joined"]) + ids(f["left"])]


def editing_of(frame: dict) -> dict:
    return {v["id"]: v.get("editing") for v in frame["viewers"]}


def test_who_is_editing_is_seen_live_and_gone_on_idle_on_leaving_or_after_a_lapse(api, ws, stack, aws):
    p = people(("alice", "editor"), ("bob", "editor"))
    (alice_id, alice), (bob_id, bob) = p["alice"], p["bob"]
    eid = api.create(alice, title="Edited together")["id"]
    watcher = ws(bob)
    watcher.subscribe(eid)
    writer = ws(alice)
    refused = writer.ask("editing", episode_id=eid, field="title")
    assert refused["type"] == "error" and refused["status"] == 409, "subscribe first"
    writer.subscribe(eid)
    watcher.wait_for(lambda f: f["type"] == "presence" and alice_id in ids(f["viewers"]))

    held = writer.ask("editing", episode_id=eid, field="title")
    assert held["type"] == "editing" and held["field"] == "title" and held["until"], held
    seen = watcher.wait_for(lambda f: f["type"] == "presence" and editing_of(f).get(alice_id) == "title")
    assert editing_of(seen)[bob_id] is None
    # Saying it again (a refresh) is no news; another field is.
    writer.ask("editing", episode_id=eid, field="title")
    assert not [f for f in presence_frames(watcher.drain(QUIET), eid)], "a refresh is no news"
    writer.ask("editing", episode_id=eid, field="air_date")
    watcher.wait_for(lambda f: f["type"] == "presence" and editing_of(f).get(alice_id) == "air_date")
    assert writer.ask("idle", episode_id=eid)["field"] is None
    watcher.wait_for(lambda f: f["type"] == "presence" and alice_id in ids(f["viewers"])
                     and editing_of(f)[alice_id] is None)
    bad = writer.ask("editing", episode_id=eid, field="colour")
    assert bad["type"] == "error" and bad["status"] == 422

    # Gone when the connection goes: her last one, so she leaves after the grace period.
    writer.ask("editing", episode_id=eid, field="description")
    watcher.wait_for(lambda f: f["type"] == "presence" and editing_of(f).get(alice_id) == "description")
    writer.close()
    gone = watcher.wait_for(left(alice_id), timeout=GRACE + 20)
    assert alice_id not in ids(gone["viewers"])

    # And after a short time without a refresh (the hold shortened to 3 s for the test).
    with function_env(stack, aws, ["ws-api"], {"EDITING_SECONDS": "3"}):
        lapsing = ws(alice)
        lapsing.subscribe(eid)
        assert lapsing.ask("editing", episode_id=eid, field="title")["field"] == "title"
        watcher.wait_for(lambda f: f["type"] == "presence" and editing_of(f).get(alice_id) == "title")
        started = time.monotonic()
        watcher.seen = []  # only what comes from now on
        watcher.wait_for(lambda f: f["type"] == "presence" and alice_id in ids(f["viewers"])
                         and editing_of(f)[alice_id] is None, timeout=30)
        assert time.monotonic() - started >= 2, "held until it lapsed"
        lapsing.close()


def test_joins_at_once_come_as_few_presence_rounds_each_told_once(api, ws):
    """Eight people open an episode at the same moment: the watcher already there hears of
    them in presence rounds (one frame per round, not one per join), each join in exactly one
    round, rounds numbered upwards, the last listing everyone."""
    specs = [("watcher", "viewer")] + [(f"p{i}", "viewer") for i in range(8)]
    p = people(("alice", "editor"), *specs)
    alice = p["alice"][1]
    eid = api.create(alice, title="Busy")["id"]
    watcher = ws(p["watcher"][1])
    watcher.subscribe(eid)
    watcher.wait_for(joined(p["watcher"][0]))  # the watcher's own round
    clients = [ws(p[f"p{i}"][1]) for i in range(8)]
    for c in clients:  # all at once: the answers are awaited after
        c.send(action="subscribe", episode_id=eid)
    for c in clients:
        c.wait_for(lambda f: f["type"] == "subscribed")
    everyone = {p[name][0] for name, _ in specs}
    frames = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frames += presence_frames(watcher.drain(1.0), eid)
        if frames and set(ids(max(frames, key=lambda f: f["round"])["viewers"])) == everyone:
            break
    assert frames and set(ids(max(frames, key=lambda f: f["round"])["viewers"])) == everyone, frames[-3:]
    rounds = [f["round"] for f in frames]
    assert len(rounds) == len(set(rounds)), f"one frame per round: {rounds}"
    # Rounds are posted by concurrent invocations: a client applies them by number.
    frames.sort(key=lambda f: f["round"])
    rounds.sort()
    told = [u for f in frames for u in ids(f["joined"])]
    assert sorted(told) == sorted(everyone - {p["watcher"][0]}), "each join told exactly once"
    assert len(frames) <= 4, f"8 joins within a window or two are a few rounds, not 8 frames: {rounds}"
    assert frames[-1]["count"] == 9
    # A late subscriber is answered with the last round's list (and themselves).
    late = ws(p["alice"][1]).subscribe(eid)
    assert set(ids(late["viewers"])) == everyone | {p["alice"][0]} and late["round"] == rounds[-1]


def test_unsubscribe_and_ping(api, ws):
    p = people(("alice", "editor"),)
    alice_id, alice = p["alice"]
    eid = api.create(alice, title="Ping")["id"]
    c = ws(alice, via="query")  # the ?token= fallback
    assert c.ask("ping")["type"] == "pong"
    c.subscribe(eid)
    assert c.ask("unsubscribe", episode_id=eid)["type"] == "unsubscribed"
    api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "Ping 2", "version": 1})
    time.sleep(3)
    assert not [f for f in c.drain(1.0) if f["type"] == "event"], "no events after unsubscribing"


def test_a_client_that_reconnects_resumes_what_it_missed_in_order(api, ws):
    p = people(("alice", "editor"), ("vic", "viewer"))
    (_, alice), (_, vic) = p["alice"], p["vic"]
    eid = api.create(alice, title="Resume")["id"]
    c = ws(vic)
    c.subscribe(eid)
    api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "R1", "version": 1})
    last = c.wait_for(is_event("episode.updated", eid))["event"]["id"]
    c.close()

    for version in (2, 3, 4):
        r = api.request("PATCH", f"/episodes/{eid}", alice, json={"title": f"R{version}", "version": version})
        assert r.status_code == 204, r.text
    r = api.request("DELETE", f"/episodes/{eid}", alice)
    assert r.status_code == 204, r.text

    back = ws(vic)
    answer = back.ask("resume", episode_id=eid, after=last)
    assert answer["type"] == "resumed" and answer["more"] is False
    got = [(e["type"], e["data"].get("changes", {}).get("title")) for e in answer["events"]]
    assert got == [("episode.updated", "R2"), ("episode.updated", "R3"), ("episode.updated", "R4"), ("episode.deleted", None)]
    ids = [e["id"] for e in answer["events"]]
    assert ids == sorted(ids)
    # After its last event, a deleted episode does not exist any more: not for resume, nor
    # for subscribe.
    for err in (back.ask("resume", episode_id=eid, after=ids[-1]), back.ask("subscribe", episode_id=eid)):
        assert err["type"] == "error" and err["status"] == 404, err


def test_a_post_to_a_gone_connection_removes_exactly_it(api, ws, stack, dynamodb):
    p = people(("alice", "editor"),)
    alice_id, alice = p["alice"]
    eid = api.create(alice, title="Ghosts")["id"]
    live = ws(alice)
    live.subscribe(eid)
    # A connection whose $disconnect never ran: its items remain, API Gateway says 410.
    out = stack["outputs"]
    ghost = "ghost" + uuid.uuid4().hex[:11]
    expires = str(int(time.time()) + 3600)
    dynamodb.put_item(TableName=out["ConnectionsTableName"], Item={
        "connection_id": {"S": ghost}, "user_id": {"S": alice_id}, "user_name": {"S": "Alice"},
        "connected_at": {"S": "2026-11-25T00:00:00.000Z"}, "last_seen": {"S": "2026-11-25T00:00:00.000Z"},
        "subscriptions": {"SS": [eid]}, "expires_at": {"N": expires}})
    dynamodb.put_item(TableName=out["SubscriptionsTableName"], Item={
        "episode_id": {"S": eid}, "connection_id": {"S": ghost}, "user_id": {"S": alice_id},
        "expires_at": {"N": expires}})

    api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "Ghosts 2", "version": 1})
    live.wait_for(is_event("episode.updated", eid))

    def ghost_gone():
        conn = dynamodb.get_item(TableName=out["ConnectionsTableName"], Key={"connection_id": {"S": ghost}})
        sub = dynamodb.get_item(TableName=out["SubscriptionsTableName"],
                                Key={"episode_id": {"S": eid}, "connection_id": {"S": ghost}})
        return "Item" not in conn and "Item" not in sub

    eventually(ghost_gone)
    subs = dynamodb.query(TableName=out["SubscriptionsTableName"], KeyConditionExpression="episode_id = :e",
                          ExpressionAttributeValues={":e": {"S": eid}})["Items"]
    assert len(subs) == 1, "the live connection stays subscribed"
    # And it still receives.
    api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "Ghosts 3", "version": 2})
    live.wait_for(lambda f: is_event("episode.updated", eid)(f) and f["event"]["data"]["changes"]["title"] == "Ghosts 3")


def test_notifications_reach_only_their_recipients_connections(api, ws):
    p = people(("alice", "editor"), ("bob", "viewer"), ("carol", "viewer"))
    (_, alice), (bob_id, bob), (_, carol) = p["alice"], p["bob"], p["carol"]
    eid = api.create(alice, title="Notify")["id"]
    assert api.request("PUT", f"/episodes/{eid}/watch", bob).status_code in (200, 201, 204)
    bob_tabs = [ws(bob), ws(bob)]
    carol_ws = ws(carol)
    alice_ws = ws(alice)
    for c in bob_tabs + [carol_ws, alice_ws]:
        assert c.ask("ping")["type"] == "pong"  # connected and recorded

    r = api.request("PATCH", f"/episodes/{eid}", alice, json={"status": "in_production", "version": 1})
    assert r.status_code == 204, r.text
    for tab in bob_tabs:
        note = tab.wait_for(lambda f: f["type"] == "notification")["notification"]
        assert note["episode_id"] == eid and note["type"] == "episode.updated" and note["read"] is False
    time.sleep(2)
    assert not [f for f in carol_ws.drain(1.0) if f["type"] == "notification"], "carol does not watch it"
    assert not [f for f in alice_ws.drain(0.1) if f["type"] == "notification"], "nobody hears of their own action"


@pytest.mark.parametrize("case", ["none", "garbage", "expired", "audience", "issuer", "unsigned"])
def test_bad_tokens_are_refused_at_the_handshake(stack, case):
    key_id = oidc.public_jwk(oidc.load_key())["kid"]
    tokens = {
        "none": None,
        "garbage": "not.a.token",
        "expired": oidc.mint("eve", "editor", ttl=-60),
        "audience": oidc.mint("eve", "editor", aud="someone-else"),
        "issuer": oidc.mint("eve", "editor", iss="http://127.0.0.1:9/evil"),
        "unsigned": oidc.sign(oidc.claims_for("eve", "admin"), oidc.generate_key(), kid=key_id),
    }
    with pytest.raises(InvalidStatus) as refused:
        Client(stack["ws_url"], tokens[case])
    # API Gateway answers the function's 401; ministack refuses every $connect with 403.
    assert refused.value.response.status_code in (401, 403)


def test_bad_messages_get_clear_errors(api, ws):
    p = people(("alice", "editor"),)
    _, alice = p["alice"]
    c = ws(alice)
    c.ws.send("{not json")
    assert c.wait_for(lambda f: f["type"] == "error")["status"] == 400
    for message, status, words in [
        ({"action": "dance"}, 400, "unknown action"),
        ({"hello": 1}, 400, "action"),
        ({"action": "subscribe"}, 422, "episode_id"),
        ({"action": "subscribe", "episode_id": "../etc"}, 422, "episode_id"),
        ({"action": "resume", "episode_id": unknown_episode_id()}, 422, "after"),
        ({"action": "ping", "extra": True}, 422, "extra"),
    ]:
        c.send(**message)
        err = c.wait_for(lambda f: f["type"] == "error")
        assert err["status"] == status and words in err["detail"], (message, err)
    missing = unknown_episode_id()
    err = c.ask("subscribe", episode_id=missing)
    assert err["type"] == "error" and err["status"] == 404 and missing in err["detail"]
    err = c.ask("resume", episode_id=missing, after=missing)
    assert err["type"] == "error" and err["status"] == 404
    # The connection is still fine after all that.
    assert c.ask("ping")["type"] == "pong"


def test_presence_route_needs_a_token_and_a_real_episode(api, tokens):
    assert api.request("GET", f"/episodes/{uuid.uuid4()}/presence").status_code == 401
    assert api.request("GET", "/episodes/nope/presence", tokens["vic"]).status_code == 400
    r = api.request("GET", f"/episodes/{unknown_episode_id()}/presence", tokens["vic"])
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_tokens_never_reach_the_function_logs(stack, aws, ws):
    user = "logcheck-" + uuid.uuid4().hex[:6]
    token = oidc.mint(user, "viewer", "Log Check")
    since = int(time.time() * 1000) - 5000  # only this test's lines (the group may be large)
    for via in ("query", "protocol"):
        assert ws(token, via=via).ask("ping")["type"] == "pong"
    logs = aws("logs")
    group = f"/aws/lambda/{stack['stack_name']}-ws-api"

    def messages():
        found = []
        for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since):
            found += [e["message"] for e in page["events"]]
        return found if sum(user in m for m in found) >= 2 else None

    lines = eventually(messages)
    signature = token.rsplit(".", 1)[1]
    assert not [m for m in lines if signature[:24] in m or token[:60] in m]


def test_frames_were_checked_against_the_contract(frames_contract):
    """Runs after the others in this module: the frames they received were all checked."""
    assert frames_contract.checked > 0
