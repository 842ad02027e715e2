"""protos -> generated code, for Python and for the Go peer, cached by content hash.

Python: grpcio-tools' bundled protoc writes `_pb2`, `_pb2_grpc` and `.pyi` into
`<cache>/gen/<digest>/py/<package>/` (<cache>: the user's cache folder, harness/cache.py). protoc emits
top-level imports (`import foo_pb2`) that only work
with the output folder on `sys.path`; we rewrite exactly the imports of modules this run generated
into package-qualified ones, so the output is a real package loaded by `import_python()`.

Go: protoc-gen-go and protoc-gen-go-grpc (pinned, `go install`ed into `<cache>/tools/bin`) write into a
copy of `go_peer/` (shipped in the package as `harness._go_peer`) under `<cache>/go/<digest>/src/`;
go_peer's own protoc plugin, protoc-gen-interop
(built from that copy), writes the thin glue `<name>_interop.pb.go` into the same packages. Every
file's Go import path is chosen here with `M` options, so files with a bad `go_package` (or none)
generate the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import dataclasses
import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pb2

from harness import cache
from harness.protoset import googleapis, gotoolchain, runtime
from harness.protoset.descriptors import (CodegenError, _protoc, descriptor_set, imports_of,  # noqa: F401 (its API)
                                          registered_files)
from harness.protoset.errors import ProtoSetError
from harness.protoset.gotoolchain import go_peer_dir
from harness.protoset.model import ProtoSet

GO_MODULE = "github.com/grpc-interop-harness/go_peer"
PY_PACKAGE = "interop_gen"

# Pinned Go code generators; bumping one changes every Go digest.
PROTOC_GEN_GO = ("google.golang.org/protobuf/cmd/protoc-gen-go", "v1.36.12")
PROTOC_GEN_GO_GRPC = ("google.golang.org/grpc/cmd/protoc-gen-go-grpc", "v1.6.2")
GLUE_VERSION = "3"  # bump when the generated glue (gen/glue, protoc-gen-interop's output) changes shape

# The seed services have hand-written Go implementations (go_peer/internal/seeds); they are linked
# only when the proto set holds the seed protos at the import paths those sources expect.
SEED_GO_PACKAGES = {"posxyz", "routeguide", "tutorial", "users", "idc"}


def seed_data() -> Path:
    """The route guide database the seed services serve (python_impl's package data; Go embeds a copy)."""
    return Path(str(importlib.resources.files("python_impl") / "data" / "route_guide_db.json"))



@dataclass(frozen=True)
class Finding:
    """One proto file a language cannot compile or load: a failing row of its own, for every
    direction with that language on one side, while the rest of the set runs (docs/proto-trees.md: Findings)."""
    file: str       # the proto file, relative to the set's folder
    lang: str       # "go" or "py"
    tool: str       # what refused it: protoc-gen-go, go build, protoc's Python generator, Python's import
    message: str    # the tool's own text
    cause: str = "" # for a file importing a failing one: that file

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "lang": self.lang, "tool": self.tool, "message": self.message, "cause": self.cause}


def _write_findings(path: Path, findings: list[Finding]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps([f.to_json() for f in findings], ensure_ascii=False, indent=1))
    tmp.replace(path)


def reported(ps: ProtoSet, findings: list[Finding] | tuple[Finding, ...]) -> list[Finding]:
    """The findings to show: not the harness's echo file of a file that is a finding itself (its
    services are left out all the same)."""
    return [f for f in findings if not (f.file in ps.echo and f.cause)]


def read_findings(path: Path) -> list[Finding]:
    return [Finding(**f) for f in json.loads(path.read_text())] if path.exists() else []


def _with_importers(ps: ProtoSet, files: tuple[str, ...], failed: dict[str, Finding], lang: str) -> list[Finding]:
    """The failing files' findings plus one for every file importing one of them (transitively):
    it cannot be compiled or loaded without it."""
    out = dict(failed)
    for rel, deps in _closure(ps, files).items():
        cause = next((d for d in deps if d in failed and not failed[d].cause), None)
        if cause is not None:  # a failing file that imports a failing one: most likely because of it
            f = failed[cause]
            out[rel] = Finding(rel, lang, f.tool, f"imports {cause}, which failed: {f.message}", cause)
    return [out[rel] for rel in sorted(out)]


def _atomic_dir(target: Path, fill) -> Path:
    """Build a directory in a temp sibling and rename it into place; safe across xdist workers."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ---------------------------------------------------------------- Python

def _module_name(proto: str) -> str:
    return proto[: -len(".proto")].replace("/", ".") + "_pb2"


def _python_name_problems(files: tuple[str, ...]) -> dict[str, str]:
    """Files whose path is no Python module name: protoc's Python output for them cannot be imported."""
    out = {}
    for rel in files:
        bad = [part for part in Path(rel).with_suffix("").parts if not part.isidentifier()]
        if bad:
            out[rel] = (f"{bad[0]!r} is not a valid Python module name, so protoc's Python output for {rel} "
                        f"cannot be imported; rename the file or folder (letters, digits, underscores)")
    return out


