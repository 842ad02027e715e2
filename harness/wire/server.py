"""The raw HTTP/2 server: one listener per case on 127.0.0.1, playing one server script
(harness/wire/scripts.py) toward whatever gRPC client connects, and logging every frame.

The base wraps an h2 server connection and dispatches its events, like grpc's
test/http2_test/http2_base_server.py; what a script changes is only which frames answer a call.
A GOAWAY is written as a frame beside h2 (hyperframe): h2 closes its own state machine on GOAWAY,
and a call that is allowed to finish after it could then not be answered.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from harness.wire.frames import FrameLog
from harness.cases.wire import ANSWER, GRPC, ServerScript, Step, frame

READ_TIMEOUT_S = 15.0   # a connection the client left open but idle ends then (bounded threads)
POLL_S = 0.01           # how often a connection with answers held looks at the clock
MAX_CONNECTIONS = 20    # a case makes one or two; more is a client reconnecting in a loop


@dataclass
class _Conn:
    """One connection of the raw server: its socket, its h2 state and its frame log."""
    sock: socket.socket
    h2: h2.connection.H2Connection
    log: FrameLog


class WireServer:
    """A context manager: listens at `address` until closed; `log` holds every connection's frames."""

    def __init__(self, script: ServerScript) -> None:
        self.script = script
        self.log = FrameLog(raw_is_server=True)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._calls = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        # frames of the client's that h2 refused (HTTP/2 rules it broke: a stream past the limit …)
        self.refused: list[str] = []

    def __enter__(self) -> WireServer:
        t = threading.Thread(target=self._accept, name=f"wire-server-{self.script.name}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for c in list(self._conns):
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set() and len(self._conns) < MAX_CONNECTIONS:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.log.note(f"connection {len(self._conns)} accepted")
            t = threading.Thread(target=self._serve, args=(conn, self.log.connection()), daemon=True,
                                 name=f"wire-conn-{self.script.name}")
            t.start()
            self._threads.append(t)

    def _next_call(self) -> int:
        with self._lock:
            n = self._calls
            self._calls += 1
            return n

    def _serve(self, sock: socket.socket, log: FrameLog) -> None:
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        # the script's SETTINGS go in the first SETTINGS frame, so no stream can start before them
        h2conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100, **self.script.settings})
        h2conn.initiate_connection()
        c = _Conn(sock, h2conn, log)
        closing = False
        pending: list[tuple[float, int]] = []  # (when, stream): answers the script holds (hold_ms)
        idle_until = time.monotonic() + READ_TIMEOUT_S
        try:
            self._flush(c)
            while not self._stop.is_set() and not closing and time.monotonic() < idle_until:
                now = time.monotonic()
                for due, sid in [p for p in pending if p[0] <= now]:
                    pending.remove((due, sid))
                    closing = self._answer(c, sid) or closing
                self._flush(c)
                sock.settimeout(POLL_S if pending else max(0.01, idle_until - now))
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    log.note("the client closed the connection")
                    return
                idle_until = time.monotonic() + READ_TIMEOUT_S
                log.got(data)
                try:
                    events = h2conn.receive_data(data)
                except h2.exceptions.ProtocolError as e:  # the client broke a rule: the case fails saying which
                    self.refused.append(f"{type(e).__name__}: {e}")
                    log.note(f"h2 refused the client's frames: {type(e).__name__}: {e}")
                    return
                for ev in events:
                    if isinstance(ev, h2.events.DataReceived):
                        h2conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        pending.append((time.monotonic() + self.script.hold_ms / 1000, ev.stream_id))
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        closing = True
                self._flush(c)
            if closing:  # send what is left, then wait for the client to close (bounded by the timeout)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(READ_TIMEOUT_S)
                while sock.recv(65536):
                    pass
        except (OSError, TimeoutError) as e:
            log.note(f"connection ended: {type(e).__name__}")
        finally:
            sock.close()

    def _answer(self, c: _Conn, sid: int) -> bool:
        """Play the script's steps for the first call, a well-behaved answer for the others; True
        when the connection is to close after it."""
        first = self._next_call() == 0
        for step in self.script.steps if first else ANSWER:
            self._play(c, sid, step)
        return first and self.script.close_after

    def _play(self, c: _Conn, sid: int, step: Step) -> None:
        if step.kind == "headers":
            c.h2.send_headers(sid, [(":status", str(step.http_status)), ("content-type", step.content_type)])
        elif step.kind == "message":
            c.h2.send_data(sid, frame(step.payload, step.compressed, step.declared), pad_length=step.pad or None)
        elif step.kind in ("trailers", "trailers_only"):
            fields = [(":status", str(step.http_status)), ("content-type", step.content_type)] \
                if step.kind == "trailers_only" else []
            if step.with_status:
                fields.append(("grpc-status", step.status_text if step.status_text is not None else str(step.status)))
            elif step.kind == "trailers":  # a trailer block must hold something: one the harness owns
                fields.append(("interop-wire", "no grpc-status"))
            if step.message is not None:
                fields.append(("grpc-message", step.message))
            c.h2.send_headers(sid, fields, end_stream=True)
        elif step.kind == "rst":
            c.h2.reset_stream(sid, step.code)
        elif step.kind == "goaway":
            self._flush(c)  # the frames before it go first
            self._send(c, GoAwayFrame(0, last_stream_id=sid, error_code=step.code).serialize())
        elif step.kind == "pings":
            for i in range(step.count):
                c.h2.ping(i.to_bytes(8, "big"))
        else:
            raise ValueError(f"server script {self.script.name}: unknown step {step.kind!r}")

    def _flush(self, c: _Conn) -> None:
        self._send(c, c.h2.data_to_send())

    def _send(self, c: _Conn, data: bytes) -> None:
        if data:
            c.log.sent(data)
            c.sock.sendall(data)
