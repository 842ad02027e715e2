"""The frame log of one raw connection: every frame the raw peer sent and received, one readable
line each, so that a result (and its known divergence) shows the frames that caused it.

The bytes are parsed with hyperframe and the header blocks with hpack, as the wire observer does
(harness/engines/wire.py): h2 hands out bytes, never the frames it made of them.
"""

from __future__ import annotations

import sys
import threading

from hpack import Decoder
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_LINES = 400  # a PING flood is bounded, but a log must never grow without end either
ERROR_CODES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
               8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
               12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}


class _Reader:
    """One direction of the connection: frames out of a byte stream, header blocks decoded."""

    def __init__(self, label: str, preface: bool) -> None:
        self.label, self.preface = label, preface
        self.buf = bytearray()
        self.decoder = Decoder()
        self.decoder.max_header_list_size = sys.maxsize  # the peers enforce their limits, not the log
        self.block = bytearray()
        self.block_head = ""

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        if self.preface:
            if len(self.buf) < len(PREFACE):
                return []
            del self.buf[:len(PREFACE)]
            self.preface = False
        out = []
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                break
            frame.parse_body(memoryview(self.buf[9:9 + length]))
            del self.buf[:9 + length]
            line = self._describe(frame, length)
            if line is not None:
                out.append(f"{self.label} {line}")
        return out

    def _describe(self, frame: Frame, length: int) -> str | None:
        name = _NAMES.get(type(frame), type(frame).__name__.removesuffix("Frame").upper())
        flags = f" [{','.join(sorted(frame.flags))}]" if frame.flags else ""
        head = f"{name} stream={frame.stream_id}{flags}"
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            if isinstance(frame, HeadersFrame):
                self.block, self.block_head = bytearray(), head
            self.block += frame.data
            if "END_HEADERS" not in frame.flags:
                return None
            fields = self.decoder.decode(bytes(self.block), raw=True)
            shown = " ".join(f"{k.decode(errors='replace')}={v.decode(errors='replace')!s}" for k, v in fields)
            return f"{self.block_head} {shown}"
        if isinstance(frame, DataFrame):
            pad = f" padding={frame.pad_length}" if "PADDED" in frame.flags else ""
            return f"{head} length={len(frame.data)}{pad} data={bytes(frame.data[:16]).hex()}"
        if isinstance(frame, RstStreamFrame):
            return f"{head} {ERROR_CODES.get(frame.error_code, frame.error_code)}"
        if isinstance(frame, GoAwayFrame):
            return (f"{head} last_stream={frame.last_stream_id} {ERROR_CODES.get(frame.error_code, frame.error_code)}"
                    f" debug={bytes(frame.additional_data)!r}")
        if isinstance(frame, SettingsFrame):
            return f"{head} {dict(sorted(frame.settings.items()))}" if frame.settings else head
        if isinstance(frame, PingFrame):
            return f"{head} {bytes(frame.opaque_data).hex()}"
        if isinstance(frame, WindowUpdateFrame):
            return f"{head} +{frame.window_increment}"
        return f"{head} length={length}"


_NAMES = {GoAwayFrame: "GOAWAY", RstStreamFrame: "RST_STREAM", WindowUpdateFrame: "WINDOW_UPDATE"}


class FrameLog:
    """Both directions of one connection as the raw peer saw them: `sent` and `got` lines. Thread
    safe: a connection's reader and writer may be different threads."""

    def __init__(self, raw_is_server: bool) -> None:
        self.raw_is_server = raw_is_server
        # the client's bytes start with the connection preface
        self._sent = _Reader("sent", preface=not raw_is_server)
        self._got = _Reader("got ", preface=raw_is_server)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def connection(self) -> FrameLog:
        """The log of one more connection, into the same lines: its own frame readers, since every
        connection starts with its own preface and its own header compression state."""
        other = FrameLog(self.raw_is_server)
        other.lines, other._lock = self.lines, self._lock
        return other

    def sent(self, data: bytes) -> None:
        self._add(self._sent.feed(data))

    def got(self, data: bytes) -> None:
        self._add(self._got.feed(data))

    def note(self, text: str) -> None:
        """Something that is no frame: the connection closed, a read timed out."""
        self._add([f"---- {text}"])

    def _add(self, lines: list[str]) -> None:
        with self._lock:
            room = MAX_LINES - len(self.lines)
            if room > 0:
                self.lines += lines[:room]
                if len(lines) > room:
                    self.lines.append(f"…  (log cut at {MAX_LINES} lines)")

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)