def _rewrite_imports(text: str, generated: set[str], package: str, renames: dict[str, str] | None = None) -> str:
    """Imports of this run's modules become package imports; `renames` (module protoc names -> the
    module that really registers the file, grpc.health.v1.health_pb2 -> grpc_health.v1.health_pb2)
    points imports of runtime-registered files at the runtime's modules."""
    renames = renames or {}

    def top(m: re.Match) -> str:
        mod = m.group(2)
        return f"{m.group(1)}from {package} import {mod}{m.group(3) or ''}" if mod in generated else m.group(0)

    def nested(m: re.Match) -> str:
        full = f"{m.group(2)}.{m.group(3)}"
        if full in generated:
            return f"{m.group(1)}from {package}.{m.group(2)} import {m.group(3)}{m.group(4) or ''}"
        if full in renames:
            where, _, mod = renames[full].rpartition(".")
            return f"{m.group(1)}from {where} import {mod}{m.group(4) or ''}"
        return m.group(0)

    text = re.sub(r"^(\s*)import (\w+_pb2)( as \w+)?$", top, text, flags=re.M)
    return re.sub(r"^(\s*)from ([\w.]+) import (\w+_pb2)( as \w+)?$", nested, text, flags=re.M)


def generate_python(ps: ProtoSet, package: str = PY_PACKAGE) -> Path:
    """Generate (or reuse) the Python package for a proto set and its echo files (load); returns the
    package folder.
    Only files whose content or imports changed are regenerated (per-file cache, see _per_file).
    Files Python's runtime registers already (harness/protoset/runtime.py) are not generated: the
    package's RUNTIME_MODULES names their modules, whose services the engine serves too.
    Files Python cannot compile or import are left out: python_findings(package folder) names them."""
    ps = load(ps)  # one folder is one set, echo files included, however it was discovered
    reg = {rel: r for rel, r in registered_files(ps).items() if r.python_module}
    files = tuple(f for f in ps.files if f not in reg)
    _check_runtime_imports(ps, reg)
    # The generated code is only valid for the grpcio-tools / protobuf that made it (gencode checks);
    # which files the runtime registers depends on grpcio-health-checking / grpcio-reflection.
    tools = "-".join(_tool_version(d) for d in ("grpcio-tools", "protobuf", "grpcio-health-checking",
                                                 "grpcio-reflection"))
    out = cache.root() / "gen" / ps.digest[:20] / f"py-{package}-{tools}"
    generated = {_module_name(f) for f in files}
    renames = {_module_name(rel): r.python_module for rel, r in reg.items()}
    with_services = {f.name for f in descriptor_set(ps).file if f.service}
    served = sorted(r.python_module for rel, r in reg.items() if rel in with_services)

    def one(rel: str, dest: Path) -> None:
        _protoc([*ps.include_args(), f"--python_out={dest}", f"--pyi_out={dest}", f"--grpc_python_out={dest}", rel],
                f"Python code for {rel}")
        for path in dest.rglob("*"):
            if path.suffix in (".py", ".pyi"):
                path.write_text(_rewrite_imports(path.read_text(), generated, package, renames))

    def fill(tmp: Path) -> None:
        pkg = tmp / package
        pkg.mkdir()
        findings = (_per_file(ps, f"py|{package}|{tools}", {}, one, pkg, files, lang="py",
                              tool="protoc's Python generator", refused=_python_name_problems(files))
                    if files else [])
        for d in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
            (d / "__init__.py").touch()
        (pkg / "__init__.py").write_text(
            "# Modules of the runtime (not generated here) whose files the proto set vendors, identical:\n"
            "# their services are served and tested like the generated ones.\n"
            f"RUNTIME_MODULES = {tuple(served)!r}\n")
        _write_findings(tmp / "findings.json", findings)

    findings = read_findings(_atomic_dir(out, fill) / "findings.json")
    if len(findings) == len(ps.files):  # nothing left to run: an error, not a finding
        raise CodegenError("Python cannot load any file of the set:\n" +
                           "\n".join(f"{f.file}: {f.message}" for f in findings))
    return out / package


def python_findings(pkg_dir: Path) -> list[Finding]:
    """The files left out of a generated Python package (generate_python), with why."""
    return read_findings(pkg_dir.parent / "findings.json")


def _check_runtime_imports(ps: ProtoSet, reg: dict[str, runtime.Registered]) -> None:
    """Python's runtime may register a file under another name (grpc_health/v1/health.proto); a
    generated file that imports it by the set's name could not be loaded."""
    for f in descriptor_set(ps).file:
        if f.name not in ps.files or f.name in reg:
            continue
        for dep in f.dependency:
            r = reg.get(dep)
            if r is not None and r.python_file != dep:
                raise CodegenError(f"{f.name} imports {dep}, which Python's runtime registers under another file "
                                   f"name, {r.python_file} ({r.python_module}): protobuf's Python runtime cannot "
                                   f"load that import; define the messages {f.name} needs in a file of your own")


