"""Proto files the runtimes already register, recognised by their exact import paths and compared by
content.

- The well-known types: the files protobuf itself ships (the set grpcio-tools bundles beside its
  protoc, grpc_tools/_proto): google/protobuf/timestamp.proto, any.proto, … Another file kept under
  google/protobuf/ (protobuf's own test_messages_proto3.proto, say) is an ordinary file of the set.
- grpc/health/v1/health.proto, grpc/reflection/v1/reflection.proto and
  grpc/reflection/v1alpha/reflection.proto: grpcio-health-checking / grpcio-reflection register them
  in Python's default descriptor pool (under their own file names, grpc_health/v1/health.proto, …),
  grpc-go's health and reflection packages in Go's global registry.
- Anything else already in Python's default pool when the Python engine has loaded.

One process cannot hold two definitions of one proto file (Python: "duplicate symbol"; protobuf-go:
a registration-conflict panic). So a copy in the user's set that is IDENTICAL to the registered file
(FileDescriptorProtos compared, source info, json_name and the file name normalised away) is not
generated again: the registered module / Go package is used, and the copy's services are still
tested like any other (codegen writes only their glue). A copy that differs from Python's stands
aside (stood_in): the registered file is served and tested in its place, and the notice says how
they differ (grpc-proto's health.proto from before `List`, which many repositories vendor). A copy
that differs only from what Go links is an error naming the file and both origins.
"""

from __future__ import annotations

import functools
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool

from harness.protoset.errors import ProtoSetError

# Import path -> (the Python module that registers it, its distribution), for the exact files the
# gRPC runtimes ship; grpcio-reflection has no v1 module (yet): Python then compiles the copy.
GRPC_FILES = {
    "grpc/health/v1/health.proto": ("grpc_health.v1.health_pb2", "grpcio-health-checking"),
    "grpc/reflection/v1alpha/reflection.proto": ("grpc_reflection.v1alpha.reflection_pb2", "grpcio-reflection"),
    "grpc/reflection/v1/reflection.proto": ("grpc_reflection.v1.reflection_pb2", "grpcio-reflection"),
}
# The files Go links already (grpc-go's health and reflection packages; protobuf-go's types/known,
# descriptorpb, pluginpb, gofeaturespb): their Go package is the file's own go_package option,
# which an identical copy carries.
GO_LINKED = frozenset({
    "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto",
    *(f"google/protobuf/{n}.proto" for n in ("any", "api", "duration", "empty", "field_mask", "source_context",
                                             "struct", "timestamp", "type", "wrappers", "descriptor", "go_features")),
    "google/protobuf/compiler/plugin.proto",
})


@functools.cache
def well_known() -> frozenset[str]:
    """The import paths of the well-known types and protobuf's other bundled files."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    return frozenset(p.relative_to(include).as_posix() for p in include.rglob("*.proto"))


def is_well_known(file_name: str) -> bool:
    return file_name in well_known()


@dataclass(frozen=True)
class Registered:
    """A file of the set that a runtime already registers, with identical content."""
    rel: str                  # the import path in the user's set
    python_module: str | None  # the module that registers it in Python (None: Python compiles the copy)
    python_file: str | None    # its file name in Python's default pool (grpc_health/v1/health.proto)
    go_package: str | None     # the Go package that links it (None: Go compiles the copy)


def _module_for(file_name: str) -> str:
    return file_name[: -len(".proto")].replace("/", ".") + "_pb2"


def candidates(files: tuple[str, ...]) -> bool:
    """Whether the set has copies of the exact runtime files (checked as soon as the set is found)."""
    return any(rel in GRPC_FILES or rel in GO_LINKED or is_well_known(rel) for rel in files)


def _load_runtime_modules(files: tuple[str, ...]) -> None:
    """What the Python engine loads (health, reflection, grpc-status), plus the modules of the exact
    runtime files the set has copies of."""
    import python_impl.server  # noqa: F401  (the engine's own imports register health and reflection)

    for rel in files:
        name = GRPC_FILES[rel][0] if rel in GRPC_FILES else _module_for(rel) if is_well_known(rel) else None
        if name:
            try:
                importlib.import_module(name)
            except ImportError:
                pass  # this runtime does not ship it: the copy is compiled like any file


def normalised(fdp: descriptor_pb2.FileDescriptorProto) -> bytes:
    """A file's descriptor without what differs between two compilations of the same content."""
    f = descriptor_pb2.FileDescriptorProto()
    f.CopyFrom(fdp)
    f.ClearField("name")
    f.ClearField("source_code_info")

    def strip(messages) -> None:
        for m in messages:
            for fd in [*m.field, *m.extension]:
                fd.ClearField("json_name")
            strip(m.nested_type)

    strip(f.message_type)
    for fd in f.extension:
        fd.ClearField("json_name")
    return f.SerializeToString(deterministic=True)


