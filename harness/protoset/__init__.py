"""A proto set: the `.proto` files under one or more import roots, named by a content hash.

Roots come from `--protos DIR` (or the buf.yaml / buf.work.yaml found there, harness/protoset/buf.py)
plus every `-I/--proto-path DIR`, as with protoc. A file's import path is relative to its root; every
file under every root belongs to the set. `--files GLOB` picks the targets: only their services get
cases, and only they and their imports are compiled.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from harness.protoset import buf, googleapis
from harness.protoset.errors import ProtoSetError

__all__ = ["ProtoSet", "ProtoSetError", "discover", "add_arguments", "from_args"]


@dataclass(frozen=True)
class ProtoSet:
    roots: tuple[Path, ...]
    files: tuple[str, ...]  # import paths (posix, relative to their root), sorted: everything compiled
    origins: tuple[Path, ...] = ()  # the root of each of `files`, same order
    # the files whose services get cases (--files); all of `files` when none was asked for
    targets: tuple[str, ...] = ()
    # copies of googleapis common protos found in the folder: the installed originals are used instead
    replaced: tuple[str, ...] = ()
    # the arguments that rebuild this set in another process (python_peer, repro commands)
    spec: tuple[str, ...] = ()
    buf_config: Path | None = None
    # the harness's synthetic echo files (harness/protoset/echo.py): in `files`, their origin echo_root
    echo: tuple[str, ...] = ()
    echo_root: Path | None = None
    # copies of files a runtime registers, with other content: left out, the registered file is
    # served and tested in their place; each says how they differ (runtime.StoodIn)
    stood_in: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The first import root (the --protos folder, or buf's first root)."""
        return self.roots[0]

    @property
    def label(self) -> str:
        """The roots, for messages."""
        return " + ".join(str(r) for r in self.roots)

    def path(self, rel: str) -> Path:
        """Where a file of the set is on disk."""
        return self.origins[self.files.index(rel)] / rel

    def include_args(self) -> list[str]:
        """protoc's -I options for the set's own files, the echo files' folder included."""
        return [f"-I{r}" for r in self.roots] + ([f"-I{self.echo_root}"] if self.echo_root else [])

    def notice(self) -> str | None:
        """What the user must be told about the set: copies of googleapis protos left out, and copies
        of runtime files that differ from the registered ones."""
        lines = list(self.stood_in)
        if self.replaced:
            lines.insert(0, f"left out of {self.label}, the installed googleapis-common-protos originals are used "
                            f"instead: {', '.join(self.replaced)}")
        return "\n".join(lines) or None

    @property
    def digest(self) -> str:
        """Hash of every file's import path and bytes (under every root), and of the googleapis protos
        they may import: the cache key for all generated code."""
        h = hashlib.sha256(googleapis.version().encode() + b"\0")
        for rel, root in zip(self.files, self.origins):
            h.update(rel.encode() + b"\0")
            h.update((root / rel).read_bytes() + b"\0")
        return h.hexdigest()


def _walk(root: Path, excludes: Iterable[Path]) -> list[str]:
    excluded = tuple(excludes)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto")
                  if p.is_file() and not any(p.is_relative_to(e) for e in excluded))


def _roots(protos: Path | None, proto_paths: Iterable[str | Path]) -> tuple[list[Path], list[Path], Path | None]:
    """Import roots and excluded folders: buf's (or the --protos folder itself), then every -I."""
    roots: list[Path] = []
    excludes: list[Path] = []
    config = None
    if protos is not None:
        if not protos.is_dir():
            raise ProtoSetError(f"proto folder {protos} does not exist; pass --protos DIR with your .proto files")
        layout = buf.read(protos)
        if layout is None:
            roots.append(protos)
        else:
            roots += layout.roots
            excludes += layout.excludes
            config = layout.config
    for p in proto_paths:
        d = Path(p).resolve()
        if not d.is_dir():
            raise ProtoSetError(f"-I {p}: {d} is not a folder; pass -I/--proto-path DIR with an import root")
        if d not in roots:
            roots.append(d)
    for a in roots:
        for b in roots:
            if a != b and b.is_relative_to(a):
                raise ProtoSetError(f"import roots overlap: {b} is inside {a}, so its files would have two import "
                                    f"paths; pass roots that do not contain each other")
    return roots, excludes, config


