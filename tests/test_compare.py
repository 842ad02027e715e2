"""Parsed-message comparison: every difference, with a path; NaN equals NaN; tolerance; presence."""

from __future__ import annotations

import math

import pytest

from google.protobuf import any_pb2, descriptor_pb2, struct_pb2, wrappers_pb2

from python_impl.compare import Tolerance, diff_messages, floats_equal, render


def test_nan_equals_nan_but_not_a_number() -> None:
    assert diff_messages(wrappers_pb2.DoubleValue(value=math.nan), wrappers_pb2.DoubleValue(value=math.nan)) == []
    assert diff_messages(wrappers_pb2.DoubleValue(value=math.nan), wrappers_pb2.DoubleValue(value=1.0)) == [
        ("value", "nan", "1.0")]


def test_negative_zero_is_a_different_value() -> None:
    assert not floats_equal(0.0, -0.0, Tolerance())
    assert floats_equal(math.inf, math.inf, Tolerance())


@pytest.mark.parametrize("exp, got", [
    (math.inf, -math.inf), (-math.inf, 5.0), (math.inf, 1e308), (5.0, math.inf),  # rel*|inf| is infinite
    (-0.0, 1e-9), (1e-9, -0.0), (-0.0, -1e-9), (-0.0, 0.0), (0.0, -0.0),          # -0.0 is exact
    (math.nan, 1.0), (1.0, math.nan),
])
@pytest.mark.parametrize("tol", [Tolerance(), Tolerance(abs=1e-6, rel=1e-6), Tolerance(abs=1.0, rel=1.0)],
                         ids=["none", "tight", "loose"])
def test_infinities_nan_and_signed_zeros_compare_exactly_whatever_the_tolerance(exp: float, got: float,
                                                                                tol: Tolerance) -> None:
    assert not floats_equal(exp, got, tol)
    assert floats_equal(exp, exp, tol)


def test_tolerance_is_abs_plus_rel() -> None:
    tol = Tolerance(abs=1e-6, rel=1e-6)
    assert floats_equal(100.0, 100.0 + 1e-4, tol)
    assert not floats_equal(100.0, 100.0 + 1e-3, tol)
    assert diff_messages(wrappers_pb2.FloatValue(value=1.0), wrappers_pb2.FloatValue(value=1.0000001), tol=tol) == []


def test_every_difference_is_reported_with_a_path() -> None:
    exp = descriptor_pb2.FileDescriptorProto(name="a.proto", dependency=["x", "y"],
                                             message_type=[{"name": "M", "field": [{"name": "f", "number": 1}]}])
    got = descriptor_pb2.FileDescriptorProto(name="b.proto", dependency=["x"],
                                             message_type=[{"name": "M", "field": [{"name": "f", "number": 2}]}])
    assert diff_messages(exp, got) == [
        ("name", '"a.proto"', '"b.proto"'),
        ("dependency.count", "2", "1"),
        ("message_type[0].field[0].number", "1", "2"),
    ]


def test_presence_set_versus_unset() -> None:
    # proto2 optional: set to the default value differs from unset.
    assert diff_messages(descriptor_pb2.FieldDescriptorProto(number=0), descriptor_pb2.FieldDescriptorProto()) == [
        ("number", "0", "<unset>")]


def test_maps_compare_by_key_not_order() -> None:
    a = struct_pb2.Struct()
    a.update({"x": 1, "y": "two"})
    b = struct_pb2.Struct()
    b.update({"y": "two", "x": 1})
    assert diff_messages(a, b) == []
    b.update({"x": 3, "z": True})
    assert diff_messages(a, b) == [('fields["x"].number_value', "1.0", "3.0"), ('fields["z"]', "<missing>", "<set>")]


def test_oneof_member_difference() -> None:
    assert diff_messages(struct_pb2.Value(string_value=""), struct_pb2.Value(bool_value=False)) == [
        ("string_value", '""', "<unset>"), ("bool_value", "<unset>", "false")]


