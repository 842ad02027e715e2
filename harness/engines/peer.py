"""Peer lifecycle: the Go peer in a container (or as a plain process), the Python server in-process.

Every container carries labels naming this harness and the session (pid@host) that started it, so
leftovers of a crashed run are reaped by the next one and by `grpc-interop clean`. A server is ready
when it has printed its `LISTENING` handshake and answers the gRPC health protocol; never a sleep.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.docker_engine import docker_client
from harness.protoset.codegen import GoBuild, go_peer_dir
from python_impl.contract import CHANNEL_OPTIONS, Result

LABEL = "grpc-interop-harness"
SESSION_LABEL = f"{LABEL}.session"
SESSION = f"{os.getpid()}@{socket.gethostname()}"
CONTAINER_PORT = 50051
# The container ports of the TLS listeners (docs/peer-contract.md, "Listeners"), beside CONTAINER_PORT.
TLS_CONTAINER_PORTS = {"tls": 50052, "mtls": 50053}
CERTS_MOUNT = "/certs"
# The container port of each connection listener (docs/peer-contract.md, "Connection behaviour"),
# published on 127.0.0.1 like the plaintext one.
LISTENER_PORTS = {"keepalive": 50062, "max_age": 50063, "restart": 50064}
READY_TIMEOUT = 60.0


class PeerError(Exception):
    """A peer could not be built, started or run; the message carries its logs."""


# ---------------------------------------------------------------- runner choice

def select_runner(requested: str) -> str:
    """`docker`, `process`, or `auto` (docker when an engine answers, else process, announced loudly)."""
    if requested not in ("docker", "process", "auto"):
        raise PeerError(f"unknown peer runner {requested!r}; use docker, process or auto")
    if requested == "process":
        return "process"
    if docker_client() is not None:
        return "docker"
    if requested == "docker":
        raise PeerError("the docker runner was asked for, but no Docker engine answers; run "
                        "`make setup` (starts one) or choose --peer-runner process")
    banner = "!" * 78
    print(f"\n{banner}\n!! NO DOCKER ENGINE: the Go peer runs as a plain process (fallback), not in a\n"
          f"!! container. Run `make setup` to start an engine, or pass --peer-runner process\n"
          f"!! to choose this on purpose.\n{banner}\n", file=sys.stderr)
    return "process"


# ---------------------------------------------------------------- cleanup

_live: dict[str, Any] = {}          # container id -> container, removed on exit
_live_procs: set[subprocess.Popen] = set()  # Go peer processes (--peer-runner process), killed on exit
_live_lock = threading.RLock()  # reentrant: the SIGTERM handler takes it on the main thread, which may hold it


_closing = False                     # set by an interruption: this process starts no further container


def _track(container: Any) -> None:
    with _live_lock:
        if not _closing:
            _live[container.id] = container
            return
    # a lane that was creating it when the signal came: it would outlive the reap and hold the exit
    _forget(container)
    raise PeerError("the run was interrupted: no further peer container is started")


def _forget(container: Any) -> None:
    with _live_lock:
        _live.pop(container.id, None)
    try:
        container.remove(force=True)
    except Exception:  # noqa: BLE001  already gone
        pass


def _track_process(proc: subprocess.Popen) -> None:
    with _live_lock:
        if not _closing:
            _live_procs.add(proc)
            return
    # started by a lane in the instant of the signal: the reap has run, so it goes now
    proc.kill()
    proc.wait()
    raise PeerError("the run was interrupted: no further peer process is started")


def _untrack_process(proc: subprocess.Popen) -> None:
    with _live_lock:
        _live_procs.discard(proc)


def reap_live(closing: bool = False) -> None:
    """Remove every container and kill every Go peer process this process started and still holds. An
    interrupted run calls it at once (closing: and starts none after it): its lanes wait on Go clients
    (a connection case holds one for 30 s), the interpreter's exit joins the lanes before atexit, and
    until it exits the peers' stdin stays open, so they would not stop by themselves."""
    global _closing
    with _live_lock:
        _closing = _closing or closing
        containers = list(_live.values())
        procs = list(_live_procs)
        _live_procs.clear()
    for c in containers:
        _forget(c)
    for p in procs:
        if p.poll() is None:
            p.kill()  # a lane waiting on it sees it exit and unwinds


