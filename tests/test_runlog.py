"""Quiet by default, nothing lost (issue 19 items 1, 2): what the libraries write to fd 2 goes to the
run's log file, never to the terminal, and a failing case can show the lines of its time span; the
progress names a slow case in flight and, off a terminal, prints one line per direction."""

from __future__ import annotations

import ctypes
import io
import logging
import os
import threading
import time
import sys
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from harness.report import progress as progress_mod
from harness.report.progress import LiveProgress
from harness.run.runlog import RunLog


def test_fd2_warnings_and_loggers_go_to_the_log_not_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    echoed: list[str] = []
    log = RunLog(tmp_path / "run.log", echo=echoed.append)
    with log:
        t0 = time.monotonic()
        # as grpc core writes: from C, straight to file descriptor 2
        ctypes.CDLL(None).dprintf(2, b"E1207 12:00:00.000000 1 chttp2_transport.cc:1] from C\n")
        logging.getLogger("python_impl.generic").info("server: server.requests[1] differs")
        warnings.warn("a library's warning", DeprecationWarning, stacklevel=1)
        time.sleep(0.2)
        t1 = time.monotonic()
    log.close()
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)
    text = (tmp_path / "run.log").read_text()
    for line in ("chttp2_transport.cc:1] from C", "python_impl.generic INFO server: server.requests[1] differs",
                 "a library's warning"):
        assert line in text
        assert any(line in e for e in echoed), "-v prints every line live"
    lines, n = log.between(t0, t1)
    assert n >= 3 and any("from C" in line for line in lines)
    assert log.between(t1 + 1, t1 + 2) == ([], 0)
    # and fd 2 is the terminal's again
    ctypes.CDLL(None).dprintf(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_off_a_terminal_one_line_per_direction_and_the_slow_case_named(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    out = Console(file=buf, force_terminal=False, width=200)
    with LiveProgress(out, {"py→go": 2, "go→go": 1}) as live:
        live.event("py→go", "a", None)
        live.event("py→go", "svc.S/M/slow", None)
        live.event("py→go", "a", "pass")
        assert buf.getvalue() == "", "nothing is printed before a direction finishes"
        monkeypatch.setattr(progress_mod.time, "monotonic", lambda: time.monotonic_ns() / 1e9 + 10)
        column = progress_mod._InFlight(live)
        task = type("T", (), {"fields": {"direction": "py→go"}})()
        assert column.render(task).plain == "in flight 10 s: M/slow"
        live.event("py→go", "svc.S/M/slow", "fail")
        live.event("go→go", "b", "divergence")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("py→go: 2/2 case runs, 1 failing, 0 known divergences in ")
    assert lines[1].startswith("go→go: 1/1 case runs, 0 failing, 1 known divergences in ")


def test_on_a_terminal_stderr_still_goes_to_the_log_under_the_bar(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """rich's live display redirects sys.stderr through the console by default: a thread's traceback
    or a library logger's last-resort line (grpc's Python loggers have no handler) would then reach
    the terminal above the bar instead of the run's log. Under the bar, sys.stderr stays fd 2."""
    buf = io.StringIO()
    out = Console(file=buf, force_terminal=True, width=120)
    log = RunLog(tmp_path / "run.log")
    with log:
        # as in a real process: sys.stderr writes to file descriptor 2 (pytest gives it another file)
        monkeypatch.setattr(sys, "stderr", open(2, "w", closefd=False))  # noqa: SIM115
        with LiveProgress(out, {"py→go": 1}):
            orphan = logging.getLogger("grpc._test_lastresort")
            monkeypatch.setattr(orphan, "propagate", False)  # no handler anywhere: logging's last resort
            orphan.warning("a grpc python logger's line")
            sys.stderr.write("Exception in thread interop-x: a traceback line\n")
            sys.stderr.flush()
        time.sleep(0.2)
        monkeypatch.undo()
    log.close()
    text = (tmp_path / "run.log").read_text()
    assert "a grpc python logger's line" in text and "a traceback line" in text, text
    assert "traceback line" not in buf.getvalue() and "logger's line" not in buf.getvalue(), buf.getvalue()


def test_a_failing_echo_never_stops_the_reader(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """`grpc-interop run -v | head`: printing live fails once stdout is gone. The reader must go on
    draining fd 2 into the file, or grpc core's threads block on a full pipe and the run hangs."""
    def gone(line: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    log = RunLog(tmp_path / "run.log", echo=gone)
    with log:
        def write() -> None:
            for i in range(3000):  # about 300 kB: several times a pipe's buffer
                os.write(2, f"E1207 line {i:05d} ".encode() + b"x" * 80 + b"\n")
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(20)
        blocked = writer.is_alive()
        time.sleep(0.2)
    log.close()
    capfd.readouterr()
    assert not blocked, "a writer to fd 2 blocked: the reader stopped"
    assert "line 02999" in (tmp_path / "run.log").read_text()


def test_each_line_is_on_disk_as_it_comes(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """A process that dies mid-run (grpc core's fatal `F…` line, then abort) runs no flush: each line
    must be in the file once read, not in a buffer that dies with the process."""
    log = RunLog(tmp_path / "run.log")
    with log:
        os.write(2, b"F1207 12:00:00.000000 1 some_core_file.cc:1] assertion failed: x\n")
        deadline = time.monotonic() + 5
        while log.count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        on_disk = (tmp_path / "run.log").read_text()
    log.close()
    capfd.readouterr()
    assert "assertion failed: x" in on_disk


def test_a_line_written_as_the_case_ends_is_among_its_lines(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """The reader stamps a line when it reads it, a moment after grpc core wrote it: the line a
    failing call logs just before the case ends must still be shown with the case."""
    log = RunLog(tmp_path / "run.log")
    misses = 0
    with log:
        for i in range(20):
            start = time.monotonic()
            os.write(2, f"E1207 the call failed {i}\n".encode())
            end = time.monotonic()  # the case ends right after its last call's line
            time.sleep(0.3)
            lines, _ = log.between(start, end)
            misses += not any(f"the call failed {i}" in line for line in lines)
    log.close()
    capfd.readouterr()
    assert misses == 0, f"{misses} of 20 lines written as their case ended were not shown with it"


def test_each_kind_of_log_keeps_its_own_last_ones(tmp_path: Path) -> None:
    """A test session's many short runs prune run logs only: the session's own (pytest-…) log, which
    the summary names, survives them, and old pytest logs go by the same count."""
    from harness.run import runlog

    logs = tmp_path / "logs"
    logs.mkdir()
    session = logs / "pytest-20261207-000000-1.log"
    session.write_text("the shared servers' lines\n")
    for i in range(runlog.KEEP + 3):
        with RunLog(logs / f"run-20261207-0000{i:02d}-{i}.log"):
            pass
    assert session.exists() and len(list(logs.glob("run-*.log"))) == runlog.KEEP
    for i in range(runlog.KEEP + 1):
        old = logs / f"pytest-20261206-0000{i:02d}-{i}.log"
        old.write_text("")
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    with RunLog(logs / "pytest-20261207-000001-2.log"):
        pass
    assert session.exists() and len(list(logs.glob("pytest-*.log"))) == runlog.KEEP


def test_paused_lines_reach_the_old_fd2_and_a_child_started_then_inherits_it(tmp_path: Path,
                                                                              capfd: pytest.CaptureFixture) -> None:
    """pause(): fd 2 is what it was (an xdist worker started then keeps the terminal); resume(): the
    log again; leaving while paused ends at once and leaves no descriptor open."""
    import subprocess

    fds = len(os.listdir("/proc/self/fd"))
    log = RunLog(tmp_path / "run.log")
    started = time.monotonic()
    with log:
        os.write(2, b"into the log 1\n")
        log.pause()
        os.write(2, b"on the terminal\n")
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'from a child\\n')"], check=True)
        log.resume()
        os.write(2, b"into the log 2\n")
        log.pause()  # and left while paused
    log.close()
    printed = capfd.readouterr().err
    assert time.monotonic() - started < 4  # the reader saw its end (its join waits up to 5 s)
    assert "on the terminal" in printed and "from a child" in printed and "into the log" not in printed
    assert log.tail(5).splitlines() == ["into the log 1", "into the log 2"]
    assert len(os.listdir("/proc/self/fd")) == fds
