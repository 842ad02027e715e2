"""`grpc-interop compat`: is a new revision of a proto set compatible with an old one, on the wire?

Two verdicts side by side, per method, field and enum value:

- static: `harness.wirediff` compares the descriptors (WIRE and WIRE_JSON rules);
- wire: the old and the new revision are built in both languages, and the cross-revision pairs
  really talk: new Python client → old Go server, old Python client → new Go server, new Go client →
  old Python server, old Go client → new Python server.

How a wire verdict is reached. Every message is generated (harness.cases.generate value patterns) in the
revision that SENDS it: requests in the client's revision, responses in the server's. The receiver's
expectation is the sender's value *translated* into the receiver's revision by meaning: fields by
name (a same-number field with another name when the name is gone), enum values by name, values
only where the receiver's type holds the very same value. Whatever cannot be translated is left out
of the expectation and remembered. The receiver decodes what arrived with its own generated code and
reports every difference, with the unknown fields it kept (the generic engines, docs/peer-contract.md:
the server in its `interop-server-diffs-bin` trailer, the client in its result). Each difference is
attributed back to the sender's field: "sent 42 as field 2 (varint); the receiver's string quantity
stayed unset, field 2 arrived as an unknown field". A field is compatible only when a real exchange
carried its value and the receiver decoded exactly that value.

One Python process can hold one proto set, so the Python peers of each revision run as processes
(`python -m harness.engines.python_peer serve|client`); this process only reads both
revisions' descriptors through private descriptor pools.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor as FD
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from harness.cases import generate as casegen
from harness.cases.model import Call, Case
from harness.protoset.codegen import CodegenError, build_go, load
from harness.engines.peer import (READY_TIMEOUT, GoServer, PeerError, _read_line, output_lines, run_go_client,
                                  select_runner, stop_process, wait_healthy)
from harness.protoset import discover
from harness.cases.values import INT_RANGE, to_json
from harness.compat.wirediff import BREAKING, CAVEAT, OK, WIRE_TYPE_NAMES, Finding, Revision, diff, mode, type_name, wire_type
from python_impl.compare import render
from python_impl.contract import Result

# Value patterns that are not compatibility questions: a known grpcio/grpc-go divergence.
SKIP_PATTERNS = {"deep_recursion_150"}
TIMEOUT_MS = 10_000
MODE_TIMEOUT_MS = 3_000  # streaming-mode mismatches can leave a call hanging until its deadline


class CompatError(ValueError):
    """compat cannot run as asked (bad base, bad allow-list)."""


# ---------------------------------------------------------------- the base revision

def resolve_base(base: str, protos: Path, scratch: Path) -> Path:
    """A directory as it is, or the protos folder as it was at a git ref (extracted with git archive)."""
    as_dir = Path(base)
    if as_dir.is_dir():
        return as_dir.resolve()
    protos = protos.resolve()
    try:
        top = subprocess.run(["git", "-C", str(protos), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        raise CompatError(f"--base {base!r} is not a directory, and {protos} is not in a git repository "
                          "to read a ref from") from None
    rel = protos.relative_to(Path(top).resolve()).as_posix()
    tar = scratch / "base.tar"
    proc = subprocess.run(["git", "-C", top, "archive", "--format=tar", f"--output={tar}", base, "--",
                           rel if rel != "." else "."], capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompatError(f"--base {base!r}: git archive of {rel} at that ref failed: {proc.stderr.strip()}")
    out = scratch / "base"
    with tarfile.open(tar) as t:
        t.extractall(out, filter="data")
    folder = out / rel if rel != "." else out
    if not folder.is_dir():
        raise CompatError(f"--base {base!r}: {rel} does not exist at that ref")
    return folder.resolve()


# ---------------------------------------------------------------- translation by meaning

@dataclass
class Node:
    """One field the sender set, and what the receiver should see for it."""
    s_type: str            # the sender's message type
    s_fd: FD
    r_fd: FD | None        # the receiver's field of the same meaning, if any
    r_path: str | None     # its path in the receiver's message, spelled like the engines' diff paths
    parent: str            # the receiver path of the containing message ("" = the message itself)
    value: str             # the sender's value, rendered
    enum_names: tuple[str, ...] = ()   # sender enum value names carried (for enum value items)
    r_parent: Descriptor | None = None  # the receiver's containing message type
    kept: bool = False     # the receiver's expectation holds the sender's value
    why: str = ""          # why not

    @property
    def field(self) -> str:
        return f"{self.s_type}.{self.s_fd.name}"


@dataclass
class Translation:
    nodes: list[Node] = field(default_factory=list)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_map(fd: FD) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def counterpart(fd: FD, s_desc: Descriptor, r_desc: Descriptor) -> FD | None:
    """The receiver's field with the same meaning: the same name, else the same number under a name
    the sender does not use (a rename)."""
    same = r_desc.fields_by_name.get(fd.name)
    if same is not None:
        return same
    by_num = r_desc.fields_by_number.get(fd.number)
    if by_num is not None and by_num.name not in s_desc.fields_by_name:
        return by_num
    return None


def _enum_label(enum: Any, number: int) -> str:
    v = enum.values_by_number.get(number)
    return f"{v.name} ({number})" if v is not None else f"{number} (no name)"


def _show(fd: FD, value: Any) -> str:
    if _is_map(fd):
        return f"{{{len(value)} entries}}"
    if fd.is_repeated:
        return f"[{len(value)} values]"
    if fd.type == FD.TYPE_MESSAGE:
        return "{" + fd.message_type.full_name + "}"
    if fd.type == FD.TYPE_ENUM:
        return _enum_label(fd.enum_type, value)
    text = render(value, fd.type == FD.TYPE_FLOAT)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(text)} chars)"


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def convert(s_fd: FD, value: Any, r_fd: FD) -> tuple[bool, Any]:
    """(True, the same value in the receiver's type) or (False, why it has none)."""
    st, rt = s_fd.type, r_fd.type
    rname = type_name(r_fd).removeprefix("repeated ")
    if rt == FD.TYPE_ENUM:
        r_enum = r_fd.enum_type
        if st == FD.TYPE_ENUM:
            sv = s_fd.enum_type.values_by_number.get(value)
            if sv is not None and sv.name in r_enum.values_by_name:
                return True, r_enum.values_by_name[sv.name].number
        elif st not in INT_RANGE and st != FD.TYPE_BOOL:
            return False, f"{_a(type_name(s_fd))} value has no {rname} form"
        number = int(value)
        if number in r_enum.values_by_number:
            return False, f"{number} means {r_enum.values_by_number[number].name} to the receiver"
        if not r_enum.is_closed:
            return True, number  # an unknown number, kept as it is by an open enum
        return False, f"{number} is not a value of the receiver's closed enum {r_enum.full_name}"
    if st == FD.TYPE_ENUM:
        value = int(value)
    if rt in INT_RANGE:
        if st not in INT_RANGE and st not in (FD.TYPE_ENUM, FD.TYPE_BOOL):
            return False, f"{_a(type_name(s_fd))} value has no {rname} form"
        lo, hi = INT_RANGE[rt]
        return (True, int(value)) if lo <= int(value) <= hi else (False, f"{value} is out of range for {rname}")
    if rt == FD.TYPE_BOOL:
        if st == FD.TYPE_BOOL:
            return True, value
        if st in INT_RANGE and value in (0, 1):
            return True, bool(value)
        return False, f"{value} has no bool form"
    if rt == FD.TYPE_STRING:
        if st == FD.TYPE_STRING:
            return True, value
        if st == FD.TYPE_BYTES:
            try:
                return True, value.decode("utf-8")
            except UnicodeDecodeError:
                return False, "the bytes are not UTF-8"
        return False, f"{_a(type_name(s_fd))} value has no string form"
    if rt == FD.TYPE_BYTES:
        if st == FD.TYPE_BYTES:
            return True, value
        if st == FD.TYPE_STRING:
            return True, value.encode("utf-8")
        return False, f"{_a(type_name(s_fd))} value has no bytes form"
    if rt in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE) and st in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        if rt == FD.TYPE_FLOAT and value == value and struct.unpack("<f", struct.pack("<f", value))[0] != value:
            return False, f"{value!r} has no exact float form"
        return True, value
    return False, f"{_a(type_name(s_fd))} value has no {rname} form"


