"""The runner: proto set -> generated code -> cases -> peers -> results, for every direction.

Separate from both engines: it only starts peers, hands them cases and collects verdicts.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import shlex
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pool

from harness.cases import channels as channel_cases
from harness.cases import generate as casegen
from harness.cases import model as cases_mod
from harness.cases import connection, standard
from harness.run import capabilities, divergences, handshakes
from harness.protoset.codegen import (Finding, GoBuild, build_go, go_build_tags, generate_python, import_python,
                                      load, python_findings, reported)
from harness.report.verdicts import FINDING_PREFIX
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
            channel: str = "default") -> Prepared:
    """Generate code, load the case files (default: the built-in ones) and generate cases from the
    descriptors; a name used twice is an error. go_tags: Go build tags for the Go peer (default
    $INTEROP_GO_BUILD_TAGS), e.g. protolegacy. `protos` is a proto set, or a folder to discover.
    channel: which cases also run over TLS / mTLS (harness/cases/channels.py MODES)."""
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
        made = casegen.generate(ps, skip=skipped)
        clash = sorted(names & {c.name for c in made})
        if clash:
            raise cases_mod.CaseError(f"case file names clash with generated cases: {clash[:5]}")
        loaded += [_for_catalogue(c) for c in made]
        if made:  # health and reflection: the servers' real implementations answer, never the catalogue
            loaded += standard.generate(ps, skip=skipped)
            loaded += connection.generate(ps, skip=skipped)  # on the health service too
        gaps = casegen.size_gaps(ps, made, skipped) + casegen.gzip_gaps(casegen.services(ps, skipped))
    if generated or channel != "default":  # --no-generated: only what the case files (and --channel) ask for
        loaded += channel_cases.generate([c for c in loaded if c.calls[0].checked_by_server], channel)
    known = divergences.load(divergences.builtin_files(), builtin=True)
    mine = divergences.load(divergence_files or [], builtin=False)
    divergences.check_dead(mine, [(d.slug, c.name, c.calls[0].streaming, c.ends_early) for d in DIRECTIONS
                                   for c in loaded])
    return Prepared(ps, gen, loaded, known + mine, py_findings, tags, gaps, channel)


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
        """The catalogue as the JSON the Go server loads (written once per session)."""
        if self._catalogue_path is None:
            folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="interop-catalogue-")))
            folder.chmod(0o755)  # the container runs as an unprivileged user
            self._catalogue_path = folder / "catalogue.json"
            self._catalogue_path.write_text(self.prepared.catalogue_json())
            self._catalogue_path.chmod(0o644)
        return self._catalogue_path

    def run(self, d: Direction, cases: list[cases_mod.Case]) -> list[Result]:
        """Run cases in one direction, then judge them against the known divergences. Cases of files
        that are findings for this direction are not run (the findings' rows stand for them)."""
        cases = self.prepared.runnable(d, cases)
        by_name = {c.name: c for c in cases}
        results = self._run(d, cases)
        server = self._servers.get(d.server)
        if server is not None and hasattr(server, "alive") and not server.alive():
            results = self._server_died(d, server, results)
        probes = self.prepared.probes(d)
        return [capabilities.judge(probes[r.case], r, d.slug, by_name[r.case].calls[0].streaming) if r.case in probes
                else divergences.apply(self.prepared.known, r, d.slug, by_name[r.case].calls[0].streaming,
                                       by_name[r.case].ends_early) for r in results]

    def _server_died(self, d: Direction, server: Any, results: list[Result]) -> list[Result]:
        """The server peer exited during the direction: its failures are errors that say so, naming
        the case in flight (the first to fail) and the peer's last lines; the next use starts a new one."""
        del self._servers[d.server]
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
        if not observed.needs_observer(d.client, d.server, cases):
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
        return results

    def _exchange(self, d: Direction, cases: list[cases_mod.Case], targets: dict[str, str]) -> list[Result]:
        """Up to `concurrency` cases at once on one channel (one HTTP/2 connection; a case with a
        channel on the connection it describes), results in the cases' order. A Go client runs all
        its cases in one process (batched), with goroutines."""
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
        results, stderr = run_go_client(self.prepared.build, self.runner, payload)
        self.client_logs[d.name] = stderr
        return _align(cases, results, d)

    def _one(self, conns: channels.Pool, case: cases_mod.Case, d: Direction) -> Result:
        try:
            ch = conns.for_case(case)
        except (channels.ChannelError, OSError) as e:
            return _channel_error(case, d, e)
        return run_case(ch, self.prepared.gen, case, d.name, self.run_id)

    async def _run_aio(self, targets: dict[str, str], d: Direction, cases: list[cases_mod.Case]) -> list[Result]:
        slots = asyncio.Semaphore(self.concurrency)
        conns = channels.Pool(targets, self._tls_certs(), aio=True)

        async def one(c: cases_mod.Case) -> Result:
            async with slots:
                try:
                    ch = conns.for_case(c)
                except (channels.ChannelError, OSError) as e:
                    return _channel_error(c, d, e)
                return await run_case_aio(ch, self.prepared.gen, c, d.name, self.run_id)
        try:
            return list(await asyncio.gather(*(one(c) for c in cases)))
        finally:
            await conns.close_aio()

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

    def describe(self) -> str:
        return f"{self.description} (shared by the test controller)"

    def logs(self, tail: int = 200) -> str:
        if self.container is None:
            return "(the shared server runs in the test controller process: its log lines are in its output)"
        from harness.engines.peer import docker_client

        try:
            return docker_client().containers.get(self.container).logs(tail=tail).decode(errors="replace")
        except Exception as e:  # noqa: BLE001
            return f"(logs unavailable: {e})"

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "description": self.description, "container": self.container,
                "addresses": self.addresses, "certs": self.certs}


