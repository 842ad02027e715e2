"""Interop coverage: what the cases that ran in each direction exercised, against what the proto set
makes reachable from its methods.

Computed from data only: the descriptors say what exists (every field, enum value, oneof member,
map key type and presence state of every message type reachable from a method's request and
response types, through message fields, map values, oneof members and extensions; every method's
streaming patterns and metadata kinds; the status codes of each streaming mode of the set), and
the cases say what was carried. A value
counts where it was carried in a case that ran in that direction: sent in a request, or expected
in a response (`expect.responses`). What a server sends but no client checks (`server.responses`
of a deadline or over-limit case) does not count.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor as FD, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from python_impl.standard import is_standard
from harness.cases.model import STATUS_CODES, Call, Case, streaming_mode
from harness.cases.values import carried_type, unbuildable
from python_impl import bulk

MESSAGE_KINDS = ("fields", "enum values", "oneof members", "map key types", "presence states")
METHOD_KINDS = ("streaming patterns", "status codes", "metadata kinds")
KINDS = MESSAGE_KINDS + METHOD_KINDS

# What a call of each streaming mode can exercise (see _streaming_patterns for how each is read).
_COMMON_PATTERNS = ("error_status", "deadline_exceeded", "cancel_before_first_message")
STREAMING_PATTERNS = {
    "unary": ("ok",) + _COMMON_PATTERNS,
    "server_stream": ("responses_0", "responses_1", "responses_many", "error_after_responses") + _COMMON_PATTERNS,
    "client_stream": ("requests_0", "requests_1", "requests_many", "client_cancels_after_requests") + _COMMON_PATTERNS,
    "bidi": ("ping_pong", "half_duplex", "server_finishes_early", "client_cancels_midstream",
             "client_cancels_after_requests") + _COMMON_PATTERNS,
}
# an empty value is a kind of its own: a peer that drops it passes every other metadata case
METADATA_KINDS = tuple(f"{where} {kind}" for where in ("request", "headers", "trailers")
                       for kind in ("ascii", "-bin", "empty ascii", "empty -bin"))
_MAX_NESTING = 400  # deeper than any generated case (150), within Python's stack
PRESENCE_STATES = ("unset", "default", "non-default")


@dataclass(frozen=True, order=True)
class Item:
    """One thing that can be exercised: `owner` is a message, enum or method full name."""
    kind: str
    owner: str
    name: str

    def __str__(self) -> str:
        return f"{self.owner}: {self.name}"


# ---------------------------------------------------------------- what exists

def _is_map(fd: FD) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _real_oneof(fd: FD) -> Any:
    """The oneof a field belongs to, unless it is proto3 `optional`'s synthetic one."""
    oneof = fd.containing_oneof
    if oneof is None or (len(oneof.fields) == 1 and oneof.name == f"_{fd.name}"):
        return None
    return oneof


def _field_name(fd: FD) -> str:
    return f"[{fd.full_name}] ({fd.number})" if fd.is_extension else f"{fd.name} ({fd.number})"


def _enum_name(enum: EnumDescriptor, number: int) -> str:
    names = "|".join(v.name for v in enum.values if v.number == number)  # aliases share a number
    return f"{names or 'unknown'} ({number})"


_TYPE_NAMES = {value: name[5:].lower() for name, value in vars(FD).items() if name.startswith("TYPE_")}


def _key_type(fd: FD) -> str:
    """The key type of a map field, as the .proto spells it (int32, sfixed64, string…)."""
    return _TYPE_NAMES[fd.message_type.fields_by_name["key"].type]


def _has_presence(fd: FD) -> bool:
    return not fd.is_repeated and fd.has_presence


