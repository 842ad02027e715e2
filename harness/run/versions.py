"""What a run tested: the library versions on both sides, the harness's own, and the proto set's digest.

Every report carries them (JSON `run.versions`, JUnit properties, a Markdown and an HTML line, one
terminal line), so a result read later, or merged with other jobs' results, says what it was about.
The Go side's versions are what the built peer binary links (`interop-peer version` reads its build
info), not what go.mod asks for.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

NOT_USED = "not used"  # no direction of the run had Go on either side: the Go peer was not built

# Report order and the label each key has in the one-line form.
LABELS = {"harness": "harness", "python": "Python", "grpcio": "grpcio", "protobuf": "protobuf",
          "protobuf_backend": "backend", "grpc_go": "grpc-go", "protobuf_go": "protobuf-go", "go": "Go",
          "protos_digest": "protos"}


def python_side() -> dict[str, str]:
    import grpc
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    return {"harness": _installed("grpc-interop-harness"), "python": platform.python_version(),
            "grpcio": grpc.__version__, "protobuf": protobuf_version,
            # upb, python or cpp: PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION chooses it, and they differ on the wire
            "protobuf_backend": api_implementation.Type()}


def go_side(binary: Path | None) -> dict[str, str]:
    """grpc-go, protobuf-go and Go as the peer binary reports them; NOT_USED without a binary."""
    if binary is None:
        return {"grpc_go": NOT_USED, "protobuf_go": NOT_USED, "go": NOT_USED}
    try:
        out = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:  # a binary for another OS (built in Docker on a Mac)
        unknown = f"unknown ({type(e).__name__})"
        return {"grpc_go": unknown, "protobuf_go": unknown, "go": unknown}
    found = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {"grpc_go": found.get("grpc-go", "unknown"), "protobuf_go": found.get("protobuf-go", "unknown"),
            "go": found.get("go", "unknown")}


def collect(protos_digest: str, go_binary: Path | None) -> dict[str, str]:
    return {**python_side(), **go_side(go_binary), "protos_digest": protos_digest}


def line(versions: dict[str, Any]) -> str:
    """`versions: harness 0.1.0, Python 3.11.2, grpcio 1.85.1, protobuf 7.36.2 (upb), grpc-go v1.85.0, …`."""
    if not versions:
        return "versions: not recorded (results written by an older harness)"
    parts = []
    for key, label in LABELS.items():
        if key == "protobuf_backend" or key not in versions:
            continue
        value = str(versions[key])
        if key == "protobuf" and versions.get("protobuf_backend"):
            value += f" ({versions['protobuf_backend']})"
        if key == "protos_digest":
            value = value[:12]
        parts.append(f"{label} {value}")
    return "versions: " + ", ".join(parts)


def _installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