def _copy(s_msg: Message, r_msg: Message, prefix: str, tr: Translation) -> None:
    s_desc, r_desc = s_msg.DESCRIPTOR, r_msg.DESCRIPTOR
    for fd, value in s_msg.ListFields():
        if fd.is_extension:
            continue
        r_fd = counterpart(fd, s_desc, r_desc)
        names: tuple[str, ...] = ()
        if fd.type == FD.TYPE_ENUM:
            numbers = value if fd.is_repeated else [value]
            names = tuple(fd.enum_type.values_by_number[n].name for n in numbers if n in fd.enum_type.values_by_number)
        node = Node(s_desc.full_name, fd, r_fd, _join(prefix, r_fd.name) if r_fd else None, prefix,
                    _show(fd, value), names, r_desc)
        tr.nodes.append(node)
        if r_fd is None:
            node.why = f"the receiver's {r_desc.full_name} has no field named {fd.name} or numbered {fd.number}"
            continue
        node.kept, node.why = _put(fd, value, r_fd, r_msg, node.r_path, tr)


def _put(fd: FD, value: Any, r_fd: FD, r_msg: Message, path: str, tr: Translation) -> tuple[bool, str]:
    if _is_map(fd) != _is_map(r_fd) or fd.is_repeated != r_fd.is_repeated:
        return False, f"{type_name(fd)} and {type_name(r_fd)} differ in cardinality"
    target = getattr(r_msg, r_fd.name)
    if _is_map(fd):
        sk, sv = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
        rk, rv = r_fd.message_type.fields_by_name["key"], r_fd.message_type.fields_by_name["value"]
        for k, v in value.items():
            ok, k2 = convert(sk, k, rk)
            if ok and sv.type == FD.TYPE_MESSAGE and rv.type == FD.TYPE_MESSAGE:
                _copy(v, target[k2], f"{path}[{render(k2)}]", tr)
                continue
            ok2, v2 = convert(sv, v, rv) if ok and FD.TYPE_MESSAGE not in (sv.type, rv.type) else (False, "types differ")
            if not (ok and ok2):
                r_msg.ClearField(r_fd.name)
                return False, k2 if not ok else v2
            target[k2] = v2
        return True, ""
    if fd.is_repeated:
        for i, v in enumerate(value):
            if fd.type == FD.TYPE_MESSAGE and r_fd.type == FD.TYPE_MESSAGE:
                _copy(v, target.add(), f"{path}[{i}]", tr)
                continue
            ok, v2 = convert(fd, v, r_fd) if FD.TYPE_MESSAGE not in (fd.type, r_fd.type) else (False, "types differ")
            if not ok:
                r_msg.ClearField(r_fd.name)
                return False, v2
            target.append(v2)
        return True, ""
    if fd.type == FD.TYPE_MESSAGE or r_fd.type == FD.TYPE_MESSAGE:
        if fd.type != r_fd.type:
            return False, f"{type_name(fd)} and {type_name(r_fd)} share no value"
        target.SetInParent()
        _copy(value, target, path, tr)
        return True, ""
    ok, v2 = convert(fd, value, r_fd)
    if not ok:
        return False, v2
    setattr(r_msg, r_fd.name, v2)
    return True, ""


