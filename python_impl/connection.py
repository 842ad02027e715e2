"""Connection behaviour (docs/peer-contract.md, "Connection behaviour (issue 10 item 4)"): the
client's channel options for a case's `channel` object, and the keys and policies of the server
listeners that the cases test (the listeners themselves: python_impl/listeners.py):

- `keepalive`: a strict ping enforcement policy, so a client pinging too often gets a GOAWAY
  `too_many_pings`;
- `max_age`: a short maximum connection age with a grace period long enough for a stream in flight;
- `restart`: a server that goes away (GOAWAY, no new connections) when a call carrying
  `interop-restart-ms: N` arrives, closes once that call has ended, and listens again on the same
  port N ms later.

Each listener is a server of its own (grpc Core takes these settings per server, not per port),
serving the same services as the plaintext one. On every listener of this module, a call carrying
`interop-new-connection: 1` must arrive on another connection than the case's previous call (the
peer address differs), else it is refused with FAILED_PRECONDITION: that is how a case proves that a
GOAWAY or a restart really replaced the connection. A call carrying `interop-hold-ms: N` is held N ms
(or until it ends) before the service answers it: a call in flight while the connection ages. These
work on any method, so the cases use the standard health service (harness/cases/connection.py).
"""

from __future__ import annotations

from typing import Any

RESTART_KEY = "interop-restart-ms"
NEW_CONNECTION_KEY = "interop-new-connection"
# every answer of a connection listener carries its name: a case proves which listener served it (a
# client on another listener, where nothing ages or restarts, would pass the rest)
LISTENER_TRAILER = "x-interop-listener"
HOLD_KEY = "interop-hold-ms"  # the listener holds the call this long before the service answers it

# The enforcement policy of the `keepalive` listener: pings closer than a minute apart are strikes,
# and too many strikes end the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings"; no pings
# without a call. grpc-go's limit is fixed (maxPingStrikes 2: the third strike); grpcio's is set to
# 1 (the second strike), which cuts a grpc-go client (one ping every 10 s at most) off after 20 s
# instead of 30 s. grpc Core also forgets its strikes whenever it writes on the connection.
KEEPALIVE_MIN_PING_INTERVAL_MS = 60_000
KEEPALIVE_MAX_PING_STRIKES = 1
# The `max_age` listener: connections get a graceful GOAWAY after about a second (both libraries add
# up to ±10 % jitter), and calls in flight then have 10 s to finish.
MAX_AGE_MS = 1_000
MAX_AGE_GRACE_MS = 10_000
# How long a restarting server waits for its calls in flight before it closes.
RESTART_GRACE_S = 5.0

SERVER_OPTIONS: dict[str, list[tuple[str, Any]]] = {
    "keepalive": [("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MIN_PING_INTERVAL_MS),
                  ("grpc.http2.max_ping_strikes", KEEPALIVE_MAX_PING_STRIKES),
                  ("grpc.keepalive_permit_without_calls", 0)],
    "max_age": [("grpc.max_connection_age_ms", MAX_AGE_MS), ("grpc.max_connection_age_grace_ms", MAX_AGE_GRACE_MS)],
    "restart": [],
}
LISTENERS = tuple(SERVER_OPTIONS)

# Channel keys this module reads (besides `listener`): grpc Core argument each one sets.
CLIENT_KEYS = {"keepalive_time_ms": "grpc.keepalive_time_ms", "keepalive_timeout_ms": "grpc.keepalive_timeout_ms",
                "keepalive_permit_without_calls": "grpc.keepalive_permit_without_calls"}


def client_options(channel: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The grpc Core channel arguments a case's channel object adds (keepalive); the connection
    itself is opened by python_impl/channels.py."""
    options = []
    for key, arg in CLIENT_KEYS.items():
        if channel and key in channel:
            options.append((arg, int(channel[key])))
    if channel and "keepalive_time_ms" in channel:
        # Core sends at most 2 pings while it sends no data (grpc.http2.max_pings_without_data), so a
        # client waiting on a quiet stream would stop pinging before any policy could be broken;
        # grpc-go has no such limit. 0 lifts it, so both clients ping at their keepalive time.
        options.append(("grpc.http2.max_pings_without_data", 0))
    return options
