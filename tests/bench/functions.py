"""The functions measured on their own (issue 7): each release `bootstrap` driven through a
minimal Runtime API on loopback (runtime_api.py), against the emulator's DynamoDB, S3 and SQS.

  * cold start: init (start → first poll) and first invoke (start → first response) of every
    function and of the hello-world floor, round-robin, median of BENCH_COLD_STARTS (20);
  * footprint: stripped binary size, peak RSS (VmHWM) after at least 1,000 invokes;
  * request cost: every HTTP route, BENCH_REQUESTS (2,000) requests at concurrency 1 and 16
    (16 processes, as Lambda runs one invocation per instance), AWS calls per request from the
    function's own `request handled` lines, p50/p95/p99, beside the emulator's GetItem floor;
  * worker efficiency: DynamoDB calls per 10-message batch, from `batch handled` lines;
  * fan-out: one event to 1,000 subscribed connections, one post at a time vs the default bound,
    against a stand-in for the `@connections` API that answers after BENCH_POST_MS (20 ms, a
    same-region round trip) and checks that each connection got exactly one frame.

The functions run on their own copies of the stack's tables (no streams, so the deployed relay
and workers stay idle) and queues; the deployed stack is only the emulator and its bucket.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import boto3

from pipeline_live import v7
from runtime_api import Function, Outcome, Process, RuntimeApi

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "local"))
import oidc  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
COLD_STARTS = int(os.environ.get("BENCH_COLD_STARTS", "20"))
FOOTPRINT_INVOKES = int(os.environ.get("BENCH_FOOTPRINT_INVOKES", "1000"))
CONNECTIONS = int(os.environ.get("BENCH_FANOUT_CONNECTIONS", "1000"))
POST_MS = float(os.environ.get("BENCH_POST_MS", "20"))
CONCURRENCY = (1, 16)
LOGS = ROOT / "results" / "logs" / time.strftime("%Y%m%d-%H%M%S")  # each process's own log

FUNCTIONS = [
    "episodes-api", "feed-api", "files-api", "jobs-api", "ws-api", "event-relay",
    "activity-worker", "notification-worker", "broadcast-worker", "files-worker", "job-worker",
]
FLOOR = "hello-world"
PLAIN = "plain-sdk"
EDITOR = ("bench-editor", "editor", "Bench Editor")
WATCHER = ("bench-watcher", "editor", "Bench Watcher")
ADMIN = ("bench-admin", "admin", "Bench Admin")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def release_binaries() -> dict[str, Path]:
    """The AWS release build (fat LTO, opt-level s, stripped), for x86_64 on this machine."""
    subprocess.run(
        [str(Path(sys.executable).parent / "cargo-lambda"), "lambda", "build", "--release", "--x86-64",
         "--compiler", "cargo", "--lambda-dir", "target/lambda-release"],
        cwd=ROOT, check=True,
    )
    return {name: ROOT / "target" / "lambda-release" / name / "bootstrap" for name in FUNCTIONS + [FLOOR, PLAIN]}


# ---------------------------------------------------------------- the bench's own tables and queues

class Resources:
    def __init__(self, stack: dict) -> None:
        self.stack = stack
        kw = dict(endpoint_url=stack["aws_endpoint"], region_name=stack["region"],
                  aws_access_key_id="test", aws_secret_access_key="test")
        self.ddb = boto3.client("dynamodb", **kw)
        self.sqs = boto3.client("sqs", **kw)
        self.s3 = boto3.client("s3", **kw)
        self.envs = {name: self._env_file(name) for name in FUNCTIONS}
        self.mapping: dict[str, str] = {}

    @staticmethod
    def _env_file(name: str) -> dict[str, str]:
        path = ROOT / ".local" / "env" / f"{name}.env"
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    def create(self) -> None:
        """Copies of the deployed tables without streams, and empty queues, under bench- names."""
        for env in self.envs.values():
            for var, value in env.items():
                if var.endswith("_TABLE") and value not in self.mapping:
                    self.mapping[value] = self._clone_table(var, value)
                elif var.endswith(("_QUEUE_URL", "_DLQ_URL")) and value not in self.mapping:
                    self.mapping[value] = self._fresh_queue(var)

    def _clone_table(self, var: str, real: str, prefix: str = "bench-") -> str:
        name = prefix + var.lower().removesuffix("_table").replace("_", "-")
        try:
            self.ddb.delete_table(TableName=name)
            self.ddb.get_waiter("table_not_exists").wait(TableName=name)
        except self.ddb.exceptions.ResourceNotFoundException:
            pass
        d = self.ddb.describe_table(TableName=real)["Table"]
        args = dict(TableName=name, KeySchema=d["KeySchema"], AttributeDefinitions=d["AttributeDefinitions"],
                    BillingMode="PAY_PER_REQUEST")
        if d.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = [
                {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in d["GlobalSecondaryIndexes"]
            ]
        self.ddb.create_table(**args)
        self.ddb.get_waiter("table_exists").wait(TableName=name)
        return name

    def _fresh_queue(self, var: str) -> str:
        name = "bench-" + var.lower().removesuffix("_url").replace("_", "-")
        try:
            self.sqs.delete_queue(QueueUrl=self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except self.sqs.exceptions.QueueDoesNotExist:
            pass
        return self.sqs.create_queue(QueueName=name)["QueueUrl"]

    def floor_tables(self) -> tuple[str, str]:
        """Scratch copies of the episodes and events tables for the floor's writes, so that they
        do not grow the partitions the routes read."""
        if not hasattr(self, "_floor"):
            env = self.envs["episodes-api"]
            self._floor = (self._clone_table("EPISODES_TABLE", env["EPISODES_TABLE"], "bench-floor-"),
                           self._clone_table("EVENTS_TABLE", env["EVENTS_TABLE"], "bench-floor-"))
        return self._floor

    def env(self, name: str) -> dict[str, str]:
        return {k: self.mapping.get(v, v) for k, v in self.envs.get(name, {}).items()}

    def table(self, function: str, var: str) -> str:
        return self.env(function)[var]

    def payloads(self, episode: str, event_type: str | None = None, limit: int = 10**6) -> list[str]:
        """An episode's events as the relay reads them from the events table (oldest first)."""
        kwargs = dict(TableName=self.table("episodes-api", "EVENTS_TABLE"), KeyConditionExpression="episode_id = :e",
                      ExpressionAttributeValues={":e": {"S": episode}})
        if event_type:
            kwargs["FilterExpression"] = "#t = :t"
            kwargs["ExpressionAttributeNames"] = {"#t": "type"}
            kwargs["ExpressionAttributeValues"][":t"] = {"S": event_type}
        out: list[str] = []
        for page in self.ddb.get_paginator("query").paginate(**kwargs):
            out += [i["payload"]["S"] for i in page["Items"]]
            if len(out) >= limit:
                break
        return out[:limit]

    def purge(self, function: str, var: str) -> None:
        self.sqs.purge_queue(QueueUrl=self.env(function)[var])

    def drain(self, function: str, var: str, limit: int) -> list[str]:
        """Up to `limit` message bodies from one of the bench queues (deleted as read)."""
        url = self.env(function)[var]
        out: list[str] = []
        while len(out) < limit:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            out += [m["Body"] for m in got]
            self.sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
        return out[:limit]