def translate(value: Any, s_desc: Descriptor, s_rev: Revision, r_desc: Descriptor) -> tuple[Any, Translation]:
    """The sender's value (protobuf JSON of s_desc) as the receiver should decode it (JSON of r_desc)."""
    s_msg = json_format.ParseDict(value, GetMessageClass(s_desc)(), descriptor_pool=s_rev.pool)
    r_msg = GetMessageClass(r_desc)()
    tr = Translation()
    _copy(s_msg, r_msg, "", tr)
    return to_json(r_msg), tr


# ---------------------------------------------------------------- the exchanges

@dataclass(frozen=True)
class Direction:
    client_rev: str    # old | new
    client_lang: str   # py | go
    server_rev: str
    server_lang: str

    @property
    def label(self) -> str:
        return f"{self.client_rev} {self.client_lang} client → {self.server_rev} {self.server_lang} server"

    @property
    def slug(self) -> str:
        return f"{self.client_rev}{self.client_lang}-{self.server_rev}{self.server_lang}"


DIRECTIONS = (Direction("new", "py", "old", "go"), Direction("old", "py", "new", "go"),
              Direction("new", "go", "old", "py"), Direction("old", "go", "new", "py"))


@dataclass
class Exchange:
    """One case of a cross-revision run and what the harness knows about it."""
    case: str
    method: str         # pkg.Service/Method
    pattern: str
    kind: str           # value | mode | missing (the method is not in the server's revision)
    request: Translation | None = None
    response: Translation | None = None
    note: str = ""


@dataclass
class Plan:
    client_cases: list[Case]
    server_cases: list[Case]
    exchanges: dict[str, Exchange]


def _first(cases: list[Case], role: str) -> dict[str, Any]:
    out = {}
    for c in cases:
        pattern = c.name.rsplit("/", 1)[1]
        call = c.calls[0]
        out[pattern] = call.requests[0] if role == "request" else call.expect["responses"][0]
    return out


def _call(m: Any, n_req: int, req: Any, n_resp: int, resp: Any, timeout_ms: int = TIMEOUT_MS) -> Call:
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode(m),
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=[req] * n_req, expect={"status": "OK", "message": "", "responses": [resp] * n_resp},
                timeout_ms=timeout_ms)


def plan(client: Revision, server: Revision) -> Plan:
    """Cases for one (client revision, server revision) pair: the client's cases in its revision and
    the server's catalogue, the same case names, in the server's revision."""
    cm, sm = client.methods(), server.methods()
    client_cases, server_cases, exchanges = [], [], {}

    def add(name: str, method: str, pattern: str, kind: str, c_call: Call, s_call: Call | None, **kw: Any) -> None:
        client_cases.append(Case(name, [c_call], "compat"))
        if s_call is not None:
            server_cases.append(Case(name, [s_call], "compat"))
        exchanges[name] = Exchange(name, method, pattern, kind, **kw)

    for path, m in cm.items():
        base = f"{path}/compat"
        requests = _first(casegen.value_cases(m), "request")
        if path not in sm:
            own = _first(casegen.value_cases(m), "response")
            add(f"{base}/missing", path, "missing", "missing",
                _call(m, 1, requests["typical"], 1, own["typical"]), None)
            continue
        s = sm[path]
        responses = _first(casegen.value_cases(s), "response")
        patterns = [p for p in dict.fromkeys([*requests, *responses]) if p not in SKIP_PATTERNS]
        for p in patterns:
            req, resp = requests.get(p, requests["typical"]), responses.get(p, responses["typical"])
            req_s, req_tr = translate(req, m.input_type, client, s.input_type)
            resp_c, resp_tr = translate(resp, s.output_type, server, m.output_type)
            add(f"{base}/{p}", path, p, "value", _call(m, 1, req, 1, resp_c), _call(s, 1, req_s, 1, resp),
                request=req_tr, response=resp_tr)
        if mode(m) != mode(s):
            req, resp = requests["typical"], responses["typical"]
            req_s, req_tr = translate(req, m.input_type, client, s.input_type)
            resp_c, resp_tr = translate(resp, s.output_type, server, m.output_type)
            combos = [(3, 1)] if m.client_streaming else []
            combos += [(1, 0), (1, 3)] if s.server_streaming else []
            for n_req, n_resp in combos:
                note = (f"the {mode(m)} client sends {n_req} request(s); the {mode(s)} server answers "
                        f"{n_resp} response(s)")
                add(f"{base}/mode_{n_req}x{n_resp}", path, f"mode_{n_req}x{n_resp}", "mode",
                    _call(m, n_req, req, n_resp, resp_c, MODE_TIMEOUT_MS), _call(s, n_req, req_s, n_resp, resp),
                    request=req_tr, response=resp_tr, note=note)
    return Plan(client_cases, server_cases, exchanges)


