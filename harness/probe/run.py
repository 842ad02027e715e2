"""The probe's engine: for each method, Hypothesis draws schema-valid requests (the fuzz strategies),
every client flavour sends each one, the checks look at the outcomes side by side, and a failing
check's example is shrunk by Hypothesis itself (each check raises its own exception type, so
Hypothesis shrinks each check's failure on its own)."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
from google.protobuf.descriptor import MethodDescriptor
from hypothesis.errors import Flaky
from hypothesis import HealthCheck, Phase, Verbosity, given, seed as hseed, settings, strategies as st

from harness.cases.model import streaming_mode
from harness.fuzz.strategies import MAX_MESSAGES, messages
from harness.probe import checks as chk, standard

UNIMPLEMENTED, UNAVAILABLE = 12, 14
MAX_EXAMPLES = 200  # per method; the time share usually ends a method first
BATCH = 5  # examples per Hypothesis round
MIN_SHRINK_S = 5.0


class Limiter:
    """--rps: at most `rps` calls a second over all clients (None: unbounded)."""

    def __init__(self, rps: float | None) -> None:
        self.gap = 1.0 / rps if rps else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.gap:
            return
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next)
            self.next = at + self.gap
        time.sleep(max(0.0, at - now))

    def paced(self, channel: grpc.Channel) -> grpc.Channel:
        """The channel with every call it starts paced by this limiter: the probe's own calls beside
        the clients' (check 6's reflection and health calls) count towards --rps too."""
        return grpc.intercept_channel(channel, _Paced(self))


class _Paced(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        self.limiter.wait()
        return continuation(details, request)

    intercept_unary_unary = intercept_unary_stream = intercept_stream_unary = intercept_stream_stream = _call


@dataclass
class Finding:
    method: str
    check: str
    message: str
    call: dict[str, Any]
    outcomes: dict[str, dict[str, Any]]
    size: tuple[int, int] = (0, 0)

    def to_json(self, reproduce: str, grpcurl: str | None) -> dict[str, Any]:
        return {"method": self.method, "check": self.check, "message": self.message, "outcomes": self.outcomes,
                "example": self.call, "reproduce": reproduce, "grpcurl": grpcurl}


@dataclass
class Tally:
    """What ran, for the summary: calls per method and client, examples and findings per check."""
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, int] = field(default_factory=dict)
    nondeterministic: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # method -> why the probe could not probe it

    def count(self, method: str, client: str) -> None:
        per = self.calls.setdefault(method, {})
        per[client] = per.get(client, 0) + 1


_FAILURE_TYPES: dict[str, type[Exception]] = {}


def _failure(check: str) -> type[Exception]:
    """One exception type per check: Hypothesis tells failures apart by type, so it shrinks each."""
    if check not in _FAILURE_TYPES:
        _FAILURE_TYPES[check] = type(f"ProbeCheckFailed_{check}", (Exception,), {})
    return _FAILURE_TYPES[check]


def _ours(e: BaseException) -> bool:
    """A check's failure, a group of them, or one that did not come back when Hypothesis replayed it
    (Flaky: the budget ended the replay, or the server changed its mind): never the probe's own error."""
    if isinstance(e, tuple(_FAILURE_TYPES.values())):
        return True
    if isinstance(e, BaseExceptionGroup):
        return all(_ours(x) for x in e.exceptions)
    return isinstance(e, Flaky) and not e.__cause__


def request_strategy(m: MethodDescriptor) -> st.SearchStrategy[list[bytes]]:
    """Serialized request messages of one call: one for unary and server_stream, a stream of 0..MAX for
    client_stream and bidi; every message schema-valid (the fuzz strategies)."""
    one = messages(m.input_type).map(lambda msg: msg.SerializeToString())
    return st.lists(one, max_size=MAX_MESSAGES) if m.client_streaming else one.map(lambda b: [b])


def probe_call(m: MethodDescriptor, requests: list[bytes], timeout_ms: int, n: int,
               metadata: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"id": f"c{n}", "method": f"{m.containing_service.full_name}/{m.name}", "streaming": streaming_mode(m),
            "requests": [base64.b64encode(r).decode() for r in requests], "metadata": metadata or {},
            "timeout_ms": timeout_ms, "cancel_after_responses": None}


