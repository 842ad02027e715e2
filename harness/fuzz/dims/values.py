"""Dimension `values`: message values and stream shapes (harness/fuzz/strategies.py calls)."""

from __future__ import annotations

from google.protobuf.descriptor import MethodDescriptor
from hypothesis import strategies as st

from harness.cases.model import Call
from harness.fuzz import strategies


def calls(m: MethodDescriptor) -> st.SearchStrategy[Call]:
    return strategies.calls(m)
