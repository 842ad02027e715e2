"""The standard services' cases (health, reflection): their generation, the reflecting client's
check, and the health flip the Python servers implement. The cross-language runs are interop cases
of the catalogue (tests/test_interop.py runs them in every direction)."""

from __future__ import annotations

import asyncio
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import api_pb2, descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from harness.cases import standard as stdcases
from harness.protoset import discover
from python_impl import standard
from python_impl.contract import CHANNEL_OPTIONS, Outcome

REPO = Path(__file__).resolve().parent.parent
API = api_pb2.DESCRIPTOR.name  # google/protobuf/api.proto: two dependencies, one of them with one more
API_CLOSURE = ["google/protobuf/api.proto", "google/protobuf/source_context.proto", "google/protobuf/type.proto",
               "google/protobuf/any.proto"]


# ---------------------------------------------------------------- generation

def test_cases_for_the_seed_and_shapes_protos(seed_gen) -> None:
    cases = {c.name: c for c in stdcases.generate(discover(REPO / "protos"))}
    assert all(("health" in n or "reflection" in n) and n.isascii() and n.split("/")[2] == "standard" for n in cases)
    served = cases["grpc.reflection.v1.ServerReflection/ServerReflectionInfo/standard/list_services"].calls[0].expect
    assert served["reflection"] == [{"services": sorted(served["reflection"][0]["services"])}]
    names = served["reflection"][0]["services"]
    for svc in ("routeguide.RouteGuide", "shapes.v1.Shapes", standard.HEALTH, standard.REFLECTION_V1,
                standard.REFLECTION_V1ALPHA, "shapes.more.interop_echo.LegacyMoreEcho"):
        assert svc in names
        assert f"grpc.health.v1.Health/Check/standard/service/{svc}" in cases
    listed = cases["grpc.health.v1.Health/List/standard/all"].calls[0].expect["responses"][0]["statuses"]
    assert set(listed) == {"", *names}
    flip = cases["grpc.health.v1.Health/Watch/standard/status_changes"].calls[0]
    assert flip.requests == [{"service": standard.FLIP_SERVICE}] and flip.cancel_after_responses == 3
    assert [r["status"] for r in flip.expect["responses"]] == ["SERVICE_UNKNOWN", "SERVING", "NOT_SERVING"]
    assert cases["grpc.health.v1.Health/Check/standard/unknown_service"].calls[0].expect == {"status": "NOT_FOUND",
                                                                                   "responses": []}
    for version in ("v1", "v1alpha"):
        prefix = f"grpc.reflection.{version}.ServerReflection/ServerReflectionInfo/standard/"
        ext = cases[prefix + "all_extension_numbers/shapes.legacy.Legacy"].calls[0]
        numbers = ext.expect["reflection"][0]["extension_numbers"]
        assert numbers == sorted(numbers) and {100, 101, 102} <= set(numbers)
        for n in numbers:
            assert prefix + f"file_containing_extension/shapes.legacy.Legacy/{n}" in cases
        by_name = cases[prefix + "file_by_filename/route_guide.proto"].calls[0]
        assert by_name.request_type == f"grpc.reflection.{version}.ServerReflectionRequest"
        assert by_name.expect["reflection"][0]["files"][0] == "route_guide.proto"
        assert prefix + "file_containing_symbol/routeguide.RouteGuide" in cases
        assert cases[prefix + "unknown_symbol"].calls[0].expect["reflection"] == [{"error_code": 5}]
        health_file = cases[prefix + "file_containing_symbol/grpc.health.v1.Health"].calls[0].expect["reflection"]
        assert health_file == [{"files": ["grpc/health/v1/health.proto"]}]  # grpc-proto's import path
        # the runtimes' bundled files: rebuilt everywhere, compared in their own case
        wkt = [n for n in cases if n.startswith(prefix + "file_by_filename/google/protobuf/")]
        assert wkt and all("runtime_files" not in cases[n].calls[0].expect["reflection"][0] for n in wkt)
        two = cases[prefix + "same_stream/file_then_symbol"].calls[0]
        assert len(two.requests) == 2 and len(two.expect["reflection"]) == 2
    # the catalogue never holds them: the servers' real implementations answer
    assert not any(c.calls[0].checked_by_server for c in cases.values())


