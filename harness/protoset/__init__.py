"""A proto set: the `.proto` files under one folder, named by a content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from harness.protoset import googleapis


class ProtoSetError(Exception):
    """The proto folder cannot be used as given."""


@dataclass(frozen=True)
class ProtoSet:
    root: Path
    files: tuple[str, ...]  # posix paths relative to root, sorted
    # copies of googleapis common protos found in the folder: the installed originals are used instead
    replaced: tuple[str, ...] = ()
    # the harness's synthetic echo files (harness/protoset/echo.py), also in `files`, read from echo_root
    echo: tuple[str, ...] = ()
    echo_root: Path | None = None

    def path(self, rel: str) -> Path:
        """Where a file of the set is read from."""
        return self.echo_root / rel if rel in self.echo and self.echo_root else self.root / rel

    def include_args(self) -> list[str]:
        """protoc's -I options for the set's own files."""
        return [f"-I{self.root}", *([f"-I{self.echo_root}"] if self.echo_root else [])]

    def notice(self) -> str | None:
        """What the user must be told about the set: copies of googleapis protos left out."""
        if not self.replaced:
            return None
        return (f"left out of {self.root}, the installed googleapis-common-protos originals are used instead: "
                f"{', '.join(self.replaced)}")

    @property
    def digest(self) -> str:
        """Hash of every file's path and bytes, and of the googleapis protos they may import: the cache
        key for all generated code."""
        h = hashlib.sha256(googleapis.version().encode() + b"\0")
        for rel in self.files:
            h.update(rel.encode() + b"\0")
            h.update(self.path(rel).read_bytes() + b"\0")
        return h.hexdigest()


def discover(root: str | Path) -> ProtoSet:
    root = Path(root).resolve()
    if not root.is_dir():
        raise ProtoSetError(f"proto folder {root} does not exist; pass --protos DIR with your .proto files")
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.proto") if p.is_file())
    common = googleapis.provided()
    files = tuple(f for f in found if f not in common)
    if not files:
        raise ProtoSetError(f"no .proto files under {root}; pass --protos DIR with your .proto files")
    return ProtoSet(root=root, files=files, replaced=tuple(f for f in found if f in common))
