"""The Python seed services: pure logic (docs/seeds.md formulas) and every method over a real channel."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import struct
import uuid
import zlib
from pathlib import Path

import grpc
import pytest

from python_impl.seeds import hello, market, route_guide, users
from python_impl.seeds.indicator import macd_rows

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 10  # seconds, on every RPC


# ---------------------------------------------------------------- pure logic

def test_splitmix64_reference_value():
    assert market.mix(0) == 0xE220A8397B1DCDAF
    assert all(0 <= market.mix(d) < 2**64 for d in (-1, 1, 19723, 2**63))


def test_prices_follow_the_formulas():
    d = market.day_number(dt.date(2024, 1, 2))
    assert d == 19724
    assert market.open_cents(d) == market.close_cents(d - 1)
    assert market.high_cents(d) >= max(market.open_cents(d), market.close_cents(d))
    assert market.low_cents(d) <= min(market.open_cents(d), market.close_cents(d))
    expected = 9500 + abs(d % 80 - 40) * 25 + market.mix(d) % 401 - 200
    assert market.close_cents(d) == expected


def test_trading_days_skip_weekends():
    days = market.trading_days("2024-01-01", "2024-01-14")  # Mon .. Sun, two weeks
    assert len(days) == 10
    assert all(d.weekday() < 5 for d in days)
    assert market.trading_days("2024-01-06", "2024-01-07") == []  # a weekend only
    assert market.trading_days("2024-01-01", "2024-01-01") == [dt.date(2024, 1, 1)]


@pytest.mark.parametrize("start,end,message", [
    ("2024-1-01", "2024-01-02", 'start_date: cannot parse "2024-1-01" as YYYY-MM-DD'),
    ("20240101", "2024-01-02", 'start_date: cannot parse "20240101" as YYYY-MM-DD'),
    ("2024-01-01", "2024-02-30", 'end_date: cannot parse "2024-02-30" as YYYY-MM-DD'),
    ("2024-01-01", "", 'end_date: cannot parse "" as YYYY-MM-DD'),
    ("2024-01-02", "2024-01-01", "end_date is before start_date"),
    ("2023-01-01", "2024-01-03", "range spans more than 366 days"),
])
def test_bad_date_ranges(start, end, message):
    with pytest.raises(market.DateRangeError) as e:
        market.trading_days(start, end)
    assert str(e.value) == message


def test_range_of_exactly_366_days_is_allowed():
    assert market.trading_days("2024-01-01", "2025-01-01")


def test_macd_of_a_constant_series_is_zero():
    assert market.macd_histogram([95.0] * 40) == [0.0] * 40
    assert market.macd_histogram([]) == []


def test_macd_first_value_is_zero_and_rising_prices_give_positive_histogram():
    hist = market.macd_histogram([float(i) for i in range(1, 10)])
    assert hist[0] == 0.0
    assert all(h > 0 for h in hist[1:])


def _bar(close: int, open_: int) -> market.Bar:
    return market.Bar("2024-01-01", open_, close, max(open_, close), min(open_, close))


def test_bmp_headers_and_layout():
    chart = [_bar(100, 50), _bar(200, 300), _bar(150, 150)]
    data = market.bmp_chart(chart)
    width, height = 12, 100
    rowsize = (3 * width + 3) // 4 * 4
    assert len(data) == 54 + rowsize * height
    magic, size, r1, r2, offset = struct.unpack_from("<2sIHHI", data, 0)
    assert (magic, size, r1, r2, offset) == (b"BM", len(data), 0, 0, 54)
    assert struct.unpack_from("<IiiHHIIiiII", data, 14) == (
        40, width, height, 1, 24, 0, rowsize * height, 2835, 2835, 0, 0)

    def pixel(x: int, row_from_bottom: int) -> bytes:
        at = 54 + row_from_bottom * rowsize + 3 * x
        return data[at:at + 3]

    assert market.bar_heights([100, 200, 150]) == [1, 99, 50]
    assert pixel(0, 0) == bytes((0, 160, 0))       # close >= open: green, B G R order
    assert pixel(0, 1) == bytes((255, 255, 255))   # above the 1-pixel bar
    assert pixel(3, 0) == bytes((255, 255, 255))   # gap column
    assert pixel(6, 98) == bytes((0, 0, 200))      # close < open: red
    assert pixel(6, 99) == bytes((255, 255, 255))
    assert pixel(10, 49) == bytes((0, 160, 0)) and pixel(10, 50) == bytes((255, 255, 255))


def test_bmp_row_padding():
    # 4 columns per day make 3W a multiple of 4, so the specified rows never need padding;
    # check the formula itself on widths that would.
    assert [(3 * w + 3) // 4 * 4 for w in (1, 2, 3, 4, 5)] == [4, 8, 12, 12, 16]
    data = market.bmp_chart([_bar(100, 100)])
    assert len(data) == 54 + 12 * 100
    assert market.bmp_chart([]) == b""


def test_equal_closes_give_one_pixel_bars():
    assert market.bar_heights([500, 500]) == [1, 1]


def test_chunks():
    assert [len(c) for c in market.chunks(bytes(2500))] == [1024, 1024, 452]
    assert market.chunks(b"") == []


def test_haversine():
    assert route_guide.haversine(409146138, -746188906, 409146138, -746188906) == 0.0
    # one degree of longitude on the equator: R * pi / 180
    assert route_guide.haversine(0, 0, 0, 10_000_000) == pytest.approx(111194.93, abs=1.0)
    # one degree of latitude is the same arc along a meridian
    assert route_guide.haversine(0, 0, 10_000_000, 0) == pytest.approx(111194.93, abs=1.0)


def test_route_summary():
    pts = [(0, 0), (0, 10_000_000), (0, 10_000_000)]
    assert route_guide.route_summary(pts, {(0, 10_000_000)}) == (3, 2, 111195, 2)
    assert route_guide.route_summary([], set()) == (0, 0, 0, 0)


def test_rectangle_corners_in_any_order():
    assert route_guide.in_rect(5, 5, (10, 0), (0, 10))
    assert route_guide.in_rect(10, 0, (10, 0), (0, 10))
    assert not route_guide.in_rect(11, 5, (10, 0), (0, 10))


def test_lots_of_replies_splits_on_ascii_space_only():
    assert hello.split_words("  a  b\tc\u00a0d ") == ["a", "b\tc\u00a0d"]
    assert hello.split_words("") == []
    assert hello.join_greetings([]) == "hello "
    assert hello.join_greetings(["a", "", "b"]) == "hello a, , b"


def test_echo_metadata_filter():
    md = [("user-agent", "x"), ("grpc-accept-encoding", "gzip"), (":authority", "h"), ("te", "trailers"),
          ("content-type", "application/grpc"), ("interop-case", "c"), ("interop-session", "s"),
          ("ip", "1"), ("k-bin", b"\x00"), ("ip", "2")]
    assert users.echo_metadata(md) == [("echo-ip", "1"), ("echo-k-bin", b"\x00"), ("echo-ip", "2")]


def test_user_id_is_crc32():
    assert users.user_id("123456789") == 0xCBF43926  # the CRC-32/IEEE check value
    assert users.user_id("é") == zlib.crc32("é".encode())


def test_route_guide_db_is_well_formed():
    db = route_guide.load_db_json()
    assert db and all(f["name"] for f in db)
    locations = [(f["location"]["latitude"], f["location"]["longitude"]) for f in db]
    assert len(set(locations)) == len(locations)


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def gen():
    from harness.protoset.codegen import generate_python, import_python
    from harness.protoset import discover

    return import_python(generate_python(discover(REPO / "protos")))


@pytest.fixture(scope="module")
def pb(gen):
    import importlib

    names = ["position", "route_guide", "hello", "users", "indicator", "indicator_graph"]
    mods = {}
    for n in names:
        mods[n] = importlib.import_module(f"{gen.__name__}.{n}_pb2")
        mods[n + "_grpc"] = importlib.import_module(f"{gen.__name__}.{n}_pb2_grpc")
    return mods


@pytest.fixture(scope="module")
def channel(gen):
    from python_impl.server import serve

    server, port = serve(gen)
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
    grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
    yield ch
    ch.close()
    server.stop(grace=0).wait()


def md(case: str = "test", session: str | None = None, extra=()) -> list[tuple[str, str | bytes]]:
    return [("interop-case", case), ("interop-session", session or uuid.uuid4().hex), *extra]


def code_and_message(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


def test_health_and_reflection(channel):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    for name in ["", "routeguide.RouteGuide", "idc.IndicatorGraph", "posXYZ.PositionService"]:
        resp = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING

    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    (resp,) = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                        timeout=TIMEOUT)
    names = {s.name for s in resp.list_services_response.service}
    assert {"posXYZ.PositionService", "routeguide.RouteGuide", "tutorial.HelloService", "users.Users",
            "idc.Indicator", "idc.IndicatorGraph", "grpc.health.v1.Health"} <= names


# -- Position

def test_position_walks_the_circle_per_session(channel, pb):
    p = pb["position"]
    stub = pb["position_grpc"].PositionServiceStub(channel)
    s1, s2 = md(session="a-" + uuid.uuid4().hex), md(session="b-" + uuid.uuid4().hex)

    def req(meta, msg="where"):
        return stub.PositionReq(p.Msg(msg=msg), metadata=meta, timeout=TIMEOUT)

    for n in range(3):
        r = req(s1)
        a = n * 5.0 * math.pi / 180.0
        want = p.Position(position=p.Pos(x=math.cos(a), y=math.sin(a), z=0), status=0, msg="character position")
        assert r == want
    r = req(s2)  # a new session starts at n = 0
    assert (r.position.x, r.position.y) == (1.0, 0.0)
    r = req(s1)
    assert r.position.y == struct.unpack("<f", struct.pack("<f", math.sin(15 * math.pi / 180.0)))[0]


def test_position_last_and_pub(channel, pb):
    p = pb["position"]
    stub = pb["position_grpc"].PositionServiceStub(channel)
    s1, s2 = md(session=uuid.uuid4().hex), md(session=uuid.uuid4().hex)

    code, msg = code_and_message(lambda: stub.PositionReq(p.Msg(msg="last"), metadata=s1, timeout=TIMEOUT))
    assert (code, msg) == (grpc.StatusCode.NOT_FOUND, "no position published in this session")

    first = p.Position(position=p.Pos(x=1.5, y=-2.25, z=3), status=7, msg="one")
    second = p.Position(position=p.Pos(x=0.1, y=0.2, z=0.3), status=-1, msg="two")
    assert stub.PositionPub(first, metadata=s1, timeout=TIMEOUT) == p.Msg(status=1, msg="stored")
    assert stub.PositionPub(second, metadata=s1, timeout=TIMEOUT) == p.Msg(status=2, msg="stored")
    assert stub.PositionReq(p.Msg(msg="last"), metadata=s1, timeout=TIMEOUT) == second
    # "last" does not advance the walk
    assert stub.PositionReq(p.Msg(msg="x"), metadata=s1, timeout=TIMEOUT).position.x == 1.0
    # the other session saw nothing
    code, _ = code_and_message(lambda: stub.PositionReq(p.Msg(msg="last"), metadata=s2, timeout=TIMEOUT))
    assert code == grpc.StatusCode.NOT_FOUND
    assert stub.PositionPub(first, metadata=s2, timeout=TIMEOUT).status == 1


# -- RouteGuide

@pytest.fixture(scope="module")
def db():
    return route_guide.load_db_json()


def test_get_feature(channel, pb, db):
    rg = pb["route_guide"]
    stub = pb["route_guide_grpc"].RouteGuideStub(channel)
    for f in db[:5]:
        loc = f["location"]
        got = stub.GetFeature(rg.Point(latitude=loc["latitude"], longitude=loc["longitude"]),
                              metadata=md(), timeout=TIMEOUT)
        assert got.name == f["name"]
        assert (got.location.latitude, got.location.longitude) == (loc["latitude"], loc["longitude"])
    missing = rg.Point(latitude=1, longitude=2)
    assert stub.GetFeature(missing, metadata=md(), timeout=TIMEOUT) == rg.Feature(name="", location=missing)


def test_list_features(channel, pb, db):
    rg = pb["route_guide"]
    stub = pb["route_guide_grpc"].RouteGuideStub(channel)
    lo, hi = (400000000, -750000000), (420000000, -730000000)
    want = [f["name"] for f in db
            if route_guide.in_rect(f["location"]["latitude"], f["location"]["longitude"], lo, hi)]
    assert want
    # corners swapped: the rectangle is the same
    rect = rg.Rectangle(lo=rg.Point(latitude=hi[0], longitude=lo[1]), hi=rg.Point(latitude=lo[0], longitude=hi[1]))
    got = [f.name for f in stub.ListFeatures(rect, metadata=md(), timeout=TIMEOUT)]
    assert got == want
    empty = rg.Rectangle(lo=rg.Point(latitude=1, longitude=1), hi=rg.Point(latitude=2, longitude=2))
    assert list(stub.ListFeatures(empty, metadata=md(), timeout=TIMEOUT)) == []


def test_record_route(channel, pb, db):
    rg = pb["route_guide"]
    stub = pb["route_guide_grpc"].RouteGuideStub(channel)
    pts = [(f["location"]["latitude"], f["location"]["longitude"]) for f in db[:3]]
    pts += [pts[0], (1, 2)]
    total = sum(route_guide.haversine(*a, *b) for a, b in zip(pts, pts[1:]))
    got = stub.RecordRoute(iter([rg.Point(latitude=a, longitude=b) for a, b in pts]),
                           metadata=md(), timeout=TIMEOUT)
    assert got == rg.RouteSummary(point_count=5, feature_count=4, distance=math.floor(total + 0.5), elapsed_time=4)
    assert stub.RecordRoute(iter([]), metadata=md(), timeout=TIMEOUT) == rg.RouteSummary()


def test_route_chat(channel, pb):
    rg = pb["route_guide"]
    stub = pb["route_guide_grpc"].RouteGuideStub(channel)

    def note(lat, msg):
        return rg.RouteNote(location=rg.Point(latitude=lat, longitude=0), message=msg)

    notes = [note(1, "a"), note(2, "b"), note(1, "c"), note(1, "d"), note(2, "e")]
    got = [n.message for n in stub.RouteChat(iter(notes), metadata=md(), timeout=TIMEOUT)]
    assert got == ["a", "a", "c", "b"]


# -- HelloService

def test_hello_unary_and_server_stream(channel, pb):
    h = pb["hello"]
    stub = pb["hello_grpc"].HelloServiceStub(channel)
    assert stub.SayHello(h.HelloRequest(greeting="world"), metadata=md(), timeout=TIMEOUT).reply == "hello world"
    got = [r.reply for r in stub.LotsOfReplies(h.HelloRequest(greeting=" a  b\tc "), metadata=md(), timeout=TIMEOUT)]
    assert got == ["hello a", "hello b\tc"]
    assert list(stub.LotsOfReplies(h.HelloRequest(greeting=""), metadata=md(), timeout=TIMEOUT)) == []


def test_hello_client_stream(channel, pb):
    h = pb["hello"]
    stub = pb["hello_grpc"].HelloServiceStub(channel)
    reqs = [h.HelloRequest(greeting=g) for g in ("a", "", "b")]
    assert stub.LotsOfGreetings(iter(reqs), metadata=md(), timeout=TIMEOUT).reply == "hello a, , b"
    assert stub.LotsOfGreetings(iter([]), metadata=md(), timeout=TIMEOUT).reply == "hello "


def test_hello_bidi_is_ping_pong(channel, pb):
    import queue

    h = pb["hello"]
    stub = pb["hello_grpc"].HelloServiceStub(channel)
    outbox: queue.Queue = queue.Queue()
    call = stub.BidiHello(iter(outbox.get, None), metadata=md(), timeout=TIMEOUT)
    for g in ("x", "y z"):  # the next request is sent only after its answer arrived
        outbox.put(h.HelloRequest(greeting=g))
        assert next(call).reply == "hello " + g
    outbox.put(None)
    assert list(call) == []


# -- Users

def test_create_user_and_metadata_echo(channel, pb):
    u = pb["users"]
    stub = pb["users_grpc"].UsersStub(channel)
    extra = [("ip", "127.0.0.1"), ("multi", "1"), ("multi", "2"), ("trace-bin", b"\x00\xff\x10")]
    resp, call = stub.CreateUser.with_call(u.CreateUserRequest(username="alice", password="p", email="e"),
                                           metadata=md(extra=extra), timeout=TIMEOUT)
    assert resp == u.CreateUserResult(user=u.User(username="alice", user_id=zlib.crc32(b"alice")))
    headers = [(k, v) for k, v in call.initial_metadata() if k.startswith("echo-")]
    assert headers == [("echo-ip", "127.0.0.1"), ("echo-multi", "1"), ("echo-multi", "2"),
                       ("echo-trace-bin", b"\x00\xff\x10")]


def test_create_user_empty_name(channel, pb):
    u = pb["users"]
    stub = pb["users_grpc"].UsersStub(channel)
    code, msg = code_and_message(lambda: stub.CreateUser(u.CreateUserRequest(), metadata=md(), timeout=TIMEOUT))
    assert (code, msg) == (grpc.StatusCode.INVALID_ARGUMENT, "username must not be empty")


def test_get_users(channel, pb):
    u = pb["users"]
    stub = pb["users_grpc"].UsersStub(channel)
    users_in = [u.User(username="a", user_id=1), u.User(), u.User(username="ü", user_id=2**32 - 1)]
    got = [r.user for r in stub.GetUsers(u.GetUsersRequest(user=users_in), metadata=md(), timeout=TIMEOUT)]
    assert got == users_in


# -- Indicator / IndicatorGraph

def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_get_macd(channel, pb):
    i = pb["indicator"]
    stub = pb["indicator_grpc"].IndicatorStub(channel)
    resp = stub.GetMACD(i.MACDRequest(start_date="2024-01-01", end_date="2024-01-14"), metadata=md(), timeout=TIMEOUT)
    days = market.trading_days("2024-01-01", "2024-01-14")
    assert [m.date for m in resp.macd] == [d.isoformat() for d in days]
    closes = [market.close_cents(market.day_number(d)) / 100.0 for d in days]
    assert [m.close for m in resp.macd] == [_f32(c) for c in closes]
    assert [m.macd for m in resp.macd] == [_f32(x) for x in market.macd_histogram(closes)]
    assert resp.macd[0].macd == 0.0
    first = market.day_number(days[0])
    assert resp.macd[0].open == _f32(market.close_cents(first - 1) / 100.0)
    assert resp.macd[0].high == _f32(market.high_cents(first) / 100.0)
    assert resp.macd[0].low == _f32(market.low_cents(first) / 100.0)
    weekend = stub.GetMACD(i.MACDRequest(start_date="2024-01-06", end_date="2024-01-07"), metadata=md(),
                           timeout=TIMEOUT)
    assert list(weekend.macd) == []


@pytest.mark.parametrize("start,end,message", [
    ("bad", "2024-01-01", 'start_date: cannot parse "bad" as YYYY-MM-DD'),
    ("2024-01-02", "2024-01-01", "end_date is before start_date"),
    ("2022-01-01", "2024-01-01", "range spans more than 366 days"),
])
def test_indicator_errors(channel, pb, start, end, message):
    i, g = pb["indicator"], pb["indicator_graph"]
    stub = pb["indicator_grpc"].IndicatorStub(channel)
    gstub = pb["indicator_graph_grpc"].IndicatorGraphStub(channel)
    got = code_and_message(lambda: stub.GetMACD(i.MACDRequest(start_date=start, end_date=end),
                                                metadata=md(), timeout=TIMEOUT))
    assert got == (grpc.StatusCode.INVALID_ARGUMENT, message)
    got = code_and_message(lambda: list(gstub.GetMACDGraph(g.MACDGraphRequest(start_date=start, end_date=end),
                                                           metadata=md(), timeout=TIMEOUT)))
    assert got == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_get_macd_graph(channel, pb):
    g = pb["indicator_graph"]
    stub = pb["indicator_graph_grpc"].IndicatorGraphStub(channel)
    chunks = [r.macd_chunk for r in stub.GetMACDGraph(
        g.MACDGraphRequest(start_date="2024-01-01", end_date="2024-01-31"), metadata=md(), timeout=TIMEOUT)]
    data = b"".join(chunks)
    assert all(len(c) == 1024 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 1024
    days = 23  # trading days in January 2024
    assert len(data) == 54 + 12 * days * 100
    assert hashlib.sha256(data).digest() == hashlib.sha256(
        market.bmp_chart(market.bars(market.trading_days("2024-01-01", "2024-01-31")))).digest()
    assert list(stub.GetMACDGraph(g.MACDGraphRequest(start_date="2024-01-06", end_date="2024-01-07"),
                                  metadata=md(), timeout=TIMEOUT)) == []


def test_macd_rows_match_served_fields():
    rows = macd_rows("2024-01-01", "2024-01-05")
    assert [r["date"] for r in rows] == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]


def test_cli_handshake_and_clean_stop():
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "harness.engines.python_peer", "serve", "--protos", str(REPO / "protos"),
                             "--addr", "127.0.0.1:0"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING 127.0.0.1:"), line
        port = int(line.split(":")[1])
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT,
                                                        wait_for_ready=True)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0
        assert proc.stdout.read() == ""  # the handshake is the only stdout line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