def _on_signal(signum: int, frame: Any) -> None:
    # SystemExit unwinds every context manager (processes, temp dirs), then atexit reaps containers.
    reap_live(closing=True)
    raise SystemExit(128 + signum)


def _on_sigint(signum: int, frame: Any) -> None:
    # the peers go first: unwinding (the run's servers stop before the reap) took over 10 s under load
    reap_live(closing=True)
    raise KeyboardInterrupt


atexit.register(reap_live)
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # never someone else's handler
        signal.signal(signal.SIGINT, _on_sigint)  # then KeyboardInterrupt: context managers clean up


_reaped = False


def _reap_dead_sessions() -> None:
    """Once per process, before the first container: remove what crashed runs left behind."""
    global _reaped
    if not _reaped:
        _reaped = True
        if (n := clean(all_sessions=False)):
            print(f"grpc-interop: removed {n} container(s) left by runs that are gone", file=sys.stderr)


def clean(all_sessions: bool = True) -> int:
    """Remove the harness's containers: all of them, or only those of sessions no longer alive."""
    client = docker_client()
    if client is None:
        return 0
    import docker.errors

    removed = 0
    # sparse: the listing's own labels, no inspect per container, which fails (404) when a running
    # session removes its container between the listing and the inspect
    for c in client.containers.list(all=True, filters={"label": LABEL}, sparse=True):
        session = (c.attrs.get("Labels") or {}).get(SESSION_LABEL, "")
        pid, _, host = session.partition("@")
        alive = host == socket.gethostname() and pid.isdigit() and pid_alive(int(pid))
        if all_sessions or not alive:
            try:
                c.remove(force=True)
            except docker.errors.NotFound:  # its own session removed it meanwhile
                continue
            removed += 1
    return removed


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# ---------------------------------------------------------------- image

def image_tag(build: GoBuild) -> str:
    return f"grpc-interop-peer:{build.digest[:16]}"


def ensure_image(build: GoBuild, client: Any) -> str:
    """Build the FROM-scratch peer image once per content hash; an unchanged peer is never rebuilt."""
    return scratch_image(client, image_tag(build), go_peer_dir() / "Dockerfile", build.binary, "interop-peer")


def scratch_image(client: Any, tag: str, dockerfile: Path, binary: Path, name: str) -> str:
    """The image `tag` (a content hash in it): kept when present, else built from `dockerfile` with the
    binary copied in as `name` (FROM scratch: nothing is pulled). The Go peer's and the probe's client."""
    import docker.errors

    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory(prefix="peer-image-") as ctx:
        shutil.copy2(dockerfile, Path(ctx) / "Dockerfile")
        shutil.copy2(binary, Path(ctx) / name)
        try:
            client.images.build(path=ctx, tag=tag, rm=True, pull=False, labels={LABEL: "1"})
        except docker.errors.BuildError as e:
            log = "".join(str(x.get("stream", x)) for x in e.build_log)
            raise PeerError(f"building image {tag} failed: {e}\n{log}") from None
    return tag


def _labels() -> dict[str, str]:
    return {LABEL: "1", SESSION_LABEL: SESSION}


# ---------------------------------------------------------------- readiness

def wait_healthy(address: str, deadline: float, logs: Any) -> None:
    """Poll grpc.health.v1 until SERVING; on timeout raise with the peer's logs."""
    last = "no answer"
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.05)  # between health probes, not instead of them
    raise PeerError(f"peer at {address} not healthy in time (last answer: {last})\n--- peer logs ---\n{logs()}")


# ---------------------------------------------------------------- Go server peer

def parse_listening(line: str) -> dict[str, str]:
    """The addresses of a `LISTENING <plain> tls=<addr> mtls=<addr>` handshake line, by listener name
    (the first, unnamed field is the plaintext listener's)."""
    fields = line.split()
    if len(fields) < 2 or fields[0] != "LISTENING" or "=" in fields[1]:
        raise PeerError(f"not a LISTENING handshake line: {line!r}")
    addresses = {"plaintext": fields[1]}
    for field in fields[2:]:
        name, sep, address = field.partition("=")
        if not sep or not name or not address:
            raise PeerError(f"LISTENING line field {field!r} is not NAME=HOST:PORT: {line!r}")
        addresses[name] = address
    return addresses


