"""The misbehaving HTTP/2 peer (issue 20 §2, docs/wire.md): the frames each server script sends, the
raw client's reading of an answer, where the cases run, and one run of the whole /wire/ suite in
py→py (grpcio sync client and server; the Go and grpc.aio sides run in `make test`'s interop pass)."""

from __future__ import annotations

import socket
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from harness.cases import wire
from harness.run import runner
from harness.wire import client as raw_client
from harness.wire.server import WireServer

PROTOS = Path(__file__).resolve().parent.parent / "protos"
ONE_REQUEST = wire.ClientScript("one_request", "a well-behaved unary request", (b"",), {"status": "OK"})


def _play(name: str) -> tuple[raw_client.Outcome, list[str]]:
    """The server script's answer to one unary request, and the raw server's `sent` frames."""
    with WireServer(wire.server_script(name)) as server:
        out = raw_client.send(ONE_REQUEST, server.address, f"{wire.SERVER_METHOD}/wire/{name}")
    return out, [line for line in server.log.text().splitlines() if line.startswith("sent")]


# script -> texts its frames must show, in this order, after the server's SETTINGS
FRAMES = {
    "trailers_only": ["HEADERS stream=1 [END_HEADERS,END_STREAM] :status=200 content-type=application/grpc "
                      "grpc-status=5 grpc-message=no such thing"],
    "trailers_without_status": ["HEADERS stream=1 [END_HEADERS] :status=200", "DATA stream=1 length=5",
                                "HEADERS stream=1 [END_HEADERS,END_STREAM] interop-wire=no grpc-status"],
    "rst_after_headers": ["HEADERS stream=1 [END_HEADERS] :status=200", "RST_STREAM stream=1 INTERNAL_ERROR"],
    "rst_mid_data": ["HEADERS stream=1", "DATA stream=1 length=8 data=000000000a080110", "RST_STREAM stream=1"],
    "rst_after_data": ["HEADERS stream=1", "DATA stream=1 length=5 data=0000000000", "RST_STREAM stream=1"],
    "goaway_then_new_call": ["HEADERS stream=1", "GOAWAY stream=0 last_stream=1 NO_ERROR", "DATA stream=1",
                             "HEADERS stream=1 [END_HEADERS,END_STREAM] grpc-status=0"],
    "padded_data": ["HEADERS stream=1", "DATA stream=1 [PADDED] length=5 padding=32", "grpc-status=0"],
    "unary_zero_responses": ["HEADERS stream=1 [END_HEADERS] :status=200", "HEADERS stream=1 [END_HEADERS,END_STREAM]"],
    "unary_two_responses": ["HEADERS stream=1 [END_HEADERS] :status=200", "DATA stream=1 length=5", "DATA stream=1 length=5", "grpc-status=0"],
    "compressed_flag_without_encoding": ["HEADERS stream=1 [END_HEADERS] :status=200 content-type=application/grpc",
                                         "DATA stream=1 length=5 data=0100000000", "grpc-status=0"],
    "wrong_content_type": ["HEADERS stream=1 [END_HEADERS] :status=200 content-type=text/html", "DATA stream=1",
                           "grpc-status=0"],
    "rst_cancel": ["HEADERS stream=1 [END_HEADERS] :status=200", "RST_STREAM stream=1 CANCEL"],
    "rst_enhance_your_calm": ["HEADERS stream=1 [END_HEADERS] :status=200", "RST_STREAM stream=1 ENHANCE_YOUR_CALM"],
    # no grpc-status: the frame's header list ends with the content-type
    "http_503": ["HEADERS stream=1 [END_HEADERS,END_STREAM] :status=503 content-type=text/plain\n"],
    "http_404": ["HEADERS stream=1 [END_HEADERS,END_STREAM] :status=404 content-type=text/plain\n"],
    "status_not_a_number": ["HEADERS stream=1 [END_HEADERS] :status=200", "DATA stream=1 length=5",
                            "HEADERS stream=1 [END_HEADERS,END_STREAM] grpc-status=abc\n"],
    "message_bad_percent_encoding": ["HEADERS stream=1 [END_HEADERS] :status=200",
                                     "HEADERS stream=1 [END_HEADERS,END_STREAM] grpc-status=2 grpc-message=bad %zz %E2%28 end"],
    "length_prefix_too_long": ["HEADERS stream=1 [END_HEADERS] :status=200", "DATA stream=1 length=7 data=00000000640801", "grpc-status=0"],
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_server_script_sends_its_frames_in_order(name: str) -> None:
    _, sent = _play(name)
    assert sent[0].startswith("sent SETTINGS stream=0 ")
    at = 0
    for want in FRAMES[name]:  # each expected frame after the one before it
        found = next((i for i in range(at, len(sent)) if want in sent[i] + "\n"), None)
        assert found is not None, f"{name}: no frame {want!r} after frame {at}:\n" + "\n".join(sent)
        at = found + 1
    # a frame the script does not name was not sent (SETTINGS ACKs aside)
    assert len([s for s in sent if "SETTINGS" not in s]) == len(FRAMES[name])


def test_every_server_script_has_its_frames_checked() -> None:
    assert set(FRAMES) | {"max_concurrent_streams_1", "ping_flood"} == {s.name for s in wire.SERVER_SCRIPTS}


def test_ping_flood_is_bounded_and_settings_limit_streams() -> None:
    out, sent = _play("ping_flood")
    assert len([s for s in sent if "PING stream=0 " in s and "ACK" not in s]) == wire.PING_FLOOD
    assert out.grpc_status == 0 and out.messages == 1
    _, sent = _play("max_concurrent_streams_1")
    assert "3: 1" in sent[0]  # SETTINGS_MAX_CONCURRENT_STREAMS = 1 in the first SETTINGS frame


def test_raw_client_reads_an_answer_and_says_what_differs() -> None:
    out, _ = _play("trailers_only")
    assert (out.http_status, out.grpc_status, out.grpc_message, out.messages) == (200, 5, "no such thing", 0)
    assert raw_client.check(wire.ClientScript("x", "", (), {"status": "NOT_FOUND"}), out) == []
    [diff] = raw_client.check(wire.ClientScript("x", "", (), {"http_status": 415}), out)
    assert (diff.path, diff.expected) == ("http.status", "415")
    assert "grpc-status NOT_FOUND 'no such thing'" in diff.got
    out, _ = _play("status_not_a_number")  # a status that is no number is shown as it came
    assert (out.grpc_status, out.unparsed_status) == (None, "abc")
    assert "grpc-status 'abc' (no number)" in raw_client.describe(out)
    out, _ = _play("rst_after_headers")
    assert out.reset == "INTERNAL_ERROR" and out.grpc_status is None
    assert "no grpc-status" in raw_client.check(wire.ClientScript("x", "", (), {"status": "INTERNAL"}), out)[0].got


def test_wire_cases_are_listed_and_run_only_where_one_library_is_on_both_sides(prepared: runner.Prepared) -> None:
    cases = prepared.cases
    assert len(cases) >= 12 and len({c.name for c in cases}) == len(cases)
    assert all("/wire/" in c.name for c in cases)
    ran = {d.slug: prepared.runnable(d, cases) for d in runner.DIRECTIONS}
    assert {slug for slug, cs in ran.items() if cs} == set(wire.DIRECTIONS)
    assert all(len(ran[slug]) == len(cases) for slug in wire.DIRECTIONS)


@pytest.fixture(scope="module")
def prepared(seed_gen) -> runner.Prepared:
    p = runner.prepare(PROTOS, case_files=[], generated=False)
    p.cases = wire.generate()  # the /wire/ suite alone: the raw peer needs no catalogue
    return p


def test_wire_suite_runs_green_in_py_py_with_its_frames(prepared: runner.Prepared) -> None:
    d = runner.direction("py-py")
    with runner.Session(prepared, "process") as session:
        results = session.run(d, prepared.cases)
    verdicts = {r.case.rsplit("/", 1)[1]: r.verdict for r in results}
    assert set(verdicts.values()) <= {"pass", "divergence"}, [(r.case, r.diffs) for r in results if r.verdict not in
                                                              ("pass", "divergence")]
    # what grpc-go does by the spec and grpcio does not: each a known divergence with its frames
    assert {n for n, v in verdicts.items() if v == "divergence"} == {
        "padded_data", "unary_zero_responses", "unary_two_responses", "wrong_content_type", "length_prefix_too_long",
        "unary_zero_requests", "unary_two_requests", "unknown_encoding", "status_not_a_number"}
    assert all(r.notes.get("frames", "").count("HEADERS stream=1") >= 1 for r in results)
    # ten calls sent at once, each answered 100 ms after its request, on one connection: queued behind
    # the limit of one stream, they took ten holds
    # after the GOAWAY and the closed connection, the second call came on a new connection
    [away] = [r for r in results if r.case.endswith("/goaway_then_new_call")]
    assert away.notes["frames"].count("accepted") == 2 and away.notes["frames"].count("got  HEADERS") == 2
    [limited] = [r for r in results if r.case.endswith("/max_concurrent_streams_1")]
    assert limited.duration_ms >= 10 * wire.server_script("max_concurrent_streams_1").hold_ms
    assert limited.notes["frames"].count("accepted") == 1 and limited.notes["frames"].count("got  HEADERS") == 10


def test_a_client_past_max_concurrent_streams_is_reported() -> None:
    """Two streams opened at once against SETTINGS_MAX_CONCURRENT_STREAMS = 1: the raw server
    records the client's broken rule, which fails the case (harness/run/wirecases.py)."""
    with WireServer(wire.server_script("max_concurrent_streams_1")) as server:
        host, port = server.address.rsplit(":", 1)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        for sid in (1, 3):  # before the server's SETTINGS arrive: h2 still allows 100
            conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/x"),
                                    (":authority", server.address), ("content-type", "application/grpc")])
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(conn.data_to_send())
            sock.settimeout(2)
            try:
                while sock.recv(65536):
                    pass
            except TimeoutError:
                pass
    assert server.refused and "TooManyStreamsError" in server.refused[0], server.log.text()


