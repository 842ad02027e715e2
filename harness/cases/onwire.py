"""What of a call only the wire shows a Python peer, so harness/run/observed.py checks it there:
metadata gRPC forbids a client to send (a call that must never reach the wire), keys the server
must not receive (`server.metadata` with no values: a grpcio client given grpc-status as metadata
loses the answer), and a status code past 16 (grpcio's clients read any such number as UNKNOWN).
Over TLS the wire cannot be read, so such a call is not copied there (harness/cases/channels.py)."""

from __future__ import annotations

import re
from typing import Any

from python_impl.check import sent_status
from python_impl.contract import code_number

# gRPC's metadata rules (PROTOCOL-HTTP2.md): a key is lowercase ASCII letters, digits, "-", "_" and
# ".", an ASCII value printable characters and spaces; both libraries refuse anything else unsent
_KEY = re.compile(r"[0-9a-z_.-]+")
_ASCII_VALUE = re.compile(r"[\x20-\x7e]*")


def forbidden_metadata(call: Any) -> list[str]:
    """The keys of the call's metadata that gRPC forbids a client to send (or whose value it does)."""
    return [k for k, values in (call.metadata or {}).items()
            if not _KEY.fullmatch(k) or not k.endswith("-bin") and not all(_ASCII_VALUE.fullmatch(v) for v in values)]


def unreceived_keys(call: Any) -> list[str]:
    """server.metadata keys with no values: the server must not receive them as metadata."""
    return [k for k, v in ((call.server or {}).get("metadata") or {}).items() if v == []]


def code_past_16(call: Any) -> int | None:
    """The number of a status code past 16 the case tells the server to send (CODE_<n>), else None."""
    return code_number(sent_status(call))


def read_by_python_client(call: Any) -> bool:
    """Some part of the call's outcome a Python client can only learn on the wire."""
    return bool(forbidden_metadata(call) or unreceived_keys(call)) or code_past_16(call) is not None