# What the last generation regenerated, per language: the incremental-rebuild figure.
LAST_REGENERATED: dict[str, tuple[int, int]] = {}


def _tool_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _closure(ps: ProtoSet, files: tuple[str, ...]) -> dict[str, list[str]]:
    """Each file's transitive imports among `files` (from protoc's parse)."""
    direct = {f.name: list(f.dependency) for f in descriptor_set(ps).file if f.name in set(files)}
    out: dict[str, list[str]] = {}
    for rel in files:
        seen: list[str] = []
        todo = list(direct.get(rel, []))
        while todo:
            dep = todo.pop()
            if dep in direct and dep not in seen:
                seen.append(dep)
                todo += direct[dep]
        out[rel] = sorted(seen)
    return out


def _sources(ps: ProtoSet, files: tuple[str, ...]) -> dict[str, Path]:
    """Where each file to compile is read from: the set's folder, or the staged googleapis protos."""
    common = googleapis.include_dir(cache.root())
    return {rel: ps.path(rel) if rel in ps.files else common / rel for rel in files}


def _per_file(ps: ProtoSet, kind: str, extra: dict[str, str], generate: Any, dest: Path,
              files: tuple[str, ...] | None = None, lang: str = "", tool: str = "",
              refused: dict[str, str] | None = None) -> list[Finding]:
    """Generated files per proto file (`files`, default: the set's), cached by the file's content, its
    imports' contents and the generator (`kind`, `extra[file]`): after an edit only the edited file
    and those importing it run through protoc again. The outputs of every file are then copied into
    `dest`. A file the generator refuses (or `refused` names, with why) becomes a Finding, and so do
    the files importing it; their outputs are left out and the rest of the set goes on."""
    files = files or ps.files
    closure, sources = _closure(ps, files), _sources(ps, files)
    per_file = cache.root() / "gen" / "files"
    missing: list[tuple[str, Path]] = []
    keyed: list[Path] = []
    for rel in files:
        h = hashlib.sha256(f"{kind}\0{rel}\0{extra.get(rel, '')}\0".encode())
        for f in [rel, *closure[rel]]:
            h.update(f.encode() + b"\0" + sources[f].read_bytes() + b"\0" + extra.get(f, "").encode() + b"\0")
        folder = per_file / h.hexdigest()[:24]
        keyed.append(folder)
        if not folder.exists():
            missing.append((rel, folder))
    failed = {rel: Finding(rel, lang, tool, why) for rel, why in (refused or {}).items()}
    if missing:
        from concurrent.futures import ThreadPoolExecutor

        def run(item: tuple[str, Path]) -> None:
            rel, folder = item
            if rel in failed:
                return
            try:
                _atomic_dir(folder, lambda tmp: generate(rel, tmp))
            except CodegenError as e:
                plugin = re.search(r"--[\w-]+_out: (protoc-gen-[\w-]+): Plugin failed", str(e))
                failed[rel] = Finding(rel, lang, plugin.group(1) if plugin else tool, str(e))

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(run, missing))
    LAST_REGENERATED[kind.split("|")[0]] = (len(missing), len(files))
    findings = _with_importers(ps, files, failed, lang)
    left_out = {f.file for f in findings}
    for rel, folder in zip(files, keyed):
        if rel not in left_out:
            shutil.copytree(folder, dest, dirs_exist_ok=True)
    return findings


def load(protos: str | Path | ProtoSet) -> ProtoSet:
    """A proto set (or the set of a folder), plus the harness's echo files for its target files with
    no service (harness/protoset/echo.py): what every command runs. Idempotent."""
    from harness.protoset import discover  # the package's top: discovery builds on descriptors, not on this
    from harness.protoset.echo import with_echo

    ps = protos if isinstance(protos, ProtoSet) else discover(protos)
    if ps.loaded or ps.echo_root is not None:
        return ps
    return dataclasses.replace(with_echo(ps, descriptor_set(ps), cache.root()), loaded=True)


def import_python(pkg_dir: Path) -> ModuleType:
    """Import a generated package from its folder, without touching sys.path."""
    name = pkg_dir.name
    loaded = sys.modules.get(name)
    if loaded is not None:
        if Path(loaded.__file__).parent != pkg_dir:
            raise CodegenError(f"another proto set is already loaded as {name!r} from "
                               f"{Path(loaded.__file__).parent}; one process serves one proto set")
        return loaded
    spec = importlib.util.spec_from_file_location(name, pkg_dir / "__init__.py",
                                                  submodule_search_locations=[str(pkg_dir)])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    # Importing every module registers all descriptors in the default pool up front.
    for path in sorted(pkg_dir.rglob("*_pb2*.py")):
        importlib.import_module(".".join([name, *path.relative_to(pkg_dir).with_suffix("").parts]))
    return module


