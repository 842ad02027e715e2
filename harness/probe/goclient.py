"""The probe's Go client flavour: go_peer's `probe-client` (the same code as `interop-peer
probe-client`, docs/probe-clients.md) as one long-lived process or container, fed probe calls as JSON lines
on stdin and answering one outcome line each, in order.

The binary is built from go_peer's sources alone, without any proto set (it sends raw bytes and
reads descriptors at run time), so `--reflection` needs no protos; it is built once per content hash
of those sources, with `go` on PATH or, without one, the golang image (gotoolchain.py). Its
container runs with host networking: a target on this machine's loopback is reachable from it only
that way, and the probe talks to that target alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import cache
from harness.docker_engine import docker_client
from harness.engines import peer
from harness.probe.schema import Connection
from harness.protoset import codegen, gotoolchain

COMMAND = "probe-client"
DOCKERFILE = "Dockerfile.probe"
MOUNT = "/probe"   # the container's read-only view of the descriptors and certificate files
SLACK = 30.0       # seconds an outcome may take beyond its call's own timeout (start-up, a slow machine)


def _int_or_negative_zero(text: str) -> int | float:
    """protojson writes a float field's -0.0 as `-0`, which Python's json reads as the int 0: the
    sign, which json_format keeps (-0.0), would be lost, and the decodes would differ (check 3)."""
    return -0.0 if text == "-0" else int(text)


class GoClientError(Exception):
    """The Go client could not be built, started or answer; the message says why and what to do."""


# ---------------------------------------------------------------- build

@dataclass(frozen=True)
class ProbeBuild:
    digest: str
    binary: Path  # static probe-client (CGO_ENABLED=0)


def _sources() -> dict[str, Path]:
    """What the build copy holds: go_peer's Go sources (no generated code: probe-client imports none)."""
    return {rel: p for rel, p in codegen._go_sources().items()}


def probe_digest() -> str:
    h = hashlib.sha256()
    for part in codegen.module_overrides():  # the grpc-go / protobuf-go asked for, as for the peer
        h.update(part.encode() + b"\0")
    for rel, p in _sources().items():
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build() -> ProbeBuild:
    """The probe-client binary, built once per content hash (a lock keeps parallel builds apart)."""
    try:
        digest = probe_digest()
    except codegen.CodegenError as e:  # $INTEROP_GRPC_GO / $INTEROP_PROTOBUF_GO not a version
        raise GoClientError(f"the probe's Go client cannot be built: {e}") from None
    dest = cache.root() / "probe" / digest[:20]
    binary = dest / COMMAND
    if binary.exists():
        return ProbeBuild(digest, binary)
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / ".build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():
            return ProbeBuild(digest, binary)
        src = dest / "src"
        shutil.rmtree(src, ignore_errors=True)
        for rel, p in _sources().items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / rel)
        try:
            codegen.pin_overrides(src)
            if gotoolchain.current() == gotoolchain.DOCKER:
                gotoolchain.run(gotoolchain.command_build(src, COMMAND), dest)
            else:
                tmp = dest / f".{COMMAND}.{os.getpid()}"
                proc = subprocess.run(["go", "build", "-trimpath", "-o", str(tmp), f"./cmd/{COMMAND}"], cwd=src,
                                      env=codegen._go_env(), capture_output=True, text=True)
                if proc.returncode != 0:
                    raise GoClientError(f"building the probe's Go client failed (sources in {src}):\n{proc.stderr}")
                tmp.rename(binary)
        except gotoolchain.GoToolchainError as e:
            raise GoClientError(f"the probe's Go client cannot be built: {e}. Without Go, probe with the Python "
                                f"clients only") from None
        except codegen.CodegenError as e:  # a grpc-go / protobuf-go override that cannot be had
            raise GoClientError(f"the probe's Go client cannot be built: {e}") from None
    return ProbeBuild(digest, binary)


def image_tag(b: ProbeBuild) -> str:
    return f"grpc-interop-probe:{b.digest[:16]}"


