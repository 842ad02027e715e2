"""Which Go toolchain builds the Go peer and its protoc plugins.

`go` on PATH when there is one. Otherwise, when a Docker engine answers, the golang image of
go_peer/Dockerfile.builder: its `tools` stage installs the pinned protoc plugins, its `build` stage
compiles one command of a build copy, and the static binaries are copied out of /out (they run on a
Linux host of the engine's architecture). That image has to be pulled once from a registry. With
neither, one line says what to install.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.docker_engine import docker_client

GO = "go"
DOCKER = "docker"
DOCKERFILE = "Dockerfile.builder"
BUILDER_IMAGE = "golang:1.26"
INSTALL = ("the Go peer needs a Go toolchain (1.26 or newer, https://go.dev/dl/) on PATH, or a Docker engine "
           f"that can pull {BUILDER_IMAGE}: install one of them (the Python-only directions, py-py and pyaio-pyaio, need neither)")


class GoToolchainError(Exception):
    """No way to build Go code here, or the Docker build failed; the message says what to do."""


def choose(which: Callable[[str], str | None] = shutil.which,
           docker_answers: Callable[[], bool] | None = None) -> str:
    """GO when `go` is on PATH (Docker is not even asked), else DOCKER when an engine answers."""
    if which("go"):
        return GO
    if (docker_answers or _docker_answers)():
        return DOCKER
    raise GoToolchainError(INSTALL)


@functools.cache  # once per process: PATH and the engine do not change during a run
def current() -> str:
    return choose()


def _docker_answers() -> bool:
    return docker_client() is not None


@dataclass(frozen=True)
class DockerBuild:
    """One `docker build` of a Dockerfile.builder stage and the files it leaves in /out."""

    context: Path
    target: str
    buildargs: dict[str, str]
    outputs: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=lambda: {"grpc-interop-harness": "1"})

    def sdk_kwargs(self) -> dict[str, Any]:
        """The docker SDK's images.build arguments (`docker build --target … --build-arg …`)."""
        return {"path": str(self.context), "dockerfile": DOCKERFILE, "target": self.target,
                "buildargs": dict(self.buildargs), "labels": dict(self.labels), "rm": True, "pull": False,
                "tag": f"grpc-interop-builder:{self.target}"}


def tools_build(context: Path, plugins: dict[str, str]) -> DockerBuild:
    """The `tools` stage for the pinned plugins, `{"protoc-gen-go": "<module>@<version>", …}`."""
    args = {"protoc-gen-go": "PROTOC_GEN_GO", "protoc-gen-go-grpc": "PROTOC_GEN_GO_GRPC"}
    return DockerBuild(context, "tools", {args[name]: spec for name, spec in plugins.items()}, tuple(plugins))


def command_build(src: Path, command: str) -> DockerBuild:
    """The `build` stage compiling ./cmd/<command> of the build copy `src` (its own build context)."""
    return DockerBuild(src, "build", {"TARGET": f"./cmd/{command}", "OUT": command}, (command,))


def run(build: DockerBuild, dest: Path, client: Any = None) -> dict[str, Path]:
    """Run the build and copy its outputs from /out into `dest`; returns them by name."""
    import docker.errors

    client = client or docker_client()
    if client is None:
        raise GoToolchainError(INSTALL)
    try:
        image, _ = client.images.build(**build.sdk_kwargs())
    except (docker.errors.BuildError, docker.errors.APIError) as e:
        log = "".join(str(x.get("stream", x)) for x in getattr(e, "build_log", []))
        raise GoToolchainError(
            f"no Go toolchain on PATH, so the Go peer is built with {DOCKERFILE} (stage {build.target}, "
            f"image {BUILDER_IMAGE}), and that failed: {e}\n{log[-4000:]}\n(install Go 1.26+, or let Docker pull "
            f"{BUILDER_IMAGE})") from None
    container = client.containers.create(image.id, labels=build.labels)
    try:
        stream, _ = container.get_archive("/out")
        archive = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    finally:
        container.remove(force=True)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in build.outputs:
        member = archive.extractfile(f"out/{name}")
        if member is None:
            raise GoToolchainError(f"the {build.target} stage of {DOCKERFILE} left no /out/{name}")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=dest)
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(member, f)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest / name)  # atomic: other processes share the cache
        out[name] = dest / name
    return out


def go_peer_dir() -> Path:
    """go_peer/'s sources as installed: the repo's top-level go_peer/ is mapped into the package as
    `harness._go_peer` (pyproject.toml), for wheels, sdists and editable installs alike."""
    return Path(str(importlib.resources.files("harness._go_peer")))


def copy_dockerfile(into: Path) -> Path:
    """A build context holding only Dockerfile.builder (the `tools` stage copies nothing in)."""
    shutil.copy2(go_peer_dir() / DOCKERFILE, into / DOCKERFILE)
    return into
