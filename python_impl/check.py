"""The client's verdict on one call: every difference between what it produced and what its case
expects, plus the findings the generic server sent back in its trailers."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import google.rpc.error_details_pb2  # noqa: F401  registers the google.rpc detail types (Any JSON)
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import Message

from python_impl import bulk
from python_impl.compare import Tolerance, diff_messages, diff_stream, render
from python_impl.contract import (CHECKED_TRAILER, DIFFS_TRAILER, STATUS_TRAILER, Diff, Outcome, code_number,
                                  detail_any, message_class, parsed_json, wire_diffs)
from python_impl.standard import check_reflection


def check(call: Any, out: Outcome, index: int, server_reached: bool = True) -> list[Diff]:
    """Every difference between what a call produced and what its case expects. server_reached is
    False for a case whose channel must be refused: no server answers, so none confirms."""
    exp, diffs = call.expect, []

    def add(path: str, e: Any, g: Any) -> None:
        diffs.append(Diff(index, path, str(e), str(g)))

    if out.raised:  # the library raised instead of giving a status: that is the status, and its message
        add("status.code", exp["status"], f"raised {out.raised}")
    elif out.status != exp["status"] and out.status not in exp.get("status_alternatives", ()):
        # the message says why (a library's own error text is often the whole story)
        add("status.code", exp["status"], f"{out.status} {render(out.message)}" if out.message else out.status)
    if "message" in exp and out.message != exp["message"] and not out.raised:
        add("status.message", render(exp["message"]), render(out.message))
    if (early := _ended_before_deadline(call, out)) is not None:
        add("status.elapsed", f"no earlier than the call's deadline ({call.timeout_ms} ms)", f"{early:.1f} ms")
    texts = exp.get("message_contains") or []
    if texts and not any(t in out.message for t in texts) and not out.raised:  # the reason, each library's wording
        add("status.message", "containing one of " + render(" | ".join(texts)), render(out.message))
    server = getattr(call, "server", None) or {}
    # a raise is no status: nothing of the server's answer (if any) was read
    through = not out.raised and answered_by_server(call, out.status)
    # The client was to reach its own status (refuse what arrived), and the server's answer came
    # through instead: whatever excuses that, what arrived must be what the server sent.
    sent = {"responses": server.get("responses", exp.get("responses") or []),
            **{k: server.get(k, exp.get(k)) for k in ("headers", "trailers")}} if through else exp
    if sent.get("responses") is not None:
        resp_cls = empty_pb2.Empty if getattr(call, "raw", False) else message_class(call.response_type)
        expected = [bulk.parse(r, resp_cls()) for r in sent["responses"]]
        tol = Tolerance.from_json(exp.get("float_tolerance"))
        diffs += [Diff(index, p, ev, gv) for p, ev, gv in diff_stream(expected, out.responses, "responses", tol)]
    elif exp.get("responses_wire") is not None:  # what Python's library made of the server's bytes
        diffs += [Diff(index, *d) for d in wire_diffs(exp["responses_wire"], out.responses, "responses_wire")]
    if getattr(call, "protojson", False) and out.status == "OK" and out.responses and not out.raised:
        diffs += [Diff(index, *d) for d in parsed_json(out.trailers, out.responses[0], "json.response")]
    for where, got_md in (("headers", out.headers), ("trailers", out.trailers)):
        for key, values in sorted((sent.get(where) or {}).items()):
            if where == "trailers" and key.startswith("interop-"):  # the harness's own trailers
                continue
            got = [base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in got_md if k == key]
            if got != list(values):
                add(f"{where}[{render(key)}]", render(list(values)), render(got))
    if exp.get("reflection") is not None:
        diffs += check_reflection(call, out, index)
    if exp.get("details") is not None:
        diffs += _check_details(exp["details"], out, index, Tolerance.from_json(exp.get("float_tolerance")))
    if exp.get("chunks"):
        diffs += _check_chunks(exp["chunks"], out.responses, index)
    diffs += server_diffs(out.trailers, index)
    confirmed = any(k == CHECKED_TRAILER for k, _ in out.trailers)
    if (server_reached and not out.raised  # a raise ended the call before its trailers could be read
            and (server_must_confirm(call) or through and getattr(call, "checked_by_server", False))
            and not confirmed):
        # no trailer would otherwise read as "the server checked and found nothing"
        add("server.checked", "present", "missing")
    if confirmed:
        diffs += _check_sent_status(call, out, index)
    if not server_reached and confirmed:  # a refused connection that connected: its status came from a server
        add("channel.refused", "a refused handshake", "a server answered the call")
    return diffs


# How early a call may end for its deadline, as measured: grpcio sets the deadline (now + timeout)
# after the client's clock starts, and a server counts its own from when the call arrives, so only
# the conversion between clocks can make it look early; a server that reads the deadline as 10%
# shorter or more is caught.
_DEADLINE_SLACK = 0.9


def _ended_before_deadline(call: Any, out: Outcome) -> float | None:
    """The call's elapsed time when the client was to reach DEADLINE_EXCEEDED itself (the server is
    told to answer something else, late) and the call ended CANCELLED or DEADLINE_EXCEEDED before
    its deadline: no timer of either side had fired. A grpc-go server's reset at the deadline may
    beat the client's timer (a known divergence: CANCELLED), never the deadline itself."""
    server = getattr(call, "server", None) or {}
    timeout = getattr(call, "timeout_ms", None)
    if (call.expect["status"] != "DEADLINE_EXCEEDED" or not server.get("status")
            or server["status"] == "DEADLINE_EXCEEDED" or out.status not in ("CANCELLED", "DEADLINE_EXCEEDED")
            or out.elapsed_ms is None or not timeout):
        return None
    return out.elapsed_ms if out.elapsed_ms < timeout * _DEADLINE_SLACK else None


