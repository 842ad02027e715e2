"""Not Go code: the marker that lets the harness ship this folder inside its Python package.

pyproject.toml maps go_peer/ to the subpackage `harness._go_peer`, so wheels, sdists and editable
installs carry the Go peer's sources; harness/protoset/codegen.py finds them with importlib.resources.
An editable install can only map a folder that has an __init__.py. The Go toolchain ignores this file.
"""
