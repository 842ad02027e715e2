"""The runner: proto set -> generated code -> cases -> peers -> results, for every direction.

Separate from both engines: it only starts peers, hands them cases and collects verdicts.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import json
import shlex
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from google.protobuf import descriptor_pool

from harness.cases import channels as channel_cases
from harness.cases import generate as casegen
from harness.cases import model as cases_mod
from harness.cases import connection, profiles, standard
from harness.cases import wire as wire_cases
from harness.run import capabilities, divergences, handshakes, wirecases
from harness.protoset.codegen import (Finding, GoBuild, build_go, go_build_tags, generate_python, import_python,
                                      load, python_findings, reported)
from harness.run import versions as versions_mod
from harness.cases.model import FINDING_PREFIX
from harness.engines import certs as certs_mod
from harness.engines.peer import GoServer, PeerError, PythonServer, output_lines, run_go_client
from harness.engines.wire import WireObserver
from harness.run import observed
from harness.run import shard as shard_mod
from harness.protoset import ProtoSet
from python_impl.client import run_case, run_case_aio
from python_impl.connection import LISTENERS as connection_listeners
from python_impl import channels
from python_impl.contract import Diff, Result
from python_impl.seeds import SEED_SERVICES


@dataclass(frozen=True)
class Direction:
    name: str      # as in reports: py→go
    client: str    # py | pyaio | go  (pyaio: grpc.aio, its own direction)
    server: str

    @property
    def slug(self) -> str:
        """ASCII form for test ids and -k filters: py-go."""
        return f"{self.client}-{self.server}"


DIRECTIONS = tuple(Direction(f"{c}→{s}", c, s) for c, s in (
    ("py", "go"), ("go", "py"), ("pyaio", "go"), ("go", "pyaio"), ("py", "py"), ("pyaio", "pyaio"), ("go", "go")))


def directions(names: list[str] | None) -> list[Direction]:
    """The directions asked for by name or slug; all of them when none is named."""
    return [direction(n) for n in names] if names else list(DIRECTIONS)


def direction(name: str) -> Direction:
    for d in DIRECTIONS:
        if name in (d.name, d.slug):
            return d
    raise ValueError(f"unknown direction {name!r}; one of {', '.join(d.name for d in DIRECTIONS)} "
                     f"(or {', '.join(d.slug for d in DIRECTIONS)})")


class Prepared:
    """A proto set with its generated Python code and resolved cases; the Go peer is built on first use.
    Files a language cannot compile or load are findings: their cases do not run in the directions
    with that language on one side, where a failing row per file stands for them instead."""

    def __init__(self, protoset: ProtoSet, gen: ModuleType, cases: list[cases_mod.Case],
                 known: list[divergences.Divergence] | None = None, py_findings: list[Finding] | None = None,
                 go_tags: tuple[str, ...] = (), gaps: list[str] | None = None, channel: str = "default") -> None:
        self.protoset, self.gen, self.cases, self.known = protoset, gen, cases, known or []
        self.channel = channel  # --channel: which cases also run over TLS (harness/cases/channels.py)
        self.py_findings, self.go_tags = py_findings or [], go_tags
        self.gaps = gaps or []  # generated cases the proto set cannot have, and why (said, never silent)
        self._probes: dict[str, dict[str, capabilities.Capability]] = {}  # direction slug -> probes

    @property
    def skipped(self) -> set[str]:
        """Files Python cannot load (findings): no cases, no coverage, a failing row each instead."""
        return {f.file for f in self.py_findings}

    @cached_property
    def build(self) -> GoBuild:
        return build_go(self.protoset, self.go_tags)

    def findings(self, d: Direction) -> list[Finding]:
        """The findings of the languages on either side of d (asking for Go's builds the Go peer)."""
        sides = {"py" if side == "pyaio" else side for side in (d.client, d.server)}
        return [*(self.py_findings if "py" in sides else []), *(self.build.findings if "go" in sides else [])]

    def finding_results(self, d: Direction, patterns: list[str] | None = None) -> list[Result]:
        """One failing result per file and direction, carrying each language's tool message."""
        by_file: dict[str, list[Finding]] = {}
        for f in reported(self.protoset, self.findings(d)):
            by_file.setdefault(f.file, []).append(f)
        names = select_names([FINDING_PREFIX + rel for rel in sorted(by_file)], patterns)
        return [Result(name, d.name, "finding",
                       [Diff(0, f"{LANGUAGE[f.lang]}: {f.tool}", f"{f.file} compiles and loads", f.message)
                        for f in by_file[name[len(FINDING_PREFIX):]]])
                for name in names]

    def runnable(self, d: Direction, cases: list[cases_mod.Case]) -> list[cases_mod.Case]:
        """The cases whose service's file both sides of d could compile and load, but those that need
        a capability one side's library lacks (its probe stays: harness/run/capabilities.py)."""
        probes = self.probes(d)
        # a misbehaving-peer case runs where one library is on both sides (harness/cases/wire.py)
        cases = [c for c in cases if c.source != wire_cases.SOURCE or wire_cases.runs_in(d.slug)]
        return self._loadable(d, [c for c in cases if c.name in probes
                                  or not any(cap.covers(d.slug, c.name) for cap in self.capabilities)])

    def _loadable(self, d: Direction, cases: list[cases_mod.Case]) -> list[cases_mod.Case]:
        blocked = {f.file for f in self.findings(d)}
        if not blocked:
            return cases
        return [c for c in cases if self.file_of(c) not in blocked and blocked.isdisjoint(c.files)]

    @cached_property
    def capabilities(self) -> list[capabilities.Capability]:
        return capabilities.load()

    def probes(self, d: Direction) -> dict[str, capabilities.Capability]:
        """case name -> the capability it proves in d, chosen from the whole catalogue (the same in
        every chunk, shard and -k selection)."""
        if d.slug not in self._probes:
            self._probes[d.slug] = capabilities.probes(self.capabilities, d.slug,
                                                       [c.name for c in self._loadable(d, self.cases)])
        return self._probes[d.slug]

    def file_of(self, case: cases_mod.Case) -> str | None:
        """The proto file declaring the case's service (the first part of its name), if Python knows it."""
        try:
            return descriptor_pool.Default().FindServiceByName(case.name.split("/")[0]).file.name
        except KeyError:
            return None

    @property
    def catalogue(self) -> list[cases_mod.Case]:
        """The cases the servers' generic engines answer: all but those made for the hand-written
        seed services' own behaviour (their case files)."""
        return [c for c in self.cases if c.calls[0].checked_by_server]

    @property
    def listeners(self) -> tuple[str, ...]:
        """The named server listeners the cases' channels connect to, besides plaintext."""
        return listeners_of(self.cases)

    def catalogue_json(self) -> str:
        return json.dumps({"cases": [c.to_json() for c in self.catalogue]}, ensure_ascii=False)


LANGUAGE = {"go": "Go", "py": "Python"}


def listeners_of(cases: list[cases_mod.Case]) -> tuple[str, ...]:
    """The named server listeners these cases' channels connect to, besides plaintext."""
    return tuple(sorted({(c.channel or {}).get("listener", "plaintext") for c in cases} - {"plaintext"}))


def prepare(protos: str | Path | ProtoSet, case_files: list[Path] | None = None, generated: bool = True,
            divergence_files: list[Path] | None = None, go_tags: str | list[str] | None = None,
            channel: str = "default", profile: str = profiles.DEFAULT) -> Prepared:
    """Generate code, load the case files (default: the built-in ones) and generate cases from the
    descriptors; a name used twice is an error. go_tags: Go build tags for the Go peer (default
    $INTEROP_GO_BUILD_TAGS), e.g. protolegacy. `protos` is a proto set, or a folder to discover.
    channel: which cases also run over TLS / mTLS (harness/cases/channels.py MODES); profile: how
    much of the catalogue (harness/cases/profiles.py; its channel mode is the caller's to pass)."""
    ps = load(protos)
    tags = go_build_tags(go_tags)
    pkg = generate_python(ps)
    py_findings = python_findings(pkg)
    skipped = {f.file for f in py_findings}
    gen = import_python(pkg)
    files = case_files if case_files is not None else cases_mod.builtin_case_files()
    loaded = cases_mod.load_all(files)
    # A case goes to the generic engines unless a hand-written implementation serves its service.
    loaded = [_for_catalogue(c) if c.calls[0].service not in SEED_SERVICES else c for c in loaded]
    gaps: list[str] = []
    if generated:
        names = {c.name for c in loaded}
        made = casegen.generate(ps, skip=skipped, values_per_method=1 if profile == "quick" else None)
        clash = sorted(names & {c.name for c in made})
        if clash:
            raise cases_mod.CaseError(f"case file names clash with generated cases: {clash[:5]}")
        loaded += [_for_catalogue(c) for c in made]
        if made:  # health and reflection: the servers' real implementations answer, never the catalogue
            loaded += standard.generate(ps, skip=skipped)
            loaded += connection.generate(ps, skip=skipped)  # on the health service too
            loaded += wire_cases.generate()  # the misbehaving HTTP/2 peer's scripts (docs/wire.md)
        gaps = casegen.unbuildable_gaps(ps, skipped) + casegen.size_gaps(ps, made, skipped)
    if generated or channel != "default":  # --no-generated: only what the case files (and --channel) ask for
        loaded += channel_cases.generate([c for c in loaded if c.calls[0].checked_by_server], channel)
    known = divergences.load(divergences.builtin_files(), builtin=True)
    mine = divergences.load(divergence_files or [], builtin=False)
    if profile != "quick":  # quick builds a part of the catalogue: a pattern may match only the rest
        divergences.check_dead(mine, [(d.slug, c.name, c.calls[0].streaming, c.ends_early) for d in DIRECTIONS
                                       for c in loaded])
    # quick keeps every capability's probe of the whole catalogue, in every direction: a capability
    # whose probe quick would leave out would silently drop out of its report (a file that cannot
    # load in a direction is left out of that direction's probes later, as in full: Prepared.probes)
    caps = capabilities.load() if profile == "quick" else []
    probes = {n for d in DIRECTIONS for n in capabilities.probes(caps, d.slug, [c.name for c in loaded])}
    return Prepared(ps, gen, profiles.apply(profile, loaded, probes), known + mine, py_findings, tags, gaps, channel)


def _for_catalogue(case: cases_mod.Case) -> cases_mod.Case:
    """The case as a generic server answers it: every call must come back saying it was checked."""
    return replace(case, calls=[replace(c, checked_by_server=True) for c in case.calls])


def select(cases: list[cases_mod.Case], patterns: list[str] | None) -> list[cases_mod.Case]:
    """Keep cases whose name contains a pattern (or matches it as a glob); a full case name selects
    that case alone, with its control case if it has one (a refused channel's passing twin)."""
    chosen = set(select_names([c.name for c in cases], patterns))
    chosen |= {c.control for c in cases if c.name in chosen and c.control}
    return [c for c in cases if c.name in chosen]


def select_names(names: list[str], patterns: list[str] | None) -> list[str]:
    if not patterns:
        return names
    if all(p in set(names) for p in patterns):
        return [n for n in names if n in patterns]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) or p in n for p in patterns)]