def server_must_confirm(call: Any) -> bool:
    """A generic server answers this call, so its `interop-server-checked` trailer must arrive:
    whatever the status, unless the client reaches its outcome itself. The case data says when:
    the client cancels, the method does not exist (raw), or `server.status` names what the server
    would answer instead (a deadline, a message over a receive limit). A token check always
    confirms; so does a code past 16, which no client reaches by itself: only a server sends one."""
    server = getattr(call, "server", None) or {}
    return (getattr(call, "checked_by_server", False) and not getattr(call, "raw", False)
            and getattr(call, "cancel_after_responses", None) is None
            and getattr(call, "cancel_after_requests", None) is None
            and (not server.get("status") or bool(server.get("require_token"))
                 or code_number(server["status"]) is not None))


def answered_by_server(call: Any, got: str) -> bool:
    """`server.status` replaces the expected status and the client ended with it: the server's own
    answer came through (an over-limit message or metadata a library let pass)."""
    server = getattr(call, "server", None) or {}
    status = server.get("status")
    return bool(status) and status != call.expect["status"] and not server.get("require_token") and got == status


def sent_status(call: Any) -> str:
    """The status the case tells a generic server to end the call with."""
    server = getattr(call, "server", None) or {}
    return server["status"] if server.get("status") and not server.get("require_token") else call.expect["status"]


def _check_sent_status(call: Any, out: Outcome, index: int, path: str = "server.status") -> list[Diff]:
    """The status the server says it sent (`interop-server-status`) against the one the case gives
    it. (grpcio's clients show no number past 16: both report UNKNOWN with an empty message, as
    measured, so unlike grpc-go's they cannot be held to the number the server sent: the wire
    observer does that, harness/run/observed.py.)"""
    want = sent_status(call)
    sent = [v.decode(errors="replace") if isinstance(v, bytes) else v for k, v in out.trailers if k == STATUS_TRAILER]
    if len(sent) != 1:
        return [Diff(index, path, want, f"missing: {render(sent)}")]
    return [] if sent[0] == want else [Diff(index, path, want, str(sent[0]))]


def sent_status_diffs(call: Any, trailers: list[tuple[str, str | bytes]], index: int, path: str) -> list[Diff]:
    """_check_sent_status for trailers read elsewhere (on the wire), under their own path."""
    return _check_sent_status(call, Outcome(trailers=trailers), index, path)


def server_diffs(trailers: list[tuple[str, str | bytes]], index: int) -> list[Diff]:
    """The server's findings, sent back in the `interop-server-diffs-bin` trailer."""
    out: list[Diff] = []
    for key, value in trailers:
        if key != DIFFS_TRAILER:
            continue
        try:
            items = json.loads(value.decode("utf-8") if isinstance(value, bytes) else value)
            if not isinstance(items, list):  # null or {} is not "no findings" (the Go engine agrees)
                raise TypeError(f"a JSON {type(items).__name__}, not a list")
            out += [Diff(index, str(d["path"]), str(d["expected"]), str(d["got"])) for d in items]
        except (ValueError, KeyError, TypeError):
            out.append(Diff(index, "server.diffs", "a JSON list of diffs", render(value)))
    return out


def _any_message(a: any_pb2.Any) -> Message | None:
    try:
        cls = message_class(a.TypeName())
    except KeyError:
        return None
    msg = cls()
    msg.ParseFromString(a.value)
    return msg


def _check_details(expected: list[dict[str, Any]], out: Outcome, index: int, tol: Tolerance) -> list[Diff]:
    if out.details_error:
        return [Diff(index, "details", "a google.rpc.Status matching the call's status", out.details_error)]
    want = [detail_any(d) for d in expected]
    got = list(out.details.details) if out.details is not None else []
    diffs = []
    if len(want) != len(got):
        diffs.append(Diff(index, "details.count", str(len(want)), str(len(got))))
    for i, (e, g) in enumerate(zip(want, got)):
        if e.type_url != g.type_url:
            diffs.append(Diff(index, f"details[{i}].@type", render(e.type_url), render(g.type_url)))
            continue
        em, gm = _any_message(e), _any_message(g)
        if em is None or gm is None:
            if e.value != g.value:
                diffs.append(Diff(index, f"details[{i}].value", render(e.value), render(g.value)))
            continue
        diffs += [Diff(index, p, ev, gv) for p, ev, gv in diff_messages(em, gm, f"details[{i}]", tol)]
    return diffs


def _check_chunks(spec: dict[str, Any], responses: list[Message], index: int) -> list[Diff]:
    parts = [getattr(r, spec["field"]) for r in responses]
    blob, diffs = b"".join(parts), []
    if len(blob) != spec["size"]:
        diffs.append(Diff(index, "chunks.size", str(spec["size"]), str(len(blob))))
    if hashlib.sha256(blob).hexdigest() != spec["sha256"]:
        diffs.append(Diff(index, "chunks.sha256", spec["sha256"], hashlib.sha256(blob).hexdigest()))
    size = spec.get("chunk_size")
    for i, p in enumerate(parts[:-1]):
        if size is not None and len(p) != size:
            diffs.append(Diff(index, f"chunks[{i}].size", str(size), str(len(p))))
    return diffs
