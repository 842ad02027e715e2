"""The Python client flavours of the probe: grpcio sync (`PyClient`) and grpc.aio (`AioClient`).

Both follow the client-flavour contract (docs/probe.md): `call(probe_call) -> outcome`, requests and
responses as raw bytes (no serializer: grpcio passes bytes through when none is given), so every
flavour, Go's included, sends identical bytes; `decoded` is Python's own decode of each response."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from typing import Any, Iterable

import grpc
import grpc.aio
from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass

from harness.probe.schema import Connection

DETAILS_KEY = "grpc-status-details-bin"
NOT_MADE = -1  # the contract's code when the call was not made as asked (grpcio raised instead)


def _call_args(conn: Connection, pc: dict[str, Any]) -> tuple[str, str, list[bytes], dict[str, Any]]:
    """A probe call's method path, streaming mode, request bytes, and the call's keywords (its
    deadline and metadata), the same for the sync and the aio client."""
    kw = {"timeout": pc["timeout_ms"] / 1000, "metadata": call_metadata(conn, pc.get("metadata") or {})}
    return "/" + pc["method"], pc["streaming"], [base64.b64decode(r) for r in pc["requests"]], kw


def call_metadata(conn: Connection, md: dict[str, list[str]]) -> list[tuple[str, Any]]:
    """A probe call's metadata for grpcio (-bin values from base64), plus the connection's token."""
    out: list[tuple[str, Any]] = []
    for k, values in md.items():
        out += [(k, base64.b64decode(v) if k.endswith("-bin") else v) for v in values]
    return out + conn.metadata()


def metadata_json(md: Iterable[Any] | None) -> dict[str, list[str]]:
    """grpcio metadata as the contract's {"key": ["value", ...]} (-bin values base64)."""
    out: dict[str, list[str]] = {}
    for k, v in md or ():
        text = base64.b64encode(v).decode() if isinstance(v, bytes) else v
        out.setdefault(k, []).append(text)
    return out


def decode(pool: Any, method: str, responses: list[bytes]) -> list[dict[str, Any]] | None:
    """Each response decoded with the schema's output type: its protojson and whether unknown fields
    (anywhere in it) came along; None when the schema has no such method."""
    try:
        output = pool.FindMethodByName(method.replace("/", ".")).output_type
    except KeyError:
        return None
    cls = GetMessageClass(output)
    out: list[dict[str, Any]] = []
    for raw in responses:
        try:
            msg = cls.FromString(raw)
        except Exception as e:  # noqa: BLE001 - a response that does not parse is what check 3 reports
            out.append({"json": None, "unknown_fields": False, "error": f"does not parse as {output.full_name}: {e}"})
            continue
        known = cls()
        known.CopyFrom(msg)
        known.DiscardUnknownFields()  # recursive: unknown fields at any depth change the size
        unknown = known.ByteSize() != msg.ByteSize()
        try:
            text = json_format.MessageToDict(msg, descriptor_pool=pool)
        except Exception as e:  # noqa: BLE001 - an Any of a type the protos lack: reported, as Go's protojson does
            out.append({"json": None, "unknown_fields": unknown, "error": f"protojson: {e}"})
            continue
        out.append({"json": text, "unknown_fields": unknown})
    return out


def _outcome(pc: dict[str, Any], t0: float, code: int, message: str, responses: list[bytes],
             headers: Any, trailers: Any, error: str | None, pool: Any) -> dict[str, Any]:
    trail = metadata_json(trailers)
    details = trail.pop(DETAILS_KEY, [None])[0]
    return {"id": pc["id"], "code": code, "message": message, "details": details,
            "responses": [base64.b64encode(r).decode() for r in responses],
            "headers": metadata_json(headers), "trailers": trail,
            "elapsed_ms": round((time.monotonic() - t0) * 1000, 1), "error": error,
            "decoded": decode(pool, pc["method"], responses) if pool is not None else None}