def ensure_image(b: ProbeBuild, client: Any) -> str:
    """The FROM-scratch image of the binary, built once per content hash."""
    try:
        return peer.scratch_image(client, image_tag(b), codegen.go_peer_dir() / DOCKERFILE, b.binary, COMMAND)
    except peer.PeerError as e:
        raise GoClientError(str(e)) from None


# ---------------------------------------------------------------- the client

class GoClient:
    """The Go flavour: `call(probe_call) -> outcome`, like PyClient and AioClient; one connection to
    the target for the client's life. A context manager; close() ends the process or container.

    descriptors: a serialized FileDescriptorSet (Schema.serialized()): the client then decodes each
    response (outcome["decoded"]). runner: process, docker or auto (docker when an engine answers)."""

    name = "go"

    def __init__(self, conn: Connection, descriptors: bytes | None = None, runner: str = "process",
                 probe_build: ProbeBuild | None = None) -> None:
        self.conn = conn
        self.runner = peer.select_runner(runner)
        self._build = probe_build or build()
        self._tmp = Path(tempfile.mkdtemp(prefix="probe-go-"))
        self._lock = threading.Lock()
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=200)
        self._broken = ""  # why the client cannot be trusted to answer in step any more
        self._proc: subprocess.Popen[bytes] | None = None
        self._container: Any = None
        self._sock: Any = None
        self._stderr_reader: threading.Thread | None = None
        try:
            args = self._args(descriptors)
            self._start_container(args) if self.runner == "docker" else self._start_process(args)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> GoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        if self.runner == "docker" and self._container is not None:
            return f"Go probe client container {self._container.short_id} ({image_tag(self._build)})"
        return f"Go probe client process pid {self._proc.pid if self._proc else '?'} ({self._build.binary})"

    def _args(self, descriptors: bytes | None) -> list[str]:
        """The flags; files (descriptors, certificates) are copied into a folder of this client, which a
        container sees at MOUNT (read by its unprivileged user: the copies are readable)."""
        os.chmod(self._tmp, 0o755)
        where = MOUNT if self.runner == "docker" else str(self._tmp)

        def place(name: str, content: bytes) -> str:
            (self._tmp / name).write_bytes(content)
            (self._tmp / name).chmod(0o644)
            return f"{where}/{name}"

        copies = {field: Path(place(f"{field}.pem", Path(path).read_bytes()))
                  for field in ("ca", "cert", "key") if (path := getattr(self.conn, field)) is not None}
        args = replace(self.conn, **copies).go_args()
        if descriptors is not None:
            args += ["--descriptors", place("descriptors.pb", descriptors)]
        return args

    def _start_process(self, args: list[str]) -> None:
        self._proc = subprocess.Popen([str(self._build.binary), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        out, err = self._proc.stdout, self._proc.stderr
        threading.Thread(target=self._read_lines, args=(iter(out.readline, b""),), daemon=True).start()  # type: ignore[union-attr]
        self._stderr_reader = threading.Thread(target=self._read_stderr, args=(iter(err.readline, b""),), daemon=True)  # type: ignore[union-attr]
        self._stderr_reader.start()

    def _start_container(self, args: list[str]) -> None:
        from docker.utils.socket import STDOUT, frames_iter

        client = docker_client()
        if client is None:
            raise GoClientError("no Docker engine answers; run `make setup` or use the process runner")
        peer._reap_dead_sessions()
        tag = ensure_image(self._build, client)
        self._container = client.containers.create(
            tag, args, detach=False, stdin_open=True, auto_remove=True, network_mode="host", labels=peer._labels(),
            volumes={str(self._tmp): {"bind": MOUNT, "mode": "ro"}}, **peer.HARDENED)
        peer._track(self._container)
        self._sock = self._container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        raw = getattr(self._sock, "_sock", self._sock)

        def frames() -> Any:  # stdout's bytes; stderr's go to the log as they come
            partial = b""
            for stream, data in frames_iter(raw, tty=False):
                if stream != STDOUT:
                    self._stderr.extend(data.decode(errors="replace").splitlines())
                    continue
                *whole, partial = (partial + data).split(b"\n")
                yield from (line + b"\n" for line in whole)

        threading.Thread(target=self._read_lines, args=(frames(),), daemon=True).start()
        self._container.start()

    def _read_lines(self, lines: Any) -> None:
        try:
            for line in lines:
                if line.strip():
                    self._lines.put(line)
        except OSError:  # the connection to the engine went away
            pass
        finally:
            self._lines.put(None)  # the client's output ended: it exited

    def _read_stderr(self, lines: Any) -> None:
        for line in lines:
            self._stderr.append(line.decode(errors="replace").rstrip("\n"))

    def _write(self, data: bytes) -> None:
        if self._proc is not None:
            self._proc.stdin.write(data)  # type: ignore[union-attr]
            self._proc.stdin.flush()  # type: ignore[union-attr]
        else:
            getattr(self._sock, "_sock", self._sock).sendall(data)

    def call(self, probe_call: dict[str, Any]) -> dict[str, Any]:
        """One probe call, its outcome (docs/probe-clients.md). Calls are made one at a time, in order."""
        wait = (probe_call.get("timeout_ms") or 0) / 1000 + SLACK
        with self._lock:
            if self._broken:  # an outcome that never came would answer the next call: out of step for good
                raise GoClientError(f"the Go probe client is out of step since: {self._broken}")
            try:
                self._write(json.dumps(probe_call, ensure_ascii=False).encode() + b"\n")
                line = self._lines.get(timeout=wait)
            except (OSError, ValueError):
                # A closed pipe or socket: the client exited before reading the call. Whether it exits
                # before or after the write is a race; both must read the same, with its last words
                # (a container's stderr comes in the output stream: wait for that stream's end).
                line = self._end_of_output()
            except queue.Empty:
                self._broken = f"no outcome for call {probe_call.get('id')} {probe_call.get('method')} within {wait:.0f} s"
                raise GoClientError(f"the Go probe client gave {self._broken}{self._log()}") from None
            if line is None:
                self._lines.put(None)  # stays ended for the next caller
                raise GoClientError(f"the Go probe client exited{self._status()} at call {probe_call.get('id')} "
                                    f"{probe_call.get('method')}{self._log()}")
        outcome = json.loads(line, parse_int=_int_or_negative_zero)
        if outcome.get("id") != probe_call.get("id"):
            raise GoClientError(f"the Go probe client answered call {outcome.get('id')!r} to call "
                                f"{probe_call.get('id')!r}: its output is out of step{self._log()}")
        return outcome

    def _end_of_output(self) -> None:
        """Wait (5 s at most) for the exited client's output to end; any line left is dropped: no
        call is outstanding, so no line can be an answer."""
        try:
            while self._lines.get(timeout=5) is not None:
                pass
        except queue.Empty:
            pass
        return None

    def _status(self) -> str:
        """How the exited client ended: its exit status, once its stderr is read to the end (the
        reader thread may lag the exit, and the message must carry the client's reason)."""
        if self._proc is None:
            return ""  # a container's stderr comes in the stdout stream, read to its end already
        try:
            code = self._proc.wait(5)
        except subprocess.TimeoutExpired:
            return " (its output ended, the process still runs)"
        if self._stderr_reader is not None:
            self._stderr_reader.join(5)
        return f" (status {code})"

    def _log(self) -> str:
        return "\n--- Go client stderr ---\n" + ("\n".join(self._stderr) or "(nothing)")

    def close(self) -> None:
        """End the client: its stdin closes, it finishes and exits (killed after 5 s)."""
        if self._proc is not None:
            peer._close(self._proc.stdin)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                peer.stop_process(self._proc)
            peer._close(self._proc.stdout)
            peer._close(self._proc.stderr)
            self._proc = None
        if self._container is not None:
            peer._hang_up(self._sock)
            peer._forget(self._container)
            self._container = None
        shutil.rmtree(self._tmp, ignore_errors=True)
