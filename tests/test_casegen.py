"""Case generation from descriptors: deterministic, stably named, language-neutral values."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass

from harness.cases import generate as casegen
from harness.protoset import discover
from harness.cases.values import PATTERNS, build, to_json
from python_impl import bulk

REPO = Path(__file__).resolve().parent.parent


def test_deterministic_unique_and_named_by_shape(seed_gen) -> None:
    ps = discover(REPO / "protos")
    first = [c.to_json() for c in casegen.generate(ps)]
    assert json.dumps(first) == json.dumps([c.to_json() for c in casegen.generate(ps)])
    names = [c["name"] for c in first]
    assert len(names) == len(set(names))
    shapes = Counter(n.split("/")[2] for n in names)
    assert shapes["stream"] and shapes["protocol"] and shapes["Everything"] and shapes["Legacy"] and shapes["Ed"]
    assert all(n.count("/") == 3 and n.isascii() for n in names)


def test_every_mode_has_its_streaming_patterns(seed_gen) -> None:
    names = {c.name for c in casegen.generate(discover(REPO / "protos"))}
    for suffix in ("ServerStream/stream/zero", "ServerStream/stream/many", "ServerStream/stream/error_after_2",
                   "ClientStream/stream/zero", "Bidi/stream/ping_pong", "Bidi/stream/server_finishes_early",
                   "Bidi/stream/client_cancels_after_first", "Unary/stream/deadline_exceeded",
                   "Unary/stream/cancel_before_first_message", "Unary/stream/error",
                   "ClientStream/stream/error_after_requests", "Bidi/stream/error_after_1"):
        assert f"shapes.v1.Shapes/{suffix}" in names


def test_protocol_patterns_on_every_service(seed_gen) -> None:
    cases = casegen.generate(discover(REPO / "protos"))
    per_service = Counter(c.name.split("/")[0] for c in cases if c.name.split("/")[2] == "protocol")
    assert set(per_service) >= {"shapes.v1.Shapes", "shapes.legacy.LegacyService", "shapes.ed.EditionService",
                                "routeguide.RouteGuide", "tutorial.HelloService"}
    status = [c for c in cases if c.name.startswith("tutorial.HelloService/SayHello/protocol/status_")]
    assert len(status) == 17  # 16 non-OK codes + the unicode message


def test_values_round_trip_through_json(seed_gen) -> None:
    pool = descriptor_pool.Default()
    for name in ("shapes.v1.Everything", "shapes.legacy.Legacy", "shapes.ed.Ed"):
        desc = pool.FindMessageTypeByName(name)
        for pattern in PATTERNS:
            msg = build(desc, pattern)
            back = json_format.ParseDict(json.loads(json.dumps(to_json(msg))), GetMessageClass(desc)())
            assert back.SerializeToString(deterministic=True) == msg.SerializeToString(deterministic=True), (name, pattern)


def test_float32_edges_are_written_so_they_parse_back(seed_gen) -> None:
    desc = descriptor_pool.Default().FindMessageTypeByName("shapes.v1.Scalars")
    assert to_json(build(desc, "max"))["fFloat"] == 3.4028234663852886e38


def test_oneof_members_and_their_defaults(seed_gen) -> None:
    names = {c.name for c in casegen.generate(discover(REPO / "protos"))}
    for member in ("text", "number", "scalars", "color", "blob"):
        assert f"shapes.v1.Shapes/Unary/Everything/oneof_choice.{member}" in names
        assert f"shapes.v1.Shapes/Unary/Everything/oneof_choice.{member}_default" in names


def _wire_size(type_name: str, value: dict) -> int:
    cls = GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(type_name))
    return bulk.parse(value, cls()).ByteSize()  # size cases write their bulk as @repeat specs


def test_size_limit_cases_on_every_service_that_can_carry_bulk(seed_gen) -> None:
    """Any method and any field that can carry bulk: RouteGuide (a string inside a repeated message),
    Indicator (a string inside repeated MACDData), IndicatorGraph (server streaming only)."""
    ps = discover(REPO / "protos")
    cases = casegen.generate(ps)
    by_name = {c.name: c for c in cases}
    made = {(c.name.split("/")[0], c.name.rsplit("/", 1)[1]) for c in cases if c.name.rsplit("/", 1)[1]
            in casegen.SIZE_PATTERNS}
    for svc in ("routeguide.RouteGuide", "idc.Indicator", "idc.IndicatorGraph", "tutorial.HelloService",
                "shapes.v1.Shapes", "users.Users", "posXYZ.PositionService"):
        assert (svc, "near_size_limit") in made and (svc, "request_over_limit") in made, svc
    limit = casegen.RECV_LIMIT
    for name, c in by_name.items():
        pattern, call = name.rsplit("/", 1)[1], c.calls[0]
        if pattern == "near_size_limit":
            sizes = [_wire_size(call.request_type, call.requests[0]),
                     _wire_size(call.response_type, call.expect["responses"][0])]
            assert all(limit - 128 * 1024 < s < limit for s in sizes), (name, sizes)
        elif pattern == "request_over_limit":
            assert limit < _wire_size(call.request_type, call.requests[0]) < limit + 64 * 1024, name
        elif pattern == "response_over_limit":
            assert limit < _wire_size(call.response_type, call.server["responses"][0]) < limit + 64 * 1024, name
    # what cannot be made is said, per service and pattern
    gaps = casegen.size_gaps(ps, cases)
    assert any(g.startswith("idc.IndicatorGraph (indicator_graph.proto): no response_over_limit case") for g in gaps)
    assert sum(g.startswith("shapes.v1.Empties") for g in gaps) == 3
    # the others are the harness's echo services of types-only files whose messages carry no bulk
    assert all(".interop_echo." in g for g in gaps[:] if not g.startswith(("shapes.v1.Empties", "idc.IndicatorGraph")))


def test_bulk_in_a_repeated_scalar_field_reaches_the_size(tmp_path: Path) -> None:
    """A type whose only bulk is a repeated number is filled to the size (no string needed)."""
    import subprocess
    import sys

    (tmp_path / "nums.proto").write_text(
        'syntax = "proto3";\npackage nums;\nmessage Inner { repeated sint64 n = 1; }\n'
        'message Outer { Inner inner = 1; int32 id = 2; }\nservice S { rpc M(Outer) returns (Outer); }\n')
    script = ("import sys\nfrom harness.protoset import discover\nfrom harness.protoset.codegen import "
              "generate_python, import_python\nfrom harness.cases import generate\n"
              "ps = discover(sys.argv[1]); import_python(generate_python(ps))\n"
              "from google.protobuf import descriptor_pool\nfrom python_impl import bulk\n"
              "from google.protobuf.message_factory import GetMessageClass\n"
              "d = descriptor_pool.Default().FindMessageTypeByName('nums.Outer')\n"
              "for size in (4 * 2**20 - 65536, 4 * 2**20 + 1024):\n"
              "    print(bulk.parse(generate._sized(d, size), GetMessageClass(d)()).ByteSize() - size)\n")
    # a process of its own: one process holds one proto set
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    assert all(0 <= int(x) < 64 for x in out.stdout.split()), out.stdout


def test_oneof_members_of_response_only_types_travel_in_responses(seed_gen) -> None:
    cases = {c.name: c for c in casegen.generate(discover(REPO / "protos"))}
    for member in ("text", "number", "scalars", "color", "blob"):
        call = cases[f"shapes.v1.Shapes/ServerStream/Scalars/oneof_response.choice.{member}"].calls[0]
        assert [list(r["choice"]) for r in call.expect["responses"]] == [[member]]
        assert f"shapes.v1.Shapes/ServerStream/Scalars/oneof_response.choice.{member}_default" in cases
    # a member both sides reach by the same path travels both ways in one case
    both = cases["shapes.v1.Shapes/Unary/Everything/oneof_choice.number"].calls[0]
    assert both.requests == both.expect["responses"] == [{"choice": {"number": "-42"}}]


def test_extensions_in_a_message_scope_and_in_another_file_are_set(seed_gen) -> None:
    legacy = descriptor_pool.Default().FindMessageTypeByName("shapes.legacy.Legacy")
    value = to_json(build(legacy, "typical"))
    for name in ("shapes.legacy.note", "shapes.legacy.Annex.serial", "shapes.more.more_tags",
                 "shapes.more.Holder.holder_level"):
        assert f"[{name}]" in value, name


def test_presence_default_sets_extensions_to_their_defaults(seed_gen) -> None:
    legacy = descriptor_pool.Default().FindMessageTypeByName("shapes.legacy.Legacy")
    value = to_json(build(legacy, "presence_default"))
    assert value["[shapes.legacy.note]"] == "" and value["[shapes.legacy.Annex.serial]"] == "0"
    assert value["[shapes.more.Holder.holder_level]"] == "LEVEL_LOW"
    assert "[shapes.more.more_tags]" not in value  # repeated: no presence


def test_empty_submessages_one_level_at_a_time(seed_gen) -> None:
    cases = {c.name: c for c in casegen.generate(discover(REPO / "protos"))}
    top = cases["shapes.v1.Shapes/Unary/Everything/empty_submessages_0"].calls[0].requests[0]
    assert top == {k: {} for k in ("scalars", "repeats", "maps", "choice", "presence", "tree", "outer", "wkt")}
    nested = cases["shapes.v1.Shapes/Unary/Everything/empty_submessages_1"].calls[0].requests[0]
    assert nested["outer"] == {"middle": {}, "shortcut": {}} and nested["wkt"]["ts"] == "1970-01-01T00:00:00Z"
    assert cases["shapes.v1.Shapes/Unary/Everything/empty_submessages_2"].calls[0].requests[0]["outer"] == {
        "middle": {"inner": {}}}
    # a message with required fields is never empty: Legacy.child is left out, so no such case
    assert not any(n.startswith("shapes.legacy.LegacyService/Roundtrip/Legacy/empty_submessages") for n in cases)


def test_metadata_is_echoed_on_every_method(seed_gen) -> None:
    names = {c.name for c in casegen.generate(discover(REPO / "protos"))}
    for method in ("Unary", "ServerStream", "ClientStream", "Bidi"):
        assert f"shapes.v1.Shapes/{method}/protocol/metadata_echo" in names


def test_oneof_members_inside_list_elements_travel(seed_gen) -> None:
    cases = {c.name: c for c in casegen.generate(discover(REPO / "protos"))}
    for member, value in (("circle", 1.5), ("square", {"side": 1.5}), ("label", "text 0")):
        call = cases[f"shapes.draw.Drawings/Draw/Drawing/oneof_shapes.{member}"].calls[0]
        assert call.requests == call.expect["responses"] == [{"shapes": [{member: value}]}]
    assert cases["shapes.draw.Drawings/Draw/Drawing/oneof_shapes.square_default"].calls[0].requests == [
        {"shapes": [{"square": {}}]}]


def test_types_deeper_than_the_patterns_fill_get_a_typical_value(seed_gen) -> None:
    cases = {c.name: c for c in casegen.generate(discover(REPO / "protos"))}
    call = cases["shapes.draw.Canvases/Paint/Canvas/typical_at_layer.group.frames"].calls[0]
    assert call.requests == [{"layer": {"group": {"frames": [{"stroke": {"width": 1.5, "color": "text 0"}}]}}}]


def _library_modes(cases: list) -> dict[str, dict[str, str]]:
    """pattern -> {streaming mode: method} of the library patterns (casegen.LIBRARY_PATTERNS)."""
    out: dict[str, dict[str, str]] = {}
    for c in cases:
        pattern = c.name.rsplit("/", 1)[1]
        if "/protocol/" in c.name and pattern in casegen.LIBRARY_PATTERNS:
            modes = out.setdefault(pattern, {})
            assert c.calls[0].streaming not in modes, f"{pattern} twice in {c.calls[0].streaming}: {c.name}"
            modes[c.calls[0].streaming] = c.name.rsplit("/", 2)[0]
    return out


def test_library_patterns_run_once_per_streaming_mode_of_the_set(seed_gen) -> None:
    """Issue 17: what a library does with metadata past its limits, refused and reserved keys, codes
    over 16, long status messages and contradicting details holds for any service: once per mode."""
    cases = casegen.generate(discover(REPO / "protos"))
    modes = _library_modes(cases)
    assert set(modes) == casegen.LIBRARY_PATTERNS
    every = {"unary", "server_stream", "client_stream", "bidi"}
    for pattern, by_mode in modes.items():
        # a grpcio bidi call's outcome with reserved keys changes from run to run (docs/limits.md)
        assert set(by_mode) == (every - {"bidi"} if "reserved" in pattern else every), pattern
    assert modes["code_17"] == {"unary": "tutorial.HelloService/SayHello", "server_stream": "tutorial.HelloService/LotsOfReplies",
                                "client_stream": "tutorial.HelloService/LotsOfGreetings",
                                "bidi": "tutorial.HelloService/BidiHello"}
    # every status code in every mode (coverage counts codes per mode of the set)
    from harness.cases.model import STATUS_CODES
    have = {(c.calls[0].streaming, c.calls[0].expect["status"]) for c in cases
            if c.name.rsplit("/", 1)[1].startswith("status_") and "/protocol/" in c.name}
    assert have >= {(kind, code) for kind in every for code in STATUS_CODES[1:]}


def test_metadata_breadth_on_every_service(seed_gen) -> None:
    """Issue 8: empty values on every method's echo; many keys and repeated keys on every service;
    sizes around grpcio's limits, and the keys and values a client must refuse, once per mode."""
    cases = casegen.generate(discover(REPO / "protos"))
    by_name = {c.name: c for c in cases}
    for c in cases:
        if c.name.endswith("/protocol/metadata_echo"):
            call = c.calls[0]
            for md in (call.metadata, call.expect["headers"], call.expect["trailers"]):
                assert md["x-empty"] == [""] and md["x-empty-bin"] == [""], c.name
    services = {c.name.split("/")[0] for c in cases if "/protocol/" in c.name}
    patterns = ("metadata_100_keys", "metadata_repeated_keys", "metadata_grpc_prefixed_key")
    for svc in services:
        made = {c.name.rsplit("/", 1)[1] for c in cases if c.name.startswith(svc + "/") and "/protocol/" in c.name}
        assert set(patterns) <= made, svc
    pre = "tutorial.HelloService/SayHello/protocol/"
    many = by_name[pre + "metadata_100_keys"].calls[0]
    assert len(many.metadata) == 100 and many.expect["headers"] == many.metadata == many.expect["trailers"]
    rep = by_name[pre + "metadata_repeated_keys"].calls[0].metadata
    assert rep["x-rep"] == ["3", "1", "", "2", "1"] and len(rep["x-rep-bin"]) == 4
    near = len(by_name[pre + "metadata_near_soft_limit"].calls[0].metadata["x-large"][0])
    over = by_name[pre + "metadata_request_over_hard_limit"].calls[0]
    assert near < casegen.GRPCIO_METADATA_SOFT_LIMIT < casegen.GRPCIO_METADATA_HARD_LIMIT < len(over.metadata["x-large"][0])
    assert over.expect["status"] == "RESOURCE_EXHAUSTED" and over.server["status"] == "OK"
    headers = by_name[pre + "metadata_headers_over_hard_limit"].calls[0]
    assert "headers" not in headers.expect and len(headers.server["headers"]["x-large"][0]) > casegen.GRPCIO_METADATA_HARD_LIMIT
    upper = by_name[pre + "metadata_uppercase_key"].calls[0]
    assert upper.to_json()["metadata"] == {"x-Upper-Case": ["v"]}  # raw, as the peers must get it
    assert upper.expect["status"] == "INTERNAL" and upper.server["status"] == "OK"
    reserved = by_name[pre + "metadata_reserved_grpc_keys"].calls[0]
    assert reserved.server["metadata"] == {k: [] for k in reserved.metadata} and "grpc-status" in reserved.metadata


