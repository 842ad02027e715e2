"""Cases from descriptors: one explicit cross-product over every method of the proto set.

    method × value pattern      <svc>/<method>/<RequestType>/<pattern>   (harness.cases.values.PATTERNS, oneof members)
    method × streaming pattern  <svc>/<method>/stream/<pattern>          (by the method's mode)
    service × protocol pattern  <svc>/<method>/protocol/<pattern>        (metadata, status codes, details,
                                                                          unimplemented, gzip, size limits)
    mode × library pattern      <svc>/<method>/protocol/<pattern>        (LIBRARY_PATTERNS: once per streaming
                                                                          mode of the set, its first method)

The servers answer these with the generic engine (docs/peer-contract.md, contract v2): the same
call data says what the client sends and what the server answers, so both sides check what they
receive. Deterministic: the same proto set gives the same cases, in the same order.
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any, Callable

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from harness.cases.model import STATUS_CODES, Call, Case, streaming_mode
from harness.protoset import ProtoSet
from harness.protoset.runtime import is_well_known
from harness.cases.values import (MAX_DEPTH, PATTERNS, build, carried_type, carries, map_keys, scalar,
                                  singular_message_extensions, to_json, unbuildable)
from python_impl import bulk

SOURCE = "generated from descriptors (harness/cases/generate.py)"
TIMEOUT_MS = 10_000
RECV_LIMIT = 4 * 1024 * 1024  # grpcio's and grpc-go's default maximum received message size
UNICODE_MESSAGE = "tab\there, CR\r, LF\n, BMP ü € 中, non-BMP 😀 𝄞"


def services(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset(),
             pool: descriptor_pool.DescriptorPool | None = None) -> list[ServiceDescriptor]:
    """The services of the targets (--files; every file of the set when none was chosen), but those of
    `skip` (files Python could not load: reported as findings). A file the Python runtime registers
    already is found under its registered name (grpc_health/v1/health.proto)."""
    from harness.protoset.codegen import registered_files

    from harness.protoset.codegen import load

    ps = load(ps)  # the echo services of files with none are services of the set
    targets = [rel for rel in ps.targets if rel not in skip]
    if pool is not None and pool is not descriptor_pool.Default():  # a pool of its own: its own names
        return [svc for rel in targets for svc in pool.FindFileByName(rel).services_by_name.values()]
    pool = descriptor_pool.Default()
    reg = registered_files(ps)
    names = [(reg[rel].python_file if rel in reg and reg[rel].python_file else rel) for rel in targets]
    return [svc for name in names for svc in pool.FindFileByName(name).services_by_name.values()]


mode = streaming_mode


def generate(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset(),
             values_per_method: int | None = None) -> list[Case]:
    """Every case of the set's methods; values_per_method: at most that many value cases per method
    (the quick profile keeps one: building the others is most of a warm run's preparation)."""
    cases: list[Case] = []
    svcs = services(ps, skip)
    every: list[MethodDescriptor] = []
    for svc in svcs:
        methods = buildable_methods(svc)
        every += methods
        for m in methods:
            cases += value_cases(m, values_per_method) + stream_cases(m)
        if methods:
            cases += [c for c in protocol_cases(svc, methods) if _pattern(c) not in LIBRARY_PATTERNS]
    names = {c.name for c in cases}
    return cases + [c for c in library_cases(every) if c.name not in names] + enum_cases(every)


# Protocol behaviours that belong to the libraries, not to a service's messages: what a receiver does
# with metadata past its limits, with keys it must refuse or never deliver, with codes outside 0-16,
# with a status message past the metadata limit, with details that contradict the status, and how it
# compresses. They hold for any service, so they run once per streaming mode per proto set
# (library_cases), on the first method of that mode (gzip: the first that can carry bulk): on every
# service they only repeated the same known divergences.
LIBRARY_PATTERNS = frozenset({
    "metadata_near_soft_limit", "metadata_request_over_hard_limit", "metadata_headers_over_hard_limit",
    "metadata_trailers_over_hard_limit", "gzip_request", "gzip_response",
    "metadata_uppercase_key", "metadata_non_ascii_value", "metadata_reserved_grpc_keys",
    "metadata_reserved_in_headers", "code_17", "code_99", "long_status_message", "details_code_mismatch",
    "details_message_mismatch"})


def _pattern(c: Case) -> str:
    return c.name.rsplit("/", 1)[1] if "/protocol/" in c.name else ""


def library_cases(methods: list[MethodDescriptor]) -> list[Case]:
    """The LIBRARY_PATTERNS once per streaming mode of the set, each on the first method of that mode
    (services and methods in declaration order). A pattern the protocol cases put on a method of
    another mode (the reserved keys: not on bidi) is left to that mode's own method."""
    out: list[Case] = []
    for kind in ("unary", "server_stream", "client_stream", "bidi"):
        m = next((m for m in methods if mode(m) == kind), None)
        if m is None:
            continue
        req, resp = _value(m.input_type, "typical"), _value(m.output_type, "typical")
        own = [x for x in methods if x.containing_service is m.containing_service]
        made = _metadata_cases(m.containing_service, m, req, resp, own) + _status_cases(m, req, resp)
        made += _gzip_cases([x for x in methods if mode(x) == kind])
        out += [c for c in made if _pattern(c) in LIBRARY_PATTERNS and c.calls[0].streaming == kind]
        # every status code once per mode too (coverage counts them so): the protocol cases give them
        # only to each service's first method, which may leave a mode without them (the caller drops
        # the ones a service's first method has already)
        out += [_case(m, "protocol", f"status_{code.lower()}", _call(m, [req], [], status=code,
                                                                      message=f"plain {code} message"))
                for code in STATUS_CODES[1:]]
    return out


def buildable_methods(svc: ServiceDescriptor) -> list[MethodDescriptor]:
    """The methods whose request and response types can be built (values.unbuildable): a method
    carrying a type whose required fields never end gets no case; unbuildable_gaps() names it."""
    return [m for m in svc.methods if unbuildable(m.input_type) is None and unbuildable(m.output_type) is None]


def unbuildable_gaps(ps: ProtoSet, skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """One line per method left without cases because a message it carries cannot be built, with
    the chain of required fields that never ends."""
    out = []
    for svc in services(ps, skip):
        for m in svc.methods:
            for side, d in (("request", m.input_type), ("response", m.output_type)):
                chain = unbuildable(d)
                if chain is not None:
                    out.append(f"{svc.full_name}/{m.name} ({svc.file.name}): no case: its {side} type "
                               f"{d.full_name} cannot be built, its required fields never end: {' -> '.join(chain)}")
                    break
    return out


# ---------------------------------------------------------------- building blocks

def _call(m: MethodDescriptor, requests: list[Any], responses: list[Any] | None, **kw: Any) -> Call:
    expect = {"status": kw.pop("status", "OK")}
    if responses is not None:
        expect["responses"] = responses
    for key in ("status_alternatives", "message", "headers", "trailers", "details"):
        if key in kw:
            expect[key] = kw.pop(key)
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode(m),
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=requests, expect=expect, timeout_ms=kw.pop("timeout_ms", TIMEOUT_MS), **kw)


def _case(m: MethodDescriptor, shape: str, pattern: str, call: Call) -> Case:
    return Case(name=f"{m.containing_service.full_name}/{m.name}/{shape}/{pattern}", calls=[call], source=SOURCE)


@functools.lru_cache(maxsize=4096)
def _built(desc: Descriptor, pattern: str) -> tuple[str, bool]:
    """The pattern's value of desc as JSON text, and whether it carries the pattern's kind. build() is
    deterministic and a type is the request or response of many methods (OTLP's 34 methods asked for
    340 values 1 156 times): each is built once, and every case gets a fresh copy of its own."""
    msg = build(desc, pattern)
    return json.dumps(to_json(msg)), carries(msg, pattern)


def _value(desc: Descriptor, pattern: str) -> Any:
    return json.loads(_built(desc, pattern)[0])


def _carrier(desc: Descriptor, pattern: str) -> Any:
    """The pattern's value of desc, or None when it holds no value of the pattern's kind (a message
    with no float field under neg_zero): such a value differs from the others and tests nothing."""
    text, carried = _built(desc, pattern)
    return json.loads(text) if carried else None


def _exchange(m: MethodDescriptor, req: Any, resp: Any, **kw: Any) -> Call:
    """One request and one response, whatever the mode (ping-pong for bidi)."""
    if mode(m) == "bidi":
        kw.setdefault("bidi", "ping_pong")
    return _call(m, [req], [resp], **kw)


# ---------------------------------------------------------------- value patterns

def value_cases(m: MethodDescriptor, limit: int | None = None) -> list[Case]:
    """Every value pattern of the request and response types; patterns that change nothing are
    dropped. With `limit` (the quick profile), only the plain patterns are built and at most `limit`
    cases kept, `typical` first when it is one: the case the channel cases clone
    (harness/cases/channels.py), so each kept case is the full catalogue's case of that name."""
    out, seen = [], set()
    variants: list[tuple[str, Callable[[Descriptor], Any]]] = [(p, lambda d, p=p: _carrier(d, p)) for p in PATTERNS]
    if limit is None:
        variants += _oneof_variants(m) + _deep_variants(m)
        # Message fields present but empty, one nesting level at a time: the holder's field is set to its
        # default (an empty message), and the empty child carries its own fields unset.
        variants += [(f"empty_submessages_{level}", lambda d, level=level: _empty_submessages(d, level))
                     for level in range(3)]
        variants.append(("deep_recursion", lambda d: _deep(d, 60)))
        # Past upb's default nesting limit (100) and far inside protobuf-go's (10 000): see divergences.
        variants.append(("deep_recursion_150", lambda d: _deep(d, 150)))
    for pattern, make in variants:
        req, resp = make(m.input_type), make(m.output_type)
        if req is None and resp is None:
            continue
        if pattern in PATTERNS:  # the side that carries nothing of the pattern's kind goes as built
            req = req if req is not None else _value(m.input_type, pattern)
            resp = resp if resp is not None else _value(m.output_type, pattern)
        req = req if req is not None else _value(m.input_type, "typical")
        resp = resp if resp is not None else _value(m.output_type, "typical")
        key = json.dumps([req, resp], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out.append(_case(m, m.input_type.name, pattern, _exchange(m, req, resp)))
    if limit is not None:
        out.sort(key=lambda c: not c.name.endswith("/typical"))
        return out[:limit]
    return out


def _oneof_variants(m: MethodDescriptor) -> list[tuple[str, Callable[[Descriptor], Any]]]:
    """Each oneof member set (typical value, then its default value), in messages reachable from the
    request type and from the response type. A member both reach by the same path is set on both
    sides in one case, `oneof_<path>`; one only the response reaches gets `oneof_response.<path>`
    (without it, a response-only type's oneofs would only ever carry their first member)."""
    request, response = _oneof_members(m.input_type), _oneof_members(m.output_type)
    variants = []
    for key, (steps, fd) in [*request.items(), *((k, v) for k, v in response.items() if k not in request)]:
        side = "" if key in request else "response."
        for suffix, pattern in (("", "typical"), ("_default", "empty")):
            name = f"oneof_{side}{'.'.join([_label(name) for name, _ in steps] + [fd.name])}{suffix}"
            variants.append((name, lambda d, key=key, pattern=pattern:
                             _with_member(d, *_oneof_members(d)[key], pattern) if key in _oneof_members(d) else None))
    return variants


Steps = list[tuple[str, str]]  # (field name, how to step into it: "one", "list" element or "map" value)


def _oneof_members(desc: Descriptor) -> dict[tuple[str, ...], tuple[Steps, Any]]:
    """Real oneof members reachable from desc, by (field path, holder type, member number)."""
    found = {}
    for steps, holder in _oneof_holders(desc):
        for oneof in holder.oneofs:
            if len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}":
                continue  # proto3 optional
            for fd in oneof.fields:
                if carried_type(fd) is not None and unbuildable(carried_type(fd)) is not None:
                    continue  # never set: its type cannot be built
                found[(*(f"{name}:{how}" for name, how in steps), holder.full_name, str(fd.number))] = (steps, fd)
    return found


def _oneof_holders(desc: Descriptor, hops: int = 2) -> list[tuple[Steps, Descriptor]]:
    """Types reachable from desc through singular message fields (_reachable) and, up to `hops`
    times, one element of a repeated field or one value of a map: a oneof in a list element is as
    common as one in a singular field."""
    out: list[tuple[Steps, Descriptor]] = []
    seen: set[str] = set()

    def visit(prefix: Steps, d: Descriptor, hops_left: int) -> None:
        # google.protobuf.Value's kinds are a oneof too: each one set to its default is a state of its own
        for path, holder in _reachable(d, wkt=("google.protobuf.Value",)):
            steps = prefix + [(name, "one") for name in path]
            if holder.full_name in seen:
                continue
            seen.add(holder.full_name)
            out.append((steps, holder))
            for f in holder.fields if hops_left else []:
                if f.message_type is None or not f.is_repeated or f.containing_oneof is not None:
                    continue
                is_map = f.message_type.GetOptions().map_entry
                target = f.message_type.fields_by_name["value"].message_type if is_map else f.message_type
                if target is not None and target.full_name not in seen and unbuildable(target) is None:
                    visit(steps + [(f.name, "map" if is_map else "list")], target, hops_left - 1)

    visit([], desc, hops)
    return out


def _child(holder: Any, name: str) -> Any:
    """A field of holder by name; `[full.name]` is an extension (_reachable steps through them)."""
    if name.startswith("["):
        return holder.Extensions[holder.DESCRIPTOR.file.pool.FindExtensionByName(name[1:-1])]
    return getattr(holder, name)


def _label(name: str) -> str:
    """A step's name in a case name: an extension by its own short name."""
    return name[1:-1].rsplit(".", 1)[-1] if name.startswith("[") else name


def _step_into(msg: Any, steps: Steps) -> Any:
    """The message at the end of steps, creating it (one list element, one map value) on the way."""
    holder = msg
    for name, how in steps:
        field = _child(holder, name)
        if how == "list":
            holder = field.add()
        elif how == "map":
            key_fd = holder.DESCRIPTOR.fields_by_name[name].message_type.fields_by_name["key"]
            holder = field[map_keys(key_fd, edges=False)[0]]
        else:
            holder = field
    return holder


def _with_member(d: Descriptor, steps: Steps, fd: Any, pattern: str) -> Any:
    msg = build(d, "empty")
    holder = _step_into(msg, steps)
    if fd.message_type is not None:
        getattr(holder, fd.name).CopyFrom(build(fd.message_type, pattern))
        if pattern == "empty":
            getattr(holder, fd.name).SetInParent()
    else:
        setattr(holder, fd.name, scalar(fd, "typical", 0) if pattern == "typical" else fd.default_value)
    _fill_required(msg)
    return to_json(msg)


def _deep_variants(m: MethodDescriptor) -> list[tuple[str, Callable[[Descriptor], Any]]]:
    """A typical value of each message type first met MAX_DEPTH or more fields deep, where the value
    patterns stop filling (`typical_at_<path>`; `typical_at_response.<path>` when only the response
    reaches it): without it such a type's fields would never travel."""
    request, response = _deep_holders(m.input_type), _deep_holders(m.output_type)
    variants = []
    for key, (steps, _) in [*request.items(), *((k, v) for k, v in response.items() if k not in request)]:
        side = "" if key in request else "response."
        variants.append((f"typical_at_{side}{'.'.join(name for name, _ in steps)}", lambda d, key=key:
                         _typical_at(d, *_deep_holders(d)[key]) if key in _deep_holders(d) else None))
        # its message fields present but empty (the empty_submessages variants stop 2 fields down)
        variants.append((f"empty_submessages_at_{side}{'.'.join(name for name, _ in steps)}", lambda d, key=key:
                         _empty_at(d, *_deep_holders(d)[key]) if key in _deep_holders(d) else None))
    return variants


def _empty_at(d: Descriptor, steps: Steps, holder: Descriptor) -> Any:
    """d with the holder at steps carrying its singular message fields present but empty; None when
    it has none (or only ones that cannot be empty: required fields inside, or a oneof)."""
    fields = [f for f in holder.fields if f.message_type is not None and not f.is_repeated
              and f.containing_oneof is None and not any(g.is_required for g in f.message_type.fields)]
    if not fields:
        return None
    msg = build(d, "empty")
    node = _step_into(msg, steps)
    for f in fields:
        getattr(node, f.name).SetInParent()
    _fill_required(msg)
    return to_json(msg)


def _deep_holders(desc: Descriptor) -> dict[tuple[str, ...], tuple[Steps, Descriptor]]:
    """Message types whose shortest path from desc (through singular fields, oneof members, one list
    element or one map value) is MAX_DEPTH or more fields long, by (path, type): _holders' deep ones."""
    return {(*(f"{name}:{how}" for name, how in steps), d.full_name): (steps, d)
            for steps, d in _holders(desc) if len(steps) >= MAX_DEPTH}


@functools.lru_cache(maxsize=None)  # each deep variant asks again for every value it builds
def _holders(desc: Descriptor) -> tuple[tuple[Steps, Descriptor], ...]:
    """Every message type reachable from desc (through singular fields, oneof members, one list
    element or one map value), each by its shortest path, in breadth-first order (shared: read only)."""
    out: list[tuple[Steps, Descriptor]] = []
    queue: list[tuple[Steps, Descriptor]] = [([], desc)]
    seen: set[str] = set()
    while queue:
        steps, d = queue.pop(0)
        if d.full_name in seen or not _reachable(d, depth=0):  # _reachable leaves the well-known types out
            continue
        seen.add(d.full_name)
        out.append((steps, d))
        for f in d.fields:
            target = carried_type(f)
            if target is not None and unbuildable(target) is None:
                is_map = f.message_type.GetOptions().map_entry
                queue.append((steps + [(f.name, "map" if is_map else "list" if f.is_repeated else "one")], target))
    return tuple(out)


def _swept(enum: Any) -> list[int]:
    """An enum's numbers the value patterns leave out: all but its first, second, lowest and highest."""
    numbers = list(dict.fromkeys(v.number for v in enum.values))
    common = {numbers[0], numbers[1 % len(numbers)], min(numbers), max(numbers)}
    return [n for n in numbers if n not in common]


def enum_cases(methods: list[MethodDescriptor]) -> list[Case]:
    """Every number of every enum, once per proto set: the value patterns carry an enum's first,
    second, lowest and highest number, so the rest of a large enum (OTLP's 25 severities, a
    Kubernetes-style 40-value reason) would never travel. Each enum goes through the first method
    whose request (else response) reaches a field of it: all its other numbers in one message when
    the field is repeated or sits in a list element (one element per number), else one case per
    number (`enum_values.<Enum>` / `enum_values.<Enum>.<NAME>`)."""
    found: dict[str, tuple[int, MethodDescriptor, bool, Steps, Any]] = {}
    for order, m in enumerate(methods):
        for is_request, root in ((True, m.input_type), (False, m.output_type)):
            for steps, holder in _holders(root):
                for f in holder.fields:
                    if f.enum_type is None or not _swept(f.enum_type):
                        continue
                    many = f.is_repeated or any(how == "list" for _, how in steps)
                    # the best carrier: many numbers in one message, then the earliest method, requests first
                    rank = (0 if many else 1, order, 0 if is_request else 1)
                    best = found.get(f.enum_type.full_name)
                    if best is None or rank < best[0]:
                        found[f.enum_type.full_name] = (rank, m, is_request, steps, f)
    # an enum by its name inside its package (Pod.Phase and Node.Phase are both `Phase`, and
    # their values may share names too); by its full name when two packages share that name
    short = {name: name[len(d.file.package) + 1:] if d.file.package else name
             for name, d in ((n, v[4].enum_type) for n, v in found.items())}
    taken = list(short.values())
    out: list[Case] = []
    for name in sorted(found):
        (apart, _, _), m, is_request, steps, f = found[name]  # apart: one number per case
        shown = short[name] if taken.count(short[name]) == 1 else name
        numbers = _swept(f.enum_type)
        groups = [[n] for n in numbers] if apart else [numbers]
        for group in groups:
            root = m.input_type if is_request else m.output_type
            msg = build(root, "empty")
            if f.is_repeated:
                getattr(_step_into(msg, steps), f.name).extend(group)
            else:
                for n in group:  # a fresh list element (or the one holder) per number
                    setattr(_step_into(msg, steps), f.name, n)
            _fill_required(msg)
            value = to_json(msg)
            req = value if is_request else _value(m.input_type, "typical")
            resp = value if not is_request else _value(m.output_type, "typical")
            label = f"enum_values.{shown}" + (
                f".{f.enum_type.values_by_number[group[0]].name}" if apart else "")
            out.append(_case(m, m.input_type.name, label, _exchange(m, req, resp)))
    return out


def _typical_at(d: Descriptor, steps: Steps, holder: Descriptor) -> Any:
    msg = build(d, "empty")
    _step_into(msg, steps).CopyFrom(build(holder, "typical"))
    _fill_required(msg)
    return to_json(msg)


def _empty_submessages(d: Descriptor, level: int) -> Any:
    """d with the singular message fields of the types `level` fields deep set present but empty;
    None when there are none. A type with required fields cannot be empty, so it is left out."""
    msg, touched = build(d, "empty"), False
    for path, holder in _reachable(d):
        if len(path) != level:
            continue
        node = msg
        for name in path:
            node = _child(node, name)
        for f in [*holder.fields, *singular_message_extensions(holder)]:
            if (f.message_type is None or f.is_repeated or f.containing_oneof is not None
                    or any(g.is_required for g in f.message_type.fields)):
                continue
            _child(node, f"[{f.full_name}]" if f.is_extension else f.name).SetInParent()
            touched = True
    if not touched:
        return None
    _fill_required(msg)
    return to_json(msg)


def _reachable(desc: Descriptor, depth: int = 2, wkt: tuple[str, ...] = ()) -> list[tuple[list[str], Descriptor]]:
    """(field path, message type) of desc and its singular message fields and extensions (a step
    `[full.name]`), a few levels deep; well-known types only when named in `wkt`."""
    out, queue, seen = [], [([], desc)], set()
    while queue:
        path, d = queue.pop(0)
        if d.full_name in seen or (is_well_known(d.file.name) and d.full_name not in wkt):
            continue
        seen.add(d.full_name)
        out.append((path, d))
        if len(path) < depth:
            queue += [(path + [f.name], f.message_type) for f in d.fields
                      if f.message_type is not None and not f.is_repeated and f.containing_oneof is None
                      and unbuildable(f.message_type) is None]
            queue += [(path + [f"[{e.full_name}]"], e.message_type) for e in singular_message_extensions(d)]
    return out


def _deep(d: Descriptor, levels: int) -> Any:
    """A chain `levels` deep through a singular self-recursive field reachable from d, or None."""
    for path, holder in _reachable(d):
        rec = next((f for f in holder.fields if f.message_type == holder and not f.is_repeated), None)
        if rec is None:
            continue
        msg = build(d, "empty")
        node = msg
        for name in path:
            node = _child(node, name)
        for _ in range(levels):
            node = getattr(node, rec.name)
            node.SetInParent()
        _fill_required(msg)
        return to_json(msg)
    return None


def _fill_required(msg: Any) -> None:
    """Required fields along a chain built by hand (proto2 / LEGACY_REQUIRED)."""
    for fd in msg.DESCRIPTOR.fields:
        if fd.is_required and not msg.HasField(fd.name):
            setattr(msg, fd.name, getattr(build(msg.DESCRIPTOR, "typical"), fd.name))
    for fd, value in msg.ListFields():
        if fd.message_type is not None and not fd.is_repeated and not fd.is_extension:
            _fill_required(value)


# ---------------------------------------------------------------- streaming patterns

# Small value patterns that tell the messages of a stream apart: a stream of equal messages that
# came back reordered, or lost one in the middle, would look whole.
SEQUENCE_PATTERNS = ("typical", "min", "max", "unicode", "empty")


def _sequence(desc: Descriptor, n: int) -> list[Any]:
    """n messages of a type, cycling through its distinct SEQUENCE_PATTERNS values (a type with one
    value, like an empty message, repeats it)."""
    distinct: list[Any] = []
    for pattern in SEQUENCE_PATTERNS:
        value = _value(desc, pattern)
        if value not in distinct:
            distinct.append(value)
    return [distinct[i % len(distinct)] for i in range(n)]


def stream_cases(m: MethodDescriptor) -> list[Case]:
    req, resp = _value(m.input_type, "typical"), _value(m.output_type, "typical")
    reqs, resps = (lambda n: _sequence(m.input_type, n)), (lambda n: _sequence(m.output_type, n))
    kind, out = mode(m), []

    def add(pattern: str, call: Call) -> None:
        out.append(_case(m, "stream", pattern, call))

    if kind == "unary":
        # every method ends in an error status at least once (the protocol cases only use a service's first)
        add("error", _call(m, [req], [], status="ABORTED", message="stopped"))
    if kind == "server_stream":
        for n, pattern in ((0, "zero"), (1, "one"), (25, "many")):
            add(pattern, _call(m, [req], resps(n)))
        add("error_after_2", _call(m, [req], resps(2), status="ABORTED", message="stopped after 2"))
    if kind == "client_stream":
        for n, pattern in ((0, "zero"), (1, "one"), (25, "many")):
            add(pattern, _call(m, reqs(n), [resp]))
        add("error_after_requests", _call(m, reqs(3), [], status="ABORTED", message="stopped after 3 requests"))
    if kind in ("client_stream", "bidi"):
        # the client sends 1 of 3 requests and cancels without half-closing; the server would answer OK
        # once the requests end, so only a real cancel passes
        add("client_cancels_after_requests", _call(m, reqs(3), [], status="CANCELLED", cancel_after_requests=1,
                                                   server={"responses": [resp], "status": "OK"}))
    if kind == "bidi":
        add("ping_pong", _call(m, reqs(4), resps(4), bidi="ping_pong"))
        add("half_duplex", _call(m, reqs(4), resps(3)))
        add("server_finishes_early", _call(m, [req] * 3, [resp], server={"read_requests": 1}))
        add("error_after_1", _call(m, [req] * 2, [resp], status="ABORTED", message="stopped after 1 response"))
        add("client_cancels_after_first", _call(m, [req] * 3, [resp], status="CANCELLED", cancel_after_responses=1,
                                                bidi="ping_pong", server={"responses": [resp] * 3, "status": "OK"}))
    # server.status OK with an answer: a client that misses its deadline or does not cancel fails.
    # (A grpc-go server's reset can make the client report CANCELLED: a known divergence of the
    # directions with a Go server, harness/run/known_divergences.yaml.)
    late = {"delay_ms": 3000, "responses": [resp], "status": "OK"}
    add("deadline_exceeded", _call(m, [req], [], status="DEADLINE_EXCEEDED", timeout_ms=100, server=late))
    add("cancel_before_first_message", _call(m, [req], [], status="CANCELLED", cancel_after_responses=0, server=late))
    return out


# ---------------------------------------------------------------- protocol behaviours

def protocol_cases(svc: ServiceDescriptor, methods: list[MethodDescriptor] | None = None) -> list[Case]:
    """The service's protocol cases, through `methods` (default: all of them; the buildable ones)."""
    methods = list(svc.methods) if methods is None else methods
    m = methods[0]
    req, resp = _value(m.input_type, "typical"), _value(m.output_type, "typical")
    error_responses: list[Any] = []
    out: list[Case] = []

    def add(pattern: str, call: Call) -> None:
        out.append(_case(m, "protocol", pattern, call))

    blob = base64.b64encode(bytes(range(256))).decode()
    # empty values are values: a peer that drops them (or a whole key whose only value is empty) fails
    echo = {"x-ascii": ["plain value", "second"], "x-blob-bin": [blob], "x-empty": [""], "x-empty-bin": [""]}
    add("metadata_echo", _exchange(m, req, resp, metadata=echo, headers=echo, trailers=echo))
    for other in methods[1:]:  # metadata rides every method, whatever its mode: echo it on each
        out.append(_case(other, "protocol", "metadata_echo", _exchange(
            other, _value(other.input_type, "typical"), _value(other.output_type, "typical"),
            metadata=echo, headers=echo, trailers=echo)))
    for code in STATUS_CODES[1:]:
        add(f"status_{code.lower()}", _call(m, [req], error_responses, status=code, message=f"plain {code} message"))
    add("status_unicode_message", _call(m, [req], error_responses, status="FAILED_PRECONDITION",
                                        message=UNICODE_MESSAGE))
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA", "domain": "example.org",
                "metadata": {"k": "v ✓"}},
               {"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "a.b", "description": "must be ✓"}]}]
    add("rich_error_details", _call(m, [req], error_responses, status="INVALID_ARGUMENT", message="see details",
                                    details=details))
    out += _gzip_cases(list(svc.methods))
    for pattern, path in (("unimplemented_method", f"{svc.full_name}/NoSuchMethod"),
                          ("unimplemented_service", f"{svc.full_name}NoSuchService/Method")):
        out.append(Case(name=f"{svc.full_name}/{m.name}/protocol/{pattern}", source=SOURCE, calls=[
            Call(method=path, streaming="unary", request_type="google.protobuf.Empty",
                 response_type="google.protobuf.Empty", requests=[{}], expect={"status": "UNIMPLEMENTED"},
                 timeout_ms=TIMEOUT_MS, raw=True)]))
    out += _size_cases(svc, methods)
    out += _metadata_cases(svc, m, req, resp, methods) + _status_cases(m, req, resp)
    return out


def _gzip_cases(methods: list[MethodDescriptor]) -> list[Case]:
    """gzip from either side, through the first of `methods` whose type can carry bulk (else the first).
    A message that compressing would not shrink may go uncompressed (gRPC Core does so), so each
    case's message is one that gzip shrinks (GZIP_BULK bytes of bulk): every message must then arrive
    with its compressed flag set."""
    out: list[Case] = []
    for pattern, side, kw in (("gzip_request", "input_type", {"compression": "gzip"}),
                              ("gzip_response", "output_type", {"server": {"compression": "gzip"}})):
        g = next((x for x in methods if _bulk_field(getattr(x, side))), methods[0])
        g_req, g_resp = _value(g.input_type, "typical"), _value(g.output_type, "typical")
        if _bulk_field(getattr(g, side)):
            g_req, g_resp = (_sized(g.input_type, GZIP_BULK), g_resp) if side == "input_type" else (
                g_req, _sized(g.output_type, GZIP_BULK))
        out.append(_case(g, "protocol", pattern, _exchange(g, g_req, g_resp, **kw)))
    return out


# ---------------------------------------------------------------- metadata breadth

# grpc core's defaults for received metadata (one header block), docs/limits.md: past the soft limit a
# call is refused with a probability that grows to 1 at the hard limit; grpc-go accepts 16 MiB.
GRPCIO_METADATA_SOFT_LIMIT = 8 * 1024
GRPCIO_METADATA_HARD_LIMIT = 16 * 1024


def _metadata_cases(svc: ServiceDescriptor, m: MethodDescriptor, req: Any, resp: Any,
                    methods: list[MethodDescriptor]) -> list[Case]:
    """Metadata the echo case does not carry: many keys, repeated keys in order, sizes around grpcio's
    limits, and the keys and values a client must refuse. Request metadata, headers and trailers
    alike where the protocol allows it; docs/limits.md says what each library does."""
    out: list[Case] = []

    def add(pattern: str, call: Call) -> None:
        out.append(_case(m, "protocol", pattern, call))

    def echo(pattern: str, md: dict[str, list[str]]) -> None:
        add(pattern, _exchange(m, req, resp, metadata=md, headers=md, trailers=md))

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    echo("metadata_100_keys", {f"x-key-{i:03d}": [f"value {i}"] for i in range(100)})
    # the values of one key arrive in the order they were sent; duplicates stay duplicates
    echo("metadata_repeated_keys", {"x-rep": ["3", "1", "", "2", "1"],
                                    "x-rep-bin": [b64(b"\x03"), b64(b"\x01\x00"), b64(b""), b64(b"\x01\x00")]})
    # under grpcio's soft limit with room for the other headers (:path, the interop-* keys, grpc-status)
    echo("metadata_near_soft_limit", {"x-large": ["a" * (GRPCIO_METADATA_SOFT_LIMIT - 1536)]})
    over = {"x-large": ["a" * (GRPCIO_METADATA_HARD_LIMIT + 1024)]}
    # A receiver that lets it through answers OK with data (server.status), so it cannot pass.
    refused = {"status": "OK", "responses": [resp]}
    add("metadata_request_over_hard_limit",
        _call(m, [req], [], status="RESOURCE_EXHAUSTED", metadata=over, server=refused))
    add("metadata_headers_over_hard_limit",
        _call(m, [req], [], status="RESOURCE_EXHAUSTED", server={**refused, "headers": over}))
    # Trailers are a header block of their own, with the same limits. A response stream's server
    # sends no response: whether grpcio hands on one streamed before the refused trailers (or the
    # reset) differs by flavour and from run to run (measured), and a unary response never is.
    add("metadata_trailers_over_hard_limit",
        _call(m, [req], [], status="RESOURCE_EXHAUSTED",
              server={**refused, "responses": [] if m.server_streaming else [resp], "trailers": over}))
    # Error paths: a client refuses these itself (INTERNAL, nothing is sent); the server answers OK.
    add("metadata_uppercase_key", _call(m, [req], [], status="INTERNAL", metadata={"x-Upper-Case": ["v"]},
                                        server=refused))
    add("metadata_non_ascii_value", _call(m, [req], [], status="INTERNAL", metadata={"x-non-ascii": ["caf\u00e9"]},
                                          server=refused))
    # grpc-* keys: one no library uses travels like any other, in every direction; the ones gRPC
    # itself uses are never delivered as metadata (grpc-go's client drops them, grpcio's server does
    # not show them), so the server must see none of them (server.metadata)
    grpc_own = {"grpc-status": ["3"], "grpc-message": ["from the metadata"]}
    add("metadata_grpc_prefixed_key", _exchange(m, req, resp, metadata={"grpc-x-custom": ["v"]},
                                                headers={"grpc-x-custom": ["h"]}, trailers={"grpc-x-custom": ["t"]}))
    # In a bidi call grpcio's outcome with these keys changes from run to run (docs/limits.md), so a
    # case there could not have one outcome: they go through the first method of another mode.
    other = m if mode(m) != "bidi" else next((x for x in methods if mode(x) != "bidi"), None)
    if other is not None:
        oreq, oresp = (req, resp) if other is m else (_value(other.input_type, "typical"),
                                                      _value(other.output_type, "typical"))
        out.append(_case(other, "protocol", "metadata_reserved_grpc_keys", _exchange(
            other, oreq, oresp, metadata=grpc_own, server={"metadata": {k: [] for k in grpc_own}})))
        out.append(_case(other, "protocol", "metadata_reserved_in_headers", _exchange(
            other, oreq, oresp, headers={k: [] for k in grpc_own}, server={"headers": grpc_own})))
    return out


# A detail whose type URL no peer can resolve travels as its encoded value (docs/peer-contract.md):
# the receiver must keep the URL and the bytes as they came.
UNKNOWN_DETAIL = {"@type": "type.googleapis.com/interop.unknown.v1.Mystery",
                  "@encoded": base64.b64encode(b"\x08\x01\x12\x03abc").decode()}


def _status_cases(m: MethodDescriptor, req: Any, resp: Any) -> list[Case]:
    """Statuses past the common ones: codes outside 0-16, a message past grpcio's metadata limit,
    several details (one of a type nobody knows), and details that contradict the status."""
    out: list[Case] = []

    def add(pattern: str, call: Call) -> None:
        out.append(_case(m, "protocol", pattern, call))

    for code in (17, 99):
        # gRPC defines codes 0-16. The server sends the number (server.status) with no message; a
        # receiver reads an unknown number as UNKNOWN (grpcio, with no message either: measured;
        # grpc-go keeps the number: a known divergence). The server confirms the code it sent.
        add(f"code_{code}", _call(m, [req], [], status="UNKNOWN", message="", server={"status": f"CODE_{code}"}))
    long_message = "long status message " + "m" * (GRPCIO_METADATA_HARD_LIMIT + 1024)
    add("long_status_message", _call(m, [req], [], status="FAILED_PRECONDITION", message=long_message))
    error_info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "example.org"}
    several = [error_info,
               {"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "a", "description": "d"}]},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.500s"},
               UNKNOWN_DETAIL,
               {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "fr", "message": "é"}]
    add("details_several_anys", _call(m, [req], [], status="ABORTED", message="several details", details=several))
    # grpc-status-details-bin carries a google.rpc.Status of its own (server.details_status): the
    # header's status is the call's status (grpcio; grpc-go trusts the details: known divergences).
    for pattern, code, message in (("details_code_mismatch", "NOT_FOUND", "header message"),
                                   ("details_message_mismatch", "INVALID_ARGUMENT", "details message")):
        add(pattern, _call(m, [req], [], status="INVALID_ARGUMENT", message="header message", server={
            "details_status": {"code": code, "message": message, "details": [error_info]}}))
    return out


