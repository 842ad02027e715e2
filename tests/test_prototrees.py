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

from harness.cases.generate import LIBRARY_PATTERNS
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


STANDARD = ("grpc.health.v1.", "grpc.reflection.")  # the standard services' cases (harness/cases/standard.py)


def generated(names: list[str]) -> list[str]:
    """The cases of the set's own services: without the standard services' cases and the misbehaving-peer
    `/wire/` scripts (harness/cases/wire.py), which every set has, and the channel cases
    (harness/cases/channels.py), made on whichever method comes first."""
    return [n for n in names if not n.startswith(STANDARD) and "/tls/" not in n and "/mtls/" not in n
            and not _wire(n)]


def _wire(name: str) -> bool:
    return "/wire/" in name and "/fuzz/" not in name


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


def _per_service(names: list[str]) -> list[str]:
    """The case names but the library-level ones (once per streaming mode of the set)."""
    return [n for n in names if "/protocol/" not in n or n.rsplit("/", 1)[1] not in LIBRARY_PATTERNS]


def test_cli_cases_with_two_roots_and_files() -> None:
    listed = cases("--protos", str(APP), "-I", str(VENDOR))
    every = generated(listed)  # the standard services' cases: checked below
    # money/v1/unused.proto has no service: the harness's echo service carries its messages
    assert methods(every) == {"ptree.shop.v1.Carts/Get", "ptree.money.v1.Rates/Convert",
                              "ptree.money.v1.unused.interop_echo.UnusedEcho/Unused",
                              "ptree.money.v1.unused.interop_echo.UnusedEcho/UnusedBidi"}
    listed_only = cases("--protos", str(APP), "--proto-path", str(VENDOR), "--files", "shop/v1/*.proto")
    only = generated(listed_only)
    assert methods(only) == {"ptree.shop.v1.Carts/Get"}
    # the library-level cases go to the first method of each mode of what is tested (issue 17)
    assert _per_service(only) == [n for n in _per_service(every) if n.startswith("ptree.shop.v1.Carts/")]
    assert {n for n in only if n not in _per_service(only)} == {
        f"ptree.shop.v1.Carts/Get/protocol/{p}" for p in LIBRARY_PATTERNS}
    # reflection asks about the targets' files only; health about every service the servers serve
    assert any(n.endswith("/standard/file_by_filename/money/v1/money.proto") for n in listed)
    assert not any("money/v1/" in n for n in listed_only)
    assert any(n.endswith("/standard/file_by_filename/shop/v1/cart.proto") for n in listed_only)
    assert "grpc.health.v1.Health/Check/standard/service/ptree.shop.v1.Carts" in listed_only


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
    assert methods(generated(names)) == {"ptree.shop.v1.Carts/Get"}


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
    assert generated(upstream) == generated(elsewhere)  # reflection's cases name the files, which differ
    for pattern in ("typical", "max", "unicode", "repeated_many", "map_edges", "oneof_nested", "deep_recursion"):
        assert f"ptree.nonwkt.TestMessages/Echo/AllKinds/{pattern}" in upstream


# ---------------------------------------------------------------- files the runtimes register already

VENDORED = TREES / "vendored_runtime"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO)


def test_vendored_health_and_reflection_use_the_registered_files() -> None:
    from harness.protoset import codegen

    ps = discover(VENDORED)
    reg = codegen.registered_files(ps)
    health = reg["grpc/health/v1/health.proto"]
    assert (health.python_module, health.python_file) == ("grpc_health.v1.health_pb2", "grpc_health/v1/health.proto")
    assert health.go_package == "google.golang.org/grpc/health/grpc_health_v1"
    assert reg["grpc/reflection/v1alpha/reflection.proto"].python_module == "grpc_reflection.v1alpha.reflection_pb2"
    # grpcio-reflection registers no v1: Python compiles that copy, Go links grpc-go's
    v1 = reg["grpc/reflection/v1/reflection.proto"]
    assert v1.python_module is None and v1.go_package == "google.golang.org/grpc/reflection/grpc_reflection_v1"
    assert codegen.go_files(ps) == ("app/status.proto",)
    assert codegen.glue_packages(ps) == {"grpc/health/v1/health.proto": "gen/runtime/grpc/health/v1",
                                         "grpc/reflection/v1/reflection.proto": "gen/runtime/grpc/reflection/v1",
                                         "grpc/reflection/v1alpha/reflection.proto":
                                             "gen/runtime/grpc/reflection/v1alpha"}


