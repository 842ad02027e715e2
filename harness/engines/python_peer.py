"""The Python peer as a process, with the Go peer's interface (docs/peer-contract.md).

    python -m harness.engines.python_peer serve  --protos DIR [-I DIR …] [--files GLOB …] --addr 127.0.0.1:0 [--aio] [--cases FILE]
                                                 [--listen NAME=HOST:PORT …]
    python -m harness.engines.python_peer client --protos DIR [-I DIR …] [--files GLOB …] --cases FILE|-

`serve` prints the handshake line `LISTENING <host>:<port>` on stdout once serving; logs go to stderr.
`client` reads the client-input JSON document (target, direction, run_id, cases), runs every case on
one channel and prints one JSON result per line, in input order; exit code 0 when every case ran,
whatever the verdicts. One process loads one proto set, so two revisions of a proto set run as two
processes (`grpc-interop compat`). The code generation lives here, not in python_impl, so the engine
never imports the harness.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.protoset import ProtoSetError, add_arguments, from_args
from harness.protoset.codegen import CodegenError, generate_python, import_python
from python_impl.client import run_case
from python_impl import channels
from python_impl.connection import LISTENERS
from python_impl.listeners import AioListenerServers, ListenerServers
from python_impl.contract import CHANNEL_OPTIONS
from python_impl.server import serve, serve_aio

log = logging.getLogger("harness.engines.python_peer")

# The server's findings travel back in a trailer (interop-server-diffs-bin); unknown fields with long
# values (a cross-revision run) make it bigger than grpcio's 8 KiB default limit for received metadata.
MAX_METADATA = 4 * 1024 * 1024

_CALL_DEFAULTS = {"metadata": {}, "timeout_ms": 10_000, "bidi": "half_duplex", "server": {}, "compression": None,
                  "cancel_after_responses": None, "cancel_after_requests": None, "raw": False,
                  "wait_for_ready": False, "no_deadline": False}


def case_from_json(raw: dict[str, Any]) -> SimpleNamespace:
    """A case of the client-input document as the object run_case reads."""
    calls = [SimpleNamespace(**{**_CALL_DEFAULTS, **c}) for c in raw["calls"]]
    return SimpleNamespace(name=raw["name"], calls=calls, channel=raw.get("channel"))


def _listener(text: str) -> tuple[str, str]:
    name, sep, addr = text.partition("=")
    if not sep or name not in LISTENERS or ":" not in addr:
        raise argparse.ArgumentTypeError(f"want NAME=HOST:PORT with NAME one of {', '.join(LISTENERS)}, got {text!r}")
    return name, addr


def _read_doc(where: str) -> Any:
    return json.loads(sys.stdin.read() if where == "-" else open(where, encoding="utf-8").read())


def serve_main(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        catalogue = _read_doc(args.cases) if args.cases else None
        gen = import_python(generate_python(from_args(args)))
        if args.aio:
            handle, port = serve_aio(gen, args.addr, catalogue)
            stopper = handle.stop
            named: Any = AioListenerServers(gen, catalogue, dict(args.listen), handle.loop) if args.listen else None
        else:
            server, port = serve(gen, args.addr, catalogue)
            stopper = lambda: server.stop(grace=1.0).wait()  # noqa: E731
            named = ListenerServers(gen, catalogue, dict(args.listen)) if args.listen else None
        ports = named.start() if named is not None else {}
    except (CodegenError, ProtoSetError, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    host = args.addr.rsplit(":", 1)[0]
    listeners = "".join(f" {name}={dict(args.listen)[name].rsplit(':', 1)[0]}:{p}" for name, p in ports.items())
    print(f"LISTENING {host}:{port}{listeners}", flush=True)
    while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
        pass
    log.info("stopping")
    if named is not None:
        named.stop()
    stopper()
    return 0


def client_main(args: argparse.Namespace) -> int:
    try:
        doc = _read_doc(args.cases)
        cases = [case_from_json(c) for c in doc["cases"]]
        gen = import_python(generate_python(from_args(args)))
    except (OSError, ValueError, KeyError, TypeError, CodegenError, ProtoSetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    direction, run_id = doc.get("direction", "py-?"), doc.get("run_id", "r-cli")
    # one connection per distinct case channel (docs/peer-contract.md, "Channels"); CHANNEL_OPTIONS
    # come with every one of them
    targets = {"plaintext": doc["target"], **(doc.get("targets") or {})}
    certs = Path(doc["certs"]) if doc.get("certs") else None
    pool = channels.Pool(targets, certs, base_options=[*CHANNEL_OPTIONS, ("grpc.max_metadata_size", MAX_METADATA)])
    try:
        for case in cases:
            try:
                ch = pool.for_case(case)
            except (channels.ChannelError, OSError) as e:
                print(f"error: case {case.name}: {e}", file=sys.stderr)
                return 2
            result = run_case(ch, gen, case, direction, run_id)
            line = json.dumps(result.to_json(), ensure_ascii=False)
            # like Go's encoding/json: U+2028/U+2029 escaped, so every reader sees one result per line
            print(line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"), flush=True)
    finally:
        pool.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.engines.python_peer", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="serve every service of the proto set")
    add_arguments(srv)
    srv.add_argument("--addr", default="127.0.0.1:0", help="host:port to bind (port 0 picks a free one)")
    srv.add_argument("--aio", action="store_true", help="serve with grpc.aio instead of the sync server")
    srv.add_argument("--cases", help="catalogue: a client-input JSON document (only 'cases' is read); - for stdin")
    srv.add_argument("--listen", action="append", default=[], type=_listener, metavar="NAME=HOST:PORT",
                     help=f"one more listener (repeatable): {', '.join(LISTENERS)} (docs/peer-contract.md)")
    cli = sub.add_parser("client", help="run a client-input document's cases")
    add_arguments(cli)  # the client's revision
    cli.add_argument("--cases", required=True, help="client-input JSON document; - for stdin")
    args = ap.parse_args(argv)
    return serve_main(args) if args.command == "serve" else client_main(args)


if __name__ == "__main__":
    sys.exit(main())