def discover(protos: str | Path | None = None, proto_paths: Iterable[str | Path] = (),
             files: Iterable[str] = ()) -> ProtoSet:
    """The set under `protos` (a folder, or its buf layout) and every extra import root; `files`
    (globs over import paths) picks the targets."""
    folder = Path(protos).resolve() if protos is not None else None
    proto_paths, globs = tuple(proto_paths), tuple(files)
    if folder is None and not proto_paths:
        raise ProtoSetError("no proto folder: pass --protos DIR or -I/--proto-path DIR")
    roots, excludes, config = _roots(folder, proto_paths)
    explicit = [Path(p).resolve() for p in proto_paths]
    where: dict[str, Path] = {}
    for root in roots:
        # an explicit -I root is never excluded by the buf configuration
        for rel in _walk(root, () if root in explicit else excludes):
            if rel in where:
                raise ProtoSetError(f"{rel} is under two import roots: {where[rel] / rel} and {root / rel}; "
                                    f"one import path must name one file (remove one or drop one root)")
            where[rel] = root
    common = googleapis.provided()
    found = sorted(where)
    own = [f for f in found if f not in common]
    if not own:
        raise ProtoSetError(f"no .proto files under {' + '.join(map(str, roots))}; "
                            f"pass --protos DIR (or -I DIR) with your .proto files")
    targets = own
    if globs:
        targets = [f for f in own if any(fnmatch.fnmatchcase(f, g) for g in globs)]
        for g in globs:
            if not any(fnmatch.fnmatchcase(f, g) for f in own):
                raise ProtoSetError(f"--files {g!r} matches no import path under {' + '.join(map(str, roots))} "
                                    f"(import paths look like {own[0]})")
        from harness.protoset.codegen import imports_of

        needed = imports_of([f"-I{r}" for r in roots], targets) | set(targets)
        own = [f for f in own if f in needed]
    spec = (*(["--protos", str(folder)] if folder is not None else []),
            *(a for p in proto_paths for a in ("-I", str(Path(p).resolve()))),
            *(a for g in globs for a in ("--files", g)))
    ps = ProtoSet(roots=tuple(roots), files=tuple(own), origins=tuple(where[f] for f in own),
                  targets=tuple(targets), replaced=tuple(f for f in found if f in common), spec=spec,
                  buf_config=config)
    from harness.protoset import runtime

    if runtime.candidates(ps.files):  # copies of runtime files: a differing one stands aside here, first
        from harness.protoset.codegen import registered_files, stood_in_files

        standing = stood_in_files(ps)
        if standing:
            aside = {s.rel for s in standing}
            kept = [f for f in ps.files if f not in aside]
            if not [f for f in kept if f not in common]:
                raise ProtoSetError("every file of the set is a copy of a file the runtime registers, with other "
                                    "content:\n" + "\n".join(map(str, standing)))
            ps = replace(ps, files=tuple(kept), origins=tuple(where[f] for f in kept),
                         targets=tuple(t for t in ps.targets if t not in aside),
                         stood_in=tuple(str(s) for s in standing))
        registered_files(ps)
    return ps


def add_arguments(p: Any, protos_default: str | None = "protos") -> None:
    """The proto set's options, the same on every command and in the Python peer's process."""
    p.add_argument("--protos", default=None,
                   help=f"folder of .proto files; a buf.yaml / buf.work.yaml there gives the roots"
                        f"{f' (default: {protos_default}, unless -I is given)' if protos_default else ''}")
    p.add_argument("-I", "--proto-path", dest="proto_paths", action="append", default=[], metavar="DIR",
                   help="another import root, as in protoc; its files join the set (repeatable)")
    p.add_argument("--files", dest="file_globs", action="append", default=[], metavar="GLOB",
                   help="only these files' services get cases (globs over import paths; their imports are still "
                        "compiled); repeatable")
    p.set_defaults(protos_default=protos_default)


def from_args(args: Any) -> ProtoSet:
    protos = args.protos if args.protos is not None or args.proto_paths else args.protos_default
    return discover(protos, args.proto_paths, args.file_globs)
