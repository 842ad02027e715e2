"""The run's log (issue 19 item 1): every line the libraries print, kept in one file per run, off the
terminal unless asked for (-v).

grpc core writes its log lines from C to file descriptor 2, and so do Python's warnings, the
tracebacks of threads and the python_impl / harness loggers: while a run owns the terminal, fd 2 is a
pipe that one thread reads. Each line is written to the file with the time it came, kept in memory
(so a failing case can show the lines logged during its calls) and, with `verbose`, printed live
through the console (above the progress bar). The Go peers' output is captured by their runners and
appended at the end (append()). grpc core sees its verbosity from GRPC_VERBOSITY: left as it is.
"""

from __future__ import annotations

import bisect
import datetime
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Callable

from harness import cache

KEEP = 20  # run logs kept in the cache folder (the oldest go)
LOGGERS = ("python_impl", "harness")
# how long after a line is written the reader may take it (a thread of this process: a GIL switch,
# more on loaded cores)
GRACE_S = 0.5


def default_path(kind: str = "run") -> Path:
    """A new log in the cache folder; `kind` (run, pytest) keeps its own last KEEP logs, so the many
    short runs of a test session cannot prune the log of the session's own servers while it is written."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return cache.root() / "logs" / f"{kind}-{stamp}-{os.getpid()}.log"


def _prune(folder: Path, kind: str) -> None:
    logs = sorted(folder.glob(f"{kind}-*.log"), key=_mtime)
    for old in logs[:-KEEP]:
        old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # pruned meanwhile by a run in another process (test sessions start many)
        return 0.0


class RunLog:
    """A context manager: fd 2 into the run's log while it is entered. `echo` prints a line live
    (verbose); None keeps the terminal quiet."""

    def __init__(self, path: Path | None = None, echo: Callable[[str], None] | None = None) -> None:
        self.path = path or default_path()
        self.echo = echo
        self._times: list[float] = []   # monotonic time of each line, in order
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._saved_fd: int | None = None
        self._paused_fd: int | None = None  # the pipe's write end while fd 2 is back (pause())
        self._reader: threading.Thread | None = None
        self._handler: logging.Handler | None = None
        self._loggers: list[tuple[logging.Logger, bool, int]] = []
        self.last: list[str] = []  # the command's summary: printed after the log's name (cli.logged)

    def __enter__(self) -> RunLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # line-buffered: a process that dies (grpc core's fatal line, then abort) runs no flush
        self._file = self.path.open("a", encoding="utf-8", errors="replace", buffering=1)
        if self.path.parent.name == "logs":  # this one is the newest of the KEEP kept
            _prune(self.path.parent, self.path.name.split("-", 1)[0])
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        self._saved_fd = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._reader = threading.Thread(target=self._read, args=(read_end,), name="interop-runlog", daemon=True)
        self._reader.start()
        # the harness's and the Python peers' own lines, at INFO, into the pipe like the rest (through
        # a handle of its own: sys.stderr may be another object than fd 2, e.g. under pytest)
        self._stream = os.fdopen(os.dup(2), "w", encoding="utf-8", errors="replace", buffering=1)
        self._handler = logging.StreamHandler(self._stream)
        self._handler.setLevel(logging.INFO)
        self._handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self._loggers.append((logger, logger.propagate, logger.level))
            logger.addHandler(self._handler)
            logger.propagate = False  # never also through a root handler someone configured
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
        logging.captureWarnings(True)  # warnings through the py.warnings logger: into the log too
        self._loggers.append((logging.getLogger("py.warnings"), logging.getLogger("py.warnings").propagate,
                              logging.getLogger("py.warnings").level))
        logging.getLogger("py.warnings").addHandler(self._handler)
        logging.getLogger("py.warnings").propagate = False
        return self

    def pause(self) -> None:
        """fd 2 back to what it was until resume(): a child process started meanwhile (an xdist worker)
        inherits that, not this log's pipe."""
        if self._saved_fd is not None and self._paused_fd is None:
            sys.stderr.flush()
            self._paused_fd = os.dup(2)
            os.dup2(self._saved_fd, 2)

    def resume(self) -> None:
        if self._paused_fd is not None:
            sys.stderr.flush()
            os.dup2(self._paused_fd, 2)
            os.close(self._paused_fd)
            self._paused_fd = None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.resume()  # one write end less: the reader sees its end when fd 2 goes back below
        logging.captureWarnings(False)
        for logger, propagate, level in self._loggers:
            logger.removeHandler(self._handler)  # type: ignore[arg-type]
            logger.propagate, logger.level = propagate, level
        self._loggers.clear()
        self._stream.close()
        sys.stderr.flush()
        if self._saved_fd is not None:
            os.dup2(self._saved_fd, 2)  # the last write end of the pipe goes: the reader sees its end
            os.close(self._saved_fd)
            self._saved_fd = None
        if self._reader is not None:
            self._reader.join(5)
        self._file.flush()

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            rest = b""
            for chunk in iter(lambda: pipe.read(65536), b""):
                *whole, rest = (rest + chunk).split(b"\n")
                for raw in whole:
                    self._add(raw.decode(errors="replace"))
            if rest:
                self._add(rest.decode(errors="replace"))

    def _add(self, line: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._file.write(f"{datetime.datetime.now().strftime('%H:%M:%S.%f')[:-3]} {line}\n")
            self._times.append(now)
            self._lines.append(line)
        if self.echo is not None:
            try:
                self.echo(line)
            except Exception:  # noqa: BLE001 -- stdout gone (`run -v | head`): the file still gets every line
                self.echo = None  # the reader must go on draining fd 2, or the libraries' writes fail

    def append(self, title: str, text: str) -> None:
        """Another process's output (a Go peer's), under a title."""
        if not text.strip():
            return
        with self._lock:
            self._file.write(f"\n===== {title} =====\n{text.rstrip()}\n")
            self._file.flush()

    def between(self, start: float, end: float, limit: int = 40) -> tuple[list[str], int]:
        """The lines that came between two monotonic times (a case's calls): at most `limit`, and how
        many there were. A line is stamped when the reader takes it, a moment after it was written:
        those taken up to GRACE_S after `end` count (the line a failing call logs as its case ends)."""
        with self._lock:
            lo = bisect.bisect_left(self._times, start)
            hi = bisect.bisect_right(self._times, end + GRACE_S)
            lines = self._lines[lo:hi]
        return lines[:limit], len(lines)

    @property
    def count(self) -> int:
        return len(self._lines)

    def tail(self, n: int) -> str:
        with self._lock:
            return "\n".join(self._lines[-n:])

    def close(self) -> None:
        self._file.close()
