"""What a probe prints and writes: findings with their request as JSON, a grpcurl command and a
replay command; the summary table; the --json, --junit and --html reports."""

from __future__ import annotations

import base64
import html
import json
import shlex
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from google.protobuf import json_format
from google.protobuf.message_factory import GetMessageClass
from rich.table import Table

from harness.probe.checks import ALL_CHECKS


def request_json(pool: Any, call: dict[str, Any]) -> list[Any]:
    """The call's request messages as protobuf JSON (what a person reads, and what grpcurl sends)."""
    cls = GetMessageClass(pool.FindMethodByName(call["method"].replace("/", ".")).input_type)
    return [json_format.MessageToDict(cls.FromString(base64.b64decode(r)), descriptor_pool=pool) for r in call["requests"]]


def grpcurl(pool: Any, call: dict[str, Any], target: str, source: dict[str, Any]) -> str:
    """A grpcurl command sending the same request(s): -d carries one JSON object per request message."""
    args = ["grpcurl"]
    if source.get("tls"):
        args += [a for flag, key in (("-cacert", "ca"), ("-cert", "cert"), ("-key", "key")) if source.get(key)
                 for a in (flag, str(source[key]))]
    else:
        args.append("-plaintext")
    if source.get("authority"):
        args += ["-authority", source["authority"]]
    if source.get("token"):
        args += ["-H", "authorization: Bearer $PROBE_TOKEN"]
    for k, values in (call.get("metadata") or {}).items():
        args += [a for v in values for a in ("-H", f"{k}: {v}")]
    if source.get("protos"):
        file = pool.FindServiceByName(call["method"].split("/")[0]).file.name
        args += ["-import-path", str(source["protos"]), "-proto", file]
    args += ["-max-time", f"{call['timeout_ms'] / 1000:g}"]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in request_json(pool, call))
    args += ["-d", data, target, call["method"]]
    return " ".join(shlex.quote(a) for a in args)


def summary_table(calls: dict[str, dict[str, int]], examples: dict[str, int], clients: list[str],
                  findings: dict[tuple[str, str], Any], nondet: dict[str, Any], checked: dict[str, list[str]]) -> Table:
    t = Table(title="probe: calls per method and client; per check, examples checked (✗ = finding)")
    t.add_column("method")
    for c in clients:
        t.add_column(c, justify="right")
    short = {"not_a_server_error": "1 errors", "clients_agree": "2 agree", "schema_conforms": "3 schema",
             "calls_end": "4 end", "protocol_shape": "5 shape", "standard_services": "6 std"}
    for check in ALL_CHECKS:
        t.add_column(short[check], justify="center")
    t.add_column("7 nondet", justify="center")
    for method in sorted(set(calls) | {m for m, _ in findings} | set(checked)):
        row = [method] + [str(calls.get(method, {}).get(c, 0)) for c in clients]
        for check in ALL_CHECKS:
            if (method, check) in findings:
                row.append("[red]✗[/red]")
            elif check in checked.get(method, []):
                row.append(f"[green]{examples.get(method, 1) if check != 'standard_services' else 1}[/green]")
            else:
                row.append("-")
        row.append("[yellow]yes[/yellow]" if method in nondet else "no")
        t.add_row(*row)
    return t


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")


def write_junit(path: Path, doc: dict[str, Any]) -> None:
    """One test case per method and check that ran; a finding is its failure."""
    found = {(f["method"], f["check"]): f for f in doc["findings"]}
    cases = sorted({(m, c) for m, checks in doc["checked"].items() for c in checks} | set(found))
    suite = ET.Element("testsuite", name="grpc-interop probe", tests=str(len(cases)), failures=str(len(found)))
    for method, check in cases:
        tc = ET.SubElement(suite, "testcase", classname=method, name=check)
        f = found.get((method, check))
        if f:
            fail = ET.SubElement(tc, "failure", message=f["message"][:500])
            fail.text = (f"{f['message']}\nrequest: {json.dumps(f.get('request_json'), ensure_ascii=False)}\n"
                         f"reproduce: {f['reproduce']}\ngrpcurl: {f.get('grpcurl')}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def write_html(path: Path, doc: dict[str, Any]) -> None:
    """A self-contained page: the summary, then each finding with its request, outcomes and commands."""
    e = html.escape
    rows = "".join(f"<tr><td>{e(m)}</td>" + "".join(f"<td>{n}</td>" for n in per.values()) + "</tr>"
                   for m, per in sorted(doc["calls"].items()))
    parts = [f"<h1>grpc-interop probe of {e(doc['target'])}</h1>",
             "<p>calls per method and client flavour; each finding below with its minimal request, every "
             "flavour's outcome, and the commands that reproduce it</p>",
             f"<p>{len(doc['findings'])} finding(s); seed {doc['seed']}; clients {e(', '.join(doc['clients']))}</p>",
             f"<table border=1><tr><th>method</th>{''.join(f'<th>{e(c)}</th>' for c in doc['clients'])}</tr>{rows}</table>"]
    for f in doc["findings"]:
        parts.append(f"<h2 class=finding>{e(f['method'])}: {e(f['check'])}</h2><p>{e(f['message'])}</p>"
                     f"<pre>request: {e(json.dumps(f.get('request_json'), indent=1, ensure_ascii=False))}</pre>"
                     f"<pre>{e(json.dumps(f['outcomes'], indent=1, ensure_ascii=False))}</pre>"
                     f"<pre>{e(f['reproduce'])}\n{e(f.get('grpcurl') or '')}</pre>")
    for m, ev in doc["nondeterministic"].items():
        parts.append(f"<h2>{e(m)}: non-deterministic</h2><p>{e(ev['why'])}</p>")
    path.parent.mkdir(parents=True, exist_ok=True)
    style = ("<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}.finding{color:#b00}"
             "pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;word-break:break-all}</style>")
    path.write_text("<!doctype html><meta charset=utf-8><title>grpc-interop probe</title>" + style + "".join(parts),
                    encoding="utf-8")