# ---------------------------------------------------------------- events

TEMPLATE = json.loads((ROOT / "events" / "episodes-api" / "get-episode.json").read_text())


def http_event(method: str, path: str, user=EDITOR, body=None, query: str = "", headers: dict | None = None) -> dict:
    e = copy.deepcopy(TEMPLATE)
    e["routeKey"] = e["requestContext"]["routeKey"] = "$default"
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["requestContext"]["http"]["method"] = method
    e["rawQueryString"] = query
    e["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&")) if query else None
    e["pathParameters"] = None
    e["requestContext"]["requestId"] = uuid.uuid4().hex
    sub, role, name = user
    # The role as the functions read it: the group claim, a list as API Gateway passes it.
    e["requestContext"]["authorizer"]["jwt"]["claims"].update({"sub": sub, "cognito:groups": f"[{role}]", "name": name})
    e["headers"] = {"accept": "application/json", "authorization": "Bearer <not read by the function>", **(headers or {})}
    if body is not None:
        e["body"] = json.dumps(body)
        e["headers"]["content-type"] = "application/json"
    return e


def sqs_event(bodies: list[str]) -> dict:
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "bench", "body": b,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000)),
                       "SenderId": "bench", "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000))},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:bench", "awsRegion": "us-east-1",
    } for b in bodies]}


def stream_event(payloads: list[str]) -> dict:
    return {"Records": [{
        "eventID": uuid.uuid4().hex, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": time.time(), "Keys": {"event_id": {"S": "x"}},
                     "NewImage": {"payload": {"S": p}}, "SequenceNumber": str(i + 1), "SizeBytes": len(p),
                     "StreamViewType": "NEW_IMAGE"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/bench/stream/2026-11-25T00:00:00.000",
    } for i, p in enumerate(payloads)]}


