"""posXYZ.PositionService: a point walking the unit circle, plus a per-session position store."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc

from python_impl.seeds._common import abort, proto_module, session

SERVICE = "posXYZ.PositionService"


def circle_point(n: int) -> tuple[float, float]:
    """Position after n 5-degree steps (float64; protobuf rounds to float32 on the wire)."""
    a = n * 5.0 * math.pi / 180.0
    return math.cos(a), math.sin(a)


@dataclass
class _Session:
    steps: int = 0
    stored: int = 0
    last: Any = None  # the Position message as received


class PositionService:
    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def _session(self, context: grpc.ServicerContext) -> _Session:
        # caller holds the lock
        return self._sessions.setdefault(session(context), _Session())

    def PositionReq(self, request, context):
        with self._lock:
            s = self._session(context)
            if request.msg == "last":
                last = s.last
            else:
                n = s.steps
                s.steps += 1
        if request.msg == "last":
            if last is None:
                abort(context, grpc.StatusCode.NOT_FOUND, "no position published in this session")
            return last
        x, y = circle_point(n)
        return self._pb2.Position(position=self._pb2.Pos(x=x, y=y, z=0), status=0, msg="character position")

    def PositionPub(self, request, context):
        copy = self._pb2.Position()
        copy.CopyFrom(request)
        with self._lock:
            s = self._session(context)
            s.last = copy
            s.stored += 1
            count = s.stored
        return self._pb2.Msg(status=count, msg="stored")


def servicer(gen: ModuleType) -> PositionService | None:
    """The seed servicer over the generated package `gen`, or None when its proto is not there."""
    mods = proto_module(gen, "position", SERVICE)
    return None if mods is None else PositionService(mods[0])
