"""Helpers shared by the seed services: metadata lookup, findings logging, generated-module lookup."""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

import grpc

log = logging.getLogger("python_impl.seeds")


def metadata_value(context: grpc.ServicerContext, key: str) -> str:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return item.value if isinstance(item.value, str) else item.value.decode("utf-8", "replace")
    return ""


def session(context: grpc.ServicerContext) -> str:
    return metadata_value(context, "interop-session")


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    """Log the finding with the case prefix the peer contract asks for, then end the RPC."""
    log.info("[%s] %s: %s", metadata_value(context, "interop-case"), code.name, message)
    context.abort(code, message)


def proto_module(gen: ModuleType, name: str, service: str) -> tuple[ModuleType, ModuleType] | None:
    """(`<name>_pb2`, `<name>_pb2_grpc`) of the generated package if it defines `service`, else None.

    A proto set may lack a seed file, or hold a different file of the same name; either way the
    seed is simply not served rather than registered against the wrong messages.
    """
    try:
        pb2 = importlib.import_module(f"{gen.__name__}.{name}_pb2")
        pb2_grpc = importlib.import_module(f"{gen.__name__}.{name}_pb2_grpc")
    except ModuleNotFoundError:
        return None
    package, _, short = service.rpartition(".")
    desc = pb2.DESCRIPTOR
    if desc.package != package or short not in desc.services_by_name:
        return None
    return pb2, pb2_grpc