# ---------------------------------------------------------------- Go

def _go_ident(s: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z_]", "_", s).lower()
    return s if s and not s[0].isdigit() else f"p{s}"


def go_files(ps: ProtoSet) -> tuple[str, ...]:
    """The files the Go peer compiles: the set's own plus the googleapis files they import
    (transitively), except google/rpc: grpc-go already links genproto's packages for those, and one
    proto file cannot be registered twice. Compiling the others here keeps the genproto modules
    (and the grpc-go versions they demand) out of the Go peer's module graph."""
    provided = googleapis.provided()
    common = sorted(f.name for f in descriptor_set(ps).file
                    if f.name in provided and not f.name.startswith("google/rpc/"))
    linked = go_linked(ps)
    return (*(f for f in ps.files if f not in linked), *common)


def go_linked(ps: ProtoSet) -> dict[str, str]:
    """The set's files whose Go code the peer links already (grpc-go's health/reflection packages,
    protobuf-go's well-known types), identical copies: file -> that Go package. protoc-gen-go must not
    generate them again (protobuf-go panics on a second registration of one file); their importers
    use the file's go_package, and files with services get only their glue (glue_packages)."""
    return {rel: r.go_package for rel, r in registered_files(ps).items() if r.go_package}


def glue_packages(ps: ProtoSet) -> dict[str, str]:
    """Linked files with services -> the package of ours their glue is written into."""
    with_services = {f.name for f in descriptor_set(ps).file if f.service}
    return {rel: "/".join(["gen/runtime", *(_go_ident(p) for p in Path(rel).parent.parts)])
            for rel in go_linked(ps) if rel in with_services}


def go_packages(ps: ProtoSet) -> dict[str, str]:
    """Proto file -> Go import path (relative to the module): one Go package per (folder, proto package)."""
    mapping: dict[str, str] = {}
    owners: dict[str, str] = {}
    for rel, pkg in _proto_packages(ps, go_files(ps)).items():
        folder = "/".join(_go_ident(p) for p in Path(rel).parent.parts)
        leaf = _go_ident(pkg) if pkg else "x_nopackage"
        path = "/".join(p for p in ("gen/pb", folder, leaf) if p)
        key = f"{Path(rel).parent.as_posix()}|{pkg}"
        if owners.setdefault(path, key) != key:
            raise CodegenError(f"{rel}: its Go package path {path} collides with another proto package "
                               f"in the same folder ({owners[path]}); rename one of the packages")
        mapping[rel] = path
    return mapping


def _proto_packages(ps: ProtoSet, files: tuple[str, ...]) -> dict[str, str]:
    wanted = set(files)
    return {f.name: f.package for f in descriptor_set(ps).file if f.name in wanted}


GO_TAGS_ENV = "INTEROP_GO_BUILD_TAGS"  # e.g. protolegacy: Go build tags for the plugins and the peer


