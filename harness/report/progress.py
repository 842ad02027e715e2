"""Live progress of a run (issue 19 item 2): one bar per direction, advanced as each case ends, that
names the case in flight once one has taken longer than a few seconds. On a terminal that is not a
TTY (CI logs) nothing is redrawn: one line per direction when it finishes.

It hears of cases through the session's events (harness/run/runner.py `Events`), from any thread.
Nothing else is printed through it: the libraries' lines go to the run's log (harness/run/runlog.py).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from harness.report.verdicts import OK_VERDICTS

# a case in flight longer than this is named beside its direction's bar
SLOW_S = 3.0


class _Direction:
    def __init__(self, name: str, total: int) -> None:
        self.name, self.total = name, total
        self.done = self.failing = self.known = 0
        self.in_flight: dict[str, float] = {}  # case -> when it started (monotonic)
        self.started = time.monotonic()
        self.reported = False

    def slowest(self, now: float) -> tuple[str, float] | None:
        """The case in flight for longest, if longer than SLOW_S."""
        if not self.in_flight:
            return None
        case, since = min(self.in_flight.items(), key=lambda kv: kv[1])
        return (case, now - since) if now - since >= SLOW_S else None


class _InFlight(ProgressColumn):
    """The direction's failures so far, and its slowest case in flight (computed at each redraw)."""

    def __init__(self, live: LiveProgress) -> None:
        super().__init__()
        self.live = live

    def render(self, task: Task) -> Text:
        d = self.live.directions.get(task.fields.get("direction", ""))
        if d is None:
            return Text("")
        text = Text(no_wrap=True, overflow="ellipsis")
        if d.failing:
            text.append(f"{d.failing} failing ", style="bold red")
        slow = d.slowest(time.monotonic())
        if slow is not None:
            case, seconds = slow
            # the method and pattern (the service is the matrix's business): the line stays one line
            text.append(f"in flight {seconds:.0f} s: {case.split('/', 1)[-1]}", style="dim")
        return text


class LiveProgress:
    """The run's progress: `event(direction, case, verdict | None)` from the session's threads."""

    def __init__(self, out: Console, totals: dict[str, int], already: dict[str, int] | None = None) -> None:
        self.out, self.tty = out, out.is_terminal
        self.directions = {name: _Direction(name, total) for name, total in totals.items()}
        for name, n in (already or {}).items():  # rows that ran no case (a file a language refused)
            self.directions[name].done += n
            self.directions[name].failing += n
        self._lock = threading.Lock()
        # redirect_stderr=False: rich would print whatever is written to sys.stderr (a thread's
        # traceback, a library logger's last-resort line) above the bar; it stays fd 2, the run's log
        self._bar = Progress(TextColumn("{task.description:>11}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), _InFlight(self), console=out, transient=True, disable=not self.tty,
                             redirect_stderr=False)
        self._tasks = {name: self._bar.add_task(name, total=d.total, completed=d.done, direction=name)
                       for name, d in self.directions.items()}

    def __enter__(self) -> LiveProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._bar.__exit__(kind, exc, tb)
        if not self.tty and kind is None:  # directions that ended without every case's result
            for d in self.directions.values():
                self._report(d)

    def event(self, direction: str, case: str, verdict: str | None) -> None:
        d = self.directions.get(direction)
        if d is None:
            return
        with self._lock:
            if verdict is None:
                d.in_flight[case] = time.monotonic()
                return
            d.in_flight.pop(case, None)
            d.done += 1
            d.failing += verdict not in OK_VERDICTS
            d.known += verdict == "divergence"
            finished = d.done >= d.total
        self._bar.update(self._tasks[direction], completed=d.done)
        if finished:
            self._report(d)

    def _report(self, d: _Direction) -> None:
        """A CI log's one line per direction (a terminal has the bars instead)."""
        with self._lock:
            if self.tty or d.reported:
                return
            d.reported = True
        missing = d.total - d.done
        self.out.print(f"{d.name}: {d.done}/{d.total} case runs, {d.failing} failing, {d.known} known divergences"
                       + (f", {missing} without a result" if missing else "")
                       + f" in {time.monotonic() - d.started:.1f} s", markup=False, soft_wrap=True)
