"""`grpc-interop probe` against a sample service of its own with one planted bug per check (issue 21):
each bug is found once, named by its method and check, and nothing is found on the correct control.

The sample is a real grpcio server built from its own protos (tests/data/probe_sample/server_protos,
one field newer than the protos/ the probe is given, which is the schema-drift bug), with health and
reflection, in this process on 127.0.0.1. The main probe uses all three client flavours (the Go one as a
process); the narrower tests use the Python ones, which are enough for what they show."""

from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator
from xml.etree import ElementTree as ET

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from harness import cli
from harness.engines import certs
from harness.protoset import descriptors, discover

DATA = Path(__file__).parent / "data" / "probe_sample"
SERVICE = "probe.sample.Sample"
PLANTED = {  # method -> the check its bug trips
    f"{SERVICE}/Crash": "not_a_server_error",
    f"{SERVICE}/ByLanguage": "clients_agree",
    f"{SERVICE}/Contradict": "clients_agree",  # the issue's own example of a server only one library accepts
    f"{SERVICE}/Drift": "schema_conforms",
    f"{SERVICE}/Hang": "calls_end",
    f"{SERVICE}/BadTrailer": "protocol_shape",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "standard_services",
}
CONTROL = f"{SERVICE}/Echo"
NONDETERMINISTIC = f"{SERVICE}/Counter"


