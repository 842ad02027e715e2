"""The Python engine renders diffs (of messages and of whole calls) as the shared golden file says (the Go engine reads the same file
in go_peer/internal/engine/render_golden_test.go): a divergence entry or a report reads the same
whichever engine found the difference."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from google.protobuf import descriptor_pool, json_format
from google.protobuf.message_factory import GetMessageClass

from python_impl.check import check
from python_impl.compare import diff_messages, diff_stream
from python_impl.contract import Outcome

GOLDEN = Path(__file__).resolve().parent.parent / "go_peer" / "internal" / "engine" / "testdata" / "diffs.json"
CASES = json.loads(GOLDEN.read_text(encoding="utf-8"))["cases"]


def _message(type_name: str, value: dict[str, Any], unknown: str = ""):
    cls = GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(type_name))
    msg = json_format.ParseDict(value, cls())
    if unknown:
        msg.MergeFromString(base64.b64decode(unknown))
    return msg


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_renders_diffs_as_the_golden_file(seed_gen: ModuleType, case: dict[str, Any]) -> None:
    # seed_gen: the protos' generated code, imported, so their types are in the default pool
    exp = _message(case["type"], case["expected"])
    got = _message(case["type"], case["got"], case.get("got_unknown", ""))
    assert [list(d) for d in diff_messages(exp, got, "m")] == case["diffs"]


def test_the_golden_file_covers_every_kind_of_diff() -> None:
    texts = json.dumps([c["diffs"] for c in CASES])
    for kind in ("<unset>", "<set>", "<missing>", ".count", "<unknown fields>", ".[shapes.legacy.", "COLOR_RED", "nan"):
        assert kind in texts, kind
    # characters that would break a report's lines are escaped like the C0 controls, never raw
    rendered = [text for c in CASES for d in c["diffs"] for text in d]
    for escaped in ("\\u2028", "\\u2029", "\\u0085", "\\u007f", "\\u0000"):
        assert escaped in texts, escaped
    assert not any(ch in text for text in rendered for ch in "\u2028\u2029\u0085\u007f")


CALLS = json.loads(GOLDEN.read_text(encoding="utf-8"))["calls"]


def _metadata(md: dict[str, list[str]]) -> list[tuple[str, str | bytes]]:
    return [(k, base64.b64decode(v) if k.endswith("-bin") else v) for k, vs in md.items() for v in vs]


@pytest.mark.parametrize("case", CALLS, ids=[c["name"] for c in CALLS])
def test_python_checks_calls_as_the_golden_file(seed_gen: ModuleType, case: dict[str, Any]) -> None:
    got = case["outcome"]
    out = Outcome(status=got["status"], message=got["message"], headers=_metadata(got.get("headers", {})),
                  trailers=_metadata(got.get("trailers", {})))
    diffs = check(SimpleNamespace(**case["call"]), out, 0)
    assert [[d.path, d.expected, d.got] for d in diffs] == case["diffs"]


STREAMS = json.loads(GOLDEN.read_text(encoding="utf-8"))["streams"]


@pytest.mark.parametrize("case", STREAMS, ids=[c["name"] for c in STREAMS])
def test_python_names_missing_extra_and_moved_messages_as_the_golden_file(seed_gen: ModuleType,
                                                                         case: dict[str, Any]) -> None:
    exp = [_message(case["type"], m) for m in case["expected"]]
    got = [_message(case["type"], m) for m in case["got"]]
    assert [list(d) for d in diff_stream(exp, got, "responses")] == case["diffs"]


def test_the_golden_streams_cover_missing_extra_moved_and_changed() -> None:
    texts = json.dumps([s["diffs"] for s in STREAMS], ensure_ascii=False)
    for kind in ('"<missing>"]', '["responses[2]", "<missing>"', "<moved to [", "].f_string", "…", ".count"):
        assert kind in texts, kind