@dataclass
class Prober:
    clients: list[Any]                      # each with .name and .call(probe_call) -> outcome
    pool: Any
    timeout_ms: int
    limiter: Limiter
    allow: list[tuple[str, int]]
    tally: Tally = field(default_factory=Tally)
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)  # methods whose cancel probe was sent
    answered: dict[str, str] = field(default_factory=dict)  # service -> standard.ANSWERS | UNIMPLEMENTED | ...
    n: int = 0

    def __post_init__(self) -> None:
        self.pool_exec = ThreadPoolExecutor(max_workers=len(self.clients), thread_name_prefix="probe-client")

    def exchange(self, method: str, pc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The same call from every client flavour at once."""
        def one(client: Any) -> dict[str, Any]:
            self.limiter.wait()
            self.tally.count(method, client.name)
            return client.call(pc)
        futures = {c.name: self.pool_exec.submit(one, c) for c in self.clients}
        outcomes = {name: f.result() for name, f in futures.items()}
        service = method.split("/")[0]
        if any(o.get("code") is not None and o["code"] >= 0 and o["code"] not in (UNIMPLEMENTED, UNAVAILABLE)
               and not o.get("error") for o in outcomes.values()):  # the server itself answered
            self.answered[service] = standard.ANSWERS
        elif self.answered.get(service) != standard.ANSWERS:
            unknown = any(o.get("message", "").startswith(standard.UNKNOWN_SERVICE) for o in outcomes.values())
            self.answered[service] = standard.UNREGISTERED if unknown else standard.UNIMPLEMENTED
        return outcomes

    def check(self, method: str, pc: dict[str, Any], outcomes: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
        x = chk.Exchange(method, pc, outcomes, self.pool, method in self.tally.nondeterministic,
                         chk.allowed_for(method, self.allow))
        failed = [(name, msg) for name, fn in chk.CHECKS.items() if (msg := fn(x)) is not None]
        if any(name == "clients_agree" for name, _ in failed) and not x.nondeterministic and self._nondeterministic(
                method, pc, outcomes):
            x.nondeterministic = True
            failed = [(name, msg) for name, fn in chk.CHECKS.items() if (msg := fn(x)) is not None]
        return failed

    def _nondeterministic(self, method: str, pc: dict[str, Any], first: dict[str, dict[str, Any]]) -> bool:
        """Check 7: each client sends the call again; when one client's own answers differ, the method
        is non-deterministic (the two answers are the evidence)."""
        again = self.exchange(method, pc)
        x = chk.Exchange(method, pc, first, self.pool)
        for name, o in again.items():
            if chk.signature(x, o, False) != chk.signature(x, first[name], False):
                self.tally.nondeterministic[method] = {
                    "client": name, "call": pc, "first": first[name], "second": o,
                    "why": f"{name} sent the same call twice and got different answers; check clients_agree "
                           f"compares only status codes and message counts for this method"}
                return True
        return False

    def _cancel(self, method: str, pc: dict[str, Any]) -> list[tuple[str, str]]:
        """Check 4's cancel part, once per streaming method: the same call, cancelled by the client after
        its first response, must end CANCELLED with that one response, within the call's bound."""
        self.cancelled.add(method)
        self.n += 1
        cancel = {**pc, "id": f"c{self.n}", "cancel_after_responses": 1}
        outcomes = self.exchange(method, cancel)
        failed = self.check(method, cancel, outcomes)
        for name, msg in failed:
            self.record(method, name, msg, cancel, outcomes)
        return []  # recorded here: the uncancelled example passed, so it is not what Hypothesis should shrink

    def record(self, method: str, check: str, msg: str, pc: dict[str, Any], outcomes: dict[str, Any]) -> None:
        reqs = pc["requests"]
        size = (sum(len(r) for r in reqs), len(reqs))
        old = self.findings.get((method, check))
        if old is None or size <= old.size:  # Hypothesis shrinks: the smallest failing example is kept
            self.findings[(method, check)] = Finding(method, check, msg, pc, outcomes, size)

    def probe_method(self, m: MethodDescriptor, share_s: float, shrink_s: float, seed: int) -> None:
        """Rounds of BATCH examples (each round its own Hypothesis run, seeded from --seed and the round)
        until the method's share of the budget is spent: a round cannot overrun it by more than a few
        examples, since Hypothesis keeps drawing (slowly, for big types) until its max_examples. A round
        that finds a failure shrinks it (more time: shrink_s), then the method is done."""
        method = f"{m.containing_service.full_name}/{m.name}"
        start = time.monotonic()
        state: dict[str, Any] = {"failed_at": None}
        strategy = request_strategy(m)

        def example(requests: list[bytes]) -> None:
            now = time.monotonic()
            limit = start + share_s + (shrink_s if state["failed_at"] is not None else 0.0)
            # a method's first example is always sent: on a busy machine Hypothesis' own start can outlast
            # a small share, and a method that got no call would pass unprobed
            if now > limit and self.tally.examples.get(method):
                return
            self.n += 1
            pc = probe_call(m, requests, self.timeout_ms, self.n)
            outcomes = self.exchange(method, pc)
            self.tally.examples[method] = self.tally.examples.get(method, 0) + 1
            failed = self.check(method, pc, outcomes)
            if not failed and m.server_streaming and method not in self.cancelled and all(
                    len(o["responses"]) >= 2 for o in outcomes.values()):
                failed = self._cancel(method, pc)
            for name, msg in failed:
                self.record(method, name, msg, pc, outcomes)
            if failed:
                state["failed_at"] = state["failed_at"] or now
                raise _failure(failed[0][0])(failed[0][1])

        for round_ in range(MAX_EXAMPLES // BATCH):
            if (round_ and time.monotonic() > start + share_s) or state["failed_at"] is not None:
                break  # the first round always runs (its first example is always sent)
            run = settings(database=None, max_examples=BATCH, deadline=None, verbosity=Verbosity.quiet,
                           phases=[Phase.generate, Phase.shrink], report_multiple_bugs=True, print_blob=False,
                           suppress_health_check=list(HealthCheck))(hseed(seed * 1000 + round_)(given(strategy)(example)))
            try:
                run()
            except BaseException as e:  # noqa: BLE001 - Hypothesis re-raises the findings (or a group of them)
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                if not _ours(e):  # the probe itself failed (a request it could not build, a client gone)
                    self.tally.errors[method] = f"{type(e).__name__}: {e}"[:2000]
                    return

    def close(self) -> None:
        self.pool_exec.shutdown(wait=True)
        for c in self.clients:
            c.close()


def probe_all(prober: Prober, methods: list[MethodDescriptor], budget_s: float, seed: int,
              on_method: Callable[[str], None] = lambda m: None) -> None:
    """Each method gets an equal share of the budget; a method with a finding gets as much again to
    shrink it, and at least MIN_SHRINK_S (a minimal example is worth a few seconds on a busy machine)."""
    if not methods:
        return
    share = budget_s / len(methods)
    for m in methods:
        on_method(f"{m.containing_service.full_name}/{m.name}")
        prober.probe_method(m, share, max(share, MIN_SHRINK_S), seed)
