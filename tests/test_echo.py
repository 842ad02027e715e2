"""Protos with no services are exercised too: each top-level message of such a file goes across
languages through a synthetic echo service the harness generates in the build folder
(harness/protoset/echo.py), unary and bidi. The real runs are in tests/test_any_protos.py (the new
user's folder, with two types-only files, green in every direction)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from harness.protoset.echo import carried, echo_path, echo_proto

REPO = Path(__file__).resolve().parent.parent
NEWUSER = REPO / "tests" / "data" / "newuser_protos"


def cases(protos: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "cases", "--protos", str(protos)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t")[0] for line in proc.stdout.splitlines()]


def test_every_top_level_message_of_a_types_only_file_gets_unary_and_bidi_echo_cases(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(NEWUSER, protos)
    before = sorted(p.relative_to(protos) for p in protos.rglob("*"))
    names = cases(protos)
    for service, messages in (("common.interop_echo.MoneyEcho", ("Money", "Item")),
                              ("shop.status.interop_echo.StatusEcho", ("State", "Receipt"))):
        for m in messages:
            assert f"{service}/{m}/{m}/typical" in names
            assert f"{service}/{m}Bidi/stream/ping_pong" in names
    assert not [n for n in names if n.startswith(("shop.v1.interop_echo", "acme.books.v1.interop_echo"))]
    assert sorted(p.relative_to(protos) for p in protos.rglob("*")) == before  # nothing written there
    # a message added to the types-only file is picked up on the next run
    money = protos / "common" / "money.proto"
    money.write_text(money.read_text() + "\nmessage Coin { int32 cents = 1; }\n")
    assert "common.interop_echo.MoneyEcho/Coin/Coin/typical" in cases(protos)


def test_the_echo_file_imports_the_users_file_and_says_it_is_the_harnesss() -> None:
    f = descriptor_pb2.FileDescriptorProto(name="events/order-events.proto", package="shop.events")
    f.message_type.add(name="Placed")
    f.message_type.add(name="PlacedBidi")
    text = echo_proto(f)
    assert text is not None and echo_path(f.name) == "interop_echo/events/order-events_echo.proto"
    assert "package shop.events.interop_echo;" in text and 'import "events/order-events.proto";' in text
    assert "service OrderEventsEcho {" in text
    assert "rpc Placed(.shop.events.Placed) returns (.shop.events.Placed);" in text
    assert "rpc PlacedBidi(stream .shop.events.Placed) returns (stream .shop.events.Placed);" in text
    assert "rpc PlacedBidi_(.shop.events.PlacedBidi) returns (.shop.events.PlacedBidi);" in text  # no clash
    nopkg = descriptor_pb2.FileDescriptorProto(name="1st.proto")
    nopkg.message_type.add(name="Ping")
    assert "package interop_echo;" in echo_proto(nopkg) and "service F1stEcho" in echo_proto(nopkg)
    assert "rpc Ping(.Ping) returns (.Ping);" in echo_proto(nopkg)
    with_service = descriptor_pb2.FileDescriptorProto(name="s.proto", package="p")
    with_service.message_type.add(name="A").field.add(name="b", number=1, type_name=".p.B")
    with_service.message_type.add(name="B")
    with_service.message_type.add(name="Stored")  # no method carries it: it travels in files and queues
    with_service.service.add(name="S").method.add(name="Get", input_type=".p.A", output_type=".p.A")
    assert carried([with_service]) == {".p.A", ".p.B"}
    text = echo_proto(with_service, carried([with_service]))
    assert "rpc Stored(.p.Stored) returns (.p.Stored);" in text and "rpc A(" not in text and "rpc B(" not in text
    with_service.service[0].method.add(name="Put", input_type=".p.Stored", output_type=".p.A")
    assert echo_proto(with_service, carried([with_service])) is None  # every message is carried
    assert echo_proto(descriptor_pb2.FileDescriptorProto(name="enums_only.proto")) is None