def test_status_breadth(seed_gen) -> None:
    cases = casegen.generate(discover(REPO / "protos"))
    by_name = {c.name: c for c in cases}
    pre = "tutorial.HelloService/SayHello/protocol/"
    for code in (17, 99):
        call = by_name[f"{pre}code_{code}"].calls[0]
        assert call.server == {"status": f"CODE_{code}"} and call.expect["status"] == "UNKNOWN"
    assert len(by_name[pre + "long_status_message"].calls[0].expect["message"]) > casegen.GRPCIO_METADATA_HARD_LIMIT
    details = by_name[pre + "details_several_anys"].calls[0].expect["details"]
    assert len(details) >= 4 and casegen.UNKNOWN_DETAIL in details
    for pattern, code in (("details_code_mismatch", "NOT_FOUND"), ("details_message_mismatch", "INVALID_ARGUMENT")):
        call = by_name[pre + pattern].calls[0]
        sent = call.server["details_status"]
        assert call.expect["status"] == "INVALID_ARGUMENT" and sent["code"] == code
        assert (sent["code"], sent["message"]) != (call.expect["status"], call.expect["message"])
    assert len([c for c in cases if c.name.endswith("/protocol/code_17")]) == 4  # once per streaming mode


def test_streamed_messages_differ_so_order_and_losses_show(seed_gen) -> None:
    """A stream of equal messages that came back reordered, or short by one in the middle, would
    look whole (issue 8): the many-message patterns cycle through distinct values."""
    cases = {c.name: c for c in casegen.generate(discover(REPO / "protos"))}
    for name, field in (("routeguide.RouteGuide/ListFeatures/stream/many", "responses"),
                        ("shapes.v1.Shapes/ClientStream/stream/many", "requests"),
                        ("shapes.v1.Shapes/Bidi/stream/ping_pong", "requests"),
                        ("shapes.v1.Shapes/Bidi/stream/ping_pong", "responses")):
        call = cases[name].calls[0]
        values = call.requests if field == "requests" else call.expect["responses"]
        distinct = [json.dumps(v, sort_keys=True) for v in values]
        assert len(set(distinct)) >= min(len(values), 4), (name, field)
        assert all(distinct[i] != distinct[i + 1] for i in range(len(distinct) - 1)), (name, field)


