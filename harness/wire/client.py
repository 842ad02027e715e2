"""The raw HTTP/2 client: one client script (harness/wire/scripts.py) sent to a gRPC server's
standard health service (every server serves it with the library's own implementation), and what
came back: the HTTP status, grpc-status and grpc-message, the messages, a RST_STREAM or GOAWAY."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from harness.cases.model import STATUS_CODES
from harness.wire.frames import ERROR_CODES, FrameLog
from harness.cases.wire import GRPC, ClientScript, frame
from python_impl.contract import Diff

METHOD = "/grpc.health.v1.Health/Check"
TIMEOUT_S = 3.0   # a server that answers nothing: the outcome says so, the loop ends


@dataclass
class Outcome:
    http_status: int | None = None
    grpc_status: int | None = None
    grpc_message: str | None = None
    unparsed_status: str | None = None   # a grpc-status that is no number, as it came
    messages: int = 0
    reset: str | None = None        # the RST_STREAM error code the server sent
    goaway: str | None = None
    timed_out: bool = False
    log: FrameLog = field(default_factory=lambda: FrameLog(raw_is_server=False))


def send(script: ClientScript, address: str, case: str) -> Outcome:
    """Play the script toward `address` (host:port, loopback) on a connection of its own."""
    host, port = address.rsplit(":", 1)
    out = Outcome()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    fields = {":method": "POST", ":scheme": "http", ":path": METHOD, ":authority": address,
              "content-type": GRPC, "te": "trailers", "interop-case": case, "interop-call": "0",
              **script.headers}
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, list(fields.items()), end_stream=not script.messages)
    for i, m in enumerate(script.messages):
        conn.send_data(sid, frame(m, script.compressed, script.declared), end_stream=i == len(script.messages) - 1)
    deadline = time.monotonic() + TIMEOUT_S
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        _send(sock, conn, out)
        done = False
        while not done:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except (TimeoutError, OSError) as e:
                out.timed_out = isinstance(e, TimeoutError)
                out.log.note(f"no more frames: {type(e).__name__}")
                break
            if not data:
                out.log.note("the server closed the connection")
                break
            out.log.got(data)
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                out.log.note(f"h2 refused the server's frames: {type(e).__name__}: {e}")
                break
            for ev in events:
                done = _event(ev, conn, sid, out) or done
            _send(sock, conn, out)
    return out


def _event(ev: h2.events.Event, conn: h2.connection.H2Connection, sid: int, out: Outcome) -> bool:
    """Record one event; True once the call's stream is over."""
    if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) and ev.stream_id == sid:
        for k, v in ev.headers:
            if k == ":status":
                out.http_status = int(v)
            elif k == "grpc-status":  # a server may send anything: what is no number is kept as text
                out.grpc_status, out.unparsed_status = (int(v), None) if v.isdigit() else (None, v)
            elif k == "grpc-message":
                out.grpc_message = v
        return bool(getattr(ev, "stream_ended", None))
    if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
        conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        if len(ev.data) >= 5:  # the test messages are small: one DATA frame each
            out.messages += 1
    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
        return True
    elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
        out.reset = ERROR_CODES.get(ev.error_code, str(ev.error_code))
        return True
    elif isinstance(ev, h2.events.ConnectionTerminated):
        out.goaway = ERROR_CODES.get(ev.error_code, str(ev.error_code))
        return True
    return False


def _send(sock: socket.socket, conn: h2.connection.H2Connection, out: Outcome) -> None:
    data = conn.data_to_send()
    if data:
        out.log.sent(data)
        sock.sendall(data)


def describe(out: Outcome) -> str:
    """What the server answered, in one line."""
    parts = [f"HTTP {out.http_status}" if out.http_status is not None else "no response headers"]
    if out.grpc_status is not None:
        name = STATUS_CODES[out.grpc_status] if 0 <= out.grpc_status < len(STATUS_CODES) else f"CODE_{out.grpc_status}"
        parts.append(f"grpc-status {name}" + (f" {out.grpc_message!r}" if out.grpc_message else ""))
    elif out.unparsed_status is not None:
        parts.append(f"grpc-status {out.unparsed_status!r} (no number)")
    else:
        parts.append("no grpc-status")
    parts.append(f"{out.messages} message(s)")
    if out.reset:
        parts.append(f"RST_STREAM {out.reset}")
    if out.goaway:
        parts.append(f"GOAWAY {out.goaway}")
    if out.timed_out:
        parts.append(f"nothing more within {TIMEOUT_S:.0f} s")
    return ", ".join(parts)


def check(script: ClientScript, out: Outcome) -> list[Diff]:
    """Every way the server's answer differs from what the script expects."""
    diffs = []
    if "status" in script.expect:
        want = script.expect["status"]
        got = STATUS_CODES[out.grpc_status] if out.grpc_status is not None and 0 <= out.grpc_status < len(
            STATUS_CODES) else None
        if got != want:
            diffs.append(Diff(0, "status.code", want, describe(out)))
    if "http_status" in script.expect and out.http_status != script.expect["http_status"]:
        diffs.append(Diff(0, "http.status", str(script.expect["http_status"]), describe(out)))
    return diffs
