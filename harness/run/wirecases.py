"""Running the misbehaving-peer cases (harness/cases/wire.py, docs/wire.md) in a direction whose
two sides are the same library: a server script's case is sent by the direction's client to a raw
HTTP/2 server of its own (harness/wire/server.py), listening for that case alone, so that no other
case shares its connection; a client script's case is played by the raw client
(harness/wire/client.py) toward the direction's server. Every result carries the raw peer's frame
log in its notes ("frames"), so a failure or a known divergence shows the frames that caused it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.cases import wire
from harness.cases.model import Case
from harness.wire import client as raw_client
from harness.wire.server import WireServer
from python_impl.contract import Diff, Result

# cases at once: each server script is one client batch (a Go client: a process or a container)
CONCURRENCY = 4


def run(session: Any, d: Any, cases: list[Case]) -> list[Result]:
    """The cases' results in their order. `session`: the runner's Session (its server, its
    client-engine exchange and its progress hooks); `d`: the direction."""
    with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="interop-wire") as pool:
        return list(pool.map(lambda c: _one(session, d, c), cases))


def _one(session: Any, d: Any, case: Case) -> Result:
    script = wire.script_of(case.name)
    if isinstance(script, wire.ServerScript):
        with WireServer(script) as server:
            result = session._exchange(d, [case], {"plaintext": server.address})[0]
        result.notes["frames"] = server.log.text()
        return result
    assert isinstance(script, wire.ClientScript)
    session._started(d, case)
    start = time.monotonic()
    try:
        out = raw_client.send(script, session.server(d.server).address, case.name)
    except OSError as e:
        result = Result(case.name, d.name, "error", [Diff(0, "error", "a connection to the server", str(e))])
    else:
        diffs = raw_client.check(script, out)
        result = Result(case.name, d.name, "fail" if diffs else "pass", diffs,
                        notes={"frames": out.log.text()})
    result.duration_ms = (time.monotonic() - start) * 1000
    return session._ended(d, case, result)