def test_closure_is_the_file_first_then_each_dependency_once() -> None:
    assert stdcases.closure(api_pb2.DESCRIPTOR) == API_CLOSURE


def test_the_client_knows_the_health_file_by_its_import_path_too() -> None:
    """grpcio-health-checking registers grpc_health/v1/health.proto; reflection clients (and grpc-go)
    say grpc/health/v1/health.proto: the Python client compares what it receives under that name."""
    own = standard._own("grpc/health/v1/health.proto")
    assert own is not None and own.services_by_name["Health"].full_name == "grpc.health.v1.Health"
    assert standard._proto(own, "grpc/health/v1/health.proto").name == "grpc/health/v1/health.proto"
    assert standard._own("grpc_health/v1/health.proto").name == "grpc_health/v1/health.proto"
    assert standard._own("no/such.proto") is None


# ---------------------------------------------------------------- the reflecting client's check

def _fdp(name: str) -> descriptor_pb2.FileDescriptorProto:
    out = descriptor_pb2.FileDescriptorProto()
    descriptor_pool.Default().FindFileByName(name).CopyToProto(out)
    return out


def _call(steps: list[tuple[dict, dict]], version: str = "v1alpha") -> SimpleNamespace:
    return SimpleNamespace(request_type=f"grpc.reflection.{version}.ServerReflectionRequest",
                           requests=[r for r, _ in steps], expect={"status": "OK", "reflection": [e for _, e in steps]})


def _files_response(request: dict,
                    files: list[descriptor_pb2.FileDescriptorProto]) -> reflection_pb2.ServerReflectionResponse:
    return reflection_pb2.ServerReflectionResponse(
        original_request=reflection_pb2.ServerReflectionRequest(**request),
        file_descriptor_response=reflection_pb2.FileDescriptorResponse(
            file_descriptor_proto=[f.SerializeToString() for f in files]))


def _check(call: SimpleNamespace, responses: list) -> list[tuple[str, str, str]]:
    return [(d.path, d.expected, d.got) for d in standard.check_reflection(call, Outcome(responses=responses), 0)]


def test_the_files_received_are_rebuilt_and_compared_with_our_own() -> None:
    req = {"file_by_filename": API}
    call = _call([({"fileByFilename": API}, {"files": API_CLOSURE})])
    assert _check(call, [_files_response(req, [_fdp(n) for n in API_CLOSURE])]) == []
    # a file that differs from the client's own compilation is named down to the field
    tampered = _fdp("google/protobuf/type.proto")
    tampered.message_type[0].field[0].number = 99
    got = _check(call, [_files_response(req, [_fdp(API), _fdp(API_CLOSURE[1]), tampered, _fdp(API_CLOSURE[3])])])
    assert got == [('reflection[0].files["google/protobuf/type.proto"].message_type[0].field[0].number', "1", "99")]
    # source info, and a default json_name written out or left out, are no difference (protoc writes
    # every json_name for Go, none for Python): both stand for the same file
    plain = [_fdp(n) for n in API_CLOSURE]
    for f in plain:
        f.source_code_info.location.add(path=[4, 0])
        for m in f.message_type:
            for fd in m.field:
                fd.ClearField("json_name")
    assert _check(call, [_files_response(req, plain)]) == []


def test_a_custom_json_name_against_the_default_is_a_difference() -> None:
    """A server whose file gives a field another JSON name than the client's compiled one changes
    every JSON transcoding of it: the explicit json_name is compared, not normalised away."""
    req = {"file_by_filename": API}
    call = _call([({"fileByFilename": API}, {"files": API_CLOSURE})])
    renamed = _fdp(API)
    renamed.message_type[0].field[0].json_name = "apiName"
    got = _check(call, [_files_response(req, [renamed, *(_fdp(n) for n in API_CLOSURE[1:])])])
    assert got == [(f'reflection[0].files["{API}"].message_type[0].field[0].json_name', '"name"', '"apiName"')]


