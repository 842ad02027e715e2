"""Code generation: package-qualified Python imports, content-hash caching, Go import paths."""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path

import pytest

from harness.protoset import codegen
from harness.protoset import ProtoSetError, discover


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


NESTED = {
    "cgt/common.proto": 'syntax = "proto3"; package cgt.common; message Id { string v = 1; }',
    "cgt/deep/er/item.proto": 'syntax = "proto3"; package cgt.item; import "cgt/common.proto";'
                              ' message Item { cgt.common.Id id = 1; }'
                              ' service Items { rpc Get(cgt.common.Id) returns (Item); }',
}


def test_nested_imports_become_package_imports(tmp_path: Path) -> None:
    pkg = codegen.generate_python(discover(write(tmp_path / "p", NESTED)), package="cgt_gen_nested")
    grpc_src = (pkg / "cgt/deep/er/item_pb2_grpc.py").read_text()
    assert "from cgt_gen_nested.cgt.deep.er import item_pb2" in grpc_src
    assert "from cgt_gen_nested.cgt import common_pb2" in (pkg / "cgt/deep/er/item_pb2.py").read_text()
    assert "from google.protobuf import" in (pkg / "cgt/deep/er/item_pb2.py").read_text()  # untouched
    codegen.import_python(pkg)
    item = importlib.import_module("cgt_gen_nested.cgt.deep.er.item_pb2")
    assert item.Item(id={"v": "x"}).id.v == "x"
    assert hasattr(importlib.import_module("cgt_gen_nested.cgt.deep.er.item_pb2_grpc"), "ItemsStub")


GAPI = {
    "cgt/gapi.proto": 'syntax = "proto3"; package cgt.gapi; import "google/api/annotations.proto";'
                      ' import "google/type/date.proto"; message Day { google.type.Date d = 1; }'
                      ' service Days { rpc Get(Day) returns (Day) { option (google.api.http) = {get: "/d"}; } }',
    "google/api/http.proto": 'syntax = "proto3"; package google.api; message NotTheRealOne {}',  # a stale copy
}


def test_googleapis_imports_use_the_installed_modules(tmp_path: Path) -> None:
    ps = discover(write(tmp_path / "p", GAPI))
    assert ps.files == ("cgt/gapi.proto",) and ps.replaced == ("google/api/http.proto",)
    pkg = codegen.generate_python(ps, package="cgt_gen_gapi")
    src = (pkg / "cgt/gapi_pb2.py").read_text()
    # the generated module imports google.api/google.type from googleapis-common-protos, not from the set
    assert "from google.api import annotations_pb2" in src and "from google.type import date_pb2" in src
    assert not (pkg / "google").exists()
    codegen.import_python(pkg)
    day = importlib.import_module("cgt_gen_gapi.cgt.gapi_pb2").Day(d={"year": 2026, "month": 11, "day": 21})
    assert day.d.year == 2026


def test_go_compiles_the_imported_googleapis_files_except_google_rpc(tmp_path: Path) -> None:
    files = dict(GAPI, **{"cgt/err.proto": 'syntax = "proto3"; package cgt.err; import "google/rpc/status.proto";'
                                           ' message E { google.rpc.Status s = 1; }'})
    ps = discover(write(tmp_path / "p", files))
    go = codegen.go_files(ps)
    assert {"google/api/annotations.proto", "google/api/http.proto", "google/type/date.proto"} <= set(go)
    assert not [f for f in go if f.startswith(("google/rpc/", "google/protobuf/"))]  # genproto's / the runtime's
    mapping = codegen.go_packages(ps)
    assert mapping["google/api/annotations.proto"] == "gen/pb/google/api/google_api"
    assert "google/rpc/status.proto" not in mapping


