"""Cases for the standard gRPC services every peer serves: health (grpc.health.v1) and reflection
(grpc.reflection.v1 and v1alpha), derived from the proto set so that they hold for ANY set.

They are not in the servers' catalogue: they reach the real library implementations on both sides
(grpcio-health-checking / grpcio-reflection, grpc-go's health / reflection packages). What each
check means is in docs/peer-contract.md, "Standard services"; the differences between the
libraries are known divergences (harness/run/known_divergences.yaml).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from harness.cases.model import DEFAULT_TIMEOUT_MS, Call, Case
from harness.protoset import ProtoSet
from harness.protoset.runtime import is_well_known
from python_impl.standard import FLIP_SERVICE, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA

SOURCE = "standard services: health and reflection (harness/cases/standard.py)"
# Every server serves these itself (grpc-go: all three; grpcio: no v1 reflection, a capability row:
# harness/run/capabilities.yaml).
STANDARD = (HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA)
UNKNOWN_SERVICE = "interop.health.v1.NoSuchService"
UNKNOWN_SYMBOL = "interop.reflection.v1.NoSuchSymbol"
UNKNOWN_FILE = "interop/reflection/no_such_file.proto"
# every name is <service>/<method>/standard/<pattern>: apart from the generated cases of a set that
# vendors health.proto or reflection.proto (<service>/<method>/<RequestType>/<pattern>, …)
PREFIX = "standard/"
NOT_FOUND = 5  # grpc.StatusCode.NOT_FOUND, the code both libraries put in an error_response


def generate(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset()) -> list[Case]:
    """Health and reflection cases for the proto set (its files but `skip`, Python's findings)."""
    from harness.protoset.codegen import load, registered_files

    ps = load(ps)  # the echo services of files with none are services of the set
    pool = descriptor_pool.Default()
    registered = registered_files(ps)
    # a file the runtime registers has another name in Python's pool (grpc_health/v1/health.proto)
    files = [pool.FindFileByName(registered[rel].python_file if rel in registered and registered[rel].python_file
                                 else rel) for rel in ps.files if rel not in skip]
    served = sorted({svc.full_name for f in files for svc in f.services_by_name.values()} | set(STANDARD))
    # per-file reflection cases: the targets' files (--files), as for the generated cases
    own = [f for f in files if f.name in ps.targets and not _foreign(f, ps)]
    cases = health_cases(served) + [c for v in ("v1", "v1alpha") for c in reflection_cases(v, own, served)]
    rel = {f.name: r for r, f in zip([r for r in ps.files if r not in skip], files)}
    of_service = {svc.full_name: rel[f.name] for f in files for svc in f.services_by_name.values()}
    every = tuple(sorted(set(of_service.values())))
    extensions = _extensions(files)
    out = []
    for c in cases:
        call = c.calls[0]
        if c.name.endswith(("/list_services", "/List/standard/all")):
            if skip:  # a Go server also serves the services of files Python cannot load: no one list holds
                continue
            about: tuple[str, ...] = every
        elif "/Check/standard/service/" in c.name:
            about = tuple(filter(None, [of_service.get(c.name.split("/service/", 1)[1])]))
        else:
            names = {n for e in call.expect.get("reflection", []) for n in e.get("files", [])}
            for e in call.expect.get("reflection", []):
                if "base_type_name" in e:  # the extendee's file and the files extending it
                    names |= {x.file.name for x in extensions if x.containing_type.full_name == e["base_type_name"]}
                    names.add(pool.FindMessageTypeByName(e["base_type_name"]).file.name)
            about = tuple(sorted(rel[n] for n in names if n in rel))
        # where a side cannot load one of these files (a finding), the case cannot hold: it does not run there
        out.append(replace(c, files=about))
    return out


def _foreign(f: FileDescriptor, ps: ProtoSet) -> bool:
    """A file whose closure holds a file the runtimes name differently (grpcio registers health as
    grpc_health/v1/health.proto, grpc-go as grpc/health/v1/health.proto): its closure has no one
    name set both sides share, so it gets no per-file reflection case."""
    return any(n.startswith(("grpc_health/", "grpc_reflection/")) for n in closure(f))


def closure(f: FileDescriptor) -> list[str]:
    """The file and its transitive dependencies, the file first (breadth first, each once)."""
    out, queue = [], [f]
    while queue:
        cur = queue.pop(0)
        if cur.name not in out:
            out.append(cur.name)
            queue += list(cur.dependencies)
    return out


# ---------------------------------------------------------------- health

def _health(name: str, method: str, streaming: str, service: str, responses: list[Any], status: str = "OK",
            cancel_after: int | None = None) -> Case:
    call = Call(method=f"{HEALTH}/{method}", streaming=streaming,
                request_type="grpc.health.v1.HealthCheckRequest" if method != "List"
                else "grpc.health.v1.HealthListRequest",
                response_type="grpc.health.v1.HealthCheckResponse" if method != "List"
                else "grpc.health.v1.HealthListResponse",
                requests=[{"service": service} if service else {}],
                expect={"status": status, "responses": responses}, timeout_ms=DEFAULT_TIMEOUT_MS,
                cancel_after_responses=cancel_after)
    return Case(name=f"{HEALTH}/{method}/{PREFIX}{name}", calls=[call], source=SOURCE)


def health_cases(served: list[str]) -> list[Case]:
    """Check (overall, per served service, unknown), Watch (overall, unknown, status changes the
    server pushes during the call) and List."""
    serving = [{"status": "SERVING"}]
    out = [_health("overall", "Check", "unary", "", serving),
           *(_health(f"service/{s}", "Check", "unary", s, serving) for s in served),
           _health("unknown_service", "Check", "unary", UNKNOWN_SERVICE, [], status="NOT_FOUND"),
           # a Watch never ends by itself: the client cancels once it has what the case expects
           _health("overall", "Watch", "server_stream", "", serving, "CANCELLED", cancel_after=1),
           _health("unknown_service", "Watch", "server_stream", UNKNOWN_SERVICE, [{"status": "SERVICE_UNKNOWN"}],
                   "CANCELLED", cancel_after=1),
           _health("status_changes", "Watch", "server_stream", FLIP_SERVICE,
                   [{"status": s} for s in ("SERVICE_UNKNOWN", "SERVING", "NOT_SERVING")], "CANCELLED",
                   cancel_after=3)]
    statuses = {name: {"status": "SERVING"} for name in ["", *served]}
    return [*out, _health("all", "List", "unary", "", [{"statuses": statuses}])]


# ---------------------------------------------------------------- reflection

def _reflection(version: str, name: str, steps: list[tuple[dict[str, Any], dict[str, Any]]]) -> Case:
    """One ServerReflectionInfo stream: (request, expected response meaning) per step."""
    svc = REFLECTION_V1 if version == "v1" else REFLECTION_V1ALPHA
    call = Call(method=f"{svc}/ServerReflectionInfo", streaming="bidi",
                request_type=f"grpc.reflection.{version}.ServerReflectionRequest",
                response_type=f"grpc.reflection.{version}.ServerReflectionResponse",
                requests=[req for req, _ in steps], expect={"status": "OK", "reflection": [e for _, e in steps]},
                timeout_ms=DEFAULT_TIMEOUT_MS)
    return Case(name=f"{svc}/ServerReflectionInfo/{PREFIX}{name}", calls=[call], source=SOURCE)


def _symbol(f: FileDescriptor) -> str | None:
    """One symbol the file declares: its first service, else message, enum or extension."""
    for group in (f.services_by_name, f.message_types_by_name, f.enum_types_by_name, f.extensions_by_name):
        for d in group.values():
            return d.full_name
    return None


def _extensions(files: list[FileDescriptor]) -> list[Any]:
    """Every extension the files declare, at file level and in message scopes."""
    out = list(ext for f in files for ext in f.extensions_by_name.values())

    def scoped(msgs: Any) -> None:
        for m in msgs:
            out.extend(m.extensions)
            scoped(m.nested_types)

    for f in files:
        scoped(f.message_types_by_name.values())
    return out


def _extendable(files: list[FileDescriptor]) -> list[Any]:
    """The messages the files declare that have extension ranges."""
    out: list[Any] = []

    def walk(msgs: Any) -> None:
        for m in msgs:
            if m.extension_ranges:
                out.append(m)
            walk(m.nested_types)

    for f in files:
        walk(f.message_types_by_name.values())
    return out


def _files(f: FileDescriptor, compare_bundled: bool = False) -> dict[str, Any]:
    """The expected meaning of a file_descriptor_response for file f. The well-known files each
    runtime bundles (its own copy of google/protobuf/*.proto, not compiled from the set) must come
    and rebuild, but their content is compared in their own case (file_by_filename/<that file>):
    the runtimes may ship different revisions of them, which is no difference in the set's files."""
    names = closure(f)
    bundled = [] if compare_bundled else [n for n in names if is_well_known(n)]
    return {"files": names, **({"runtime_files": bundled} if bundled else {})}


def reflection_cases(version: str, files: list[FileDescriptor], served: list[str]) -> list[Case]:
    """list services; each file by name and by one of its symbols, with its transitive dependencies;
    each well-known file the set uses, compared in full; the file of each extension; the extension
    numbers of each extendable message; unknown symbol and file; and two requests on one stream
    (the second may leave out what the first sent)."""
    out = [_reflection(version, "list_services", [({"listServices": "*"}, {"services": served})])]
    for f in files:
        out.append(_reflection(version, f"file_by_filename/{f.name}",
                               [({"fileByFilename": f.name}, _files(f))]))
        sym = _symbol(f)
        if sym is not None:
            out.append(_reflection(version, f"file_containing_symbol/{sym}",
                                   [({"fileContainingSymbol": sym}, _files(f))]))
    pool = descriptor_pool.Default()
    for name in sorted({n for f in files for n in closure(f) if is_well_known(n)}):
        out.append(_reflection(version, f"file_by_filename/{name}",
                               [({"fileByFilename": name}, _files(pool.FindFileByName(name), compare_bundled=True))]))
    names = {f.name for f in files}
    for ext in _extensions(files):
        req = {"fileContainingExtension": {"containingType": ext.containing_type.full_name,
                                           "extensionNumber": ext.number}}
        out.append(_reflection(version, f"file_containing_extension/{ext.containing_type.full_name}/{ext.number}",
                               [(req, _files(ext.file))]))
    for m in _extendable(files):
        numbers = sorted(e.number for e in _extensions(files) if e.containing_type.full_name == m.full_name)
        out.append(_reflection(version, f"all_extension_numbers/{m.full_name}",
                               [({"allExtensionNumbersOfType": m.full_name},
                                 {"extension_numbers": numbers, "base_type_name": m.full_name})]))
    # the health service's own file, by the import path reflection clients know it by (grpc-proto's)
    out.append(_reflection(version, f"file_containing_symbol/{HEALTH}",
                           [({"fileContainingSymbol": HEALTH}, {"files": ["grpc/health/v1/health.proto"]})]))
    out += [_reflection(version, "unknown_symbol", [({"fileContainingSymbol": UNKNOWN_SYMBOL},
                                                     {"error_code": NOT_FOUND})]),
            _reflection(version, "unknown_file", [({"fileByFilename": UNKNOWN_FILE}, {"error_code": NOT_FOUND})])]
    deepest = max(files, key=lambda f: (len(closure(f)), f.name), default=None)
    if deepest is not None and _symbol(deepest) is not None and deepest.name in names:
        out.append(_reflection(version, "same_stream/file_then_symbol", [
            ({"fileByFilename": deepest.name}, _files(deepest)),
            ({"fileContainingSymbol": _symbol(deepest)}, _files(deepest))]))
    return out