class GoServer:
    """The Go peer's server, in a container or as a process. A context manager; nothing leaks.

    With certs (a folder made by harness.engines.certs.make) it also serves the tls and mtls
    listeners, and each of `listeners` (connection behaviour: keepalive, max_age, restart);
    `addresses` names them all, plaintext included; `address` stays the plaintext one."""

    def __init__(self, build: GoBuild, runner: str, catalogue: Path | None = None, addr: str = "127.0.0.1:0",
                 certs: Path | None = None, listeners: tuple[str, ...] = ()) -> None:
        self.build, self.runner, self.catalogue, self.addr, self.certs = build, runner, catalogue, addr, certs
        self.listeners = listeners  # connection listeners besides plaintext, tls and mtls
        self.address = ""
        self.addresses: dict[str, str] = {}
        self._container: Any = None
        self._output: _Output | None = None
        self._stdin: Any = None  # our end of the container's stdin: the peer stops when it closes
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Path | None = None

    def __enter__(self) -> GoServer:
        try:
            self._start_container() if self.runner == "docker" else self._start_process()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> str:
        where = self.address + "".join(f", {name} {a}" for name, a in self.addresses.items() if name != "plaintext")
        if self.runner == "docker":
            return f"Go peer container {self._container.short_id} ({image_tag(self.build)}) at {where}"
        return f"Go peer process pid {self._proc.pid if self._proc else '?'} ({self.build.binary}) at {where}"

    def _start_container(self) -> None:
        client = docker_client()
        if client is None:
            raise PeerError("no Docker engine answers; run `make setup` or use --peer-runner process")
        _reap_dead_sessions()
        tag = ensure_image(self.build, client)
        args, volumes = ["serve", "--addr", f"0.0.0.0:{CONTAINER_PORT}"], {}
        if self.catalogue is not None:
            args += ["--cases", f"/catalogue/{self.catalogue.name}"]
            volumes[str(self.catalogue.parent)] = {"bind": "/catalogue", "mode": "ro"}
        host, _, port = self.addr.rpartition(":")
        ports: dict[str, Any] = {f"{CONTAINER_PORT}/tcp": (host, int(port) or None)}
        if self.certs is not None:  # each TLS listener on its own container port, published like the first
            args += ["--tls-dir", CERTS_MOUNT]
            volumes[str(self.certs.resolve())] = {"bind": CERTS_MOUNT, "mode": "ro"}
            for name, cport in TLS_CONTAINER_PORTS.items():
                args += ["--listen", f"{name}=0.0.0.0:{cport}"]
                ports[f"{cport}/tcp"] = (host, None)
        for name in self.listeners:
            args += ["--listen", f"{name}=0.0.0.0:{LISTENER_PORTS[name]}"]
            ports[f"{LISTENER_PORTS[name]}/tcp"] = (host, None)
        self._container, self._stdin = _create_held(client, tag, args, volumes=volumes, ports=ports)
        self._output = _Output(self._container)
        self._container.start()
        deadline = time.monotonic() + READY_TIMEOUT
        if not self._output.wait_for("LISTENING", deadline):
            raise PeerError(f"the Go peer container did not report LISTENING (alive: {self.alive()})\n"
                            f"--- peer logs ---\n{self.logs()}")
        self._container.reload()
        published = {"plaintext": CONTAINER_PORT, **(TLS_CONTAINER_PORTS if self.certs is not None else {}),
                     **{name: LISTENER_PORTS[name] for name in self.listeners}}
        self.addresses = {name: f"127.0.0.1:{self._container.ports[f'{cport}/tcp'][0]['HostPort']}"
                          for name, cport in published.items()}
        self.address = self.addresses["plaintext"]
        wait_healthy(self.address, deadline, self.logs)

    def alive(self) -> bool:
        """Whether the server still runs (a container removes itself when it exits)."""
        if self._proc is not None:
            return self._proc.poll() is None
        if self._container is None:
            return False
        try:
            self._container.reload()
        except Exception:  # noqa: BLE001  docker.errors.NotFound: it exited and was removed
            return False
        return self._container.status == "running"

    def _start_process(self) -> None:
        fd, name = tempfile.mkstemp(prefix="go-peer-", suffix=".log")
        self._stderr = Path(name)
        args = [str(self.build.binary), "serve", "--addr", self.addr, STOP_ON_EOF]
        args += ["--cases", str(self.catalogue)] if self.catalogue is not None else []
        host = self.addr.rpartition(":")[0]
        if self.certs is not None:  # the TLS listeners on free ports of the plaintext one's host
            args += ["--tls-dir", str(self.certs)]
            for name in TLS_CONTAINER_PORTS:
                args += ["--listen", f"{name}={host}:0"]
        args += [arg for name in self.listeners for arg in ("--listen", f"{name}={host}:0")]
        with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the handle
            # stdin stays open as long as this process lives: the peer stops when it closes
            self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        _track_process(self._proc)
        line = _read_line(self._proc, READY_TIMEOUT)
        if not line.startswith("LISTENING "):
            raise PeerError(f"the Go peer process did not report LISTENING (got {line!r})\n"
                            f"--- peer logs ---\n{self.logs()}")
        self.addresses = parse_listening(line)
        self.address = self.addresses["plaintext"]
        wait_healthy(self.address, time.monotonic() + READY_TIMEOUT, self.logs)

    def logs(self, tail: int = 200) -> str:
        if self._output is not None:
            return self._output.tail(tail)
        if self._stderr is not None and self._stderr.exists():
            return "\n".join(output_lines(self._stderr.read_text(errors="replace"))[-tail:])
        return "(no logs)"

    def stop(self) -> None:
        if self._container is not None:
            _forget(self._container)
        _hang_up(self._stdin)
        if self._proc is not None:
            stop_process(self._proc)
            _untrack_process(self._proc)
            _close(self._proc.stdin)
            _close(self._proc.stdout)
        if self._stderr is not None:
            self._stderr.unlink(missing_ok=True)
            self._stderr = None


