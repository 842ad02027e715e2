"""`grpc-interop probe`: its options and the command (registered by harness/cli.py).

A chain of small steps: schema -> methods (--methods, --read-only) -> clients -> probe each method
-> standard services -> findings printed (with grpcurl and replay commands) -> reports -> exit code."""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import MethodDescriptor

from harness import cache
from harness.probe import checks as chk
from harness.probe import report, standard
from harness.probe.clients import AioClient, PyClient
from harness.probe.goclient import GoClientError
from harness.probe.schema import Connection, Schema, SchemaError
from harness.probe.run import Finding, Limiter, Prober, probe_all
from harness.report import verdicts

READ_ONLY_LEVELS = (descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS, descriptor_pb2.MethodOptions.IDEMPOTENT)
DEFAULT_TIMEOUT_S = 10.0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("probe", help="probe a running server: schema-valid calls in all four modes from every client "
                                     "flavour (grpcio, grpc.aio, grpc-go), checked side by side (docs/probe.md); "
                                     "for test and staging services: it sends many requests")
    p.add_argument("--target", metavar="HOST:PORT", help="the server to probe (the only address the probe calls)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--protos", type=Path, metavar="DIR", help="the server's .proto folder")
    src.add_argument("--reflection", action="store_true", help="ask the server for its descriptors (reflection)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca", type=Path, metavar="FILE", help="CA bundle for --tls (default: the system's)")
    p.add_argument("--cert", type=Path, metavar="FILE", help="client certificate (mTLS)")
    p.add_argument("--key", type=Path, metavar="FILE", help="client key (mTLS)")
    p.add_argument("--token", metavar="TOKEN", help="sent as `authorization: Bearer TOKEN` with every call")
    p.add_argument("--authority", metavar="NAME", help=":authority (and TLS server name) to use")
    p.add_argument("--budget", type=float, default=60.0, metavar="SECONDS",
                   help="time for all methods, shared equally (a method with a finding gets as much again, at least 5 s, "
                        "to shrink it)")
    p.add_argument("--seed", type=int, default=0, help="the requests follow from it: same seed, same requests")
    p.add_argument("--methods", default="*", metavar="PATTERN",
                   help="only methods matching (globs over pkg.Service/Method, comma-separated); the probe never "
                        "calls any other method, standard services included (default *)")
    p.add_argument("--rps", type=float, default=None, metavar="N", help="at most N calls a second, all clients together")
    p.add_argument("--read-only", action="store_true",
                   help="only methods whose idempotency_level is NO_SIDE_EFFECTS or IDEMPOTENT, or --read-only-allow")
    p.add_argument("--read-only-allow", action="append", default=[], metavar="PATTERN",
                   help="with --read-only: also these methods (globs; repeatable)")
    p.add_argument("--allow-error", action="append", default=[], metavar="METHOD=CODE",
                   help="check 1 accepts this documented server error for the method(s) (repeatable)")
    p.add_argument("--call-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="a call must end within this after the client half-closes (check 4; default "
                        f"{DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--clients", default="py,pyaio,go", metavar="LIST",
                   help="client flavours, comma-separated (default py,pyaio,go)")
    p.add_argument("--peer-runner", default=os.environ.get("INTEROP_PEER_RUNNER", "auto"),
                   choices=["auto", "docker", "process"],
                   help="how the Go client runs: docker (a host-network container), process, or auto")
    p.add_argument("--replay", type=Path, metavar="FILE", help="send the example a finding saved, from every client")
    p.add_argument("--out-dir", type=Path, metavar="DIR", help="where findings' replay files go (default: cache folder)")
    for flag, text in (("--json", "write the findings as JSON"), ("--junit", "write JUnit XML"),
                       ("--html", "write a self-contained HTML report")):
        p.add_argument(flag, type=Path, metavar="FILE", help=text)
    return p


def _patterns(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def allowed(method: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(method, p) for p in patterns)


def select(methods: list[MethodDescriptor], patterns: list[str], read_only: bool,
           read_only_allow: list[str]) -> tuple[list[MethodDescriptor], dict[str, str]]:
    """The methods to probe, and why each other one is left out."""
    chosen: list[MethodDescriptor] = []
    left: dict[str, str] = {}
    for m in methods:
        name = f"{m.containing_service.full_name}/{m.name}"
        if m.containing_service.full_name in standard.STANDARD:
            left[name] = "a standard service (check 6 looks at it)"
        elif not allowed(name, patterns):
            left[name] = "not within --methods"
        elif read_only and m.GetOptions().idempotency_level not in READ_ONLY_LEVELS and not allowed(name, read_only_allow):
            left[name] = "--read-only: idempotency_level is not NO_SIDE_EFFECTS or IDEMPOTENT"
        else:
            chosen.append(m)
    return chosen, left


def make_clients(names: list[str], conn: Connection, sch: Schema, runner: str) -> list[Any]:
    out: list[Any] = []
    try:
        for n in names:
            if n == "py":
                out.append(PyClient(conn, sch.pool))
            elif n == "pyaio":
                out.append(AioClient(conn, sch.pool))
            elif n == "go":
                from harness.probe.goclient import GoClient  # builds the Go client on first use
                out.append(GoClient(conn, sch.serialized(), runner=runner))
            else:
                raise ValueError(f"--clients: unknown client flavour {n!r} (py, pyaio, go)")
    except BaseException:  # one flavour cannot start: the ones started (channels, threads, processes) end
        for c in out:
            c.close()
        raise
    return out


def _connection(args: argparse.Namespace, target: str) -> Connection:
    return Connection(target, args.tls, args.ca, args.cert, args.key, args.authority, args.token)


def _source(args: argparse.Namespace) -> dict[str, Any]:
    """How the probe found the schema and reached the server: a replay file carries it (never the token)."""
    return {"protos": str(args.protos.resolve()) if args.protos else None, "reflection": bool(args.reflection),
            "tls": args.tls, "ca": str(args.ca) if args.ca else None, "cert": str(args.cert) if args.cert else None,
            "key": str(args.key) if args.key else None, "authority": args.authority, "token": bool(args.token)}


def _schema(args: argparse.Namespace, conn: Connection) -> Schema:
    return Schema.from_protos(args.protos) if args.protos else Schema.from_reflection(conn)


def cmd_probe(args: argparse.Namespace) -> int:
    try:
        return _replay(args) if args.replay else _probe(args)
    except (SchemaError, GoClientError) as e:  # no descriptors, bad TLS options, no Go client: usage
        print(f"grpc-interop probe: error: {e}", file=sys.stderr)
        return 2


def _probe(args: argparse.Namespace) -> int:
    if not args.target or not (args.protos or args.reflection):
        print("grpc-interop probe: error: --target HOST:PORT and one of --protos DIR or --reflection are required",
              file=sys.stderr)
        return 2
    if args.budget <= 0 or (args.rps is not None and args.rps <= 0) or args.call_timeout <= 0:
        print("grpc-interop probe: error: --budget, --rps and --call-timeout must be positive", file=sys.stderr)
        return 2
    out = verdicts.console()
    conn = _connection(args, args.target)
    sch = _schema(args, conn)
    patterns = _patterns(args.methods)
    methods, left = select([m.descriptor for m in sch.methods()], patterns, args.read_only, args.read_only_allow)
    allow = chk.parse_allow(args.allow_error)
    if not methods:  # nothing to probe is never a clean probe: the options are wrong
        why = "; ".join(f"{m}: {r}" for m, r in list(left.items())[:5])
        print(f"grpc-interop probe: error: no method to probe (--methods {args.methods!r}"
              f"{', --read-only' if args.read_only else ''}); {why}", file=sys.stderr)
        return 2
    clients = make_clients(_patterns(args.clients), conn, sch, args.peer_runner)
    prober = Prober(clients, sch.pool, int(args.call_timeout * 1000), Limiter(args.rps), allow)
    out.print(f"probe {args.target}: {len(methods)} method(s), clients {', '.join(c.name for c in clients)}, "
              f"seed {args.seed}, budget {args.budget:g} s" + (f", at most {args.rps:g} calls/s" if args.rps else ""),
              soft_wrap=True)
    t0 = time.monotonic()
    try:
        probe_all(prober, methods, args.budget, args.seed)
        with conn.channel() as channel:
            std_findings, notes = standard.standard_services(prober.limiter.paced(channel), conn.metadata(), sch,
                                                             dict(prober.answered),
                                                             lambda m: allowed(m, patterns))
    finally:
        prober.close()
    for method in dict.fromkeys(m for m, _ in std_findings):  # one finding per method, every problem in it
        text = "; ".join(t for m, t in std_findings if m == method)
        prober.findings[(method, chk.STANDARD_CHECK)] = Finding(method, chk.STANDARD_CHECK, text, {}, {})
    checked = {f"{m.containing_service.full_name}/{m.name}": list(chk.CHECKS) for m in methods
               if prober.tally.examples.get(f"{m.containing_service.full_name}/{m.name}")}
    for name in ({f"{s}/ServerReflectionInfo" for s in standard.REFLECTION} | {standard.HEALTH_CHECK}):
        if allowed(name, patterns):
            checked.setdefault(name, []).append(chk.STANDARD_CHECK)
    doc = _document(args, sch, prober, checked, [c.name for c in clients], notes, time.monotonic() - t0)
    for f in doc["findings"]:
        _print_finding(out, f)
    out.print(report.summary_table(prober.tally.calls, prober.tally.examples, [c.name for c in clients],
                                   prober.findings, prober.tally.nondeterministic, checked))
    for m, ev in prober.tally.nondeterministic.items():
        out.print(f"non-deterministic: {m}: {ev['why']}", markup=False, soft_wrap=True)
    for note in notes:
        out.print(f"check 6: {note}", markup=False, soft_wrap=True)
    for m, why in prober.tally.errors.items():
        out.print(f"[bold red]not probed[/bold red]: {m}: the probe failed: {why}", soft_wrap=True)
    _write(args, doc)
    out.print(f"{len(doc['findings'])} finding(s), {sum(sum(v.values()) for v in prober.tally.calls.values())} calls "
              f"in {doc['elapsed_s']:.1f} s", soft_wrap=True)
    # never green with gaps: a method the probe could not probe fails the run as a finding would
    return 1 if doc["findings"] or prober.tally.errors else 0


def _document(args: argparse.Namespace, sch: Any, prober: Prober, checked: dict[str, list[str]], clients: list[str],
              notes: list[str], elapsed: float) -> dict[str, Any]:
    out_dir = args.out_dir or cache.root() / "probe"
    source = _source(args)
    findings = []
    for (method, check), f in sorted(prober.findings.items()):
        entry: dict[str, Any] = {"method": method, "check": check, "message": f.message, "outcomes": f.outcomes,
                                 "example": f.call or None, "request_json": None, "reproduce": None, "grpcurl": None}
        if f.call:
            entry["request_json"] = report.request_json(sch.pool, f.call)
            replay = {"target": args.target, "source": source, "method": method, "check": check, "call": f.call}
            blob = json.dumps(replay, sort_keys=True).encode()
            path = out_dir / f"probe-{method.replace('/', '.')}-{check}-{hashlib.sha256(blob).hexdigest()[:10]}.json"
            report.write_json(path, replay)
            entry["reproduce"] = f"grpc-interop probe --replay {path}" + (" --token $PROBE_TOKEN" if args.token else "")
            entry["grpcurl"] = report.grpcurl(sch.pool, f.call, args.target, source)
        else:
            entry["reproduce"] = (f"grpc-interop probe --target {args.target} "
                                  + (f"--protos {args.protos}" if args.protos else "--reflection")
                                  + f" --methods '{method}' --budget 5")
        findings.append(entry)
    return {"target": args.target, "seed": args.seed, "clients": clients, "findings": findings,
            "calls": prober.tally.calls, "examples": prober.tally.examples, "checked": checked,
            "nondeterministic": prober.tally.nondeterministic, "errors": prober.tally.errors, "notes": notes, "elapsed_s": round(elapsed, 2)}


def _print_finding(out: Any, f: dict[str, Any]) -> None:
    out.print(f"[bold red]FINDING[/bold red] {f['method']}: {f['check']}", soft_wrap=True)
    lines = [f"  {f['message']}"]
    if f["request_json"] is not None:
        lines.append(f"  request (minimal example): {json.dumps(f['request_json'], ensure_ascii=False)}")
    lines.append(f"  reproduce: {f['reproduce']}")
    if f["grpcurl"]:
        lines.append(f"  grpcurl:   {f['grpcurl']}")
    out.print("\n".join(lines), markup=False, soft_wrap=True)
    out.print()


def _write(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    if args.json:
        report.write_json(args.json, doc)
    if args.junit:
        report.write_junit(args.junit, doc)
    if args.html:
        report.write_html(args.html, doc)


def _replay(args: argparse.Namespace) -> int:
    """--replay FILE: the saved example, from every client flavour, through every per-request check."""
    saved = json.loads(args.replay.read_text(encoding="utf-8"))
    src = saved["source"]
    args.protos = Path(src["protos"]) if src.get("protos") else None
    args.reflection = bool(src.get("reflection"))
    args.tls = args.tls or bool(src.get("tls"))
    for key in ("ca", "cert", "key"):
        if getattr(args, key) is None and src.get(key):
            setattr(args, key, Path(src[key]))
    args.authority = args.authority or src.get("authority")
    target = args.target or saved["target"]
    out = verdicts.console()
    conn = _connection(args, target)
    sch = _schema(args, conn)
    clients = make_clients(_patterns(args.clients), conn, sch, args.peer_runner)
    prober = Prober(clients, sch.pool, saved["call"]["timeout_ms"], Limiter(args.rps), chk.parse_allow(args.allow_error))
    try:
        outcomes = prober.exchange(saved["method"], saved["call"])
        failed = prober.check(saved["method"], saved["call"], outcomes)
    finally:
        prober.close()
    out.print(f"replay of {saved['method']} ({saved['check']} was found) against {target}: "
              f"request {json.dumps(report.request_json(sch.pool, saved['call']), ensure_ascii=False)}",
              markup=False, soft_wrap=True)
    for c, o in outcomes.items():
        out.print(f"  {c}: {chk.code_name(o['code'])} {o['message']!r}, {len(o['responses'])} response(s)"
                  + (f", error {o['error']}" if o.get("error") else ""), markup=False, soft_wrap=True)
    for name, msg in failed:
        out.print(f"FINDING {saved['method']}: {name}: {msg}", markup=False, soft_wrap=True)
    if not failed:
        out.print("no finding: the example passes every check now")
    return 1 if failed else 0