# Cases in flight at once per direction, on the direction's one channel (--concurrency,
# --interop-concurrency). Most of a case's time is waiting (loopback round trips, deadlines, server
# delays), so 8 keeps 2 cores busy without queueing behind the Python servers' 32 worker threads.
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 32  # the sync Python server's worker threads (python_impl/server.py MAX_WORKERS)


def check_concurrency(n: int) -> int:
    """n if it is a usable number of cases in flight, else a ValueError saying the range."""
    if not 1 <= n <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY} (the Python server's worker "
                         f"threads), got {n}")
    return n


# Lanes (issue 19 item 3): the cases that wait on the clock (keepalive, max connection age, deadlines)
# run in a lane of their own, beside the rest, so that they start at once in every direction and
# never take the other cases' slots. The cases that need their server to themselves have a lane of
# their own too, one direction at a time per server: a restart is the whole listener's (another
# direction's case would meet it going away), and the refused handshakes a Go server records are
# read back after the refusing cases (harness/run/handshakes.py: another direction's reading would
# take them).
CLOCK, EXCLUSIVE, REST = "clock", "exclusive", "rest"
WIRE = "wire"  # the misbehaving-peer cases: each on a raw HTTP/2 peer of its own (harness/run/wirecases.py)


def lane(case: cases_mod.Case) -> str:
    """Which lane a case runs in: CLOCK, EXCLUSIVE or REST."""
    listener = (case.channel or {}).get("listener")
    try:
        ch = channels.of_case(case)
    except channels.ChannelError:  # the case reports it when it runs
        ch = None
    if listener == "restart" or (ch is not None and ch.refused and ch.secure):
        return EXCLUSIVE
    if listener in connection_listeners or any(c.expect.get("status") == "DEADLINE_EXCEEDED" for c in case.calls):
        return CLOCK
    return REST


