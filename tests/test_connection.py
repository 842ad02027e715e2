"""Connection behaviour (issue 10 item 4) on the Python side: the cases derived from a proto set, the
client's channel options, and the Python servers' keepalive / max_age / restart listeners running
those cases for real (in this process), including variants that must fail: a check that cannot
fail would prove nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from harness.cases import connection
from harness.engines.peer import PythonServer
from harness.protoset import discover
from python_impl.client import run_case
from python_impl import channels
from python_impl.connection import HOLD_KEY, LISTENERS, NEW_CONNECTION_KEY, client_options
from python_impl.listeners import _Connections
from python_impl.contract import SESSION_HEADER

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cases(seed_gen: ModuleType) -> dict[str, connection.Case]:
    return {c.name.rsplit("/", 1)[1]: c for c in connection.generate(discover(REPO / "protos"))}


def test_three_cases_on_the_standard_health_service(cases: dict) -> None:
    assert sorted(cases) == ["keepalive_too_many_pings", "max_age_in_flight", "server_restart"]
    for c in cases.values():
        assert c.name.startswith("grpc.health.v1.Health/") and "/connection/" in c.name, c.name
        assert c.to_json()["channel"] == c.channel  # the engines read it from the case JSON
        assert not any(k.checked_by_server for k in c.calls)  # the real health servicers answer
    ka = cases["keepalive_too_many_pings"]
    assert ka.channel == {"listener": "keepalive", "keepalive_time_ms": connection.KEEPALIVE_TIME_MS}
    assert ka.calls[0].streaming == "server_stream" and ka.calls[0].expect["status"] == "UNAVAILABLE"
    assert ka.calls[1].to_json()["wait_for_ready"] is True
    assert cases["max_age_in_flight"].calls[0].metadata == {HOLD_KEY: [str(connection.IN_FLIGHT_MS)]}
    assert cases["max_age_in_flight"].calls[1].metadata == {NEW_CONNECTION_KEY: ["1"]}
    assert cases["server_restart"].calls[0].metadata == {connection.RESTART_KEY: [str(connection.RESTART_MS)],
                                                         HOLD_KEY: [str(connection.RESTART_HOLD_MS)]}


def test_a_run_lists_them_once_for_any_set() -> None:
    from harness.run.runner import prepare

    prepared = prepare(REPO / "protos")
    names = [c.name for c in prepared.cases if "/connection/" in c.name]
    assert len(names) == 3 and not any("/connection/" in c.name for c in prepared.catalogue)
    assert set(prepared.listeners) == {"keepalive", "max_age", "restart", "tls", "mtls"}


def test_client_options_follow_the_channel() -> None:
    assert client_options(None) == []
    opts = dict(client_options({"listener": "keepalive", "keepalive_time_ms": 1000, "keepalive_timeout_ms": 500,
                                "keepalive_permit_without_calls": True}))
    assert opts["grpc.keepalive_time_ms"] == 1000 and opts["grpc.keepalive_timeout_ms"] == 500
    assert opts["grpc.keepalive_permit_without_calls"] == 1
    assert opts["grpc.http2.max_pings_without_data"] == 0  # else Core stops pinging a quiet stream
    assert "grpc.http2.max_pings_without_data" not in dict(client_options({"listener": "max_age"}))


def test_unknown_listener_is_a_clear_error() -> None:
    pool = channels.Pool({"plaintext": "127.0.0.1:1", "restart": "127.0.0.1:2"}, None)
    with pytest.raises(channels.ChannelError, match="the server has no max_age listener"):
        pool.for_case({"channel": {"listener": "max_age"}})
    with pytest.raises(channels.ChannelError, match="keepalive_time_ms is a number"):
        channels.Channel.of({"listener": "keepalive", "keepalive_time_ms": "1s"})
    pool.close()


def test_a_new_connection_is_asked_for_by_metadata() -> None:
    conns = _Connections()
    md = {SESSION_HEADER: "r:py-py:c"}
    assert conns.refusal(md, "ipv4:127.0.0.1:1") is None
    asked = {**md, NEW_CONNECTION_KEY: "1", "interop-case": "c", "interop-call": "1"}
    assert "case c call 1 came on the same connection" in conns.refusal(asked, "ipv4:127.0.0.1:1")
    assert conns.refusal(asked, "ipv4:127.0.0.1:2") is None
    assert conns.refusal({SESSION_HEADER: "other", NEW_CONNECTION_KEY: "1"}, "ipv4:127.0.0.1:2") is None


def _variants(cases: dict) -> dict[str, connection.Case]:
    """The cases on listeners without the behaviour they test: each must fail."""
    ka, age, restart = cases["keepalive_too_many_pings"], cases["max_age_in_flight"], cases["server_restart"]
    return {
        # no keepalive pings: nothing breaks the policy, the held Watch reaches its deadline
        "no_pings": replace(ka, name=ka.name + "_no_pings", channel={"listener": "keepalive"},
                            calls=[replace(ka.calls[0], timeout_ms=6_000), ka.calls[1]]),
        # no connection age (nor restart: the restart case may be restarting that listener right
        # now): the second call comes on the first call's connection
        "no_age": replace(age, name=age.name + "_no_age", channel={"listener": "keepalive"}),
        # a listener that does not restart: likewise
        "no_restart": replace(restart, name=restart.name + "_no_restart", channel={"listener": "keepalive"}),
        # the plaintext listener ignores every connection key: only the listener's trailer tells
        "wrong_listener": replace(age, name=age.name + "_wrong_listener", channel=None),
    }


@pytest.mark.parametrize("aio", [False, True], ids=["grpc", "grpc.aio"])
def test_python_listeners_pass_the_cases_and_fail_their_variants(seed_gen: ModuleType, cases: dict,
                                                                  aio: bool) -> None:
    variants = _variants(cases)
    by_name = {c.name: c for c in [*cases.values(), *variants.values()]}
    with PythonServer(seed_gen, [], aio=aio, listeners=LISTENERS) as server, \
            ThreadPoolExecutor(6) as pool:
        assert sorted(server.addresses) == sorted(["plaintext", *LISTENERS])
        conns = channels.Pool(server.addresses, None)
        try:
            results = {r.case: r for r in pool.map(
                lambda c: run_case(conns.for_case(c), seed_gen, c, "py→py", "r-test"), by_name.values())}
        finally:
            conns.close()
    for c in cases.values():
        r = results[c.name]
        assert r.verdict == "pass", (c.name, r.diffs)
    assert results[cases["keepalive_too_many_pings"].name].notes == {"call 0": "UNAVAILABLE: Too many pings"}
    no_pings = results[variants["no_pings"].name]
    assert no_pings.verdict == "fail" and no_pings.notes["call 0"].startswith("DEADLINE_EXCEEDED"), no_pings.notes
    for key in ("no_age", "no_restart"):
        r = results[variants[key].name]
        assert r.verdict == "fail", (key, r.diffs)
        assert "came on the same connection" in r.notes["call 1"], (key, r.notes)
    wrong = results[variants["wrong_listener"].name]
    assert {d.path for d in wrong.diffs} == {'trailers["x-interop-listener"]'}, wrong.diffs


def test_python_peer_process_serves_named_listeners() -> None:
    """`python -m harness.engines.python_peer serve --listen NAME=ADDR` announces each listener on its
    LISTENING line, after the plaintext address, as the Go peer does."""
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "harness.engines.python_peer", "serve", "--protos",
                             str(REPO / "protos"), "--addr", "127.0.0.1:0", "--listen", "max_age=127.0.0.1:0",
                             "--listen", "restart=127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=REPO)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
    finally:
        proc.terminate()
        proc.wait(30)
    assert re.fullmatch(r"LISTENING 127\.0\.0\.1:\d+ max_age=127\.0\.0\.1:\d+ restart=127\.0\.0\.1:\d+\n", line), line
    bad = subprocess.run([sys.executable, "-m", "harness.engines.python_peer", "serve", "--protos", str(REPO / "protos"),
                          "--listen", "nope=127.0.0.1:0"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and "NAME one of keepalive, max_age, restart" in bad.stderr


def test_keepalive_case_wants_the_goaway_reason_not_any_unavailable(cases: dict) -> None:
    """A connection the client itself closed (keepalive watchdog) also ends UNAVAILABLE: only the
    too_many_pings reason passes, in each library's wording."""
    from python_impl.check import check
    from python_impl.contract import Outcome
    from grpc_health.v1 import health_pb2

    watch = cases["keepalive_too_many_pings"].calls[0]
    serving = [health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)]
    for message in ("Stream removed (Socket closed (GOAWAY received; Error code: 11; Debug Text: too_many_pings))",
                    "Too many pings"):
        assert check(watch, Outcome(status="UNAVAILABLE", message=message, responses=serving), 0) == []
    other = check(watch, Outcome(status="UNAVAILABLE", message="keepalive watchdog timeout", responses=serving), 0)
    assert [d.path for d in other] == ["status.message"]