# ---------------------------------------------------------------- running the peers

class PythonServerProcess:
    """`python -m harness.engines.python_peer serve` for one revision, with a catalogue; a context manager."""

    def __init__(self, protos: tuple[str, ...], catalogue: Path) -> None:
        """`protos`: the revision's proto-set arguments (ProtoSet.spec)."""
        self.protos, self.catalogue = protos, catalogue
        self.address, self._proc, self._log = "", None, None

    def __enter__(self) -> PythonServerProcess:
        fd, name = tempfile.mkstemp(prefix="py-peer-", suffix=".log")
        os.close(fd)
        self._log = Path(name)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "harness.engines.python_peer", "serve", *self.protos, "--addr", "127.0.0.1:0",
             "--cases", str(self.catalogue)], stdout=subprocess.PIPE, stderr=self._log.open("wb"))
        line = _read_line(self._proc, READY_TIMEOUT)
        if not line.startswith("LISTENING "):
            self.__exit__()
            raise PeerError(f"the Python server for {' '.join(self.protos)} did not report LISTENING (got {line!r})\n"
                            f"--- log ---\n{self.logs()}")
        self.address = line.split()[1]
        wait_healthy(self.address, time.monotonic() + READY_TIMEOUT, self.logs)
        return self

    def logs(self, tail: int = 200) -> str:
        if self._log is None or not self._log.exists():
            return "(no logs)"
        return "\n".join(output_lines(self._log.read_text(errors="replace"))[-tail:])

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            stop_process(self._proc)
        if self._log is not None:
            self._log.unlink(missing_ok=True)


def run_python_client(protos: tuple[str, ...], payload: dict[str, Any], folder: Path) -> list[Result]:
    cases = folder / f"py-client-{uuid.uuid4().hex[:8]}.json"
    cases.write_text(json.dumps(payload, ensure_ascii=False))
    budget = sum(c["timeout_ms"] for case in payload["cases"] for c in case["calls"]) / 1000 + 120
    proc = subprocess.run([sys.executable, "-m", "harness.engines.python_peer", "client", *protos,
                           "--cases", str(cases)], capture_output=True, text=True, timeout=budget)
    if proc.returncode != 0:
        raise PeerError(f"the Python client for {' '.join(protos)} exited with {proc.returncode}\n{proc.stderr[-4000:]}")
    return [Result.from_json(json.loads(line)) for line in output_lines(proc.stdout) if line.strip()]


@dataclass
class Run:
    direction: Direction
    plan: Plan
    results: list[Result]


