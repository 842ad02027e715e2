"""A passive HTTP/2 observer on loopback, for what no grpcio API shows: compression, whether a
call was sent at all, and the harness's trailers when the client lost them.

grpcio hides `grpc-encoding` from its server (`invocation_metadata`) and its client
(`initial_metadata`), so a Python peer cannot tell whether a message arrived compressed. The
observer sits between a client and a server peer: it relays every byte unchanged and parses copies
with the HTTP/2 libraries (hyperframe for frames, hpack for header blocks). Per call, named by the
case and call headers every client sends, it records the `grpc-encoding` of the request and
response headers, the compressed flag of every gRPC message in each direction, the names of the
request headers, and the harness's own `interop-*` trailers the server sent.

A frame is parsed before it is forwarded, so once a client has its call's outcome, the observer has
seen everything that call sent and received.
"""

from __future__ import annotations

import socket
import sys
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from hpack import Decoder
from hyperframe.frame import ContinuationFrame, DataFrame, Frame, HeadersFrame

from python_impl.contract import CALL_HEADER, CASE_HEADER

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HARNESS_PREFIX = b"interop-"


@dataclass
class Side:
    """One direction of one call: its header encoding and the compressed flag of each message; for
    a message sent uncompressed under gzip, its length and what gzip makes of it (gzipped)."""
    encoding: str | None = None   # grpc-encoding of the first HEADERS (None: no header, identity)
    flags: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    gzipped: dict[int, int] = field(default_factory=dict)  # message index -> its size through gzip

    def uncompressed(self) -> list[int]:
        """The messages sent uncompressed although gzip was declared and shrinks them (by a tenth or
        more: a library may send a message as it is when compressing gains little, as gRPC Core
        does when it gains nothing)."""
        return [i for i, n in self.gzipped.items() if shrinks(self.lengths[i], n)]

    @property
    def compression(self) -> str:
        """What the receiving library was told, as the Go engine reports it: identity when unsaid."""
        return self.encoding or "identity"


def shrinks(length: int, gzipped: int) -> bool:
    """gzip saves at least a tenth of the message (the Go engine's check uses the same rule)."""
    return gzipped * 10 <= length * 9


def gzip_sink() -> Any:
    """What gRPC Core's gzip makes of a message (zlib, default level, gzip wrapper: message_compress.cc)."""
    return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 31, 8, zlib.Z_DEFAULT_STRATEGY)


@dataclass
class Call:
    case: str = ""
    index: int = 0
    request: Side = field(default_factory=Side)
    response: Side = field(default_factory=Side)
    request_keys: list[str] = field(default_factory=list)  # the request's header names, in order
    # the server's trailers whose names start with `interop-` (its confirmation and findings)
    harness_trailers: list[tuple[str, bytes]] = field(default_factory=list)
    status: str | None = None  # the grpc-status the server sent, as it is on the wire (a number)
    # a parse failure on the call's connection: what was recorded for it may be incomplete
    broken: list[str] = field(default_factory=list)


class _Direction:
    """Parses one direction of one connection: frames, header blocks, gRPC message prefixes."""

    def __init__(self, conn: _Connection, from_client: bool) -> None:
        self.conn, self.from_client = conn, from_client
        self.buf = bytearray()
        self.preface = from_client
        self.decoder = Decoder()
        self.decoder.max_allowed_table_size = 1 << 31  # whatever the peer's SETTINGS allow
        # No header list limit: the peers enforce theirs, and what they refuse is their verdict. hpack's
        # 64 KiB default failed midway through a larger block (a 70 KiB trailer), which leaves the
        # decoder's table unusable: every later call on the connection read as not observed.
        self.decoder.max_header_list_size = sys.maxsize
        self.block: dict[int, bytearray] = {}
        # stream -> (prefix so far, payload left, the gzip measure of a message sent uncompressed under gzip)
        self.message: dict[int, tuple[bytearray, int, Any]] = {}
        self.broken = False
        self.stream = 0  # the stream of the frame being parsed: a failure names its call

    def feed(self, data: bytes) -> None:
        """Parse a chunk; a parse failure is recorded (calls then read as not observed), never
        allowed to stop the relay."""
        if self.broken:
            return
        try:
            self._feed(data)
        except Exception as e:  # noqa: BLE001  any library error: the bytes still flow
            self.broken = True
            self.conn.fail(f"{'client' if self.from_client else 'server'} side: {type(e).__name__}: {e}"
                           f"{self.conn.where(self.stream)}")

    def _feed(self, data: bytes) -> None:
        self.buf += data
        if self.preface:
            if len(self.buf) < len(PREFACE):
                return
            del self.buf[: len(PREFACE)]
            self.preface = False
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            self.stream = frame.stream_id
            if len(self.buf) < 9 + length:
                return
            frame.parse_body(memoryview(self.buf[9: 9 + length]))
            del self.buf[: 9 + length]
            self._frame(frame)

    def _frame(self, frame: Any) -> None:
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            self.block.setdefault(frame.stream_id, bytearray()).extend(frame.data)
            if "END_HEADERS" in frame.flags:
                headers = dict(self.decoder.decode(bytes(self.block.pop(frame.stream_id)), raw=True))
                self.conn.headers(frame.stream_id, self.from_client, headers)
        elif isinstance(frame, DataFrame):
            self._data(frame.stream_id, memoryview(frame.data))

    def _data(self, stream: int, data: memoryview) -> None:
        """gRPC length-prefixed messages: a 1-byte compressed flag, a 4-byte length, the payload."""
        prefix, left, sink = self.message.get(stream, (bytearray(), 0, None))
        while data:
            if left:
                skip = min(left, len(data))
                if sink is not None:
                    sink.feed(data[:skip])
                left, data = left - skip, data[skip:]
                if not left and sink is not None:
                    sink.done()
                    sink = None
                continue
            need = 5 - len(prefix)
            prefix += data[:need]
            data = data[need:]
            if len(prefix) == 5:
                left = int.from_bytes(prefix[1:5], "big")
                sink = self.conn.message(stream, self.from_client, prefix[0], left)
                if not left and sink is not None:
                    sink.done()
                    sink = None
                prefix = bytearray()
        self.message[stream] = (prefix, left, sink)


