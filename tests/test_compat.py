"""grpc-interop compat: the static descriptor diff (unit), the translation and evidence helpers (unit),
and real cross-revision runs of tests/data/compat (interop: needs the Go peer)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import cli
from harness.compat.cross_revision import (CompatError, Item, Observation, DIRECTIONS, apply_allow, load_allow, resolve_base,
                            translate, unknown_fields)
from harness.protoset import discover
from harness.compat.wirediff import BREAKING, CAVEAT, OK, Finding, Revision, diff

DATA = Path(__file__).parent / "data" / "compat"
RUNNER = os.environ.get("INTEROP_PEER_RUNNER", "process")


def rev(label: str, folder: Path) -> Revision:
    return Revision.load(label, discover(folder))


def changes(old: Path, new: Path) -> dict[str, Finding]:
    return {f.path: f for f in diff(rev("old", old), rev("new", new)) if f.change != "unchanged"}


def write(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.proto").write_text('syntax = "proto3";\npackage t;\n' + body)
    return folder


# ---------------------------------------------------------------- static rules (unit)

def test_static_compatible_example_has_only_additions():
    found = changes(DATA / "v1", DATA / "v2_compatible")
    assert {p: f.change for p, f in found.items()} == {
        "store.OrderService/ReturnOrder": "added", "store.Order.coupon": "added",
        "store.Status.STATUS_RETURNED": "added"}
    assert all(f.wire == OK and f.wire_json == OK for f in found.values())


def test_static_breaking_example():
    found = changes(DATA / "v1", DATA / "v2_breaking")
    assert found["store.OrderService/CancelOrder"].change == "removed"
    assert found["store.OrderService/WatchOrder"].change == "streaming_changed"
    assert "unary → server_stream" in found["store.OrderService/WatchOrder"].detail
    q = found["store.Order.quantity"]
    assert (q.change, q.wire) == ("type_changed", BREAKING) and "varint → len" in q.detail
    n = found["store.Order.note"]
    assert (n.change, n.wire) == ("renumbered", BREAKING) and "5 → 9" in n.detail
    # wire compatible by the static rules (with a caveat): the wire run shows the truncation
    t = found["store.Order.total_cents"]
    assert (t.change, t.wire) == ("type_changed", CAVEAT) and "truncated" in t.detail
    # the enum swap: every number still exists, so WIRE passes; the JSON names changed
    s = found["store.Status.STATUS_SHIPPED"]
    assert (s.change, s.wire, s.wire_json) == ("renamed", OK, BREAKING)
    removed = found["store.Order.labels"]
    assert (removed.change, removed.wire) == ("removed", OK) and "reserved" in removed.detail


@pytest.mark.parametrize("old_type, new_type, verdict", [
    ("int64", "int32", CAVEAT), ("uint32", "int64", CAVEAT), ("int32", "bool", CAVEAT),
    ("sint32", "sint64", CAVEAT), ("fixed32", "sfixed32", CAVEAT), ("string", "bytes", CAVEAT),
    ("int32", "sint32", BREAKING), ("int32", "string", BREAKING), ("double", "float", BREAKING),
    ("fixed64", "int64", BREAKING), ("int32", "int32", None),
])
def test_static_type_rules(tmp_path, old_type, new_type, verdict):
    old = write(tmp_path / "a", f"message M {{ {old_type} f = 1; }}\n")
    new = write(tmp_path / "b", f"message M {{ {new_type} f = 1; }}\n")
    found = changes(old, new)
    if verdict is None:
        assert found == {}
    else:
        assert found["t.M.f"].wire == verdict


def test_static_field_rules(tmp_path):
    old = write(tmp_path / "a", "message M { int32 a = 1; string b = 2; int32 c = 3; int32 d = 4; string e = 5; }\n"
                                "enum E { E_ZERO = 0; E_ONE = 1; E_TWO = 2; }\n")
    new = write(tmp_path / "b", "message M { reserved 3; int32 renamed_a = 1; string b = 2 [json_name = \"bee\"];"
                                " bool d_flag = 4; }\n"
                                "enum E { E_ZERO = 0; E_UNO = 1; }\n")
    found = changes(old, new)
    assert (found["t.M.a"].change, found["t.M.a"].wire, found["t.M.a"].wire_json) == ("renamed", OK, BREAKING)
    assert (found["t.M.b"].change, found["t.M.b"].wire, found["t.M.b"].wire_json) == ("json_name_changed", OK, BREAKING)
    assert (found["t.M.c"].change, found["t.M.c"].wire) == ("removed", OK)          # number reserved
    assert (found["t.M.d"].change, found["t.M.d"].wire) == ("number_reused", BREAKING)  # new name and type
    assert (found["t.M.e"].change, found["t.M.e"].wire) == ("removed", BREAKING)    # not reserved
    assert (found["t.E.E_ONE"].change, found["t.E.E_ONE"].wire) == ("renamed", OK)
    assert (found["t.E.E_TWO"].change, found["t.E.E_TWO"].wire) == ("removed", BREAKING)


# ---------------------------------------------------------------- translation and evidence (unit)

def test_translate_by_meaning():
    old, new = rev("old", DATA / "v1"), rev("new", DATA / "v2_breaking")
    s, r = old.message("store.Order"), new.message("store.Order")
    value = {"id": "x", "quantity": 7, "totalCents": "9223372036854775807", "status": "STATUS_SHIPPED", "note": "n"}
    out, tr = translate(value, s, old, r)
    # same name: kept (note moves to its new number); enum by name; no int32 for 2^63-1, no string for 7
    assert out == {"id": "x", "status": "STATUS_SHIPPED", "note": "n"}
    kept = {n.s_fd.name: n.kept for n in tr.nodes}
    assert kept == {"id": True, "quantity": False, "total_cents": False, "status": True, "note": True}
    assert next(n for n in tr.nodes if n.s_fd.name == "total_cents").why.endswith("out of range for int32")


def test_unknown_fields_rendering_is_read_back():
    assert unknown_fields("[2:varint:42, 9:len:dGV4dA==]") == [(2, 0), (9, 2)]
    # a group's own fields are not top-level unknown fields; base64 may end in '='
    assert unknown_fields("[8:group:[1:varint:7, 2:len:YQ==], 3:fixed32:1, 4:fixed64:2]") == [(8, 3), (3, 5), (4, 1)]
    assert unknown_fields("") == [] and unknown_fields("[]") == []


def _item(path: str, breaking: bool) -> Item:
    f = Finding(path, "field", "type_changed", BREAKING if breaking else OK, OK, "")
    return Item(path, "field", f, [Observation(DIRECTIONS[0], "c", True)])


def test_allow_list(tmp_path):
    items = [_item("store.Order.quantity", True), _item("store.Order.id", False)]
    allow = tmp_path / "allow.yaml"
    allow.write_text("- match: store.Order.quant*\n  reason: nobody uses quantity yet\n")
    apply_allow(items, load_allow(allow))
    assert items[0].allowed == "nobody uses quantity yet" and items[1].allowed is None
    allow.write_text("- match: store.Order.id\n  reason: not breaking at all\n")
    with pytest.raises(CompatError, match="matching no breaking change.*store.Order.id"):
        apply_allow(items, load_allow(allow))
    allow.write_text("- match: store.Order.id\n")
    with pytest.raises(CompatError, match="match and reason"):
        load_allow(allow)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   check=True, capture_output=True)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A tiny repository whose protos/ is v1 at tag `v1`, and v2_compatible in the working tree."""
    repo = tmp_path / "repo"
    protos = repo / "protos" / "store"
    protos.mkdir(parents=True)
    _git(repo, "init", "-q")
    (protos / "orders.proto").write_bytes((DATA / "v1" / "store" / "orders.proto").read_bytes())
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    _git(repo, "tag", "v1")
    (protos / "orders.proto").write_bytes((DATA / "v2_compatible" / "store" / "orders.proto").read_bytes())
    return repo


