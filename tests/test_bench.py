"""`grpc-interop bench` (harness/run/bench.py) in the Python-only directions: its loops stop at their
call count or their time budget, it counts verdicts, and it reports what it measured. The Go
client's phases are tested in go_peer (bench_test.go); the seven directions run in `make bench`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main
from harness.run import bench, runner

REPO = Path(__file__).resolve().parent.parent
DIRECTIONS = [runner.direction("py-py"), runner.direction("pyaio-pyaio")]


@pytest.fixture(scope="module")
def prepared(seed_gen) -> runner.Prepared:
    return runner.prepare(REPO / "protos")


def test_default_cases_are_one_per_streaming_mode(prepared) -> None:
    cases = bench.bench_cases(prepared, None)
    assert [c.calls[0].streaming for c in cases] == list(bench.MODES)
    assert [c.name.split("/", 2)[2] for c in cases] == ["HelloRequest/typical", "stream/many", "stream/many",
                                                        "stream/ping_pong"]
    chosen = bench.bench_cases(prepared, ["routeguide.RouteGuide/RouteChat", "/users.Users/CreateUser"])
    assert [c.name for c in chosen] == ["routeguide.RouteGuide/RouteChat/stream/ping_pong",
                                        "users.Users/CreateUser/CreateUserRequest/typical"]
    with pytest.raises(bench.BenchError, match="no generated case calls nope.Svc/M"):
        bench.bench_cases(prepared, ["nope.Svc/M"])


def test_loops_stop_at_their_count_or_their_budget(prepared) -> None:
    cases = bench.bench_cases(prepared, ["tutorial.HelloService/SayHello", "tutorial.HelloService/BidiHello"])
    with runner.Session(prepared, "process") as session:
        counted = bench.run_bench(session, DIRECTIONS, cases, [1, 4], calls=7, seconds=60)
        start = time.perf_counter()
        timed = bench.run_bench(session, DIRECTIONS[:1], cases[:1], [2], calls=10**9, seconds=0.3)
        took = time.perf_counter() - start
    # 2 directions x 2 cases x 2 concurrencies, then the raw floor per case and concurrency
    assert [(p.direction, p.case, p.concurrency) for p in counted] == [
        *((d.name, c.name, n) for d in DIRECTIONS for c in cases for n in (1, 4)),
        *((bench.RAW, c.name, n) for c in cases for n in (1, 4))]
    for p in counted:
        assert p.calls == len(p.latencies_ms) == 7 and p.verdicts == {"pass": 7} and p.ok, p
        assert p.elapsed_ms > 0 and p.rps > 0 and p.percentile(50) <= p.percentile(99)
    assert next(p for p in counted if p.case.endswith("ping_pong")).messages == 8  # 4 requests, 4 responses
    for p in timed[:1]:
        assert 0 < p.calls < 10**9 and 300 <= p.elapsed_ms < 10_000, p.calls
    assert took < 30  # two budgets of 0.3 s (py-py, then the raw floor) plus setup
    with pytest.raises(bench.BenchError, match="bounded in count and time"):
        bench.run_bench(session, DIRECTIONS, cases, [1], calls=0, seconds=1)


def test_a_call_that_does_not_pass_is_counted_and_shown(prepared) -> None:
    from dataclasses import replace

    case = bench.bench_cases(prepared, ["tutorial.HelloService/SayHello"])[0]
    call = case.calls[0]
    wrong = replace(case, calls=[replace(call, expect={**call.expect, "status": "NOT_FOUND"})])
    with runner.Session(prepared, "process") as session:
        phases = bench.run_bench(session, DIRECTIONS[:1], [wrong], [1], calls=3, seconds=60)
    p = phases[0]
    assert p.verdicts == {"fail": 3} and not p.ok and "status.code: expected NOT_FOUND, got OK" in p.problem
    console = Console(record=True, width=250)
    console.print(bench.render(phases))
    text = console.export_text()
    assert "3 fail" in text and "raw grpcio" in text and "py→py" in text
    assert p.to_json()["verdicts"] == {"fail": 3} and p.to_json()["p50_ms"] == p.percentile(50)


def test_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--protos", str(REPO / "protos"), "--direction", "py-py", "--method",
                 "tutorial.HelloService/SayHello", "--calls", "5", "--duration", "5", "--concurrency", "2",
                 "--json", str(out)])
    assert code == 0, capsys.readouterr().out
    text = capsys.readouterr().out
    assert "tutorial.HelloService/SayHello/HelloRequest/typical" in text and "py→py" in text
    phases = json.loads(out.read_text())["phases"]
    assert [(p["direction"], p["concurrency"], p["calls"]) for p in phases] == [
        ("py→py", 1, 5), ("py→py", 2, 5), ("raw grpcio", 1, 5), ("raw grpcio", 2, 5)]
    assert all(p["rpc_per_s"] > 0 and p["p99_ms"] >= p["p50_ms"] for p in phases)


def test_cases_by_name(prepared) -> None:
    name = "tutorial.HelloService/SayHello/protocol/near_size_limit"
    assert [c.name for c in bench.named_cases(prepared, [name])] == [name]
    with pytest.raises(bench.BenchError, match="no case named nope/x"):
        bench.named_cases(prepared, ["nope/x"])
    with pytest.raises(bench.BenchError, match="bench does not measure"):  # it has one plaintext connection
        bench.named_cases(prepared, ["tutorial.HelloService/SayHello/tls/server_only"])
    assert all(c.channel is None for c in bench.bench_cases(prepared, ["tutorial.HelloService/SayHello"]))