def test_unknown_fields_are_compared() -> None:
    a, b = wrappers_pb2.Int32Value(), wrappers_pb2.Int32Value()
    b.MergeFromString(b"\x18\x05")
    assert diff_messages(a, b) == [("<unknown fields>", "[]", "[3:varint:5]")]


def test_render_matches_the_contract() -> None:
    assert [render(x) for x in ("é\n", b"\x00\xff", 0.1, math.inf, -math.inf, True, 7)] == [
        '"é\\n"', "AP8=", "0.1", "inf", "-inf", "true", "7"]
    f = wrappers_pb2.FloatValue(value=0.1).value
    assert (render(f), render(f, float32=True)) == ("0.10000000149011612", "0.1")


def test_float32_fields_render_at_float32_precision() -> None:
    assert diff_messages(wrappers_pb2.FloatValue(value=0.1), wrappers_pb2.FloatValue(value=0.2)) == [
        ("value", "0.1", "0.2")]


def test_extensions_are_compared(seed_gen) -> None:
    from google.protobuf import descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    pool = descriptor_pool.Default()
    cls = GetMessageClass(pool.FindMessageTypeByName("shapes.legacy.Legacy"))
    note, marks = pool.FindExtensionByName("shapes.legacy.note"), pool.FindExtensionByName("shapes.legacy.marks")
    a, b = cls(id="x"), cls(id="x")
    a.Extensions[note] = "signed"
    a.Extensions[marks].extend([1, 2])
    b.Extensions[marks].extend([1, 3])
    assert diff_messages(a, b) == [("[shapes.legacy.note]", '"signed"', "<unset>"), ("[shapes.legacy.marks][1]", "2", "3")]
    b.Extensions[note] = "signed"
    b.Extensions[marks][1] = 2
    assert diff_messages(a, b) == []


def test_positive_zero_keeps_the_tolerance() -> None:
    """A computed -1.2e-16 may stand for an expected 0.0 under a tolerance (never for -0.0)."""
    tol = Tolerance(abs=1e-6)
    assert floats_equal(0.0, -1.2e-16, tol) and floats_equal(1.2e-16, 0.0, tol)
    assert not floats_equal(0.0, -1.2e-16, Tolerance())


def _packed_struct(*entries: dict) -> any_pb2.Any:
    """An Any carrying a Struct whose map entries are serialized in the order given (concatenated
    messages merge): the same value, different bytes."""
    value = b"".join(struct_pb2.Struct(fields={k: struct_pb2.Value(string_value=v) for k, v in e.items()})
                     .SerializeToString() for e in entries)
    return any_pb2.Any(type_url="type.googleapis.com/google.protobuf.Struct", value=value)


def test_any_is_compared_by_what_it_carries_not_by_its_bytes() -> None:
    # a map's entries come in any order on the wire, so an Any's bytes are not canonical (found by
    # grpc-interop fuzz: grpc-go and Python packed the same Struct differently)
    exp, got = _packed_struct({"a": "1"}, {"b": "2"}), _packed_struct({"b": "2"}, {"a": "1"})
    assert exp.value != got.value
    assert diff_messages(exp, got) == []
    wrong = _packed_struct({"b": "3"}, {"a": "1"})
    assert diff_messages(exp, wrong) == [('value.fields["b"].string_value', '"2"', '"3"')]


def test_any_of_different_or_unknown_types_is_compared_field_by_field() -> None:
    exp = _packed_struct({"a": "1"})
    other = any_pb2.Any(type_url="type.googleapis.com/google.protobuf.Duration", value=exp.value)
    assert [p for p, _, _ in diff_messages(exp, other)] == ["type_url"]
    unknown = any_pb2.Any(type_url="type.googleapis.com/no.such.Type", value=b"\x08\x01")
    unknown2 = any_pb2.Any(type_url="type.googleapis.com/no.such.Type", value=b"\x08\x02")
    assert [p for p, _, _ in diff_messages(unknown, unknown2)] == ["value"]
