"""Where the harness keeps what it builds: generated code, protoc plugins, Go build copies, binaries.

One folder per user, never inside the installed package nor the user's repository:
`$INTEROP_CACHE_DIR` when set (the CLI's `--cache-dir` and pytest's `--interop-cache-dir` set it), else
`$XDG_CACHE_HOME/grpc-interop`, else `~/.cache/grpc-interop`. Entries below it are keyed by content
hash and renamed into place atomically, so several processes (xdist workers, parallel runs) share it.
The choice travels in the environment so the processes the harness starts (Python peers, compat's
builds, nox sessions) use the same folder.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "INTEROP_CACHE_DIR"
APP = "grpc-interop"


def root() -> Path:
    """The cache folder, absolute (Go commands run in other working directories). Not created here."""
    explicit = os.environ.get(ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    # the XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return (base / APP).resolve()


def use(folder: str | os.PathLike[str]) -> Path:
    """Make `folder` the cache for this process and the processes it starts; returns it resolved."""
    path = Path(folder).expanduser().resolve()
    os.environ[ENV] = str(path)
    return path