def test_vendored_runtime_services_get_cases() -> None:
    assert methods([n for n in cases("--protos", str(VENDORED)) if not _wire(n)]) == {
        "grpc.health.v1.Health/Check", "grpc.health.v1.Health/List", "grpc.health.v1.Health/Watch",
        "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "ptree.app.Prober/Ask"}


def test_a_copy_that_differs_from_pythons_stands_aside_and_the_set_goes_on() -> None:
    """One process cannot hold both files: the registered one is served and tested in the copy's
    place, and the user is told how they differ; every other file still gets its cases."""
    proc = cli("cases", "--protos", str(TREES / "vendored_differs"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    copy = TREES / "vendored_differs" / "grpc/health/v1/health.proto"
    for part in ("grpc/health/v1/health.proto: your copy", str(copy), "grpc_health/v1/health.proto",
                 "grpc_health.v1.health_pb2", "grpcio-health-checking", "served and tested in its place",
                 "what only your copy has is not tested: field HealthCheckRequest.zone only in your copy"):
        assert part in proc.stderr, proc.stderr
    listed = methods([line.split("\t")[0] for line in proc.stdout.splitlines()])
    assert {"ptree.app.Prober/Ask", "grpc.health.v1.Health/Check"} <= listed


def test_coverage_of_a_set_with_a_stood_aside_copy_says_the_copy_is_not_tested() -> None:
    """The registered file stands in the universe for the copy: 100% said nothing of the copy's own field."""
    proc = cli("coverage", "--protos", str(TREES / "vendored_differs"), "--direction", "py-go")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("not tested: grpc/health/v1/health.proto: your copy" in proc.stdout
            and "field HealthCheckRequest.zone only in your copy" in proc.stdout), proc.stdout[-3000:]


def test_grpc_protos_older_health_stands_aside_and_every_other_file_is_tested() -> None:
    """grpc-proto's health.proto from before List, as many repositories vendor it, beside reflection v1
    and the repository's own service: the run goes on, naming what the registered file has more."""
    proc = cli("cases", "--protos", str(TREES / "vendored_grpc_proto"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rpc Health.List only in the registered file" in proc.stderr, proc.stderr
    listed = methods([line.split("\t")[0] for line in proc.stdout.splitlines()])
    assert {"ptree.app.Prober/Ask", "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.health.v1.Health/List"} <= listed


def test_a_copy_that_differs_from_what_go_links_is_a_one_line_error(tmp_path: Path) -> None:
    """Python has no reflection v1 to compare with: grpc-go's linked file is the reference."""
    shutil.copytree(VENDORED, tmp_path / "p")
    v1 = tmp_path / "p" / "grpc/reflection/v1/reflection.proto"
    v1.write_text(v1.read_text().replace("  string host = 1;", "  string host = 1;\n  string hint = 9;"))
    proc = cli("peer", "--no-image", "--protos", str(tmp_path / "p"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for part in ("grpc/reflection/v1/reflection.proto: your copy", str(v1),
                 "Go package google.golang.org/grpc/reflection/grpc_reflection_v1", "grpc-go v"):
        assert part in lines[0]


def test_a_vendored_well_known_type_is_not_generated_again(tmp_path: Path) -> None:
    """A copy of google/protobuf/timestamp.proto identical to protobuf's: Python and Go use theirs."""
    from grpc_tools import protoc

    from harness.protoset import codegen

    root = tmp_path / "p"
    (root / "google/protobuf").mkdir(parents=True)
    shutil.copy2(Path(protoc.__file__).parent / "_proto/google/protobuf/timestamp.proto",
                 root / "google/protobuf/timestamp.proto")
    (root / "ptree/wkt").mkdir(parents=True)
    (root / "ptree/wkt/when.proto").write_text(
        'syntax = "proto3"; package ptree.wkt; import "google/protobuf/timestamp.proto";'
        ' message When { google.protobuf.Timestamp at = 1; } service Clock { rpc Now(When) returns (When); }')
    ps = discover(root)
    reg = codegen.registered_files(ps)["google/protobuf/timestamp.proto"]
    assert reg.python_module == "google.protobuf.timestamp_pb2"
    assert reg.go_package == "google.golang.org/protobuf/types/known/timestamppb"
    assert codegen.go_files(ps) == ("ptree/wkt/when.proto",) and codegen.glue_packages(ps) == {}
    pkg = codegen.generate_python(ps, package="ptree_gen_wkt")
    assert not (pkg / "google").exists()
    assert "from google.protobuf import timestamp_pb2" in (pkg / "ptree/wkt/when_pb2.py").read_text()
    codegen.import_python(pkg)


def _vendored_timestamp(tmp_path: Path, field: str) -> Path:
    """A set vendoring google/protobuf/timestamp.proto with an extra message (Zone), and a file whose
    message When holds `field` (a declaration such as "google.protobuf.Timestamp at")."""
    root = tmp_path / "p"
    (root / "google/protobuf").mkdir(parents=True)
    (root / "google/protobuf/timestamp.proto").write_text(
        'syntax = "proto3"; package google.protobuf; message Timestamp { int64 seconds = 1; int32 nanos = 2; }'
        ' message Zone { string name = 1; }')
    (root / "ptree/wkt").mkdir(parents=True)
    (root / "ptree/wkt/when.proto").write_text(
        'syntax = "proto3"; package ptree.wkt; import "google/protobuf/timestamp.proto";'
        f' message When {{ {field} = 1; }} service Clock {{ rpc Now(When) returns (When); }}')
    return root


def test_a_vendored_well_known_type_with_other_content_stands_aside_and_says_so(tmp_path: Path) -> None:
    """protoc reads its bundled well-known types before the user's folder, so the set's descriptors
    held protobuf's timestamp.proto, not the copy: a copy with other content was replaced silently."""
    root = _vendored_timestamp(tmp_path, "google.protobuf.Timestamp at")
    ps = discover(root)
    assert ps.files == ("ptree/wkt/when.proto",)
    assert ps.notice() and "google/protobuf/timestamp.proto: your copy" in ps.notice()
    assert "message Zone only in your copy" in ps.notice() and "served and tested in its place" in ps.notice()


def test_a_file_needing_what_only_a_vendored_well_known_copy_declares_is_told_why(tmp_path: Path) -> None:
    from harness.protoset.descriptors import CodegenError

    root = _vendored_timestamp(tmp_path, "google.protobuf.Zone zone")
    with pytest.raises(CodegenError, match=r"(?s)Zone. is not defined.*never your copies of them: "
                                           r"google/protobuf/timestamp.proto"):
        discover(root)


def test_the_python_peer_serves_a_vendored_health_through_the_engine_and_stays_ready() -> None:
    """The engine serves grpc.health.v1.Health (cases), the real servicer is its fallback (readiness)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from harness.protoset import codegen
    from python_impl.contract import CASE_HEADER, CHANNEL_OPTIONS
    from python_impl.server import serve

    gen = codegen.import_python(codegen.generate_python(discover(VENDORED), package="ptree_gen_vendored"))
    assert gen.RUNTIME_MODULES == ("grpc_health.v1.health_pb2", "grpc_reflection.v1alpha.reflection_pb2")
    from harness.cases.model import Call, Case

    case = Case(name="grpc.health.v1.Health/Check/mine", source="test", calls=[Call(
        method="grpc.health.v1.Health/Check", streaming="unary", request_type="grpc.health.v1.HealthCheckRequest",
        response_type="grpc.health.v1.HealthCheckResponse", requests=[{"service": "x"}],
        expect={"status": "OK", "responses": [{"status": "NOT_SERVING"}]}, checked_by_server=True)])
    server, port = serve(gen, "127.0.0.1:0", catalogue=[case])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            # no case: the readiness probe reaches the real health servicer
            assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            # a case: the generic engine answers what the case says (the real servicer would say SERVING)
            got = stub.Check(health_pb2.HealthCheckRequest(service="x"), timeout=5,
                             metadata=[(CASE_HEADER, case.name)])
            assert got.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        server.stop(None)


def test_pytest_plugin_takes_proto_paths_and_files(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_interop(interop_run):\n    interop_run.assert_pass()\n")
    result = pytester.runpytest_subprocess(
        "--interop-protos", str(APP), "--interop-proto-path", str(VENDOR), "--interop-files", "shop/**",
        "--interop-direction", "py-py", "-p", "no:cacheprovider", "--collect-only", "-q")
    ids = [line for line in result.outlines if "::test_interop[" in line
           and not any(f"py-py:{s}" in line for s in STANDARD)  # the standard services' cases: every set has them
           and not _wire(line)]
    assert ids and all("py-py:ptree.shop.v1.Carts/Get/" in i for i in ids), result.outlines[-20:]
    assert "test_it.py::test_interop[py-py:ptree.shop.v1.Carts/Get/Cart/typical]" in ids


def test_importing_a_vendored_file_python_registers_under_another_name_is_a_clear_error(tmp_path: Path) -> None:
    shutil.copytree(VENDORED, tmp_path / "p")
    (tmp_path / "p" / "app/uses.proto").write_text(
        'syntax = "proto3"; package ptree.uses; import "grpc/health/v1/health.proto";'
        ' service U { rpc Get(grpc.health.v1.HealthCheckRequest) returns (grpc.health.v1.HealthCheckResponse); }')
    proc = cli("cases", "--protos", str(tmp_path / "p"))
    assert proc.returncode == 2
    assert ("app/uses.proto imports grpc/health/v1/health.proto, which Python's runtime registers under another "
            "file name, grpc_health/v1/health.proto") in proc.stderr


# ---------------------------------------------------------------- real public trees

CONFORMANCE = TREES / "conformance"  # protobuf's conformance protos at their upstream import paths
VALUE_KINDS = ("fields", "enum values", "oneof members", "map key types", "presence states")


def test_conformance_protos_name_what_cannot_be_built_and_generate_the_rest() -> None:
    """test_messages_proto2.proto's TestAllRequiredTypesProto2 holds `required ... recursive_message`
    of its own type: no finite message exists. Case generation crashed with RecursionError."""
    proc = cli("cases", "--protos", str(CONFORMANCE))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert ("TestMessagesProto2Echo/TestAllRequiredTypesProto2 (interop_echo/google/protobuf/test_messages_proto2_"
            "echo.proto): no case: its request type protobuf_test_messages.proto2.TestAllRequiredTypesProto2 cannot "
            "be built, its required fields never end: protobuf_test_messages.proto2.TestAllRequiredTypesProto2."
            "recursive_message (required) -> protobuf_test_messages.proto2.TestAllRequiredTypesProto2") in proc.stderr
    listed = methods([line.split("\t")[0] for line in proc.stdout.splitlines()])
    for method in ("protobuf_test_messages.proto2.interop_echo.TestMessagesProto2Echo/TestAllTypesProto2",
                   "protobuf_test_messages.proto3.interop_echo.TestMessagesProto3Echo/TestAllTypesProto3",
                   "protobuf_test_messages.editions.interop_echo.TestMessagesEdition2023Echo/TestAllTypesEdition2023"):
        assert method in listed


@pytest.mark.parametrize("tree", ["conformance", "otlp", "vendored_grpc_proto", "googleapis_lro"])
def test_real_trees_reach_99_percent_in_every_value_dimension(tree: str) -> None:
    """Large enums (OTLP's 25 severities), messages no method carries, MessageSet extensions inside
    a nested field, google.protobuf.Value's kinds: what no case can carry is named and left out."""
    thresholds = [a for kind in VALUE_KINDS for a in ("--min-coverage", f"{kind}=99")]
    proc = cli("coverage", "--protos", str(TREES / tree), *thresholds)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    if tree == "conformance":  # left out by name, with why
        assert "optional_null_value (307)" in proc.stdout and "has only the number 0" in proc.stdout
        assert "TestAllRequiredTypesProto2: every one of its" in proc.stdout