def go_build_tags(tags: str | list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Go build tags (comma- or space-separated, or a list), by default $INTEROP_GO_BUILD_TAGS.
    They apply to protoc-gen-go, protoc-gen-go-grpc, protoc-gen-interop and the peer alike: protobuf-go's
    `protolegacy` (internal/flags.ProtoLegacy) must be set in the generator that validates the
    descriptors and in the binary that encodes them."""
    if tags is None:
        tags = os.environ.get(GO_TAGS_ENV, "")
    parts = re.split(r"[\s,]+", tags) if isinstance(tags, str) else [t for tag in tags for t in re.split(r"[\s,]+", tag)]
    out = tuple(sorted({t for t in parts if t}))
    for t in out:
        if not re.fullmatch(r"[A-Za-z0-9_.]+", t):
            raise CodegenError(f"Go build tag {t!r} is not valid (letters, digits, '_' and '.'); "
                               f"e.g. --go-build-tags protolegacy")
    return out


def _tags_args(tags: tuple[str, ...]) -> list[str]:
    return ["-tags", ",".join(tags)] if tags else []


def go_tools(tags: tuple[str, ...] = ()) -> dict[str, Path]:
    """Install the pinned protoc plugins into <cache>/tools/bin (once per set of build tags) and return
    their paths."""
    bindir = cache.root() / "tools" / "bin"
    tools = {}
    suffix = "".join(f"-{t}" for t in tags)
    pinned = {module.rsplit("/", 1)[1]: (module, version) for module, version in (PROTOC_GEN_GO, PROTOC_GEN_GO_GRPC)}
    missing = [name for name, (_, v) in pinned.items() if not (bindir / f"{name}-{v}{suffix}").exists()]
    if missing and gotoolchain.current() == gotoolchain.DOCKER:  # the tools stage installs both
        if tags:
            raise CodegenError(f"Go build tags {', '.join(tags)} need a local Go toolchain (the Docker builder "
                               "path builds without tags); install Go, https://go.dev/dl/")
        specs = {name: f"{m}@{v}" for name, (m, v) in pinned.items()}
        with tempfile.TemporaryDirectory(dir=_mkdir(bindir)) as ctx:
            built = gotoolchain.run(gotoolchain.tools_build(gotoolchain.copy_dockerfile(Path(ctx)), specs),
                                    Path(ctx) / "out")
            for name, exe in built.items():
                os.replace(exe, bindir / f"{name}-{pinned[name][1]}")
    for name, (module, version) in pinned.items():
        exe = bindir / f"{name}-{version}{suffix}"
        if not exe.exists():
            bindir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as gobin:
                env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
                proc = subprocess.run(["go", "install", *_tags_args(tags), f"{module}@{version}"], env=env,
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise CodegenError(f"go install {module}@{version} failed:\n{proc.stderr}\n"
                                       "(is Go installed and the Go module proxy reachable?)")
                shutil.move(os.path.join(gobin, name), exe)
        tools[name] = exe
    return tools


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _go_sources() -> dict[str, Path]:
    """go_peer's files a build copy needs, by their path inside go_peer/ (no generated gen/, no Python)."""
    root = go_peer_dir()
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and "gen" not in rel.parts and (
                p.suffix in (".go", ".mod", ".sum") or p.name.startswith("Dockerfile") or "testdata" in rel.parts):
            out[rel.as_posix()] = p
    return out


GRPC_GO_ENV = "INTEROP_GRPC_GO"  # e.g. v1.77.0: build the Go peer against that grpc-go instead of go.mod's
GRPC_GO_MODULE = "google.golang.org/grpc"


# e.g. v1.36.6: build the Go peer against that protobuf-go runtime, independently of grpc-go (the
# version matrix's protobuf-go axis); the pinned protoc-gen-go still writes the code
PROTOBUF_GO_ENV = "INTEROP_PROTOBUF_GO"
PROTOBUF_GO_MODULE = "google.golang.org/protobuf"


def grpc_go_override() -> str | None:
    """The grpc-go version asked for with $INTEROP_GRPC_GO, or None for go_peer/go.mod's own pin."""
    return _module_override(GRPC_GO_ENV, GRPC_GO_MODULE, "grpc-go", "v1.77.0")


def protobuf_go_override() -> str | None:
    """The protobuf-go version asked for with $INTEROP_PROTOBUF_GO, or None for go_peer/go.mod's own."""
    return _module_override(PROTOBUF_GO_ENV, PROTOBUF_GO_MODULE, "protobuf-go", "v1.36.6")


def _module_override(env: str, module: str, name: str, example: str) -> str | None:
    version = os.environ.get(env, "").strip()
    if not version:
        return None
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        raise CodegenError(f"{env}={version!r} is not a {name} module version (like {example}); "
                           f"`go list -m -versions {module}` lists them")
    pinned = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(\S+)",
                       (go_peer_dir() / "go.mod").read_text(), re.M)
    return None if pinned and pinned.group(1) == version else version


def module_overrides() -> list[str]:
    """`module@version` of each Go module override asked for ($INTEROP_GRPC_GO, $INTEROP_PROTOBUF_GO):
    part of the digest of every Go binary built from go_peer/ (the peer, the probe's client)."""
    override, protobuf = grpc_go_override(), protobuf_go_override()
    return [*([f"{GRPC_GO_MODULE}@{override}"] if override else []),
            *([f"{PROTOBUF_GO_MODULE}@{protobuf}"] if protobuf else [])]


def pin_overrides(src: Path) -> None:
    """Pin a build copy of go_peer/ (never go_peer/ itself) to the overrides asked for."""
    override = grpc_go_override()
    if override:
        _pin_grpc_go(src, override)
    if protobuf_go_override():  # after grpc-go: its go get may lift protobuf-go; the check says so
        _pin_grpc_go(src, protobuf_go_override(), PROTOBUF_GO_ENV, PROTOBUF_GO_MODULE, "protobuf-go")
        _check_grpc_go_kept(src, override)


def go_digest(ps: ProtoSet, tags: tuple[str, ...] = ()) -> str:
    """Content hash of everything the Go peer binary is built from: protos, Go sources, go.sum, tools,
    the Go build tags, and the grpc-go version when $INTEROP_GRPC_GO overrides go.mod's (so each gets
    its own image tag)."""
    h = hashlib.sha256()
    for part in (ps.digest, *PROTOC_GEN_GO, *PROTOC_GEN_GO_GRPC, GLUE_VERSION, *module_overrides(),
                 *(f"tag:{t}" for t in tags)):
        h.update(part.encode() + b"\0")
    # named as in the repository's layout, so wheel, sdist and editable installs share digests (and images)
    named = {f"go_peer/{rel}": p for rel, p in _go_sources().items()}
    named["python_impl/data/route_guide_db.json"] = seed_data()
    for name, p in named.items():
        h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class GoBuild:
    digest: str
    src: Path       # the Go module: go_peer's sources plus generated code
    binary: Path    # static interop-peer binary (CGO_ENABLED=0)
    findings: tuple[Finding, ...] = ()  # proto files left out: Go cannot compile them (or they import one)


