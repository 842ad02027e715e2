"""Which toolchain builds the Go peer: `go` on PATH, else go_peer/Dockerfile.builder when Docker
answers, else one line saying what to install. The Docker path cannot be run here (no image can be
pulled): these tests check the decision and the exact builds it would run, with a fake engine."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from harness.protoset import codegen, gotoolchain
from harness.protoset.gotoolchain import DOCKER, GO, DockerBuild, GoToolchainError

REPO = Path(__file__).resolve().parent.parent


def _never() -> bool:
    raise AssertionError("Docker must not be asked when go is on PATH")


def test_go_on_path_wins_without_asking_docker() -> None:
    assert gotoolchain.choose(lambda name: "/usr/local/go/bin/go", _never) == GO


def test_without_go_docker_builds() -> None:
    assert gotoolchain.choose(lambda name: None, lambda: True) == DOCKER


def test_with_neither_one_line_says_what_to_install() -> None:
    with pytest.raises(GoToolchainError) as e:
        gotoolchain.choose(lambda name: None, lambda: False)
    msg = str(e.value)
    assert "\n" not in msg and "https://go.dev/dl/" in msg and "Docker engine" in msg


def test_the_builds_the_docker_path_would_run(tmp_path: Path) -> None:
    tools = gotoolchain.tools_build(tmp_path, {"protoc-gen-go": "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12",
                                               "protoc-gen-go-grpc": "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"})
    assert tools.sdk_kwargs() == {
        "path": str(tmp_path), "dockerfile": "Dockerfile.builder", "target": "tools",
        "buildargs": {"PROTOC_GEN_GO": "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12",
                      "PROTOC_GEN_GO_GRPC": "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"},
        "labels": {"grpc-interop-harness": "1"}, "rm": True, "pull": False, "tag": "grpc-interop-builder:tools"}
    assert tools.outputs == ("protoc-gen-go", "protoc-gen-go-grpc")
    peer = gotoolchain.command_build(tmp_path / "src", "interop-peer")
    assert peer.sdk_kwargs()["path"] == str(tmp_path / "src") and peer.target == "build"
    assert peer.buildargs == {"TARGET": "./cmd/interop-peer", "OUT": "interop-peer"} and peer.outputs == ("interop-peer",)


def test_dockerfile_builder_has_the_stages_and_args_the_builds_use() -> None:
    text = (codegen.go_peer_dir() / "Dockerfile.builder").read_text()
    stages = dict(re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)[i][::-1] for i in range(2))
    assert stages == {"tools": gotoolchain.BUILDER_IMAGE, "build": gotoolchain.BUILDER_IMAGE}
    args = set(re.findall(r"^ARG (\w+)", text, re.M))
    assert {"PROTOC_GEN_GO", "PROTOC_GEN_GO_GRPC", "TARGET", "OUT"} <= args
    assert 'go build -trimpath -o "/out/$OUT" "$TARGET"' in text and "CGO_ENABLED=0" in text


class FakeEngine:
    """Records the build and serves /out as a tar archive, as the docker SDK does."""

    def __init__(self, files: dict[str, bytes], fail: Exception | None = None) -> None:
        self.files, self.fail, self.built, self.removed = files, fail, [], False
        self.images, self.containers = self, self

    def build(self, **kwargs: Any) -> tuple[Any, list]:
        if self.fail:
            raise self.fail
        self.built.append(kwargs)
        return type("Image", (), {"id": "sha256:feed"})(), []

    def create(self, image: str, labels: dict[str, str]) -> Any:
        assert image == "sha256:feed"
        return self

    def get_archive(self, path: str) -> tuple[list[bytes], dict]:
        assert path == "/out"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in self.files.items():
                info = tarfile.TarInfo(f"out/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return [buf.getvalue()], {}

    def remove(self, force: bool) -> None:
        self.removed = True


def test_run_copies_the_outputs_out_executable(tmp_path: Path) -> None:
    engine = FakeEngine({"interop-peer": b"\x7fELF peer"})
    build = gotoolchain.command_build(tmp_path / "src", "interop-peer")
    out = gotoolchain.run(build, tmp_path / "dest", client=engine)
    assert engine.built == [build.sdk_kwargs()] and engine.removed
    assert out == {"interop-peer": tmp_path / "dest" / "interop-peer"}
    assert out["interop-peer"].read_bytes() == b"\x7fELF peer" and os.access(out["interop-peer"], os.X_OK)


def test_a_failed_docker_build_says_what_to_do(tmp_path: Path) -> None:
    engine = FakeEngine({}, fail=docker.errors.BuildError("pull access denied for golang", [{"stream": "Step 1/5"}]))
    with pytest.raises(GoToolchainError, match=r"(?s)Dockerfile\.builder \(stage build.*pull access denied.*install Go"):
        gotoolchain.run(gotoolchain.command_build(tmp_path, "interop-peer"), tmp_path / "dest", client=engine)


def test_codegen_asks_the_builder_image_for_the_plugins_and_the_glue_plugin(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INTEROP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gotoolchain, "current", lambda: DOCKER)
    builds: list[DockerBuild] = []
    dockerfiles: list[str] = []

    def fake_run(build: DockerBuild, dest: Path, client: Any = None) -> dict[str, Path]:
        builds.append(build)
        dockerfiles.append((build.context / "Dockerfile.builder").read_text())
        dest.mkdir(parents=True, exist_ok=True)
        for name in build.outputs:
            (dest / name).write_text(name)
        return {name: dest / name for name in build.outputs}

    monkeypatch.setattr(gotoolchain, "run", fake_run)
    tools = codegen.go_tools()
    assert [b.target for b in builds] == ["tools"]
    assert dockerfiles == [(codegen.go_peer_dir() / "Dockerfile.builder").read_text()]
    assert builds[0].buildargs == {"PROTOC_GEN_GO": "@".join(codegen.PROTOC_GEN_GO),
                                   "PROTOC_GEN_GO_GRPC": "@".join(codegen.PROTOC_GEN_GO_GRPC)}
    assert tools == {"protoc-gen-go": tmp_path / "cache/tools/bin" / f"protoc-gen-go-{codegen.PROTOC_GEN_GO[1]}",
                     "protoc-gen-go-grpc": tmp_path / "cache/tools/bin" / f"protoc-gen-go-grpc-{codegen.PROTOC_GEN_GO_GRPC[1]}"}
    assert all(p.read_text() == name for name, p in tools.items())
    assert codegen.go_tools() == tools and len(builds) == 1, "cached: no second build"
    src = tmp_path / "b" / "src"
    src.mkdir(parents=True)  # a build copy: go_peer's files, Dockerfile.builder among them
    (src / "Dockerfile.builder").write_text(dockerfiles[0])
    assert codegen._build_glue_plugin(src, ()) == src.parent / "protoc-gen-interop"
    assert builds[1].context == src and builds[1].buildargs == {"TARGET": "./cmd/protoc-gen-interop",
                                                                "OUT": "protoc-gen-interop"}


def test_cli_with_neither_go_nor_docker_prints_one_line_and_fails(tmp_path: Path) -> None:
    (tmp_path / "empty-path").mkdir()
    env = {**os.environ, "PATH": str(tmp_path / "empty-path"), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
           "INTEROP_CACHE_DIR": str(tmp_path / "cache")}
    for command in ("run", "peer"):
        # one small file: its Python code is generated (into the empty cache folder) before Go is looked for
        proc = subprocess.run([sys.executable, "-m", "harness.cli", command, "--protos",
                               str(REPO / "tests" / "data" / "coverage_protos")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode != 0
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"grpc-interop {command}: error: " in proc.stderr and "https://go.dev/dl/" in proc.stderr
        assert "run" != command or proc.stdout == ""
