"""Shapes real public trees have and the hand-made ones lacked: required fields that never end
(protobuf's conformance proto2), enums of dozens of values (OTLP's severities, Kubernetes-style
reasons), messages no method carries. The descriptors are built here into private pools, so these
run in the unit-test process; tests/test_prototrees.py runs the real trees through the CLI."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

from harness.cases import generate as casegen
from harness.cases.values import Unbuildable, build, unbuildable
from harness.report import coverage

FD = descriptor_pb2.FieldDescriptorProto


def _pool(*messages: descriptor_pb2.DescriptorProto, enums: tuple[descriptor_pb2.EnumDescriptorProto, ...] = (),
          services: tuple[descriptor_pb2.ServiceDescriptorProto, ...] = (), syntax: str = "proto2"):
    f = descriptor_pb2.FileDescriptorProto(name="real/shapes.proto", package="real", syntax=syntax)
    f.message_type.extend(messages)
    f.enum_type.extend(enums)
    f.service.extend(services)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return pool


def _message(name: str, *fields: tuple[str, int, int, int, str]) -> descriptor_pb2.DescriptorProto:
    """fields: (name, number, label, type, type_name)."""
    m = descriptor_pb2.DescriptorProto(name=name)
    for fname, number, label, type_, type_name in fields:
        fd = m.field.add(name=fname, number=number, label=label, type=type_)
        if type_name:
            fd.type_name = type_name
    return m


REQ, OPT, REP = FD.LABEL_REQUIRED, FD.LABEL_OPTIONAL, FD.LABEL_REPEATED
MSG, I32, ENUM = FD.TYPE_MESSAGE, FD.TYPE_INT32, FD.TYPE_ENUM


@pytest.fixture(scope="module")
def required_loops() -> descriptor_pool.DescriptorPool:
    return _pool(
        _message("Loop", ("id", 1, REQ, I32, ""), ("again", 2, REQ, MSG, ".real.Loop"),
                 ("maybe", 3, OPT, MSG, ".real.Loop")),
        _message("Ping", ("pong", 1, REQ, MSG, ".real.Pong")),
        _message("Pong", ("ping", 1, REQ, MSG, ".real.Ping")),
        _message("Holder", ("n", 1, OPT, I32, ""), ("loop", 2, OPT, MSG, ".real.Loop"),
                 ("loops", 3, REP, MSG, ".real.Loop"), ("leaf", 4, REQ, MSG, ".real.Leaf")),
        _message("Leaf", ("v", 1, REQ, I32, "")),
        services=(descriptor_pb2.ServiceDescriptorProto(name="Svc", method=[
            descriptor_pb2.MethodDescriptorProto(name="Hold", input_type=".real.Holder", output_type=".real.Holder"),
            descriptor_pb2.MethodDescriptorProto(name="Spin", input_type=".real.Loop", output_type=".real.Holder")]),))


def test_a_type_whose_required_fields_never_end_is_named_with_its_chain(required_loops) -> None:
    loop, ping = required_loops.FindMessageTypeByName("real.Loop"), required_loops.FindMessageTypeByName("real.Ping")
    assert unbuildable(loop) == ("real.Loop.again (required)", "real.Loop")
    assert unbuildable(ping) == ("real.Ping.pong (required)", "real.Pong.ping (required)", "real.Ping")
    with pytest.raises(Unbuildable, match=r"real.Loop \(real/shapes.proto\) cannot be built: .* real.Loop.again"):
        build(loop, "typical")  # a RecursionError before
    assert unbuildable(required_loops.FindMessageTypeByName("real.Holder")) is None


def test_fields_of_a_type_that_cannot_be_built_stay_unset_and_the_rest_is_filled(required_loops) -> None:
    holder = required_loops.FindMessageTypeByName("real.Holder")
    for pattern in ("typical", "repeated_many", "presence_default", "max"):
        msg = build(holder, pattern)
        assert not msg.HasField("loop") and not msg.loops and msg.leaf.v is not None
    cases = casegen.value_cases(holder.file.services_by_name["Svc"].methods_by_name["Hold"])
    assert cases and all("loop" not in str(c.calls[0].requests) for c in cases)


def test_a_method_carrying_an_unbuildable_type_gets_no_case_and_leaves_coverage_by_name(required_loops) -> None:
    svc = required_loops.FindServiceByName("real.Svc")
    assert [m.name for m in casegen.buildable_methods(svc)] == ["Hold"]
    universe = coverage.Universe(svc.methods, {"real/shapes.proto"}, required_loops)
    assert "real.Loop" not in universe.messages
    why = {f"{i.owner}: {i.name}": w for i, w in universe.unreachable.items()}
    assert "cannot be built" in why["real.Svc/Spin: ok"]
    assert "real.Loop.again" in why["real.Holder: loop (2)"] and "real.Holder: loops (3)" in why
    assert "real.Holder: loop: unset" not in why  # unset it can be, and is counted
    assert coverage.Item("presence states", "real.Holder", "loop: unset") in universe.items["presence states"]


def test_every_number_of_a_large_enum_travels_once_in_the_set() -> None:
    severity = descriptor_pb2.EnumDescriptorProto(name="Severity", value=[
        descriptor_pb2.EnumValueDescriptorProto(name=f"SEVERITY_{n}", number=n) for n in range(25)])
    pool = _pool(
        _message("Record", ("severity", 1, OPT, ENUM, ".real.Severity")),
        _message("Batch", ("records", 1, REP, MSG, ".real.Record")),
        _message("One", ("severity", 1, OPT, ENUM, ".real.Severity")),
        enums=(severity,), syntax="proto3",
        services=(descriptor_pb2.ServiceDescriptorProto(name="Logs", method=[
            descriptor_pb2.MethodDescriptorProto(name="Single", input_type=".real.One", output_type=".real.One"),
            descriptor_pb2.MethodDescriptorProto(name="Export", input_type=".real.Batch", output_type=".real.One")]),))
    methods = list(pool.FindServiceByName("real.Logs").methods)
    made = casegen.enum_cases(methods)
    # through the method that can hold many numbers in one message: one case, one element per number
    assert [c.name for c in made] == ["real.Logs/Export/Batch/enum_values.Severity"]
    sent = [r.get("severity") for r in made[0].calls[0].requests[0]["records"]]
    assert sorted(sent) == sorted(f"SEVERITY_{n}" for n in range(2, 24))  # 0, 1, 24 come with the patterns
    # only a singular field: one case per number
    single = casegen.enum_cases(methods[:1])
    assert len(single) == 22 and single[0].name == "real.Logs/Single/One/enum_values.Severity.SEVERITY_2"
    everything = [c for m in methods for c in casegen.value_cases(m)] + made
    universe = coverage.Universe(methods, {"real/shapes.proto"}, pool)
    cov = coverage.measure(universe, everything, {"py→go": {c.name for c in everything}})
    assert cov.percent("enum values", "py→go") == 100.0


def test_a_message_field_deeper_than_the_patterns_fill_is_also_sent_present_but_empty() -> None:
    """Frame.stroke in protos/shapes/drawing.proto sits 4 fields down: its `default` presence state
    (present, empty) was never carried."""
    pool = _pool(
        _message("Canvas", ("layer", 1, OPT, MSG, ".real.Layer")),
        _message("Layer", ("group", 1, OPT, MSG, ".real.Group")),
        _message("Group", ("frames", 1, REP, MSG, ".real.Frame")),
        _message("Frame", ("stroke", 1, OPT, MSG, ".real.Stroke")),
        _message("Stroke", ("width", 1, OPT, I32, "")), syntax="proto3",
        services=(descriptor_pb2.ServiceDescriptorProto(name="Canvases", method=[
            descriptor_pb2.MethodDescriptorProto(name="Paint", input_type=".real.Canvas",
                                                 output_type=".real.Canvas")]),))
    method = pool.FindServiceByName("real.Canvases").methods_by_name["Paint"]
    made = {c.name.rsplit("/", 1)[1]: c for c in casegen.value_cases(method)}
    sent = made["empty_submessages_at_layer.group.frames"].calls[0].requests[0]
    assert sent == {"layer": {"group": {"frames": [{"stroke": {}}]}}}
    cov = coverage.measure(coverage.Universe([method], {"real/shapes.proto"}, pool), list(made.values()),
                           {"py→go": set(c.name for c in made.values())})
    assert cov.percent("presence states", "py→go") == 100.0


def test_what_no_case_can_carry_is_named_in_every_report_and_survives_the_json() -> None:
    from harness.report import coverage_view

    kinds = {k: [] for k in coverage.KINDS}
    cov = coverage.Coverage(kinds, {"py→go": set()}, ["py→go"],
                            {coverage.Item("fields", "real.Holder", "loop (2)"): "its type cannot be built: …"})
    for text in (coverage_view.markdown(cov), coverage_view.html_section(cov), "\n".join(coverage_view.unreachable_lines(cov))):
        assert "real.Holder: fields: loop (2) (its type cannot be built: …)" in text
    assert coverage.from_json(cov.to_json()).unreachable == cov.unreachable


def test_enums_of_one_short_name_get_cases_of_their_own() -> None:
    """Kubernetes-style APIs nest an enum `Phase` in several messages, with the same value names: the
    cases were named by the short name only, so Pod.Phase's and Node.Phase's cases shared names and
    one of each pair was lost (results and coverage are keyed by case name)."""
    def owner(name: str) -> descriptor_pb2.DescriptorProto:
        m = _message(name, ("phase", 1, OPT, ENUM, f".real.{name}.Phase"))
        m.enum_type.add(name="Phase").value.extend(
            descriptor_pb2.EnumValueDescriptorProto(name=f"PHASE_{n}", number=n) for n in range(8))
        return m

    pool = _pool(owner("Pod"), owner("Node"),
                 _message("Cluster", ("pod", 1, OPT, MSG, ".real.Pod"), ("node", 2, OPT, MSG, ".real.Node")),
                 syntax="proto3", services=(descriptor_pb2.ServiceDescriptorProto(name="Clusters", method=[
                     descriptor_pb2.MethodDescriptorProto(name="Get", input_type=".real.Cluster",
                                                          output_type=".real.Cluster")]),))
    made = casegen.enum_cases(list(pool.FindServiceByName("real.Clusters").methods))
    names = [c.name for c in made]
    assert len(names) == len(set(names)) == 10, names  # 2..6 of each
    assert "real.Clusters/Get/Cluster/enum_values.Pod.Phase.PHASE_2" in names
    assert "real.Clusters/Get/Cluster/enum_values.Node.Phase.PHASE_2" in names


def test_a_coverage_gate_fails_when_every_item_of_a_kind_was_left_out_as_unreachable(required_loops) -> None:
    """A set whose only method carries a type that cannot be built has 0 of 0 items: 100%, and
    --min-coverage passed with nothing tested."""
    svc = required_loops.FindServiceByName("real.Svc")
    universe = coverage.Universe([svc.methods_by_name["Spin"]], {"real/shapes.proto"}, required_loops)
    cov = coverage.measure(universe, [], {"py→go": set()})
    assert cov.counts("streaming patterns", "py→go") == (0, 0)
    problems = cov.below({"streaming patterns": 99, "map key types": 99})
    assert len(problems) == 1 and "streaming patterns: no case can carry any of them" in problems[0]