def lanes(cases: list[cases_mod.Case]) -> dict[str, list[cases_mod.Case]]:
    """The cases by lane (only lanes with cases), each in the cases' order."""
    out: dict[str, list[cases_mod.Case]] = {}
    for c in cases:
        out.setdefault(lane(c), []).append(c)
    return out


# What a session tells its progress display: (direction, case, None) when a case starts, (direction,
# case, verdict) when it ends (the verdict judged against the known divergences). Called from any thread.
Events = Callable[[str, str, "str | None"], None]


@dataclass
class Session:
    """Peers for one run, started on first use and always stopped (a context manager).
    `concurrency` cases of a direction are in flight at once; results keep the catalogue order."""
    prepared: Prepared
    runner: str
    concurrency: int = DEFAULT_CONCURRENCY
    run_id: str = field(default_factory=lambda: f"r-{uuid.uuid4().hex[:8]}")
    _stack: ExitStack = field(default_factory=ExitStack)
    _servers: dict[str, Any] = field(default_factory=dict)
    client_logs: dict[str, str] = field(default_factory=dict)
    # Servers another process started and shares (pytest-xdist workers): side -> ExternalServer
    external: dict[str, Any] = field(default_factory=dict)
    batches: dict[str, dict[str, Result]] = field(default_factory=dict)  # pytest: direction -> results
    batch_dir: Path | None = None  # pytest-xdist: where workers share one batch per direction
    # the servers' named listeners (None: those of every prepared case); a run of a few cases starts
    # only those its cases connect to
    listeners: tuple[str, ...] | None = None
    _catalogue_path: Path | None = None
    _certs: Path | None = None
    _certs_lock: threading.Lock = field(default_factory=threading.Lock)  # directions overlap (run_all)
    _found_versions: dict[bool, dict[str, str]] = field(default_factory=dict)  # uses Go -> versions
    _versions_lock: threading.Lock = field(default_factory=threading.Lock)
    # the library versions the known divergences are judged for (run.versions of the reports); None:
    # read from this process (grpcio, protobuf) and the built Go peer when a direction needs it
    versions: dict[str, str] | None = None
    _servers_lock: threading.Lock = field(default_factory=threading.Lock)  # guards the per-side locks below
    _side_locks: dict[str, threading.Lock] = field(default_factory=dict)  # one server per side, however many ask
    events: Events | None = None  # progress (cli.py); None: nobody listens
    # one exclusive lane at a time per server side; pytest-xdist replaces it with a lock across workers
    exclusive_lock: Callable[[str], AbstractContextManager[Any]] | None = None
    _exclusive_locks: dict[str, threading.Lock] = field(default_factory=dict)
    # when each (direction, case) ran (monotonic start, end), and the run log's lines of a time span
    # (harness/run/runlog.py RunLog.between): a failing case shows the lines logged during its calls
    windows: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    log_lines: Callable[[float, float], tuple[list[str], int]] | None = None
    log_path: Path | None = None
    _held: set[tuple[str, str]] = field(default_factory=set)  # verdicts that wait for the wire observer
    # told (direction, cases) when a batch's calls are under way: a Python client's at once, a Go
    # client's once its container or process runs (run_all gives the clock's cases a head start)
    on_launch: Callable[[Direction, list[cases_mod.Case]], None] | None = None
    # set when the run is interrupted: lanes still under way start no further peer batch (an interrupted
    # run's exit waits for its threads, and a Go client container started then would hold it for a minute)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._stack.close()

    def server(self, side: str) -> Any:
        if side in self.external:
            return self.external[side]
        if getattr(self, "_closed", False):  # a direction still under way after an interruption
            raise PeerError("the session is closed: no new server peer is started")
        # directions sharing a server run at once: the first starts it; the other sides' servers start
        # meanwhile (a Go container and two Python servers: their start-up overlaps too)
        with self._servers_lock:
            lock = self._side_locks.setdefault(side, threading.Lock())
        with lock:
            return self._server(side)

    def _server(self, side: str) -> Any:
        if side not in self._servers:
            catalogue = self.prepared.catalogue
            # the connection-policy listeners the cases connect to, if any (a server without is started
            # as before); tls and mtls come with the certificates
            names = tuple(n for n in self._listener_names if n in connection_listeners)
            listeners = {"listeners": names} if names else {}
            if side == "go":
                peer: Any = GoServer(self.prepared.build, self.runner, self._catalogue_file(), certs=self._tls_certs(),
                                     **listeners)
            else:
                peer = PythonServer(self.prepared.gen, catalogue, aio=side == "pyaio", certs=self._tls_certs(),
                                    **listeners)
            self._servers[side] = self._stack.enter_context(peer)
        return self._servers[side]

    def certs(self) -> Path:
        """The session's certificates (harness/engines/certs.py), made on first use, removed with it;
        a shared server's (xdist: the controller's) when it has some."""
        shared = next((s.certs for s in self.external.values() if s.certs), None)
        if shared is not None:
            return Path(shared)
        with self._certs_lock:  # one set: every server and client of the session must share it
            if self._certs is None:
                certs_mod.reap_dead()  # what killed sessions left (SIGKILL runs no cleanup)
                folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix=certs_mod.prefix())))
                self._certs = certs_mod.make(folder / "certs")
            return self._certs

    @property
    def _listener_names(self) -> tuple[str, ...]:
        return self.prepared.listeners if self.listeners is None else self.listeners

    @property
    def tls(self) -> bool:
        """Whether some case uses a TLS listener: only then are certificates made and TLS listeners started."""
        return any(n in channels.SECURE for n in self._listener_names)

    def _tls_certs(self) -> Path | None:
        return self.certs() if self.tls else None

    def _catalogue_file(self) -> Path:
        """The catalogue as the JSON the Go server loads (written once per session: only the Go side's
        server start asks for it, under its side's lock)."""
        if self._catalogue_path is None:
            folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="interop-catalogue-")))
            folder.chmod(0o755)  # the container runs as an unprivileged user
            self._catalogue_path = folder / "catalogue.json"
            self._catalogue_path.write_text(self.prepared.catalogue_json())
            self._catalogue_path.chmod(0o644)
        return self._catalogue_path

    def run(self, d: Direction, cases: list[cases_mod.Case]) -> list[Result]:
        """Run cases in one direction, then judge them against the known divergences. Cases of files
        that are findings for this direction are not run (the findings' rows stand for them). Each
        lane (see lane()) runs beside the others, with slots of its own; results keep the cases' order."""
        cases = self.prepared.runnable(d, cases)
        by_name = {c.name: c for c in cases}
        wired = [c for c in cases if c.source == wire_cases.SOURCE]  # the raw peer replaces one side
        by_lane = lanes([c for c in cases if c.source != wire_cases.SOURCE])
        if wired:
            by_lane[WIRE] = wired
        if len(by_lane) <= 1:
            results = [r for name, cs in by_lane.items() for r in self._lane(d, name, cs)]
        else:
            with ThreadPoolExecutor(len(by_lane), thread_name_prefix="interop-lane") as pool:
                futures = [pool.submit(self._lane, d, name, cs) for name, cs in by_lane.items()]
                order = {c.name: i for i, c in enumerate(cases)}
                results = sorted((r for f in futures for r in f.result()), key=lambda r: order[r.case])
        server = self._servers.get(d.server)
        if server is not None and hasattr(server, "alive") and not server.alive():
            results = self._server_died(d, server, results)
        return [self._judge(d, by_name[r.case], r) for r in results]

    def _judge(self, d: Direction, case: cases_mod.Case, r: Result) -> Result:
        probe = self.prepared.probes(d).get(case.name)  # a capability's probe is judged by its signatures
        if probe is not None:
            return capabilities.judge(probe, r, d.slug, case.calls[0].streaming, self.tested_versions(d))
        return divergences.apply(self.prepared.known, r, d.slug, case.calls[0].streaming, case.ends_early,
                                 self.tested_versions(d))

    def _lane(self, d: Direction, name: str, cases: list[cases_mod.Case]) -> list[Result]:
        if name == WIRE:
            return wirecases.run(self, d, cases)
        if name != EXCLUSIVE:
            return self._run(d, cases)
        with self._exclusive_lock(d.server):
            return self._run(d, cases)

    def _exclusive_lock(self, side: str) -> AbstractContextManager[Any]:
        if self.exclusive_lock is not None:
            return self.exclusive_lock(side)
        with self._servers_lock:
            return self._exclusive_locks.setdefault(side, threading.Lock())

    def _started(self, d: Direction, case: cases_mod.Case) -> None:
        self.windows[(d.name, case.name)] = (time.monotonic(), 0.0)
        if self.events is not None:
            self.events(d.name, case.name, None)

    def _ended(self, d: Direction, case: cases_mod.Case, r: Result) -> Result:
        """Record when the case ran and tell the progress display how it ended (judged on a copy:
        run() judges the result). A Go client's case started at most its duration before its result."""
        end = time.monotonic()
        start, ended = self.windows.get((d.name, case.name), (end, 0.0))
        if not ended:  # (a result the wire observer held is told of twice)
            self.windows[(d.name, case.name)] = (max(start, end - r.duration_ms / 1000 - 0.05), end)
        if self.events is not None and (d.name, case.name) not in self._held:
            self.events(d.name, case.name, self._judge(d, case, copy.deepcopy(r)).verdict)
        return r

    def tested_versions(self, d: Direction) -> dict[str, str]:
        """The versions the direction's results are judged for: the run's when it gave them, else
        this process's Python side and, for a direction with Go in it, what the Go peer links
        (read once per session)."""
        if self.versions is not None:
            return self.versions
        uses_go = "go" in (d.client, d.server)
        with self._versions_lock:  # directions overlap (run_all)
            if uses_go not in self._found_versions:
                build = self.prepared.build  # None when nothing was built (no Go peer in the session)
                binary = build.binary if uses_go and build is not None else None
                self._found_versions[uses_go] = {**versions_mod.python_side(), **versions_mod.go_side(binary)}
            return self._found_versions[uses_go]

    def _server_died(self, d: Direction, server: Any, results: list[Result]) -> list[Result]:
        """The server peer exited during the direction: its failures are errors that say so, naming
        the case in flight (the first to fail) and the peer's last lines; the next use starts a new one."""
        self._servers.pop(d.server, None)  # another direction of the server may have seen it first
        failed = [r for r in results if r.verdict != "pass"]
        first = failed[0].case if failed else "(none failed)"
        died = Diff(0, "server peer", "running until the direction ends",
                    f"{server.describe()} exited; case in flight (the first to fail): {first}\n"
                    f"--- its last lines ---\n{server.logs(30)}")
        for r in failed:
            r.verdict, r.diffs = "error", [died, *r.diffs]
        return results

    def _run(self, d: Direction, cases: list[cases_mod.Case]) -> list[Result]:
        """The cases' results; through a wire observer when a Python peer would receive compressed
        messages (grpcio cannot say whether they were)."""
        if not cases:
            return []
        if self.stopping.is_set():
            raise RunInterrupted(f"{d.name}: the run was interrupted before {len(cases)} case(s) started")
        # Cases on a connection of their own (connection behaviour) may hold a stream for most of a
        # minute: they start first, so they overlap the rest instead of ending the direction alone.
        # Results are given back in the cases' order.
        order = {c.name: i for i, c in enumerate(cases)}
        cases = sorted(cases, key=lambda c: c.channel is None)
        server = self.server(d.server)
        targets = dict(getattr(server, "addresses", None) or {"plaintext": server.address})
        refusals = handshakes.applies(d.server, cases)
        if refusals:  # what earlier directions' refused handshakes left on the server
            handshakes.clear(server.address)
        observe = observed.needs_observer(d.client, d.server, cases)
        if observe or refusals:  # the progress hears of these once the checks after the calls are done
            self._held.update((d.name, c.name) for c in cases)
        if not observe:
            results = sorted(self._exchange(d, cases, targets), key=lambda r: order[r.case])
        else:
            # the observer sees the plaintext connection only: what goes over TLS (or another listener) is not observed
            with WireObserver(server.address) as observer:
                results = sorted(self._exchange(d, cases, {**targets, "plaintext": observer.address}),
                                 key=lambda r: order[r.case])
            by_name = {c.name: c for c in cases}
            for r in results:
                found = observed.wire_diffs(by_name[r.case], d.client, d.server, observer, r.diffs)
                r.diffs += found
                if found and r.verdict == "pass":
                    r.verdict = "fail"
        if refusals:  # each refused case's own cause, as the server's TLS listeners saw it
            handshakes.judge(results, cases, d.client, server.address, self._tls_certs())
        if observe or refusals:
            by_name = {c.name: c for c in cases}
            for r in results:
                self._held.discard((d.name, r.case))
                self._ended(d, by_name[r.case], r)
        return results

    def _launched(self, d: Direction, cases: list[cases_mod.Case]) -> None:
        if self.on_launch is not None:
            self.on_launch(d, cases)

    def _exchange(self, d: Direction, cases: list[cases_mod.Case], targets: dict[str, str]) -> list[Result]:
        """Up to `concurrency` cases at once on one channel (one HTTP/2 connection; a case with a
        channel on the connection it describes), results in the cases' order. A Go client runs all
        its cases in one process (batched), with goroutines."""
        if d.client in ("py", "pyaio"):
            self._launched(d, cases)
        if d.client == "py":
            conns = channels.Pool(targets, self._tls_certs())
            try:
                with ThreadPoolExecutor(self.concurrency, thread_name_prefix="interop-case") as pool:
                    return list(pool.map(lambda c: self._one(conns, c, d), cases))
            finally:
                conns.close()
        if d.client == "pyaio":
            return asyncio.run(self._run_aio(targets, d, cases))
        payload = {"target": targets["plaintext"], "direction": d.slug, "run_id": self.run_id,
                   "concurrency": self.concurrency, "cases": [c.to_json() for c in cases]}
        if any(c.channel is not None for c in cases):
            payload["targets"] = {k: v for k, v in targets.items() if k != "plaintext"}
            if (certs := self._tls_certs()) is not None:  # only a run with TLS cases has them
                payload["certs"] = str(certs)
        by_name = {c.name: c for c in cases}
        for c in cases:  # the batch's cases are under way (up to `concurrency` at a time, in the Go client)
            self._started(d, c)

        told: set[str] = set()

        def on_result(r: Result) -> None:
            if r.case in by_name and r.case not in told:
                told.add(r.case)
                self._ended(d, by_name[r.case], _trusted(r, d))  # the verdict the matrix will show

        results, stderr = run_go_client(self.prepared.build, self.runner, payload, on_result=on_result,
                                        on_start=lambda: self._launched(d, cases))
        # a direction's lanes are separate Go client batches: every batch's stderr is kept
        with self._certs_lock:
            self.client_logs[d.name] = "\n".join(filter(None, [self.client_logs.get(d.name, ""), stderr]))
        aligned = _align(cases, results, d)
        for r in aligned:  # none printed (the client died): an error, over the whole batch's time
            if r.case not in told:
                start = self.windows.get((d.name, r.case), (time.monotonic(), 0.0))[0]
                self.windows[(d.name, r.case)] = (start, time.monotonic())
                self._ended(d, by_name[r.case], r)
        return aligned

    def _one(self, conns: channels.Pool, case: cases_mod.Case, d: Direction) -> Result:
        self._started(d, case)
        try:
            ch = conns.for_case(case)
        except (channels.ChannelError, OSError) as e:
            return self._ended(d, case, _channel_error(case, d, e))
        return self._ended(d, case, run_case(ch, self.prepared.gen, case, d.name, self.run_id))

    async def _run_aio(self, targets: dict[str, str], d: Direction, cases: list[cases_mod.Case]) -> list[Result]:
        slots = asyncio.Semaphore(self.concurrency)
        conns = channels.Pool(targets, self._tls_certs(), aio=True)

        async def one(c: cases_mod.Case) -> Result:
            async with slots:
                self._started(d, c)
                try:
                    ch = conns.for_case(c)
                except (channels.ChannelError, OSError) as e:
                    return self._ended(d, c, _channel_error(c, d, e))
                return self._ended(d, c, await run_case_aio(ch, self.prepared.gen, c, d.name, self.run_id))
        try:
            return list(await asyncio.gather(*(one(c) for c in cases)))
        finally:
            await conns.close_aio()

    def timeline(self, t0: float) -> list[dict[str, Any]]:
        """When each case ran, in seconds since t0 (a monotonic time: the run's start), in start
        order: the JSON report's run.timeline, which shows (and a test checks) what overlapped."""
        rows = [{"direction": d, "case": c, "start_s": round(start - t0, 3), "end_s": round(end - t0, 3)}
                for (d, c), (start, end) in list(self.windows.items()) if end]
        return sorted(rows, key=lambda r: r["start_s"])

    def peer_outputs(self) -> list[tuple[str, str]]:
        """What the out-of-process peers printed (the Go servers, each direction's Go clients), for the
        run log; the in-process Python peers log through it as they go."""
        out = [(server.describe(), server.logs(100_000)) for server in list(self._servers.values())
               if not isinstance(server, PythonServer)]
        return out + [(f"Go client {name}", text) for name, text in self.client_logs.items()]

    def explain(self, d: Direction, result: Result) -> str:
        """A failure, readable alone: what differed, both peers' logs, and how to reproduce it."""
        protos = self.prepared.protoset.spec
        if result.verdict == "finding":
            return explain_finding(d, result, protos, self.prepared.go_tags)
        case = next((c for c in self.prepared.cases if c.name == result.case), None)
        lines = [f"{result.verdict.upper()}: {d.name} {result.case}"]
        if case is not None:
            lines.append(f"  method: {case.method} ({case.calls[0].streaming}); case file: {case.source}")
        for diff in result.diffs:
            lines.append(f"  call {diff.call}: {diff.path}: expected {diff.expected}, got {diff.got}")
        if result.notes.get("frames"):  # a /wire/ case: what the raw HTTP/2 peer sent and got (docs/wire.md)
            lines += ["  the raw HTTP/2 peer's frames:", *(f"    {line}" for line in result.notes["frames"].splitlines())]
        builtin = {str(p) for p in cases_mod.builtin_case_files()}
        # a user's case file (generated cases name their generator, which is no file)
        extra = ([case.source] if case is not None and case.source not in builtin and Path(case.source).is_file()
                 else [])
        # the run's Go build tags belong to the set: without them a protolegacy run reproduces as a finding;
        # a case made by --channel exists only with it
        protos = (*protos, *go_tag_args(self.prepared.go_tags), *channel_args(self.prepared.channel))
        lines += ["", "reproduce this case alone:", "  " + repro_command(protos, d, result.case, self.runner, extra)]
        if case is not None and case.channel is not None:
            lines += [f"  (its channel: {json.dumps(case.channel, sort_keys=True)}; a server started by hand has "
                      "no TLS listeners the harness knows, so this case runs only with the peers it starts)"]
        else:
            lines += ["start the server peer by hand (attach a debugger to it), then send it the case:",
                      "  " + serve_command(protos, d.server, self.runner),
                      "  " + repro_command(protos, d, result.case, self.runner, extra) + " --server-address 127.0.0.1:50051"]
        server = self.external.get(d.server) or self._servers.get(d.server)
        if server is not None:
            lines += ["", f"--- server peer: {server.describe()} ---", *_case_lines(server.logs(5000), result.case)]
        if d.client == "go" and self.client_logs.get(d.name):
            lines += ["--- Go client stderr ---", *_case_lines(self.client_logs[d.name], result.case)]
        window = self.windows.get((d.name, result.case))
        if self.log_lines is not None and window is not None and window[1]:
            logged, n = self.log_lines(*window)
            where = f" (all in {self.log_path})" if self.log_path else ""
            lines += [f"--- logged in this process during its calls ({window[1] - window[0]:.2f} s: grpc core, "
                      f"Python peers; other cases ran meanwhile){where} ---",
                      *(logged or ["(nothing)"]), *([f"… {n - len(logged)} more"] if n > len(logged) else [])]
        return "\n".join(lines)