def run_wire(revs: dict[str, Revision], runner: str, progress: Any = None) -> list[Run]:
    """The four cross-revision directions; every peer is stopped when this returns."""
    builds = {label: build_go(rev.protoset) for label, rev in revs.items()}
    for label, b in builds.items():  # a file left out would read as a breaking change: stop instead
        if b.findings:
            raise CodegenError(f"the {label} revision has files Go cannot compile, which compat cannot compare:\n"
                               + "\n".join(f"{f.file} ({f.tool}): {f.message}" for f in b.findings))
    plans = {(c, s): plan(revs[c], revs[s]) for c, s in (("new", "old"), ("old", "new"))}
    run_id = f"c-{uuid.uuid4().hex[:8]}"
    runs = []
    with tempfile.TemporaryDirectory(prefix="interop-compat-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # a container runs as an unprivileged user
        for d in DIRECTIONS:
            p = plans[(d.client_rev, d.server_rev)]
            catalogue = folder / f"catalogue-{d.slug}.json"
            catalogue.write_text(json.dumps({"cases": [c.to_json() for c in p.server_cases]}, ensure_ascii=False))
            catalogue.chmod(0o644)
            if progress:
                progress(f"{d.label}: {len(p.client_cases)} cases")
            with ExitStack() as stack:
                if d.server_lang == "go":
                    server: Any = stack.enter_context(GoServer(builds[d.server_rev], runner, catalogue))
                else:
                    server = stack.enter_context(PythonServerProcess(revs[d.server_rev].protoset.spec, catalogue))
                payload = {"target": server.address, "direction": d.slug, "run_id": run_id,
                           "cases": [c.to_json() for c in p.client_cases]}
                if d.client_lang == "go":
                    results, _ = run_go_client(builds[d.client_rev], runner, payload)
                else:
                    results = run_python_client(revs[d.client_rev].protoset.spec, payload, folder)
            by_name = {r.case: r for r in results}
            missing = [c.name for c in p.client_cases if c.name not in by_name]
            if missing:
                raise PeerError(f"{d.label}: the client reported no result for {missing[:3]}")
            runs.append(Run(d, p, [by_name[c.name] for c in p.client_cases]))
    return runs


# ---------------------------------------------------------------- reading the evidence

_WIRE_NUMBERS = {"varint": 0, "fixed64": 1, "len": 2, "group": 3, "fixed32": 5}


def unknown_fields(text: str) -> list[tuple[int, int]]:
    """(number, wire type) of the top-level unknown fields in a diff's rendering, which both engines
    write alike (docs/peer-contract.md): `[100:varint:1, 104:group:[1:varint:7]]`."""
    out, depth = [], 0
    for m in re.finditer(r"(\d+):(varint|fixed64|len|group|fixed32):|\[|\]", text.strip()):
        token = m.group(0)
        if token == "[":
            depth += 1
        elif token == "]":
            depth -= 1
        elif depth == 1:
            out.append((int(m.group(1)), _WIRE_NUMBERS[m.group(2)]))
    return out


@dataclass
class Observation:
    """What one exchange showed about one item."""
    direction: Direction
    case: str
    ok: bool
    text: str = ""
    added: bool = False     # the item exists only in the sender (newer) revision: unknown to the receiver is fine


def _prefixed(path: str, prefix: str) -> str | None:
    """The part of a diff path under an exchanged message (`server.requests[i]` / `responses[i]`)."""
    m = re.match(rf"^{re.escape(prefix)}\[\d+\](?:\.(.*))?$", path)
    return None if m is None else (m.group(1) or "")


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base + ".") or path.startswith(base + "[")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:40]}… ({len(text)} chars)"


def _decoded(r_fd: FD, got: str) -> str:
    got = _short(got)
    if r_fd.type == FD.TYPE_ENUM and got.lstrip("-").isdigit():
        return _enum_label(r_fd.enum_type, int(got))
    if r_fd.type == FD.TYPE_ENUM and got in r_fd.enum_type.values_by_name:
        return _enum_label(r_fd.enum_type, r_fd.enum_type.values_by_name[got].number)
    return got


