"""Static descriptor diff between two revisions of a proto set, by our own rules in two categories:

- WIRE: would a peer built from one revision decode the binary encoding of the other correctly?
- WIRE_JSON: WIRE, plus the protobuf JSON encoding (field names, json_name, enum value names).

Every finding has a path (the allow-list and the wire report use the same paths):
`pkg.Service/Method`, `pkg.Message.field`, `pkg.Enum.VALUE_NAME`, and a verdict per category:
`ok`, `caveat` (wire compatible but values can change: truncation, sign, UTF-8) or `breaking`.
The descriptors come from private descriptor pools, so both revisions live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor as FD

from harness.cases.model import streaming_mode
from harness.protoset.codegen import descriptor_set
from harness.protoset import ProtoSet

OK, CAVEAT, BREAKING = "ok", "caveat", "breaking"
_RANK = {OK: 0, CAVEAT: 1, BREAKING: 2}

TYPE_NAMES = {getattr(FD, n): n[5:].lower() for n in dir(FD) if n.startswith("TYPE_")}
VARINT_PLAIN = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64, FD.TYPE_BOOL, FD.TYPE_ENUM}
ZIGZAG = {FD.TYPE_SINT32, FD.TYPE_SINT64}
FIXED32 = {FD.TYPE_FIXED32, FD.TYPE_SFIXED32}
FIXED64 = {FD.TYPE_FIXED64, FD.TYPE_SFIXED64}
LENGTH = {FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE}
WIRE_TYPE_NAMES = {0: "varint", 1: "i64", 2: "len", 3: "sgroup", 4: "egroup", 5: "i32"}


def worst(*verdicts: str) -> str:
    return max(verdicts, key=_RANK.__getitem__, default=OK)


def wire_type(fd: FD) -> int:
    """The wire type a (non-packed) value of this field travels with."""
    t = fd.type
    if t in VARINT_PLAIN | ZIGZAG:
        return 0
    if t in FIXED64 or t == FD.TYPE_DOUBLE:
        return 1
    if t in FIXED32 or t == FD.TYPE_FLOAT:
        return 5
    if t == FD.TYPE_GROUP:
        return 3
    return 2


def type_name(fd: FD) -> str:
    if fd.type == FD.TYPE_MESSAGE:
        base = fd.message_type.full_name
    elif fd.type == FD.TYPE_ENUM:
        base = f"enum {fd.enum_type.full_name}"
    else:
        base = TYPE_NAMES[fd.type]
    return f"repeated {base}" if fd.is_repeated else base


@dataclass
class Finding:
    path: str          # pkg.Service/Method | pkg.Message.field | pkg.Enum.VALUE
    kind: str          # method | field | enum_value
    change: str        # added, removed, renumbered, type_changed, renamed, number_reused, streaming_changed, …
    wire: str          # ok | caveat | breaking
    wire_json: str     # ok | caveat | breaking (WIRE_JSON includes the WIRE rules)
    detail: str
    old: dict = field(default_factory=dict)   # facts the wire analysis uses (number, type, mode, …)
    new: dict = field(default_factory=dict)

    @property
    def breaking(self) -> bool:
        return BREAKING in (self.wire, self.wire_json)

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "change": self.change, "wire": self.wire,
                "wire_json": self.wire_json, "detail": self.detail}


# ---------------------------------------------------------------- loading

@dataclass
class Revision:
    """One revision of a proto set: its descriptors in a private pool (not the process default)."""
    label: str          # "old" | "new"
    protoset: ProtoSet
    pool: descriptor_pool.DescriptorPool

    @classmethod
    def load(cls, label: str, ps: ProtoSet) -> Revision:
        pool = descriptor_pool.DescriptorPool()
        for f in descriptor_set(ps).file:
            pool.Add(f)
        return cls(label, ps, pool)

    def files(self) -> list:
        return [self.pool.FindFileByName(rel) for rel in self.protoset.targets]

    def services(self) -> dict[str, object]:
        return {s.full_name: s for f in self.files() for s in f.services_by_name.values()}

    def methods(self) -> dict[str, object]:
        """`pkg.Service/Method` -> MethodDescriptor."""
        return {f"{s.full_name}/{m.name}": m for s in self.services().values() for m in s.methods}

    def messages(self) -> dict[str, Descriptor]:
        out: dict[str, Descriptor] = {}

        def walk(d: Descriptor) -> None:
            out[d.full_name] = d
            for n in d.nested_types:
                walk(n)

        for f in self.files():
            for d in f.message_types_by_name.values():
                walk(d)
        return out

    def enums(self) -> dict[str, EnumDescriptor]:
        out = {e.full_name: e for f in self.files() for e in f.enum_types_by_name.values()}
        for d in self.messages().values():
            out.update({e.full_name: e for e in d.enum_types})
        return out

    def message(self, name: str) -> Descriptor | None:
        try:
            return self.pool.FindMessageTypeByName(name)
        except KeyError:
            return None


mode = streaming_mode


# ---------------------------------------------------------------- rules

def type_change(a: FD, b: FD) -> tuple[str, str]:
    """WIRE verdict and explanation for a field whose type changed from a to b (same number)."""
    ta, tb = a.type, b.type
    what = f"{type_name(a)} → {type_name(b)}"
    if a.is_repeated != b.is_repeated:
        if wire_type(a) == wire_type(b) and ta == tb:
            return CAVEAT, f"{what}: singular ↔ repeated; a singular reader keeps only the last element"
        return BREAKING, f"{what}: cardinality and type changed"
    if ta == tb:
        if ta == FD.TYPE_MESSAGE and a.message_type.full_name != b.message_type.full_name:
            return CAVEAT, f"{what}: another message type; decoded by field number"
        if ta == FD.TYPE_ENUM and a.enum_type.full_name != b.enum_type.full_name:
            return CAVEAT, f"{what}: another enum type; numbers travel as they are"
        return OK, what
    if {ta, tb} <= VARINT_PLAIN:
        return CAVEAT, f"{what}: both varint; values outside the narrower type are truncated or change sign"
    if {ta, tb} <= ZIGZAG:
        return CAVEAT, f"{what}: both zigzag varint; 64-bit values are truncated to 32 bits"
    if {ta, tb} <= FIXED32 or {ta, tb} <= FIXED64:
        return CAVEAT, f"{what}: same width; the sign of large values is reinterpreted"
    if {ta, tb} == {FD.TYPE_STRING, FD.TYPE_BYTES}:
        return CAVEAT, f"{what}: both length-delimited; bytes that are not UTF-8 fail as string"
    if {ta, tb} == {FD.TYPE_MESSAGE, FD.TYPE_BYTES}:
        return CAVEAT, f"{what}: both length-delimited; the bytes must be an encoded message"
    wa, wb = wire_type(a), wire_type(b)
    if wa == wb:
        return BREAKING, f"{what}: same wire type ({WIRE_TYPE_NAMES[wa]}) but another encoding; values decode differently"
    return BREAKING, (f"{what}: wire type {WIRE_TYPE_NAMES[wa]} → {WIRE_TYPE_NAMES[wb]}; "
                      f"a receiver keeps the value as an unknown field")


def _reserved(d: Descriptor, number: int | None = None, name: str | None = None) -> bool:
    proto = _proto(d)
    if number is not None and any(r.start <= number < r.end for r in proto.reserved_range):
        return True
    return name is not None and name in proto.reserved_name


def _proto(d):
    from google.protobuf import descriptor_pb2

    p = descriptor_pb2.DescriptorProto() if isinstance(d, Descriptor) else descriptor_pb2.EnumDescriptorProto()
    d.CopyToProto(p)
    return p


def _facts(fd: FD) -> dict:
    return {"name": fd.name, "number": fd.number, "type": type_name(fd), "json_name": fd.json_name}


def diff_fields(old: Descriptor, new: Descriptor) -> Iterator[Finding]:
    by_num_new = {f.number: f for f in new.fields}
    by_name_new = {f.name: f for f in new.fields}
    by_num_old = {f.number: f for f in old.fields}
    by_name_old = {f.name: f for f in old.fields}
    seen_new: set[str] = set()
    for f in old.fields:
        path = f"{old.full_name}.{f.name}"
        same_name, same_num = by_name_new.get(f.name), by_num_new.get(f.number)
        if same_name is not None and same_name.number != f.number:
            seen_new.add(same_name.name)
            v, why = type_change(f, same_name)
            yield Finding(path, "field", "renumbered", BREAKING, BREAKING,
                          f"number {f.number} → {same_name.number}; old peers write and read field "
                          f"{f.number}, new peers {same_name.number}" + ("" if v == OK else f"; also {why}"),
                          _facts(f), _facts(same_name))
            continue
        if same_num is None:
            reserved = _reserved(new, number=f.number)
            json_ok = _reserved(new, name=f.name)
            yield Finding(path, "field", "removed", OK if reserved else BREAKING,
                          OK if reserved and json_ok else BREAKING,
                          f"field {f.number} ({type_name(f)}) removed" +
                          (" and its number reserved" if reserved else "; its number is not reserved"),
                          _facts(f), {})
            continue
        seen_new.add(same_num.name)
        v, why = type_change(f, same_num)
        if same_num.name != f.name:
            if v == OK:
                yield Finding(path, "field", "renamed", OK, BREAKING,
                              f"field {f.number} renamed {f.name} → {same_num.name} (JSON key "
                              f"{f.json_name} → {same_num.json_name})", _facts(f), _facts(same_num))
            else:
                yield Finding(path, "field", "number_reused", BREAKING, BREAKING,
                              f"number {f.number} reused with a new name and type: {f.name} {type_name(f)} → "
                              f"{same_num.name} {type_name(same_num)}; {why}", _facts(f), _facts(same_num))
            continue
        if v != OK or type_name(f) != type_name(same_num):
            ints = {FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64} | ZIGZAG | FIXED32 | FIXED64
            # JSON: integers are numbers (or quoted numbers) of any width; other type changes change the form
            json_v = v if {f.type, same_num.type} <= ints and v != BREAKING else BREAKING
            yield Finding(path, "field", "type_changed", v, json_v, why, _facts(f), _facts(same_num))
        elif f.json_name != same_num.json_name:
            yield Finding(path, "field", "json_name_changed", OK, BREAKING,
                          f"json_name {f.json_name} → {same_num.json_name}", _facts(f), _facts(same_num))
        else:
            yield Finding(path, "field", "unchanged", OK, OK, "", _facts(f), _facts(same_num))
    for g in new.fields:
        if g.name in seen_new or g.number in by_num_old or g.name in by_name_old:
            continue
        yield Finding(f"{new.full_name}.{g.name}", "field", "added", OK, OK,
                      f"field {g.number} ({type_name(g)}) added; old peers keep it as an unknown field",
                      {}, _facts(g))


def diff_enum(old: EnumDescriptor, new: EnumDescriptor) -> Iterator[Finding]:
    by_num_new: dict[int, str] = {}
    for v in new.values:
        by_num_new.setdefault(v.number, v.name)
    new_names = {v.name: v.number for v in new.values}
    old_nums = {v.number for v in old.values}
    done: set[int] = set()
    for v in old.values:
        if v.number in done:
            continue  # an alias
        done.add(v.number)
        path = f"{old.full_name}.{v.name}"
        facts = {"name": v.name, "number": v.number}
        if v.number not in by_num_new:
            reserved = any(r.start <= v.number <= r.end for r in _proto(new).reserved_range)
            yield Finding(path, "enum_value", "removed", OK if reserved else BREAKING, BREAKING,
                          f"value {v.name} = {v.number} removed" + ("" if reserved else "; its number is not reserved"),
                          facts, {})
        elif by_num_new[v.number] != v.name:
            moved = f"; {v.name} is now {new_names[v.name]}" if v.name in new_names else ""
            yield Finding(path, "enum_value", "renamed", OK, BREAKING,
                          f"number {v.number}: {v.name} → {by_num_new[v.number]}{moved} (the JSON name of "
                          f"{v.number} changed; binary peers see the same number)",
                          facts, {"name": by_num_new[v.number], "number": v.number})
    for v in new.values:
        if v.number not in old_nums and v.name not in {x.name for x in old.values}:
            yield Finding(f"{new.full_name}.{v.name}", "enum_value", "added", OK, OK,
                          f"value {v.name} = {v.number} added; old open-enum peers keep the number",
                          {}, {"name": v.name, "number": v.number})


def diff_methods(old: Revision, new: Revision) -> Iterator[Finding]:
    # the harness's echo services (harness/protoset/echo.py) are not the user's API: their messages
    # are compared as messages, and the wire runs still call them
    om, nm = ({p: m for p, m in r.methods().items() if m.containing_service.file.name not in r.protoset.echo}
              for r in (old, new))
    for path, m in om.items():
        facts = {"mode": mode(m), "input": m.input_type.full_name, "output": m.output_type.full_name}
        n = nm.get(path)
        if n is None:
            gone = "service" if m.containing_service.full_name not in new.services() else "method"
            yield Finding(path, "method", "removed", BREAKING, BREAKING,
                          f"{gone} removed; old clients get UNIMPLEMENTED", facts, {})
            continue
        nf = {"mode": mode(n), "input": n.input_type.full_name, "output": n.output_type.full_name}
        if facts["mode"] != nf["mode"]:
            yield Finding(path, "method", "streaming_changed", BREAKING, BREAKING,
                          f"streaming mode {facts['mode']} → {nf['mode']}", facts, nf)
        elif (facts["input"], facts["output"]) != (nf["input"], nf["output"]):
            yield Finding(path, "method", "type_changed", CAVEAT, CAVEAT,
                          f"({facts['input']}) returns ({facts['output']}) → ({nf['input']}) returns "
                          f"({nf['output']}); the wire carries no type names, fields decide", facts, nf)
        else:
            yield Finding(path, "method", "unchanged", OK, OK, "", facts, nf)
    for path, n in nm.items():
        if path not in om:
            yield Finding(path, "method", "added", OK, OK, f"{mode(n)} method added; old servers answer "
                          "UNIMPLEMENTED", {}, {"mode": mode(n)})


def diff(old: Revision, new: Revision) -> list[Finding]:
    """Every method, field and enum value of both revisions, with its static verdicts."""
    out = list(diff_methods(old, new))
    om, nm = old.messages(), new.messages()
    for name, d in om.items():
        if name in nm and not d.GetOptions().map_entry:
            out += diff_fields(d, nm[name])
        elif name in nm:  # map entries: key and value
            out += [f for f in diff_fields(d, nm[name]) if f.change != "unchanged"]
    oe, ne = old.enums(), new.enums()
    for name, e in oe.items():
        if name in ne:
            out += diff_enum(e, ne[name])
    return out