class _Output:
    """Everything a container prints, read through an attachment made before it starts: it removes
    itself when it exits, and what it said (a crash's last lines) must outlive it."""

    def __init__(self, container: Any, keep: int = 20000) -> None:
        import docker

        # a client of its own without a read timeout: a server may stay quiet for minutes
        self._client = docker.from_env(timeout=None)
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._changed = threading.Condition()
        self.ended = False  # before the reader starts: it sets True when the output ends
        stream = self._client.api.attach(container.id, stdout=True, stderr=True, stream=True, logs=True)
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        partial = b""
        try:
            for chunk in stream:
                *complete, partial = (partial + chunk).split(b"\n")
                with self._changed:
                    self._lines.extend(line.decode(errors="replace") for line in complete)
                    self._changed.notify_all()
        except Exception:  # noqa: BLE001  the engine connection went away: what was read stays
            pass
        finally:
            with self._changed:
                if partial:
                    self._lines.append(partial.decode(errors="replace"))
                self.ended = True
                self._changed.notify_all()
            self._client.close()

    def wait_for(self, text: str, deadline: float) -> bool:
        """Until a line contains text (True), or the output ends or the deadline passes (False)."""
        with self._changed:
            while not any(text in line for line in self._lines):
                if self.ended or not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    return any(text in line for line in self._lines)
            return True

    def tail(self, n: int) -> str:
        with self._changed:
            return "\n".join(list(self._lines)[-n:]) or "(no output)"


def _wait_gone(server: GoServer, seconds: float) -> bool:
    """Until the server has exited (True), or seconds pass (False)."""
    deadline = time.monotonic() + seconds
    while server.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not server.alive()


def _hang_up(stdin: Any) -> None:
    """End a container's stdin now, as the kernel does when this process dies. docker-py hands back
    a SocketIO over the engine connection, and closing that alone leaves the connection open while
    its HTTP response still refers to it: shut the connection itself."""
    sock = getattr(stdin, "_sock", stdin)  # None once closed
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already gone
            pass
    _close(stdin)