def _size_cases(svc: ServiceDescriptor, methods: list[MethodDescriptor]) -> list[Case]:
    """Just under, and just over, the default receive limit, each through the first method whose
    message has a field that can carry bulk (see _bulk_field). A service with none gets no size case;
    size_gaps() says so."""
    out: list[Case] = []
    near, over = RECV_LIMIT - 64 * 1024, RECV_LIMIT + 1024
    both = next((m for m in methods if _bulk_field(m.input_type) and _bulk_field(m.output_type)), None)
    if both is not None:
        out.append(_case(both, "protocol", "near_size_limit",
                         _exchange(both, _sized(both.input_type, near), _sized(both.output_type, near))))
    m = next((m for m in methods if _bulk_field(m.input_type)), None)
    if m is not None:
        # The receiving library refuses the message, so the outcome is never the generic engine's: a
        # server that lets the big request through answers OK with data (server.status), and fails.
        out.append(_case(m, "protocol", "request_over_limit",
                         _call(m, [_sized(m.input_type, over)], [], status="RESOURCE_EXHAUSTED",
                               server={"status": "OK", "responses": [_value(m.output_type, "typical")]})))
    m = next((m for m in methods if mode(m) in ("unary", "client_stream") and _bulk_field(m.output_type)), None)
    if m is not None:
        # The server sends the big response with OK; the client must refuse it (responses are not checked).
        out.append(_case(m, "protocol", "response_over_limit",
                         _call(m, [_value(m.input_type, "typical")], None, status="RESOURCE_EXHAUSTED",
                               server={"responses": [_sized(m.output_type, over)], "status": "OK"})))
    return out


