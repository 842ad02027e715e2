"""nox sessions: the grpcio × grpc-go version matrix, one session per combination.

    nox -l                                                    # list the sessions
    nox -s "interop(grpcio='1.76.0', grpcgo='v1.80.0')"       # one combination
    nox -s interop                                            # all of them (what `make matrix` runs)
    nox -R -s interop                                         # again, reusing the venvs (no installs)
    nox -s "interop(grpcio='1.72.2', grpcgo='v1.77.0')" -- -k routeguide   # options for grpc-interop run

Besides the grid, two sessions vary one more axis each (harness/run/version_matrix.py: extra_axes):
    nox -s "interop(grpcio='1.85.1+python', grpcgo='v1.85.0')"                # pure-Python protobuf backend
    nox -s "interop(grpcio='1.85.1', grpcgo='v1.77.0+protobuf-go-v1.36.10')"  # protobuf-go, not grpc-go's

Each session has its own venv with that grpcio set and its protobuf (harness/run/version_matrix.py: GRPCIO), the
repo installed --no-deps (its pyproject pins grpcio 1.85.1), and builds the Go peer against that
grpc-go ($INTEROP_GRPC_GO). Results: reports/matrix/<combo>.json; `make matrix` aggregates them and
`make matrix-docs` writes docs/matrix.md from them. `make matrix-oldest` runs the oldest combination alone.
"""

from __future__ import annotations

import nox

# nox runs from the project's venv (`make matrix` uses .venv/bin/nox), where the harness is installed.
from harness.run.version_matrix import configured, python_requirements

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["interop"]

COMBINATIONS = configured()


@nox.session
@nox.parametrize(("grpcio", "grpcgo"), COMBINATIONS)
def interop(session: nox.Session, grpcio: str, grpcgo: str) -> None:
    """Every case in every direction with one grpcio version and the Go peer on one grpc-go version."""
    session.install(*python_requirements(grpcio))
    session.install("--no-deps", "-e", ".")
    session.run("python", "-m", "harness.run.version_matrix", "run", "--grpcio", grpcio, "--grpc-go", grpcgo,
                "--", *session.posargs)
