"""How other repositories consume the harness: the GitHub action (action.yml), the CI workflows in
ci/github/ and the pre-commit hook (.pre-commit-hooks.yaml).

actionlint (installed with `go install`, pinned) checks the workflows, and the action's inputs through
the example workflow that uses it as `./`. actionlint reads an action's metadata but does not check the
steps of a composite action, so the test also lints those steps as a workflow job of their own. Every
`grpc-interop` command line the action and the hook run is parsed by the real CLI parser, so an option
that does not exist fails here, not in a user's CI.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import cli

REPO = Path(__file__).resolve().parent.parent
ACTIONLINT = ("github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12")


@pytest.fixture(scope="session")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        pytest.fail("actionlint is installed with `go install`, and no Go toolchain is on PATH (run `make setup`)")
    gobin = tmp_path_factory.mktemp("actionlint")
    module, version = ACTIONLINT
    proc = subprocess.run(["go", "install", f"{module}@{version}"], env={**os.environ, "GOBIN": str(gobin)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"go install {module}@{version} failed:\n{proc.stderr}"
    return gobin / "actionlint"


def _lint_repo(actionlint: Path, tmp: Path, workflows: dict[str, str], action: str) -> subprocess.CompletedProcess[str]:
    """actionlint over a scratch repository holding the workflows and the action at its root, so that
    `uses: ./` resolves to this action."""
    (tmp / ".github" / "workflows").mkdir(parents=True)
    (tmp / "action.yml").write_text(action)
    for name, text in workflows.items():
        (tmp / ".github" / "workflows" / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)
    return subprocess.run([str(actionlint)], cwd=tmp, capture_output=True, text=True, timeout=120)


def _workflows() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((REPO / "ci" / "github").glob("*.yml"))}


def _action_as_workflow(action: dict) -> str:
    """The composite action's steps as one job of a workflow whose dispatch inputs are the action's
    inputs, so actionlint checks their expressions, contexts and `uses:` references."""
    inputs = {name: {"type": "string", "required": bool(spec.get("required")), "default": spec.get("default", "")}
              for name, spec in action["inputs"].items()}
    steps = [{k: v for k, v in step.items() if k != "shell"} | ({"shell": step["shell"]} if "shell" in step else {})
             for step in action["runs"]["steps"]]
    doc = {"name": "action-steps", "on": {"workflow_dispatch": {"inputs": inputs}},
           "permissions": {"contents": "read"},
           "jobs": {"steps": {"runs-on": "ubuntu-24.04", "steps": steps}}}
    return yaml.safe_dump(doc, sort_keys=False)


def test_workflows_and_action_pass_actionlint(actionlint: Path, tmp_path: Path) -> None:
    action_text = (REPO / "action.yml").read_text()
    flows = _workflows() | {"action-steps.yml": _action_as_workflow(yaml.safe_load(action_text))}
    assert "interop-action-example.yml" in flows, "the example that uses the action is linted"
    proc = _lint_repo(actionlint, tmp_path / "ok", flows, action_text)
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"


def test_actionlint_catches_a_wrong_input_and_a_wrong_expression(actionlint: Path, tmp_path: Path) -> None:
    """The lint above can fail: a misspelt input of the action and a typo in a step's context are found."""
    action_text = (REPO / "action.yml").read_text()
    example = _workflows()["interop-action-example.yml"].replace("protos: protos", "proto: protos")
    proc = _lint_repo(actionlint, tmp_path / "input", {"use.yml": example}, action_text)
    assert proc.returncode != 0 and 'input "proto" is not defined' in proc.stdout, proc.stdout

    broken = action_text.replace("REPORTS: ${{ steps.paths.outputs.dir }}", "REPORTS: ${{ steps.pathz.outputs.dir }}", 1)
    steps = _action_as_workflow(yaml.safe_load(broken))
    proc = _lint_repo(actionlint, tmp_path / "expr", {"steps.yml": steps}, action_text)
    assert proc.returncode != 0 and "pathz" in proc.stdout, proc.stdout


def _run_lines(action: dict) -> list[str]:
    return [step["run"] for step in action["runs"]["steps"] if "grpc-interop " in step.get("run", "")]


def test_action_commands_are_valid_cli_invocations() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert set(action["inputs"]) >= {"protos", "base"} and action["inputs"]["protos"]["required"] is True
    env = {"PROTOS": "proto", "BASE": "origin/main", "REPORTS": "/tmp/r", "EXTRA": "--direction py-go -k Orders",
           "PROFILE": action["inputs"]["profile"]["default"]}
    commands = set()
    for run in _run_lines(action):
        argv = _expand(run, env)
        assert argv[0] == "grpc-interop"
        args = cli.parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
        commands.add(args.cmd)
        if args.cmd == "run":
            assert args.json and args.junit and args.html, "the action uploads JSON, JUnit and HTML reports"
            assert args.direction == ["py-go"] and args.patterns == ["Orders"], "extra args reach the run"
            assert args.profile == "quick", "pull requests get the quick profile unless the workflow asks"
        if args.cmd == "compat":
            assert args.base == "origin/main" and args.protos == "proto"
    assert commands == {"run", "compat"}


def _expand(run: str, env: dict[str, str]) -> list[str]:
    text = " ".join(run.split())
    for name, value in env.items():
        text = text.replace(f'"${name}"', shlex.quote(value)).replace(f"${name}", value)
    return shlex.split(text)


def test_action_installs_the_harness_from_its_own_checkout() -> None:
    runs = [s.get("run", "") for s in yaml.safe_load((REPO / "action.yml").read_text())["runs"]["steps"]]
    assert any("pip install" in r and "$GITHUB_ACTION_PATH" in r for r in runs)


def test_pre_commit_manifest_is_valid_and_runs_compat_against_head() -> None:
    proc = subprocess.run([sys.executable, "-m", "pre_commit", "validate-manifest",
                           str(REPO / ".pre-commit-hooks.yaml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["grpc-interop-compat"]
    argv = shlex.split(hook["entry"]) + ["--protos", "proto"]  # what `args: [--protos, proto]` appends
    args = cli.parser().parse_args(argv[1:])
    assert (args.cmd, args.base, args.protos) == ("compat", "HEAD", "proto")
    assert hook["pass_filenames"] is False and hook["files"] == r"\.proto$"


def test_pre_commit_run_hook_and_nightly_use_their_profiles() -> None:
    """The hook (each commit) runs the quick profile; the nightly workflow the deep one (issue 19)."""
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["grpc-interop-run"]
    args = cli.parser().parse_args(shlex.split(hook["entry"])[1:] + ["--protos", "proto"])
    assert (args.cmd, args.profile, args.protos) == ("run", "quick", "proto")
    assert hook["pass_filenames"] is False and hook["files"] == r"\.proto$"
    nightly = yaml.safe_load((REPO / "ci" / "github" / "interop-nightly.yml").read_text())
    runs = [s["run"] for job in nightly["jobs"].values() for s in job["steps"] if "grpc-interop run" in s.get("run", "")]
    assert runs, "the nightly workflow runs grpc-interop"
    for run in runs:
        argv = shlex.split(" ".join(run.split()).split("&&")[-1])
        args = cli.parser().parse_args(argv[1:])
        assert args.profile == "deep"
    assert "schedule" in nightly[True] if True in nightly else "schedule" in nightly["on"]
