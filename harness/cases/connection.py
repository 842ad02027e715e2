"""Connection behaviour cases (issue 10 item 4), derived from any proto set: keepalive pings against
a server's enforcement policy, a maximum connection age passing in the middle of a stream, and a
server that goes away and comes back.

Each case names a `channel` whose `listener` is one of the servers' connection listeners
(python_impl/connection.py, go_peer/internal/engine/connection.go). All three go through one method
of the set, the first server_stream one if there is one (a stream held open by the server's
`delay_ms`), else the first bidi, unary or client_stream one: the behaviour is the connection's,
not the method's. Named `<svc>/<method>/connection/<pattern>`; docs/peer-contract.md, "Connection
behaviour (issue 10 item 4)", says what each client reports.
"""

from __future__ import annotations

from google.protobuf.descriptor import MethodDescriptor

from harness.cases.model import Call, Case, streaming_mode
from harness.cases.values import build, to_json
from harness.protoset import ProtoSet
from python_impl.connection import NEW_CONNECTION_KEY, RESTART_KEY

SOURCE = "connection behaviour (harness/cases/connection.py)"
PREFIX = "connection/"
_PREFERENCE = ("server_stream", "bidi", "unary", "client_stream")

# keepalive: the client asks for a ping every second; grpc-go raises any keepalive time under 10 s
# to 10 s (its floor), grpcio pings every second. The listener allows one ping a minute, so a grpcio
# client is cut off after 3-5 s and a grpc-go one after 30-41 s (measured: its 4th ping against a
# grpc-go server, whose strike limit is fixed; its 3rd or 4th against grpcio, which once forgot a
# strike). The stream is held for up to HELD_MS: a client still in the call then was never cut off,
# and sees OK instead of UNAVAILABLE. The runner starts these cases first, so that they overlap the
# others (harness/run/runner.py, Session._run).
KEEPALIVE_TIME_MS = 1_000
HELD_MS = 55_000
# max_age: the stream runs well past the connection's age (about 1 s), within its grace (10 s).
MID_STREAM_MS = 2_500
# restart: the server is gone for this long, and the client's next call waits for it to come back.
RESTART_MS = 500


def pick_method(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset()) -> MethodDescriptor | None:
    """The method the connection cases go through, or None for a set with no method."""
    from harness.cases.generate import services

    methods = [m for svc in services(ps, skip) for m in svc.methods]
    for mode in _PREFERENCE:
        for m in methods:
            if streaming_mode(m) == mode:
                return m
    return None


def generate(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset()) -> list[Case]:
    m = pick_method(ps, skip)
    return [] if m is None else cases_for(m)


def cases_for(m: MethodDescriptor) -> list[Case]:
    name = f"{m.containing_service.full_name}/{m.name}/{PREFIX}"
    request, response = to_json(build(m.input_type, "typical")), to_json(build(m.output_type, "typical"))

    def call(expect: dict, timeout_ms: int = 10_000, **kw: object) -> Call:
        bidi = {"bidi": "half_duplex"} if streaming_mode(m) == "bidi" else {}
        return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=streaming_mode(m),
                    request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                    requests=[request], expect=expect, timeout_ms=timeout_ms, **bidi, **kw)  # type: ignore[arg-type]

    ok = {"status": "OK", "responses": [response]}
    new_connection = {NEW_CONNECTION_KEY: ["1"]}
    return [
        # Pings too often for the server's policy: the server ends the connection with GOAWAY
        # ENHANCE_YOUR_CALM "too_many_pings" while the stream is held (the server would answer OK
        # after HELD_MS; the client must not get there), then the next call reconnects.
        Case(name + "keepalive_too_many_pings", source=SOURCE,
             channel={"listener": "keepalive", "keepalive_time_ms": KEEPALIVE_TIME_MS},
             calls=[call({"status": "UNAVAILABLE", "responses": []}, timeout_ms=HELD_MS + 10_000,
                         server={"delay_ms": HELD_MS, "status": "OK"}),
                    call(ok, metadata=new_connection, wait_for_ready=True)]),
        # The connection's age passes while the stream is held: a graceful GOAWAY, and the stream
        # still ends OK with its response; the next call comes on a new connection.
        Case(name + "max_age_mid_stream", source=SOURCE, channel={"listener": "max_age"},
             calls=[call(ok, server={"delay_ms": MID_STREAM_MS}),
                    call(ok, metadata=new_connection)]),
        # The server goes away during the first call (GOAWAY, the call still ends OK), is gone for
        # RESTART_MS and listens again on the same port: the next call waits for it and succeeds.
        Case(name + "server_restart", source=SOURCE, channel={"listener": "restart"},
             calls=[call(ok, metadata={RESTART_KEY: [str(RESTART_MS)]}),
                    call(ok, metadata=new_connection, wait_for_ready=True)]),
    ]

