"""The local stack: ministack on 127.0.0.1:4566, the loopback OIDC issuer, the functions built with
cargo-lambda, infra/template.yaml deployed to it — the same template as for AWS — and the web
console served on 127.0.0.1:5173.

    python infra/local/stack.py up [--foreground]   start what is not running, build, deploy
    python infra/local/stack.py deploy              rebuild and redeploy into the running stack
    python infra/local/stack.py down                stop what `up` started
    python infra/local/stack.py run -- CMD...       up, run CMD against the stack, stop what up started
    python infra/local/stack.py token --user alice --role editor

Everything it learns is written to .local/stack.json for scripts and tests. The emulator is
whatever answers on AWS_ENDPOINT_URL (default http://127.0.0.1:4566): ministack is started only
when nothing answers there, so a running LocalStack is used as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
LOGS = LOCAL / "logs"
PIDS = LOCAL / "pids"
STACK_JSON = LOCAL / "stack.json"
TEMPLATE = ROOT / "infra" / "template.yaml"
LAMBDA_DIR = ROOT / "target" / "lambda-local"
BIN = Path(sys.executable).parent

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566").rstrip("/")
REGION = os.environ.get("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
STACK_NAME = os.environ.get("STACK_NAME", "episodes")
ARTIFACT_BUCKET = os.environ.get("ARTIFACT_BUCKET", "episodes-local-artifacts")
PINNED_API_ID = os.environ.get("PINNED_API_ID", "episodesapi")
PINNED_WS_API_ID = os.environ.get("PINNED_WS_API_ID", "episodesws")
WS_STAGE = "live"  # the template's WebSocketStage
# Short locally so the tests see presence.left quickly; 10 s by default on AWS.
PRESENCE_GRACE_SECONDS = os.environ.get("PRESENCE_GRACE_SECONDS", "2")
BUILD_PROFILE = os.environ.get("BUILD_PROFILE", "local")
# The fault-injecting proxy (microburst) in front of the emulator. Nothing goes through it until a
# test points one function's calls of one service at it (AWS_ENDPOINT_URL_<SERVICE>); with no
# rules it forwards every request as it is.
FAULT_PROXY_PORT = int(os.environ.get("FAULT_PROXY_PORT", "4567"))
FAULT_PROXY = f"http://127.0.0.1:{FAULT_PROXY_PORT}"

sys.path.insert(0, str(Path(__file__).parent))
import console  # noqa: E402
import oidc  # noqa: E402

# The local emulator's root credentials; functions get their own roles' credentials.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_for(url: str, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if answers(url):
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer on {url} within {seconds:.0f}s; see {LOGS}/")


def start(name: str, argv: list[str], env: dict[str, str]) -> None:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    out = open(LOGS / f"{name}.log", "ab")
    proc = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=LOCAL, start_new_session=True
    )
    (PIDS / f"{name}.pid").write_text(str(proc.pid))
    log(f"started {name} (pid {proc.pid}), log in .local/logs/{name}.log")


def start_services() -> None:
    if answers(f"{ENDPOINT}/_ministack/health"):
        log(f"an emulator already answers on {ENDPOINT}; using it")
    else:
        port = ENDPOINT.rsplit(":", 1)[-1]
        start(
            "ministack",
            [str(BIN / "python"), "-m", "ministack"],
            {
                "BIND_HOST": "127.0.0.1",
                "GATEWAY_PORT": port,
                "IOT_MTLS_ENABLED": "0",
                "SFTP_ENABLED": "0",
                "LAMBDA_EXECUTOR": "local",
                # IAM enforced: a missing grant in the template fails the tests, not production.
                "AUTH": "true",
                "AWS_ENDPOINT_URL": ENDPOINT,
                "MINISTACK_REGION": REGION,
            },
        )
        wait_for(f"{ENDPOINT}/_ministack/health", "ministack")
    if answers(f"{FAULT_PROXY}/_microburst/health"):
        log(f"the fault proxy already answers on {FAULT_PROXY}")
    else:
        # It re-signs what it forwards (the signature names its host), with the emulator's root
        # credentials: IAM is not enforced on calls sent through it, only on the direct ones.
        start("microburst", [str(BIN / "microburst"), "--upstream", ENDPOINT, "--host", "127.0.0.1",
                             "--port", str(FAULT_PROXY_PORT), "--resign"], {})
        wait_for(f"{FAULT_PROXY}/_microburst/health", "the fault proxy")
    if answers(f"{oidc.ISSUER}/health"):
        # Another checkout's issuer signs with another key: its tokens would all be 401 here.
        with urllib.request.urlopen(f"{oidc.ISSUER}/.well-known/jwks.json", timeout=2) as r:
            kids = {k.get("kid") for k in json.load(r).get("keys", [])}
        if oidc.public_jwk(oidc.load_key())["kid"] not in kids:
            raise SystemExit(f"an OIDC issuer with another key answers on {oidc.ISSUER}: stop it (make down there)")
        log(f"the OIDC issuer already answers on {oidc.ISSUER}")
    else:
        oidc.load_key()  # created once here, not raced by the server and a token command
        start("oidc", [str(BIN / "python"), str(Path(__file__).parent / "oidc.py"), "serve"], {})
        wait_for(f"{oidc.ISSUER}/.well-known/jwks.json", "the OIDC issuer")


def stop_services() -> None:
    for pid_file in sorted(PIDS.glob("*.pid")) if PIDS.exists() else []:
        try:
            pid = int(pid_file.read_text())
            os.killpg(pid, signal.SIGTERM)
            log(f"stopped {pid_file.stem} (pid {pid})")
        except (ProcessLookupError, ValueError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)


def build() -> None:
    log(f"building the functions with cargo-lambda (profile {BUILD_PROFILE}, x86_64 zips)")
    subprocess.run(
        [
            str(BIN / "cargo-lambda"), "lambda", "build",
            "--profile", BUILD_PROFILE,
            "--lambda-dir", str(LAMBDA_DIR),
            "--output-format", "zip",
            "--compiler", "cargo",
            "--x86-64",
        ],
        cwd=ROOT,
        check=True,
    )


def boto(service: str):
    import boto3

    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION)


def package(template: str) -> str:
    """Uploads each function's zip under its content hash and points CodeUri at it."""
    s3 = boto("s3")
    try:
        s3.head_bucket(Bucket=ARTIFACT_BUCKET)
    except Exception:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)

    def upload(match: re.Match) -> str:
        name = match.group("name")
        zip_path = LAMBDA_DIR / name / "bootstrap.zip"
        if not zip_path.exists():
            raise SystemExit(f"{zip_path} is missing: is {name} a workspace member?")
        data = zip_path.read_bytes()
        key = f"{name}/{hashlib.sha256(data).hexdigest()}.zip"
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=data)
        return f"CodeUri: s3://{ARTIFACT_BUCKET}/{key}"

    return re.sub(r"CodeUri: \.\./target/lambda/(?P<name>[a-z0-9-]+)/bootstrap\.zip", upload, template)


