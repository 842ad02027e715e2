"""The Python peer's server: every seed service, health and reflection, on one grpcio server.

CLI: `python -m python_impl.server --protos DIR --addr 127.0.0.1:0` prints the handshake line
`LISTENING <host>:<port>` on stdout once serving; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures
from types import ModuleType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from python_impl.seeds import register_all

log = logging.getLogger("python_impl.server")

# Each open streaming call pins a worker thread for its whole life; leave room for parallel cases.
MAX_WORKERS = 32


def serve(gen: ModuleType, address: str = "127.0.0.1:0", max_workers: int = MAX_WORKERS) -> tuple[grpc.Server, int]:
    """Start a server with the seeds found in the generated package `gen`; returns (server, bound port)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-seed"))
    services = register_all(server, gen)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *services]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    reflection.enable_server_reflection(
        [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server)

    try:
        port = server.add_insecure_port(address)
    except RuntimeError as e:  # grpcio raises on bind failure
        raise OSError(f"cannot bind {address}: {e}") from e
    if port == 0:
        raise OSError(f"cannot bind {address}")
    server.start()
    log.info("serving %s on port %d", ", ".join(services) or "no seed services", port)
    return server, port


def main(argv: list[str] | None = None) -> int:
    from harness.codegen import CodegenError, generate_python, import_python
    from harness.protoset import ProtoSetError, discover

    ap = argparse.ArgumentParser(prog="python -m python_impl.server", description=__doc__.splitlines()[0])
    ap.add_argument("--protos", default="protos", help="folder of .proto files")
    ap.add_argument("--addr", default="127.0.0.1:0", help="host:port to bind (port 0 picks a free one)")
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    try:
        gen = import_python(generate_python(discover(args.protos)))
        server, port = serve(gen, args.addr)
    except (CodegenError, ProtoSetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    host = args.addr.rsplit(":", 1)[0]
    print(f"LISTENING {host}:{port}", flush=True)
    while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass
    log.info("stopping")
    server.stop(grace=1.0).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