def test_every_value_pattern_case_carries_a_value_of_its_kind(seed_gen) -> None:
    """A pattern that puts no value of its kind in either message makes no case: RouteGuide's Point,
    Rectangle and RouteNote have no float field, so no neg_zero case (it would pass against a codec
    that turns -0.0 into +0.0). Checked on every value-pattern case, from the messages that travel."""
    from harness.cases.values import carries

    pool = descriptor_pool.Default()
    cases = casegen.generate(discover(REPO / "protos"))
    names = {c.name for c in cases}
    for gone in ("routeguide.RouteGuide/GetFeature/Point/neg_zero", "routeguide.RouteGuide/ListFeatures/Rectangle/neg_zero",
                 "routeguide.RouteGuide/RouteChat/RouteNote/neg_zero", "tutorial.HelloService/SayHello/HelloRequest/repeated_one"):
        assert gone not in names
    assert "shapes.v1.Shapes/Unary/Everything/neg_zero" in names  # a type with float fields keeps its case
    checked = Counter()
    for case in cases:
        pattern = case.name.rsplit("/", 1)[1]
        if pattern not in PATTERNS or case.name.split("/")[2] in ("stream", "protocol"):
            continue
        call = case.calls[0]
        sent = [json_format.ParseDict(r, GetMessageClass(pool.FindMessageTypeByName(call.request_type))())
                for r in call.requests]
        answered = [json_format.ParseDict(r, GetMessageClass(pool.FindMessageTypeByName(call.response_type))())
                    for r in call.expect["responses"]]
        assert any(carries(msg, pattern) for msg in sent + answered), case.name
        checked[pattern] += 1
    assert set(checked) == set(PATTERNS)  # every pattern made a case somewhere, and each was checked