def deploy() -> dict:
    cfn = boto("cloudformation")
    body = package(TEMPLATE.read_text())
    # CloudFormation takes at most 51,200 bytes inline; from S3, up to 1 MB (as `sam deploy` does).
    template_key = f"templates/{hashlib.sha256(body.encode()).hexdigest()}.yaml"
    boto("s3").put_object(Bucket=ARTIFACT_BUCKET, Key=template_key, Body=body.encode())
    template_url = f"{ENDPOINT}/{ARTIFACT_BUCKET}/{template_key}"
    params = [
        {"ParameterKey": "Architecture", "ParameterValue": "x86_64"},
        {"ParameterKey": "JwtIssuer", "ParameterValue": oidc.ISSUER},
        {"ParameterKey": "JwtAudience", "ParameterValue": oidc.AUDIENCE},
        {"ParameterKey": "PinnedApiId", "ParameterValue": PINNED_API_ID},
        {"ParameterKey": "PinnedWebSocketApiId", "ParameterValue": PINNED_WS_API_ID},
        # !GetAtt ApiEndpoint does not resolve locally: the @connections path form instead.
        {"ParameterKey": "ConnectionsEndpoint",
         "ParameterValue": f"{ENDPOINT}/_aws/execute-api/{PINNED_WS_API_ID}/{WS_STAGE}"},
        {"ParameterKey": "PresenceGraceSeconds", "ParameterValue": PRESENCE_GRACE_SECONDS},
        {"ParameterKey": "Emulator", "ParameterValue": "ministack"},
        # Short locally so the tests see abandoned uploads confirmed or cleaned up quickly.
        {"ParameterKey": "JobFaultInjection", "ParameterValue": "enabled"},
        {"ParameterKey": "UploadUrlSeconds", "ParameterValue": os.environ.get("UPLOAD_URL_SECONDS", "20")},
        {"ParameterKey": "LogLevel", "ParameterValue": os.environ.get("LOG_LEVEL", "info")},
        # Jobs on upload start nothing on the local stack unless asked (UPLOAD_JOBS='<rules>'
        # make dev; the template's default with UPLOAD_JOBS=default): the tests count the jobs
        # and files they make. tests/e2e/test_media_jobs.py sets the template's default on
        # the functions for its own run.
        *([] if os.environ.get("UPLOAD_JOBS") == "default" else
          [{"ParameterKey": "UploadJobs", "ParameterValue": os.environ.get("UPLOAD_JOBS", "{}")}]),
    ]
    caps = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    started = time.monotonic()
    try:
        cfn.describe_stacks(StackName=STACK_NAME)
        exists = True
    except Exception:
        exists = False
    try:
        if exists:
            cfn.update_stack(StackName=STACK_NAME, TemplateURL=template_url, Parameters=params, Capabilities=caps)
            waiter = "stack_update_complete"
        else:
            cfn.create_stack(StackName=STACK_NAME, TemplateURL=template_url, Parameters=params, Capabilities=caps)
            waiter = "stack_create_complete"
        cfn.get_waiter(waiter).wait(StackName=STACK_NAME, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    except Exception as e:
        if "No updates are to be performed" in str(e):
            log("no changes to deploy")
        else:
            for ev in cfn.describe_stack_events(StackName=STACK_NAME)["StackEvents"][:15]:
                if "FAILED" in ev.get("ResourceStatus", ""):
                    log(f"{ev['LogicalResourceId']}: {ev.get('ResourceStatusReason')}")
            raise SystemExit(f"deploy failed: {e}")
    log(f"stack {STACK_NAME} deployed in {time.monotonic() - started:.1f}s")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0].get("Outputs", [])
    }
    enable_ttl(outputs)
    apply_cors(outputs)
    write_env_files()
    return outputs


