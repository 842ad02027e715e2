"""Proto files the runtimes already register, recognised by their exact import paths.

The well-known types are the files protobuf itself ships (the set grpcio-tools bundles beside its
protoc, grpc_tools/_proto): google/protobuf/timestamp.proto, any.proto, … Another file kept under
google/protobuf/ (protobuf's own test_messages_proto3.proto, say) is an ordinary file of the set.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def well_known() -> frozenset[str]:
    """The import paths of the well-known types and protobuf's other bundled files."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    return frozenset(p.relative_to(include).as_posix() for p in include.rglob("*.proto"))


def is_well_known(file_name: str) -> bool:
    return file_name in well_known()
