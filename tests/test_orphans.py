"""A harness that dies by a signal leaves nothing running: its containers and Go peer processes
stop by themselves within 10 s, even after SIGKILL, which no handler can see. Real containers and
processes; where no Docker engine answers, the container half says so loudly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engines import peer

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.interop

SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]


def _start_run(runner: str) -> subprocess.Popen[bytes]:
    """A go→go run: a server peer and a client peer are alive at the same time during it (its
    connection cases hold the Go client's batch for 30 s). One proto file is enough for that, and the
    session's cache holds its build: an empty cache folder per test built the Go peer six times."""
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--protos", str(REPO / "protos"),
                             "--files", "hello.proto", "--direction", "go-go", "--peer-runner", runner],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_containers_stop_after_the_harness_dies(sig: signal.Signals) -> None:
    client = peer.docker_client()
    if client is None:
        if os.environ.get("INTEROP_PEER_RUNNER") == "docker":
            pytest.fail("INTEROP_PEER_RUNNER=docker but no Docker engine answers (run ci/docker-engine.sh)")
        pytest.skip("NO DOCKER ENGINE on this machine: orphan-proof container lifecycle NOT tested")
    proc = _start_run("docker")
    session = {"label": f"{peer.SESSION_LABEL}={proc.pid}@{socket.gethostname()}"}

    def mine() -> list:
        # sparse: no inspect per container, which fails for one that removes itself meanwhile
        return client.containers.list(all=True, filters=session, sparse=True)

    try:
        # both peers at once, started: the server container, and the client container running its batch.
        # (A container created in the few milliseconds before its start is not covered: it never runs,
        # so it cannot see its stdin close; the next run's reaper and `grpc-interop clean` remove it.)
        assert _wait_for(lambda: sum(c.attrs.get("State") == "running" for c in mine()) >= 2, 300), \
            f"the run never had its two containers up\n{proc.stderr.read().decode() if proc.poll() is not None else ''}"
        proc.send_signal(sig)
        # every container that ran stops; one created in the instant before the kill never started
        # (the run's lanes start Go client batches at different moments), so it cannot see its stdin
        # close: the next run's reaper removes it, which is what is checked for it
        assert _wait_for(lambda: all(c.attrs.get("State") == "created" for c in mine()), 10), \
            f"after {sig.name}, containers of the dead harness remain: " \
            f"{[(c.short_id, c.attrs.get('State')) for c in mine()]}"
        if mine():
            proc.wait(10)  # the session is dead: its pid no longer lives
            peer.clean(all_sessions=False)
            assert not mine(), f"the next run's reaper left containers of the dead harness: {[c.short_id for c in mine()]}"
    finally:
        proc.kill()
        proc.wait()
        for c in mine():
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001  it removed itself meanwhile
                pass


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:  # it ended meanwhile
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for PID 1, which may never reap it here)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]) != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_go_peer_processes_stop_after_the_harness_dies(sig: signal.Signals) -> None:
    proc = _start_run("process")
    peers: list[int] = []
    try:
        def both_up() -> bool:
            peers[:] = [p for p in _children(proc.pid) if "interop-peer" in _cmdline(p)]
            return len(peers) >= 2

        assert _wait_for(both_up, 300), "the run never had its two Go peer processes up"
        proc.send_signal(sig)
        assert _wait_for(lambda: not any(_running(p) for p in peers), 10), \
            f"after {sig.name}, Go peer processes of the dead harness still run: {[p for p in peers if _running(p)]}"
    finally:
        proc.kill()
        proc.wait()


def test_a_container_created_after_the_interruption_is_removed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane creating a container when the signal came: the reap already ran, so the container must go
    at once (it would run its whole batch and hold the interpreter's exit, which joins the lanes)."""
    removed: list[str] = []

    class Created:
        id = "c-after-the-signal"

        def remove(self, force: bool = False) -> None:
            removed.append(self.id)

    monkeypatch.setattr(peer, "_closing", False)
    peer.reap_live(closing=True)
    with pytest.raises(peer.PeerError, match="interrupted"):
        peer._track(Created())
    assert removed == ["c-after-the-signal"] and Created.id not in peer._live


def test_an_interruption_kills_the_go_peer_processes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """--peer-runner process: the reap kills every tracked peer process (a lane waiting on a Go client
    would hold the interpreter's exit, and with it the pipes the peers stop on), and one a lane starts
    after it is killed at once."""
    monkeypatch.setattr(peer, "_closing", False)
    monkeypatch.setattr(peer, "_live_procs", set())
    running = subprocess.Popen(["sleep", "60"])
    late = subprocess.Popen(["sleep", "60"])
    try:
        peer._track_process(running)
        peer.reap_live(closing=True)
        assert running.wait(5) == -signal.SIGKILL
        with pytest.raises(peer.PeerError, match="interrupted: no further peer process"):
            peer._track_process(late)
        assert late.poll() == -signal.SIGKILL and not peer._live_procs
    finally:
        for p in (running, late):
            p.kill()
            p.wait()


def test_sigterm_while_the_main_thread_holds_the_reap_lock_still_exits() -> None:
    """The SIGTERM handler reaps on the main thread, which may hold the lock at that moment (starting
    or stopping a peer): a plain lock would hang the harness for good."""
    code = ("import os, signal, time\nfrom harness.engines import peer\n"
            "with peer._live_lock:\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(20)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=15)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.decode()[-2000:]


def test_sigint_reaps_before_anything_unwinds() -> None:
    """SIGINT reaps the peers first, then raises KeyboardInterrupt: unwinding (the servers stop before
    the CLI's reap) took over 10 s under load while the Go client container ran on."""
    code = ("import os, signal, subprocess\nfrom harness.engines import peer\n"
            "p = subprocess.Popen(['sleep', '60'])\npeer._track_process(p)\n"
            "try:\n    os.kill(os.getpid(), signal.SIGINT)\nexcept KeyboardInterrupt:\n"
            "    print('interrupted', p.wait(5) == -signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "interrupted True", proc.stdout + proc.stderr[-2000:]
