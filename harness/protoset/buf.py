"""Import roots and excludes from a buf configuration (buf.yaml v1 or v2, buf.work.yaml), read with PyYAML.

The buf binary is not needed: only the layout is read, never `deps` (the harness cannot fetch from the
Buf Schema Registry; imports that no root provides fail in protoc, naming the missing file).

- buf.yaml v2: `modules[].path` are the roots (default: the folder itself), `modules[].excludes` are
  folders left out; both relative to the buf.yaml folder.
- buf.yaml v1 (or no `version`): `build.roots` (default: the folder itself), `build.excludes`;
  relative to the buf.yaml folder.
- buf.work.yaml (v1 workspaces): `directories`; each is a module folder whose own buf.yaml v1, when
  it has one, gives its roots and excludes (relative to that module folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.protoset.errors import ProtoSetError


@dataclass(frozen=True)
class Layout:
    config: Path               # the buf file the layout was read from
    roots: tuple[Path, ...]    # absolute import roots
    excludes: tuple[Path, ...]  # absolute folders whose files are left out of the set


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ProtoSetError(f"{path}: cannot read it as YAML ({e}); fix it or pass the roots with -I") from e
    if not isinstance(doc, dict):
        raise ProtoSetError(f"{path}: expected a mapping at the top level")
    return doc


def _dirs(path: Path, base: Path, values: Any, key: str) -> list[Path]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProtoSetError(f"{path}: `{key}` must be a list of folder paths")
    out = []
    for v in values:
        d = (base / v).resolve()
        if not d.is_dir():
            raise ProtoSetError(f"{path}: `{key}` names {v!r}, but {d} is not a folder")
        out.append(d)
    return out


def _module_v1(path: Path, doc: dict[str, Any]) -> tuple[list[Path], list[Path]]:
    base = path.parent
    build = doc.get("build") or {}
    if not isinstance(build, dict):
        raise ProtoSetError(f"{path}: `build` must be a mapping")
    roots = _dirs(path, base, build.get("roots"), "build.roots") or [base.resolve()]
    return roots, _dirs(path, base, build.get("excludes"), "build.excludes")


def read(folder: Path) -> Layout | None:
    """The layout of a buf configuration in `folder`, or None when there is none."""
    work, single = folder / "buf.work.yaml", folder / "buf.yaml"
    if work.is_file():
        doc = _read(work)
        roots: list[Path] = []
        excludes: list[Path] = []
        for module in _dirs(work, folder, doc.get("directories"), "directories"):
            cfg = module / "buf.yaml"
            r, e = _module_v1(cfg, _read(cfg)) if cfg.is_file() else ([module], [])
            roots += r
            excludes += e
        if not roots:
            raise ProtoSetError(f"{work}: `directories` lists no module folder")
        return Layout(work, tuple(roots), tuple(excludes))
    if not single.is_file():
        return None
    doc = _read(single)
    version = str(doc.get("version", "v1"))
    if version == "v2":
        modules = doc.get("modules") or [{"path": "."}]
        if not isinstance(modules, list) or not all(isinstance(m, dict) and "path" in m for m in modules):
            raise ProtoSetError(f"{single}: `modules` must be a list of mappings with a `path`")
        roots = _dirs(single, folder, [m["path"] for m in modules], "modules[].path")
        excludes = [d for m in modules for d in _dirs(single, folder, m.get("excludes"), "modules[].excludes")]
        return Layout(single, tuple(roots), tuple(excludes))
    if version not in ("v1", "v1beta1"):
        raise ProtoSetError(f"{single}: version {version!r} is not one the harness reads (v1, v1beta1, v2)")
    roots, excludes = _module_v1(single, doc)
    return Layout(single, tuple(roots), tuple(excludes))