def test_a_failing_wire_case_explains_itself_with_its_frames(prepared: runner.Prepared) -> None:
    from python_impl.contract import Diff, Result

    d = runner.direction("go-go")
    case = f"{wire.SERVER_METHOD}/wire/padded_data"
    frames = "sent HEADERS stream=1 [END_HEADERS] :status=200\nsent DATA stream=1 [PADDED] length=5 padding=32"
    failed = Result(case, d.name, "fail", [Diff(0, "status.code", "OK", "INTERNAL")], notes={"frames": frames})
    text = runner.Session(prepared, "process").explain(d, failed)
    assert "the raw HTTP/2 peer's frames:\n    sent HEADERS stream=1" in text
    assert "    sent DATA stream=1 [PADDED] length=5 padding=32" in text


# client script -> texts the raw client's request frames must show, in order
REQUESTS = {
    "unary_zero_requests": ["HEADERS stream=1 [END_HEADERS,END_STREAM] :method=POST"],
    "unary_two_requests": ["HEADERS stream=1 [END_HEADERS] :method=POST", "DATA stream=1 length=5 data=0000000000",
                           "DATA stream=1 [END_STREAM] length=5 data=0000000000"],
    "malformed_timeout": ["HEADERS stream=1 [END_HEADERS] :method=POST", "grpc-timeout=1x", "DATA stream=1 [END_STREAM]"],
    "wrong_content_type": ["HEADERS stream=1 [END_HEADERS] :method=POST", "content-type=text/plain", "DATA stream=1"],
    "length_prefix_4gib": ["HEADERS stream=1 [END_HEADERS] :method=POST", "DATA stream=1 [END_STREAM] length=5 "
                           "data=00ffffffff"],
    "unknown_encoding": ["HEADERS stream=1", "grpc-encoding=interop-unknown", "DATA stream=1 [END_STREAM] length=5 "
                         "data=0100000000"],
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_client_script_sends_its_request_frames(name: str) -> None:
    """What each client script puts on the wire, as the raw server (any answer) received it."""
    assert set(REQUESTS) == {s.name for s in wire.CLIENT_SCRIPTS}
    with WireServer(wire.server_script("trailers_only")) as server:
        raw_client.send(wire.client_script(name), server.address, f"{wire.CLIENT_METHOD}/wire/{name}")
    got = "\n".join(line for line in server.log.text().splitlines()
                    if line.startswith("got") and "stream=1" in line)
    at = 0
    for want in REQUESTS[name]:
        found = got.find(want, at)
        assert found >= 0, f"{name}: no {want!r} after offset {at}:\n{got}"
        at = found + len(want)
    assert got.count("DATA stream=1") == len(wire.client_script(name).messages)


def test_the_raw_server_ends_a_connection_the_client_left_open_at_once() -> None:
    """A client that keeps its connection open past the case: leaving the server stops its thread
    (shutdown wakes the blocked read; close alone left it reading for READ_TIMEOUT_S)."""
    import threading
    import time

    with WireServer(wire.server_script("trailers_only")) as server:
        host, port = server.address.rsplit(":", 1)
        idle = socket.create_connection((host, int(port)))
        time.sleep(0.1)  # accepted: its thread is reading
        start = time.monotonic()
    try:
        assert time.monotonic() - start < 2, "WireServer.__exit__ waited for a connection's thread"
        assert not [t for t in threading.enumerate() if t.name == "wire-conn-trailers_only"]
    finally:
        idle.close()


def test_the_raw_client_gives_up_on_a_server_that_never_ends_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that keeps sending (PINGs here) without ever answering: the raw client's loop ends at
    its timeout, not when the server stops talking."""
    import threading
    import time

    from hyperframe.frame import PingFrame, SettingsFrame

    monkeypatch.setattr(raw_client, "TIMEOUT_S", 0.3)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def chatty() -> None:
        conn, _ = listener.accept()
        def drain() -> None:  # the client's frames (its PING ACKs) are read, so its writes never block
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

        threading.Thread(target=drain, daemon=True).start()
        conn.sendall(SettingsFrame(0).serialize())
        end = time.monotonic() + 4
        ping = PingFrame(0, opaque_data=b"\0" * 8).serialize()
        try:
            while not stop.is_set() and time.monotonic() < end:
                conn.sendall(ping * 8)
        except OSError:
            pass
        conn.close()

    talker = threading.Thread(target=chatty, daemon=True)
    talker.start()
    start = time.monotonic()
    try:
        out = raw_client.send(wire.client_script("unary_zero_requests"), f"127.0.0.1:{listener.getsockname()[1]}", "x")
        took = time.monotonic() - start
    finally:
        stop.set()
        talker.join(5)
        listener.close()
    assert took < 2, f"the raw client read for {took:.1f} s past its {raw_client.TIMEOUT_S} s timeout"
    assert out.timed_out and out.grpc_status is None


def test_calls_sent_one_by_one_fail_the_stream_limit_case() -> None:
    """max_concurrent_streams_1's calls must be in flight at once: a client batch that sent them one
    by one (each answered 100 ms after its request, OK) would pass without meeting the limit."""
    from harness.cases.model import Case
    from harness.run import wirecases
    from python_impl.contract import Result

    script = wire.server_script("max_concurrent_streams_1")
    [case] = [c for c in wire.generate() if c.name.endswith("/" + script.name)]

    class Batch:  # a session whose client answers each call after `took` ms
        concurrency, events, on_launch, windows = 4, None, None, {}

        def __init__(self, took: list[float]) -> None:
            self.took = took

        def _exchange(self, d: object, parts: list[Case], target: dict[str, str]) -> list[Result]:
            return [Result(p.name, "py→py", "pass", [], ms) for p, ms in zip(parts, self.took)]

        def _started(self, d: object, case: Case) -> None:
            pass

        def _ended(self, d: object, case: Case, r: Result) -> Result:
            return r

    d, n, hold = runner.direction("py-py"), len(case.calls), script.hold_ms
    at_once = wirecases._at_once(Batch([hold * (i + 1) + 5 for i in range(n)]), d, case, {}, hold)
    assert at_once.verdict == "pass", at_once.diffs
    one_by_one = wirecases._at_once(Batch([hold + 5] * n), d, case, {}, hold)
    assert one_by_one.verdict == "fail" and [x.path for x in one_by_one.diffs] == ["wire.at_once"]


@pytest.mark.parametrize("scripts, bad", [
    ("CLIENT_SCRIPTS", wire.ClientScript("x", "", (b"",), {"status": "INTERNAL", "message": "no request"})),
    ("SERVER_SCRIPTS", wire.ServerScript("x", "", wire.ANSWER, {"status": "OK", "mesage": "typo"})),
    ("SERVER_SCRIPTS", wire.ServerScript("x", "", wire.ANSWER, {"status": "INTERNAL", "message_contains": "one"})),
])
def test_an_expectation_nobody_compares_is_refused(monkeypatch: pytest.MonkeyPatch, scripts: str, bad: object) -> None:
    """The raw client compares status and http_status only, and the clients' checkers only the case
    format's expect keys: a script expecting anything else would pass whatever the peer did."""
    if isinstance(bad, wire.ClientScript):  # what the raw client would have said: nothing differs
        assert raw_client.check(bad, raw_client.Outcome(grpc_status=13, grpc_message="something else")) == []
    monkeypatch.setattr(wire, scripts, (bad,))
    with pytest.raises(ValueError, match="wire script x: "):
        wire.generate()


@pytest.mark.parametrize("message, kept", [
    ("bad %zz â( end", True),            # grpcio (Latin-1 reading of the bytes E2 28)
    ("bad %zz \ufffd( end", True),       # a replacement character for the bytes that are no UTF-8
    ("bad %zz %E2%28 end", True),        # left undecoded
    ("bad ?zz \ufffd( end", True),       # the broken escape replaced
    ("bad zz ( end", False),             # the broken escape dropped
    ("bad", False),                      # cut short
])
def test_a_status_message_with_a_broken_escape_must_keep_it(message: str, kept: bool) -> None:
    """message_bad_percent_encoding: the escape %zz is kept as it came or replaced, never dropped."""
    from python_impl.check import check
    from python_impl.contract import Outcome

    [case] = [c for c in wire.generate() if c.name.endswith("/message_bad_percent_encoding")]
    diffs = check(case.calls[0], Outcome(status="UNKNOWN", message=message), 0)
    assert (diffs == []) == kept, diffs


# script -> the reason as grpcio and as grpc-go word it (measured: grpc-interop run -k /wire/; the
# third RST_STREAM wording is grpcio 1.72.2's whole message, measured by make matrix-oldest)
REASONS = {
    "rst_after_headers": ["Stream removed (RST_STREAM (Received RST_STREAM with error code 2))",
                          "stream terminated by RST_STREAM with error code: INTERNAL_ERROR",
                          "Received RST_STREAM with error code 2"],
    "rst_cancel": ["Stream removed (RST_STREAM (Received RST_STREAM with error code 8))",
                   "stream terminated by RST_STREAM with error code: CANCEL",
                   "Received RST_STREAM with error code 8"],
    "compressed_flag_without_encoding": ["Compression bit set but no encoding configured",
                                         "grpc: compressed flag set with identity or empty encoding"],
    "http_503": ["Received http2 header with status: 503", "unexpected HTTP status code received from server: "
                 "503 (Service Unavailable); transport: received unexpected content-type \"text/plain\""],
}


@pytest.mark.parametrize("name", sorted(REASONS))
def test_the_right_code_for_another_reason_fails(name: str) -> None:
    """A client that ends with the script's code for a reason of its own (its deserializer, a bug of
    its transport) does not pass: the reason must be the frames the script sent."""
    from python_impl.check import check
    from python_impl.contract import Outcome

    [case] = [c for c in wire.generate() if c.name.endswith("/" + name)]
    call = case.calls[0]
    for message in REASONS[name]:
        assert check(call, Outcome(status=call.expect["status"], message=message), 0) == []
    assert check(call, Outcome(status=call.expect["status"], message="Exception deserializing response!"), 0)


@pytest.mark.parametrize(("name", "message"), [
    ("rst_after_headers", "Received RST_STREAM with error code 8"),   # another code's reset
    ("rst_cancel", "Received RST_STREAM with error code 2"),
    ("rst_enhance_your_calm", "Received RST_STREAM with error code 1"),  # 11 cut short: no such prefix match
])
def test_a_reset_with_another_error_code_fails(name: str, message: str) -> None:
    """Each grpcio wording of a RST_STREAM reason names the script's own error code: a reset with
    another code ends the script's case failed, in 1.72.2's shorter wording too."""
    from python_impl.check import check
    from python_impl.contract import Outcome

    [case] = [c for c in wire.generate() if c.name.endswith("/" + name)]
    call = case.calls[0]
    assert check(call, Outcome(status=call.expect["status"], message=message), 0)


def test_a_server_refusing_a_client_script_for_another_reason_fails() -> None:
    """The raw client compares the reason too (grpc-message, each library's wording): a server that
    answers malformed_timeout INTERNAL for a reason of its own does not pass."""
    script = wire.client_script("malformed_timeout")
    for said in ("Error parsing 'grpc-timeout' metadata",  # grpcio, measured
                 'malformed grpc-timeout: transport: timeout unit is not recognized: "1x"'):  # grpc-go
        assert raw_client.check(script, raw_client.Outcome(http_status=200, grpc_status=13, grpc_message=said)) == []
    [diff] = raw_client.check(script, raw_client.Outcome(http_status=200, grpc_status=13, grpc_message="Internal"))
    assert diff.path == "status.message"


def _first_call(server: WireServer) -> tuple[str, int, h2.connection.H2Connection, list[tuple[str, str]]]:
    """A raw h2 client toward a script's server, its first call (stream 1, one empty message) written
    but not sent; and the call's headers, for the next."""
    host, port = server.address.rsplit(":", 1)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    request = [(":method", "POST"), (":scheme", "http"), (":path", "/x"), (":authority", server.address),
               ("content-type", "application/grpc")]
    conn.send_headers(1, request)
    conn.send_data(1, wire.frame(b""), end_stream=True)
    return host, int(port), conn, request


def test_a_client_that_ignores_goaway_is_reported() -> None:
    """goaway_then_new_call: a client that starts its next call on the connection whose GOAWAY named
    stream 1 as the last breaks RFC 9113 §6.8, even if it then retries on a new connection and passes."""
    from hyperframe.frame import HeadersFrame

    script = wire.server_script("goaway_then_new_call")
    with WireServer(script) as server:
        host, port, conn, request = _first_call(server)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(conn.data_to_send())
            ended = False
            while not ended and (data := sock.recv(65536)):
                try:
                    events = conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                ended = any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in events)
            # the next call on the same connection (h2 itself would refuse it: written beside it)
            next_call = HeadersFrame(3, data=conn.encoder.encode(request), flags=["END_HEADERS", "END_STREAM"])
            sock.sendall(next_call.serialize())
            sock.settimeout(0.5)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
    assert server.refused == ["stream 3 opened after GOAWAY last_stream=1"], server.log.text()


def test_a_call_the_client_cancels_while_its_answer_is_held_leaves_the_others_answered() -> None:
    """max_concurrent_streams_1 holds each answer 100 ms: a client that cancels a call meanwhile
    (its deadline, ...) must not take the connection down with it, so its other calls still end."""
    with WireServer(wire.server_script("max_concurrent_streams_1")) as server:
        host, port, conn, request = _first_call(server)
        conn.reset_stream(1, wire.CANCEL)  # before its answer, held 100 ms
        conn.send_headers(3, request)
        conn.send_data(3, wire.frame(b""), end_stream=True)
        ended = False
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            sock.sendall(conn.data_to_send())
            try:
                while not ended and (data := sock.recv(65536)):
                    events = conn.receive_data(data)
                    ended = any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 3 for e in events)
                    sock.sendall(conn.data_to_send())
            except OSError:
                pass
    assert ended, server.log.text()
