"""The fault proxy the local stack runs in front of the emulator (microburst, `fault_proxy` in
.local/stack.json), and how a test sends one function's calls through it.

A function's calls of one service go through the proxy while its `AWS_ENDPOINT_URL_<SERVICE>` names
the proxy (the SDK's per-service endpoint variable, read at init; updating a function's
configuration starts new processes); `route` sets that and puts back the configuration it found,
whatever the test did. Rules are microburst's (its README: service, operation, probability,
sequence, times, error, latency, timeout_ms, reset, response); `rules` replaces them all."""

from __future__ import annotations

import contextlib
import os
import time

import requests

# `make chaos` runs the scenarios this many times larger than `make test` does.
SCALE = max(1, int(os.environ.get("CHAOS_SCALE", "1")))

# One row per scenario run, written to results/reliability.json at the end of the session
# (tests/e2e/conftest.py) and printed by `make chaos` (tests/chaos.py).
ROWS: list[dict] = []


def record(scenario: str, load: str, faults: str, ok: int, unavailable: int, lost: int, doubled: int,
           dead_letters: int, recovery_s: float | None) -> None:
    ROWS.append({"scenario": scenario, "load": load, "faults": faults, "ok": ok, "unavailable": unavailable,
                 "lost": lost, "doubled": doubled, "dead_letters": dead_letters,
                 "recovery_s": None if recovery_s is None else round(recovery_s, 1)})


def dead_letters(aws, stack: dict) -> int:
    """Messages in every dead-letter queue of the stack (visible or in flight)."""
    sqs = aws("sqs")
    total = 0
    for name, url in stack["outputs"].items():
        if name.endswith("DeadLetterQueueUrl"):
            a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            total += int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])
    return total


def miscount(expected: dict, actual: dict) -> tuple[int, int]:
    """(lost, doubled) between what should have happened and what did, per key."""
    lost = sum(max(0, len(expected[k]) - len(actual.get(k, []))) for k in expected)
    doubled = sum(max(0, len(actual.get(k, [])) - len(expected[k])) for k in expected)
    return lost, doubled

# The SDK's per-service endpoint variables (aws-config), by the service's SigV4 name.
ENDPOINT_VARIABLE = {"dynamodb": "AWS_ENDPOINT_URL_DYNAMODB", "sqs": "AWS_ENDPOINT_URL_SQS", "s3": "AWS_ENDPOINT_URL_S3"}


class FaultProxy:
    def __init__(self, stack: dict, lambda_client):
        self.url = stack["fault_proxy"]
        self.endpoint = stack["aws_endpoint"]
        self.prefix = f"{stack['stack_name']}-"
        self.lam = lambda_client
        self.http = requests.Session()

    def _control(self, method: str, path: str, **kw):
        r = self.http.request(method, f"{self.url}/_microburst/{path}", timeout=10, **kw)
        r.raise_for_status()
        return r.json() if r.content else None

    def rules(self, rules: list[dict]) -> None:
        """Replaces every rule (an empty list: the proxy forwards everything as it is)."""
        self._control("POST", "rules", json=rules)

    def fired(self, **filters) -> list[dict]:
        """What the proxy injected since the block began (filters: service, operation, rule_id)."""
        return self._control("GET", "fired", params={"limit": 100000, **filters})

    def forget(self) -> None:
        self._control("DELETE", "fired")

    def proxied(self, url: str) -> str:
        """`url` of the emulator, through the proxy."""
        assert url.startswith(self.endpoint), url
        return self.url + url[len(self.endpoint):]

    @contextlib.contextmanager
    def route(self, function: str, services: tuple[str, ...] = (), **variables: str):
        """`function`'s calls of `services` (and whatever `variables` point at the proxy) go
        through the proxy inside the block; afterwards no rule is left and the function's
        configuration is what it was."""
        name = self.prefix + function
        before = self.lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        # Put back the function's own values: none that names the proxy (a run killed inside a
        # block would otherwise be restored as it left things).
        assert not self.routed(before), f"{name} already goes through the fault proxy: {before}"
        env = dict(before) | {ENDPOINT_VARIABLE[s]: self.url for s in services} | variables
        self.rules([])
        self.forget()
        try:
            self._set(name, env)
            yield
        finally:
            self.rules([])
            self._set(name, before)

    def routed(self, variables: dict) -> list[str]:
        """The variables that send calls through the proxy."""
        return [k for k, v in variables.items() if isinstance(v, str) and v.startswith(self.url)]

    def routed_functions(self) -> dict[str, list[str]]:
        """The stack's functions that send calls through the proxy, and by which variables."""
        out = {}
        for page in self.lam.get_paginator("list_functions").paginate():
            for fn in page["Functions"]:
                if fn["FunctionName"].startswith(self.prefix):
                    names = self.routed(fn.get("Environment", {}).get("Variables", {}))
                    if names:
                        out[fn["FunctionName"]] = names
        return out

    def _set(self, name: str, env: dict) -> None:
        configure(self.lam, name, Environment={"Variables": env})


def configure(lam, name: str, **changes) -> None:
    """Updates a function's configuration and waits until the update is done."""
    lam.update_function_configuration(FunctionName=name, **changes)
    deadline = time.monotonic() + 30
    while lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus") == "InProgress":
        assert time.monotonic() < deadline, f"{name}: configuration update still in progress"
        time.sleep(0.2)


@contextlib.contextmanager
def function_env(stack, aws, functions, values: dict):
    """The stack's `functions` (short names: "notification-worker") run with `values` added to
    their environment inside the block; put back as they were whatever happens."""
    lam = aws("lambda")
    names = [f"{stack['stack_name']}-{f}" for f in functions]
    before = {n: lam.get_function_configuration(FunctionName=n)["Environment"]["Variables"] for n in names}
    try:
        for n in names:
            configure(lam, n, Environment={"Variables": before[n] | values})
        yield
    finally:
        with contextlib.ExitStack() as undo:  # each put back, even if another's fails
            for n in names:
                undo.callback(configure, lam, n, Environment={"Variables": before[n]})