DESCRIPTOR_FILE = "google/protobuf/descriptor.proto"
DESCRIPTOR_CASE = ("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo/standard/file_by_filename/"
                   + DESCRIPTOR_FILE)


def _go_revision() -> descriptor_pb2.FileDescriptorProto:
    """Python's descriptor.proto with the differences the built-in entries name undone: protobuf-go
    1.36.12's revision as the Python client sees it (measured in py→go)."""
    f = _fdp(DESCRIPTOR_FILE)
    f.message_type[10].field[11].ClearField("options")  # FileOptions.cc_enable_arenas
    features = f.message_type[19]  # FeatureSet
    assert features.name == "FeatureSet" and features.field[8].name == "enforce_proto_limits"
    del features.field[8]
    del features.nested_type[1]  # ProtoLimitsFeature
    features.field[6].options.edition_defaults[2].edition = descriptor_pb2.EDITION_UNSTABLE
    del features.field[7].options.edition_defaults[2]
    return f


def _descriptor_verdict(server_file: descriptor_pb2.FileDescriptorProto, slug: str) -> tuple[str, list[str]]:
    """The verdict of a descriptor.proto reflection case whose server sent server_file, after the
    built-in known divergences; go-py sees the same differences the other way round."""
    from harness.run import divergences
    from python_impl.contract import Diff, Result

    call = _call([({"fileByFilename": DESCRIPTOR_FILE}, {"files": [DESCRIPTOR_FILE]})])
    diffs = standard.check_reflection(call, Outcome(responses=[_files_response(
        {"file_by_filename": DESCRIPTOR_FILE}, [server_file])]), 0)
    if slug.startswith("go-"):
        diffs = [Diff(d.call, d.path, d.got, d.expected) for d in diffs]
    result = Result(case=DESCRIPTOR_CASE, direction=slug, verdict="fail" if diffs else "pass", diffs=diffs)
    known = divergences.load(divergences.builtin_files(), builtin=True)
    out = divergences.apply(known, result, slug, "bidi")
    return out.verdict, [f"{d.path}: {d.expected} / {d.got}" for d in out.diffs]


@pytest.mark.parametrize("slug", ["py-go", "go-py"])
def test_descriptor_proto_entries_excuse_only_the_named_revision_differences(slug: str) -> None:
    """The runtimes' revisions of descriptor.proto differ in five named places: those are excused,
    and a renumbered field, a renamed message or another package on top of them are failures."""
    assert _descriptor_verdict(_go_revision(), slug)[0] == "divergence"
    renumbered = _go_revision()
    renumbered.message_type[0].field[0].number = 7  # FileDescriptorSet.file
    verdict, diffs = _descriptor_verdict(renumbered, slug)
    assert verdict == "fail" and any(".message_type[0].field[0].number" in d for d in diffs), diffs
    # inside the message whose revisions differ too: its other fields are compared one by one
    renumbered = _go_revision()
    renumbered.message_type[19].field[2].number = 77  # FeatureSet.repeated_field_encoding
    verdict, diffs = _descriptor_verdict(renumbered, slug)
    assert verdict == "fail" and any(".message_type[19].field[2].number" in d for d in diffs), diffs
    renamed = _go_revision()
    renamed.message_type[19].nested_type[0].name = "Visibility"  # FeatureSet.VisibilityFeature
    renamed.message_type[19].field[7].type_name = ".google.protobuf.FeatureSet.Visibility.DefaultSymbolVisibility"
    verdict, diffs = _descriptor_verdict(renamed, slug)
    assert verdict == "fail" and any(".nested_type[0].name" in d for d in diffs), diffs
    moved = _go_revision()
    moved.package = "google.protobuf2"
    assert _descriptor_verdict(moved, slug)[0] == "fail"