def enable_ttl(outputs: dict) -> None:
    """ministack ignores TimeToLiveSpecification in CloudFormation; AWS applies it from the template."""
    ddb = boto("dynamodb")
    for key in ("EpisodesTableName", "EventsTableName", "ActivityTableName", "NotificationsTableName",
                "ConnectionsTableName", "SubscriptionsTableName", "PresenceTableName", "FilesTableName",
                "JobsTableName"):
        table = outputs.get(key)
        if not table:
            continue
        desc = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if desc.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
            )


def template_cors() -> dict:
    """The HTTP API's CorsConfiguration as the template gives it, `!Ref`s to parameters resolved
    to their defaults."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tagged(loader, tag, node):
        if isinstance(node, yaml.ScalarNode):
            return {tag: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {tag: loader.construct_sequence(node, deep=True)}
        return None

    Loader.add_multi_constructor("!", tagged)
    doc = yaml.load(TEMPLATE.read_text(), Loader=Loader)
    cors = doc["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    resolved = {}
    for key, value in cors.items():
        # The console is not hosted locally (ConsoleHosting = none): the If's false branch.
        if isinstance(value, dict) and "If" in value:
            value = value["If"][2]
        if isinstance(value, dict) and "Ref" in value:
            default = doc["Parameters"][value["Ref"]]["Default"]
            value = [v.strip() for v in str(default).split(",")]
        resolved[key] = value
    return resolved


def apply_cors(outputs: dict) -> None:
    """ministack deploys the HTTP API with an empty CorsConfiguration (every preflight is then
    refused, 403); AWS applies the template's. Set the template's on the deployed API."""
    cors = template_cors()
    boto("apigatewayv2").update_api(ApiId=outputs["HttpApiId"], CorsConfiguration=cors)
    applied = boto("apigatewayv2").get_api(ApiId=outputs["HttpApiId"]).get("CorsConfiguration", {})
    if sorted(map(str.lower, applied.get("AllowHeaders", []))) != sorted(map(str.lower, cors["AllowHeaders"])):
        raise SystemExit(f"the HTTP API's CORS configuration did not apply: {applied}")


def write_stack_json(outputs: dict) -> dict:
    api_id = outputs["HttpApiId"]
    info = {
        "http_url": f"{ENDPOINT}/_aws/execute-api/{api_id}",
        "ws_url": f"{ENDPOINT.replace('http://', 'ws://')}/_aws/execute-api/{outputs['WebSocketApiId']}/{WS_STAGE}",
        "aws_endpoint": ENDPOINT,
        "fault_proxy": FAULT_PROXY,
        "issuer": oidc.ISSUER,
        "audience": oidc.AUDIENCE,
        "cors_allowed_origins": template_cors()["AllowOrigins"],
        "console_url": console.URL,
        "region": REGION,
        "stack_name": STACK_NAME,
        "outputs": outputs,
    }
    LOCAL.mkdir(parents=True, exist_ok=True)
    STACK_JSON.write_text(json.dumps(info, indent=2) + "\n")
    return info


def write_env_files() -> None:
    """One env file per deployed function (its variables, plus the emulator's endpoint and
    credentials) for `cargo lambda watch --env-file .local/env/NAME.env`."""
    lam = boto("lambda")
    env_dir = LOCAL / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{STACK_NAME}-"
    for page in lam.get_paginator("list_functions").paginate():
        for fn in page["Functions"]:
            if not fn["FunctionName"].startswith(prefix):
                continue
            name = fn["FunctionName"][len(prefix):]
            env = dict(fn.get("Environment", {}).get("Variables", {}))
            env.update({
                "AWS_ENDPOINT_URL": ENDPOINT,
                "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
            })
            (env_dir / f"{name}.env").write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))


def wait_for_api(info: dict) -> None:
    """The first request to a fresh function includes its cold start; do it here, not in a test."""
    wait_for(f"{info['http_url']}/health", "the HTTP API", seconds=60)


def print_ready(info: dict) -> None:
    url = info["http_url"]
    print(
        f"""