class Evidence:
    """Observations per item path, built from every exchange of every direction."""

    def __init__(self) -> None:
        self.items: dict[str, list[Observation]] = {}

    def add(self, path: str, obs: Observation) -> None:
        self.items.setdefault(path, []).append(obs)

    def message(self, d: Direction, ex: Exchange, tr: Translation, role: str, diffs: list[Any], sender_new: bool,
                unattributed: list[str]) -> None:
        """Attribute the receiver's diffs about one exchanged message to the sender's fields."""
        sender, receiver = (("client", "server") if role == "request" else ("server", "client"))
        sender = f"{d.client_rev if role == 'request' else d.server_rev} {sender}"
        receiver = f"{d.server_rev if role == 'request' else d.client_rev} {receiver}"
        where = f"{ex.method.split('/')[1]} {role}, case {ex.pattern}"
        by_node: dict[int, list[tuple[str, Any]]] = {}
        unknown: dict[int, list[tuple[int, int]]] = {}
        for rel, diff in diffs:
            if rel.endswith("<unknown fields>"):
                parent = rel[: -len("<unknown fields>")].rstrip(".")
                extra = [u for u in unknown_fields(diff.got) if u not in unknown_fields(diff.expected)]
                for number, wt in extra:
                    node = next((n for n in tr.nodes if n.parent == parent and n.s_fd.number == number), None)
                    if node is None:
                        unattributed.append(f"{where}: {receiver} kept unknown field {number} at {parent or '.'}")
                        continue
                    unknown.setdefault(id(node), []).append((number, wt))
                continue
            cands = [n for n in tr.nodes if n.r_path is not None and _under(rel, n.r_path)]
            node = max(cands, key=lambda n: len(n.r_path), default=None)
            if node is None:  # a receiver field the sender did not set: which sender field has its number?
                parent, _, last = rel.removesuffix(".count").rpartition(".")
                name = re.sub(r"\[.*$", "", last)
                here = [n for n in tr.nodes if n.parent == parent]
                r_field = here[0].r_parent.fields_by_name.get(name) if here else None
                node = next((n for n in here if r_field is not None and n.s_fd.number == r_field.number
                             and n.r_fd is not r_field), None)
                if node is None:
                    unattributed.append(f"{where}: {receiver} {rel}: expected {diff.expected}, got {diff.got}")
                    continue
                by_node.setdefault(id(node), []).append((f"elsewhere:{name}", diff))
                continue
            by_node.setdefault(id(node), []).append((rel, diff))
        for node in tr.nodes:
            got = by_node.get(id(node), [])
            unk = unknown.get(id(node), [])
            path = node.field
            added = node.r_fd is None and sender_new
            wt = WIRE_TYPE_NAMES[wire_type(node.s_fd)] if not node.s_fd.is_repeated or node.s_fd.type in (
                FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE) else "len/packed"
            sent = f"{sender} sent {node.s_fd.name} = {node.value} as field {node.s_fd.number} ({wt})"
            if node.kept and not got and not unk:
                self.add(path, Observation(d, ex.case, True))
                continue
            if node.r_fd is None and not got:
                seen = (f"kept it as unknown field {unk[0][0]} ({WIRE_TYPE_NAMES.get(unk[0][1], unk[0][1])})"
                        if unk else "did not report it")
                if added:
                    text = f"{where}: {sent}; the {receiver} has no such field and {seen} (an addition)"
                else:
                    text = f"{where}: {sent}; the {receiver} has no such field and {seen}: the value is lost"
                self.add(path, Observation(d, ex.case, added, text, added=added))
                for name in node.enum_names:
                    self.add(f"{node.s_fd.enum_type.full_name}.{name}", Observation(d, ex.case, added, text, added))
                continue
            parts = []
            r = node.r_fd
            for rel, diff in got:
                if rel.startswith("elsewhere:"):
                    parts.append(f"the value arrived in its field {rel.split(':', 1)[1]} = {_short(diff.got)}")
                elif r is not None and rel == node.r_path:
                    parts.append(f"decoded {r.name} = {_decoded(r, diff.got)} (expected {_decoded(r, diff.expected)})")
                else:
                    parts.append(f"{rel}: expected {_short(diff.expected)}, got {_short(diff.got)}")
            if not node.kept and r is not None:
                if not any(rel == node.r_path for rel, _ in got):
                    parts.append(f"its {r.name} (field {r.number}, {type_name(r)}) stayed unset")
                parts.insert(0, f"({node.why})")
                if r.number != node.s_fd.number:
                    parts.append(f"it reads {r.name} from field {r.number}, not {node.s_fd.number}")
            for number, w in unk:
                parts.append(f"field {number} arrived as an unknown field ({WIRE_TYPE_NAMES.get(w, w)})")
            text = f"{where}: {sent}; the {receiver}: " + "; ".join(parts)
            self.add(path, Observation(d, ex.case, False, text))
            for name in node.enum_names:
                self.add(f"{node.s_fd.enum_type.full_name}.{name}", Observation(d, ex.case, False, text))
        for node in tr.nodes:
            if node.kept and id(node) not in by_node and id(node) not in unknown:
                for name in node.enum_names:
                    self.add(f"{node.s_fd.enum_type.full_name}.{name}", Observation(d, ex.case, True))


def collect(runs: list[Run], revs: dict[str, Revision]) -> Evidence:
    ev = Evidence()
    for run in runs:
        d = run.direction
        for result in run.results:
            ex = run.plan.exchanges[result.case]
            other: list[str] = []
            req_diffs, resp_diffs = [], []
            for diff in result.diffs:
                if (rel := _prefixed(diff.path, "server.requests")) is not None:
                    req_diffs.append((rel, diff))
                elif (rel := _prefixed(diff.path, "responses")) is not None:
                    resp_diffs.append((rel, diff))
                else:
                    other.append(f"{diff.path}: expected {diff.expected}, got {diff.got}")
            unattributed: list[str] = []
            method_text = ""
            if ex.kind == "missing":
                added = d.client_rev == "new"
                got = next((x for x in result.diffs if x.path == "status.code"), None)
                status = got.got.split(" ", 1)[0] if got else "OK"  # the code, without its message
                if added:
                    ok = status == "UNIMPLEMENTED"
                    method_text = (f"the {d.server_rev} {d.server_lang} server does not have this method and "
                                   f"answered {status}" + (" (an addition: expected)" if ok else ""))
                else:
                    ok = False
                    method_text = (f"removed method: the {d.client_rev} {d.client_lang} client called it; "
                                   f"the {d.server_rev} {d.server_lang} server answered {status}")
                ev.add(ex.method, Observation(d, ex.case, ok, method_text, added=added))
                continue
            if ex.request is not None:
                ev.message(d, ex, ex.request, "request", req_diffs, d.client_rev == "new", unattributed)
            if ex.response is not None and not other:
                ev.message(d, ex, ex.response, "response", resp_diffs, d.server_rev == "new", unattributed)
            elif resp_diffs:
                other += [f"{x.path}: expected {x.expected}, got {x.got}" for _, x in resp_diffs]
            if other or unattributed or result.verdict == "error":
                lead = f"case {ex.pattern}" + (f" ({ex.note})" if ex.note else "")
                ev.add(ex.method, Observation(d, ex.case, False, f"{lead}: " + "; ".join(other + unattributed)))
            else:
                ev.add(ex.method, Observation(d, ex.case, True))
    return ev


# ---------------------------------------------------------------- verdicts

