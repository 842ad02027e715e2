"""Where the probe's descriptors come from: a proto folder (`--protos`) or the server's own reflection
service (`--reflection`), and the `Schema` of services and methods built from them.

Reflection is asked in version v1 first, then v1alpha: grpcio-reflection (1.85) serves only
grpc.reflection.v1alpha.ServerReflection, grpc-go (1.85, reflection.Register) serves both. The two
versions' messages have the same fields and numbers, so grpcio-reflection's v1alpha classes
serialize the v1 requests too; only the method path differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_reflection.v1alpha import reflection_pb2

from harness.protoset import descriptors, discover
from harness.protoset.runtime import normalised

REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
STANDARD_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                     "grpc.reflection.v1.ServerReflection")
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]  # never through a proxy: the probe talks to --target only
REFLECTION_TIMEOUT = 10.0  # seconds per reflection request


class SchemaError(Exception):
    """The descriptors could not be had; the message names the target or file and what to do."""


# ---------------------------------------------------------------- connection

@dataclass(frozen=True)
class Connection:
    """How every client flavour reaches --target: the same options for Python, grpc.aio and Go.

    With `authority` the :authority header is that name, and on TLS it is also the name the server
    certificate is verified against (grpc-go does both with WithAuthority; grpcio needs
    grpc.default_authority and grpc.ssl_target_name_override). A token is sent as
    `authorization: Bearer <token>`."""

    target: str
    tls: bool = False
    ca: Path | None = None      # PEM roots; None with tls: the system's roots
    cert: Path | None = None    # client certificate (mTLS), with key
    key: Path | None = None
    authority: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise SchemaError("--cert and --key go together (the client certificate and its private key)")
        if not self.tls and (self.ca or self.cert):
            raise SchemaError("--ca, --cert and --key need --tls")

    def channel_options(self) -> list[tuple[str, object]]:
        opts: list[tuple[str, object]] = list(CHANNEL_OPTIONS)
        if self.authority:
            opts.append(("grpc.default_authority", self.authority))
            if self.tls:
                opts.append(("grpc.ssl_target_name_override", self.authority))
        return opts

    def credentials(self) -> grpc.ChannelCredentials:
        read = (lambda p: Path(p).read_bytes() if p is not None else None)
        return grpc.ssl_channel_credentials(root_certificates=read(self.ca), private_key=read(self.key),
                                            certificate_chain=read(self.cert))

    def channel(self) -> grpc.Channel:
        """A grpcio channel to the target (sync)."""
        if self.tls:
            return grpc.secure_channel(self.target, self.credentials(), options=self.channel_options())
        return grpc.insecure_channel(self.target, options=self.channel_options())

    def metadata(self) -> list[tuple[str, str]]:
        """Metadata every call carries: the bearer token, if any."""
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def go_args(self) -> list[str]:
        """The same options as `interop-peer probe-client` flags (file paths as given)."""
        args = ["--target", self.target]
        if self.tls:
            args.append("--tls")
        for flag, value in (("--ca", self.ca), ("--cert", self.cert), ("--key", self.key),
                            ("--authority", self.authority), ("--token", self.token)):
            if value:
                args += [flag, str(value)]
        return args


# ---------------------------------------------------------------- sources

def from_protos(folder: str | Path) -> descriptor_pb2.FileDescriptorSet:
    """The proto folder as the harness's protoc parses it, with every import."""
    return descriptors.descriptor_set(discover(folder))


def target_services(folder: str | Path) -> list[str]:
    """The services declared by the folder's own files (not by what they import)."""
    ps = discover(folder)
    own = set(ps.targets)
    return sorted(_full(f.package, s.name) for f in descriptors.descriptor_set(ps).file if f.name in own
                  for s in f.service)


@dataclass(frozen=True)
class Reflected:
    """What a server's reflection service said: its files (dependencies first), the services it
    lists, the reflection version that answered (v1 or v1alpha), and the listed services it could
    not describe, with its error (they are not probed; check 6 may report them)."""

    fds: descriptor_pb2.FileDescriptorSet
    services: tuple[str, ...]
    version: str
    unresolved: dict[str, str] = field(default_factory=dict)


def from_reflection(target: str | Connection, **tls: object) -> descriptor_pb2.FileDescriptorSet:
    """The server's files through reflection (v1, else v1alpha). `tls` are Connection's options."""
    return reflect(target if isinstance(target, Connection) else Connection(target, **tls)).fds  # type: ignore[arg-type]