def explain_finding(d: Direction, result: Result, protos: tuple[str, ...], go_tags: tuple[str, ...]) -> str:
    """A file a language cannot compile or load: each tool's own message, and what to do."""
    rel = result.case[len(FINDING_PREFIX):]
    lines = [f"FINDING: {d.name} {rel}: this file's services are not run in this direction"]
    for diff in result.diffs:
        lines += [f"  {diff.path} refuses {rel}:", *(f"    {line}" for line in diff.got.splitlines())]
    text = " ".join(diff.got for diff in result.diffs)
    if ("MessageSet" in text or "protolegacy" in text) and "protolegacy" not in go_tags:
        lines.append("  protobuf-go supports MessageSet (and other proto1 features) only when built with the "
                     "protolegacy build tag: run with --go-build-tags protolegacy (pytest: "
                     "--interop-go-build-tags protolegacy; env: INTEROP_GO_BUILD_TAGS=protolegacy)")
    lines += ["", "see the tools' full output:", "  " + shlex.join(["grpc-interop", "gen", *protos, *go_tag_args(go_tags)])]
    return "\n".join(lines)


def _case_lines(log: str, case: str, tail: int = 15) -> list[str]:
    """A peer's log lines about this case (peers prefix them with [<case>]), then its last lines."""
    lines = output_lines(log)
    mine = [line for line in lines if f"[{case}]" in line]
    return [*(mine or [f"(no log line names [{case}])"]), f"… last {min(tail, len(lines))} lines:", *lines[-tail:]]


