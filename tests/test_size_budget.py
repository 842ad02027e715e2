"""Generated values stay within a size budget (values.MESSAGE_BUDGET, well below the 4 MiB default
receive limit of both languages) however deep the repeated fields nest; only the size-limit cases
are made to cross the limit. The tree proto is loaded into a private descriptor pool, so this runs
in the unit-test process beside the seed protos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass

from harness.cases import generate as casegen
from harness.cases.values import MANY, MESSAGE_BUDGET
from python_impl import bulk

TREE = Path(__file__).resolve().parent / "data" / "size_protos" / "tree"
RECV_LIMIT = 4 * 1024 * 1024
SIZE_CASES = ("near_size_limit", "request_over_limit", "response_over_limit")


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pool.DescriptorPool:
    out = tmp_path_factory.mktemp("tree") / "tree.pb"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{TREE}", f"--descriptor_set_out={out}",
                    "tree.proto"], check=True)
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(f)
    return pool


@pytest.fixture(scope="module")
def value_cases(forest) -> list:
    return [c for m in forest.FindServiceByName("sizes.tree.Forest").methods for c in casegen.value_cases(m)]


def _wire_sizes(pool: descriptor_pool.DescriptorPool, case) -> list[int]:
    call = case.calls[0]
    sizes = []
    for type_name, values in ((call.request_type, call.requests),
                              (call.response_type, call.expect.get("responses") or [])):
        cls = GetMessageClass(pool.FindMessageTypeByName(type_name))
        sizes += [bulk.parse(v, cls()).ByteSize() for v in values]  # size cases: @repeat specs
    return sizes


def test_every_generated_value_of_a_deep_repeated_tree_stays_within_the_budget(forest, value_cases) -> None:
    assert MESSAGE_BUDGET <= RECV_LIMIT // 4  # the documented bound, well below the receive limit
    cases = value_cases
    assert {c.name.rsplit("/", 1)[1] for c in cases} >= {"typical", "repeated_many", "long_strings"}
    for case in cases:
        sizes = _wire_sizes(forest, case)
        assert sizes and max(sizes) <= MESSAGE_BUDGET, (case.name, max(sizes))


def test_the_patterns_keep_their_intent_under_the_budget(value_cases) -> None:
    by_name = {c.name: c for c in value_cases}
    many = by_name["sizes.tree.Forest/Plant/Level0/repeated_many"].calls[0].requests[0]
    # many elements at the top level, each still carrying its own fields, and nested levels below
    assert len(many["left"]) == len(many["right"]) == len(many["notes"]) == MANY
    assert all(e["name"] for e in many["left"] + many["right"])
    assert any(e.get("left") for e in many["left"])
    typical = by_name["sizes.tree.Forest/Plant/Level0/typical"].calls[0].requests[0]
    assert len(typical["left"]) == 2 and len(typical["left"][0]["left"]) == 2  # small shapes are untouched
    long_strings = by_name["sizes.tree.Forest/Plant/Level0/long_strings"].calls[0].requests[0]
    assert len(long_strings["name"]) > 20_000


def test_only_the_size_limit_cases_cross_the_budget(forest, value_cases) -> None:
    service = forest.FindServiceByName("sizes.tree.Forest")
    cases = value_cases + [c for m in service.methods for c in casegen.stream_cases(m)]
    cases += [c for c in casegen.protocol_cases(service) if not c.calls[0].raw]  # raw: unimplemented paths
    over = {c.name.rsplit("/", 1)[1] for c in cases if max(_wire_sizes(forest, c), default=0) > MESSAGE_BUDGET}
    assert "near_size_limit" in over and over <= set(SIZE_CASES)