def reflect(conn: Connection) -> Reflected:
    """Ask the server's reflection service for its services and every file they need."""
    with conn.channel() as channel:
        errors = []
        for version, path in (("v1", REFLECTION_V1), ("v1alpha", REFLECTION_V1ALPHA)):
            ask = _Asker(channel, path, conn)
            try:
                listed = ask(reflection_pb2.ServerReflectionRequest(list_services=""))
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                    errors.append(f"{version}: UNIMPLEMENTED")
                    continue
                raise SchemaError(f"reflection {version} at {conn.target} failed: {e.code().name}: {e.details()} "
                                  f"(is the server up, and is --tls right?)") from None
            services = tuple(s.name for s in listed.list_services_response.service)
            unresolved: dict[str, str] = {}
            fds = _files(ask, services, conn.target, version, unresolved)
            return Reflected(fds, services, version, unresolved)
    raise SchemaError(f"{conn.target} serves no reflection service ({'; '.join(errors)}): pass --protos DIR "
                      f"with the server's .proto files instead of --reflection")


class _Asker:
    """One reflection request, one answer (a stream each: simple, and the files are few)."""

    def __init__(self, channel: grpc.Channel, path: str, conn: Connection) -> None:
        self._call = channel.stream_stream(path, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                           response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        self._md = conn.metadata()

    def __call__(self, req: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
        for resp in self._call(iter([req]), timeout=REFLECTION_TIMEOUT, metadata=self._md):
            return resp
        raise SchemaError("the reflection service ended its stream without an answer")


def _files(ask: _Asker, services: tuple[str, ...], target: str, version: str,
           unresolved: dict[str, str]) -> descriptor_pb2.FileDescriptorSet:
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def take(resp: reflection_pb2.ServerReflectionResponse, what: str) -> None:
        if resp.HasField("error_response"):
            raise SchemaError(f"reflection {version} at {target}: {what}: {resp.error_response.error_message} "
                              f"(code {resp.error_response.error_code}); the server cannot describe it, so pass --protos")
        for raw in resp.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(fdp.name, fdp)

    for s in services:  # one service the server cannot describe does not stop the others
        try:
            take(ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=s)), f"service {s}")
        except SchemaError as e:
            unresolved[s] = str(e)
    if services and len(unresolved) == len(services):
        raise SchemaError(f"reflection {version} at {target} described none of the listed services:\n"
                          + "\n".join(unresolved.values()))
    queue = [d for f in list(files.values()) for d in f.dependency]
    while queue:  # a server may send only the file asked for; its imports are asked for one by one
        name = queue.pop()
        if name in files:
            continue
        take(ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name)), f"file {name}")
        if name not in files:
            raise SchemaError(f"reflection {version} at {target}: asked for {name}, got other files; pass --protos")
        queue += files[name].dependency
    return descriptor_pb2.FileDescriptorSet(file=_ordered(files))


