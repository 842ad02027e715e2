"""The grpc.aio flavour's handling of grpc.aio's write race (grpc/grpc#36066): recognised only when
its own write failed, retried, and left out of checks 1 and 2 only when it persists. No server."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from harness.probe import checks, clients
from harness.probe.schema import Connection


class _FailingWrites:
    def done(self) -> bool:
        return False

    async def write(self, _: bytes) -> None:
        raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                   details=clients.AIO_RACE)

    async def done_writing(self) -> None:
        raise AssertionError("no half-close after a failed write")


def test_a_failed_write_is_reported_not_raised() -> None:
    assert asyncio.run(clients._send(_FailingWrites(), [b"x"])) is True


def _race(write_failed: bool) -> dict[str, Any]:
    return {"id": "c1", "code": 13, "message": clients.AIO_RACE, "responses": [], "write_failed": write_failed}


@pytest.fixture()
def aio() -> Any:
    client = clients.AioClient(Connection("127.0.0.1:1"))  # never called: _call is replaced
    yield client
    client.close()


def test_the_race_is_retried_then_marked(aio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []

    async def always_races(pc: dict[str, Any]) -> dict[str, Any]:
        tries.append(1)
        return _race(True)

    monkeypatch.setattr(aio, "_call", always_races)
    out = aio.call({"id": "c1"})
    assert len(tries) == clients.AIO_RACE_TRIES and "grpc/grpc#36066" in out["known_race"]
    x = checks.Exchange("a.B/C", {"cancel_after_responses": None}, {"pyaio": out, "py": {**out, "code": 5, "known_race": None}})
    assert checks.not_a_server_error(x) is None and checks.clients_agree(x) is None


def test_internal_without_a_failed_write_is_the_servers(aio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tries: list[int] = []

    async def server_internal(pc: dict[str, Any]) -> dict[str, Any]:
        tries.append(1)
        return _race(False)

    monkeypatch.setattr(aio, "_call", server_internal)
    out = aio.call({"id": "c1"})
    assert len(tries) == 1 and "known_race" not in out
    assert "INTERNAL" in checks.not_a_server_error(checks.Exchange("a.B/C", {}, {"pyaio": out}))
