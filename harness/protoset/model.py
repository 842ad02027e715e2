"""The proto set as a value (harness/protoset/__init__.py finds one): its roots, files and targets,
named by a content hash. Below every other module of the package, so each can take it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.protoset import googleapis


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
    # codegen.load made it (echo files added, or none needed): loading it again is a no-op, so the
    # set is loaded once and handed along (prepare -> generate_python, build_go …)
    loaded: bool = field(default=False, compare=False)

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
