"""Proto trees on the wire: a folder vendoring grpc health v1 and reflection v1/v1alpha is green in all
seven directions with those services tested through the generic engine (while the peers' readiness
still uses the real health service), and a two-root tree with --files runs across languages.
Each run is its own process (one process serves one proto set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TREES = REPO / "tests" / "data" / "prototrees"
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "auto")

pytestmark = pytest.mark.interop


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=900,
                          cwd=REPO)


def test_vendored_health_and_reflection_are_green_in_every_direction(own_cases) -> None:
    """The vendored services' own cases, in all seven directions: every value case of every method
    (answered by the generated glue and the generic engine) and the standard cases (answered by the
    real servicers behind it). The generic protocol, stream, TLS and connection cases on these
    services prove nothing about vendoring: the full run of protos/ has them (test_interop.py)."""
    selection = own_cases(TREES / "vendored_runtime")
    assert "grpc.health.v1.Health/Check/HealthCheckRequest/" in selection and "ptree.app.Prober/Ask/Probe/" in selection
    proc = cli("run", "--protos", str(TREES / "vendored_runtime"), "--peer-runner", RUNNER, *selection)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    for method in ("grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch", "grpc.health.v1.Health/List",
                   "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                   "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "ptree.app.Prober/Ask"):
        row = next((r for r in rows if f" {method} " in r), None)
        assert row is not None, f"{method} has no row:\n{proc.stdout[-5000:]}"
        assert row.count("✓") == 7, row  # every direction ran its cases and passed
    assert " fail" not in proc.stdout.splitlines()[-1] and " error" not in proc.stdout.splitlines()[-1]


def test_two_roots_and_files_across_languages(own_cases) -> None:
    """Both Go roles, the targets' own-type cases: what two roots and --files change is which files
    compile and which services get cases, not the generic cases."""
    tree = ["-I", str(TREES / "two_roots" / "vendor"), "--files", "shop/**"]
    proc = cli("run", "--protos", str(TREES / "two_roots" / "app"), *tree, *own_cases(TREES / "two_roots" / "app", *tree),
               "--peer-runner", RUNNER, "--direction", "py-go", "--direction", "go-py")
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "ptree.shop.v1.Carts/Get" in proc.stdout and "ptree.money.v1.Rates" not in proc.stdout
    assert " pass" in proc.stdout.splitlines()[-1] and " fail" not in proc.stdout.splitlines()[-1]


def test_older_vendored_health_and_reflection_v1_run_green() -> None:
    """grpc-proto's health.proto from before List, vendored beside reflection v1: the run went no
    further than "one process cannot hold both". Now the registered health file is served in its
    place (the notice says how they differ) and the set's own service and reflection v1 run."""
    proc = cli("run", "--protos", str(TREES / "vendored_grpc_proto"), "--peer-runner", RUNNER,
               "--direction", "py-go", "-k", "ptree.app.Prober/Ask/Probe/typical",
               "-k", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo/ServerReflectionRequest/typical",
               "-k", "grpc.health.v1.Health/Check/standard/service/ptree.app.Prober")
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "rpc Health.List only in the registered file" in proc.stdout + proc.stderr
    assert "3 pass" in proc.stdout.splitlines()[-1], proc.stdout[-3000:]


def test_conformance_protos_run_green_with_protolegacy() -> None:
    """protobuf's conformance protos (MessageSet in a nested field, required fields that never end,
    edition 2023): what cannot be built is named, the rest passes (one direction, a few patterns)."""
    proc = cli("run", "--protos", str(TREES / "conformance"), "--go-build-tags", "protolegacy",
               "--peer-runner", RUNNER, "--direction", "go-py",
               "-k", "TestMessagesProto2Echo/TestAllTypesProto2/TestAllTypesProto2/typical",
               "-k", "TestMessagesProto2Echo/TestAllTypesProto2/TestAllTypesProto2/empty_submessages_1",
               "-k", "TestMessagesProto3Echo/TestAllTypesProto3/TestAllTypesProto3/"
               "oneof_repeated_nested_message.corecursive.optional_value.bool_value_default",
               "-k", "TestMessagesEdition2023Echo/TestAllTypesEdition2023/TestAllTypesEdition2023/typical")
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert "TestAllRequiredTypesProto2 cannot be built" in proc.stdout + proc.stderr
    assert "4 pass" in proc.stdout.splitlines()[-1], proc.stdout[-3000:]
