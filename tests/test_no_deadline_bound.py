"""A call with no deadline (no_deadline) must still end: the Python clients cancel it once its
timeout_ms has passed and report the harness's error naming the method (python_impl/client.py),
instead of waiting forever, e.g. a ping-pong client waiting for an answer a half-duplex server
never sends before the client's next request."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from harness.cases.model import Call, Case
from python_impl.client import run_case, run_case_aio
from python_impl.contract import CHANNEL_OPTIONS, Result
from python_impl.server import serve, serve_aio

REPO = Path(__file__).resolve().parent.parent
H = "tutorial.HelloService"
BOUND_MS = 300


def _bidi(bidi: str, **kw: Any) -> Call:
    return Call(method=f"{H}/BidiHello", streaming="bidi", request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{"greeting": "a"}, {"greeting": "b"}],
                expect={"status": "OK", "responses": [{"reply": "x"}, {"reply": "y"}]}, bidi=bidi, **kw)


# The server's view: half-duplex, it answers once it has read both requests. The client's: ping-pong
# with no deadline, it waits for the answer to its first request before sending the second.
PING_PONG = f"{H}/BidiHello/no_deadline/ping_pong_stalls"
UNARY = f"{H}/SayHello/no_deadline/server_never_answers"
SERVER_SIDE = [
    Case(name=PING_PONG, calls=[_bidi("half_duplex")], source="t"),
    Case(name=UNARY, calls=[Call(method=f"{H}/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
                                 response_type="tutorial.HelloResponse", requests=[{"greeting": "a"}],
                                 expect={"status": "OK", "responses": [{"reply": "x"}]},
                                 server={"delay_ms": 5000})], source="t"),
]
CLIENT_SIDE = {
    PING_PONG: Case(name=PING_PONG, calls=[_bidi("ping_pong", no_deadline=True, timeout_ms=BOUND_MS)], source="t"),
    UNARY: Case(name=UNARY, calls=[dataclasses.replace(SERVER_SIDE[1].calls[0], no_deadline=True,
                                                       timeout_ms=BOUND_MS)], source="t"),
}


@pytest.fixture(scope="module")
def address(seed_gen: Any) -> Any:
    srv, port = serve(seed_gen, "127.0.0.1:0", catalogue=SERVER_SIDE)
    yield f"127.0.0.1:{port}"
    srv.stop(grace=0).wait(5)


def _run(flavour: str, address: str, seed_gen: Any, case: Case) -> Result:
    if flavour == "sync":
        with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
            return run_case(ch, seed_gen, case, "py-py", "test")

    async def main() -> Result:
        async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
            return await run_case_aio(ch, seed_gen, case, "pyaio-py", "test")
    return asyncio.run(main())


@pytest.mark.parametrize("flavour", ["sync", "aio"])
@pytest.mark.parametrize("name", [PING_PONG, UNARY])
def test_a_call_with_no_deadline_ends_at_its_bound_as_an_error(seed_gen: Any, address: str, flavour: str,
                                                                 name: str) -> None:
    start = time.monotonic()
    result = _run(flavour, address, seed_gen, CLIENT_SIDE[name])
    elapsed = time.monotonic() - start
    assert elapsed < 3, f"the call was not cut at its bound: {elapsed:.1f} s"
    assert result.verdict == "error" and result.case == name, result
    [diff] = [d for d in result.diffs if d.path == "error"]
    method = CLIENT_SIDE[name].calls[0].method
    assert diff.got.startswith(f"NoDeadlineOverrun: {method}: the call has no deadline (no_deadline)"), diff
    assert f"after its timeout_ms ({BOUND_MS} ms)" in diff.got


LATE = """cases:
- name: tutorial.HelloService/SayHello/no_deadline/server_answers_late
  calls:
  - method: tutorial.HelloService/SayHello
    generic: true
    no_deadline: true
    timeout_ms: 300
    requests: [{greeting: a}]
    server: {delay_ms: 5000}
    expect: {status: OK, responses: [{reply: x}]}
"""


@pytest.mark.interop
def test_the_go_client_cuts_a_call_with_no_deadline_at_its_bound(tmp_path: Path) -> None:
    """The Go client's watchdog (go_peer/internal/engine/call.go): the same error, in the case."""
    cases, out = tmp_path / "late.yaml", tmp_path / "r.json"
    cases.write_text(LATE)
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--protos", str(REPO / "protos"), "--files",
                           "hello.proto", "--no-generated", "--peer-runner", "process", "--direction", "go-go",
                           "--cases", str(cases), "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode != 0, proc.stdout[-2000:]
    [r] = json.loads(out.read_text())["results"]
    assert r["verdict"] == "error" and r["duration_ms"] < 3000, r
    assert r["diffs"][0]["got"].startswith("NoDeadlineOverrun: tutorial.HelloService/SayHello: the call has no "
                                           "deadline (no_deadline) and had not ended after its timeout_ms (300 ms)"), r