def test_base_from_git_ref(git_repo, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base = resolve_base("v1", git_repo / "protos", scratch)
    assert (base / "store" / "orders.proto").read_bytes() == (DATA / "v1" / "store" / "orders.proto").read_bytes()
    with pytest.raises(CompatError, match="no-such-ref"):
        resolve_base("no-such-ref", git_repo / "protos", scratch)


def test_messages_no_method_carries_go_on_the_wire_in_compat_too():
    """OTLP's TracesData and LogsData travel in files and queues, never in a call: their echo methods
    are planned like any method (compat reported them not exercised), and the static diff leaves the
    harness's echo services out."""
    from harness.compat.cross_revision import revision_sets

    otlp = Path(__file__).resolve().parent / "data" / "prototrees" / "otlp"
    sets = revision_sets(otlp, otlp)
    revs = {name: Revision.load(name, ps) for name, ps in sets.items()}
    for rev in revs.values():  # plan() makes the cases of every method of the client's revision
        assert {"opentelemetry.proto.trace.v1.interop_echo.TraceEcho/TracesData",
                "opentelemetry.proto.logs.v1.interop_echo.LogsEcho/LogsData"} <= set(rev.methods())
    assert not [f for f in diff(revs["old"], revs["new"]) if "interop_echo" in f.path]


# ---------------------------------------------------------------- real cross-revision runs (interop)

def run_compat(capsys, tmp_path: Path, new: Path, base: str, *extra: str) -> tuple[int, str, dict]:
    out = tmp_path / f"compat-{len(list(tmp_path.iterdir()))}.json"
    code = cli.main(["compat", "--base", base, "--protos", str(new), "--peer-runner", RUNNER,
                     "--json", str(out), *extra])
    text = capsys.readouterr()
    report = json.loads(out.read_text()) if out.exists() else {}
    return code, text.out + text.err, report


def by_path(report: dict) -> dict[str, dict]:
    return {i["path"]: i for i in report["items"]}


@pytest.mark.interop
def test_compatible_revision_passes(capsys, tmp_path):
    code, text, report = run_compat(capsys, tmp_path, DATA / "v2_compatible", str(DATA / "v1"))
    assert code == 0, text
    items = by_path(report)
    for path in ("store.Order.coupon", "store.OrderService/ReturnOrder", "store.Status.STATUS_RETURNED"):
        assert items[path]["wire"] == "ok" and not items[path]["breaking"], items[path]
    # compatible verdicts rest on real exchanges in all four directions
    assert items["store.Order.id"]["exchanges"] > 0 and items["store.Order.id"]["wire"] == "ok"
    assert len(report["directions"]) == 4 and all(d["cases"] > 0 for d in report["directions"])
    assert "unknown field 8" in " ".join(items["store.Order.coupon"]["evidence"])


@pytest.mark.interop
def test_breaking_revision_names_every_break_with_wire_evidence(capsys, tmp_path):
    code, text, report = run_compat(capsys, tmp_path, DATA / "v2_breaking", str(DATA / "v1"))
    assert code == 1, text
    items = by_path(report)

    def evidence(path: str) -> str:
        item = items[path]
        assert item["breaking"] and item["wire"] == "breaking", item
        return "\n".join(item["evidence"])

    assert "answered UNIMPLEMENTED" in evidence("store.OrderService/CancelOrder")          # removed method
    assert "cardinality violation" in evidence("store.OrderService/WatchOrder")            # streaming mode
    q = evidence("store.Order.quantity")                                                   # type change
    assert "field 2 arrived as an unknown field (varint)" in q and "field 2 arrived as an unknown field (len)" in q
    n = evidence("store.Order.note")                                                       # renumbered
    assert "field 5 arrived as an unknown field" in n and "field 9 arrived as an unknown field" in n
    # only found on the wire: the static WIRE rules pass these
    assert items["store.Order.total_cents"]["highlight"]
    assert "decoded total_cents = -1" in evidence("store.Order.total_cents")
    assert items["store.Order.status"]["highlight"]
    assert "decoded status = STATUS_CANCELLED (3) (expected STATUS_SHIPPED (2))" in evidence("store.Order.status")
    assert items["store.Order.labels"]["highlight"]                                        # removed field
    assert "no such field and kept it as unknown field 7 (len): the value is lost" in evidence("store.Order.labels")
    assert "passes the static WIRE rules but breaks on the wire" in text
    # unchanged fields are compatible, backed by exchanges
    assert items["store.Order.id"]["wire"] == "ok" and not items["store.Order.id"]["breaking"]

    allow = tmp_path / "allow.yaml"
    allow.write_text("- match: store.OrderService/*\n  reason: v2 API, clients migrate\n"
                     "- match: store.Order.*\n  reason: v2 API\n"
                     "- match: store.Status.*\n  reason: v2 API\n")
    code, text, report = run_compat(capsys, tmp_path, DATA / "v2_breaking", str(DATA / "v1"), "--allow", str(allow))
    assert code == 0, text
    assert all(i["allowed"] for i in report["items"] if i["breaking"])


@pytest.mark.interop
def test_dead_allow_entry_is_an_error(capsys, tmp_path):
    allow = tmp_path / "allow.yaml"
    allow.write_text("- match: store.Order.quantity\n  reason: stale\n")
    code, text, _ = run_compat(capsys, tmp_path, DATA / "v2_compatible", str(DATA / "v1"), "--allow", str(allow))
    assert code == 2 and "matching no breaking change" in text and "store.Order.quantity" in text


@pytest.mark.interop
def test_base_as_git_ref(capsys, tmp_path, git_repo):
    code, text, report = run_compat(capsys, tmp_path, git_repo / "protos", "v1")
    assert code == 0, text
    assert by_path(report)["store.Order.coupon"]["wire"] == "ok"
    assert "at that git ref" in report["old"]
