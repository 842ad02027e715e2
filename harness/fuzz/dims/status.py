"""Dimension `status`: how a call ends in error.

Drawn: every code 1-16 and numbers past 16 up to 2^32-1 (`CODE_<n>`); messages of any Unicode text, with the percent-encoding edges of grpc-message
(`%`, `%2`, `%25`, `%zz`, a lone byte's escape, CR LF, leading and trailing spaces, NUL); rich
details (grpc-status-details-bin) of any shape: 0-3 of every google.rpc detail type, each drawn
from its descriptor, and details of a type URL nobody knows, carrying any bytes. Server streams
send 0-3 responses before the error.

A code past 16 goes out with no message and no details: a receiver reads the number as UNKNOWN with
an empty message (grpcio; grpc-go keeps the number, and a grpcio server cannot send one at all),
the measured known divergences of the `protocol/code_*` cases, which cover the fuzz cases too.
Codes past grpcio's range are drawn too: 2^31-1 (tag code_int32_max) and 2^31 to 2^32-1 (tag
code_past_int32). grpcio's clients refuse them ("Error parsing 'grpc-status' metadata", INTERNAL)
and a later call on that connection failed the same way (measured), so these cases run on a
connection of their own (channel(): `channel.isolated`); grpc-go's client keeps 2^31-1 and refuses
2^31 and up (strconv.ParseInt): known divergences, fixed cases in tests/data/fuzz_gap_cases.yaml.

Not drawn (measured, grpcio 1.85 and grpc-go): messages that are not UTF-8 (a case's message is text, and neither server API takes
bytes for it); a message or details past grpcio's soft metadata limit (the `long_status_message`
protocol case); OK with a message (no server API sends one).
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import google.rpc.error_details_pb2 as error_details
from google.rpc import status_pb2
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import assume, strategies as st

from harness.cases.model import STATUS_CODES, Call
from harness.fuzz import strategies
from harness.fuzz.dims.common import exchange
from harness.fuzz.dims.metadata import BLOCK_BUDGET
from python_impl.contract import detail_any

ERROR_CODES = STATUS_CODES[1:]
MAX_CODE = 2**31 - 2  # the largest both clients read (see above)
INT32_MAX = 2**31 - 1  # grpcio's clients refuse it and anything above
UINT32_MAX = 2**32 - 1  # the largest code grpc-go's server sends (a uint32)
ISOLATED = {"isolated": "grpc-status-out-of-range"}  # the connection these codes break
PERCENT_EDGES = ("%", "%2", "%25", "%zz", "%%41", "%C3%A9", "100%", " ", " lead", "trail ", "\r\n", "\x00",
                 "\x7f", "~", "é", "\U0001f600")
DETAIL_TYPES = tuple(sorted(error_details.DESCRIPTOR.message_types_by_name.values(), key=lambda d: d.full_name))

messages = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(PERCENT_EDGES) | st.text(max_size=3), max_size=6).map("".join),
    st.text(min_size=200, max_size=1500),
)


def _detail(desc: Any) -> st.SearchStrategy[dict[str, Any]]:
    def as_any(value: dict[str, Any]) -> dict[str, Any]:
        return {"@type": f"type.googleapis.com/{desc.full_name}", **value}
    return strategies.message_json(desc, ()).map(as_any)


unknown_detail = st.builds(
    lambda name, raw: {"@type": f"type.googleapis.com/fuzz.unknown.v1.{name}", "@encoded": base64.b64encode(raw).decode()},
    st.from_regex(r"[A-Z][A-Za-z0-9]{0,12}", fullmatch=True), st.binary(max_size=40))
details = st.lists(st.one_of(st.sampled_from(DETAIL_TYPES).flatmap(_detail), unknown_detail), max_size=3)


def wire_size(message: str, found: list[dict[str, Any]]) -> int:
    """Bytes of grpc-message (percent-encoded) and grpc-status-details-bin (a google.rpc.Status,
    base64): with the rest of the trailers they must stay under grpcio's soft limit."""
    printable = "".join(chr(c) for c in range(0x20, 0x7f) if c != 0x25)
    encoded = urllib.parse.quote(message.encode(), safe=printable)
    rich = status_pb2.Status(code=2, message=message, details=[detail_any(d) for d in found])
    return len(encoded) + (4 * len(rich.SerializeToString()) // 3 if found else 0)


@st.composite
def _calls(draw: Any, m: MethodDescriptor) -> Call:
    if draw(st.integers(0, 4)) == 4:  # one in five: a code past 16 (drawn last: shrinks to a known code)
        code = draw(st.one_of(st.integers(17, 255), st.integers(256, MAX_CODE), st.sampled_from([17, MAX_CODE]),
                              st.sampled_from([INT32_MAX, INT32_MAX + 1, UINT32_MAX]),
                              st.integers(INT32_MAX + 1, UINT32_MAX)))
        # a receiver reads it as UNKNOWN, with no message (the protocol/code_* divergences say what differs)
        return draw(exchange(m, responses=False, expect={"status": "UNKNOWN", "message": ""},
                             server={"status": f"CODE_{code}"}))
    code = draw(st.sampled_from(ERROR_CODES))
    message = draw(messages)
    found = draw(details)
    assume(wire_size(message, found) <= BLOCK_BUDGET)
    expect: dict[str, Any] = {"status": code, "message": message}
    if found:
        expect["details"] = found
    return draw(exchange(m, responses=False, expect=expect))


def _code(call: Call) -> int | None:
    """The number of a code past 16 the server sends (None: a known code)."""
    name = (call.server or {}).get("status", "")
    return int(name.removeprefix("CODE_")) if name.startswith("CODE_") else None


def tag(call: Call) -> str:
    """Codes past 16 are named (`…/fuzz/status/code_past_16/…`, `code_int32_max`, `code_past_int32`):
    their known divergences match them."""
    code = _code(call)
    if code is None:
        return ""
    return "code_past_16" if code < INT32_MAX else "code_int32_max" if code == INT32_MAX else "code_past_int32"


def channel(call: Call) -> dict[str, Any] | None:
    """A code grpcio's client refuses breaks its connection: such a case runs on its own."""
    code = _code(call)
    return dict(ISOLATED) if code is not None and code >= INT32_MAX else None


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return _calls(m)