class Recorder(grpc.ServerInterceptor):
    """Every method the server was asked for: the probe must never call one outside --methods."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.seen: list[tuple[str, str | None]] = []  # (client library, authorization) of each call
        self.times: list[float] = []  # when each call came (monotonic)
        self.lock = threading.Lock()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        md = dict(details.invocation_metadata)
        with self.lock:
            self.methods.append(details.method.lstrip("/"))
            self.times.append(time.monotonic())
            self.seen.append((md.get("user-agent", "").split("/")[0], md.get("authorization")))
        return continuation(details)


def _sample_server(certs_dir: Path | None = None) -> tuple[grpc.Server, int, Recorder]:
    pool = descriptor_pool.DescriptorPool()
    for fdp in descriptors.descriptor_set(discover(DATA / "server_protos")).file:
        pool.Add(fdp)
    req_cls = GetMessageClass(pool.FindMessageTypeByName("probe.sample.Req"))
    reply_cls = GetMessageClass(pool.FindMessageTypeByName("probe.sample.Reply"))
    counter = itertools.count()

    def echo(req: Any, ctx: grpc.ServicerContext) -> Any:
        return reply_cls(n=req.n, text=req.text)

    def crash(reqs: Iterator[Any], ctx: grpc.ServicerContext) -> Any:
        total = 0
        for r in reqs:
            if r.n > 10:  # the planted bug: an unhandled exception (grpcio answers UNKNOWN)
                raise RuntimeError("n over 10")
            total += r.n
        return reply_cls(n=total)

    def by_language(req: Any, ctx: grpc.ServicerContext) -> Any:
        agent = dict(ctx.invocation_metadata()).get("user-agent", "")
        return reply_cls(n=req.n, text=agent.split("/")[0])  # the planted bug: answers by client library

    def drift(req: Any, ctx: grpc.ServicerContext) -> Any:
        return reply_cls(n=req.n, build="2026.12")  # a field the probe's protos do not have

    def hang(reqs: Iterator[Any], ctx: grpc.ServicerContext) -> Iterator[Any]:
        for _ in reqs:
            pass
        while ctx.is_active():  # the planted bug: never ends after the client half-closes
            time.sleep(0.02)
        return iter(())

    def bad_trailer(req: Any, ctx: grpc.ServicerContext) -> Iterator[Any]:
        ctx.set_trailing_metadata((("x-note", " padded "),))  # HTTP/2: no leading/trailing whitespace
        yield reply_cls(n=req.n)

    def contradict(req: Any, ctx: grpc.ServicerContext) -> Any:
        # details saying NOT_FOUND under a status saying INVALID_ARGUMENT: grpcio reports the status,
        # grpc-go refuses the contradiction (INTERNAL)
        details = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="no such thing")
        ctx.set_trailing_metadata((("grpc-status-details-bin", details.SerializeToString()),))
        ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")

    def count(req: Any, ctx: grpc.ServicerContext) -> Any:
        return reply_cls(n=next(counter))

    de, se = req_cls.FromString, reply_cls.SerializeToString
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(echo, de, se),
                "Crash": grpc.stream_unary_rpc_method_handler(crash, de, se),
                "ByLanguage": grpc.unary_unary_rpc_method_handler(by_language, de, se),
                "Drift": grpc.unary_unary_rpc_method_handler(drift, de, se),
                "Hang": grpc.stream_stream_rpc_method_handler(hang, de, se),
                "BadTrailer": grpc.unary_stream_rpc_method_handler(bad_trailer, de, se),
                "Contradict": grpc.unary_unary_rpc_method_handler(contradict, de, se),
                "Counter": grpc.unary_unary_rpc_method_handler(count, de, se)}
    recorder = Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=[recorder])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    health_servicer = health.HealthServicer()
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # the planted check-6 bug: reflection lists a service no protos declare and the server does not serve
    reflection.enable_server_reflection([SERVICE, "probe.sample.Ghost", reflection.SERVICE_NAME, health.SERVICE_NAME],
                                        server, pool=pool)
    if certs_dir is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:  # mTLS: the client must present a certificate of the harness's test CA
        read = lambda name: (certs_dir / name).read_bytes()  # noqa: E731
        creds = grpc.ssl_server_credentials([(read("server.key"), read("server.pem"))], read("ca.pem"), True)
        port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port, recorder


@pytest.fixture(scope="module")
def sample() -> Iterator[tuple[str, Recorder]]:
    server, port, recorder = _sample_server()
    yield f"127.0.0.1:{port}", recorder
    server.stop(0)


@pytest.fixture(scope="module")
def probed(sample: tuple[str, Recorder], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("probe")
    code = cli.main(["probe", "--target", sample[0], "--protos", str(DATA / "protos"), "--peer-runner", "process",
                     "--budget", "5", "--call-timeout", "0.5", "--seed", "1", "--out-dir", str(out / "replays"),
                     "--json", str(out / "probe.json"), "--junit", str(out / "probe.xml"),
                     "--html", str(out / "probe.html")])
    return {"code": code, "doc": json.loads((out / "probe.json").read_text()), "dir": out}


def test_one_finding_per_planted_bug_and_none_on_the_control(probed: dict[str, Any]) -> None:
    assert probed["code"] == 1
    found = {(f["method"], f["check"]) for f in probed["doc"]["findings"]}
    assert found == set(PLANTED.items())
    assert all(probed["doc"]["calls"][CONTROL][c] > 0 for c in ("py", "pyaio", "go"))


def test_non_determinism_is_marked_with_evidence_not_a_finding(probed: dict[str, Any]) -> None:
    evidence = probed["doc"]["nondeterministic"]
    assert set(evidence) == {NONDETERMINISTIC}
    ev = evidence[NONDETERMINISTIC]
    assert ev["first"]["responses"] != ev["second"]["responses"]


def test_findings_are_shrunk_and_reproducible(probed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    crash = next(f for f in probed["doc"]["findings"] if f["check"] == "not_a_server_error")
    assert crash["request_json"] == [{"n": 11}]  # shrunk: one message, the smallest n over 10
    assert "grpcurl -plaintext" in crash["grpcurl"] and "-d '{\"n\": 11}'" in crash["grpcurl"]
    replay = crash["reproduce"].split("--replay ", 1)[1]
    capsys.readouterr()
    assert cli.main(["probe", "--replay", replay, "--clients", "py,pyaio"]) == 1
    assert "not_a_server_error" in capsys.readouterr().out


def test_reports_carry_the_findings(probed: dict[str, Any]) -> None:
    suite = ET.parse(probed["dir"] / "probe.xml").getroot()
    failed = {(tc.get("classname"), tc.get("name")) for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert failed == set(PLANTED.items())
    page = (probed["dir"] / "probe.html").read_text()
    assert all(f"{m}: {c}" in page for m, c in PLANTED.items())


def test_never_a_method_outside_methods(sample: tuple[str, Recorder], tmp_path: Path) -> None:
    target, recorder = sample
    before = len(recorder.methods)
    code = cli.main(["probe", "--target", target, "--protos", str(DATA / "protos"), "--clients", "py",
                     "--methods", CONTROL, "--budget", "0.5", "--json", str(tmp_path / "p.json")])
    assert code == 0
    assert set(recorder.methods[before:]) == {CONTROL}


def test_every_method_gets_a_call_however_small_its_share(sample: tuple[str, Recorder], tmp_path: Path) -> None:
    """A share spent before the first example is drawn (a busy machine) must not leave a method unprobed."""
    target, recorder = sample
    before = len(recorder.methods)
    assert cli.main(["probe", "--target", target, "--protos", str(DATA / "protos"), "--clients", "py",
                     "--methods", CONTROL, "--budget", "0.000001", "--json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["calls"][CONTROL]["py"] > 0
    assert CONTROL in recorder.methods[before:]


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert cli.main(["probe", "--protos", str(DATA / "protos")]) == 2  # no --target
    assert cli.main(["probe", "--target", "127.0.0.1:1", "--protos", str(DATA / "protos"), "--budget", "0"]) == 2
    assert cli.main(["probe", "--target", "127.0.0.1:1", "--protos", str(DATA / "protos"), "--methods", "no.Such/*"]) == 2


def test_a_client_that_cannot_start_ends_the_started_ones(tmp_path: Path) -> None:
    """--clients pyaio,bogus: pyaio's event-loop thread and channel must not outlive the usage error."""
    def started() -> set[threading.Thread]:  # new ones only: another test's may still be ending
        return {t for t in threading.enumerate() if t.name == "probe-aio"} - before

    before = {t for t in threading.enumerate() if t.name == "probe-aio"}
    assert cli.main(["probe", "--target", "127.0.0.1:1", "--protos", str(DATA / "protos"), "--clients", "pyaio,bogus",
                     "--budget", "0.5", "--json", str(tmp_path / "p.json")]) == 2
    deadline = time.monotonic() + 5
    while started() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not started()