def test_same_content_is_cached_and_edits_regenerate(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"cgt_cache.proto": 'syntax = "proto3"; package cgt.cache; message A {}'})
    first = codegen.generate_python(discover(root), package="cgt_gen_cache")
    stamp = (first / "cgt_cache_pb2.py").stat().st_mtime_ns
    assert codegen.generate_python(discover(root), package="cgt_gen_cache") == first
    assert (first / "cgt_cache_pb2.py").stat().st_mtime_ns == stamp
    (root / "cgt_cache.proto").write_text('syntax = "proto3"; package cgt.cache; message A { int32 b = 1; }')
    assert codegen.generate_python(discover(root), package="cgt_gen_cache") != first


def test_protoc_error_names_the_file(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"broken.proto": 'syntax = "proto3"; message { }'})
    with pytest.raises(codegen.CodegenError, match="broken.proto"):
        codegen.generate_python(discover(root), package="cgt_gen_broken")


def test_file_name_python_cannot_import_is_refused(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"my-api/x.proto": 'syntax = "proto3"; package x;'})
    with pytest.raises(codegen.CodegenError, match="my-api/x.proto.*'my-api'"):
        codegen.generate_python(discover(root), package="cgt_gen_bad")


def test_empty_or_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ProtoSetError, match="no .proto files"):
        discover(tmp_path)
    with pytest.raises(ProtoSetError, match="does not exist"):
        discover(tmp_path / "nope")


def test_go_import_paths_ignore_go_package_and_split_packages(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {
        "a.proto": 'syntax = "proto3"; package shop.v1; option go_package = "badpath";',
        "b.proto": 'syntax = "proto3"; package shop.v2;',
        "nopkg.proto": 'syntax = "proto3"; message Loose {}',
        "sub/dir/c.proto": '// package fake.comment;\nsyntax = "proto3"; package Sub.Pkg;',
    })
    assert codegen.go_packages(discover(root)) == {
        "a.proto": "gen/pb/shop_v1", "b.proto": "gen/pb/shop_v2", "nopkg.proto": "gen/pb/x_nopackage",
        "sub/dir/c.proto": "gen/pb/sub/dir/sub_pkg"}


def test_go_package_collision_is_an_error(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"a.proto": 'syntax = "proto3"; package a.b;',
                                  "b.proto": 'syntax = "proto3"; package a_b;'})
    with pytest.raises(codegen.CodegenError, match="collides"):
        codegen.go_packages(discover(root))


def test_go_digest_changes_with_protos(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"a.proto": 'syntax = "proto3"; package a;'})
    d1 = codegen.go_digest(discover(root))
    (root / "a.proto").write_text('syntax = "proto3"; package a; message M {}')
    assert codegen.go_digest(discover(root)) != d1


def test_an_edit_regenerates_only_that_file_and_its_importers(tmp_path: Path) -> None:
    run = f"// {uuid.uuid4()}\n"  # new content each run: nothing is cached from an earlier run
    files = {
        "inc/base.proto": 'syntax = "proto3"; package inc.base; message B { int32 x = 1; }',
        "inc/user.proto": 'syntax = "proto3"; package inc.user; import "inc/base.proto"; message U { inc.base.B b = 1; }',
        "inc/alone.proto": 'syntax = "proto3"; package inc.alone; message A {}',
    }
    root = write(tmp_path / "p", {k: run + v for k, v in files.items()})
    codegen.generate_python(discover(root), package="cgt_gen_incr")
    # 3 files, each with no service, so each with its echo file (harness/protoset/echo.py): 6
    assert codegen.LAST_REGENERATED["py"] == (6, 6)
    (root / "inc/alone.proto").write_text(run + files["inc/alone.proto"].replace("{}", "{ string s = 1; }"))
    codegen.generate_python(discover(root), package="cgt_gen_incr")
    assert codegen.LAST_REGENERATED["py"] == (2, 6)  # alone and its echo file, which imports it
    (root / "inc/base.proto").write_text(run + files["inc/base.proto"].replace("int32", "int64"))
    pkg = codegen.generate_python(discover(root), package="cgt_gen_incr")
    assert codegen.LAST_REGENERATED["py"] == (4, 6)  # base and user, which imports it, and their echo files
    assert {p.name for p in (pkg / "inc").iterdir()} >= {"base_pb2.py", "user_pb2_grpc.py", "alone_pb2.pyi", "__init__.py"}
