"""The `json` fuzz dimension: each language parses the other's protojson of the same message.

A call with `protojson: true` (docs/cases.md, "Wire bytes and protojson") exchanges its messages as
usual and, besides, each side renders its message as protojson with its library's defaults (what a
team logging or relaying messages writes): the client its request, in the `interop-json-bin`
request metadata; the server its first response, in the `interop-json-bin` trailer. The receiver
parses that text with its own library and compares the result, field by field, with the message it
decoded from the wire. So in py→go Go parses Python's JSON and Python parses Go's, and in every
direction each library meets the other's (or its own) rendering.

One request and one response (the JSON travels once per call), messages drawn like the `values`
dimension's (harness/fuzz/strategies.py: any value the JSON case format carries), each rendering
kept under JSON_BUDGET so that it travels in metadata under grpcio's soft limit.

This module is named json like the dimension; it imports the standard library's json nowhere, and
absolute imports keep `import json` elsewhere the standard library's.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import assume, strategies as st

from harness.cases.model import Call, streaming_mode
from harness.fuzz.strategies import TIMEOUT_MS, known_types, message_json
from python_impl import bulk

# bytes of one protojson rendering (UTF-8): base64 in a -bin header makes it 4/3 as long, and the
# header block stays under grpcio's 8 KiB soft limit with the call's own headers
JSON_BUDGET = 3000


def _fits(desc: Descriptor, value: Any) -> bool:
    """The message's protojson (Python's rendering; Go's is as long, give or take spaces) fits."""
    text = json_format.MessageToJson(bulk.parse(value, GetMessageClass(desc)()), indent=None)
    return len(text.encode("utf-8")) <= JSON_BUDGET * 9 // 10


@st.composite
def calls(draw: Any, m: MethodDescriptor) -> Call:
    """One call ending OK with one request and one response, both also exchanged as protojson."""
    mode = streaming_mode(m)
    anys = known_types(m.containing_service.file)
    request = draw(message_json(m.input_type, anys))
    response = draw(message_json(m.output_type, anys))
    assume(_fits(m.input_type, request) and _fits(m.output_type, response))
    kw: dict[str, Any] = {"bidi": "half_duplex"} if mode == "bidi" else {}
    return Call(method=f"{m.containing_service.full_name}/{m.name}", streaming=mode,
                request_type=m.input_type.full_name, response_type=m.output_type.full_name,
                requests=[request], expect={"status": "OK", "responses": [response]}, protojson=True,
                timeout_ms=TIMEOUT_MS, checked_by_server=True, **kw)
