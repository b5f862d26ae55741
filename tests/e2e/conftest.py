"""End-to-end tests against the local stack that `make test` brings up: the real template on
ministack, real HTTP through its API Gateway, tokens from the loopback issuer checked by the
template's JWT authorizer, and the tables read back with boto3."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402


@pytest.fixture(scope="session")
def stack() -> dict:
    path = ROOT / ".local" / "stack.json"
    if not path.exists():
        pytest.fail("no .local/stack.json: run the tests with `make test` (it starts the stack)")
    return json.loads(path.read_text())


class Api:
    """Typed-ish helpers over the HTTP API."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def request(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)

    def create(self, token: str, **fields) -> dict:
        fields.setdefault("title", f"Episode {uuid.uuid4().hex[:8]}")
        r = self.request("POST", "/episodes", token, json=fields)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture(scope="session", autouse=True)
def no_function_goes_through_the_fault_proxy(stack, aws):
    """A function left routed through the fault proxy (by a run killed inside a fault test)
    would run every test unsigned by its own role: refuse to start, and check at the end."""
    from faults import FaultProxy

    proxy = FaultProxy(stack, aws("lambda"))
    assert not proxy.routed_functions(), f"functions still routed through the fault proxy: {proxy.routed_functions()}; make down && make up"
    yield
    assert not proxy.routed_functions(), f"a test left functions routed through the fault proxy: {proxy.routed_functions()}"


@pytest.fixture(scope="session")
def api(stack) -> Api:
    return Api(stack["http_url"])


@pytest.fixture(scope="session")
def tokens() -> dict:
    """One token per persona; `run` is unique per test session so users never collide."""
    run = uuid.uuid4().hex[:6]
    return {
        "alice": oidc.mint(f"alice-{run}", "editor", "Alice"),
        "bob": oidc.mint(f"bob-{run}", "editor", "Bob"),
        "vic": oidc.mint(f"vic-{run}", "viewer", "Vic"),
        "ada": oidc.mint(f"ada-{run}", "admin", "Ada"),
        "run": run,
    }


@pytest.fixture(scope="session")
def dynamodb(stack):
    return boto3.client(
        "dynamodb",
        endpoint_url=stack["aws_endpoint"],
        region_name=stack["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="session")
def events_of(stack, dynamodb):
    """The domain events stored for an episode, oldest first."""

    def read(episode_id: str) -> list[dict]:
        out = dynamodb.query(
            TableName=stack["outputs"]["EventsTableName"],
            KeyConditionExpression="episode_id = :e",
            ExpressionAttributeValues={":e": {"S": episode_id}},
            ConsistentRead=True,
        )
        return [json.loads(item["payload"]["S"]) for item in out["Items"]]

    return read


@pytest.fixture(scope="session")
def raw_episode(stack, dynamodb):
    """The stored episode item, tombstones included."""

    def read(episode_id: str) -> dict | None:
        out = dynamodb.get_item(
            TableName=stack["outputs"]["EpisodesTableName"], Key={"id": {"S": episode_id}}, ConsistentRead=True
        )
        return out.get("Item")

    return read


@pytest.fixture(scope="session")
def aws(stack):
    """A boto3 client factory for the emulator, as its root user."""

    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=stack["aws_endpoint"],
            region_name=stack["region"],
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return client


def people(*specs, **claims):
    """Fresh users for one test: (name, role) → (user id, token); `claims` go in every token."""
    run = uuid.uuid4().hex[:6]
    return {
        name: (f"{name}-{run}", oidc.mint(f"{name}-{run}", role, name.capitalize(), **claims))
        for name, role in specs
    }


def eventually(check, timeout: float = 30.0, interval: float = 0.25):
    """Polls `check` until it returns a truthy value (returned) or the timeout passes (fails)."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s; last value: {last!r}")


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: the contract fuzzer (runs after every other test)")


def pytest_collection_modifyitems(config, items):
    """The fuzzer last: what it leaves behind (episodes, pending uploads the files worker later
    cleans up) should not share the queues with the tests that time the workers."""
    items.sort(key=lambda item: item.get_closest_marker("fuzz") is not None)


def pytest_sessionfinish(session, exitstatus):
    """The fault scenarios' figures (tests/e2e/faults.py), for `make chaos` and the README."""
    faults = sys.modules.get("faults")
    if faults is not None and faults.ROWS:
        out = ROOT / "results" / "reliability.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"scale": faults.SCALE, "rows": faults.ROWS}, indent=2) + "\n")


def notification_totals(api, token) -> dict:
    """What a user's notifications add up to: the bell's counts (`unread`, `unseen`), the
    notifications listed in each state, and `counted`, the events they count (the sum of
    their `count`). Exact means: counted = the events that should reach the user, and each
    count = the notifications listed in that state."""
    items, cursor = [], None
    while True:
        params = {"state": "all", "limit": 100} | ({"cursor": cursor} if cursor else {})
        r = api.request("GET", "/me/notifications", token, params=params)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    counts = api.request("GET", "/me/notifications/unread-count", token).json()
    return {
        "unread": counts["unread"],
        "unseen": counts["unseen"],
        "listed_unread": sum(1 for n in items if not n["read"]),
        "listed_unseen": sum(1 for n in items if not n["seen"]),
        "counted": sum(n["count"] for n in items),
        "notifications": len(items),
    }
