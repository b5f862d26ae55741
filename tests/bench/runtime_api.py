"""A minimal Lambda Runtime API on loopback, for driving a function's real `bootstrap` directly.

It serves the three calls a Rust runtime makes (`GET …/invocation/next`, `POST …/response`,
`POST …/error`, plus `…/init/error`), hands each poll the next queued event, and times
  * init: process start → its first `GET /invocation/next`;
  * an invocation: the event written to the function → its response read back,
so the figures are the function's own, without the emulated API Gateway or event source in front.
Several processes may poll one RuntimeApi at once: that is how concurrency is driven (one
process per concurrent invocation, as Lambda runs one invocation per instance).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    latency_ms: float
    ok: bool
    body: bytes
    done_at: float

    def json(self):
        return json.loads(self.body)


@dataclass
class _Pending:
    request_id: str
    event: bytes
    result: asyncio.Future
    sent_at: float = 0.0


class RuntimeApi:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.in_flight: dict[str, _Pending] = {}
        self.first_poll: asyncio.Future | None = None
        self.init_errors: list[bytes] = []
        self._ids = itertools.count(1)
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.server.close()

    def expect_first_poll(self) -> asyncio.Future:
        self.first_poll = asyncio.get_running_loop().create_future()
        return self.first_poll

    async def invoke(self, event, timeout: float = 60) -> Outcome:
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        p = _Pending(f"bench-{next(self._ids)}", body, asyncio.get_running_loop().create_future())
        await self.queue.put(p)
        done_at, ok, response = await asyncio.wait_for(p.result, timeout)
        return Outcome((done_at - p.sent_at) * 1000, ok, response, done_at)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received = time.perf_counter()
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await _read_body(reader, headers)
                done = time.perf_counter()
                if method == "GET" and path == f"{PREFIX}/invocation/next":
                    if self.first_poll is not None and not self.first_poll.done():
                        self.first_poll.set_result(received)
                    if not await self._hand_out(reader, writer):
                        return
                elif method == "POST" and path.startswith(f"{PREFIX}/invocation/"):
                    request_id, kind = path[len(PREFIX) + len("/invocation/"):].split("/", 1)
                    p = self.in_flight.pop(request_id, None)
                    if p is not None and not p.result.done():
                        p.result.set_result((done, kind == "response", body))
                    _reply(writer, 202, b'{"status":"OK"}')
                elif method == "POST" and path == f"{PREFIX}/init/error":
                    self.init_errors.append(body)
                    _reply(writer, 202, b'{"status":"OK"}')
                else:
                    _reply(writer, 404, b"{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the process went away, or the bench is over
        finally:
            writer.close()

    async def _hand_out(self, reader, writer) -> bool:
        """Waits for an event for this poll; False when the process went away first (its event
        goes back to the queue for another poller)."""
        get = asyncio.ensure_future(self.queue.get())
        gone = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({get, gone}, return_when=asyncio.FIRST_COMPLETED)
        if get not in done:
            get.cancel()
            return False
        gone.cancel()
        try:
            await gone  # let the read finish cancelling before the next one starts
        except asyncio.CancelledError:
            pass
        p = get.result()
        head = (
            "HTTP/1.1 200 OK\r\n"
            "content-type: application/json\r\n"
            f"lambda-runtime-aws-request-id: {p.request_id}\r\n"
            f"lambda-runtime-deadline-ms: {int(time.time() * 1000) + 60_000}\r\n"
            "lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:bench\r\n"
            "lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n"
            f"content-length: {len(p.event)}\r\n\r\n"
        ).encode()
        self.in_flight[p.request_id] = p
        p.sent_at = time.perf_counter()
        writer.write(head + p.event)
        return True


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(chunks)
            chunks.append(chunk[:-2])
    return b""


def _reply(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)


@dataclass
class Process:
    """One running `bootstrap`, its log in a file (read back for its `aws_calls` lines)."""

    popen: subprocess.Popen
    log: Path
    started_at: float

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        self.popen.kill()
        self.popen.wait()

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


@dataclass
class Function:
    name: str
    binary: Path
    env: dict[str, str]
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-logs-")))

    def spawn(self, api: RuntimeApi, extra_env: dict[str, str] | None = None) -> Process:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            **self.env,
            **(extra_env or {}),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}",
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "LAMBDA_TASK_ROOT": str(self.binary.parent),
            "_HANDLER": "bootstrap",
        }
        log = self.logs / f"{self.name}-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            started = time.perf_counter()
            popen = subprocess.Popen([str(self.binary.resolve())], env=env, stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.binary.parent)
        return Process(popen, log, started)
