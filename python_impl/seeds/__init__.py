"""The seed services: deterministic versions of the tutorial services (docs/seeds.md).

Generated code is looked up when a servicer is made, never imported here, so this package imports
without any generated code and serves whichever seed protos a proto set actually contains.

The seeds are no longer registered on their own: the generic server (python_impl.generic) registers
one servicer per service and falls back to these for calls whose case is not in its catalogue
(docs/peer-contract.md, contract v2).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from python_impl.seeds import hello, indicator, indicator_graph, position, route_guide, users

# full service name -> servicer(gen): the seed servicer object, or None when its proto is absent
SEED_SERVICES: dict[str, Callable[[ModuleType], Any]] = {
    position.SERVICE: position.servicer,
    route_guide.SERVICE: route_guide.servicer,
    hello.SERVICE: hello.servicer,
    users.SERVICE: users.servicer,
    indicator.SERVICE: indicator.servicer,
    indicator_graph.SERVICE: indicator_graph.servicer,
}


def seed_servicers(gen: ModuleType) -> dict[str, Any]:
    """The seed servicers whose proto is in `gen`, by full service name."""
    out = {}
    for name, make in SEED_SERVICES.items():
        s = make(gen)
        if s is not None:
            out[name] = s
    return out
