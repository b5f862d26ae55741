"""schemathesis hooks for the contract run (`SCHEMATHESIS_HOOKS=schemathesis_hooks`).

One hook, and it only forgives, each time only when the answer says exactly why:
- a schema-valid request that the API refused because of state the fuzzer cannot know;
- a rule list for jobs on upload that names one job type twice, once by name and once as an
  object (a rule across items that `uniqueItems` cannot state);
- a search (`GET /episodes?q=`) of more than 8 distinct words, which a pattern over words of
  any script, folded, cannot state;
- an analytics period longer than 366 days (a rule across `from` and `to`);
- an undocumented method answered by API Gateway's own 404 rather than a 405: an HTTP API
  answers 405 only through an `ANY` route, and on AWS an `ANY` route takes browsers' CORS
  preflights to the JWT authorizer, which refuses them (tests/template pins that no route does);
- an episode's activity read after the episode was deleted: the activity log is the audit
  trail and outlives what it records (its last entry is the deletion); everything else under a
  deleted episode is 404 at once.
Every other failure of every check still fails the run.
"""

from __future__ import annotations

import atexit
import collections
import json
import os

import schemathesis

#: Why each forgiven failure was forgiven, written at exit to $SCHEMATHESIS_FORGIVEN (if set).
FORGIVEN: collections.Counter = collections.Counter()


@atexit.register
def _write_forgiven() -> None:
    path = os.environ.get("SCHEMATHESIS_FORGIVEN")
    if path:
        with open(path, "w") as f:
            json.dump(dict(FORGIVEN.most_common()), f, indent=1)

#: A version the fuzzer made up is, almost always, not the episode's current one.
STALE_VERSION = 412


def _problem(response) -> dict:
    try:
        body = response.json()
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


def _fields(problem: dict) -> set[str]:
    return {e.get("field") for e in problem.get("errors", []) if isinstance(e, dict)}


def forgiven(operation: str, status: int, problem: dict) -> str | None:
    """Why a refusal of schema-valid data is about state rather than the request's shape, or
    None when it is not."""
    fields = _fields(problem)
    if status == 400 and fields == {"cursor"}:
        # A cursor is an opaque token the server issued; a made-up one cannot name a position.
        return "a made-up cursor (400)"
    if status == STALE_VERSION and problem.get("type") == "/problems/precondition-failed":
        return "a version that is not the current one (412)"
    if operation == "PATCH /episodes/{id}":
        # The version edited must be named (If-Match or `version`), and the two must agree: a
        # rule across a header and the body, which a schema cannot state.
        if status == 428 and problem.get("type") == "/problems/precondition-required":
            return "a PATCH naming no version (428)"
        if status == 400 and fields == {"version"}:
            return "a PATCH whose If-Match and version disagree (400)"
    if (operation == "PUT /episodes/{id}/upload-rules" and status == 422 and problem.get("errors")
            and all("twice" in e.get("message", "") for e in problem["errors"])):
        # Each job type at most once a kind, whether written as a name or as {"type": ...}: a
        # rule across a list's items that `uniqueItems` cannot state.
        return "a rule list naming a job type twice (422)"
    if (operation == "GET /episodes" and status == 400 and fields == {"q"} and problem.get("errors")
            and all("8 distinct words" in e.get("message", "") for e in problem["errors"])):
        # A search takes at most 8 distinct words, once folded (case and accents): a rule on
        # words of any script that a pattern cannot state.
        return "a search of more than 8 distinct words (400)"
    if (operation.startswith("GET /analytics/") and status == 400 and fields == {"from"}
            and all("366 days" in e.get("message", "") for e in problem.get("errors", []))):
        # A period of at most 366 days: a rule across `from` and `to` a schema cannot state.
        return "an analytics period longer than 366 days (400)"
    if operation == "POST /episodes/{id}/jobs" and status == 422 and fields == {"file_id"}:
        # `file_id` must name an available file of the episode, of a type the job reads.
        return "a job on a file that is not an available file of the episode (422)"
    return None


def gateways_no_route(response) -> bool:
    return response.status_code == 404 and _problem(response) == {"message": "Not Found"}


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    kind = type(failure).__name__
    reason = None
    if kind == "UnsupportedMethodResponse" and gateways_no_route(response):
        reason = "an undeclared method: API Gateway's 404"
    if kind == "UseAfterFree" and case.operation.label == "GET /episodes/{id}/activity":
        reason = "a deleted episode's activity: the audit trail outlives it"
    if kind == "RejectedPositiveData":
        reason = forgiven(case.operation.label, response.status_code, _problem(response))
    if reason is None:
        return True
    FORGIVEN[reason] += 1
    return False