class Universe:
    """Everything reachable from a set of methods: message types, enums, and the items of both."""

    def __init__(self, methods: Iterable[MethodDescriptor], files: set[str],
                 pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self.pool = pool or descriptor_pool.Default()
        self.methods = sorted({m.full_name: m for m in methods}.values(), key=lambda m: m.full_name)
        # a vendored copy of health or reflection is part of the set: its methods' cases count
        self.method_names = {method_name(m) for m in self.methods}
        self.files = files
        self.messages: dict[str, Descriptor] = {}
        self.enums: dict[str, EnumDescriptor] = {}
        self._extensions: dict[str, list[FD]] = {}
        self.items: dict[str, list[Item]] = {k: [] for k in KINDS}
        # Items the tool proves no case can carry, out of the denominator, each with why; listed by
        # name in every report (`unreachable`), so nothing leaves the count silently.
        self.unreachable: dict[Item, str] = {}
        carried = []
        for m in self.methods:
            why = _unbuildable_method(m)
            if why is None:
                carried.append(m)
            else:  # no case can call it: its own items leave the count (its types are not entered)
                for item in _method_items(m):
                    self.unreachable[item] = why
        queue = deque(t for m in carried for t in (m.input_type, m.output_type))
        while queue:
            d = queue.popleft()
            if d.full_name in self.messages:
                continue
            self.messages[d.full_name] = d
            for fd in self.fields(d):
                target = fd.message_type.fields_by_name["value"] if _is_map(fd) else fd
                if target.message_type is not None and unbuildable(target.message_type) is None:
                    queue.append(target.message_type)
                if target.enum_type is not None:
                    self.enums.setdefault(target.enum_type.full_name, target.enum_type)
        for name, d in sorted(self.messages.items()):
            self._message_items(d)
        for name, enum in sorted(self.enums.items()):
            self.items["enum values"] += [Item("enum values", name, _enum_name(enum, n))
                                          for n in sorted({v.number for v in enum.values})]
        for m in carried:
            for item in _method_items(m):
                self.items[item.kind].append(item)
        # A status code travels the same way on every method of a mode (the libraries carry it, not the
        # service's messages), so codes count per streaming mode of the set, as the cases run them.
        for kind in sorted({streaming_mode(m) for m in carried}, key=list(STREAMING_PATTERNS).index):
            self.items["status codes"] += [Item("status codes", status_owner(kind), c) for c in STATUS_CODES]

    def fields(self, d: Descriptor) -> list[FD]:
        """A message's fields and the extensions of it that the proto set (or its imports) declares,
        at file level or inside a message."""
        if d.full_name not in self._extensions:
            found = self.pool.FindAllExtensions(d)
            self._extensions[d.full_name] = sorted((e for e in found if e.file.name in self.files),
                                                   key=lambda e: e.number)
        return list(d.fields) + self._extensions[d.full_name]

    def _message_items(self, d: Descriptor) -> None:
        owner = d.full_name

        def add(item: Item, why: str | None = None) -> None:
            if why is None:
                self.items[item.kind].append(item)
            else:
                self.unreachable[item] = why

        for fd in self.fields(d):
            never = _never_set(fd)
            add(Item("fields", owner, _field_name(fd)), never)
            if _real_oneof(fd) is not None:
                add(Item("oneof members", owner, f"{fd.containing_oneof.name}.{fd.name}"), never)
            if _has_presence(fd):
                for state in _states(fd):
                    # a field that never carries a value is still unset
                    why = (None if state == "unset" else never) if never else _state_without_json(fd, state)
                    add(Item("presence states", owner, f"{fd.name}: {state}"), why)
        for key in sorted({_key_type(fd) for fd in self.fields(d) if _is_map(fd) and _never_set(fd) is None}):
            add(Item("map key types", owner, f"{key} keys"))


def _method_items(m: MethodDescriptor) -> list[Item]:
    owner = method_name(m)
    return [*(Item("streaming patterns", owner, p) for p in STREAMING_PATTERNS[streaming_mode(m)]),
            *(Item("metadata kinds", owner, k) for k in METADATA_KINDS)]


def _unbuildable_method(m: MethodDescriptor) -> str | None:
    for side, d in (("request", m.input_type), ("response", m.output_type)):
        chain = unbuildable(d)
        if chain is not None:
            return f"the {side} type cannot be built: its required fields never end: {' -> '.join(chain)}"
    return None


def _never_set(fd: FD) -> str | None:
    """Why a field can never carry a value, or None: its message type cannot be built, or it has no
    presence and its enum's only number is the zero, which such a field never puts on the wire."""
    target = carried_type(fd)
    if target is not None and unbuildable(target) is not None:
        return f"its type cannot be built: {' -> '.join(unbuildable(target))}"
    if (fd.enum_type is not None and not fd.is_repeated and not fd.has_presence
            and {v.number for v in fd.enum_type.values} == {0}):
        return f"{fd.enum_type.full_name} has only the number 0, which a field without presence never carries"
    return None


def _state_without_json(fd: FD, state: str) -> str | None:
    """Why a presence state has no form in the cases' JSON, or None: an empty google.protobuf.Value
    is written as null, and null reads back as null_value."""
    if state == "default" and fd.message_type is not None and fd.message_type.full_name == "google.protobuf.Value":
        return "an empty google.protobuf.Value has no JSON form: null reads back as null_value, a value of its own"
    return None


def _states(fd: FD) -> tuple[str, ...]:
    """The presence states a field can be in: a required field is never unset, a field with no value
    but its default (google.protobuf.Empty, google.protobuf.NullValue) is never non-default, and a
    message with required fields is never empty (its default)."""
    states = PRESENCE_STATES[1:] if fd.is_required else PRESENCE_STATES
    only_default = (fd.message_type is not None and not fd.message_type.fields) or \
        (fd.enum_type is not None and len({v.number for v in fd.enum_type.values}) == 1)
    never_empty = fd.message_type is not None and any(f.is_required for f in fd.message_type.fields)
    impossible = {"non-default"} if only_default else set()
    impossible |= {"default"} if never_empty else set()
    return tuple(s for s in states if s not in impossible)


def method_name(m: MethodDescriptor) -> str:
    return f"{m.containing_service.full_name}/{m.name}"


def status_owner(mode: str) -> str:
    """The owner of the status code items of a streaming mode: every method of that mode in the set."""
    return f"{mode} methods"


def file_closure(files: Iterable[str], pool: descriptor_pool.DescriptorPool) -> set[str]:
    """The files and everything they import, transitively."""
    out, todo = set(), list(files)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        todo += [dep.name for dep in pool.FindFileByName(name).dependencies]
    return out


# ---------------------------------------------------------------- what a case exercised

def exercised(case: Case, universe: Universe, seen: dict[tuple[str, str], set[Item]] | None = None) -> set[Item]:
    """The items a case exercises, from its data alone (the same in every direction). `seen` keeps
    each distinct message value's items across cases: many cases carry the same values (a status
    code or metadata case per method), so each is parsed and walked once."""
    pool, out = universe.pool, set()
    seen = {} if seen is None else seen
    for call in case.calls:
        svc, _, name = call.method.partition("/")
        if call.raw or (is_standard(svc) and call.method not in universe.method_names):
            continue  # a method outside the proto set (unimplemented method/service, health, reflection)
        meth = pool.FindServiceByName(svc).methods_by_name[name]
        owner = method_name(meth)
        out |= {Item("streaming patterns", owner, p) for p in _streaming_patterns(call)}
        out.add(Item("status codes", status_owner(streaming_mode(meth)), call.expect.get("status", "OK")))
        out |= {Item("metadata kinds", owner, k) for k in _metadata_kinds(call)}
        for type_, values in ((meth.input_type, call.requests), (meth.output_type, call.expect.get("responses") or [])):
            cls = GetMessageClass(type_)
            for value in values:
                key = (type_.full_name, json.dumps(value, sort_keys=True))
                if key not in seen:
                    try:  # deep_recursion_150 is past json_format's default nesting limit (100)
                        msg = bulk.parse(value, cls(), max_recursion_depth=_MAX_NESTING)
                    except json_format.ParseError as e:
                        raise ValueError(f"case {case.name!r} ({case.source}): a {type_.full_name} of "
                                         f"{call.method} cannot be measured: {str(e)[-300:]}") from None
                    seen[key] = set()
                    _walk(msg, universe, seen[key])
                out |= seen[key]
    return out


def _streaming_patterns(call: Call) -> set[str]:
    expect, status = call.expect, call.expect.get("status", "OK")
    responses, requests = expect.get("responses"), call.requests
    found = set()
    if status == "DEADLINE_EXCEEDED":
        found.add("deadline_exceeded")
    elif call.cancel_after_responses == 0:
        found.add("cancel_before_first_message")
    elif call.cancel_after_requests is not None:
        # the client cancels after sending k requests, never half-closing (client_stream, half-duplex
        # bidi): its own pattern, not an error status the server sent
        found.add("client_cancels_after_requests")
    elif status != "OK" and call.cancel_after_responses is None:
        found.add("error_status")
    if call.streaming == "unary" and status == "OK" and responses:
        found.add("ok")
    if call.streaming == "server_stream" and responses is not None:
        if status == "OK":
            found.add({0: "responses_0", 1: "responses_1"}.get(len(responses), "responses_many"))
        elif responses and call.cancel_after_responses is None:  # a client's cancel is no error the server sent
            found.add("error_after_responses")
    if call.streaming == "client_stream" and status == "OK":
        found.add({0: "requests_0", 1: "requests_1"}.get(len(requests), "requests_many"))
    if call.streaming == "bidi":
        read = call.server.get("read_requests")
        if call.cancel_after_responses:
            found.add("client_cancels_midstream")
        elif read is not None and read < len(requests) and status == "OK":
            found.add("server_finishes_early")
        elif status == "OK" and len(requests) > 1:
            found.add(call.bidi)
    return found


def _metadata_kinds(call: Call) -> set[str]:
    found = set()
    for where, md in (("request", call.metadata), ("headers", call.expect.get("headers") or {}),
                      ("trailers", call.expect.get("trailers") or {})):
        found |= {f"{where} {'-bin' if key.endswith('-bin') else 'ascii'}" for key in md}
        found |= {f"{where} empty {'-bin' if key.endswith('-bin') else 'ascii'}" for key, values in md.items()
                  if "" in values}
    return found


def _walk(msg: Message, universe: Universe, out: set[Item]) -> None:
    """Record the fields, enum values, oneof members, map keys and presence states a message carries."""
    d = msg.DESCRIPTOR
    owner = d.full_name
    set_fields = {fd.full_name: value for fd, value in msg.ListFields()}
    for fd in universe.fields(d):
        if _has_presence(fd):
            state = "unset"
            if fd.full_name in set_fields:
                value = set_fields[fd.full_name]
                is_default = value.ByteSize() == 0 if fd.message_type is not None else value == fd.default_value
                state = "default" if is_default else "non-default"
            out.add(Item("presence states", owner, f"{fd.name}: {state}"))
        elif fd.enum_type is not None and not fd.is_repeated and fd.full_name not in set_fields:
            # An open enum's zero on a field without presence never travels: the receiver decodes the
            # absent field as that zero and compares it, so the zero counts as carried.
            out.add(Item("enum values", fd.enum_type.full_name, _enum_name(fd.enum_type, fd.default_value)))
    for fd, value in msg.ListFields():
        out.add(Item("fields", owner, _field_name(fd)))
        if _real_oneof(fd) is not None:
            out.add(Item("oneof members", owner, f"{fd.containing_oneof.name}.{fd.name}"))
        if _is_map(fd):
            out.add(Item("map key types", owner, f"{_key_type(fd)} keys"))
            value_fd = fd.message_type.fields_by_name["value"]
            _values(value_fd, list(value.values()), universe, out)
        else:
            _values(fd, list(value) if fd.is_repeated else [value], universe, out)


def _values(fd: FD, values: list[Any], universe: Universe, out: set[Item]) -> None:
    if fd.message_type is not None:
        # equal elements carry the same items: a size-limit case repeats one element thousands of times
        seen: set[bytes] = set()
        for v in values:
            key = v.SerializePartialToString(deterministic=True) if len(values) > 1 else b""
            if key not in seen:
                seen.add(key)
                _walk(v, universe, out)
    elif fd.enum_type is not None:
        out |= {Item("enum values", fd.enum_type.full_name, _enum_name(fd.enum_type, v)) for v in values}


# ---------------------------------------------------------------- per direction

@dataclass
class Coverage:
    """The universe's items, and per direction the ones the cases that ran there exercised."""
    items: dict[str, list[Item]]
    covered: dict[str, set[Item]]                      # direction -> items exercised there
    directions: list[str] = field(default_factory=list)
    unreachable: dict[Item, str] = field(default_factory=dict)  # out of the denominator, with why

    def counts(self, kind: str, direction: str) -> tuple[int, int]:
        universe = self.items[kind]
        return sum(i in self.covered[direction] for i in universe), len(universe)

    def percent(self, kind: str, direction: str) -> float:
        done, total = self.counts(kind, direction)
        return 100.0 * done / total if total else 100.0

    def lowest(self, kind: str) -> tuple[str, float]:
        """The direction where a kind is least covered, and its percentage (ties: the first)."""
        if not self.directions:
            return "", 0.0
        return min(((d, self.percent(kind, d)) for d in self.directions), key=lambda t: t[1])

    def uncovered(self, kind: str) -> dict[Item, list[str]]:
        """Items some direction did not exercise, each with those directions."""
        out: dict[Item, list[str]] = {}
        for item in self.items[kind]:
            missing = [d for d in self.directions if item not in self.covered[d]]
            if missing:
                out[item] = missing
        return out

    def below(self, thresholds: dict[str, float]) -> list[str]:
        """One sentence per number under its threshold, naming the kind, direction and a few gaps."""
        problems = []
        for kind, minimum in thresholds.items():
            if not self.directions:
                problems.append(f"{kind}: no case ran in any direction (--min-coverage {minimum:g})")
                continue
            direction, pct = self.lowest(kind)
            left_out = sum(i.kind == kind for i in self.unreachable)
            if not self.items[kind] and left_out:
                # 0 of 0 is 100%, but here because every item was left out: a set none of whose
                # methods can be called must not pass a coverage gate
                problems.append(f"{kind}: no case can carry any of them: all {left_out} are left out as unreachable "
                                f"(listed under `not counted`), so --min-coverage {minimum:g} cannot be met")
            elif pct < minimum:
                done, total = self.counts(kind, direction)
                gaps = [str(i) for i in self.items[kind] if i not in self.covered[direction]]
                problems.append(f"{kind}: {pct:.1f}% in {direction} ({done}/{total}) is below --min-coverage "
                                f"{minimum:g}%; uncovered: {', '.join(gaps[:5])}{' …' if len(gaps) > 5 else ''}")
        return problems

    def summary(self) -> str:
        """One line: each number at its lowest direction."""
        if not self.directions:
            return "coverage: no case ran"
        parts = []
        for kind in KINDS:
            direction, pct = self.lowest(kind)
            parts.append(f"{kind} {pct:.1f}%")
        spread = "" if self.uniform() else " (lowest direction of each)"
        return f"coverage: {', '.join(parts)}{spread}"

    def uniform(self) -> bool:
        """Every direction exercised the same items (no direction filter made a difference)."""
        sets = [self.covered[d] for d in self.directions]
        return all(s == sets[0] for s in sets)

    def to_json(self) -> dict[str, Any]:
        return {"directions": {d: {k: {"covered": self.counts(k, d)[0], "total": self.counts(k, d)[1],
                                        "percent": round(self.percent(k, d), 2)} for k in KINDS}
                               for d in self.directions},
                # sorted: the universe's order follows set iteration, which differs between processes,
                # and two runs' (or shards') JSON must compare equal when they cover the same
                "uncovered": {k: [{"owner": i.owner, "item": i.name, "directions": ds}
                                  for i, ds in sorted(self.uncovered(k).items())] for k in KINDS},
                "unreachable": {k: [{"owner": i.owner, "item": i.name, "why": why}
                                    for i, why in sorted(self.unreachable.items()) if i.kind == k] for k in KINDS}}


def measure(universe: Universe, cases: list[Case], ran: dict[str, set[str]]) -> Coverage:
    """Coverage per direction: `ran` maps a direction to the names of the cases that ran there."""
    by_name = {c.name: c for c in cases}
    memo: dict[str, set[Item]] = {}
    values: dict[tuple[str, str], set[Item]] = {}
    covered: dict[str, set[Item]] = {}
    for d, names in ran.items():
        items: set[Item] = set()
        for name in names:
            if name in by_name:
                if name not in memo:
                    memo[name] = exercised(by_name[name], universe, values)
                items |= memo[name]
        covered[d] = items
    return Coverage(universe.items, covered, list(ran), dict(universe.unreachable))


def universe_of(protoset: Any, cases: list[Case], pool: descriptor_pool.DescriptorPool | None = None,
                skip: set[str] | frozenset[str] = frozenset()) -> Universe:
    """Every method of the proto set's services, and any other method a case calls (the generated
    code's pool unless another is given)."""
    from harness.cases.generate import services  # the targets' services, runtime-registered files included

    pool = pool or descriptor_pool.Default()
    svcs = services(protoset, skip, pool=pool)  # skip: findings, reported as failing rows of their own
    methods = [m for svc in svcs for m in svc.methods]
    names = {svc.file.name for svc in svcs}
    for f in (f for f in protoset.files if f not in skip):  # a runtime-registered file: found through its services
        try:
            names.add(pool.FindFileByName(f).name)
        except KeyError:
            pass
    for case in cases:
        for call in case.calls:
            svc, _, name = call.method.partition("/")
            if not call.raw and not is_standard(svc):
                methods.append(pool.FindServiceByName(svc).methods_by_name[name])
    return Universe(methods, file_closure(names, pool), pool)


def parse_thresholds(values: list[str] | None) -> dict[str, float]:
    """`--min-coverage 99` (fields) or `--min-coverage "enum values=100"`, repeatable."""
    out: dict[str, float] = {}
    for raw in values or []:
        kind, sep, pct = raw.rpartition("=")
        kind = kind.strip().replace("_", " ") if sep else "fields"
        if kind not in KINDS:
            raise ValueError(f"--min-coverage {raw!r}: unknown number {kind!r}; one of {', '.join(KINDS)} "
                             "(give PCT for fields, or KIND=PCT)")
        try:
            out[kind] = float(pct)
        except ValueError:
            raise ValueError(f"--min-coverage {raw!r}: {pct!r} is not a percentage") from None
    return out


def ran_by_direction(results: Iterable[Any], directions: list[str]) -> dict[str, set[str]]:
    """The names of the cases that ran in each direction, from results (`Result`s or their JSON);
    every direction asked for is there, even one where nothing ran."""
    ran: dict[str, set[str]] = {d: set() for d in directions}
    for r in results:
        d, case = (r["direction"], r["case"]) if isinstance(r, dict) else (r.direction, r.case)
        ran.setdefault(d, set()).add(case)
    return ran


def from_json(doc: dict[str, Any]) -> Coverage:
    """A Coverage as reports show it, rebuilt from its JSON (a merged set has no proto set to measure):
    the uncovered items by name, the covered ones as numbered stand-ins, so every count, percentage
    and gap list is what the JSON says."""
    directions = list(doc.get("directions") or {})
    items: dict[str, list[Item]] = {}
    covered: dict[str, set[Item]] = {d: set() for d in directions}
    for kind in KINDS:
        missing: dict[Item, set[str]] = {}
        for u in (doc.get("uncovered") or {}).get(kind, []):
            missing.setdefault(Item(kind, u["owner"], u["item"]), set()).update(u["directions"])
        total = max((doc["directions"][d][kind]["total"] for d in directions), default=0)
        stand_ins = [Item(kind, "", f"covered #{i}") for i in range(max(0, total - len(missing)))]
        items[kind] = [*sorted(missing), *stand_ins]
        for d in directions:
            covered[d] |= {i for i, ds in missing.items() if d not in ds} | set(stand_ins)
    unreachable = {Item(kind, u["owner"], u["item"]): u["why"]
                   for kind, listed in (doc.get("unreachable") or {}).items() for u in listed}
    return Coverage(items, covered, directions, unreachable)
