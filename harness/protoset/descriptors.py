"""What protoc makes of a proto set: its parsed descriptors, the files a set of targets imports, and
the set's files that a runtime registers already. Below discovery (harness/protoset/__init__.py,
which asks for imports) and code generation (codegen.py), which both build on it."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

from harness import cache
from harness.protoset import googleapis, runtime
from harness.protoset.model import ProtoSet


class CodegenError(Exception):
    """Code generation failed; the message names the proto file and what to do."""


def _protoc(args: list[str], what: str, own_first: bool = False) -> None:
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    # the googleapis common protos come before the user's folder: their installed originals win
    # over copies there (harness/protoset/googleapis.py), which discover() leaves out of the set.
    # own_first: the user's folders first, to read their copies of the well-known types as written
    bundled = [f"-I{include}", f"-I{googleapis.include_dir(cache.root())}"]
    argv = ["grpc_tools.protoc", *(args if own_first else bundled), *(bundled if own_first else args)]
    # protoc writes its diagnostics to fd 2 directly; run it in a child to capture them.
    proc = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", *argv[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CodegenError(f"protoc failed generating {what}:\n{proc.stderr.strip()}\n(fix the .proto file named above)")


def descriptor_set(ps: ProtoSet) -> descriptor_pb2.FileDescriptorSet:
    """The proto set as protoc parsed it (with imports), cached beside the generated code."""
    path = cache.root() / "gen" / ps.digest[:20] / "descriptors.pb"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".descriptors.{os.getpid()}.pb")
        _protoc([*ps.include_args(), f"--descriptor_set_out={tmp}", "--include_imports", *ps.files],
                f"descriptors for {ps.label}")
        tmp.replace(path)
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def imports_of(includes: list[str], targets: list[str]) -> set[str]:
    """Every file the targets import, transitively (protoc's parse): what --files must still compile."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "imports.pb"
        _protoc([*includes, f"--descriptor_set_out={out}", "--include_imports", *targets],
                f"descriptors for {', '.join(targets)}")
        return {f.name for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}


def own_copies(ps: ProtoSet, rels: list[str]) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The set's copies of well-known type files as the user wrote them. protoc's bundled copies come
    first on the include path, so descriptor_set() holds those: a differing copy looked identical
    there and was replaced without a word."""
    if not rels:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "own.pb"
        _protoc([*ps.include_args(), f"--descriptor_set_out={out}", *rels],
                f"descriptors for your copies of {', '.join(rels)}", own_first=True)
        return {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}


def stood_in_files(ps: ProtoSet) -> list[runtime.StoodIn]:
    """The set's copies of runtime-registered files whose content differs (runtime.stood_in)."""
    try:
        own = own_copies(ps, [rel for rel in ps.files if runtime.is_well_known(rel)])
    except CodegenError:  # a copy that does not compile alone: the bundled file is used, as before
        own = {}
    try:
        compiled = {f.name: f for f in descriptor_set(ps).file}
    except CodegenError as e:
        if not own:
            raise
        # a file that needs what only the user's copy declares: say why protoc did not see it
        raise CodegenError(f"{e}\nprotoc compiles the well-known types it bundles (the ones Python and Go "
                           f"register), never your copies of them: {', '.join(sorted(own))}. A file that needs "
                           "what only your copy declares cannot be tested: move those parts to a file of your "
                           "own package") from None
    compiled.update(own)
    return runtime.stood_in(ps.files, compiled, {rel: ps.path(rel) for rel in ps.files}, cache.root())


def registered_files(ps: ProtoSet) -> dict[str, runtime.Registered]:
    """The set's files that a runtime registers already, identical (a differing copy is an error)."""
    return _registered(ps, ps.digest)


@functools.cache  # per set and content: codegen, casegen and the engines ask several times
def _registered(ps: ProtoSet, digest: str) -> dict[str, runtime.Registered]:
    compiled = {f.name: f for f in descriptor_set(ps).file}
    return runtime.registered(ps.files, compiled, {rel: ps.path(rel) for rel in ps.files}, cache.root())
