"""The Docker engine, if one answers: below every other part of the harness (the Go toolchain builds
in it when there is no `go`, the peers run in it), so none of them imports another for it."""

from __future__ import annotations

from typing import Any


def docker_client() -> Any | None:
    """A connected docker SDK client, or None when no engine answers."""
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except Exception:  # noqa: BLE001  any failure here means "no engine"
        return None
