"""The Python peer's server: every service of the proto set (generic engine, seed fallbacks),
health and reflection, on one grpcio server — sync (`grpc.server`) or asyncio (`grpc.aio`).

As a process: `python -m harness.engines.python_peer serve` (it generates the code first, which is
the harness's job, so python_impl never imports harness).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from python_impl import channels
from python_impl.generic import Engine, register
from python_impl.standard import FlipHealthServicer, FlipHealthServicerAio, listed_names, served_names

log = logging.getLogger("python_impl.server")

# Each open streaming call pins a worker thread for its whole life; leave room for parallel cases.
MAX_WORKERS = 32
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def _vendored(engine: Engine) -> tuple[health.HealthServicer | None, Any]:
    """When the proto set vendors health v1 or reflection v1alpha, the engine serves that service
    like any other (its cases go to the generic engine) and the real servicer is its fallback: the
    readiness probe and reflection clients send no case, so they still reach the real one. Returns
    those fallbacks (sync servicers, bridged on the aio server like the seeds), or None each."""
    names = engine.names
    health_servicer = FlipHealthServicer() if _HEALTH in names else None
    reflection_servicer = (reflection.ReflectionServicer(listed_names(names))
                           if reflection.SERVICE_NAME in names else None)
    engine.fall_back_to({_HEALTH: health_servicer, reflection.SERVICE_NAME: reflection_servicer})
    return health_servicer, reflection_servicer


def _bind(server: Any, address: str, credentials: grpc.ServerCredentials | None = None) -> int:
    try:
        port = (server.add_insecure_port(address) if credentials is None
                else server.add_secure_port(address, credentials))
    except RuntimeError as e:  # grpcio raises on bind failure
        raise OSError(f"cannot bind {address}: {e}") from e
    if port == 0:
        raise OSError(f"cannot bind {address}")
    return port


def _bind_all(server: Any, listeners: dict[str, str], certs: Path | None) -> dict[str, int]:
    """Bind the plaintext, tls and mtls listeners (docs/peer-contract.md, "Channels") on the one
    server: the same services on each, plaintext or with the server certificate (mtls: a client
    certificate required). The connection-policy listeners are servers of their own
    (python_impl/listeners.py)."""
    ports = {}
    for name, address in listeners.items():
        if name not in (channels.PLAINTEXT, *channels.SECURE):
            raise ValueError(f"unknown listener {name!r}; one of {channels.PLAINTEXT}, {', '.join(channels.SECURE)}")
        if name in channels.SECURE and certs is None:
            raise ValueError(f"the {name} listener needs a certificate folder (certs)")
        creds = channels.server_credentials(certs, name == channels.MTLS) if name in channels.SECURE else None
        ports[name] = _bind(server, address, creds)
    return ports


def _ports(ports: dict[str, int]) -> str:
    return ", ".join(f"{name} port {port}" for name, port in ports.items())


def new_server(gen: ModuleType, catalogue: Any = None, max_workers: int = MAX_WORKERS,
               options: Sequence[tuple[str, Any]] = (), interceptors: Sequence[Any] = ()) -> tuple[grpc.Server, list[str]]:
    """A sync server with every service of `gen`, health and reflection registered, not yet bound
    nor started; `options` are grpc Core server arguments (a listener's connection policy,
    python_impl/connection.py). Returns it with the names of the set's services it serves."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-peer"),
                         options=list(options), interceptors=list(interceptors))
    engine = Engine(gen, catalogue)
    vendored_health, vendored_reflection = _vendored(engine)
    services = register(server, engine, "sync")

    health_servicer = vendored_health or FlipHealthServicer()
    if vendored_health is None:
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in served_names(services):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if vendored_reflection is None:
        reflection.enable_server_reflection(listed_names(services), server)
    return server, services


def serve(gen: ModuleType, address: str = "127.0.0.1:0", catalogue: Any = None,
          max_workers: int = MAX_WORKERS) -> tuple[grpc.Server, int]:
    """Start a sync server for every service of the generated package `gen`, answering the cases of
    `catalogue` (harness Cases, case dicts or a client-input document) generically and anything else
    with the seeds; returns (server, bound port)."""
    server, ports = serve_all(gen, {channels.PLAINTEXT: address}, catalogue, max_workers=max_workers)
    return server, ports[channels.PLAINTEXT]


def serve_all(gen: ModuleType, listeners: dict[str, str], catalogue: Any = None, certs: Path | None = None,
              max_workers: int = MAX_WORKERS) -> tuple[grpc.Server, dict[str, int]]:
    """serve() on several named listeners (plaintext, tls, mtls); returns the server and each
    listener's bound port."""
    server, services = new_server(gen, catalogue, max_workers)
    try:
        ports = _bind_all(server, listeners, certs)
    except BaseException:
        server.stop(None)  # the ports bound so far go with it
        raise
    server.start()
    log.info("serving %s on %s (sync)", ", ".join(services) or "no services", _ports(ports))
    return server, ports


async def new_server_aio(gen: ModuleType, catalogue: Any = None, options: Sequence[tuple[str, Any]] = (),
                         interceptors: Sequence[Any] = ()) -> tuple[grpc.aio.Server, list[str]]:
    """new_server for grpc.aio (run on the server's event loop)."""
    server = grpc.aio.server(options=list(options), interceptors=list(interceptors))
    engine = Engine(gen, catalogue)
    vendored_health, vendored_reflection = _vendored(engine)
    services = register(server, engine, "aio")
    if vendored_health is not None:
        for name in served_names(services):
            vendored_health.set(name, health_pb2.HealthCheckResponse.SERVING)
    else:
        health_servicer = FlipHealthServicerAio()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in served_names(services):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if vendored_reflection is None:
        reflection.enable_server_reflection(listed_names(services), server)
    return server, services


class AioServer:
    """A grpc.aio server running on its own event loop in a daemon thread, for non-async callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.ports: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="grpc-aio-peer", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _start(self, gen: ModuleType, listeners: dict[str, str], catalogue: Any,
                     certs: Path | None) -> dict[str, int]:
        server, services = await new_server_aio(gen, catalogue)
        ports = _bind_all(server, listeners, certs)
        await server.start()
        self.server = server
        log.info("serving %s on %s (aio)", ", ".join(services) or "no services", _ports(ports))
        return ports

    def start(self, gen: ModuleType, address: str, catalogue: Any, listeners: dict[str, str] | None = None,
              certs: Path | None = None) -> int:
        """Serve on address (plaintext) and the tls / mtls listeners named; returns the plaintext
        port (every port is in self.ports)."""
        self._thread.start()
        listeners = {channels.PLAINTEXT: address, **(listeners or {})}
        try:
            self.ports = asyncio.run_coroutine_threadsafe(self._start(gen, listeners, catalogue, certs),
                                                          self.loop).result(60)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            raise
        self.port = self.ports[channels.PLAINTEXT]
        return self.port

    def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving (in-flight RPCs get `grace` seconds), then end the loop thread."""
        if not self._thread.is_alive():
            return
        if self.server is not None:
            fut = asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop)
            fut.result((grace or 0) + 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> AioServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_aio(gen: ModuleType, address: str = "127.0.0.1:0", catalogue: Any = None) -> tuple[AioServer, int]:
    """Like serve(), with a grpc.aio server on its own event-loop thread; stop it with handle.stop()."""
    handle = AioServer()
    return handle, handle.start(gen, address, catalogue)