def _ordered(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[descriptor_pb2.FileDescriptorProto]:
    """Dependencies before their importers, as a descriptor pool wants them."""
    out: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in files:
            return
        seen.add(name)
        for d in files[name].dependency:
            visit(d)
        out.append(files[name])

    for name in sorted(files):
        visit(name)
    return out


# ---------------------------------------------------------------- schema

STREAMING = {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
             (True, True): "bidi"}


@dataclass(frozen=True)
class Method:
    """One method to probe: `name` is "pkg.Service/Method" (the probe call's `method`)."""

    descriptor: MethodDescriptor

    @property
    def name(self) -> str:
        return f"{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def service(self) -> str:
        return self.descriptor.containing_service.full_name

    @property
    def streaming(self) -> str:
        return STREAMING[(self.descriptor.client_streaming, self.descriptor.server_streaming)]

    @property
    def idempotency_level(self) -> str:
        """IDEMPOTENCY_UNKNOWN, NO_SIDE_EFFECTS or IDEMPOTENT (the method option; --read-only)."""
        opts = descriptor_pb2.MethodOptions.FromString(self.descriptor.GetOptions().SerializeToString())
        return descriptor_pb2.MethodOptions.IdempotencyLevel.Name(opts.idempotency_level)

    @property
    def input(self):  # noqa: ANN201  google.protobuf.descriptor.Descriptor
        return self.descriptor.input_type

    @property
    def output(self):  # noqa: ANN201
        return self.descriptor.output_type


@dataclass
class Schema:
    """The services and methods of a descriptor set, resolved in a descriptor pool.

    The pool is a new one unless given. Pass `descriptor_pool.Default()` to have the types beside
    the runtime's own (its well-known types' classes); the harness's code generation then sees the
    files there, without the modules it expects (runtime.registered), so do that only in a process
    that generates no code afterwards. A file already in the pool (a well-known type, or a second
    load) is kept when it declares the same, else loading fails naming it. `served` limits the
    services to those a server lists (reflection); by default every service of the set."""

    fds: descriptor_pb2.FileDescriptorSet
    served: tuple[str, ...] | None = None
    source: str = ""
    pool: descriptor_pool.DescriptorPool = field(default_factory=descriptor_pool.DescriptorPool)

    def __post_init__(self) -> None:
        alias: dict[str, str] = {}  # a file of the set -> the pool's file with the same content
        for fdp in self.fds.file:
            self._add(fdp, alias)

    def _add(self, fdp: descriptor_pb2.FileDescriptorProto, alias: dict[str, str]) -> None:
        """Add one file, or take the pool's copy of it. A copy may carry another name: grpc-go's
        reflection names health "grpc/health/v1/health.proto", grpcio-health-checking registers
        "grpc_health/v1/health.proto"; the set's importers then import the pool's name."""
        if any(d in alias for d in fdp.dependency):
            fdp = descriptor_pb2.FileDescriptorProto.FromString(fdp.SerializeToString())
            fdp.dependency[:] = [alias.get(d, d) for d in fdp.dependency]
        try:
            have = self.pool.FindFileByName(fdp.name)
        except KeyError:
            try:
                self.pool.Add(fdp)
                return
            except TypeError:  # a symbol of it is already defined, by a file of another name
                symbols = _symbols(fdp)
                have = self.pool.FindFileContainingSymbol(symbols[0]) if symbols else None
                if have is None:
                    raise
        mine = descriptor_pb2.FileDescriptorProto()
        have.CopyToProto(mine)
        if _content(mine) != _content(fdp):
            raise SchemaError(f"{fdp.name} ({self.source or 'descriptors'}) differs from {have.name}, which is "
                              f"already loaded in this process and declares the same names (a runtime's copy, "
                              f"or another proto set): probe one proto set per process")
        alias[fdp.name] = have.name

    @classmethod
    def from_protos(cls, folder: str | Path, pool: descriptor_pool.DescriptorPool | None = None) -> Schema:
        return cls(from_protos(folder), served=tuple(target_services(folder)), source=f"--protos {folder}",
                   pool=pool or descriptor_pool.DescriptorPool())

    @classmethod
    def from_reflection(cls, conn: Connection, pool: descriptor_pool.DescriptorPool | None = None) -> Schema:
        r = reflect(conn)
        return cls(r.fds, served=r.services, source=f"reflection {r.version} at {conn.target}",
                   pool=pool or descriptor_pool.DescriptorPool())

    def services(self) -> list[str]:
        """Full names of the services to probe (standard ones included: check 6 uses them)."""
        declared = {_full(f.package, s.name) for f in self.fds.file for s in f.service}
        return sorted(declared if self.served is None else declared & set(self.served))

    def service(self, name: str) -> ServiceDescriptor:
        return self.pool.FindServiceByName(name)

    def methods(self) -> list[Method]:
        return [Method(m) for s in self.services() for m in self.service(s).methods]

    def method(self, name: str) -> Method:
        """A method by "pkg.Service/Method"."""
        service, _, method = name.partition("/")
        try:
            return Method(self.service(service).methods_by_name[method])
        except KeyError:
            raise SchemaError(f"{name}: no such method in {self.source or 'the descriptors'}") from None

    def serialized(self) -> bytes:
        """The descriptor set as `interop-peer probe-client --descriptors` reads it."""
        return self.fds.SerializeToString()


def _full(package: str, name: str) -> str:
    return f"{package}.{name}" if package else name


def _symbols(fdp: descriptor_pb2.FileDescriptorProto) -> list[str]:
    prefix = f"{fdp.package}." if fdp.package else ""
    return [prefix + x.name for x in (*fdp.message_type, *fdp.enum_type, *fdp.service)]


def _content(fdp: descriptor_pb2.FileDescriptorProto) -> bytes:
    """What a file declares, without what two compilers (protoc here, the embedded copy behind a Go
    server's reflection) or two vendorings of one file write differently: its name, imports,
    options and json names."""
    f = descriptor_pb2.FileDescriptorProto.FromString(normalised(fdp))
    for name in ("options", "dependency", "public_dependency", "weak_dependency", "syntax", "edition"):
        f.ClearField(name)
    return f.SerializeToString(deterministic=True)
