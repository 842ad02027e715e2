"""A proto file one language cannot compile or load is a finding: a failing row of its own (with the
files importing it) in every direction with that language on one side, carrying the tool's own
message, while the rest of the set runs. And protobuf-go's documented switch for MessageSet, the
`protolegacy` build tag, offered as --go-build-tags.

tests/data/msgset_protos: legacy/msgset.proto (a MessageSet), post/parcel.proto (imports it) and
plain/greeter.proto (ordinary). Each run is its own process (one process serves one proto set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from harness.cases.values import build
from harness.protoset import codegen, discover
from harness.report import export, verdicts
from harness.run.runner import DIRECTIONS
from python_impl.contract import Diff, Result

REPO = Path(__file__).resolve().parent.parent
MSGSET = REPO / "tests" / "data" / "msgset_protos"
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "auto")
GO_SIDED = {d.name for d in DIRECTIONS if "go" in (d.client, d.server)}
PY_SIDED = {d.name for d in DIRECTIONS if {d.client, d.server} & {"py", "pyaio"}}
REFUSAL = 'message "msgset.v1.Bag" is a MessageSet, which is a legacy proto1 feature that is no longer supported'


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


# ---------------------------------------------------------------- unit

def test_gen_lists_what_go_refuses_with_its_importers_and_generates_the_rest() -> None:
    proc = cli("gen", "--protos", str(MSGSET))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "finding: legacy/msgset.proto: Go (protoc-gen-go):" in proc.stderr and REFUSAL in proc.stderr
    assert "finding: post/parcel.proto: Go (protoc-gen-go):" in proc.stderr
    assert "imports legacy/msgset.proto, which failed" in proc.stderr
    assert "plain/greeter.proto" not in proc.stderr and "Python" not in proc.stderr
    src = Path(proc.stdout.split("go:")[1].strip())
    assert (src / "gen" / "pb" / "plain" / "plain_v1" / "greeter.pb.go").exists()
    assert not list(src.rglob("msgset*.go")) and not list(src.rglob("parcel*.go"))


def test_go_build_errors_name_their_proto_file_which_is_left_out(tmp_path: Path) -> None:
    """protoc-gen-go accepts a nested Foo.Bar beside a top-level Foo_Bar, but both become the Go type
    Foo_Bar: `go build` refuses the file. It is a finding with go build's own message; the peer is
    built without it."""
    root = tmp_path / "protos"
    root.mkdir()
    (root / "clash.proto").write_text('syntax = "proto3"; package clash;\n'
                                      "message Foo { message Bar { int32 a = 1; } Bar bar = 1; }\n"
                                      "message Foo_Bar { int32 b = 1; }\n"
                                      "service Clashes { rpc Get(Foo) returns (Foo); }\n")
    (root / "fine.proto").write_text('syntax = "proto3"; package fine; message Ok { int32 n = 1; }\n'
                                     "service Oks { rpc Get(Ok) returns (Ok); }\n")
    proc = cli("gen", "--protos", str(root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "finding: clash.proto: Go (go build):" in proc.stderr and "Foo_Bar redeclared" in proc.stderr
    assert "fine.proto" not in proc.stderr
    src = Path(proc.stdout.split("go:")[1].strip())
    assert (src.parent / "interop-peer").exists() and not list(src.rglob("clash*.go"))


def test_build_tags_are_part_of_the_go_digest() -> None:
    ps = discover(MSGSET)
    assert codegen.go_digest(ps, ("protolegacy",)) != codegen.go_digest(ps)
    assert codegen.go_build_tags("protolegacy, b2") == codegen.go_build_tags(["b2", "protolegacy"]) == ("b2", "protolegacy")
    with pytest.raises(codegen.CodegenError, match="--go-build-tags protolegacy"):
        codegen.go_build_tags("proto-legacy")


def test_a_file_python_cannot_load_is_a_finding_with_its_importers(tmp_path: Path) -> None:
    """Python's side: a folder name no module can have. Its file and the file importing it are
    findings in the six directions with a Python side; the other file runs green."""
    root = tmp_path / "protos"
    for rel, text in {"bad-name/thing.proto": 'syntax = "proto3"; package bad; message Thing { string a = 1; }\n'
                                              "service Things { rpc Get(Thing) returns (Thing); }",
                      "uses/box.proto": 'syntax = "proto3"; package uses; import "bad-name/thing.proto";\n'
                                        "message Box { bad.Thing thing = 1; }",
                      "fine/ok.proto": 'syntax = "proto3"; package fine; message Ok { int32 n = 1; }\n'
                                       "service Oks { rpc Get(Ok) returns (Ok); }"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    out = tmp_path / "r.json"
    proc = cli("run", "--protos", str(root), "--direction", "py-py", "--direction", "pyaio-pyaio",
               "--json", str(out), timeout=300)
    assert proc.returncode == 1, proc.stdout[-5000:] + proc.stderr[-3000:]
    results = [Result.from_json(r) for r in json.loads(out.read_text())["results"]]
    findings = {(r.case, r.direction) for r in results if r.verdict == "finding"}
    assert findings == {(f"finding/{f}", d) for f in ("bad-name/thing.proto", "uses/box.proto")
                        for d in ("py→py", "pyaio→pyaio")}
    assert "'bad-name' is not a valid Python module name" in proc.stdout
    assert "imports bad-name/thing.proto, which failed" in proc.stdout
    others = [r for r in results if r.verdict != "finding"]
    # the standard services' cases (health, reflection) run too, about the files Python loaded only
    standard = {r.case for r in others if r.case.startswith(("grpc.health.v1.", "grpc.reflection."))}
    assert others and all(r.verdict in ("pass", "divergence", "capability")
                          and (r.case.startswith("fine.Oks/") or r.case in standard
                               # the misbehaving HTTP/2 peer's, which need no proto file (harness/cases/wire.py)
                               or r.case.startswith("interop.wire.Misbehaving/"))
                          for r in others)
    assert any(r.case.startswith("fine.Oks/") for r in others)
    assert standard and not any("bad" in name or "uses" in name for name in standard)


def _finding() -> Result:
    return Result("finding/legacy/msgset.proto", "py→go", "finding",
                  [Diff(0, "Go: protoc-gen-go", "legacy/msgset.proto compiles and loads", REFUSAL)])


def test_findings_fail_every_report() -> None:
    ok = Result("plain.v1.Greeter/Greet/Hello/typical", "py→go", "pass")
    results = [_finding(), ok]
    assert verdicts.failed(results) == [results[0]]
    assert verdicts.method_of(results[0].case) == "finding/legacy/msgset.proto"  # a row of its own
    assert verdicts.counts(results) == (1, 0, 1)
    explanations = {("py→go", results[0].case): f"FINDING: py→go legacy/msgset.proto\n{REFUSAL}"}
    md = export.markdown(results, ["py→go"], explanations)
    assert "| `finding/legacy/msgset.proto` | ❌ 0/1 |" in md and REFUSAL in md
    page = export.html_page(results, ["py→go"], explanations, "t")
    # a red cell, linked to its cases (issue 12: each matrix cell links to the list of its cases)
    assert '<td class="bad"><a href="#c-m0-d0">✗ 0/1</a></td>' in page and 'id="c-m0-d0"' in page
    assert "FINDING: py→go legacy/msgset.proto" in page


def test_findings_are_failures_in_junit(tmp_path: Path) -> None:
    export.junit([_finding()], {("py→go", "finding/legacy/msgset.proto"): REFUSAL}, tmp_path / "j.xml")
    xml = (tmp_path / "j.xml").read_text()
    assert 'failures="1"' in xml and 'type="finding"' in xml and "MessageSet" in xml


def test_messageset_values_go_through_the_message_set_extensions(tmp_path: Path) -> None:
    """The generated Bag values set both MessageSet extensions, and encode as MessageSet items
    (group 1 holding type_id 2 and message 3), the proto1 wire format."""
    out = tmp_path / "d.pb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{MSGSET}", f"--descriptor_set_out={out}",
                    "--include_imports", "legacy/msgset.proto"], check=True)
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(f)
    bag = build(pool.FindMessageTypeByName("msgset.v1.Bag"), "typical")
    assert {fd.full_name for fd, _ in bag.ListFields()} == {"msgset.v1.Note.message_set_extension",
                                                             "msgset.v1.Label.message_set_extension"}
    wire = bag.SerializeToString(deterministic=True)
    assert wire[0] == 0x0B and wire[1] == 0x10  # START_GROUP of field 1, then type_id (field 2, varint)
    back = GetMessageClass(pool.FindMessageTypeByName("msgset.v1.Bag")).FromString(wire)
    assert back == bag


# ---------------------------------------------------------------- real runs

@pytest.mark.interop
def test_without_protolegacy_go_reports_findings_and_the_rest_runs(tmp_path: Path, own_cases) -> None:
    """Every direction, with the finding rows and the set's own-type cases (value and standard): the
    point is which files run where; the generic cases are the same with or without a finding."""
    out = tmp_path / "r.json"
    proc = cli("run", "--protos", str(MSGSET), "--peer-runner", RUNNER, *own_cases(MSGSET), "-k", "finding/",
               "--json", str(out),
               "--junit", str(tmp_path / "j.xml"), "--markdown", str(tmp_path / "s.md"), "--html", str(tmp_path / "r.html"))
    assert proc.returncode == 1, proc.stdout[-20000:] + proc.stderr[-5000:]
    results = [Result.from_json(r) for r in json.loads(out.read_text())["results"]]
    findings = {(r.case, r.direction) for r in results if r.verdict == "finding"}
    assert findings == {(f"finding/{f}", d) for f in ("legacy/msgset.proto", "post/parcel.proto") for d in GO_SIDED}
    assert not [r for r in results if r.verdict not in ("finding", "pass", "divergence", "capability")]
    ran = {(verdicts.method_of(r.case), r.direction) for r in results if r.verdict != "finding"}
    assert {("plain.v1.Greeter/Greet", d) for d in GO_SIDED | PY_SIDED} <= ran
    assert ("msgset.v1.Bags/Put", "py→py") in ran and ("post.v1.Post/Send", "pyaio→pyaio") in ran
    assert not {m for m, d in ran if d in GO_SIDED} & {"msgset.v1.Bags/Put", "post.v1.Post/Send"}
    assert REFUSAL in proc.stdout and "--go-build-tags protolegacy" in proc.stdout
    for report in ("j.xml", "s.md", "r.html"):
        assert "finding/legacy/msgset.proto" in (tmp_path / report).read_text(), report


@pytest.mark.interop
def test_with_protolegacy_the_whole_folder_is_green_in_all_seven_directions(tmp_path: Path, own_cases) -> None:
    """All three files' own-type cases (every method's values, the standard services' reflection of
    them) in all seven directions: what the tag changes is which messages protobuf-go accepts."""
    out = tmp_path / "r.json"
    proc = cli("run", "--protos", str(MSGSET), "--peer-runner", RUNNER, "--go-build-tags", "protolegacy",
               *own_cases(MSGSET), "--json", str(out))
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-5000:]
    results = [Result.from_json(r) for r in json.loads(out.read_text())["results"]]
    assert not [r for r in results if r.verdict not in ("pass", "divergence", "capability")]
    # the MessageSet values (both extensions set) crossed in every direction
    for pattern in ("typical", "max"):
        assert {r.direction for r in results if r.case == f"msgset.v1.Bags/Put/Bag/{pattern}"
                and r.verdict == "pass"} >= GO_SIDED - {"go→pyaio"}


@pytest.mark.interop
def test_plugin_findings_are_failing_test_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_interop(interop_run):\n    interop_run.assert_pass()\n")
    result = pytester.runpytest_subprocess("--interop-protos", str(MSGSET), "--interop-direction", "py-go",
                                           "--peer-runner", RUNNER, "-p", "no:cacheprovider",
                                           "-k", "finding or plain.v1.Greeter/Greet/", "-rf")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 2 and outcomes["passed"] > 10, result.stdout.str()[-5000:]
    result.stdout.fnmatch_lines(["*FAILED*test_interop[[]py-go:finding/legacy/msgset.proto[]]*",
                                 "*FAILED*test_interop[[]py-go:finding/post/parcel.proto[]]*"])
    assert REFUSAL in result.stdout.str()
    legacy = pytester.runpytest_subprocess("--interop-protos", str(MSGSET), "--interop-direction", "py-go",
                                           "--peer-runner", RUNNER, "-p", "no:cacheprovider",
                                           "--interop-go-build-tags", "protolegacy", "-k", "finding or Bags/Put/")
    assert legacy.parseoutcomes().get("failed", 0) == 0 and legacy.parseoutcomes()["passed"] > 10, legacy.stdout.str()[-5000:]
