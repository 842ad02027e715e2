"""users.Users: CRC-32 user ids, and request metadata echoed back as response headers."""

from __future__ import annotations

import zlib
from types import ModuleType

import grpc

from python_impl.seeds._common import abort, proto_module

SERVICE = "users.Users"

# Transport and harness keys: not the caller's own metadata, so not echoed.
_NOT_ECHOED = frozenset({"user-agent", "content-type", "te"})


def user_id(username: str) -> int:
    return zlib.crc32(username.encode("utf-8"))


def echo_metadata(metadata) -> list[tuple[str, str | bytes]]:
    """`echo-<key>` for every caller key, in order; -bin values stay bytes as grpcio hands them over."""
    out = []
    for key, value in metadata:
        if key.startswith(("grpc-", ":", "interop-")) or key in _NOT_ECHOED:
            continue
        out.append((f"echo-{key}", value))
    return out


class Users:
    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2

    def CreateUser(self, request, context):
        # Headers go out before any validation so failed calls echo too (the server did read them).
        context.send_initial_metadata(echo_metadata(context.invocation_metadata() or ()))
        if not request.username:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, "username must not be empty")
        user = self._pb2.User(username=request.username, user_id=user_id(request.username))
        return self._pb2.CreateUserResult(user=user)

    def GetUsers(self, request, context):
        for u in request.user:
            yield self._pb2.GetUsersResult(user=u)


def servicer(gen: ModuleType) -> Users | None:
    """The seed servicer over the generated package `gen`, or None when its proto is not there."""
    mods = proto_module(gen, "users", SERVICE)
    return None if mods is None else Users(mods[0])
