"""What `pip install` gets: the Go peer's sources and the seed data ship as package data, in the sdist
and in the wheel made from it, and are found through importlib.resources (never beside the repo)."""

from __future__ import annotations

import tarfile
import tomllib
import zipfile
from pathlib import Path

from harness.protoset import codegen

REPO = Path(__file__).resolve().parent.parent


def test_every_python_package_of_the_repo_is_listed_in_pyproject() -> None:
    """pyproject lists the packages (a find cannot map go_peer/ into harness._go_peer): a new
    subpackage left out of the list would be missing from every wheel."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for top in ("harness", "python_impl")
               for p in (REPO / top).rglob("__init__.py")}
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert "harness._go_peer" in listed


def test_go_peer_sources_are_found_as_package_data() -> None:
    sources = codegen._go_sources()
    assert {"go.mod", "go.sum", "Dockerfile", "Dockerfile.builder", "cmd/interop-peer/main.go",
            "cmd/protoc-gen-interop/main.go", "internal/engine/testdata/diffs.json"} <= set(sources)
    assert all(p.is_file() for p in sources.values())
    assert codegen.seed_data().is_file()


def test_sdist_and_the_wheel_built_from_it_carry_the_go_peer_and_the_data(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
    go_files = set(codegen._go_sources())
    missing_sdist = {f"go_peer/{rel}" for rel in go_files} - in_sdist
    missing_wheel = {f"harness/_go_peer/{rel}" for rel in go_files} - in_wheel
    assert not missing_sdist and not missing_wheel, (missing_sdist, missing_wheel)
    assert {"python_impl/data/route_guide_db.json", "harness/cases/seeds.yaml", "harness/run/known_divergences.yaml",
            "harness/pytest_interop.py", "harness/cache.py", "harness/_go_peer/README.md"} <= in_wheel
    # generated in place by hand (git-ignored); a build copy in the cache is where it belongs
    assert not any(n.startswith(("harness/_go_peer/gen/", "build/")) for n in in_wheel)
    assert not any(n.startswith(("tests/", "protos/")) for n in in_wheel)
