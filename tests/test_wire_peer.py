"""The misbehaving HTTP/2 peer (issue 20 §2, docs/wire.md): the frames each server script sends, the
raw client's reading of an answer, where the cases run, and one run of the whole /wire/ suite in
py→py (grpcio sync client and server; the Go and grpc.aio sides run in `make test`'s interop pass)."""

from __future__ import annotations

from pathlib import Path

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
    import socket

    import h2.config
    import h2.connection

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