def _close(stream: Any) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:  # already closed by the other side
            pass


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a peer process: SIGTERM, then SIGKILL when it has not exited after 5 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of a child, or "" when it does not come in time."""
    box: list[bytes] = []
    t = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return box[0].decode(errors="replace").strip() if box else ""


# ---------------------------------------------------------------- Go client peer (batched)

def run_go_client(build: GoBuild, runner: str, payload: dict[str, Any],
                  on_result: Callable[[Result], None] | None = None,
                  on_start: Callable[[], None] | None = None) -> tuple[list[Result], str]:
    """Run many cases in ONE Go client process; returns its results and its stderr. on_result
    hears of each result as the client prints it (progress), before the batch ends; on_start, that
    the client runs (its container or process started)."""
    budget = sum(c["timeout_ms"] for case in payload["cases"] for c in case["calls"]) / 1000 + 60

    def on_line(line: str) -> None:
        try:
            r = Result.from_json(json.loads(line))
        except (ValueError, KeyError, TypeError):
            return  # judged below, with the whole output
        on_result(r)  # type: ignore[misc]

    stdout, stderr = go_client_lines(build, runner, payload, budget, on_line if on_result else None, on_start)
    results = []
    for n, line in enumerate(stdout, 1):
        try:
            results.append(Result.from_json(json.loads(line)))
        except (ValueError, KeyError) as e:
            raise PeerError(f"the Go client's output line {n} is not a result ({e}): {line[:300]!r}\n"
                            f"--- client stderr ---\n{stderr}") from None
    return results, stderr


def go_client_lines(build: GoBuild, runner: str, payload: dict[str, Any], budget: float,
                    on_line: Callable[[str], None] | None = None,
                    on_start: Callable[[], None] | None = None) -> tuple[list[str], str]:
    """Run one Go client process on a client document (cases, or a bench's phases) within budget
    seconds; returns its non-empty stdout lines and its stderr. A document with `certs` (the
    certificate folder of its channels) has that folder mounted read-only at /certs in a container.
    on_line hears each stdout line as it comes, on_start that the client runs."""
    lines_in = _Lines(on_line, on_start)
    certs = Path(payload["certs"]).resolve() if payload.get("certs") else None
    with tempfile.TemporaryDirectory(prefix="go-client-") as tmp:
        os.chmod(tmp, 0o755)  # the container runs as an unprivileged user
        cases = Path(tmp) / "cases.json"
        doc = {**payload, "certs": CERTS_MOUNT} if certs is not None and runner == "docker" else payload
        cases.write_text(json.dumps(doc, ensure_ascii=False))
        cases.chmod(0o644)
        if runner == "docker":
            stdout, stderr, code = _client_container(build, tmp, budget, certs, lines_in)
        else:
            # the client's stdin is a pipe whose write end only this process holds: if it dies, the
            # client sees end of file and stops (--stop-on-stdin-eof) instead of running on alone
            held, write_end = os.pipe()
            try:
                stdout, stderr, code = _client_process(build, cases, held, budget, lines_in)
            finally:
                os.close(held)
                os.close(write_end)
    lines = [line for line in output_lines(stdout) if line.strip()]
    if code != 0:
        raise PeerError(f"the Go client exited with code {code}{_progress(payload, lines)}\n"
                        f"--- client stderr ---\n{stderr}")
    return lines, stderr


class _Lines:
    """Stdout of a Go client as it comes, in chunks: each whole line goes to on_line."""

    def __init__(self, on_line: Callable[[str], None] | None, on_start: Callable[[], None] | None = None) -> None:
        self.on_line, self.on_start, self._rest = on_line, on_start, b""

    def started(self) -> None:
        if self.on_start is not None:
            self.on_start()

    def feed(self, chunk: bytes) -> None:
        if self.on_line is None or not chunk:
            return
        *whole, self._rest = (self._rest + chunk).split(b"\n")
        for line in whole:
            if line.strip():
                self.on_line(line.decode(errors="replace"))


def _client_process(build: GoBuild, cases: Path, stdin: int, budget: float, lines_in: _Lines) -> tuple[str, str, int]:
    """The Go client as a process: its stdout read as it comes (progress), its stderr kept."""
    proc = subprocess.Popen([str(build.binary), "client", "--cases", str(cases), STOP_ON_EOF], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _track_process(proc)
    except PeerError:
        _close(proc.stdout)
        _close(proc.stderr)
        raise
    try:
        return _read_client(proc, budget, lines_in)
    finally:
        _untrack_process(proc)


def _read_client(proc: subprocess.Popen[bytes], budget: float, lines_in: _Lines) -> tuple[str, str, int]:
    lines_in.started()
    out: list[bytes] = []
    err: list[bytes] = []

    def read_out() -> None:
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            out.append(chunk)
            lines_in.feed(chunk)

    readers = [threading.Thread(target=read_out, daemon=True),
               threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)]  # type: ignore[union-attr]
    for t in readers:
        t.start()
    try:
        proc.wait(budget)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        for t in readers:
            t.join(5)
        raise PeerError(f"the Go client ran past its {budget:.0f} s budget\n--- client stderr ---\n"
                        f"{b''.join(err).decode(errors='replace')}") from None
    for t in readers:
        t.join(30)
    return b"".join(out).decode(), b"".join(err).decode(errors="replace"), proc.returncode


def output_lines(text: str) -> list[str]:
    """A peer's output (JSON results, log lines) split on "\n" only: str.splitlines() also splits on
    U+0085, U+2028 and other characters that Go's JSON and a peer's log leave unescaped inside a
    value, and would cut one result in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _progress(payload: dict[str, Any], lines: list[str]) -> str:
    """How far a batch of cases got, and the case in flight: the first with no result line."""
    cases = payload.get("cases")
    if not cases:
        return ""
    done = set()
    for line in lines:
        try:
            done.add(json.loads(line).get("case"))
        except (ValueError, AttributeError):
            pass
    in_flight = next((c["name"] for c in cases if c["name"] not in done), "(none: every case has a result)")
    return f" after {len(done)} of {len(cases)} cases; case in flight (the first with no result): {in_flight}"


# Every Go peer container: nothing to write, no capabilities, no privilege gain, bounded resources.
# The peer is one static binary that writes only to stdout/stderr, so a read-only root costs nothing.
HARDENED: dict[str, Any] = {"read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
                            "pids_limit": 512, "mem_limit": "2g", "nano_cpus": 2_000_000_000}


STOP_ON_EOF = "--stop-on-stdin-eof"


def _create_held(client: Any, tag: str, args: list[str], **kwargs: Any) -> tuple[Any, Any]:
    """A created (not started) peer container whose stdin this process holds open. The peer runs
    with --stop-on-stdin-eof and the engine closes its stdin when our end goes (StdinOnce), so a
    harness killed even by SIGKILL takes its peers with it, and auto_remove then deletes them."""
    # detach=False is what makes docker-py ask for StdinOnce; the container is started by the caller
    container = client.containers.create(tag, [*args, STOP_ON_EOF], detach=False, stdin_open=True,
                                         auto_remove=True, labels=_labels(), **HARDENED, **kwargs)
    _track(container)
    try:
        return container, container.attach_socket(params={"stdin": 1, "stream": 1})
    except BaseException:
        _forget(container)
        raise


def _client_container(build: GoBuild, tmp: str, budget: float, certs: Path | None = None,
                      lines_in: _Lines | None = None) -> tuple[str, str, int]:
    """Run the batch in a container and collect what it prints. The container removes itself when
    it exits, so its output is read through an attachment made before it starts, and its exit code
    from its `die` event (asked for from before the start, so it cannot be missed)."""
    import docker

    if docker_client() is None:
        raise PeerError("no Docker engine answers; run `make setup` or use --peer-runner process")
    client = docker.from_env(timeout=int(budget) + 60)  # reads may wait as long as the batch runs
    tag = ensure_image(build, client)
    # Host networking: the client reaches servers published on this machine's loopback only.
    volumes = {tmp: {"bind": "/cases", "mode": "ro"}}
    if certs is not None:
        volumes[str(certs)] = {"bind": CERTS_MOUNT, "mode": "ro"}
    container, stdin = _create_held(client, tag, ["client", "--cases", "/cases/cases.json"], network_mode="host",
                                    volumes=volumes)
    out: list[bytes] = []
    err: list[bytes] = []
    code: list[int] = []
    try:
        events = client.events(filters={"container": container.id, "event": "die"}, decode=True,
                               since=int(time.time()) - 1)
        output = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)

        def collect() -> None:
            for o, e in output:
                out.append(o or b"")
                err.append(e or b"")
                if lines_in is not None:
                    lines_in.feed(o or b"")
            for event in events:  # the output ends when the client exits; its exit code comes with `die`
                code.append(int(event["Actor"]["Attributes"].get("exitCode", -1)))
                return

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        container.start()
        if lines_in is not None:
            lines_in.started()
        reader.join(budget)
        events.close()
        if not code:
            raise PeerError(f"the Go client container ran past its {budget:.0f} s budget\n--- client stderr ---\n"
                            f"{b''.join(err).decode(errors='replace')[-20000:]}")
        return b"".join(out).decode(), b"".join(err).decode(errors="replace"), code[0]
    finally:
        _hang_up(stdin)
        _forget(container)
        client.close()


