"""Run profiles (issue 19 item 4): how much of the catalogue a run takes.

- `quick` (pre-commit, pull requests): one value case per method and streaming mode, each protocol
  essential once per streaming mode, the TLS / mTLS / call-credential channel
  cases, the standard services' essentials, and the connection cases that end within seconds; every
  direction. The keepalive case is left to `full`: grpc-go's 10 s ping floor makes it take 20-31 s.
- `full`: every case (the default).
- `deep`: `full` with `--channel all` (every case over TLS and mTLS too) and a fuzz pass with a
  budget (harness/fuzz) after the run.
"""

from __future__ import annotations

from harness.cases import channels, connection, model, standard, wire

PROFILES = ("quick", "full", "deep")
DEFAULT = "full"
# deep: the channel mode of its run, and the fuzz pass's time budget in seconds
DEEP_CHANNEL = "all"
DEEP_FUZZ_BUDGET_S = 120.0

# What every method-level protocol contract needs once per streaming mode: a status with details,
# metadata both ways, compression both ways, a deadline, a cancellation, an error mid-stream, and
# an unknown method.
ESSENTIALS = ("protocol/status_not_found", "protocol/rich_error_details", "protocol/metadata_echo",
              "protocol/gzip_request", "protocol/gzip_response", "protocol/unimplemented_method",
              "stream/deadline_exceeded", "stream/cancel_before_first_message", "stream/error")
# the standard services' essentials: overall health, and listing the services over both reflections
STANDARD = ("Check/standard/overall", "ServerReflectionInfo/standard/list_services")
# connection cases that end within seconds (the keepalive one takes up to 31 s)
CONNECTION = ("connection/max_age_in_flight", "connection/server_restart")
# what a case's third name part says it is, when it is not a value case
_KINDS = {"protocol", "stream", "standard", "tls", "mtls", "connection", "wire"}


def _tail(case: model.Case) -> str:
    return "/".join(case.name.split("/")[2:])


def is_value_case(case: model.Case) -> bool:
    """A case that carries values (seeds, or generated from a message's fields), over plaintext."""
    parts = case.name.split("/")
    return len(parts) > 2 and parts[2] not in _KINDS and case.channel is None


def quick(cases: list[model.Case], also: set[str] | frozenset[str] = frozenset()) -> list[model.Case]:
    """The quick profile's cases, in the catalogue's order (a kept case's control comes with it), and
    the cases named in `also` (the capabilities' probes: harness/run/runner.py prepare)."""
    keep: set[str] = set(also)
    values: set[tuple[str, str]] = set()
    essentials: set[tuple[str, str]] = set()  # (streaming mode, essential): the first case of each
    for c in cases:
        mode, tail = c.calls[0].streaming, _tail(c)
        if is_value_case(c) and (c.method, mode) not in values:
            values.add((c.method, mode))
            keep.add(c.name)
        if tail in ESSENTIALS and (mode, tail) not in essentials:
            essentials.add((mode, tail))
            keep.add(c.name)
    for c in cases:
        tail = _tail(c)
        if c.source == channels.SOURCE \
                or (c.source == standard.SOURCE and any(c.name.endswith(s) for s in STANDARD)) \
                or (c.source == connection.SOURCE and tail in CONNECTION) \
                or (c.source == wire.SOURCE and c.name.rsplit("/", 1)[1] in wire.QUICK):
            keep.add(c.name)
    keep |= {c.control for c in cases if c.name in keep and c.control}
    return [c for c in cases if c.name in keep]


def apply(profile: str, cases: list[model.Case], also: set[str] | frozenset[str] = frozenset()) -> list[model.Case]:
    """The profile's cases of a prepared catalogue (quick keeps the cases named in `also` too)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    return quick(cases, also) if profile == "quick" else cases


def channel_mode(profile: str, asked: str | None) -> str | None:
    """The --channel a profile runs with: deep's unless one was asked for."""
    return asked if asked is not None or profile != "deep" else DEEP_CHANNEL
