"""The protocol dimensions the fuzzer draws, one module each (`harness.fuzz.dims.<name>`).

A dimension module defines `calls(m) -> SearchStrategy[Call]`: ordinary calls (the case format) that
the generic engines run in every direction and judge like any case; and optionally `applies(m) ->
bool` (default: every method), for a dimension that needs, say, a stream; and optionally
`tag(call) -> str` (default ""): a word the case name carries (`…/fuzz/<dimension>/<tag>/s…`), so a
known divergence can match the drawn calls it is about and no others. Modules are loaded by name,
so a new dimension is one new file plus its name here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import Call

NAMES = ("values", "metadata", "deadlines", "compression", "status", "handlers", "cancel", "wire", "json")


class DimensionError(ValueError):
    """A dimension named on the command line is unknown or its module is missing."""


def module(name: str) -> ModuleType:
    if name not in NAMES:
        raise DimensionError(f"unknown fuzz dimension {name!r}; the dimensions are {', '.join(NAMES)}")
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise DimensionError(f"fuzz dimension {name!r} has no module harness/fuzz/dims/{name}.py in this "
                             "install; leave it out of --dimensions") from None


def strategy(name: str) -> Callable[[MethodDescriptor], st.SearchStrategy[Call]]:
    return module(name).calls  # type: ignore[no-any-return]


def applies(name: str, m: MethodDescriptor) -> bool:
    check = getattr(module(name), "applies", None)
    return True if check is None else bool(check(m))


def available() -> tuple[str, ...]:
    """The dimensions of NAMES whose module this install has."""
    out = []
    for n in NAMES:
        try:
            module(n)
        except DimensionError:
            continue
        out.append(n)
    return tuple(out)


def tag(name: str, call: Call) -> str:
    make = getattr(module(name), "tag", None)
    return "" if make is None else str(make(call))


def channel(name: str, call: Call) -> dict[str, Any] | None:
    """The `channel` of the case a drawn call makes (a dimension's optional `channel(call)`; None: the
    shared plaintext connection), e.g. a connection of its own for a call that breaks it."""
    make = getattr(module(name), "channel", None)
    return None if make is None else make(call)


def parse(text: str | None) -> tuple[str, ...]:
    """`--dimensions a,b` as a tuple of names, each checked to load (a missing one is an error);
    None or empty: every dimension this install has (available())."""
    if not text:
        return available()
    seen: list[str] = []
    for n in (n.strip() for n in text.split(",")):
        if n:
            module(n)
            if n not in seen:
                seen.append(n)
    if not seen:
        raise DimensionError(f"--dimensions names no dimension; the dimensions are {', '.join(NAMES)}")
    return tuple(seen)