Local stack ready.
  HTTP API     {url}
  AWS endpoint {info['aws_endpoint']}  (region {info['region']})
  OIDC issuer  {info['issuer']}
  Console      {info['console_url']}  (sign in as anyone: the local issuer's page)
  written to   .local/stack.json

Try it:
  TOKEN=$(make -s token USER=alice ROLE=editor)
  curl -s -X POST {url}/episodes -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d '{{"title":"Pilot"}}'
  curl -s {url}/episodes -H "Authorization: Bearer $TOKEN"
""",
        flush=True,
    )


def start_console() -> None:
    """Builds the console and serves it (once: a running one reads config.json afresh)."""
    console.build()
    if answers(f"{console.URL}/config.json"):
        log(f"the console already answers on {console.URL}")
        return
    start("console", [str(BIN / "python"), str(Path(__file__).parent / "console.py"), "serve"], {})
    wait_for(f"{console.URL}/config.json", "the console")


def up(foreground: bool) -> None:
    start_services()
    build()
    info = write_stack_json(deploy())
    start_console()
    wait_for_api(info)
    print_ready(info)
    if foreground:
        print("Ctrl-C stops everything this command started.", flush=True)

        def stop(signum, _frame):
            raise KeyboardInterrupt

        # Explicit handlers: SIGINT may arrive ignored (a background job), and a process
        # manager sends SIGTERM.
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C (or make passing one on) must not cut the clean-up short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop_services()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="start the local stack, build and deploy")
    up_p.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops it all")
    sub.add_parser("deploy", help="rebuild the functions and redeploy the template")
    sub.add_parser("down", help="stop what `up` started")
    run_p = sub.add_parser("run", help="bring the stack up, run a command against it, stop what was started")
    run_p.add_argument("cmd", nargs=argparse.REMAINDER)
    tok = sub.add_parser("token", help="print a token from the local issuer")
    tok.add_argument("--user", required=True)
    tok.add_argument("--role", choices=oidc.ROLES, default="viewer")
    tok.add_argument("--name")
    args = parser.parse_args()
    if args.command == "up":
        up(args.foreground)
    elif args.command == "deploy":
        build()
        info = write_stack_json(deploy())
        wait_for_api(info)
        print_ready(info)
    elif args.command == "down":
        stop_services()
    elif args.command == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        already_running = PIDS.exists() and any(PIDS.glob("*.pid"))
        try:
            up(foreground=False)
            code = subprocess.run(cmd, cwd=ROOT).returncode
        finally:
            if not already_running:
                stop_services()
        sys.exit(code)
    else:
        print(oidc.mint(args.user, args.role, args.name))


if __name__ == "__main__":
    main()
