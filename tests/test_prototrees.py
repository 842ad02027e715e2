"""Proto trees as real repositories keep them: several import roots (-I), a subset of target files
(--files), buf.yaml v1/v2 and buf.work.yaml layouts, and files under google/protobuf/ that are not
well-known types. The trees are in tests/data/prototrees/. `grpc-interop cases` runs in its own
process each time: one process holds one proto set in its descriptor pool."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.protoset import ProtoSetError, discover

REPO = Path(__file__).resolve().parent.parent
TREES = REPO / "tests" / "data" / "prototrees"
APP, VENDOR = TREES / "two_roots" / "app", TREES / "two_roots" / "vendor"


def cases(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "cases", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [line.split("\t")[0] for line in proc.stdout.splitlines()]


def methods(names: list[str]) -> set[str]:
    return {"/".join(n.split("/")[:2]) for n in names}


def test_two_import_roots_make_one_set() -> None:
    ps = discover(APP, [VENDOR])
    assert ps.roots == (APP, VENDOR)
    assert ps.files == ("money/v1/money.proto", "money/v1/unused.proto", "shop/v1/cart.proto")
    assert ps.path("money/v1/money.proto") == VENDOR / "money/v1/money.proto"
    assert ps.targets == ps.files
    assert ps.spec == ("--protos", str(APP), "-I", str(VENDOR))
    # -I alone (no --protos): the roots are exactly the -I folders
    assert discover(None, [APP, VENDOR]).files == ps.files


def test_the_digest_covers_every_roots_files(tmp_path: Path) -> None:
    shutil.copytree(TREES / "two_roots", tmp_path / "t")
    app, vendor = tmp_path / "t" / "app", tmp_path / "t" / "vendor"
    before = discover(app, [vendor]).digest
    money = vendor / "money/v1/money.proto"
    money.write_text(money.read_text().replace("int64 units = 2;", "int64 units = 2;\n  int32 nanos = 3;"))
    assert discover(app, [vendor]).digest != before


def test_the_same_import_path_under_two_roots_is_an_error_naming_both() -> None:
    a, b = TREES / "same_path" / "a", TREES / "same_path" / "b"
    with pytest.raises(ProtoSetError) as e:
        discover(a, [b])
    assert f"{a / 'dup/x.proto'} and {b / 'dup/x.proto'}" in str(e.value)


def test_overlapping_roots_are_an_error() -> None:
    with pytest.raises(ProtoSetError, match="import roots overlap"):
        discover(TREES / "two_roots", [VENDOR])


def test_files_picks_the_targets_and_compiles_only_what_they_import() -> None:
    ps = discover(APP, [VENDOR], ["shop/**"])
    assert ps.targets == ("shop/v1/cart.proto",)
    assert ps.files == ("money/v1/money.proto", "shop/v1/cart.proto")  # unused.proto: imported by no target
    with pytest.raises(ProtoSetError, match="'nope/\\*' matches no import path"):
        discover(APP, [VENDOR], ["nope/*"])


def test_cli_cases_with_two_roots_and_files() -> None:
    every = cases("--protos", str(APP), "-I", str(VENDOR))
    assert methods(every) == {"ptree.shop.v1.Carts/Get", "ptree.money.v1.Rates/Convert"}
    only = cases("--protos", str(APP), "--proto-path", str(VENDOR), "--files", "shop/v1/*.proto")
    assert methods(only) == {"ptree.shop.v1.Carts/Get"}
    assert only == [n for n in every if n.startswith("ptree.shop.v1.Carts/")]


@pytest.mark.parametrize("kind", ["buf_v1", "buf_v2", "buf_work"])
def test_buf_layouts_give_the_roots_and_excludes(kind: str) -> None:
    folder = TREES / kind
    ps = discover(folder)
    assert ps.roots == (folder / "proto", folder / "vendor")
    # proto/internal/broken.proto is excluded (protoc would reject it)
    assert ps.files == ("money/v1/money.proto", "shop/v1/cart.proto")
    assert ps.buf_config == folder / ("buf.work.yaml" if kind == "buf_work" else "buf.yaml")


def test_buf_layout_through_the_cli() -> None:
    names = cases("--protos", str(TREES / "buf_v2"), "--files", "shop/**")
    assert methods(names) == {"ptree.shop.v1.Carts/Get"}


def test_an_explicit_root_is_added_to_bufs_and_never_excluded(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    (extra / "x").mkdir(parents=True)
    (extra / "x" / "more.proto").write_text('syntax = "proto3"; package ptree.extra; message M {}')
    ps = discover(TREES / "buf_v1", [extra])
    assert ps.roots[-1] == extra and "x/more.proto" in ps.files
    # a buf exclude names a folder; passing that folder itself with -I makes it a root again
    with pytest.raises(ProtoSetError, match="import roots overlap"):
        discover(TREES / "buf_v1", [TREES / "buf_v1" / "proto" / "internal"])


def test_bad_buf_configuration_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "buf.yaml").write_text("version: v2\nmodules:\n  - path: missing\n")
    with pytest.raises(ProtoSetError, match=r"buf.yaml: `modules\[\].path` names 'missing'"):
        discover(tmp_path)


def test_a_non_wkt_file_under_google_protobuf_gets_the_same_cases_as_elsewhere() -> None:
    """Only the exact well-known files are special; a file at google/protobuf/<other>.proto got
    empty messages for every value pattern (its patterns were all dropped as changing nothing)."""
    upstream = cases("--protos", str(TREES / "nonwkt" / "upstream"))
    elsewhere = cases("--protos", str(TREES / "nonwkt" / "elsewhere"))
    assert upstream == elsewhere
    for pattern in ("typical", "max", "unicode", "repeated_many", "map_edges", "oneof_nested", "deep_recursion"):
        assert f"ptree.nonwkt.TestMessages/Echo/AllKinds/{pattern}" in upstream