class _Connection:
    def __init__(self, observer: WireObserver) -> None:
        self.observer = observer
        self.calls: dict[int, Call] = {}
        self.broken: list[str] = []  # shared with every call of the connection, now and later

    def fail(self, error: str) -> None:
        self.broken.append(error)
        self.observer.errors.append(error)

    def where(self, stream: int) -> str:
        """The call a parse failure happened in: the failure spoils the connection's header state,
        so every later call on it reads as not observed, and each says which call it came from."""
        call = self.calls.get(stream)
        if call is None or not call.case:
            return f" (stream {stream})" if stream else ""
        return f" (in {call.case} call {call.index}, stream {stream})"

    def _call(self, stream: int) -> Call:
        return self.calls.setdefault(stream, Call(broken=self.broken))

    def headers(self, stream: int, from_client: bool, headers: dict[bytes, bytes]) -> None:
        call = self._call(stream)
        encoding = headers.get(b"grpc-encoding")
        if from_client and not call.case:
            call.case = headers.get(CASE_HEADER.encode(), b"").decode(errors="replace")
            raw_index = headers.get(CALL_HEADER.encode(), b"0")
            call.index = int(raw_index) if raw_index.isdigit() else 0
            call.request.encoding = encoding.decode() if encoding else None
            call.request_keys = [k.decode(errors="replace") for k in headers]
            self.observer.record(call)
        elif not from_client:
            if b":status" in headers:  # the response headers, not the trailers
                call.response.encoding = encoding.decode() if encoding else None
            if b"grpc-status" in headers:  # the trailers (alone, or with :status in a trailers-only answer)
                call.status = headers[b"grpc-status"].decode(errors="replace")
                call.harness_trailers = [(k.decode(errors="replace"), v) for k, v in headers.items()
                                         if k.startswith(HARNESS_PREFIX)]

    def message(self, stream: int, from_client: bool, flag: int, length: int) -> _Measure | None:
        """Record a message's prefix; for one sent uncompressed under gzip, a measure its payload is fed to."""
        call = self._call(stream)
        side = call.request if from_client else call.response
        side.flags.append(flag)
        side.lengths.append(length)
        if flag == 0 and side.encoding == "gzip":
            return _Measure(side, len(side.flags) - 1)
        return None


class _Measure:
    """The size gzip gives one message's payload, fed as its bytes pass."""

    def __init__(self, side: Side, index: int) -> None:
        self.side, self.index, self.compressor, self.size = side, index, gzip_sink(), 0

    def feed(self, data: memoryview) -> None:
        self.size += len(self.compressor.compress(data))

    def done(self) -> None:
        self.side.gzipped[self.index] = self.size + len(self.compressor.flush())


class WireObserver:
    """Relays 127.0.0.1:<port> to a server peer's address, observing every call (a context manager)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._calls: dict[tuple[str, int], Call] = {}
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self.errors: list[str] = []  # parse failures: what was not observed, and why

    def __enter__(self) -> WireObserver:
        self._acceptor = threading.Thread(target=self._accept, name="wire-observer", daemon=True)
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not on Linux
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def record(self, call: Call) -> None:
        with self._lock:
            self._calls[(call.case, call.index)] = call

    def call(self, case: str, index: int) -> Call | None:
        """What was seen of call `index` of `case` (the last attempt, if it ran more than once)."""
        with self._lock:
            return self._calls.get((case, index))

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()  # the client sees the refused connection as UNAVAILABLE
                continue
            for s in (client, server):  # a relay must not hold small frames back (Nagle + delayed ACK)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self)
            with self._lock:
                self._sockets += [client, server]
            for src, dst, from_client in ((client, server, True), (server, client, False)):
                threading.Thread(target=_relay, args=(src, dst, _Direction(conn, from_client)),
                                 name="wire-relay", daemon=True).start()


def _relay(src: socket.socket, dst: socket.socket, parser: _Direction) -> None:
    """Copy src to dst, parsing each chunk first; an end on one side ends the other's writing."""
    try:
        while data := src.recv(1 << 16):
            parser.feed(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