def ws_connect_event(token: str) -> dict:
    cid = base64.b64encode(uuid.uuid4().bytes[:9]).decode().replace("+", "-").replace("/", "_")
    return {
        "headers": {"Host": "bench"}, "multiValueHeaders": {},
        "queryStringParameters": {"token": token}, "multiValueQueryStringParameters": {"token": [token]},
        "requestContext": {"routeKey": "$connect", "eventType": "CONNECT", "connectionId": cid,
                           "requestId": uuid.uuid4().hex, "apiId": "bench", "stage": "live",
                           "domainName": "bench", "connectedAt": int(time.time() * 1000),
                           "requestTimeEpoch": int(time.time() * 1000), "extendedRequestId": "x",
                           "messageDirection": "IN", "identity": {"sourceIp": "127.0.0.1"}},
        "isBase64Encoded": False,
    }


# ---------------------------------------------------------------- pools of running functions

class Pool:
    """`size` processes of one function polling one Runtime API."""

    def __init__(self, fn: Function, size: int, extra_env: dict | None = None) -> None:
        self.fn, self.size, self.extra_env = fn, size, extra_env
        self.api = RuntimeApi()
        self.procs: list[Process] = []
        self.offsets: dict[Path, int] = {}
        self.invokes = 0

    async def __aenter__(self) -> "Pool":
        await self.api.start()
        self.procs = [self.fn.spawn(self.api, self.extra_env) for _ in range(self.size)]
        return self

    async def __aexit__(self, *exc) -> None:
        for p in self.procs:
            p.stop()
        await self.api.close()

    async def drive(self, events: list) -> list[Outcome]:
        it = iter(events)
        out: list[Outcome] = []

        async def one_instance():
            for e in it:
                out.append(await self.api.invoke(e))

        await asyncio.gather(*[one_instance() for _ in range(self.size)])
        self.invokes += len(events)
        return out

    def new_log_lines(self) -> list[dict]:
        lines = []
        for p in self.procs:
            text = p.log.read_text(errors="replace")
            start = self.offsets.get(p.log, 0)
            self.offsets[p.log] = len(text)
            for line in text[start:].splitlines():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
        return lines

    def peak_rss_mib(self) -> float:
        return max(p.peak_rss_kib() for p in self.procs) / 1024


def fields(lines: list[dict], message: str) -> list[dict]:
    return [line.get("fields", {}) for line in lines if line.get("fields", {}).get("message") == message]


def status_of(o: Outcome) -> int:
    try:
        return int(o.json().get("statusCode", 0))
    except (ValueError, AttributeError):
        return 0


# ---------------------------------------------------------------- the emulator's floor

def emulator_floor(stack: dict, operation: str, body_of, n: int, concurrency: int) -> list[float]:
    """The emulator's own latency for one DynamoDB call: a raw keep-alive HTTP request, no SDK."""
    host, port = stack["aws_endpoint"].removeprefix("http://").split(":")
    headers = {
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host;x-amz-date, Signature=0",
        "X-Amz-Date": "20261125T000000Z",
    }
    out: list[float] = []
    lock = threading.Lock()
    per = n // concurrency

    def run():
        c = http.client.HTTPConnection(host, int(port))
        mine = []
        for _ in range(per):
            body = json.dumps(body_of()).encode()
            t0 = time.perf_counter()
            c.request("POST", "/", body, headers)
            r = c.getresponse()
            data = r.read()
            mine.append((time.perf_counter() - t0) * 1000)
            if r.status != 200:
                raise SystemExit(f"{operation} floor: {r.status} {data[:200]!r}")
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ---------------------------------------------------------------- the @connections stand-in

class ConnectionsStandIn:
    """Answers `POST /@connections/{id}` with 200 after `delay_ms`, counting posts per id."""

    def __init__(self, delay_ms: float) -> None:
        self.delay = delay_ms / 1000
        self.posts: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/live"

    async def _serve(self, reader, writer) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                if "content-length" in headers:
                    await reader.readexactly(int(headers["content-length"]))
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                await asyncio.sleep(self.delay)
                self.in_flight -= 1
                self.posts[path.rsplit("/", 1)[-1]] += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------- the measurements

