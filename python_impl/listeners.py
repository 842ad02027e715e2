"""The connection listeners of a Python server peer (python_impl/connection.py says what each does):
each a server of its own, serving the same services as the plaintext one, with its connection
policy, and the checks every connection listener makes (a new connection where the case asks for
one; a call held while the connection ages; a restart).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from types import ModuleType
from typing import Any, Callable

import grpc

from python_impl.connection import (HOLD_KEY, LISTENER_TRAILER, LISTENERS, NEW_CONNECTION_KEY, RESTART_GRACE_S,
                                    RESTART_KEY, SERVER_OPTIONS)
from python_impl.contract import SESSION_HEADER
from python_impl.server import new_server, new_server_aio

log = logging.getLogger("python_impl.connection")

# ---------------------------------------------------------------- server side

def _md(details: Any) -> dict[str, str]:
    return {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}


class _Connections:
    """The peer address of each session's last call, to tell whether a call came on a new connection."""

    def __init__(self) -> None:
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def refusal(self, md: dict[str, str], peer: str) -> str | None:
        """Why this call must be refused (it asked for a new connection and came on the old one)."""
        session = md.get(SESSION_HEADER, "")
        with self._lock:
            before, self._last[session] = self._last.get(session), peer
        if md.get(NEW_CONNECTION_KEY) == "1" and before == peer:
            return (f"case {md.get('interop-case', '?')} call {md.get('interop-call', '?')} came on the same "
                    f"connection as the call before it ({peer}): the server's GOAWAY or restart did not "
                    "replace the connection")
        return None


def _ms(md: dict[str, str], key: str) -> int | None:
    value = md.get(key)
    return int(value) if value is not None and value.isdigit() else None


def _hold(context: grpc.ServicerContext, ms: int) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end and context.is_active():  # a cancelled call is not held
        time.sleep(0.02)


def _wrap(handler: Any, wrap: Callable[[Callable], Callable]) -> Any:
    """The method handler with its one behaviour wrapped (serializers and streaming kept)."""
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return handler._replace(**{kind: wrap(behaviour)})
    return handler


class _SyncPolicy(grpc.ServerInterceptor):
    def __init__(self, listener: _SyncListener) -> None:
        self.listener, self.connections = listener, _Connections()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        md = _md(details)

        def wrap(behaviour: Callable) -> Callable:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                context.set_trailing_metadata(((LISTENER_TRAILER, self.listener.name),))
                why = self.connections.refusal(md, context.peer())
                if why:
                    log.info("[%s] %s", md.get("interop-case", "-"), why)
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)
                ms = _ms(md, RESTART_KEY)
                if ms is not None and self.listener.name == "restart":
                    # goes away now (GOAWAY): this call still ends normally, the next one needs a new
                    # connection, which can only come once the server listens again
                    self.listener.restart(ms, md.get("interop-case", "-"))
                hold = _ms(md, HOLD_KEY)
                if hold:
                    _hold(context, hold)
                return behaviour(request, context)
            return run
        return _wrap(handler, wrap)


class _SyncListener:
    """One listener's sync server; `restart` replaces it with a fresh one on the same port."""

    def __init__(self, name: str, make: Callable[..., tuple[grpc.Server, list[str]]], address: str) -> None:
        self.name, self._make, self.address = name, make, address
        self.port = 0
        self.server: grpc.Server | None = None
        self._policy = _SyncPolicy(self)
        self._lock = threading.Lock()
        self._restarting = False
        self._closed = False

    def start(self) -> int:
        server, _ = self._make(options=SERVER_OPTIONS[self.name], interceptors=[self._policy])
        host = self.address.rsplit(":", 1)[0]
        port = server.add_insecure_port(f"{host}:{self.port}" if self.port else self.address)
        if port == 0:
            raise OSError(f"listener {self.name}: cannot bind {self.address}")
        server.start()
        self.server, self.port = server, port
        return port

    def restart(self, ms: int, case: str) -> None:
        """Go away now (calls in flight still end), close, and listen again on the same port after ms."""
        with self._lock:
            if self._restarting or self._closed or self.server is None:
                return
            self._restarting = True
            # stop() starts the shutdown (GOAWAY, no new calls) before it returns; the event is set
            # once the calls in flight have ended
            stopped = self.server.stop(grace=RESTART_GRACE_S)
        threading.Thread(target=self._restart, args=(stopped, ms, case), name="interop-restart", daemon=True).start()

    def _restart(self, stopped: threading.Event, ms: int, case: str) -> None:
        try:
            stopped.wait(RESTART_GRACE_S + 5)
            log.info("[%s] listener restart: stopped, listening again on port %d in %d ms", case, self.port, ms)
            time.sleep(ms / 1000)
            with self._lock:
                if self._closed:
                    return
                self.start()
            log.info("[%s] listener restart: listening again on port %d", case, self.port)
        finally:
            with self._lock:
                self._restarting = False

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            server = self.server
        if server is not None:
            server.stop(grace=1).wait(5)


