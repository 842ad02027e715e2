"""Descriptor sources for the probe (stand-in until probego's version is merged; same names).

`from_protos(dir)` parses a proto folder with the harness's protoc; `Schema` puts the files into the
default descriptor pool (the fuzz strategies build well-known types from the runtime's own classes, so
the user's types must live beside them) and lists the methods to probe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

from harness.protoset import descriptors, discover

STANDARD_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                     "grpc.reflection.v1.ServerReflection")


def from_protos(folder: str | Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptors.descriptor_set(discover(folder))


@dataclass
class Schema:
    fds: descriptor_pb2.FileDescriptorSet
    pool: descriptor_pool.DescriptorPool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = descriptor_pool.Default()
        for fdp in self.fds.file:
            try:
                have = self.pool.FindFileByName(fdp.name)
            except KeyError:
                self.pool.Add(fdp)
                continue
            mine = descriptor_pb2.FileDescriptorProto()
            have.CopyToProto(mine)
            if mine.package != fdp.package or sorted(m.name for m in mine.message_type) != sorted(
                    m.name for m in fdp.message_type):
                raise ValueError(f"{fdp.name}: another file of that name is already loaded in this process; "
                                 f"probe one proto set per process")

    def services(self) -> list[str]:
        """Full names of the services the files declare (standard ones included)."""
        return sorted({f"{fdp.package + '.' if fdp.package else ''}{s.name}" for fdp in self.fds.file
                       for s in fdp.service})

    def methods(self) -> list[MethodDescriptor]:
        out = []
        for name in self.services():
            svc = self.pool.FindServiceByName(name)
            out += list(svc.methods)
        return out
