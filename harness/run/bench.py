"""`grpc-interop bench`: Py<->Go performance, pairwise, beside the same-language controls and the
raw grpcio floor.

A pass/fail run cannot show that one direction is several times slower than the others (flow-control
windows, message sizes, a slow path in one library). The bench runs one case per chosen method again
and again in every direction, at concurrency 1 and N, and reports calls/s, messages/s and latency
percentiles per direction. Every call is a whole case run, checked by its receiver as in a normal run,
so a bench also counts verdicts: a fast direction that answers wrong is no result.

Every loop is bounded twice: a number of calls and a time budget per phase, whichever ends first.
The Go client runs its phases in one process (go_peer/internal/engine/bench.go); the Python clients
run them here with the same rules. The raw floor is a bare grpcio unary echo of the case's first
request bytes, in this process, at the same concurrency: what grpcio costs with no harness at all.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from harness.cases import model as cases_mod
from harness.engines.peer import go_client_lines
from harness.run.runner import Direction, Prepared, Session
from python_impl import bulk
from python_impl.client import run_case, run_case_aio
from python_impl.contract import CHANNEL_OPTIONS, Result, message_class

RAW = "raw grpcio"  # the floor's row name
MODES = ("unary", "server_stream", "client_stream", "bidi")
# the case each mode is measured with: a typical message; many messages for a stream; ping-pong for bidi
PATTERN = {"unary": "typical", "server_stream": "stream/many", "client_stream": "stream/many",
           "bidi": "stream/ping_pong"}


class BenchError(ValueError):
    """A bench that cannot be set up as asked (a method with no case to measure, say)."""


@dataclass
class Phase:
    """One measurement: a case in one direction at one concurrency."""
    direction: str
    case: str
    streaming: str
    concurrency: int
    messages: int  # per call: requests sent plus responses expected
    calls: int = 0
    elapsed_ms: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    problem: str = ""  # the first call that did not pass, in one line

    @property
    def rps(self) -> float:
        return self.calls / (self.elapsed_ms / 1000) if self.elapsed_ms else 0.0

    @property
    def msgs(self) -> float:
        return self.rps * self.messages

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies (ms)."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def ok(self) -> bool:
        return self.calls > 0 and set(self.verdicts) <= {"pass"}

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "case": self.case, "streaming": self.streaming,
                "concurrency": self.concurrency, "calls": self.calls, "elapsed_ms": round(self.elapsed_ms, 3),
                "rpc_per_s": round(self.rps, 1), "msg_per_s": round(self.msgs, 1),
                "messages_per_call": self.messages, "p50_ms": self.percentile(50), "p90_ms": self.percentile(90),
                "p99_ms": self.percentile(99), "verdicts": self.verdicts, "problem": self.problem}


def bench_cases(prepared: Prepared, methods: list[str] | None) -> list[cases_mod.Case]:
    """The case to measure per method: the given methods (service/method), else the first method
    of each streaming mode in the catalogue; always on the plaintext connection (no channel)."""
    by_name = {c.name: c for c in prepared.catalogue if c.channel is None}
    if not methods:
        seen: dict[str, str] = {}
        for c in prepared.catalogue:
            seen.setdefault(c.calls[0].streaming, c.method.lstrip("/"))
        methods = [seen[m] for m in MODES if m in seen]
    out = []
    for method in [m.lstrip("/") for m in methods]:
        mode = next((c.calls[0].streaming for c in prepared.catalogue if c.method.lstrip("/") == method), None)
        if mode is None:
            example = prepared.catalogue[0].method.lstrip("/") if prepared.catalogue else "pkg.Service/Method"
            raise BenchError(f"no generated case calls {method}: name a method as service/method, e.g. {example}")
        suffix = PATTERN[mode]
        case = next((c for name, c in by_name.items()
                     if name.startswith(method + "/") and name.endswith("/" + suffix) and len(c.calls) == 1), None)
        if case is None:
            raise BenchError(f"{method} ({mode}) has no generated …/{suffix} case to measure")
        out.append(case)
    return out


def named_cases(prepared: Prepared, names: list[str]) -> list[cases_mod.Case]:
    """Cases to measure by full name (a size-limit case beside the raw floor, say)."""
    by_name = {c.name: c for c in prepared.catalogue}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise BenchError(f"no case named {', '.join(missing)} (grpc-interop cases lists them)")
    over = [n for n in names if by_name[n].channel is not None]
    if over:  # the bench measures the one plaintext connection per direction
        raise BenchError(f"{', '.join(over)} run on a channel of their own (TLS or mTLS), which bench does not "
                         "measure: name a plaintext case")
    return [by_name[n] for n in names]


def _messages(case: cases_mod.Case) -> int:
    call = case.calls[0]
    return len(call.requests) + len(call.expect.get("responses") or [])


def _record(phase: Phase, r: Result) -> None:
    phase.latencies_ms.append(r.duration_ms)
    phase.verdicts[r.verdict] = phase.verdicts.get(r.verdict, 0) + 1
    if r.verdict != "pass" and not phase.problem:
        phase.problem = "; ".join(f"{d.path}: expected {d.expected}, got {d.got}" for d in r.diffs)[:300]


class _Bounds:
    """Whether one more call may start: fewer than `calls` started and the budget not spent."""

    def __init__(self, calls: int, seconds: float) -> None:
        self.calls, self.end, self.started = calls, time.perf_counter() + seconds, 0
        self._lock = threading.Lock()

    def next(self) -> bool:
        with self._lock:
            if self.started >= self.calls or time.perf_counter() >= self.end:
                return False
            self.started += 1
            return True


def _sync_phase(phase: Phase, concurrency: int, calls: int, seconds: float, call_once: Any) -> None:
    bounds, lock = _Bounds(calls, seconds), threading.Lock()

    def worker() -> None:
        while bounds.next():
            r = call_once()
            with lock:
                _record(phase, r)

    start = time.perf_counter()
    with futures.ThreadPoolExecutor(concurrency, thread_name_prefix="interop-bench") as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    phase.elapsed_ms, phase.calls = (time.perf_counter() - start) * 1000, bounds.started


async def _aio_phase(phase: Phase, concurrency: int, calls: int, seconds: float, call_once: Any) -> None:
    bounds = _Bounds(calls, seconds)

    async def worker() -> None:
        while bounds.next():
            _record(phase, await call_once())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.elapsed_ms, phase.calls = (time.perf_counter() - start) * 1000, bounds.started


def _python_phases(session: Session, d: Direction, plan: list[Phase], cases: dict[str, cases_mod.Case],
                   calls: int, seconds: float) -> None:
    address = session.server(d.server).address
    gen, run_id = session.prepared.gen, session.run_id
    if d.client == "py":
        with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
            for ph in plan:
                case = cases[ph.case]
                _sync_phase(ph, ph.concurrency, calls, seconds, lambda: run_case(ch, gen, case, d.name, run_id))
        return

    async def all_phases() -> None:
        async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
            for ph in plan:
                case = cases[ph.case]
                await _aio_phase(ph, ph.concurrency, calls, seconds,
                                 lambda: run_case_aio(ch, gen, case, d.name, run_id))

    asyncio.run(all_phases())


def _go_phases(session: Session, d: Direction, plan: list[Phase], cases: dict[str, cases_mod.Case],
               calls: int, seconds: float) -> None:
    payload = {"target": session.server(d.server).address, "direction": d.slug, "run_id": session.run_id,
               "phases": [{"case": cases[ph.case].to_json(), "calls": calls, "concurrency": ph.concurrency,
                           "budget_ms": seconds * 1000} for ph in plan]}
    # each phase ends within its budget plus one call (its deadline at worst)
    budget = sum(seconds + max(c.timeout_ms for c in cases[ph.case].calls) / 1000 for ph in plan) + 60
    lines, _ = go_client_lines(session.prepared.build, session.runner, payload, budget)
    if len(lines) != len(plan):
        raise BenchError(f"the Go client ({d.name}) reported {len(lines)} bench phases of {len(plan)}")
    for ph, line in zip(plan, lines):
        got = json.loads(line)
        ph.calls, ph.elapsed_ms, ph.latencies_ms = got["calls"], got["elapsed_ms"], got["latencies_ms"]
        ph.verdicts = got["verdicts"]
        if got.get("problem"):
            ph.problem = "; ".join(f"{x['path']}: expected {x['expected']}, got {x['got']}"
                                   for x in got["problem"]["diffs"])[:300]


def raw_phases(cases: list[cases_mod.Case], concurrencies: list[int], calls: int, seconds: float) -> list[Phase]:
    """The floor: a bare grpcio unary echo (sync server and client, this process) of each case's first
    request bytes, at each concurrency."""
    server = grpc.server(futures.ThreadPoolExecutor(max(concurrencies) + 4))
    echo = grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)  # bytes in, the same bytes out
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("interop.bench.Raw", {"Echo": echo})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    out = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as ch:
            rpc = ch.unary_unary("/interop.bench.Raw/Echo")
            for case in cases:
                call = case.calls[0]
                payload = bulk.parse(call.requests[0], message_class(call.request_type)()).SerializeToString() \
                    if call.requests else b""
                for n in concurrencies:
                    ph = Phase(RAW, case.name, "unary", n, 2)

                    def once() -> Result:
                        start = time.perf_counter()
                        ok = rpc(payload, timeout=10) == payload
                        return Result(case.name, RAW, "pass" if ok else "fail", [],
                                      round((time.perf_counter() - start) * 1000, 3))

                    _sync_phase(ph, n, calls, seconds, once)
                    out.append(ph)
    finally:
        server.stop(grace=None)
    return out


def run_bench(session: Session, directions: list[Direction], cases: list[cases_mod.Case], concurrencies: list[int],
              calls: int, seconds: float, on_phase: Any = None) -> list[Phase]:
    """Every case in every direction at every concurrency, one direction after another (directions
    measured at once would measure each other); then the raw floor."""
    if calls < 1 or seconds <= 0:
        raise BenchError(f"every loop is bounded in count and time: --calls must be at least 1 and --duration "
                         f"above 0, got {calls} and {seconds}")
    by_name = {c.name: c for c in cases}
    out: list[Phase] = []
    for d in directions:
        plan = [Phase(d.name, c.name, c.calls[0].streaming, n, _messages(c)) for c in cases for n in concurrencies]
        (_go_phases if d.client == "go" else _python_phases)(session, d, plan, by_name, calls, seconds)
        out += plan
        if on_phase:
            on_phase(d)
    return out + raw_phases(cases, concurrencies, calls, seconds)


def render(phases: list[Phase]) -> Any:
    """A rich table: per case and concurrency, the raw floor first, then each direction."""
    from rich.table import Table

    table = Table(title="grpc-interop bench: calls of one case, checked by the receiver (latency per call, ms)")
    for name, justify in (("case", "left"), ("conc.", "right"), ("direction", "left"), ("calls", "right"),
                          ("calls/s", "right"), ("msg/s", "right"), ("p50", "right"), ("p90", "right"),
                          ("p99", "right"), ("p50 ÷ raw", "right"), ("verdicts", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    keys = list(dict.fromkeys((p.case, p.concurrency) for p in phases))
    for case, n in keys:
        rows = sorted((p for p in phases if (p.case, p.concurrency) == (case, n)), key=lambda p: p.direction != RAW)
        raw = next((p for p in rows if p.direction == RAW), None)
        for i, p in enumerate(rows):
            ratio = p.percentile(50) / raw.percentile(50) if raw and raw.percentile(50) else math.nan
            verdicts = "ok" if p.ok else ", ".join(f"{v} {k}" for k, v in sorted(p.verdicts.items())) or "no call"
            table.add_row(case if i == 0 else "", str(n) if i == 0 else "", p.direction, str(p.calls),
                          f"{p.rps:,.0f}", f"{p.msgs:,.0f}", f"{p.percentile(50):.2f}", f"{p.percentile(90):.2f}",
                          f"{p.percentile(99):.2f}", "" if p.direction == RAW else f"{ratio:.1f}×",
                          verdicts if p.ok else f"[red]{verdicts}[/red]", end_section=i == len(rows) - 1)
    return table