def test_a_missing_dependency_is_missing_and_the_file_cannot_be_rebuilt() -> None:
    req = {"file_by_filename": API}
    call = _call([({"fileByFilename": API}, {"files": API_CLOSURE})])
    got = _check(call, [_files_response(req, [_fdp(n) for n in API_CLOSURE if n != "google/protobuf/any.proto"])])
    assert ('reflection[0].files["google/protobuf/any.proto"]', "present", "<missing>") in got
    assert any(p.endswith(".rebuild") and "google/protobuf/any.proto" in g for p, _, g in got), got
    # a file outside the closure is an extra
    extra = _check(call, [_files_response(req, [*(_fdp(n) for n in API_CLOSURE), _fdp("google/protobuf/empty.proto")])])
    assert extra == [('reflection[0].files["google/protobuf/empty.proto"]', "<absent>", "present")]


def test_files_sent_earlier_on_the_stream_may_be_left_out() -> None:
    """grpc-go sends each file once per stream (but always the requested one); grpcio every time."""
    symbol = "google.protobuf.Api"
    call = _call([({"fileByFilename": API}, {"files": API_CLOSURE}),
                  ({"fileContainingSymbol": symbol}, {"files": API_CLOSURE})])
    first = _files_response({"file_by_filename": API}, [_fdp(n) for n in API_CLOSURE])
    assert _check(call, [first, _files_response({"file_containing_symbol": symbol}, [_fdp(API)])]) == []
    # the requested file itself must come again
    got = _check(call, [first, _files_response({"file_containing_symbol": symbol}, [])])
    assert got == [(f'reflection[1].files["{API}"]', "present", "<missing>")]


def test_services_are_a_set_and_the_response_kind_code_and_request_are_checked() -> None:
    call = _call([({"listServices": "*"}, {"services": ["a.A", "b.B"]})])

    def listing(*names: str) -> reflection_pb2.ServerReflectionResponse:
        return reflection_pb2.ServerReflectionResponse(
            original_request=reflection_pb2.ServerReflectionRequest(list_services="*"),
            list_services_response=reflection_pb2.ListServiceResponse(
                service=[reflection_pb2.ServiceResponse(name=n) for n in names]))

    assert _check(call, [listing("b.B", "a.A")]) == []
    assert _check(call, [listing("a.A", "c.C")]) == [('reflection[0].services["b.B"]', "present", "<missing>"),
                                                     ('reflection[0].services["c.C"]', "<absent>", "present")]
    error = reflection_pb2.ServerReflectionResponse(
        original_request=reflection_pb2.ServerReflectionRequest(list_services="x"),
        error_response=reflection_pb2.ErrorResponse(error_code=12, error_message="nope"))
    assert _check(call, [error]) == [
        ("reflection[0].original_request.list_services", '"*"', '"x"'),
        ("reflection[0].message_response", "list_services_response", 'error_response 12 "nope"')]
    unknown = _call([({"fileContainingSymbol": "x.Y"}, {"error_code": 5})])
    answer = reflection_pb2.ServerReflectionResponse(
        original_request=reflection_pb2.ServerReflectionRequest(file_containing_symbol="x.Y"),
        error_response=reflection_pb2.ErrorResponse(error_code=5, error_message="Not found"))
    assert _check(unknown, [answer]) == []
    answer.error_response.error_code = 3
    assert _check(unknown, [answer]) == [("reflection[0].error_code", "5", '3 "Not found"')]
    assert _check(unknown, []) == [("responses.count", "1", "0")]


def test_a_v1_call_uses_the_v1alpha_messages_on_the_v1_path() -> None:
    assert standard.message_type("grpc.reflection.v1.ServerReflectionRequest") is reflection_pb2.ServerReflectionRequest
    made = []

    class Channel:
        def stream_stream(self, path, request_serializer, response_deserializer):
            made.append(path)
            return path

    call = SimpleNamespace(method="grpc.reflection.v1.ServerReflection/ServerReflectionInfo", streaming="bidi",
                           request_type="grpc.reflection.v1.ServerReflectionRequest",
                           response_type="grpc.reflection.v1.ServerReflectionResponse")
    standard.multicallable(Channel(), call)
    assert made == ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"]


# ---------------------------------------------------------------- the health flip

