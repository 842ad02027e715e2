"""The seed services: deterministic versions of the tutorial services (docs/seeds.md).

Generated code is looked up at registration time, never imported here, so this package imports
without any generated code and serves whichever seed protos a proto set actually contains.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import grpc

from python_impl.seeds import hello, indicator, indicator_graph, position, route_guide, users

Register = Callable[[grpc.Server, ModuleType], list[str]]

# full service name -> register(server, gen) returning the service names it added
SEED_SERVICES: dict[str, Register] = {
    position.SERVICE: position.register,
    route_guide.SERVICE: route_guide.register,
    hello.SERVICE: hello.register,
    users.SERVICE: users.register,
    indicator.SERVICE: indicator.register,
    indicator_graph.SERVICE: indicator_graph.register,
}


def register_all(server: grpc.Server, gen: ModuleType) -> list[str]:
    """Register every seed whose proto is in `gen`; returns the full names of the services added."""
    names: list[str] = []
    for register in SEED_SERVICES.values():
        names += register(server, gen)
    return names