class PyClient:
    """grpcio's sync client: one channel for all calls."""
    name = "py"

    def __init__(self, conn: Connection, pool: Any = None) -> None:
        self.conn, self.pool = conn, pool
        self.channel = conn.channel()

    def call(self, pc: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        method, mode, reqs, kw = _call_args(self.conn, pc)
        responses: list[bytes] = []
        call: Any = None
        try:
            if mode in ("unary", "client_stream"):
                stub = (self.channel.unary_unary(method) if mode == "unary" else self.channel.stream_unary(method))
                resp, call = stub.with_call(reqs[0] if mode == "unary" else iter(reqs), **kw)
                responses.append(resp)
            else:
                call = (self.channel.unary_stream(method)(reqs[0], **kw) if mode == "server_stream"
                        else self.channel.stream_stream(method)(iter(reqs), **kw))
                for resp in call:
                    responses.append(resp)
                    if pc.get("cancel_after_responses") is not None and len(responses) >= pc["cancel_after_responses"]:
                        call.cancel()
            return _outcome(pc, t0, call.code().value[0], call.details() or "", responses,
                            call.initial_metadata(), call.trailing_metadata(), None, self.pool)
        except grpc.RpcError as e:
            return _outcome(pc, t0, e.code().value[0], e.details() or "", responses, e.initial_metadata(),
                            e.trailing_metadata(), None, self.pool)
        except (ValueError, KeyError, TypeError) as e:  # grpcio raised instead of ending the call
            return _outcome(pc, t0, NOT_MADE, "", responses, None, None, f"raised {type(e).__name__}: {e}", self.pool)

    def close(self) -> None:
        self.channel.close()


# grpc.aio's client race (grpc/grpc#36066; harness/run/known_divergences.yaml): a write in flight when the
# server ends a client- or bidi-streaming call fails inside Core, and grpc.aio may replace the server's
# status with this one. It is recognised only when our own write failed, and the call is then sent again.
AIO_RACE = "Internal error from Core"
AIO_RACE_TRIES = 3


async def _send(call: Any, reqs: list[bytes]) -> bool:
    """Write the request stream, then half-close. Written one by one, not from a request iterator: when
    the server ends the call first (UNIMPLEMENTED, an early status), grpc.aio's iterator consumer turns
    the failed write into INTERNAL "Internal error from Core" as the call's status. A write that races
    the server's status raises that same INTERNAL, but the call itself ends with the server's status,
    which is what the caller reads next. True when a write failed so."""
    try:
        for r in reqs:
            if call.done():
                return False
            await call.write(r)
        if not call.done():
            await call.done_writing()
    except asyncio.InvalidStateError:  # the call ended meanwhile: its status says how
        return False
    except grpc.aio.AioRpcError:
        return True
    return False


class AioClient:
    """grpc.aio's client: its own event loop in a thread, one channel; `call` blocks until done."""
    name = "pyaio"

    def __init__(self, conn: Connection, pool: Any = None) -> None:
        self.conn, self.pool = conn, pool
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="probe-aio", daemon=True)
        self.thread.start()
        self.channel = self._run(self._open())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _open(self) -> grpc.aio.Channel:
        c = self.conn
        return (grpc.aio.secure_channel(c.target, c.credentials(), c.channel_options()) if c.tls
                else grpc.aio.insecure_channel(c.target, c.channel_options()))

    def call(self, pc: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(AIO_RACE_TRIES):
            out = self._run(self._call(pc))
            if not out.pop("write_failed", False) or out["code"] != 13 or out["message"] != AIO_RACE:
                return out
        out["known_race"] = (f"grpc.aio write race (grpc/grpc#36066) in {AIO_RACE_TRIES} tries: the server's status "
                             f"was replaced by INTERNAL {AIO_RACE!r}")
        return out

    async def _call(self, pc: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        method, mode, reqs, kw = _call_args(self.conn, pc)
        responses: list[bytes] = []
        call: Any = None
        write_failed = False
        try:
            if mode == "unary":
                call = self.channel.unary_unary(method)(reqs[0], **kw)
                responses.append(await call)
            elif mode == "client_stream":
                call = self.channel.stream_unary(method)(**kw)
                write_failed = await _send(call, reqs)
                responses.append(await call)
            else:
                if mode == "server_stream":
                    call = self.channel.unary_stream(method)(reqs[0], **kw)
                else:
                    call = self.channel.stream_stream(method)(**kw)
                    write_failed = await _send(call, reqs)
                async for resp in call:
                    responses.append(resp)
                    if pc.get("cancel_after_responses") is not None and len(responses) >= pc["cancel_after_responses"]:
                        call.cancel()
                        break
            code = await call.code()
            out = _outcome(pc, t0, code.value[0], await call.details() or "", responses,
                           await call.initial_metadata(), await call.trailing_metadata(), None, self.pool)
        except grpc.aio.AioRpcError as e:
            out = _outcome(pc, t0, e.code().value[0], e.details() or "", responses, e.initial_metadata(),
                           e.trailing_metadata(), None, self.pool)
        except asyncio.CancelledError:
            out = _outcome(pc, t0, grpc.StatusCode.CANCELLED.value[0], "", responses, None, None, None, self.pool)
        except (ValueError, KeyError, TypeError) as e:  # grpcio raised instead of ending the call
            out = _outcome(pc, t0, NOT_MADE, "", responses, None, None, f"raised {type(e).__name__}: {e}", self.pool)
        out["write_failed"] = write_failed
        return out

    def close(self) -> None:
        self._run(self.channel.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