def _watch_flip(address: str) -> list[str]:
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        stream = stub.Watch(health_pb2.HealthCheckRequest(service=standard.FLIP_SERVICE), timeout=10)
        got = []
        for resp in stream:
            got.append(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
            if len(got) == 3:
                stream.cancel()
                break
        with pytest.raises(grpc.RpcError) as e:  # the flip stays on the Watch's own servicer
            stub.Check(health_pb2.HealthCheckRequest(service=standard.FLIP_SERVICE), timeout=10)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        return got


FLIPPED = ["SERVICE_UNKNOWN", "SERVING", "NOT_SERVING"]


def test_the_sync_server_flips_the_reserved_name_during_a_watch() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(standard.FlipHealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        for _ in range(3):  # a fresh servicer per Watch: every run sees the same changes
            assert _watch_flip(f"127.0.0.1:{port}") == FLIPPED
    finally:
        server.stop(None)


def test_the_aio_server_flips_the_reserved_name_during_a_watch() -> None:
    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(standard.FlipHealthServicerAio(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            for _ in range(3):
                assert await asyncio.to_thread(_watch_flip, f"127.0.0.1:{port}") == FLIPPED
        finally:
            await server.stop(None)

    asyncio.run(main())


# ---------------------------------------------------------------- findings

def test_a_case_about_a_file_one_side_cannot_load_does_not_run_there(seed_gen) -> None:
    """A case names the set's files its expectations are about; where a side cannot load one of them
    (a finding, which has its own failing row), the case cannot hold and does not run."""
    from harness.protoset.codegen import Finding
    from harness.run.runner import Prepared, direction

    ps = discover(REPO / "protos")
    cases = {c.name: c for c in stdcases.generate(ps)}
    assert cases["grpc.health.v1.Health/Check/standard/service/routeguide.RouteGuide"].files == ("route_guide.proto",)
    assert cases["grpc.health.v1.Health/Check/standard/overall"].files == ()
    reflect = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo/standard/"
    assert "shapes/legacy.proto" in cases[reflect + "all_extension_numbers/shapes.legacy.Legacy"].files
    assert "route_guide.proto" in cases[reflect + "list_services"].files
    finding = Finding("route_guide.proto", "py", "Python's import", "refused")
    prepared = Prepared(ps, seed_gen, list(cases.values()), py_findings=[finding])
    ran = {c.name for c in prepared.runnable(direction("py-py"), list(cases.values()))}
    assert "grpc.health.v1.Health/Check/standard/service/routeguide.RouteGuide" not in ran
    assert reflect + "file_by_filename/route_guide.proto" not in ran and reflect + "list_services" not in ran
    assert "grpc.health.v1.Health/Check/standard/overall" in ran and reflect + "unknown_symbol" in ran
    # files Python cannot load: no case is about them, and no one service list holds for a Go server
    skipped = {c.name for c in stdcases.generate(ps, skip={"route_guide.proto"})}
    assert not any("route_guide" in n or "routeguide" in n for n in skipped)
    assert not any(n.endswith(("/list_services", "/List/standard/all")) for n in skipped)
    assert "grpc.health.v1.Health/Watch/standard/status_changes" in skipped


_MANY_WATCHES = """
from concurrent import futures
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from python_impl import standard

server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
health_pb2_grpc.add_HealthServicer_to_server(standard.FlipHealthServicer(), server)
address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
server.start()

def watch(i):
    name, keep = (standard.FLIP_SERVICE, 3) if i % 2 else ("", 1)
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as ch:
        stream = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=name), timeout=10)
        for _ in range(keep):
            next(stream)
        stream.cancel()

with futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(watch, range(60)))
with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as ch:
    resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
print("all ended")
"""


def test_the_sync_server_survives_many_watches_cancelled_at_once() -> None:
    """Watches (flipping and plain) cancelled by their clients while others run. In the library's
    non-blocking mode a send under its lock met the close callback's wait for that lock, and the whole
    server stopped answering (the run hung). In a process of its own, so a hang fails, not hangs."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _MANY_WATCHES], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("60 Watch calls cancelled at once hung the sync health server (no end in 90 s)")
    assert proc.returncode == 0 and "all ended" in proc.stdout, proc.stderr[-3000:]
