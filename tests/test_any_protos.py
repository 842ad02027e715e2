"""A proto folder the harness has never seen, used as a new user would: no go_package options,
nested imports, two packages in one folder, proto2 extensions, edition 2023, the same message name in
two packages, keyword field names, a file with no package, imports of the googleapis common protos.
And an edit: a new method is picked up with no code change. Each run is its own process (one process serves one proto set)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NEWUSER = REPO / "tests" / "data" / "newuser_protos"
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "auto")

pytestmark = pytest.mark.interop


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_new_users_folder_is_green_in_every_direction(own_cases) -> None:
    """Each quirk of the folder is in its types and files: the value cases of every method (every
    message type, each pattern) and the standard cases (reflection of these very files) cross in all
    seven directions. That proves the folder; the generic cases would add minutes, not proof."""
    selection = own_cases(NEWUSER)
    assert "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo/standard/" in selection
    assert "Pinger/Echo/Ping/" in selection and len(selection) >= 2 * 20, selection
    proc = cli("run", "--protos", str(NEWUSER), "--peer-runner", RUNNER, *selection)
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    for name in ("Pinger/Echo", "shop.v1.Orders/Haggle", "legacy.ext.Mailbox/Send", "edition.thing.Things/List",
                 "acme.books.v1.Library/GetBook", "acme.books.v1.Library/Shelve",
                 # types-only files, through the harness's echo services (tests/test_echo.py)
                 "common.interop_echo.MoneyEcho/Money", "common.interop_echo.MoneyEcho/ItemBidi",
                 "shop.status.interop_echo.StatusEcho/Receipt", "shop.status.interop_echo.StatusEcho/StateBidi"):
        assert name in proc.stdout
    assert " fail" not in proc.stdout.splitlines()[-1]


def test_an_added_method_is_picked_up_without_code_changes(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(NEWUSER, protos)
    before = cli("cases", "--protos", str(protos)).stdout
    assert "Pinger/Shout/" not in before
    nopkg = protos / "nopkg.proto"
    nopkg.write_text(nopkg.read_text().replace(
        "  rpc Echo(Ping) returns (Ping);",
        "  rpc Echo(Ping) returns (Ping);\n  rpc Shout(Ping) returns (stream Loud);") + "\nmessage Loud { repeated string words = 1; }\n")
    after = cli("cases", "--protos", str(protos)).stdout
    added = [line.split("\t")[0] for line in after.splitlines() if line.startswith("Pinger/Shout/")]
    assert any(n.endswith("/stream/many") for n in added) and any(n.endswith("/Ping/unicode") for n in added)
    proc = cli("run", "--protos", str(protos), "--peer-runner", RUNNER, "-k", "Pinger/Shout/",
               "--direction", "py-go", "--direction", "go-py")
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert f"{2 * len(added)} pass" in proc.stdout.splitlines()[-1]


def test_copies_of_googleapis_protos_in_the_folder_give_way_to_the_installed_ones(tmp_path: Path) -> None:
    """Users often keep copies of google/api/*.proto beside their own; one process cannot hold two
    definitions of google/rpc/status.proto (grpcio-status loads the real one), so copies are left out."""
    import google.api

    protos = tmp_path / "protos"
    shutil.copytree(NEWUSER, protos)
    installed = Path(next(iter(google.api.__path__))).parent.parent
    for rel in ("google/api/annotations.proto", "google/api/http.proto", "google/rpc/status.proto"):
        (protos / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(installed / rel, protos / rel)
    proc = cli("run", "--protos", str(protos), "--peer-runner", RUNNER, "-k", "acme.books.v1.Library/",
               "--direction", "py-go", "--direction", "go-py")
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    assert ("installed googleapis-common-protos originals are used instead: google/api/annotations.proto, "
            "google/api/http.proto, google/rpc/status.proto") in proc.stdout
    assert " pass" in proc.stdout.splitlines()[-1] and " fail" not in proc.stdout.splitlines()[-1]
