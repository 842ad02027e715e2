"""`make bench`, part 2: the cost of a proto edit. Copies protos/ aside, builds everything once, then
adds a field to one file and times regeneration (Python + Go), the Go build and the image build.
Run by ci/bench.sh with the repo's venv."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import cache
from harness.protoset import codegen
from harness.engines.peer import docker_client, ensure_image
from harness.protoset import discover

REPO = Path(__file__).resolve().parent.parent


def rebuild(root: Path) -> tuple[float, str]:
    client = docker_client()
    t0 = time.monotonic()
    ps = discover(root)
    codegen.generate_python(ps)
    build = codegen.build_go(ps)
    tag = ensure_image(build, client) if client is not None else "(no Docker engine: image not built)"
    return time.monotonic() - t0, tag


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        root = Path(tmp) / "protos"
        shutil.copytree(REPO / "protos", root)
        first, tag = rebuild(root)
        print(f"the copy as it is (same content as protos/, so cached): {first:.1f} s ({tag})")
        users = root / "users.proto"
        stamp = time.time_ns()  # a new field name each time: the edit is never in a cache already
        users.write_text(users.read_text().replace("  string email = 3;\n", f"  string email = 3;\n  string phone_{stamp} = 4;\n"))
        took, tag = rebuild(root)
        py, go = codegen.LAST_REGENERATED["py"], codegen.LAST_REGENERATED["go"]
        print(f"after adding a field to users.proto: {took:.1f} s; regenerated {py[0]} of {py[1]} files (Python), "
              f"{go[0]} of {go[1]} (Go); one new image {tag}")
        # The same edit without the per-file cache: every file through protoc again.
        users.write_text(users.read_text().replace(f"  string phone_{stamp} = 4;\n",
                                                   f"  string phone_{stamp} = 4;\n  string fax = 5;\n"))
        shutil.rmtree(cache.root() / "gen" / "files")
        took, tag = rebuild(root)
        py, go = codegen.LAST_REGENERATED["py"], codegen.LAST_REGENERATED["go"]
        print(f"a second edit with the per-file cache emptied: {took:.1f} s; regenerated {py[0]} of {py[1]} (Python), "
              f"{go[0]} of {go[1]} (Go)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
