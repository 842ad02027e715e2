"""The generic server confirms the status it sent (`interop-server-status`), and the Python client
checks it (issue 17): a code past 16 must be confirmed and be the case's, and a server answer that
comes through in place of the client's own refusal must be what the server sent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.cases.model import Call
from python_impl.check import check
from python_impl.contract import Outcome

REPO = Path(__file__).resolve().parent.parent
HELLO = {"method": "tutorial.HelloService/SayHello", "streaming": "unary", "request_type": "tutorial.HelloRequest",
         "response_type": "tutorial.HelloResponse", "requests": [{}], "checked_by_server": True}
CODE_17 = Call(**HELLO, expect={"status": "UNKNOWN", "responses": []}, server={"status": "CODE_17"})


def confirmed(sent: str) -> list[tuple[str, str | bytes]]:
    return [("interop-server-checked", "1"), ("interop-server-status", sent)]


def paths(call: Call, out: Outcome) -> list[tuple[str, str, str]]:
    return [(d.path, d.expected, d.got) for d in check(call, out, 0)]


@pytest.mark.parametrize("trailers, want", [
    # a grpcio client (UNKNOWN, no message: measured) of a grpc-go server that sent CODE_17
    (confirmed("CODE_17"), []),
    # no confirmation at all: a code past 16 comes only from a server, which must say so
    ([], [("server.checked", "present", "missing")]),
    # a server that clamps the code before confirming (a grpcio server cannot send 17: a known divergence)
    (confirmed("UNKNOWN"), [("server.status", "CODE_17", "UNKNOWN")]),
    (confirmed("CODE_18"), [("server.status", "CODE_17", "CODE_18")]),
    ([("interop-server-checked", "1")], [("server.status", "CODE_17", "missing: []")]),
])
def test_a_code_past_16_is_confirmed_by_the_server(seed_gen, trailers: list, want: list) -> None:
    assert paths(CODE_17, Outcome(status="UNKNOWN", trailers=trailers)) == want


def test_every_confirmation_names_the_status_the_case_gives_the_server(seed_gen) -> None:
    aborted = Call(**HELLO, expect={"status": "ABORTED"})
    assert paths(aborted, Outcome(status="ABORTED", trailers=confirmed("ABORTED"))) == []
    # a deadline case: the server's answer is OK after a delay; one that ended the call CANCELLED
    # itself, with trailers, says so (a reset carries none)
    deadline = Call(**HELLO, expect={"status": "DEADLINE_EXCEEDED"}, server={"status": "OK", "delay_ms": 3000})
    assert paths(deadline, Outcome(status="CANCELLED", trailers=confirmed("CANCELLED"))) == [
        ("status.code", "DEADLINE_EXCEEDED", "CANCELLED"), ("server.status", "OK", "CANCELLED")]
    assert paths(deadline, Outcome(status="CANCELLED")) == [("status.code", "DEADLINE_EXCEEDED", "CANCELLED")]


LARGE = "a" * (17 * 1024)
OVER = Call(**HELLO, expect={"status": "RESOURCE_EXHAUSTED", "responses": []},
            server={"status": "OK", "responses": [{"reply": "r"}], "trailers": {"x-large": [LARGE]},
                    "headers": {"x-h": ["h"]}})
THROUGH = Outcome(status="OK", responses=[], headers=[("x-h", "h")], trailers=[("x-large", LARGE), *confirmed("OK")])


def test_a_server_answer_let_through_is_compared_with_what_the_server_sent(seed_gen) -> None:
    from python_impl.contract import message_class

    ok = dataclasses.replace(THROUGH, responses=[message_class("tutorial.HelloResponse")(reply="r")])
    assert paths(OVER, ok) == [("status.code", "RESOURCE_EXHAUSTED", "OK")]
    dropped = dataclasses.replace(ok, trailers=confirmed("OK"))  # a server that drops long trailers
    assert ('trailers["x-large"]', f'["{LARGE}"]', "[]") in paths(OVER, dropped)
    garbage = dataclasses.replace(ok, responses=[message_class("tutorial.HelloResponse")(reply="x")])
    assert [p for p, _, _ in paths(OVER, garbage)] == ["status.code", "responses[0].reply"]
    unconfirmed = dataclasses.replace(ok, trailers=[("x-large", LARGE)])
    assert [p for p, _, _ in paths(OVER, unconfirmed)] == ["status.code", "server.checked"]
    # refused as the case expects: nothing of the server's answer is looked for
    assert paths(OVER, Outcome(status="RESOURCE_EXHAUSTED")) == []


def test_the_generated_code_cases_expect_no_message(seed_gen) -> None:
    """grpcio's clients and grpc-go's read a code past 16 with the server's empty message: a message
    that arrives is a diff the known divergence does not cover."""
    from harness.cases import generate
    from harness.protoset import discover

    cases = {c.name: c for c in generate.generate(discover(REPO / "protos"))}
    for code in (17, 99):
        call = cases[f"tutorial.HelloService/SayHello/protocol/code_{code}"].calls[0]
        assert (call.expect["status"], call.expect["message"], call.server["status"]) == ("UNKNOWN", "", f"CODE_{code}")


def test_the_generated_trailers_case_sends_17_kib_of_trailers(seed_gen) -> None:
    from harness.cases import generate
    from harness.protoset import discover

    cases = {c.name: c for c in generate.generate(discover(REPO / "protos"))}
    call = cases["tutorial.HelloService/SayHello/protocol/metadata_trailers_over_hard_limit"].calls[0]
    assert call.expect["status"] == "RESOURCE_EXHAUSTED" and call.server["status"] == "OK"
    assert len(call.server["trailers"]["x-large"][0]) > generate.GRPCIO_METADATA_HARD_LIMIT


# ---- the deadline reset (issue 17 §2): "when a call's deadline passes" is checked, not assumed

RESET = "Stream removed (RST_STREAM (Received RST_STREAM with error code 8))"
DEADLINE = Call(**{**HELLO, "timeout_ms": 100}, expect={"status": "DEADLINE_EXCEEDED", "responses": []},
                server={"status": "OK", "delay_ms": 3000, "responses": [{"reply": "r"}]})


@pytest.mark.parametrize("status, elapsed, want", [
    # a grpc-go server's reset at the deadline, ahead of the client's own timer: the known divergence
    ("CANCELLED", 101.0, [("status.code", "DEADLINE_EXCEEDED", f'CANCELLED "{RESET}"')]),
    # the same reset long before the deadline: a server that reads the deadline as shorter
    ("CANCELLED", 10.0, [("status.code", "DEADLINE_EXCEEDED", f'CANCELLED "{RESET}"'),
                         ("status.elapsed", "no earlier than the call's deadline (100 ms)", "10.0 ms")]),
    ("DEADLINE_EXCEEDED", 10.0, [("status.elapsed", "no earlier than the call's deadline (100 ms)", "10.0 ms")]),
    ("DEADLINE_EXCEEDED", 100.5, []),
    ("CANCELLED", None, [("status.code", "DEADLINE_EXCEEDED", f'CANCELLED "{RESET}"')]),  # not measured
])
def test_a_call_ends_for_its_deadline_no_earlier_than_the_deadline(seed_gen, status, elapsed, want) -> None:
    message = RESET if status == "CANCELLED" else ""
    assert paths(DEADLINE, Outcome(status=status, message=message, elapsed_ms=elapsed)) == want


def test_a_server_told_to_send_deadline_exceeded_may_send_it_at_once(seed_gen) -> None:
    told = Call(**HELLO, expect={"status": "DEADLINE_EXCEEDED"})  # status_deadline_exceeded: no server.status
    at_once = Outcome(status="DEADLINE_EXCEEDED", elapsed_ms=1.0, trailers=confirmed("DEADLINE_EXCEEDED"))
    assert paths(told, at_once) == []


@pytest.mark.parametrize("flavour", ["py", "pyaio"])
def test_an_early_reset_is_not_excused_as_the_deadline_reset(seed_gen, flavour: str) -> None:
    """A server that ends the deadline case at once with the reset's own words (as one that reads
    the deadline as much shorter would, by a real reset) is a failure in py→go, measured by the
    real client."""
    import asyncio
    from concurrent import futures

    import grpc

    from harness.cases import generate
    from harness.protoset import discover
    from harness.run import divergences
    from python_impl.client import run_case, run_case_aio
    from python_impl.contract import CHANNEL_OPTIONS

    name = "tutorial.HelloService/SayHello/stream/deadline_exceeded"
    case = next(c for c in generate.generate(discover(REPO / "protos")) if c.name == name)

    def at_once(request, context):  # noqa: ANN001, ANN202
        context.abort(grpc.StatusCode.CANCELLED, RESET)

    server = grpc.server(futures.ThreadPoolExecutor(2), options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("tutorial.HelloService", {
        "SayHello": grpc.unary_unary_rpc_method_handler(at_once)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        if flavour == "py":
            with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
                result = run_case(ch, seed_gen, case, "py→go", "test")
        else:
            async def main():  # noqa: ANN202
                async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
                    return await run_case_aio(ch, seed_gen, case, "pyaio→go", "test")
            result = asyncio.run(main())
    finally:
        server.stop(None)
    assert "status.elapsed" in [d.path for d in result.diffs]
    builtin = divergences.load(divergences.builtin_files(), builtin=True)
    assert divergences.apply(builtin, result, f"{flavour}-go", "unary", True).verdict == "fail"