class ListenerServers:
    """The connection listeners of a sync Python server peer, each a server of its own."""

    def __init__(self, gen: ModuleType, catalogue: Any, listeners: dict[str, str]) -> None:
        unknown = sorted(set(listeners) - set(LISTENERS))
        if unknown:
            raise ValueError(f"unknown listener(s) {unknown}; this module serves {', '.join(LISTENERS)}")
        make = lambda **kw: new_server(gen, catalogue, **kw)  # noqa: E731
        self._listeners = [_SyncListener(name, make, addr) for name, addr in listeners.items()]

    def start(self) -> dict[str, int]:
        try:
            return {lst.name: lst.start() for lst in self._listeners}
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for lst in self._listeners:
            lst.stop()


# ---------------------------------------------------------------- grpc.aio

class _AioPolicy(grpc.aio.ServerInterceptor):
    def __init__(self, listener: _AioListener) -> None:
        self.listener, self.connections = listener, _Connections()

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        md = _md(details)

        async def before(context: Any) -> None:
            context.set_trailing_metadata(((LISTENER_TRAILER, self.listener.name),))
            why = self.connections.refusal(md, context.peer())
            if why:
                log.info("[%s] %s", md.get("interop-case", "-"), why)
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)
            ms = _ms(md, RESTART_KEY)
            if ms is not None and self.listener.name == "restart":
                self.listener.restart(ms, md.get("interop-case", "-"))  # goes away now: see _SyncPolicy
            hold = _ms(md, HOLD_KEY)
            if hold:
                await asyncio.sleep(hold / 1000)  # a cancelled call cancels this task

        def wrap(behaviour: Callable) -> Callable:
            if inspect.isasyncgenfunction(behaviour):
                async def gen(request: Any, context: Any) -> Any:
                    await before(context)
                    async for item in behaviour(request, context):
                        yield item
                return gen

            async def run(request: Any, context: Any) -> Any:
                await before(context)
                result = behaviour(request, context)
                return await result if inspect.isawaitable(result) else result
            return run
        return _wrap(handler, wrap)


class _AioListener:
    """_SyncListener for grpc.aio: lives on the aio server's event loop."""

    def __init__(self, name: str, gen: ModuleType, catalogue: Any, address: str) -> None:
        self.name, self.gen, self.catalogue, self.address = name, gen, catalogue, address
        self.port = 0
        self.server: grpc.aio.Server | None = None
        self._policy = _AioPolicy(self)
        self._restarting = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        server, _ = await new_server_aio(self.gen, self.catalogue, options=SERVER_OPTIONS[self.name],
                                         interceptors=[self._policy])
        host = self.address.rsplit(":", 1)[0]
        port = server.add_insecure_port(f"{host}:{self.port}" if self.port else self.address)
        if port == 0:
            raise OSError(f"listener {self.name}: cannot bind {self.address}")
        await server.start()
        self.server, self.port = server, port
        return port

    def restart(self, ms: int, case: str) -> None:
        if self._restarting or self._closed:
            return
        self._restarting = True
        # kept: a task nobody holds may be collected mid-way; stop() waits for it
        self._task = asyncio.get_running_loop().create_task(self._restart(ms, case))

    async def _restart(self, ms: int, case: str) -> None:
        try:
            if self.server is not None:
                await self.server.stop(RESTART_GRACE_S)
            log.info("[%s] listener restart: stopped, listening again on port %d in %d ms", case, self.port, ms)
            await asyncio.sleep(ms / 1000)
            if not self._closed:
                await self.start()
                if self._closed and self.server is not None:  # stop() came while it started
                    await self.server.stop(0)
                log.info("[%s] listener restart: listening again on port %d", case, self.port)
        finally:
            self._restarting = False

    async def stop(self) -> None:
        self._closed = True
        task = self._task
        if task is not None and not task.done():  # a restart under way: it sees _closed and ends
            await asyncio.wait([task], timeout=RESTART_GRACE_S + 5)
        if self.server is not None:
            await self.server.stop(1)


class AioListenerServers:
    """ListenerServers for grpc.aio, run on `loop` (the AioServer's event-loop thread)."""

    def __init__(self, gen: ModuleType, catalogue: Any, listeners: dict[str, str], loop: asyncio.AbstractEventLoop) -> None:
        unknown = sorted(set(listeners) - set(LISTENERS))
        if unknown:
            raise ValueError(f"unknown listener(s) {unknown}; this module serves {', '.join(LISTENERS)}")
        self.loop = loop
        self._listeners = [_AioListener(name, gen, catalogue, addr) for name, addr in listeners.items()]

    def start(self) -> dict[str, int]:
        async def start_all() -> dict[str, int]:
            return {lst.name: await lst.start() for lst in self._listeners}
        try:
            return asyncio.run_coroutine_threadsafe(start_all(), self.loop).result(60)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        async def stop_all() -> None:
            for lst in self._listeners:
                await lst.stop()
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(stop_all(), self.loop).result(15)