@dataclass
class ExternalServer:
    """A server peer started by another process of this run (the xdist controller)."""
    address: str
    description: str
    container: str | None = None
    addresses: dict[str, str] | None = None  # its listeners (plaintext, tls, mtls)
    certs: str | None = None                 # the certificates its TLS listeners use
    log: str | None = None                   # its log: the controller's run log (in-process Python servers), a Go process's own

    def describe(self) -> str:
        return f"{self.description} (shared by the test controller)"

    def logs(self, tail: int = 200) -> str:
        if self.container is None:
            if self.log is None:
                return "(the shared server runs in the test controller process: its log lines are in its output)"
            try:
                lines = Path(self.log).read_text(errors="replace").splitlines()[-tail:]
            except OSError as e:
                return f"(the test controller's log {self.log} is unreadable: {e})"
            return f"(the last lines of {self.log}, the shared server's log in the test controller)\n" + "\n".join(lines)
        from harness.engines.peer import docker_client

        try:
            return docker_client().containers.get(self.container).logs(tail=tail).decode(errors="replace")
        except Exception as e:  # noqa: BLE001
            return f"(logs unavailable: {e})"

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "description": self.description, "container": self.container,
                "addresses": self.addresses, "certs": self.certs, "log": self.log}


def share(server: Any, certs: Path | None = None, log: Path | None = None) -> ExternalServer:
    """What a worker needs to use a server this process started (log: where this process's fd 2 goes,
    for its in-process Python servers; a Go peer process has a log file of its own)."""
    container = getattr(server, "_container", None)
    log = getattr(server, "_stderr", None) or log
    return ExternalServer(server.address, server.describe(), container.id if container is not None else None,
                          getattr(server, "addresses", None), str(certs) if certs is not None else None,
                          str(log) if log is not None else None)


