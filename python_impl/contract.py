"""The data both engines exchange (docs/peer-contract.md): the harness's header and trailer names,
a diff, a case's result, and what one call produced as Python decoded it."""

from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf import any_pb2, descriptor_pool, json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from python_impl.compare import diff_messages, render

CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]  # grpcio follows http_proxy even for localhost
CASE_HEADER = "interop-case"
CALL_HEADER = "interop-call"
SESSION_HEADER = "interop-session"
DIFFS_TRAILER = "interop-server-diffs-bin"
CHECKED_TRAILER = "interop-server-checked"  # the generic server compared this many requests
# sent with CHECKED_TRAILER: the status code the server ended the call with (CODE_<n> past 16)
STATUS_TRAILER = "interop-server-status"
# a message's protojson rendering: the client's request (metadata), the server's first response (trailer)
JSON_KEY = "interop-json-bin"


@dataclass
class Diff:
    call: int
    path: str
    expected: str
    got: str


@dataclass
class Result:
    case: str
    direction: str
    verdict: str                      # pass | fail | error
    diffs: list[Diff] = field(default_factory=list)
    duration_ms: float = 0.0
    # what the client reported, recorded and never compared: "call <i>" -> "<STATUS>: <message>"
    # for each call of a case with a channel that did not end OK (both libraries' wording)
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.notes:
            del out["notes"]
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Result:
        return cls(case=raw["case"], direction=raw["direction"], verdict=raw["verdict"],
                   diffs=[Diff(**d) for d in raw.get("diffs") or []], duration_ms=raw.get("duration_ms", 0.0),
                   notes=dict(raw.get("notes") or {}))


@dataclass
class Outcome:
    """What one call produced, as Python decoded it."""
    status: str = "OK"
    message: str = ""
    responses: list[Message] = field(default_factory=list)
    headers: list[tuple[str, str | bytes]] = field(default_factory=list)
    trailers: list[tuple[str, str | bytes]] = field(default_factory=list)
    details: Any = None               # google.rpc.Status from grpc-status-details-bin, or None
    details_error: str = ""           # grpc_status refused the details (code/message mismatch)
    # grpcio raised this instead of ending the call with a status ("<type>: <text>"): the call's
    # outcome in place of status and message; nothing else of the call was read
    raised: str = ""
    # from just before the call started to its status: a reset that ends a call for its deadline
    # (a known divergence) cannot come before the deadline (python_impl/check.py); None: not measured
    elapsed_ms: float | None = None


def metadata_pairs(md: dict[str, list[str]]) -> list[tuple[str, str | bytes]]:
    """Case metadata to grpcio pairs: `-bin` values travel as base64 in case data."""
    return [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, vs in md.items() for v in vs]


def message_class(name: str) -> type[Message]:
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))


def detail_any(raw: dict[str, Any]) -> any_pb2.Any:
    """One rich error detail of a case: protobuf JSON, or `{"@type": URL, "@encoded": base64}` for a
    type no peer can resolve (its URL and bytes must arrive as they were sent)."""
    if set(raw) == {"@type", "@encoded"}:
        return any_pb2.Any(type_url=raw["@type"], value=base64.b64decode(raw["@encoded"]))
    return json_format.ParseDict(raw, any_pb2.Any())


def protojson_of(msg: Message) -> bytes:
    """msg as protojson with the library's defaults (what a team logging messages writes), UTF-8; a
    rendering error is the rendering's outcome, for the receiver to report (as the Go engine does)."""
    try:
        return json_format.MessageToJson(msg, indent=None).encode("utf-8")  # one line, as protobuf-go writes
    except Exception as e:  # noqa: BLE001  json_format raises several types for values it cannot write
        return f"error: {type(e).__name__}: {e}".encode("utf-8")


def parsed_json(metadata: Any, wire: Message, path: str) -> list[tuple[str, str, str]]:
    """The other side's protojson rendering of a message (JSON_KEY in metadata), parsed by Python,
    against the message Python decoded from the wire: (path, expected, got) for each difference.
    (protojson has no form for unknown fields: a protojson call carries none, the loader sees to it.)"""
    values = [v for k, v in metadata or () if k == JSON_KEY]
    if len(values) != 1:
        return [(path, f"one protojson rendering in {JSON_KEY}", str(len(values)))]
    value = values[0]
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    parsed = type(wire)()
    try:
        json_format.Parse(text, parsed)
    except (json_format.ParseError, ValueError, TypeError, KeyError, RecursionError) as e:
        return [(path, "the other side's protojson parses", f"{render(text)}: {e}")]
    return diff_messages(wire, parsed, path)


def wire_diffs(expected: list[str], got: list[Message], path: str) -> list[tuple[str, str, str]]:
    """Each message Python parsed against the expected bytes (base64) parsed by Python too: field by
    field, unknown fields included, in wire order (bytes are not compared: libraries serialize the
    same message in different orders, protobuf-go its extensions first). The expected bytes are
    another library's serialization of what it parsed, so a field it dropped or changed shows here.
    (path, expected, got) for each difference."""
    want = [base64.b64decode(v) for v in expected]
    out = [] if len(want) == len(got) else [(f"{path}.count", str(len(want)), str(len(got)))]
    for i, (e, g) in enumerate(zip(want, got)):
        try:
            parsed = type(g).FromString(e)
        except DecodeError as err:
            out.append((f"{path}[{i}]", f"bytes Python parses: {render(e)}", f"not parsed: {err}"))
            continue
        out += diff_messages(parsed, g, f"{path}[{i}]")
    return out


_CODE_NUMBER = re.compile(r"CODE_([0-9]+)")


def code_number(name: str) -> int | None:
    """The number of a status code outside gRPC's 0-16, written `CODE_<n>` (as the Go engine names
    it); None for any other name."""
    m = _CODE_NUMBER.fullmatch(name)
    return int(m.group(1)) if m and 16 < int(m.group(1)) < 2**32 else None


def unpinned_responses(streaming: str, expect: dict[str, Any]) -> str | None:
    """Why a call's expectations leave what comes back unchecked, or None. A call that may end OK,
    or that streams responses before its error, must say what comes back (expect.responses, a
    list; expect.chunks; expect.reflection): unpinned, five garbage responses gave no diff. The
    harness's loader, both clients and both generic servers refuse such a call (the Go engine's
    validateCall says the same)."""
    if any(expect.get(k) is not None for k in ("responses", "chunks", "reflection", "responses_wire")):
        return None
    status = expect.get("status") or "OK"
    if status == "OK" or "OK" in (expect.get("status_alternatives") or []):
        return ("the call may end OK and nothing says what comes back: give expect.responses "
                "(a list; [] for none), expect.chunks or expect.reflection")
    if streaming in ("server_stream", "bidi"):
        return (f"a {streaming} call streams responses before its {status}: say how many with expect.responses "
                "(a list; [] for none) or expect.chunks")
    return None