def _symbols(fdp: descriptor_pb2.FileDescriptorProto) -> list[str]:
    prefix = f"{fdp.package}." if fdp.package else ""
    return [prefix + x.name for x in (*fdp.message_type, *fdp.enum_type, *fdp.service, *fdp.extension)]


def _python_match(fdp: descriptor_pb2.FileDescriptorProto, ours: Path) -> descriptor_pb2.FileDescriptorProto | None:
    """The default pool's file with this file's name, or holding one of its symbols; files that the
    harness generated itself (modules under `ours`) are not the runtime's."""
    pool = descriptor_pool.Default()
    found = None
    try:
        found = pool.FindFileByName(fdp.name)
    except KeyError:
        for symbol in _symbols(fdp):
            try:
                found = pool.FindFileContainingSymbol(symbol)
                break
            except KeyError:
                continue
    if found is None:
        return None
    module = sys.modules.get(_module_for(found.name)) or next(
        (m for m in list(sys.modules.values()) if getattr(getattr(m, "DESCRIPTOR", None), "name", None) == found.name
         and getattr(m, "__name__", "").endswith("_pb2")), None)
    if module is not None and Path(getattr(module, "__file__", "") or "/").resolve().is_relative_to(ours):
        return None
    out = descriptor_pb2.FileDescriptorProto()
    found.CopyToProto(out)
    return out


def _python_module(file_name: str) -> str:
    """The loaded module whose DESCRIPTOR is this pool file."""
    name = _module_for(file_name)
    if name in sys.modules:
        return name
    for mod_name, mod in list(sys.modules.items()):
        d = getattr(mod, "DESCRIPTOR", None)
        if getattr(d, "name", None) == file_name and mod_name.endswith("_pb2"):
            return mod_name
    raise ProtoSetError(f"{file_name} is in Python's default descriptor pool, but no loaded module registers it")