def _channel_error(case: cases_mod.Case, d: Direction, e: Exception) -> Result:
    """A case whose connection cannot be made (no such listener, unreadable certificates)."""
    return Result(case.name, d.name, "error", [Diff(0, "error", "", f"channel: {e}")])


def _trusted(r: Result, d: Direction) -> Result:
    """A Go client's result as the matrix shows it."""
    r.direction = d.name  # the Go client reports the ASCII slug it was given
    if r.verdict == "pass" and r.diffs:  # a pass carries no differences; never trust the label alone
        r.verdict = "fail"
    return r


def _align(cases: list[cases_mod.Case], results: list[Result], d: Direction) -> list[Result]:
    """Match a batch's results to its cases; a case with no result is an error, not a pass."""
    by_name = {r.case: _trusted(r, d) for r in results}
    return [by_name.get(c.name) or Result(c.name, d.name, "error",
                                          [Diff(0, "error", "a result", "the Go client reported none for this case")])
            for c in cases]


def channel_args(mode: str) -> list[str]:
    """The command-line form of a run's --channel (the default: nothing)."""
    return [] if mode == "default" else ["--channel", mode]


def go_tag_args(tags: tuple[str, ...]) -> list[str]:
    """The command-line form of a run's Go build tags (none: nothing)."""
    return ["--go-build-tags", ",".join(tags)] if tags else []