def test_each_gzip_case_sends_a_message_gzip_shrinks_or_says_it_cannot(seed_gen, tmp_path: Path) -> None:
    """Under gzip a message may go uncompressed when gzip would not shrink it by a tenth (wire.shrinks),
    so a gzip case whose message is small proves only the header: a peer that sends every message
    with its compressed flag at 0 passes it. On protos/ every gzip case (one per mode) sends one that
    gzip shrinks; a mode whose methods carry no bulk is listed as a gap, never silent."""
    import subprocess
    import sys

    from harness.engines.wire import gzip_sink, shrinks

    pool = descriptor_pool.Default()
    ps = discover(REPO / "protos")
    cases = casegen.generate(ps)
    checked = []
    for case in cases:
        pattern = case.name.rsplit("/", 1)[1]
        if pattern not in ("gzip_request", "gzip_response") or "/protocol/" not in case.name:
            continue
        call = case.calls[0]
        kind, sent = ((call.request_type, call.requests) if pattern == "gzip_request"
                      else (call.response_type, call.expect["responses"]))
        for raw in sent:
            data = bulk.parse(raw, GetMessageClass(pool.FindMessageTypeByName(kind))()).SerializeToString()
            sink = gzip_sink()
            assert shrinks(len(data), len(sink.compress(data)) + len(sink.flush())), (case.name, len(data))
        checked.append((call.streaming, pattern))
    assert sorted(checked) == sorted((m, p) for m in ("unary", "server_stream", "client_stream", "bidi")
                                     for p in ("gzip_request", "gzip_response"))
    assert not [g for g in casegen.size_gaps(ps, cases) if "gzip" in g]
    # a set whose unary methods carry no bulk: the gap is named, per mode and side
    (tmp_path / "tiny.proto").write_text(
        'syntax = "proto3";\npackage tiny;\nmessage P { int32 x = 1; }\nmessage B { string s = 1; }\n'
        'service S { rpc U(P) returns (P); rpc C(stream B) returns (P); }\n')
    script = ("import sys\nfrom harness.protoset import discover\nfrom harness.protoset.codegen import "
              "generate_python, import_python\nfrom harness.cases import generate\n"
              "ps = discover(sys.argv[1]); import_python(generate_python(ps))\n"
              "print('\\n'.join(g for g in generate.size_gaps(ps, generate.generate(ps)) if 'gzip' in g))\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True)
    gaps = out.stdout.splitlines()
    assert [g.split(":")[0] + ":" + g.split(":")[1].split(" case")[0] for g in gaps] == [
        "unary methods of the set: no gzip_request", "unary methods of the set: no gzip_response",
        "client_stream methods of the set: no gzip_response"], gaps