def _go_env() -> dict[str, str]:
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _build_glue_plugin(src: Path, tags: tuple[str, ...]) -> Path:
    """Compile protoc-gen-interop from the build copy's sources, into the build copy (cached with it)."""
    exe = src.parent / "protoc-gen-interop"
    if not exe.exists() and gotoolchain.current() == gotoolchain.DOCKER:
        gotoolchain.run(gotoolchain.command_build(src, "protoc-gen-interop"), src.parent)
    if not exe.exists():
        proc = subprocess.run(["go", "build", "-trimpath", *_tags_args(tags), "-o", str(exe), "./cmd/protoc-gen-interop"],
                              cwd=src, env=_go_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise CodegenError(f"building protoc-gen-interop failed (sources in {src}):\n{proc.stderr}")
    return exe


def _pin_grpc_go(src: Path, version: str, env: str = GRPC_GO_ENV, module: str = GRPC_GO_MODULE,
                 name: str = "grpc-go") -> None:
    """`go get <module>@<version>` in the build copy (never in go_peer/), then check that the module
    graph really selected that version (a dependency needing a newer one would lift it)."""
    if gotoolchain.current() != gotoolchain.GO:
        raise CodegenError(f"{env}={version} needs a Go toolchain on PATH (the Docker builder "
                           f"builds go.mod's {name} only); install Go 1.26+ or unset {env}")
    proc = subprocess.run(["go", "get", f"{module}@{version}"], cwd=src, env=_go_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CodegenError(f"{env}={version}: `go get {module}@{version}` failed in {src}:\n"
                           f"{proc.stderr}")
    got = subprocess.run(["go", "list", "-m", "-f", "{{.Version}}", module], cwd=src, env=_go_env(),
                         capture_output=True, text=True).stdout.strip()
    if got != version:
        raise CodegenError(f"{env}={version}: the Go module graph selected {name} {got or '?'} instead")


def _check_grpc_go_kept(src: Path, override: str | None) -> None:
    """A lower protobuf-go makes `go get` lower grpc-go too, to a release that accepts it: refuse that,
    since the build would not be the grpc-go asked for."""
    wanted = override or re.search(rf"^\s*(?:require\s+)?{re.escape(GRPC_GO_MODULE)}\s+(\S+)",
                                   (go_peer_dir() / "go.mod").read_text(), re.M).group(1)
    got = subprocess.run(["go", "list", "-m", "-f", "{{.Version}}", GRPC_GO_MODULE], cwd=src, env=_go_env(),
                         capture_output=True, text=True).stdout.strip()
    if got != wanted:
        raise CodegenError(f"{PROTOBUF_GO_ENV}={protobuf_go_override()} lowers grpc-go from {wanted} to {got}: "
                           f"grpc-go {wanted} needs a newer protobuf-go (its go.mod says which); choose a newer "
                           f"protobuf-go, or an older grpc-go with {GRPC_GO_ENV}")


def generate_go(ps: ProtoSet, tags: tuple[str, ...] | None = None) -> Path:
    """Write go_peer's sources plus the generated code for a proto set into <cache>/go/<digest>/src.
    Files the Go generators refuse are left out, with their importers: findings.json beside src."""
    ps = load(ps)
    tags = go_build_tags(tags)
    digest = go_digest(ps, tags)
    target = cache.root() / "go" / digest[:20] / "src"
    if target.exists():
        return target
    tools = go_tools(tags)
    mapping = go_packages(ps)

    def fill(out: Path) -> None:
        tmp = out / "src"
        for rel, p in _go_sources().items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
        pin_overrides(tmp)
        if go_linked(ps):
            _check_go_linked(ps, tmp)
        # "path;name": the import path AND the package name, so a go_package option never decides either.
        m_opts = [f"M{rel}={GO_MODULE}/{path};{path.rsplit('/', 1)[1]}" for rel, path in mapping.items()]
        glue_plugin = _build_glue_plugin(tmp, tags)
        glue_only = glue_packages(ps)

        def one(rel: str, dest: Path) -> None:
            if rel in glue_only:  # linked by the runtime: only the glue, into a package of ours
                args = [*ps.include_args(), f"--plugin=protoc-gen-interop={glue_plugin}", f"--interop_out={dest}",
                        f"--interop_opt=module={GO_MODULE}", f"--interop_opt=glue_package={GO_MODULE}/{glue_only[rel]}",
                        *(f"--interop_opt={m}" for m in m_opts)]
                _protoc([*args, rel], f"Go glue for {rel}")
                return
            args = [*ps.include_args(),
                    f"--plugin=protoc-gen-go={tools['protoc-gen-go']}",
                    f"--plugin=protoc-gen-go-grpc={tools['protoc-gen-go-grpc']}",
                    f"--plugin=protoc-gen-interop={glue_plugin}",
                    f"--go_out={dest}", f"--go_opt=module={GO_MODULE}",
                    f"--go-grpc_out={dest}", f"--go-grpc_opt=module={GO_MODULE}",
                    f"--interop_out={dest}", f"--interop_opt=module={GO_MODULE}"]
            for plugin in ("go", "go-grpc", "interop"):
                args += [f"--{plugin}_opt={m}" for m in m_opts]
            _protoc([*args, rel], f"Go code for {rel}")

        # A file's Go output depends on its own and its imports' Go packages and on the generators.
        kind = f"go|{'|'.join(PROTOC_GEN_GO + PROTOC_GEN_GO_GRPC + tags)}|{_file_hash(glue_plugin)}"
        findings = _per_file(ps, kind, {**mapping, **glue_only}, one, tmp, (*go_files(ps), *glue_only),
                             lang="go", tool="protoc-gen-go")
        _write_go_glue(tmp, _glue_mapping(ps), {f.file for f in findings})
        _write_findings(out / "findings.json", findings)

    return _atomic_dir(target.parent, fill) / "src"


def _check_go_linked(ps: ProtoSet, src: Path) -> None:
    """The set's copies of files the Go peer links must be identical to what it links (the same
    comparison as Python's, against cmd/linked-protos' dump of Go's global registry)."""
    exe = src.parent / "linked-protos"
    proc = subprocess.run(["go", "build", "-trimpath", "-o", str(exe), "./cmd/linked-protos"], cwd=src, env=_go_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CodegenError(f"building linked-protos failed (sources in {src}):\n{proc.stderr}")
    proc = subprocess.run([str(exe)], capture_output=True)
    if proc.returncode != 0:
        raise CodegenError(f"{exe} failed:\n{proc.stderr.decode(errors='replace')}")
    dump = proc.stdout
    theirs = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(dump).file}
    ours = {f.name: f for f in descriptor_set(ps).file}
    grpc_go = grpc_go_override() or next((line.split()[-1] for line in (src / "go.mod").read_text().splitlines()
                                          if line.strip().startswith(GRPC_GO_MODULE + " ")), "?")
    for rel, package in go_linked(ps).items():
        if rel not in theirs:
            raise CodegenError(f"{rel}: the Go peer does not link it (grpc-go {grpc_go}), though its copy "
                               f"{ps.path(rel)} names go_package {package}; remove the copy or its go_package")
        if runtime.normalised(theirs[rel]) != runtime.normalised(ours[rel]):
            raise CodegenError(f"{rel}: your copy {ps.path(rel)} differs from the one the Go peer links already "
                               f"(Go package {package}, grpc-go {grpc_go}); one process cannot hold both: use the "
                               f"linked file's exact content, or rename the copy's package")


def _glue_mapping(ps: ProtoSet) -> dict[str, str]:
    """Each file's Go package for the glue: generated ones, and ours for files the runtime links."""
    return {**go_packages(ps), **glue_packages(ps)}


def _write_go_glue(src: Path, mapping: dict[str, str], left_out: set[str]) -> None:
    """gen/glue for the files that generated (a package whose files were all left out is not linked)."""
    kept = {rel: path for rel, path in mapping.items() if rel not in left_out}
    top_level = {p.split("/")[-1] for p in kept.values() if p.count("/") == 2}
    with_seeds = SEED_GO_PACKAGES <= top_level
    _write_glue(src, sorted(set(kept.values())), with_seeds)
    if with_seeds:  # go:embed can only read files inside the package folder
        (src / "internal" / "seeds").mkdir(parents=True, exist_ok=True)
        shutil.copy2(seed_data(), src / "internal" / "seeds" / seed_data().name)


def _write_glue(src: Path, packages: list[str], with_seeds: bool) -> None:
    """gen/glue links every generated package (their init()s register the messages and, through the
    `_interop.pb.go` glue, the services) and the seed implementations when the seed protos are there."""
    imports = [f'\t_ "{GO_MODULE}/{p}"' for p in packages]
    if with_seeds:
        imports.append(f'\t_ "{GO_MODULE}/internal/seeds"')
    glue = src / "gen" / "glue" / "glue.go"
    glue.parent.mkdir(parents=True, exist_ok=True)
    glue.write_text(
        "// Code generated by grpc-interop-harness (harness/protoset/codegen.py). DO NOT EDIT.\n\n"
        "// Package glue links every generated package of the proto set into the peer binary, so their\n"
        "// types are in the protobuf registry and their services (the _interop.pb.go glue) are served.\n"
        "package glue\n\nimport (\n" + "\n".join(imports) + "\n)\n")


def go_build_cached(ps: ProtoSet, tags: tuple[str, ...] | None = None) -> bool:
    """Whether the Go peer for this proto set is already built (then no Go toolchain is needed)."""
    return (cache.root() / "go" / go_digest(load(ps), go_build_tags(tags))[:20] / "interop-peer").exists()


_GO_ERROR_FILE = re.compile(r"^(?:\./)?(gen/pb/\S+?\.pb\.go):\d+", re.M)


def build_go(ps: ProtoSet, tags: tuple[str, ...] | None = None) -> GoBuild:
    """Generate and compile the static Go peer binary for a proto set (cached by digest). When
    `go build` fails in code generated from some proto files, those files (and their importers)
    become findings and are left out, and the build is tried again without them."""
    ps, tags = load(ps), go_build_tags(tags)
    src = generate_go(ps, tags)
    binary = src.parent / "interop-peer"
    if binary.exists():  # built: the cache is only read (no lock file touched)
        return GoBuild(digest=src.parent.name, src=src, binary=binary,
                       findings=tuple(read_findings(src.parent / "findings.json")))
    with (src.parent / ".build.lock").open("a") as lock:  # xdist workers may build at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        findings = read_findings(src.parent / "findings.json")
        if not binary.exists() and gotoolchain.current() == gotoolchain.DOCKER:
            if tags:
                raise CodegenError(f"Go build tags {', '.join(tags)} need a local Go toolchain (the Docker "
                                   "builder path builds without tags); install Go, https://go.dev/dl/")
            gotoolchain.run(gotoolchain.command_build(src, "interop-peer"), src.parent)
        while not binary.exists():
            tmp = binary.with_name(f".interop-peer.{os.getpid()}")
            proc = subprocess.run(["go", "build", "-trimpath", *_tags_args(tags), "-o", str(tmp), "./cmd/interop-peer"],
                                  cwd=src, env=_go_env(), capture_output=True, text=True)
            if proc.returncode == 0:
                tmp.rename(binary)
                break
            failed = _go_build_culprits(ps, src, proc.stderr, {f.file for f in findings})
            if not failed:
                raise CodegenError(f"building the Go peer for {ps.label} failed (sources in {src}):\n{proc.stderr}")
            findings = _drop_go_files(ps, src, findings, failed)
    return GoBuild(digest=src.parent.name, src=src, binary=binary, findings=tuple(findings))


def _go_outputs(src: Path, mapping: dict[str, str], rel: str) -> list[Path]:
    stem = Path(rel).stem
    return [src / mapping[rel] / f"{stem}{suffix}" for suffix in (".pb.go", "_grpc.pb.go", "_interop.pb.go")]


def _go_build_culprits(ps: ProtoSet, src: Path, stderr: str, left_out: set[str]) -> dict[str, str]:
    """The proto files whose generated Go code `go build` complained about, with its complaint."""
    mapping = go_packages(ps)
    by_output = {out.relative_to(src).as_posix(): rel for rel in mapping if rel not in left_out
                 for out in _go_outputs(src, mapping, rel)}
    culprits: dict[str, list[str]] = {}
    for line in stderr.splitlines():
        m = _GO_ERROR_FILE.match(line.strip())
        if m and m.group(1) in by_output:
            culprits.setdefault(by_output[m.group(1)], []).append(line.strip())
    return {rel: "\n".join(lines) for rel, lines in culprits.items()}


def _drop_go_files(ps: ProtoSet, src: Path, findings: list[Finding], failed: dict[str, str]) -> list[Finding]:
    """Leave out files `go build` refused, and their importers: remove their code, relink the glue."""
    mapping = go_packages(ps)
    known = {f.file: f for f in findings}
    new = {rel: Finding(rel, "go", "go build", why) for rel, why in failed.items()}
    merged = {f.file: f for f in _with_importers(ps, go_files(ps), new, "go")} | known
    for rel in merged:
        for out in _go_outputs(src, mapping, rel):
            out.unlink(missing_ok=True)
    _write_go_glue(src, _glue_mapping(ps), set(merged))
    result = [merged[rel] for rel in sorted(merged)]
    _write_findings(src.parent / "findings.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    from harness.protoset import add_arguments, from_args

    ap = argparse.ArgumentParser(prog="python -m harness.protoset.codegen", description=__doc__.splitlines()[0])
    add_arguments(ap, "protos")
    ap.add_argument("--lang", choices=["py", "go", "all"], default="all")
    ap.add_argument("--build", action="store_true", help="also compile the Go peer binary")
    args = ap.parse_args(argv)
    try:
        ps = from_args(args)
        if args.lang in ("py", "all"):
            print(f"python: {generate_python(ps)}")
        if args.lang in ("go", "all"):
            print(f"go:     {build_go(ps).binary if args.build else generate_go(ps)}")
    except (CodegenError, ProtoSetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