@dataclass
class Item:
    path: str
    kind: str
    static: Finding | None
    observations: list[Observation]
    allowed: str | None = None

    @property
    def wire(self) -> str:
        if any(not o.ok for o in self.observations):
            return BREAKING
        if any(o.ok for o in self.observations):
            return OK
        return "untested"

    @property
    def static_breaking(self) -> bool:
        return self.static is not None and self.static.breaking

    @property
    def breaking(self) -> bool:
        return self.static_breaking or self.wire == BREAKING

    @property
    def highlight(self) -> bool:
        """Passes the static WIRE rules (ok or caveat) but breaks on the wire."""
        return self.wire == BREAKING and (self.static is None or self.static.wire in (OK, CAVEAT))

    @property
    def changed(self) -> bool:
        return self.static is not None and self.static.change != "unchanged"

    def wire_summary(self) -> str:
        if self.wire == "untested":
            return "not exercised"
        dirs = {o.direction.slug for o in self.observations}
        ok = sum(o.ok for o in self.observations)
        if self.wire == OK:
            added = any(o.added for o in self.observations)
            return (f"compatible{' (addition)' if added else ''}: {ok} exchange(s) in {len(dirs)} direction(s)"
                    + ("" if added else ", values round-tripped"))
        bad = [o for o in self.observations if not o.ok]
        return f"BREAKING: {len(bad)} of {len(self.observations)} exchange(s) in {len({o.direction.slug for o in bad})} direction(s)"

    def evidence(self, per_direction: int = 1) -> list[str]:
        out, count = [], {}
        # per direction, the most telling example first: one where the receiver decoded something
        for o in sorted(self.observations, key=lambda o: "decoded " not in o.text):
            if o.ok and not o.added or not o.text:
                continue
            if o.added and o.ok and any(x.startswith(o.direction.label) for x in out):
                continue
            count[o.direction.slug] = count.get(o.direction.slug, 0) + 1
            if count[o.direction.slug] <= per_direction:
                out.append(f"{o.direction.label}: {o.text}")
        extra = sum(max(0, c - per_direction) for c in count.values())
        if extra:
            out.append(f"(+{extra} more)")
        return out

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind,
                "static": self.static.to_json() if self.static else None,
                "wire": self.wire, "breaking": self.breaking, "highlight": self.highlight,
                "allowed": self.allowed,
                "exchanges": len(self.observations),
                "evidence": [f"{o.direction.label}: {o.text}" for o in self.observations if o.text]}


def items(findings: list[Finding], ev: Evidence) -> list[Item]:
    by_path = {f.path: f for f in findings}
    alias = {}
    for f in findings:
        if f.kind == "field" and f.old and f.new:
            msg = f.path.rsplit(".", 1)[0]
            alias[f"{msg}.{f.new['name']}"] = f.path
        if f.kind == "enum_value" and f.old and f.new:
            pass
    obs: dict[str, list[Observation]] = {}
    for path, os_ in ev.items.items():
        obs.setdefault(path if path in by_path else alias.get(path, path), []).extend(os_)
    out = []
    kind_of = lambda p: "method" if "/" in p else "field"  # noqa: E731
    for path in dict.fromkeys([*by_path, *obs]):
        f = by_path.get(path)
        kind = f.kind if f else ("enum_value" if _enum_path(path, findings) else kind_of(path))
        out.append(Item(path, kind, f, obs.get(path, [])))
    order = {"method": 0, "field": 1, "enum_value": 2}
    return sorted(out, key=lambda i: (order.get(i.kind, 3), i.path))


def _enum_path(path: str, findings: list[Finding]) -> bool:
    return any(f.kind == "enum_value" and f.path.rsplit(".", 1)[0] == path.rsplit(".", 1)[0] for f in findings) \
        or path.rsplit(".", 1)[-1].isupper()


# ---------------------------------------------------------------- allow-list

@dataclass
class Allow:
    match: str
    reason: str


def load_allow(path: Path) -> list[Allow]:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CompatError(f"allow-list {path}: {e}") from None
    if isinstance(doc, dict) and set(doc) == {"allow"}:
        doc = doc["allow"]
    if not isinstance(doc, list):
        raise CompatError(f"allow-list {path}: a YAML list of {{match: <glob>, reason: <text>}}")
    out = []
    for i, e in enumerate(doc):
        if not isinstance(e, dict) or set(e) != {"match", "reason"} or not all(
                isinstance(e[k], str) and e[k].strip() for k in e):
            raise CompatError(f"allow-list {path}: entry {i} must have exactly a non-empty match and reason")
        out.append(Allow(e["match"], e["reason"]))
    return out


def apply_allow(found: list[Item], allows: list[Allow], source: str = "allow-list") -> None:
    """Mark the breaking items an entry matches; an entry that matches no breaking change is an error."""
    dead = []
    for a in allows:
        hit = [i for i in found if i.breaking and fnmatch.fnmatchcase(i.path, a.match)]
        for i in hit:
            i.allowed = i.allowed or a.reason
        if not hit:
            dead.append(a.match)
    if dead:
        raise CompatError(f"{source}: entr{'y' if len(dead) == 1 else 'ies'} matching no breaking change "
                          f"(stale or mistyped): {', '.join(dead)}")


# ---------------------------------------------------------------- report

