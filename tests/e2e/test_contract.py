"""The published contracts against the deployed stack: the documents it serves match the
template's routes, browsers may call it (CORS), and schemathesis — a fuzzer nobody here wrote —
drives every operation from the OpenAPI document with real tokens for each role and checks
every answer against it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

VENV_BIN = Path(sys.executable).parent


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, tag, node):
    if isinstance(node, yaml.ScalarNode):
        return {tag: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {tag: loader.construct_sequence(node, deep=True)}
    return {tag: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load((ROOT / "infra" / "template.yaml").read_text(), Loader=_CfnLoader)


@pytest.fixture(scope="module")
def openapi(stack) -> dict:
    r = requests.get(stack["http_url"] + "/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


@pytest.fixture(scope="module")
def asyncapi(stack) -> dict:
    r = requests.get(stack["http_url"] + "/asyncapi.json", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def routes_of(template: dict, api: str) -> dict[str, str]:
    """RouteKey → the function its integration invokes (its directory under functions/)."""
    resources = template["Resources"]
    out = {}
    for res in resources.values():
        if res["Type"] != "AWS::ApiGatewayV2::Route" or res["Properties"]["ApiId"] != {"Ref": api}:
            continue
        target = res["Properties"]["Target"]["Sub"]
        integration = re.fullmatch(r"integrations/\$\{(\w+)\}", target).group(1)
        uri = resources[integration]["Properties"]["IntegrationUri"]
        function = (uri["GetAtt"].split(".")[0] if "GetAtt" in uri
                    else re.search(r"\$\{(\w+)\.Arn\}", uri["Sub"]).group(1))
        code = resources[function]["Properties"]["CodeUri"]
        out[res["Properties"]["RouteKey"]] = code.split("/")[-2]
    return out


def test_the_served_openapi_lists_exactly_the_templates_routes(openapi, template):
    documented = {
        f"{method.upper()} {path}": op["x-function"]
        for path, ops in openapi["paths"].items()
        for method, op in ops.items()
    }
    assert documented == routes_of(template, "HttpApi")
    assert openapi["openapi"].startswith("3.1")
    public = {r["Properties"]["RouteKey"] for r in template["Resources"].values()
              if r["Type"] == "AWS::ApiGatewayV2::Route" and r["Properties"]["ApiId"] == {"Ref": "HttpApi"}
              and r["Properties"]["AuthorizationType"] == "NONE"}
    unsecured = {f"{m.upper()} {p}" for p, ops in openapi["paths"].items() for m, op in ops.items()
                 if op.get("security") == []}
    assert unsecured == public == {"GET /health", "GET /openapi.json", "GET /asyncapi.json"}


def test_the_served_asyncapi_has_a_message_for_every_websocket_route(asyncapi, template):
    routes = set(routes_of(template, "WebSocketApi")) - {"$connect", "$disconnect", "$default"}
    actions = {
        m["payload"]["$ref"].rsplit("/", 1)[-1]: m for m in asyncapi["components"]["messages"].values()
    }
    sent = {op["messages"][0]["$ref"].rsplit("/", 1)[-1]
            for op in asyncapi["operations"].values() if op["action"] == "send"}
    assert sent == routes, (sent, routes)
    assert asyncapi["asyncapi"] == "3.0.0"
    assert actions, "no messages"


def test_every_example_in_the_openapi_document_is_valid_against_its_schema(openapi):
    """The examples come from the recorded fixtures in events/: a change to a type that the
    fixtures do not follow fails here."""
    from jsonschema import Draft202012Validator

    checked = 0
    for ops in openapi["paths"].values():
        for op in ops.values():
            media = list(op.get("requestBody", {}).get("content", {}).values())
            media += [m for r in op["responses"].values() for m in r.get("content", {}).values()]
            for m in media:
                if "example" not in m:
                    continue
                schema = {**m["schema"], "components": openapi["components"]}
                Draft202012Validator(schema).validate(m["example"])
                checked += 1
    assert checked >= 8, checked


def test_the_written_contract_is_the_served_one(openapi, asyncapi):
    """`make contract` writes what the stack serves (both from the same code)."""
    written = ROOT / ".local" / "contract"
    assert json.loads((written / "openapi.json").read_text()) == openapi, "run `make contract`"
    assert json.loads((written / "asyncapi.json").read_text()) == asyncapi, "run `make contract`"


def test_every_recorded_event_follows_the_asyncapi_event_schema(asyncapi):
    """The domain events in events/ (recorded from the stack) against the contract's `Event`:
    the envelope and, by type, the data."""
    from jsonschema import Draft7Validator

    validator = Draft7Validator({"$ref": "#/components/schemas/Event", "components": asyncapi["components"]})
    recorded = sorted((ROOT / "events" / "domain").glob("*.json"))
    assert len(recorded) >= 14
    for path in recorded:
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert not errors, (path.name, errors[:3])


def test_the_typed_client_example_runs_against_the_stack(stack):
    """tests/client/example.ts, type-checked against the client generated from the document,
    then run: create, edit with If-Match, a stale edit refused, read, list, delete."""
    token = oidc.mint("client-example", "editor", "Client Example")
    result = subprocess.run(
        ["npm", "run", "--silent", "example"],
        cwd=ROOT / "tests" / "client",
        env={**os.environ, "API_URL": stack["http_url"], "API_TOKEN": token},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["ok"] is True


def preflight(stack, origin: str, method: str, headers: str) -> requests.Response:
    return requests.options(
        stack["http_url"] + "/episodes/01a213ea-bcea-7231-95fb-08c52221b2de/jobs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
        timeout=30,
    )


def test_a_browser_on_the_allowed_origin_may_send_every_header_the_api_reads(stack, api, tokens):
    origin = stack["cors_allowed_origins"][0]
    wanted = "authorization,content-type,idempotency-key,if-match,x-correlation-id"
    r = preflight(stack, origin, "POST", wanted)
    assert r.status_code in (200, 204), (r.status_code, r.text)
    assert r.headers.get("access-control-allow-origin") == origin
    allowed = {h.strip().lower() for h in r.headers.get("access-control-allow-headers", "").split(",")}
    assert set(wanted.split(",")) <= allowed, allowed
    assert "PATCH" in r.headers.get("access-control-allow-methods", "").upper()

    # The response headers a client needs are exposed on the real answer.
    created = api.request("POST", "/episodes", tokens["alice"], json={"title": "CORS"},
                          headers={"Origin": origin})
    assert created.status_code == 201, created.text
    assert created.headers.get("access-control-allow-origin") == origin
    exposed = {h.strip().lower() for h in created.headers.get("access-control-expose-headers", "").split(",")}
    assert {"etag", "location", "retry-after"} <= exposed, exposed


def test_a_browser_on_another_origin_is_not_allowed(stack):
    r = preflight(stack, "https://evil.example", "POST", "authorization,content-type")
    # Answered (not a missing route or a crash), and without the origin's permission.
    assert r.status_code in (200, 204, 403), (r.status_code, r.text)
    assert r.headers.get("access-control-allow-origin") not in ("https://evil.example", "*"), r.headers


# ------------------------------------------------------------------------------- schemathesis

def run_schemathesis(stack, token: str, report: Path, *extra: str, workers: int = 2) -> subprocess.CompletedProcess:
    argv = [
        str(VENV_BIN / "schemathesis"), "run", stack["http_url"] + "/openapi.json",
        "--url", stack["http_url"],
        "--checks", "all",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"),
        "--seed", "1",
        "--generation-database", "none",
        "--workers", str(workers),
        "--request-timeout", "30",
        "-H", f"Authorization: Bearer {token}",
        "--report", "junit", "--report-junit-path", str(report),
        "--no-color",
        *extra,
    ]
    here = ROOT / "tests" / "e2e"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "SCHEMATHESIS_FORGIVEN": str(report.with_suffix(".forgiven.json")),
           "PYTHONPATH": f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(argv, cwd=here, env=env, capture_output=True, text=True, timeout=900)


def summary(result: subprocess.CompletedProcess, report: Path) -> str:
    operations = failures = 0
    if report.exists():
        root = ET.parse(report).getroot()
        for suite in root.iter("testsuite"):
            operations += int(suite.get("tests", 0))
            failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    generated = re.search(r"(\d+) generated", result.stdout)
    forgiven_log = report.with_suffix(".forgiven.json")
    forgiven = json.loads(forgiven_log.read_text()) if forgiven_log.exists() else {}
    lines = result.stdout.splitlines()
    start = next((i for i, l in enumerate(lines) if "WARNINGS" in l or "FAILURES" in l), max(0, len(lines) - 80))
    tail = "\n".join(lines[start:])
    return (f"exit {result.returncode}; {operations} operations, "
            f"{generated.group(1) if generated else '?'} cases generated, {failures} failing; "
            f"forgiven: {json.dumps(forgiven)}\n{tail}\n{result.stderr[-2000:]}")


# CPython 3.11's "AST constructor recursion depth mismatch" (python/cpython#106905, threads
# parsing at once; Hypothesis parses lambdas' sources): an error of the interpreter running the
# fuzzer, not a finding about the API. Seen once in CI, in the coverage phase of one run.
INTERPRETER_BUG = "AST constructor recursion depth mismatch"


def only_the_interpreter_bug(report: Path) -> bool:
    if not report.exists():
        return False
    root = ET.parse(report).getroot()
    failures = list(root.iter("failure"))
    errors = list(root.iter("error"))
    return not failures and bool(errors) and all(INTERPRETER_BUG in (e.text or "") for e in errors)


@pytest.mark.fuzz
@pytest.mark.parametrize("role", ["editor", "viewer", "admin"])
def test_schemathesis_finds_nothing(stack, role, tmp_path):
    token = oidc.mint(f"fuzz-{role}", role, f"Fuzz {role}")
    report = tmp_path / "junit.xml"
    result = run_schemathesis(stack, token, report)
    if result.returncode and only_the_interpreter_bug(report):
        # The same run again, in one worker thread: a finding would show there as before.
        print(f"the fuzzer's interpreter failed ({INTERPRETER_BUG}); running again in one worker")
        result = run_schemathesis(stack, token, report, workers=1)
    print(summary(result, report))
    assert result.returncode == 0, summary(result, report)
