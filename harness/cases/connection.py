"""Connection behaviour cases (issue 10 item 4), for any proto set: keepalive pings against a
server's enforcement policy, a maximum connection age passing while a call is in flight, and a
server that goes away and comes back.

Each case names a `channel` whose `listener` is one of the servers' connection listeners
(python_impl/listeners.py, go_peer/internal/engine/connection.go). The calls go to the standard
health service, which every server serves with the real library implementation whatever the set
holds: the behaviour tested is the connection's, not a method's, and one set of three cases per
run keeps the slow one (keepalive) single. They are named `grpc.health.v1.Health/<method>/
connection/<pattern>`; docs/peer-contract.md, "Connection behaviour (issue 10 item 4)", says what
each client reports.
"""

from __future__ import annotations

from harness.cases.model import DEFAULT_TIMEOUT_MS, Call, Case
from harness.protoset import ProtoSet
from python_impl.connection import HOLD_KEY, LISTENER_TRAILER, NEW_CONNECTION_KEY, RESTART_KEY
from python_impl.standard import HEALTH

SOURCE = "connection behaviour (harness/cases/connection.py)"
PREFIX = "connection/"

# keepalive: the client asks for a ping every second; grpc-go raises any keepalive time under 10 s
# to 10 s (its floor), grpcio pings every second. The listener allows one ping a minute. Measured
# (docs/peer-contract.md): a grpcio client is cut off after 2-4 s, a grpc-go one after 20 s by a
# grpcio server and 31 s by a grpc-go one (its BDP ping on the first answer counts as a ping). The
# Watch is held for up to HELD_MS (its deadline): a client still in the call then was never cut
# off, and sees DEADLINE_EXCEEDED instead of UNAVAILABLE. The runner starts these cases first, so
# that they overlap the others (harness/run/runner.py, Session._run).
KEEPALIVE_TIME_MS = 1_000
HELD_MS = 55_000
# max_age: the server holds the call well past the connection's age (about 1 s), within its grace (10 s).
IN_FLIGHT_MS = 3_000
# restart: the server goes away when the first call arrives and holds that call RESTART_HOLD_MS, so
# that its GOAWAY is out before the answer (else the next call could still reach the old connection);
# it is gone for RESTART_MS, and the client's next call waits for it to come back.
RESTART_MS = 500
RESTART_HOLD_MS = 200

_SERVING = [{"status": "SERVING"}]


def _health(method: str, expect: dict, timeout_ms: int = DEFAULT_TIMEOUT_MS, **kw: object) -> Call:
    streaming = "server_stream" if method == "Watch" else "unary"
    return Call(method=f"{HEALTH}/{method}", streaming=streaming, request_type="grpc.health.v1.HealthCheckRequest",
                response_type="grpc.health.v1.HealthCheckResponse", requests=[{}], expect=expect,
                timeout_ms=timeout_ms, **kw)  # type: ignore[arg-type]


# grpcio and grpc-go clients quote the GOAWAY's debug data; a grpcio server ends the calls with its
# own message first (docs/peer-contract.md, "Connection behaviour")
TOO_MANY_PINGS = ["too_many_pings", "Too many pings"]


def generate(ps: ProtoSet | None = None, skip: set[str] | frozenset[str] = frozenset()) -> list[Case]:
    """The three cases; the same for every set (they need only the standard health service)."""
    def ok(listener: str) -> dict:
        """Answered SERVING by that listener (its trailer): not by one where nothing ages or restarts."""
        return {"status": "OK", "responses": _SERVING, "trailers": {LISTENER_TRAILER: [listener]}}

    new_connection = {NEW_CONNECTION_KEY: ["1"]}
    # a call that waits for a connection gives up sooner: a harness interrupted while it waits for a
    # server that is gone waits for it too (its Go client batch), and must end within seconds
    waiting = DEFAULT_TIMEOUT_MS // 2
    return [
        # Pings too often for the server's policy: while the Watch is held (it answered SERVING and
        # waits for a change), the server ends the connection with GOAWAY ENHANCE_YOUR_CALM
        # "too_many_pings"; then the next call reconnects.
        Case(f"{HEALTH}/Watch/{PREFIX}keepalive_too_many_pings", source=SOURCE,
             channel={"listener": "keepalive", "keepalive_time_ms": KEEPALIVE_TIME_MS},
             calls=[_health("Watch", {"status": "UNAVAILABLE", "responses": _SERVING,
                                      # the GOAWAY's reason, as each library reports it (never another
                                      # UNAVAILABLE: a keepalive timeout, a restart)
                                      "message_contains": TOO_MANY_PINGS}, timeout_ms=HELD_MS),
                    _health("Check", ok("keepalive"), waiting, metadata=new_connection, wait_for_ready=True)]),
        # The connection's age passes while the server holds the call: a graceful GOAWAY, and the
        # call (its HTTP/2 stream) still ends OK with its response; the next call comes on a new
        # connection.
        Case(f"{HEALTH}/Check/{PREFIX}max_age_in_flight", source=SOURCE, channel={"listener": "max_age"},
             calls=[_health("Check", ok("max_age"), metadata={HOLD_KEY: [str(IN_FLIGHT_MS)]}),
                    _health("Check", ok("max_age"), metadata=new_connection)]),
        # The server goes away during the first call (GOAWAY, the call still ends OK), is gone for
        # RESTART_MS and listens again on the same port: the next call waits for it and succeeds.
        Case(f"{HEALTH}/Check/{PREFIX}server_restart", source=SOURCE, channel={"listener": "restart"},
             calls=[_health("Check", ok("restart"), metadata={RESTART_KEY: [str(RESTART_MS)],
                                                             HOLD_KEY: [str(RESTART_HOLD_MS)]}),
                    _health("Check", ok("restart"), waiting, metadata=new_connection, wait_for_ready=True)]),
    ]