# ---------------------------------------------------------------- Python server peer

class PythonServer:
    """The Python peer's server, in this process: grpc (sync) or grpc.aio in its own event-loop thread."""

    def __init__(self, gen: ModuleType, catalogue: list[Any] | None = None, aio: bool = False,
                 certs: Path | None = None, listeners: tuple[str, ...] = ()) -> None:
        self.gen, self.catalogue, self.aio, self.certs, self.listeners = gen, catalogue, aio, certs, listeners
        self.address, self._server = "", None
        self.addresses: dict[str, str] = {}  # listener name -> address (docs/peer-contract.md, "Channels")
        self._listener_servers: Any = None
        self._log = _LogTail()

    def __enter__(self) -> PythonServer:
        from python_impl.listeners import AioListenerServers, ListenerServers
        from python_impl.server import AioServer, serve_all

        self._log.attach()
        # with certificates, the tls and mtls listeners too (the same services on each)
        secure = {"tls": "127.0.0.1:0", "mtls": "127.0.0.1:0"} if self.certs is not None else {}
        if self.aio:
            self._server = AioServer()
            self._server.start(self.gen, "127.0.0.1:0", self.catalogue, secure, self.certs)
            ports = self._server.ports
        else:
            self._server, ports = serve_all(self.gen, {"plaintext": "127.0.0.1:0", **secure}, self.catalogue, self.certs)
        self.addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        self.address = self.addresses["plaintext"]
        if self.listeners:  # connection behaviour: each a server of its own (python_impl/listeners.py)
            wanted = {name: "127.0.0.1:0" for name in self.listeners}
            self._listener_servers = (AioListenerServers(self.gen, self.catalogue, wanted, self._server.loop)
                                      if self.aio else ListenerServers(self.gen, self.catalogue, wanted))
            try:
                self.addresses.update({name: f"127.0.0.1:{p}" for name, p in self._listener_servers.start().items()})
            except BaseException:
                self.__exit__()
                raise
        try:
            wait_healthy(self.address, time.monotonic() + READY_TIMEOUT, lambda: "(in-process Python server)")
        except BaseException:  # a failed __enter__ gets no __exit__: stop what started
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._log.detach()
        if self._server is None:
            return
        if self._listener_servers is not None:
            self._listener_servers.stop()
        if self.aio:
            self._server.stop()
        else:
            self._server.stop(grace=1).wait(5)

    def describe(self) -> str:
        flavour = "grpc.aio" if self.aio else "grpc"
        return f"Python server (in-process, {flavour}, grpcio {grpc.__version__}) at {self.address}"

    def logs(self, tail: int = 200) -> str:
        return "\n".join(list(self._log.lines)[-tail:]) or "(no log lines)"


class _LogTail(logging.Handler):
    """The last lines the in-process Python peers logged (python_impl.*), for failure reports."""

    def __init__(self, keep: int = 5000) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        self._logger = logging.getLogger("python_impl")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        self._logger.addHandler(self)
        if self._logger.level == logging.NOTSET:
            self._logger.setLevel(logging.INFO)

    def detach(self) -> None:
        self._logger.removeHandler(self)
