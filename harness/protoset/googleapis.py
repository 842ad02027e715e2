"""The googleapis common protos (google/api, google/type, google/rpc, ...) as an import root.

User protos often import `google/api/annotations.proto`, `google/type/date.proto` or
`google/rpc/status.proto`. Their .proto sources, taken from the installed googleapis-common-protos,
are staged in the cache folder (harness/cache.py) so protoc can resolve the imports. Python uses that package's modules. Go uses
genproto's packages for google/rpc (grpc-go links them already) and compiles the other imported
files itself (harness/protoset/codegen.py, go_files). A copy of one of these files inside the user's folder
is left out of the set: two definitions of one proto file cannot live in one process (grpcio-status
and grpc-go load the real google/rpc/status.proto).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

DIST = "googleapis-common-protos"
# google/longrunning is left out: its Go package lives in cloud.google.com/go/longrunning, a module
# the Go peer does not require; a proto set that needs it can carry its own copy.
FOLDERS = ("google/api", "google/type", "google/rpc", "google/cloud", "google/logging", "google/gapic")


def _installed_root() -> Path:
    spec = importlib.util.find_spec("google.api")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{DIST} is not installed; run `make setup` (it is a dependency of the harness)")
    return Path(next(iter(spec.submodule_search_locations))).parent.parent


def version() -> str:
    return importlib.metadata.version(DIST)


@functools.cache  # one installed package per process; discover() and codegen ask several times
def provided() -> frozenset[str]:
    """The import paths (google/api/annotations.proto, ...) that come from googleapis-common-protos."""
    root = _installed_root()
    return frozenset(p.relative_to(root).as_posix() for folder in FOLDERS for p in (root / folder).rglob("*.proto"))


def include_dir(build: Path) -> Path:
    """A folder holding only the googleapis .proto files (not all of site-packages), for protoc -I."""
    target = build / "googleapis" / version()
    if target.exists():
        return target
    root = _installed_root()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".staging.", dir=target.parent))
    try:
        for rel in provided():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, tmp / rel)
        try:
            os.rename(tmp, target)
        except OSError:  # another process staged it first
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
