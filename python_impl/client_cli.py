"""The Python client peer as a process, with the Go client's interface (docs/peer-contract.md):

    python -m python_impl.client_cli --protos DIR --cases FILE|-

reads the client-input JSON document (target, direction, run_id, cases), runs every case with
`python_impl.client.run_case` on one channel and prints one JSON result per line, in input order.
One process loads one proto set, so two revisions of a proto set run as two processes
(`grpc-interop compat`). Exit code 0 when every case ran, whatever the verdicts.
"""

from __future__ import annotations

import argparse
import json
import sys
from types import SimpleNamespace
from typing import Any

import grpc

from python_impl.client import run_case
from python_impl.contract import CHANNEL_OPTIONS

# The server's findings travel back in a trailer (interop-server-diffs-bin); unknown fields with long
# values (a cross-revision run) make it bigger than grpcio's 8 KiB default limit for received metadata.
MAX_METADATA = 4 * 1024 * 1024

_CALL_DEFAULTS = {"metadata": {}, "timeout_ms": 10_000, "bidi": "half_duplex", "server": {}, "compression": None,
                  "cancel_after_responses": None, "raw": False}


def case_from_json(raw: dict[str, Any]) -> SimpleNamespace:
    """A case of the client-input document as the object run_case reads."""
    calls = [SimpleNamespace(**{**_CALL_DEFAULTS, **c}) for c in raw["calls"]]
    return SimpleNamespace(name=raw["name"], calls=calls)


def main(argv: list[str] | None = None) -> int:
    from harness.codegen import CodegenError, generate_python, import_python
    from harness.protoset import ProtoSetError, discover

    ap = argparse.ArgumentParser(prog="python -m python_impl.client_cli", description=__doc__.splitlines()[0])
    ap.add_argument("--protos", required=True, help="folder of .proto files (the client's revision)")
    ap.add_argument("--cases", required=True, help="client-input JSON document; - for stdin")
    args = ap.parse_args(argv)
    try:
        text = sys.stdin.read() if args.cases == "-" else open(args.cases, encoding="utf-8").read()
        doc = json.loads(text)
        cases = [case_from_json(c) for c in doc["cases"]]
        gen = import_python(generate_python(discover(args.protos)))
    except (OSError, ValueError, KeyError, TypeError, CodegenError, ProtoSetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    direction, run_id = doc.get("direction", "py-?"), doc.get("run_id", "r-cli")
    options = [*CHANNEL_OPTIONS, ("grpc.max_metadata_size", MAX_METADATA)]
    with grpc.insecure_channel(doc["target"], options=options) as ch:
        for case in cases:
            result = run_case(ch, gen, case, direction, run_id)
            line = json.dumps(result.to_json(), ensure_ascii=False)
            # like Go's encoding/json: U+2028/U+2029 escaped, so every reader sees one result per line
            print(line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
