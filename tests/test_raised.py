"""A library that raises instead of ending a call with a status: the exception is the call's outcome,
recorded and compared like a status (a `fail` a known divergence can describe), never an `error` of
the harness. An exception from the harness's own code stays an error."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import grpc
import grpc._channel
import grpc.aio._channel
import pytest

from harness.cases.model import Call, Case
from python_impl.client import run_case, run_case_aio
from python_impl.contract import CHANNEL_OPTIONS, Result

H = "tutorial.HelloService"
NOWHERE = "127.0.0.1:1"  # nothing listens: the calls below never leave the client


def say_hello(expect: dict[str, Any], **kw: Any) -> Case:
    call = Call(method=f"{H}/SayHello", streaming="unary", request_type="tutorial.HelloRequest",
                response_type="tutorial.HelloResponse", requests=[{"greeting": "x"}], expect=expect,
                timeout_ms=2_000, **kw)
    return Case(name=f"{H}/SayHello/raised", calls=[call], source="tests/test_raised.py")


def run(flavour: str, seed_gen: Any, case: Case) -> Result:
    if flavour == "sync":
        with grpc.insecure_channel(NOWHERE, options=CHANNEL_OPTIONS) as ch:
            return run_case(ch, seed_gen, case, "py→go", "test")

    async def main() -> Result:
        async with grpc.aio.insecure_channel(NOWHERE, options=CHANNEL_OPTIONS) as ch:
            return await run_case_aio(ch, seed_gen, case, "pyaio→go", "test")
    return asyncio.run(main())


def raising(module: str, exc: Exception) -> Callable[..., Any]:
    """A stand-in for a grpcio method that raises `exc` from inside `module` (its frame's globals say
    so, as a frame of grpcio's own Python or Cython code does)."""
    namespace: dict[str, Any] = {"__name__": module, "exc": exc}
    exec("def call(*args, **kwargs):\n    raise exc\n", namespace)  # noqa: S102  a frame that belongs to `module`
    return namespace["call"]


_METHODS = {"sync": (grpc._channel._UnaryUnaryMultiCallable, "future", "grpc._channel"),
            "aio": (grpc.aio._channel.UnaryUnaryMultiCallable, "__call__", "grpc.aio._channel")}


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_a_library_exception_is_the_calls_outcome(seed_gen, monkeypatch, flavour: str) -> None:
    """grpcio 1.72's grpc.aio raises KeyError for status code 17, its sync client ValueError for
    invalid metadata: recorded as the status, compared, and the case is a fail."""
    cls, name, module = _METHODS[flavour]
    monkeypatch.setattr(cls, name, raising(module, KeyError(17)))
    r = run(flavour, seed_gen, say_hello({"status": "UNKNOWN", "message": "code 17"}))
    assert r.verdict == "fail"
    # the raise replaces status and message: one diff, no second one for the missing message
    assert [(d.path, d.expected, d.got) for d in r.diffs] == [("status.code", "UNKNOWN", "raised KeyError: 17")]


@pytest.mark.parametrize("flavour", ["sync", "aio"])
@pytest.mark.parametrize("server", [{"status": "OK", "responses": [{"reply": "x"}]}, {"status": "CODE_17"}],
                         ids=["server_answers_ok", "server_sends_17"])
def test_a_raise_is_never_read_as_the_servers_answer(seed_gen, monkeypatch, flavour: str, server: dict) -> None:
    """A case whose server would answer (OK with a response, or a code past 16, which the server
    must confirm): the raise read as no status must not count as that answer coming through, and
    the trailers it never read are no missing confirmation. The raise is the one difference."""
    cls, name, module = _METHODS[flavour]
    monkeypatch.setattr(cls, name, raising(module, KeyError(17)))
    r = run(flavour, seed_gen, say_hello({"status": "UNKNOWN"}, server=server, checked_by_server=True))
    assert (r.verdict, [(d.path, d.got) for d in r.diffs]) == ("fail", [("status.code", "raised KeyError: 17")])


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_an_exception_of_the_harness_stays_an_error(seed_gen, monkeypatch, flavour: str) -> None:
    """The same exception raised by code that is not grpcio's (here: this test module) is a harness
    error: a harness bug never reads as a library's behaviour."""
    cls, name, _ = _METHODS[flavour]
    monkeypatch.setattr(cls, name, raising(__name__, KeyError(17)))
    r = run(flavour, seed_gen, say_hello({"status": "UNKNOWN"}))
    assert (r.verdict, [(d.path, d.got) for d in r.diffs]) == ("error", [("error", "KeyError: 17")])


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_refused_metadata_is_an_outcome_in_every_grpcio(seed_gen, flavour: str) -> None:
    """The real thing: an uppercase metadata key. grpc.aio raises ExecuteBatchError for a unary call
    (every grpcio of the matrix); the sync client raises ValueError (grpcio 1.72) or ends the call
    INTERNAL (1.76 and later). Either way the case fails on its status, with no error verdict."""
    r = run(flavour, seed_gen, say_hello({"status": "OK", "responses": []}, metadata={"x-Upper-Case": ["v"]}))
    assert r.verdict == "fail", r.diffs
    got = next(d.got for d in r.diffs if d.path == "status.code")
    assert got.startswith(("raised ExecuteBatchError: ", "raised ValueError: metadata was invalid", "INTERNAL")), got
    assert " at 0x" not in got  # object addresses differ from run to run: left out