GZIP_BULK = 2048  # bytes of repeated bulk in a gzip case's message: gzip shrinks it to a few dozen

SIZE_PATTERNS = ("near_size_limit", "request_over_limit", "response_over_limit")


def size_gaps(ps: ProtoSet, cases: list[Case], skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Services that got fewer size-limit cases than docs/cases.md promises, or gzip cases that cannot
    check each message's compressed flag, and why: the cases command prints them, so a missing
    case is never silent."""
    made: dict[str, set[str]] = {}
    for c in cases:
        pattern = c.name.rsplit("/", 1)[1]
        if pattern in SIZE_PATTERNS and "/protocol/" in c.name:
            made.setdefault(c.name.split("/", 1)[0], set()).add(pattern)
    why = {"near_size_limit": "no method has a field that can carry bulk (string, bytes or repeated, nested "
                              "or not) in both its request and its response type",
           "request_over_limit": "no request type has a field that can carry bulk",
           "response_over_limit": "no unary or client_stream method has a response type with a field that "
                                  "can carry bulk"}
    out = []
    svcs = services(ps, skip)
    for kind in ("unary", "server_stream", "client_stream", "bidi"):
        # A message gzip does not shrink may go uncompressed under gzip (wire.shrinks): with no type
        # that can carry bulk among the mode's methods, its gzip case (library_cases: one per mode)
        # proves the grpc-encoding header only, not each message's compressed flag.
        methods = [m for svc in svcs for m in svc.methods if mode(m) == kind]
        for pattern, side, what in (("gzip_request", "input_type", "request"),
                                    ("gzip_response", "output_type", "response")):
            if methods and not any(_bulk_field(getattr(m, side)) for m in methods):
                out.append(f"{kind} methods of the set: no {pattern} case that checks each message's compressed "
                           f"flag: no {what} type of a {kind} method has a field that can carry bulk, and gzip "
                           "shrinks no smaller message by a tenth (its case checks the grpc-encoding header only)")
    for svc in svcs:
        for pattern in SIZE_PATTERNS:
            if buildable_methods(svc) and pattern not in made.get(svc.full_name, set()):
                out.append(f"{svc.full_name} ({svc.file.name}): no {pattern} case: {why[pattern]}")
    return out


def _bulk_field(d: Descriptor) -> tuple[Steps, Any] | None:
    """(steps to its holder, field) where a message of type d can carry bulk: a string or bytes field
    first (inside one element of a repeated message field if need be), then a repeated scalar or
    enum, then a repeated message field (filled with max-valued elements); maps and well-known types
    left alone. Shallower and earlier fields win, so the choice is deterministic."""
    ranked: list[tuple[int, int, Steps, Any]] = []
    queue: list[tuple[Steps, Descriptor]] = [([], d)]
    seen: set[str] = set()
    order = 0
    while queue:
        path, holder = queue.pop(0)
        if holder.full_name in seen or is_well_known(holder.file.name) or len(path) > 3:
            continue
        seen.add(holder.full_name)
        for f in holder.fields:
            order += 1
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                continue
            if f.type in (f.TYPE_STRING, f.TYPE_BYTES):
                ranked.append((0, order, path, f))
            elif f.is_repeated:
                ranked.append((1 if f.message_type is None else 2, order, path, f))
            if f.message_type is not None and unbuildable(f.message_type) is None:
                queue.append((path + [(f.name, "list" if f.is_repeated else "one")], f.message_type))
    if not ranked:
        return None
    _, _, path, f = min(ranked, key=lambda r: (r[0], r[1]))
    return path, f


def _encoded(f: Any, value: Any) -> int:
    """Wire size of one element of repeated scalar field f holding value (None: the type's default)."""
    holder = GetMessageClass(f.containing_type)()
    getattr(holder, f.name).append(value if value is not None else f.default_value or 0)
    return holder.ByteSize()


def _sized(d: Descriptor, size: int) -> Any:
    """A message of type d about `size` bytes on the wire, its bulk in _bulk_field's field, written
    compactly as an @repeat spec (python_impl/bulk.py): a 4 MiB JSON literal cost more to parse than
    the call itself. The message on the wire is the same."""
    steps, f = _bulk_field(d)
    msg = build(d, "empty")
    node = _step_into(msg, steps)
    node.SetInParent()  # present even before the bulk arrives: `base` counts its tag and length
    base = msg.ByteSize()
    if f.type in (f.TYPE_STRING, f.TYPE_BYTES):
        unit = "x" if f.type == f.TYPE_STRING else b"x"
        getattr(node, f.name).append(unit) if f.is_repeated else setattr(node, f.name, unit)
        return _repeat(msg, d, steps, f, size - base, element=f.is_repeated)
    field = getattr(node, f.name)
    if f.message_type is None:
        # the widest encoding of the type (a 10-byte varint, say): fewer elements, a smaller case
        element = max((scalar(f, p, 0) for p in ("min", "max", "typical")), key=lambda v: _encoded(f, v))
        grow: Callable[[int], None] = lambda n: field.extend([element] * n)  # noqa: E731
    else:
        # elements holding their type's max values: fewer of them to build, send and compare
        full = build(f.message_type, "max")
        grow = lambda n: field.extend([full] * n)  # noqa: E731
    grow(1)
    first = msg.ByteSize()  # a packed field's tag and length come with its first element
    grow(999)
    per = (msg.ByteSize() - first) / 999
    grow(max(0, int((size - msg.ByteSize()) / per)))
    while msg.ByteSize() < size:  # the length prefixes grow with the field
        grow(max(1, int((size - msg.ByteSize()) / per)))
    count = len(field)
    del field[1:]
    return _repeat(msg, d, steps, f, count, element=False)


def _repeat(msg: Any, d: Descriptor, steps: Steps, f: Any, count: int, element: bool) -> Any:
    """msg's JSON with field f of the holder at steps (holding one unit) written as an @repeat spec
    of count units: of the field's one element when `element` (a repeated string or bytes field)."""
    out = to_json(msg)
    holder, desc = out, d
    for name, how in steps:
        fd = desc.fields_by_name[name]
        holder = holder[fd.json_name][0] if how == "list" else holder[fd.json_name]
        desc = fd.message_type
    unit = holder[f.json_name][0] if element or f.is_repeated else holder[f.json_name]
    spec = {bulk.REPEAT: {"count": count, "unit": unit}}
    holder[f.json_name] = [spec] if element else spec
    return out