def test_read_only_calls_only_methods_without_side_effects(sample: tuple[str, Recorder], tmp_path: Path) -> None:
    target, recorder = sample
    before = len(recorder.methods)
    assert cli.main(["probe", "--target", target, "--protos", str(DATA / "protos"), "--clients", "py",
                     "--methods", f"{SERVICE}/*", "--read-only", "--budget", "0.5", "--json", str(tmp_path / "p.json")]) == 0
    called = {m for m in recorder.methods[before:] if m.startswith(SERVICE)}
    assert called == {CONTROL}  # the only method marked NO_SIDE_EFFECTS


def test_rps_bounds_the_load(sample: tuple[str, Recorder], tmp_path: Path) -> None:
    target, recorder = sample
    before = len(recorder.methods)
    t0 = time.monotonic()
    assert cli.main(["probe", "--target", target, "--protos", str(DATA / "protos"), "--clients", "py,pyaio",
                     "--methods", CONTROL, "--rps", "40", "--budget", "1", "--json", str(tmp_path / "p.json")]) == 0
    elapsed = time.monotonic() - t0
    calls = [m for m in recorder.methods[before:] if m == CONTROL]
    assert 10 <= len(calls) <= 40 * elapsed + 1


def test_rps_bounds_the_standard_services_calls_too(sample: tuple[str, Recorder], tmp_path: Path) -> None:
    """Check 6's own calls (reflection, health) come right after the probed method's: --rps counts them
    too, so no second of the run sees more than rps calls (+1: the window's edges)."""
    target, recorder = sample
    before = len(recorder.times)
    rps = 5
    cli.main(["probe", "--target", target, "--protos", str(DATA / "protos"), "--clients", "py",
              "--methods", f"{CONTROL},grpc.*", "--rps", str(rps), "--budget", "1", "--json", str(tmp_path / "p.json")])
    times, methods = recorder.times[before:], recorder.methods[before:]
    assert any(m.startswith("grpc.") for m in methods) and CONTROL in methods
    busiest = max(sum(1 for u in times if t <= u < t + 0.95) for t in times)
    assert busiest <= rps + 1, f"{busiest} calls within a second at --rps {rps}: {methods}"


def test_no_reflection_service_is_a_usage_error(sample: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]) -> None:
    # a port nothing listens on: reflection cannot be had, so the probe cannot start (exit 2, saying why)
    assert cli.main(["probe", "--target", "127.0.0.1:1", "--reflection", "--clients", "py"]) == 2
    assert "reflection" in capsys.readouterr().err


def test_a_method_the_server_lacks_is_not_an_unknown_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A grpcio server on older protos (no Counter) answers Counter "Method not found!", as it would for
    an unknown service: check 6 must not claim the server does not know probe.sample.Sample."""
    full = grpc.method_handlers_generic_handler
    monkeypatch.setattr(grpc, "method_handlers_generic_handler",
                        lambda service, handlers: full(service, {k: v for k, v in handlers.items() if k != "Counter"}))
    server, port, _ = _sample_server()
    try:
        cli.main(["probe", "--target", f"127.0.0.1:{port}", "--protos", str(DATA / "protos"), "--clients", "py",
                  "--methods", f"{SERVICE}/Counter,grpc.*", "--budget", "0.3", "--json", str(tmp_path / "p.json")])
    finally:
        server.stop(0)
    findings = json.loads((tmp_path / "p.json").read_text())["findings"]
    assert findings and not [f["message"] for f in findings if "does not know" in f["message"]]


def test_mtls_authority_and_token_from_every_flavour(tmp_path: Path) -> None:
    folder = certs.make(tmp_path / "certs")
    server, port, recorder = _sample_server(folder)
    try:
        code = cli.main(["probe", "--target", f"127.0.0.1:{port}", "--protos", str(DATA / "protos"), "--tls",
                         "--ca", str(folder / "ca.pem"), "--cert", str(folder / "client.pem"), "--key",
                         str(folder / "client.key"), "--authority", certs.OVERRIDE_NAME, "--token", "s3cret",
                         "--peer-runner", "process", "--methods", CONTROL, "--budget", "0.5",
                         "--json", str(tmp_path / "p.json")])
    finally:
        server.stop(0)
    assert code == 0
    libraries = {lib for lib, auth in recorder.seen if auth == "Bearer s3cret"}
    assert libraries == {"grpc-python", "grpc-python-asyncio", "grpc-go"}


def test_reflection_source_on_grpcio(sample: tuple[str, Recorder], tmp_path: Path) -> None:
    # grpcio serves reflection v1alpha only; the descriptors come from it, and check 6 still sees Ghost
    code = cli.main(["probe", "--target", sample[0], "--reflection", "--clients", "py",
                     "--methods", f"{CONTROL},grpc.*", "--budget", "0.5", "--json", str(tmp_path / "p.json")])
    doc = json.loads((tmp_path / "p.json").read_text())
    assert code == 1
    assert {(f["method"], f["check"]) for f in doc["findings"]} == {
        ("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "standard_services")}
    assert doc["calls"][CONTROL]["py"] > 0