def share(server: Any, certs: Path | None = None) -> ExternalServer:
    """What a worker needs to use a server this process started."""
    container = getattr(server, "_container", None)
    return ExternalServer(server.address, server.describe(), container.id if container is not None else None,
                          getattr(server, "addresses", None), str(certs) if certs is not None else None)


def _channel_error(case: cases_mod.Case, d: Direction, e: Exception) -> Result:
    """A case whose connection cannot be made (no such listener, unreadable certificates)."""
    return Result(case.name, d.name, "error", [Diff(0, "error", "", f"channel: {e}")])


def _align(cases: list[cases_mod.Case], results: list[Result], d: Direction) -> list[Result]:
    """Match a batch's results to its cases; a case with no result is an error, not a pass."""
    by_name = {r.case: r for r in results}
    for r in results:
        r.direction = d.name  # the Go client reports the ASCII slug it was given
        if r.verdict == "pass" and r.diffs:  # a pass carries no differences; never trust the label alone
            r.verdict = "fail"
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


# Directions run at once (each with its own cases in flight): a Go-client direction spends most of
# its time in the Go process and its container, which a Python-client direction can use meanwhile.
# go→go needs nothing of this process but its results, so it starts first, beside two others.
DIRECTION_OVERLAP = 3


def run_all(prepared: Prepared, runner: str, directions: list[Direction], patterns: list[str] | None,
            on_result: Any = None, server_address: str | None = None, the_plan: Plan | None = None,
            concurrency: int = DEFAULT_CONCURRENCY) -> tuple[list[Result], Session]:
    """Run every selected case (of the plan's shard) in every direction; the caller closes the
    returned session. With server_address, the server side is a peer already running there (started
    by hand). Directions whose servers differ overlap; results (and on_result) keep the directions'
    order. On an interruption every chunk that finished is handed to on_result, the session is
    closed and the exception goes on."""
    check_concurrency(concurrency)
    the_plan = the_plan or plan(prepared, directions, patterns)
    session = Session(prepared, runner, concurrency=concurrency, listeners=listeners_of(the_plan.cases))
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

    pool = ThreadPoolExecutor(DIRECTION_OVERLAP, thread_name_prefix="interop-direction")
    # findings first, one direction after another: they build the Go peer once, before any thread needs it
    findings = {d.name: [r for r in prepared.finding_results(d, patterns) if r.case in set(the_plan.mine[d.name])]
                for d in directions}
    # one direction at a time per server: its log lines and load stay its own
    locks = {key: threading.Lock() for key in {_server_key(d, server_address) for d in directions}}
    # each direction's finished chunks (Python clients run in chunks, so an interruption keeps them;
    # a Go client's batch is one process: its results arrive when it ends)
    chunks: dict[str, list[list[Result]]] = {d.name: [] for d in directions}

    stop = threading.Event()  # set when the run is interrupted or fails: directions under way end

    def one(d: Direction) -> None:
        lock = locks[_server_key(d, server_address)]
        while not lock.acquire(timeout=0.2):  # waiting for the server's other direction
            if stop.is_set():
                return
        try:
            step = PY_CHUNK if d.client in ("py", "pyaio") else max(1, len(the_plan.cases))
            for i in range(0, len(the_plan.cases), step):
                if stop.is_set():
                    return
                chunks[d.name].append(session.run(d, the_plan.cases[i:i + step]))
        finally:
            lock.release()

    delivered: set[str] = set()
    try:
        first = sorted(directions, key=lambda d: not d.client == d.server == "go")
        started = {d.name: pool.submit(one, d) for d in first}
        for d in directions:
            started[d.name].result()
            take([*findings[d.name], *(r for chunk in chunks[d.name] for r in chunk)])
            delivered.add(d.name)
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for d in directions:  # what finished before the interruption is kept
            if d.name not in delivered:
                take([*findings[d.name], *(r for chunk in list(chunks[d.name]) for r in chunk)])
        session.__exit__(None, None, None)
        raise
    pool.shutdown()
    return results, session


def _server_key(d: Direction, server_address: str | None) -> str:
    """Directions with the same key share a server and do not overlap."""
    return "external" if server_address else d.server