def _static_text(f: Finding | None) -> str:
    if f is None:
        return "static: (not in both revisions' descriptors)"
    verdict = f"WIRE {f.wire.upper() if f.wire == BREAKING else f.wire}, WIRE_JSON " \
              f"{f.wire_json.upper() if f.wire_json == BREAKING else f.wire_json}"
    return f"static: {verdict}" + (f": {f.detail}" if f.detail else " (unchanged)")


def report(found: list[Item], old: str, new: str, runs: list[Run], verbose: bool = False) -> str:
    lines = [f"grpc-interop compat: old = {old}", f"                     new = {new}",
             "wire: " + "; ".join(f"{r.direction.label} ({len(r.results)} cases)" for r in runs), ""]
    titles = {"method": "METHODS", "field": "FIELDS", "enum_value": "ENUM VALUES"}
    for kind, title in titles.items():
        group = [i for i in found if i.kind == kind and (verbose or i.changed or i.wire == BREAKING)]
        quiet = [i for i in found if i.kind == kind and i not in group]
        if not group and not quiet:
            continue
        lines.append(title)
        for i in group:
            mark = "~ " if i.breaking and i.allowed else "!!" if i.highlight else "✗ " if i.breaking else "✓ "
            lines.append(f"{mark} {i.path}")
            lines.append(f"     {_static_text(i.static)}")
            lines.append(f"     wire: {i.wire_summary()}")
            if i.highlight:
                lines.append("     !! passes the static WIRE rules but breaks on the wire")
            if i.allowed:
                lines.append(f"     allowed: {i.allowed}")
            for e in i.evidence():
                lines.append(f"       - {e}")
        if quiet:
            ok = sum(i.wire == OK for i in quiet)
            lines.append(f"✓  {len(quiet)} unchanged {title.lower()}: {ok} compatible on the wire, "
                         f"{sum(i.wire == 'untested' for i in quiet)} not exercised")
        lines.append("")
    lines.append(summary(found))
    return "\n".join(lines)


def summary(found: list[Item]) -> str:
    breaking = [i for i in found if i.breaking]
    allowed = [i for i in breaking if i.allowed]
    highlighted = [i for i in found if i.highlight]
    ok = [i for i in found if not i.breaking and i.wire == OK]
    verdict = "BREAKING" if len(breaking) > len(allowed) else "compatible"
    return (f"{verdict}: {len(breaking)} breaking ({len(allowed)} allowed), {len(highlighted)} only found on the "
            f"wire, {len(ok)} compatible with wire evidence, "
            f"{sum(i.wire == 'untested' for i in found)} not exercised")


def exit_code(found: list[Item]) -> int:
    return 1 if any(i.breaking and not i.allowed for i in found) else 0


# ---------------------------------------------------------------- entry point

def revision_sets(old_dir: str | Path, protos: str | Path, proto_paths: list[str] = (),
                  files: list[str] = ()) -> dict[str, Any]:
    """Both revisions' proto sets, with their echo services (codegen.load) as `run` has them: the
    messages no method carries (OTLP's TracesData) go on the wire in compat too."""
    return {"old": load(discover(old_dir, proto_paths, files)), "new": load(discover(protos, proto_paths, files))}


def compat(base: str, protos: str | Path, allow: Path | None, json_out: Path | None, runner: str,
           out: Any = print, verbose: bool = False, proto_paths: list[str] = (), files: list[str] = ()) -> int:
    """`proto_paths` (extra import roots) and `files` (target globs) apply to both revisions."""
    allows = load_allow(allow) if allow else []
    runner = select_runner(runner)
    with tempfile.TemporaryDirectory(prefix="interop-compat-base-") as scratch:
        old_dir = resolve_base(base, Path(protos), Path(scratch))
        # The base may come from a temp dir: copy it somewhere stable for the generated-code cache keys?
        # No: the cache is keyed by content, so a temp folder is fine while it exists.
        sets = revision_sets(old_dir, protos, proto_paths, files)
        for name, ps in sets.items():
            if ps.notice():
                print(f"compat: {name} revision: {ps.notice()}", file=sys.stderr)
        revs = {name: Revision.load(name, ps) for name, ps in sets.items()}
        findings = diff(revs["old"], revs["new"])
        t0 = time.monotonic()
        runs = run_wire(revs, runner, progress=lambda s: print(f"compat: {s}", file=sys.stderr))
        found = items(findings, collect(runs, revs))
    apply_allow(found, allows, str(allow))
    old_label = base if Path(base).is_dir() else f"{base} ({Path(protos)} at that git ref)"
    out(report(found, old_label, str(protos), runs, verbose))
    print(f"compat: wire runs took {time.monotonic() - t0:.1f} s (Go peer runner: {runner})", file=sys.stderr)
    code = exit_code(found)
    if json_out:
        json_out.write_text(json.dumps({
            "old": old_label, "new": str(protos),
            "directions": [{"direction": r.direction.label, "cases": len(r.results),
                            "results": [x.to_json() for x in r.results]} for r in runs],
            "items": [i.to_json() for i in found], "exit_code": code}, ensure_ascii=False, indent=1))
    return code

