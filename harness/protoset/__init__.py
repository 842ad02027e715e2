"""A proto set: the `.proto` files under one or more import roots, named by a content hash.

Roots come from `--protos DIR` (or the buf.yaml / buf.work.yaml found there, harness/protoset/buf.py)
plus every `-I/--proto-path DIR`, as with protoc. A file's import path is relative to its root; every
file under every root belongs to the set. `--files GLOB` picks the targets: only their services get
cases, and only they and their imports are compiled.
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from harness.protoset import buf, descriptors, googleapis, runtime
from harness.protoset.errors import ProtoSetError
from harness.protoset.model import ProtoSet

__all__ = ["ProtoSet", "ProtoSetError", "discover", "add_arguments", "from_args"]


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
        needed = descriptors.imports_of([f"-I{r}" for r in roots], targets) | set(targets)
        own = [f for f in own if f in needed]
    spec = (*(["--protos", str(folder)] if folder is not None else []),
            *(a for p in proto_paths for a in ("-I", str(Path(p).resolve()))),
            *(a for g in globs for a in ("--files", g)))
    ps = ProtoSet(roots=tuple(roots), files=tuple(own), origins=tuple(where[f] for f in own),
                  targets=tuple(targets), replaced=tuple(f for f in found if f in common), spec=spec,
                  buf_config=config)
    if runtime.candidates(ps.files):  # copies of runtime files: a differing one stands aside here, first
        standing = descriptors.stood_in_files(ps)
        if standing:
            aside = {s.rel for s in standing}
            kept = [f for f in ps.files if f not in aside]
            if not [f for f in kept if f not in common]:
                raise ProtoSetError("every file of the set is a copy of a file the runtime registers, with other "
                                    "content:\n" + "\n".join(map(str, standing)))
            ps = replace(ps, files=tuple(kept), origins=tuple(where[f] for f in kept),
                         targets=tuple(t for t in ps.targets if t not in aside),
                         stood_in=tuple(str(s) for s in standing))
        descriptors.registered_files(ps)
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
