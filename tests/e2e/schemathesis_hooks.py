"""schemathesis hooks for the contract run (`SCHEMATHESIS_HOOKS=schemathesis_hooks`).

One hook, and it only forgives: a schema-valid request that the API refused because of state
the fuzzer cannot know — and only when the problem the API answered names exactly that
reason. Every other refusal of valid data, and every other check, still fails the run.
"""

from __future__ import annotations

import schemathesis

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


def forgiven(operation: str, status: int, problem: dict) -> bool:
    """Whether a refusal of schema-valid data is about state rather than the request's shape."""
    fields = _fields(problem)
    if status == 400 and fields == {"cursor"}:
        # A cursor is an opaque token the server issued; a made-up one cannot name a position.
        return True
    if status == STALE_VERSION and problem.get("type") == "/problems/precondition-failed":
        return True
    if operation == "PATCH /episodes/{id}":
        # The version edited must be named (If-Match or `version`), and the two must agree: a
        # rule across a header and the body, which a schema cannot state.
        if status == 428 and problem.get("type") == "/problems/precondition-required":
            return True
        if status == 400 and fields == {"version"}:
            return True
    if operation == "POST /episodes/{id}/jobs" and status == 422 and fields == {"file_id"}:
        # `file_id` must name an available file of the episode, of a type the job reads.
        return True
    return False


@schemathesis.hook
def filter_failure(ctx, failure, case, response) -> bool:
    if type(failure).__name__ != "RejectedPositiveData":
        return True
    return not forgiven(case.operation.label, response.status_code, _problem(response))
