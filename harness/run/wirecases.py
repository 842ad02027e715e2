"""Running the misbehaving-peer cases (harness/cases/wire.py, docs/wire.md) in a direction whose
two sides are the same library: a server script's case is sent by the direction's client to a raw
HTTP/2 server of its own (harness/wire/server.py), listening for that case alone, so that no other
case shares its connection; a client script's case is played by the raw client
(harness/wire/client.py) toward the direction's server. Every result carries the raw peer's frame
log in its notes ("frames"), so a failure or a known divergence shows the frames that caused it."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
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
    if session.stopping.is_set():  # interrupted: no new raw peer and no new Go client for it
        raise RuntimeError(f"{d.name} {case.name}: the run was interrupted before it started")
    script = wire.script_of(case.name)
    if isinstance(script, wire.ServerScript):
        with WireServer(script) as server:
            target = {"plaintext": server.address}
            result = (_at_once(session, d, case, target, script.hold_ms) if script.at_once
                      else session._exchange(d, [case], target)[0])
        result.notes["frames"] = server.log.text()
        if server.refused:  # the client broke an HTTP/2 rule the script sets (a stream past the limit …)
            result.diffs += [Diff(0, "wire.client_frames", "frames within the HTTP/2 rules the raw server set",
                                  e) for e in server.refused]
            result.verdict = "fail" if result.verdict == "pass" else result.verdict
        return result
    assert isinstance(script, wire.ClientScript), case.name
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


def _at_once(session: Any, d: Any, case: Case, target: dict[str, str], hold_ms: int) -> Result:
    """The case's calls sent at once on one connection: each as a case of its own (`<case>#<i>`) in
    one client batch whose concurrency is the number of calls; one result, each diff naming its call.
    Each answer is held `hold_ms`: calls that queue behind one another make the last wait for all."""
    parts = [replace(case, name=f"{case.name}#{i}", calls=[call]) for i, call in enumerate(case.calls)]
    # a copy of the session with room for every call at once; its progress hooks stay quiet (the
    # parts are no cases of the run) and the case is reported as a whole below
    batch = copy.copy(session)
    batch.concurrency, batch.events, batch.on_launch, batch.windows = len(parts), None, None, {}
    session._started(d, case)
    start = time.monotonic()
    results = batch._exchange(d, parts, target)
    diffs = [replace(diff, call=i) for i, r in enumerate(results) for diff in r.diffs]
    # Calls sent one by one never meet the stream limit, and end OK as well: the last call's wait
    # shows they were in flight at once (measured, ten calls held 100 ms each: the longest 1.06 s to
    # 1.09 s in all three clients at once, 0.11 s to 0.12 s one by one). Half the holds is asked: a
    # loaded machine may start a call's thread late, which shortens its wait
    longest, least = max((r.duration_ms for r in results), default=0.0), len(parts) * hold_ms // 2
    if longest < least:
        diffs.append(Diff(len(parts) - 1, "wire.at_once", f"the last of {len(parts)} calls sent at once waiting "
                          f"for the others: at least {least} ms", f"the longest call took {longest:.0f} ms"))
    verdicts = {r.verdict for r in results}
    verdict = "error" if "error" in verdicts else "fail" if diffs or verdicts != {"pass"} else "pass"
    result = Result(case.name, d.name, verdict, diffs, (time.monotonic() - start) * 1000)
    return session._ended(d, case, result)
