"""Every bad input gets the right 4xx as application/problem+json, names what is wrong, and
changes nothing."""

from __future__ import annotations

import time

import pytest

import oidc

PROBLEM = "application/problem+json"


@pytest.fixture
def episode(api, tokens):
    return api.create(tokens["alice"], title="Untouchable")


def assert_problem(r, status, fields=()):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("/problems/")
    named = {e["field"] for e in body.get("errors", [])}
    assert set(fields) <= named, (fields, body)
    return body


def assert_unchanged(api, tokens, events_of, episode):
    got = api.request("GET", f"/episodes/{episode['id']}", tokens["alice"]).json()
    assert got == episode
    assert len(events_of(episode["id"])) == 1


def test_malformed_json(api, tokens, episode, events_of):
    alice = tokens["alice"]
    hdrs = {"Content-Type": "application/json"}
    assert_problem(api.request("POST", "/episodes", alice, data='{"title": ', headers=hdrs), 400, ["body"])
    assert_problem(api.request("PATCH", f"/episodes/{episode['id']}", alice, data="{,}", headers=hdrs), 400, ["body"])
    assert_problem(api.request("POST", "/episodes", alice, data="[1, 2]", headers=hdrs), 422, ["body"])
    assert_unchanged(api, tokens, events_of, episode)


def test_wrong_types_unknown_fields_and_out_of_range_values_are_all_named(api, tokens, episode, events_of):
    alice = tokens["alice"]
    body = assert_problem(
        api.request(
            "POST",
            "/episodes",
            alice,
            json={"title": 7, "season": "two", "number": 0, "air_date": "31/12/2026", "owner": "me", "status": "published"},
        ),
        422,
        ["title", "season", "number", "air_date", "owner", "status"],
    )
    assert len(body["errors"]) == 6
    assert_problem(
        api.request("PATCH", f"/episodes/{episode['id']}", alice, json={"title": None, "season": -1, "version": 1}),
        422,
        ["title", "season"],
    )
    assert_problem(api.request("PATCH", f"/episodes/{episode['id']}", alice, json={"version": 1}), 422, ["body"])
    assert_problem(api.request("PATCH", f"/episodes/{episode['id']}", alice, json={"status": "done", "version": 1}), 422, ["status"])
    assert_unchanged(api, tokens, events_of, episode)


def test_over_long_strings(api, tokens, episode, events_of):
    alice = tokens["alice"]
    assert_problem(api.request("POST", "/episodes", alice, json={"title": "x" * 201}), 422, ["title"])
    assert_problem(api.request("POST", "/episodes", alice, json={"title": "   "}), 422, ["title"])
    assert_problem(api.request("POST", "/episodes", alice, json={"title": "ok", "description": "d" * 5001}), 422, ["description"])
    assert_problem(
        api.request("PATCH", f"/episodes/{episode['id']}", alice, json={"series": "s" * 201, "version": 1}), 422, ["series"]
    )
    assert_unchanged(api, tokens, events_of, episode)


def test_huge_body_is_413(api, tokens, episode, events_of):
    alice = tokens["alice"]
    huge = '{"title": "big", "description": "' + "x" * (65 * 1024) + '"}'
    hdrs = {"Content-Type": "application/json"}
    assert_problem(api.request("POST", "/episodes", alice, data=huge, headers=hdrs), 413)
    assert_problem(api.request("PATCH", f"/episodes/{episode['id']}", alice, data=huge, headers=hdrs), 413)
    assert_unchanged(api, tokens, events_of, episode)


def test_wrong_content_type_is_415(api, tokens, episode, events_of):
    alice = tokens["alice"]
    assert_problem(api.request("POST", "/episodes", alice, data='{"title":"x"}', headers={"Content-Type": "text/plain"}), 415)
    assert_problem(api.request("POST", "/episodes", alice, data='{"title":"x"}'), 415)
    r = api.request(
        "PATCH",
        f"/episodes/{episode['id']}",
        alice,
        data='{"title":"merge","version":1}',
        headers={"Content-Type": "application/xml"},
    )
    assert_problem(r, 415)
    assert_unchanged(api, tokens, events_of, episode)


def test_versions_must_be_sent_and_well_formed(api, tokens, episode, events_of):
    alice, eid = tokens["alice"], episode["id"]
    assert_problem(api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "x"}), 428)
    assert_problem(api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "x"}, headers={"If-Match": "1"}), 400, ["If-Match"])
    assert_problem(
        api.request("PATCH", f"/episodes/{eid}", alice, json={"title": "x", "version": 2}, headers={"If-Match": '"1"'}),
        400,
        ["version"],
    )
    assert_problem(api.request("DELETE", f"/episodes/{eid}", alice, headers={"If-Match": '"9"'}), 412)
    assert_unchanged(api, tokens, events_of, episode)


def test_bad_query_parameters(api, tokens):
    alice = tokens["alice"]
    for params, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "done"}, "status"),
        ({"cursor": "garbage"}, "cursor"),
        ({"sort": "asc"}, "sort"),
    ]:
        assert_problem(api.request("GET", "/episodes", alice, params=params), 400, [field])


def test_invalid_ids(api, tokens):
    for method in ("GET", "PATCH", "DELETE"):
        r = api.request(method, "/episodes/..%2F..%2Fetc", tokens["alice"], json={"title": "x", "version": 1})
        assert r.status_code in (400, 404), r.text
        assert_problem(api.request(method, "/episodes/1234", tokens["alice"], json={"title": "x", "version": 1}), 400, ["id"])


def forged_tokens(run: str) -> dict[str, str]:
    other_key = oidc.generate_key()
    now = int(time.time())
    good = oidc.claims_for(f"alice-{run}", "admin", "Alice")
    return {
        "garbage": "not.a.jwt",
        "unsigned": oidc.b64url(b'{"alg":"none","typ":"JWT"}') + "." + oidc.b64url(str(good).encode()) + ".",
        "other key, same kid": oidc.sign(good, other_key, kid=oidc.public_jwk(oidc.load_key())["kid"]),
        "expired": oidc.sign({**good, "exp": now - 60, "iat": now - 3600, "nbf": now - 3600}, oidc.load_key()),
        "wrong audience": oidc.sign({**good, "aud": "someone-else"}, oidc.load_key()),
        "wrong issuer": oidc.sign({**good, "iss": "http://127.0.0.1:9/evil"}, oidc.load_key()),
    }


def test_missing_or_bad_tokens_are_401_and_write_nothing(api, tokens, episode, events_of):
    eid = episode["id"]
    assert api.request("GET", "/episodes").status_code == 401
    assert api.request("POST", "/episodes", json={"title": "anon"}).status_code == 401
    for name, token in forged_tokens(tokens["run"]).items():
        for method, path, body in [
            ("GET", "/episodes", None),
            ("POST", "/episodes", {"title": "forged"}),
            ("PATCH", f"/episodes/{eid}", {"title": "forged", "version": 1}),
            ("DELETE", f"/episodes/{eid}", None),
        ]:
            r = api.request(method, path, token, json=body)
            assert r.status_code == 401, (name, method, r.status_code, r.text)
    assert_unchanged(api, tokens, events_of, episode)


def test_unknown_route_and_method(api, tokens):
    r = api.request("PUT", "/episodes", tokens["alice"], json={})
    assert r.status_code in (404, 405)
