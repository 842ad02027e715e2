"""The data both engines exchange (docs/peer-contract.md): the harness's header and trailer names,
a diff, a case's result, and what one call produced as Python decoded it."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]  # grpcio follows http_proxy even for localhost
CASE_HEADER = "interop-case"
CALL_HEADER = "interop-call"
SESSION_HEADER = "interop-session"
DIFFS_TRAILER = "interop-server-diffs-bin"
CHECKED_TRAILER = "interop-server-checked"  # the generic server compared this many requests


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Result:
        return cls(case=raw["case"], direction=raw["direction"], verdict=raw["verdict"],
                   diffs=[Diff(**d) for d in raw.get("diffs") or []], duration_ms=raw.get("duration_ms", 0.0))


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


def metadata_pairs(md: dict[str, list[str]]) -> list[tuple[str, str | bytes]]:
    """Case metadata to grpcio pairs: `-bin` values travel as base64 in case data."""
    return [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, vs in md.items() for v in vs]


def message_class(name: str) -> type[Message]:
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))