def repro_command(protos: tuple[str, ...], d: Direction, case: str, runner: str, case_files: list[str]) -> str:
    """`protos`: the proto set's arguments (ProtoSet.spec)."""
    files = [arg for f in case_files for arg in ("--cases", f)]
    return shlex.join(["grpc-interop", "run", *protos, *files, "--direction", d.slug,
                       "--peer-runner", runner, "-k", case])


def serve_command(protos: tuple[str, ...], side: str, runner: str) -> str:
    """Start one server peer by hand, with the same catalogue (for a debugger)."""
    args = ["grpc-interop", "serve", *protos, "--lang", side, "--addr", "127.0.0.1:50051"]
    return shlex.join(args + (["--peer-runner", runner] if side == "go" else []))


# Python clients run a direction in chunks, so an interrupted run keeps every chunk that finished
# (a Go client's batch is one process: its results arrive when it ends).
PY_CHUNK = 100


@dataclass
class Plan:
    """What a run asks for: `expected` is every (direction, case) of the whole selection (all shards),
    `mine` this shard's part of it; finding rows included. Reports record both, so a merge can tell a
    case no shard ran from one that ran twice."""
    cases: list[cases_mod.Case]          # the selected cases of this shard
    expected: dict[str, list[str]]       # direction name -> case and finding names, every shard
    mine: dict[str, list[str]]           # direction name -> this shard's part
    shard: shard_mod.Shard | None = None

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.mine.values())


def plan(prepared: Prepared, directions: list[Direction], patterns: list[str] | None,
         shard: shard_mod.Shard | None = None, timings: dict[str, int] | None = None) -> Plan:
    """The selection, split by shard: the split is of the whole catalogue (prepared.cases), so -k,
    --direction and the pytest plugin never move a case to another shard."""
    if shard is not None and timings is None:
        timings = shard_mod.load_timings()
    ours = shard_mod.in_shard(shard, [c.name for c in prepared.cases], timings or {})
    chosen = select(prepared.cases, patterns)
    expected: dict[str, list[str]] = {}
    mine: dict[str, list[str]] = {}
    for d in directions:
        rows = [r.case for r in prepared.finding_results(d, patterns)]
        names = [*rows, *(c.name for c in prepared.runnable(d, chosen))]
        expected[d.name] = names
        mine[d.name] = [n for n in names if (shard_mod.finding_shard(n, shard.count) == shard.index
                                             if n.startswith(FINDING_PREFIX) else n in ours)] if shard else names
    return Plan([c for c in chosen if c.name in ours], expected, mine, shard)