class Bench:
    def __init__(self, stack: dict, binaries: dict[str, Path]) -> None:
        self.stack = stack
        self.res = Resources(stack)
        self.res.create()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.fns = {name: Function(name, binaries[name], self.res.env(name), LOGS) for name in FUNCTIONS}
        self.fns[FLOOR] = Function(FLOOR, binaries[FLOOR], {}, LOGS)
        aws_only = {k: v for k, v in self.res.env("episodes-api").items() if k.startswith("AWS_")}
        self.fns[PLAIN] = Function(PLAIN, binaries[PLAIN], aws_only, LOGS)
        self.binaries = binaries
        self.routes: list[dict] = []
        self.rss: dict[str, tuple[float, int]] = {}
        self.batches: dict[str, dict] = {}
        self.seed: dict = {}

    # ---- helpers
    async def call(self, pool: Pool, event: dict, expect: set[int]) -> dict:
        o = (await pool.drive([event]))[0]
        if status_of(o) not in expect:
            raise SystemExit(f"{pool.fn.name}: {event.get('rawPath')} answered {o.body[:300]!r}")
        body = o.json().get("body")
        return json.loads(body) if body else {}

    async def route(self, pool: Pool, label: str, events: list, expect: set[int], c: int) -> list[Outcome]:
        pool.new_log_lines()
        outcomes = await pool.drive(events)
        bad = Counter(status_of(o) for o in outcomes if status_of(o) not in expect)
        if bad:
            sample = next(o.body[:300] for o in outcomes if status_of(o) not in expect)
            raise SystemExit(f"{label} (concurrency {c}): unexpected statuses {dict(bad)}: {sample!r}")
        handled = fields(pool.new_log_lines(), "request handled")
        calls = Counter(str(f["aws_calls"]) for f in handled)
        dynamodb = Counter(str(f["dynamodb_calls"]) for f in handled)
        lat = [o.latency_ms for o in outcomes]
        # One process at concurrency 1 answers in order: pair each latency with its log line.
        own = ([o.latency_ms - int(f.get("aws_wait_us", 0)) / 1000 for o, f in zip(outcomes, handled)]
               if c == 1 and len(handled) == len(outcomes) else [])
        self.routes.append({
            "function": pool.fn.name, "route": label, "concurrency": c, "requests": len(outcomes),
            "aws_calls": dict(sorted(calls.items())), "dynamodb_calls": dict(sorted(dynamodb.items())),
            "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "own_p50_ms": pct(own, 50) if own else None,
            # What DynamoDB reported each request consumed, and how long the function ran.
            "read_units_median": statistics.median(float(f.get("dynamodb_read_units", 0)) for f in handled)
            if handled else None,
            "write_units_median": statistics.median(float(f.get("dynamodb_write_units", 0)) for f in handled)
            if handled else None,
            "handler_p50_ms": pct([int(f["latency_us"]) / 1000 for f in handled], 50) if handled else None,
        })
        return outcomes

    # ---- seed: one episode with history, a watcher, a file, for the reads and the workers
    async def seed_data(self) -> None:
        async with Pool(self.fns["episodes-api"], 1) as eps, Pool(self.fns["feed-api"], 1) as feed, \
                Pool(self.fns["files-api"], 1) as files, Pool(self.fns["jobs-api"], 1) as jobs:
            ep = (await self.call(eps, http_event("POST", "/episodes", body={"title": "bench seed"}), {201}))["id"]
            await self.call(feed, http_event("PUT", f"/episodes/{ep}/watch", user=WATCHER), {200, 204})
            for v in range(1, 31):
                await self.call(eps, http_event("PATCH", f"/episodes/{ep}", body={"description": f"take {v}"},
                                                headers={"if-match": f'"{v}"'}), {204})
            f = await self.call(files, http_event("POST", f"/episodes/{ep}/files",
                                                  body={"name": "seed.wav", "content_type": "audio/wav", "size": 65536}), {201})
            f = f["file"]
            self.res.s3.put_object(Bucket=self.res.env("files-api")["FILES_BUCKET"],
                                   Key=f"episodes/{ep}/files/{f['id']}", Body=os.urandom(65536))
            await self.call(files, http_event("POST", f"/files/{f['id']}/complete"), {200})
            for i in range(24):
                await self.call(eps, http_event("POST", "/episodes", body={"title": f"listed {i}"}), {201})
            bulk = (await self.call(eps, http_event("POST", "/episodes", body={"title": "bench bulk"}), {201}))["id"]
            bf = (await self.call(files, http_event("POST", f"/episodes/{bulk}/files",
                                                    body={"name": "bulk.wav", "content_type": "audio/wav", "size": 65536}), {201}))["file"]
            self.res.s3.put_object(Bucket=self.res.env("files-api")["FILES_BUCKET"],
                                   Key=f"episodes/{bulk}/files/{bf['id']}", Body=os.urandom(65536))
            await self.call(files, http_event("POST", f"/files/{bf['id']}/complete"), {200})
            job_ids = []
            for i in range(COLD_STARTS + 1):
                j = await self.call(jobs, http_event("POST", f"/episodes/{ep}/jobs", headers={"idempotency-key": f"seed-{i}"},
                                                     body={"type": "checksum", "file_id": f["id"]}), {202})
                job_ids.append(j["id"])
            self.seed = {"episode": ep, "file": f["id"], "jobs": job_ids, "bulk": bulk, "bulk_file": bf["id"]}
        self.seed["payloads"] = self.res.payloads(ep)
        self.seed["file_tasks"] = self.res.drain("files-api", "FILES_QUEUE_URL", 10)
        # What the relay would put on the jobs queue: the job.created events, as they are.
        self.seed["job_messages"] = self.res.payloads(ep, "job.created")
        # Notifications for the watcher (for the notification routes), from copies of the batch
        # the workers are measured with.
        self.seed["fresh"] = await self.fresh_batch()
        async with Pool(self.fns["notification-worker"], 1) as p:
            check_ok("notification-worker", (await p.drive([sqs_event(renewed(self.seed["fresh"]))]))[0])

    # ---- request cost
    def measure_floors(self, n: int, c: int, function: str) -> None:
        """The emulator's own latency for the calls the routes make, with items of the same shape
        (an index entry costs the emulator time): GetItem of an episode, PutItem of one, and the
        transaction of an episode write (the item and its event, each conditional)."""
        ep = self.seed["episode"]
        episode = self.res.ddb.get_item(TableName=self.res.table("episodes-api", "EPISODES_TABLE"),
                                        Key={"id": {"S": ep}})["Item"]
        event = self.res.ddb.query(TableName=self.res.table("episodes-api", "EVENTS_TABLE"), Limit=1,
                                   KeyConditionExpression="episode_id = :e",
                                   ExpressionAttributeValues={":e": {"S": ep}})["Items"][0]
        episodes, events = self.res.floor_tables()
        self.res.ddb.put_item(TableName=episodes, Item=episode)

        def new_episode():
            eid = str(uuid.uuid4())
            return eid, {**episode, "id": {"S": eid}}

        def get_item():
            return {"TableName": episodes, "Key": {"id": {"S": ep}}}

        def put_item():
            return {"TableName": episodes, "Item": new_episode()[1]}

        def transaction():
            eid, item = new_episode()
            return {"TransactItems": [
                {"Put": {"TableName": episodes, "ConditionExpression": "attribute_not_exists(id)", "Item": item}},
                {"Put": {"TableName": events, "ConditionExpression": "attribute_not_exists(event_id)",
                         "Item": {**event, "episode_id": {"S": eid}, "event_id": {"S": str(uuid.uuid4())}}}}]}

        for op, body in (("GetItem", get_item), ("PutItem", put_item), ("TransactWriteItems", transaction)):
            xs = emulator_floor(self.stack, op, body, n, c)
            key = f"{op} c{c}" + (f" before {function}" if function else "")
            self.floors[key] = {"p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95), "p99_ms": pct(xs, 99)}

    async def request_cost(self) -> dict:
        n, ep, bulk = REQUESTS, self.seed["episode"], self.seed["bulk"]
        floor: dict = {}
        self.floors = floor
        for c in CONCURRENCY:
            self.measure_floors(n, c, "")
        for c in CONCURRENCY:
            # The harness's own round trip: hello-world echoing an API Gateway event.
            async with Pool(self.fns[FLOOR], c) as p:
                await p.drive([http_event("GET", "/health")] * (5 * c))
                out = await p.drive([http_event("GET", "/health")] * n)
                lat = [o.latency_ms for o in out]
                floor[f"harness c{c}"] = {"p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99)}
        for c in CONCURRENCY:
            if c == 1:
                self.measure_floors(n // 4, 1, "episodes-api")
            async with Pool(self.fns["episodes-api"], c) as p:
                await p.drive([http_event("GET", "/health")] * (5 * c))
                # Lists first, on the seed's 25 episodes: the emulator's Query slows with the size
                # of the index partition (DynamoDB's does not), so it is kept to a realistic page.
                await self.route(p, "GET /episodes?limit=20", [http_event("GET", "/episodes", query="limit=20")] * n, {200}, c)
                out = await self.route(p, "POST /episodes", [http_event("POST", "/episodes", body={"title": f"bench {c}.{i}"})
                                                              for i in range(n)], {201}, c)
                ids = [json.loads(o.json()["body"])["id"] for o in out]
                await self.route(p, "GET /episodes/{id}", [http_event("GET", f"/episodes/{ids[i % len(ids)]}") for i in range(n)], {200}, c)
                await self.route(p, "PATCH /episodes/{id}", [http_event("PATCH", f"/episodes/{i}", body={"title": "patched"},
                                                                         headers={"if-match": '"1"'}) for i in ids], {204}, c)
                await self.route(p, "DELETE /episodes/{id}", [http_event("DELETE", f"/episodes/{i}") for i in ids], {204}, c)
                await self.route(p, "GET /health", [http_event("GET", "/health")] * n, {200}, c)
                if c == 1:
                    self.rss["episodes-api"] = (p.peak_rss_mib(), p.invokes)
            if c == 1:
                self.measure_floors(n // 4, 1, "feed-api")
            async with Pool(self.fns["feed-api"], c) as p:
                await p.drive([http_event("GET", f"/episodes/{ep}/presence")] * (5 * c))
                await self.route(p, "GET /episodes/{id}/activity", [http_event("GET", f"/episodes/{ep}/activity", query="limit=20")] * n, {200}, c)
                await self.route(p, "GET /activity (admin)", [http_event("GET", "/activity", user=ADMIN, query="limit=20")] * n, {200}, c)
                await self.route(p, "GET /episodes/{id}/presence", [http_event("GET", f"/episodes/{ep}/presence")] * n, {200}, c)
                out = await self.route(p, "GET /me/notifications", [http_event("GET", "/me/notifications", user=WATCHER, query="limit=20")] * n, {200}, c)
                notes = [x["id"] for x in json.loads(out[0].json()["body"])["items"]]
                await self.route(p, "GET /me/notifications/unread-count", [http_event("GET", "/me/notifications/unread-count", user=WATCHER)] * n, {200}, c)
                if notes:
                    await self.route(p, "POST /me/notifications/{id}/read", [http_event("POST", f"/me/notifications/{notes[i % len(notes)]}/read", user=WATCHER)
                                                                            for i in range(n)], {200, 204}, c)
                await self.route(p, "POST /me/notifications/read-all", [http_event("POST", "/me/notifications/read-all", user=WATCHER)] * n, {200, 204}, c)
                await self.route(p, "PUT /episodes/{id}/watch", [http_event("PUT", f"/episodes/{ep}/watch")] * n, {200, 204}, c)
                await self.route(p, "DELETE /episodes/{id}/watch", [http_event("DELETE", f"/episodes/{ep}/watch")] * n, {200, 204}, c)
                await self.route(p, "GET /me/notification-preferences", [http_event("GET", "/me/notification-preferences")] * n, {200}, c)
                await self.route(p, "PUT /me/notification-preferences", [http_event("PUT", "/me/notification-preferences",
                                                                                     body={"muted_event_types": ["file.uploaded"]})] * n, {200, 204}, c)
                if c == 1:
                    self.rss["feed-api"] = (p.peak_rss_mib(), p.invokes)
            bucket = self.res.env("files-api")["FILES_BUCKET"]
            if c == 1:
                self.measure_floors(n // 4, 1, "files-api")
            async with Pool(self.fns["files-api"], c) as p:
                await p.drive([http_event("GET", f"/files/{self.seed['file']}")] * (5 * c))
                await self.route(p, "GET /episodes/{id}/files", [http_event("GET", f"/episodes/{ep}/files", query="limit=20")] * n, {200}, c)
                out = await self.route(p, "POST /episodes/{id}/files", [http_event("POST", f"/episodes/{bulk}/files", body={
                    "name": f"take {c}.{i}.wav", "content_type": "audio/wav", "size": 1024}) for i in range(n)], {201}, c)
                ids = [json.loads(o.json()["body"])["file"]["id"] for o in out]
                for i in ids:
                    self.res.s3.put_object(Bucket=bucket, Key=f"episodes/{bulk}/files/{i}", Body=b"x" * 1024)
                await self.route(p, "POST /files/{id}/complete", [http_event("POST", f"/files/{i}/complete") for i in ids], {200}, c)
                await self.route(p, "GET /files/{id}", [http_event("GET", f"/files/{i}") for i in ids], {200}, c)
                await self.route(p, "GET /files/{id}/download", [http_event("GET", f"/files/{i}/download") for i in ids], {200}, c)
                await self.route(p, "DELETE /files/{id}", [http_event("DELETE", f"/files/{i}") for i in ids], {204}, c)
                if c == 1:
                    self.rss["files-api"] = (p.peak_rss_mib(), p.invokes)
            self.res.purge("files-api", "FILES_QUEUE_URL")
            if c == 1:
                self.measure_floors(n // 4, 1, "jobs-api")
            async with Pool(self.fns["jobs-api"], c) as p:
                await p.drive([http_event("GET", f"/jobs/{self.seed['jobs'][0]}")] * (5 * c))
                await self.route(p, "GET /episodes/{id}/jobs", [http_event("GET", f"/episodes/{ep}/jobs", query="limit=20")] * n, {200}, c)
                out = await self.route(p, "POST /episodes/{id}/jobs", [http_event("POST", f"/episodes/{bulk}/jobs", headers={"idempotency-key": f"b{c}.{i}"},
                                                                               body={"type": "checksum", "file_id": self.seed["bulk_file"]}) for i in range(n)], {202}, c)
                ids = [json.loads(o.json()["body"])["id"] for o in out]
                await self.route(p, "GET /jobs/{id}", [http_event("GET", f"/jobs/{i}") for i in ids], {200}, c)
                await self.route(p, "POST /jobs/{id}/cancel", [http_event("POST", f"/jobs/{i}/cancel") for i in ids], {200, 202}, c)
                await self.route(p, "POST /jobs/{id}/retry", [http_event("POST", f"/jobs/{i}/retry") for i in ids], {200, 202}, c)
                if c == 1:
                    self.rss["jobs-api"] = (p.peak_rss_mib(), p.invokes)
        return floor

    # ---- cold start
    def first_event(self, name: str, run: int) -> dict:
        s = self.seed
        return {
            FLOOR: lambda: {"hello": "world"},
            PLAIN: lambda: {"hello": "world"},
            "episodes-api": lambda: http_event("GET", f"/episodes/{s['episode']}"),
            "feed-api": lambda: http_event("GET", f"/episodes/{s['episode']}/activity", query="limit=20"),
            "files-api": lambda: http_event("GET", f"/files/{s['file']}"),
            "jobs-api": lambda: http_event("GET", f"/jobs/{s['jobs'][0]}"),
            "ws-api": lambda: ws_connect_event(self.token),
            "event-relay": lambda: stream_event([s["payloads"][0]]),
            "activity-worker": lambda: sqs_event([s["payloads"][0]]),
            "notification-worker": lambda: sqs_event([s["payloads"][-1]]),
            "broadcast-worker": lambda: sqs_event([s["payloads"][-1]]),
            "files-worker": lambda: sqs_event(s["file_tasks"][:1]),
            "job-worker": lambda: sqs_event([s["job_messages"][run % len(s["job_messages"])]]),
        }[name]()

    async def cold_starts(self) -> dict:
        self.token = oidc.mint(*EDITOR[:2], EDITOR[2])
        names = [FLOOR, PLAIN] + FUNCTIONS
        apis = {}
        for name in names:
            apis[name] = RuntimeApi()
            await apis[name].start()
        init = defaultdict(list)
        first = defaultdict(list)
        for run in range(COLD_STARTS):
            for name in names:
                api = apis[name]
                polled = api.expect_first_poll()
                proc = self.fns[name].spawn(api)
                try:
                    t_poll = await asyncio.wait_for(polled, 10)
                    o = await api.invoke(self.first_event(name, run), timeout=30)
                finally:
                    proc.stop()
                check_ok(name, o)
                init[name].append((t_poll - proc.started_at) * 1000)
                first[name].append((o.done_at - proc.started_at) * 1000)
        for api in apis.values():
            await api.close()
        return {name: {"init_ms": statistics.median(init[name]), "init_min_ms": min(init[name]),
                       "first_invoke_ms": statistics.median(first[name]),
                       "binary_mib": self.binaries[name].stat().st_size / 2**20} for name in names}

    # ---- footprint and worker batches
    async def fresh_batch(self) -> list[str]:
        """Ten status changes of ten episodes, each with a watcher: each is an activity entry, a
        notification and a live update."""
        fresh: list[str] = []
        async with Pool(self.fns["episodes-api"], 1) as eps, Pool(self.fns["feed-api"], 1) as feed:
            for i in range(10):
                ep = (await self.call(eps, http_event("POST", "/episodes", body={"title": f"batch {i}"}), {201}))["id"]
                await self.call(feed, http_event("PUT", f"/episodes/{ep}/watch", user=WATCHER), {200, 204})
                await self.call(eps, http_event("PATCH", f"/episodes/{ep}", body={"status": "in_production"},
                                                headers={"if-match": '"1"'}), {204})
                fresh += self.res.payloads(ep, "episode.updated")
        return fresh

    async def workers(self) -> None:
        s = self.seed
        fresh = s["fresh"]
        batches = [fresh] + [renewed(fresh) for _ in range(FOOTPRINT_INVOKES - 1)]
        plans = {
            "ws-api": [ws_connect_event(self.token) for _ in range(FOOTPRINT_INVOKES)],
            "event-relay": [stream_event(b) for b in batches],
            "activity-worker": [sqs_event(b) for b in batches],
            "notification-worker": [sqs_event(b) for b in batches],
            "broadcast-worker": [sqs_event(b) for b in batches],
            "files-worker": [sqs_event(s["file_tasks"][:1])] * FOOTPRINT_INVOKES,
            "job-worker": [sqs_event([m]) for m in self.res.payloads(s["bulk"], "job.created", FOOTPRINT_INVOKES)],
        }
        for name, events in plans.items():
            async with Pool(self.fns[name], 1) as p:
                outcomes = await p.drive(events)
                for o in outcomes:
                    check_ok(name, o)
                self.rss[name] = (p.peak_rss_mib(), p.invokes)
                handled = fields(p.new_log_lines(), "batch handled")
                full = [f for f in handled if int(f.get("messages", 0)) == 10]
                tens = [int(f["dynamodb_calls"]) for f in full]
                if tens:
                    self.batches[name] = {
                        "fresh": tens[0], "batches": len(tens), "median": statistics.median(tens),
                        "min": min(tens), "max": max(tens),
                        # Per 10-message batch: DynamoDB's request units and the worker's time.
                        "read_units_median": statistics.median(float(f.get("dynamodb_read_units", 0)) for f in full),
                        "write_units_median": statistics.median(float(f.get("dynamodb_write_units", 0)) for f in full),
                        "duration_ms_median": statistics.median(float(f.get("duration_ms", 0)) for f in full),
                    }

    # ---- fan-out
    async def fan_out(self) -> dict:
        ep = self.seed["episode"]
        table = self.res.table("broadcast-worker", "SUBSCRIPTIONS_TABLE")
        conns = [f"bench{i:05d}AAA=" for i in range(CONNECTIONS)]
        for i in range(0, len(conns), 25):
            self.res.ddb.batch_write_item(RequestItems={table: [
                {"PutRequest": {"Item": {"episode_id": {"S": ep}, "connection_id": {"S": c}}}} for c in conns[i:i + 25]]})
        standin = ConnectionsStandIn(POST_MS)
        await standin.start()
        out = {}
        for label, concurrency, runs in (("one at a time", "1", 1), ("bounded concurrency (default)", None, 3)):
            env = {"CONNECTIONS_ENDPOINT": standin.url}
            if concurrency:
                env["FAN_OUT_CONCURRENCY"] = concurrency
            times = []
            async with Pool(self.fns["broadcast-worker"], 1, env) as p:
                for _ in range(runs):
                    standin.posts.clear()
                    standin.most_in_flight = 0
                    o = (await p.drive([sqs_event([self.seed["payloads"][-1]])]))[0]
                    check_ok("broadcast-worker", o)
                    if len(standin.posts) != CONNECTIONS or set(standin.posts.values()) != {1}:
                        raise SystemExit(f"fan-out reached {len(standin.posts)} connections, counts {set(standin.posts.values())}")
                    own = [f for f in fields(p.new_log_lines(), "broadcast") if f.get("connections") == CONNECTIONS]
                    times.append((o.latency_ms, float(own[-1]["fan_out_ms"]) if own else float("nan")))
            out[label] = {"invocation_ms": statistics.median(t[0] for t in times),
                          "fan_out_ms": statistics.median(t[1] for t in times), "most_in_flight": standin.most_in_flight}
        standin.server.close()
        return out

    async def run(self) -> dict:
        await self.seed_data()
        cold = await self.cold_starts()
        floor = await self.request_cost()
        await self.workers()
        fan = await self.fan_out()
        return {"cold_start": cold, "rss": {k: {"peak_mib": v[0], "invokes": v[1]} for k, v in self.rss.items()},
                "emulator_floor": floor, "routes": self.routes, "batches": self.batches, "fan_out": fan,
                "fan_out_post_ms": POST_MS, "fan_out_connections": CONNECTIONS}


def renewed(bodies: list[str]) -> list[str]:
    """The same events with new ids: work never done before, for every batch."""
    out = []
    for body in bodies:
        e = json.loads(body)
        e["id"] = v7(int(time.time() * 1000))
        out.append(json.dumps(e))
    return out


def check_ok(name: str, o: Outcome) -> None:
    if not o.ok:
        raise SystemExit(f"{name} failed: {o.body[:300]!r}")
    body = o.json() if o.body else {}
    if isinstance(body, dict):
        if body.get("batchItemFailures"):
            raise SystemExit(f"{name}: failed items {body['batchItemFailures']}")
        if "statusCode" in body and int(body["statusCode"]) >= 400:
            raise SystemExit(f"{name}: {o.body[:300]!r}")