def _members(fdp: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    """A file's named parts, each with a short signature: messages, fields, enum values, methods."""
    out: dict[str, str] = {}

    def enum(e: descriptor_pb2.EnumDescriptorProto, prefix: str) -> None:
        out[f"enum {prefix}{e.name}"] = ""
        for v in e.value:
            out[f"enum value {prefix}{e.name}.{v.name}"] = str(v.number)

    def message(m: descriptor_pb2.DescriptorProto, prefix: str) -> None:
        out[f"message {prefix}{m.name}"] = ""
        for f in m.field:
            out[f"field {prefix}{m.name}.{f.name}"] = f"{f.number} {f.label} {f.type} {f.type_name}"
        for n in m.nested_type:
            message(n, f"{prefix}{m.name}.")
        for e in m.enum_type:
            enum(e, f"{prefix}{m.name}.")

    for m in fdp.message_type:
        message(m, "")
    for e in fdp.enum_type:
        enum(e, "")
    for svc in fdp.service:
        for m in svc.method:
            out[f"rpc {svc.name}.{m.name}"] = (f"{'stream ' * m.client_streaming}{m.input_type} -> "
                                               f"{'stream ' * m.server_streaming}{m.output_type}")
    return out


def difference(theirs: descriptor_pb2.FileDescriptorProto, yours: descriptor_pb2.FileDescriptorProto) -> str:
    """How a copy differs from the registered file, in a few words (`rpc Health.List only in the
    registered file`), or the options when only they differ."""
    a, b = _members(theirs), _members(yours)

    def alone(mine: dict[str, str], other: dict[str, str]) -> list[str]:
        """Parts only `mine` has, without those inside a message it alone has; methods first."""
        only = [k for k in mine if k not in other]
        whole = [k.split(" ", 1)[1] + "." for k in only if k.startswith(("message ", "enum "))]
        kept = [k for k in only if not any(k.rsplit(" ", 1)[1].startswith(w) for w in whole)]
        return sorted(kept, key=lambda k: (not k.startswith("rpc "), k))

    parts = [f"{k} only in the registered file" for k in alone(a, b)]
    parts += [f"{k} only in your copy" for k in alone(b, a)]
    parts += [f"{k} differs" for k in a if k in b and a[k] != b[k]]
    if not parts:
        parts = ["options or other details differ"]
    return "; ".join(parts[:6]) + (f"; and {len(parts) - 6} more" if len(parts) > 6 else "")


@dataclass(frozen=True)
class StoodIn:
    """A copy in the set that differs from the file a runtime registers: one process cannot hold
    both, so the registered file is served and tested in its place, and the user is told how they differ."""
    rel: str
    path: Path
    registered_as: str  # the registered file's name, and where it comes from
    how: str            # difference()

    def __str__(self) -> str:
        return (f"{self.rel}: your copy {self.path} differs from {self.registered_as}, which is served and "
                f"tested in its place (one process cannot hold both); what only your copy has is not tested: "
                f"{self.how}")


def stood_in(files: tuple[str, ...], compiled: dict[str, descriptor_pb2.FileDescriptorProto],
             where: dict[str, Path], ours: Path) -> list[StoodIn]:
    """The copies in the set that differ from the file Python's runtime registers."""
    _load_runtime_modules(files)
    out = []
    for rel in files:
        theirs = _python_match(compiled[rel], ours)
        if theirs is not None and normalised(theirs) != normalised(compiled[rel]):
            origin = GRPC_FILES.get(rel, (None, "protobuf" if is_well_known(rel) else None))[1]
            module = _python_module(theirs.name)
            out.append(StoodIn(rel, where[rel], f"{theirs.name} that Python registers (module {module}"
                                                f"{f', {origin}' if origin else ''})", difference(theirs, compiled[rel])))
    return out


def registered(files: tuple[str, ...], compiled: dict[str, descriptor_pb2.FileDescriptorProto],
               where: dict[str, Path], ours: Path) -> dict[str, Registered]:
    """The files of the set that a runtime registers already (identical content), by import path.
    `compiled`: protoc's descriptors of the set's files; `where`: each file on disk, for errors;
    `ours`: the folder of the harness's generated code (never a runtime's)."""
    _load_runtime_modules(files)
    out: dict[str, Registered] = {}
    for rel in files:
        fdp = compiled[rel]
        theirs = _python_match(fdp, ours)
        module = file_name = None
        if theirs is not None:
            if normalised(theirs) != normalised(fdp):
                origin = GRPC_FILES.get(rel, (None, "protobuf" if is_well_known(rel) else None))[1]
                raise ProtoSetError(
                    f"{rel}: your copy {where[rel]} differs from {theirs.name} that Python already registers"
                    f" (module {_python_module(theirs.name)}{f', {origin}' if origin else ''}); one process cannot "
                    f"hold both: use the registered file's exact content, or rename the copy's package")
            module, file_name = _python_module(theirs.name), theirs.name
        # Go links these whatever the copy says: a copy without go_package (or another one) is
        # still linked, and the comparison with Go's registry reports how it differs
        go = (fdp.options.go_package.split(";")[0] or "(no go_package)") if rel in GO_LINKED else None
        if module or go:
            out[rel] = Registered(rel, module, file_name, go)
    return out
