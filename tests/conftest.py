"""Shared fixtures for the unit tests."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from harness.protoset.codegen import generate_python, import_python
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def seed_gen() -> ModuleType:
    """The seed protos' generated Python package, imported once (descriptors are process-global)."""
    return import_python(generate_python(discover(REPO / "protos")))
