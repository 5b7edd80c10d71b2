"""Tests for ``--sf-shard K/N`` in real pytest runs (pytest_shadowfarm/shard_plugin.py)."""

from __future__ import annotations

import json

import pytest

from pytest_shadowfarm.history import HistoryStore, ResultRecord, RunRecord
from pytest_shadowfarm.shard import etc_snapshot, plan_shards, shard_etcs

MODULES = {
    "test_alpha": ["one", "two", "three", "four"],
    "test_beta": ["five", "six", "seven"],
    "test_gamma": ["eight", "nine"],
}
#: seconds each test took in the recorded history (the tests themselves take ~0)
DURATIONS = {
    "test_alpha.py::test_one": 4.0,
    "test_alpha.py::test_two": 1.0,
    "test_alpha.py::test_three": 1.0,
    "test_alpha.py::test_four": 2.0,
    "test_beta.py::test_five": 3.0,
    "test_beta.py::test_six": 0.5,
    "test_beta.py::test_seven": 0.5,
    "test_gamma.py::test_eight": 2.5,
    "test_gamma.py::test_nine": 0.5,
}
GROUPED = {"test_beta.py::test_six", "test_gamma.py::test_nine"}  # xdist_group("db")


@pytest.fixture
def project(pytester):
    """Three modules, one xdist group across two of them, and a history of durations."""
    for module, names in MODULES.items():
        body = ["import pytest", ""]
        for name in names:
            nodeid = f"{module}.py::test_{name}"
            if nodeid in GROUPED:
                body.append('@pytest.mark.xdist_group("db")')
            body += [f"def test_{name}():", "    pass", ""]
        pytester.makepyfile(**{module: "\n".join(body)})
    with HistoryStore.open(pytester.path / "base.sqlite") as store:
        store.record_run(
            RunRecord(started=1.0, finished=20.0),
            [ResultRecord(nodeid, "passed", call_s=s) for nodeid, s in DURATIONS.items()],
        )
    return pytester


def run_shard(pytester, spec, *args):
    """Run one shard on a fresh copy of the learned history, as each CI job restores it."""
    history = pytester.path / "h.sqlite"
    history.write_bytes((pytester.path / "base.sqlite").read_bytes())
    result = pytester.runpytest_subprocess(
        "-p",
        "shadowfarm",
        "-p",
        "no:cacheprovider",
        "--sf-github=off",
        f"--sf-history={history}",
        f"--sf-report-json={pytester.path / 'report.json'}",
        f"--sf-shard={spec}",
        *args,
    )
    return result, json.loads((pytester.path / "report.json").read_text())


def expected_plan(count):
    return plan_shards(
        shard_etcs(etc_snapshot({n: [s] for n, s in DURATIONS.items()}), DURATIONS),
        count,
        groups=dict.fromkeys(GROUPED, "db"),
        keep_modules=True,
    )


class TestShardOption:
    @pytest.mark.slow
    def test_the_shards_partition_the_suite_as_planned(self, project):
        """Shards 1..3 of 3 run every test exactly once, each the planned part."""
        plan = expected_plan(3)
        ran = []
        for index in (1, 2, 3):
            result, report = run_shard(project, f"{index}/3")
            assert result.ret == 0
            names = sorted(t["nodeid"] for t in report["tests"])
            assert tuple(names) == plan.shards[index - 1]
            assert report["shard"]["plan"] == plan.fingerprint()
            deselected = len(DURATIONS) - len(names)
            result.stdout.fnmatch_lines([f"*{len(names)} passed, {deselected} deselected*"])
            result.stdout.fnmatch_lines([f"shadowfarm: shard {index}/3 ran {len(names)} of 9 *"])
            ran += names
        assert sorted(ran) == sorted(DURATIONS)

    def test_an_xdist_group_stays_in_one_shard(self, project):
        """The two tests of group "db" (in two modules) run in the same shard."""
        plan = expected_plan(3)
        homes = {i for i, shard in enumerate(plan.shards) for n in shard if n in GROUPED}
        assert len(homes) == 1
        _, report = run_shard(project, f"{homes.pop() + 1}/3")
        assert {t["nodeid"] for t in report["tests"]} >= GROUPED

    @pytest.mark.slow
    def test_xdist_workers_split_like_a_single_process(self, project):
        """-n 2 runs the same shard as -n 0: the workers got the controller's ETCs."""
        _, alone = run_shard(project, "1/2", "-n", "0")
        result, spread = run_shard(project, "1/2", "-n", "2")
        assert result.ret == 0
        assert sorted(t["nodeid"] for t in spread["tests"]) == sorted(
            t["nodeid"] for t in alone["tests"]
        )
        assert spread["shard"]["plan"] == alone["shard"]["plan"] == expected_plan(2).fingerprint()
        assert {t["worker"] for t in spread["tests"]} <= {"gw0", "gw1"}

    def test_an_empty_shard_is_a_success(self, pytester):
        """More shards than tests: the empty shard exits 0, not 5 (no tests collected)."""
        pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")
        result = pytester.runpytest_subprocess(
            "-p", "shadowfarm", "-p", "no:cacheprovider", "--sf-github=off", "--sf-shard=2/3"
        )
        assert result.ret == 0
        result.stdout.fnmatch_lines(["shadowfarm: shard 2/3 ran 0 of 2 tests*"])

    def test_an_explicit_sf_shard_enables_the_plugin(self, pytester):
        """--sf-shard alone asks for the plugin, as -p shadowfarm does: one of two runs."""
        pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--sf-shard=1/2")
        result.assert_outcomes(passed=1)

    @pytest.mark.parametrize("spec", ["0/2", "3/2", "two", "1/0"])
    def test_a_bad_spec_names_the_option_and_the_fix(self, pytester, spec):
        """--sf-shard=3/2 is a usage error saying K/N with 1 <= K <= N."""
        result = pytester.runpytest_subprocess("-p", "shadowfarm", f"--sf-shard={spec}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*--sf-shard='{spec}' is not valid*1 <= K <= N*"])

    def test_a_bad_spec_from_the_environment_names_the_variable(self, pytester, monkeypatch):
        """SHADOWFARM_SHARD=5/4 is reported as coming from SHADOWFARM_SHARD."""
        monkeypatch.setenv("SHADOWFARM_SHARD", "5/4")
        result = pytester.runpytest_subprocess("-p", "shadowfarm")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*SHADOWFARM_SHARD='5/4' is not valid*"])