def run_all(prepared: Prepared, runner: str, directions: list[Direction], patterns: list[str] | None,
            on_result: Any = None, server_address: str | None = None, the_plan: Plan | None = None,
            concurrency: int = DEFAULT_CONCURRENCY, events: Events | None = None,
            versions: dict[str, str] | None = None) -> tuple[list[Result], Session]:
    """Run every selected case (of the plan's shard) in every direction; the caller closes the
    returned session. With server_address, the server side is a peer already running there (started
    by hand). Every direction starts at once, and in each the cases that wait on the clock (lane())
    start at once beside the rest; results (and on_result) keep the directions' order, `events` hears
    of each case as it starts and ends. On an interruption every chunk that finished is handed to
    on_result, the session is closed and the exception goes on."""
    check_concurrency(concurrency)
    the_plan = the_plan or plan(prepared, directions, patterns)
    session = Session(prepared, runner, concurrency=concurrency, listeners=listeners_of(the_plan.cases),
                      events=events, versions=versions)
    if server_address:
        sides = {d.server for d in directions}
        session.external = {side: ExternalServer(server_address, f"server started by hand at {server_address}")
                            for side in sides}
    results: list[Result] = []

    def take(rs: list[Result]) -> None:
        for r in rs:
            results.append(r)
            if on_result:
                on_result(r)

    # findings first, one direction after another: they build the Go peer once, before any thread needs it
    findings = {d.name: [r for r in prepared.finding_results(d, patterns) if r.case in set(the_plan.mine[d.name])]
                for d in directions}
    # each direction's finished chunks (Python clients run in chunks, so an interruption keeps them;
    # a Go client's batch is one process: its results arrive when it ends)
    chunks: dict[str, list[list[Result]]] = {d.name: [] for d in directions}
    stop = threading.Event()  # set when the run is interrupted or fails: directions under way end
    # the clock's cases (and those that need the server to themselves) of a direction: one job,
    # started at once in every direction
    slow = [c for c in the_plan.cases if lane(c) != REST]
    rest = [c for c in the_plan.cases if lane(c) == REST]
    # the rest as before the lanes: DIRECTION_OVERLAP directions at a time, one at a time per server
    # (this process hosts the Python servers and clients: all seven at once starved a grpc.aio
    # server past its calls' deadlines on 2 loaded cores)
    slots = threading.Semaphore(DIRECTION_OVERLAP)
    locks = {key: threading.Lock() for key in {_server_key(d, server_address) for d in directions}}
    # the clock's cases get a head start: the rest waits (at most HEAD_START_S) until every
    # direction's are under way, so that on loaded cores their start-up (a Go client's container) is
    # not queued behind the rest's
    clock_under_way = {d.name: threading.Event() for d in directions}
    for d in directions:
        if not any(lane(c) == CLOCK for c in slow):
            clock_under_way[d.name].set()

    def launched(d: Direction, cases: list[cases_mod.Case]) -> None:
        if any(lane(c) == CLOCK for c in cases):
            clock_under_way[d.name].set()

    session.on_launch = launched

    def run_slow(d: Direction) -> None:
        if slow and not stop.is_set():
            chunks[d.name].append(session.run(d, slow))

    def run_rest(d: Direction) -> None:
        until = time.monotonic() + HEAD_START_S
        for event in clock_under_way.values():
            event.wait(max(0.0, until - time.monotonic()))
        lock = locks[_server_key(d, server_address)]
        while not stop.is_set():  # waiting for a slot, then for the server's other direction
            if slots.acquire(timeout=0.2):
                if lock.acquire(blocking=False):
                    break
                slots.release()  # another direction of its server runs: give the slot to one that can
                time.sleep(0.05)
        else:
            return
        try:
            step = PY_CHUNK if d.client in ("py", "pyaio") else max(1, len(rest))
            for i in range(0, len(rest), step):
                if stop.is_set():
                    return
                chunks[d.name].append(session.run(d, rest[i:i + step]))
        finally:
            lock.release()
            slots.release()

    pool = ThreadPoolExecutor(2 * len(directions), thread_name_prefix="interop-direction")
    delivered: set[str] = set()
    order = {c.name: i for i, c in enumerate(the_plan.cases)}
    try:
        # go→go's rest needs nothing of this process but its results: it takes a slot first
        first = sorted(directions, key=lambda d: not d.client == d.server == "go")
        started = {d.name: [pool.submit(run_slow, d), pool.submit(run_rest, d)] for d in first}
        for d in directions:
            for f in started[d.name]:
                f.result()
            take([*findings[d.name], *sorted((r for chunk in chunks[d.name] for r in chunk),
                                             key=lambda r: order[r.case])])
            delivered.add(d.name)
    except BaseException:
        stop.set()
        session.stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for d in directions:  # what finished before the interruption is kept
            if d.name not in delivered:
                take([*findings[d.name], *(r for chunk in list(chunks[d.name]) for r in chunk)])
        session.__exit__(None, None, None)
        raise
    pool.shutdown()
    return results, session


class RunInterrupted(Exception):
    """Raised in a lane that would start peers after the run was interrupted (nobody waits for its result)."""


# How long the rest of a run waits, at most, for every direction's clock cases to be under way.
HEAD_START_S = 3.0

# Directions whose rest runs at once (each with its own cases in flight): a Go-client direction spends
# most of its time in the Go process and its container, which a Python-client direction can use meanwhile.
DIRECTION_OVERLAP = 3


def _server_key(d: Direction, server_address: str | None) -> str:
    """Directions with the same key share a server: their rest does not overlap."""
    return "external" if server_address else d.server
