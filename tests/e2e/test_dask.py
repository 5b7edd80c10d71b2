"""The Dask farm end to end: a real scheduler, two real Dask workers, a generated suite.

Each Dask worker has a local directory of its own, so where a test's module was
imported from tells which host copy it ran from. Every test records its process, its
ancestors, and the files of its module and of the project's helper package.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dasktools import DaskCluster, dask_available, make_tls_files
from tests.farmtools import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(dask_available()), reason=dask_available() or "-"),
]

RUN_TIMEOUT_S = 240.0

HELPERS = """
import json, os, time

def _ancestors():
    pids, pid = [], os.getpid()
    while pid > 1:
        pids.append(pid)
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
    return pids

def record(nodeid, module_file):
    line = {"nodeid": nodeid, "t": time.time(), "pid": os.getpid(), "ancestors": _ancestors(),
            "module": module_file, "helpers": __file__, "cwd": os.getcwd()}
    with open(os.path.join(os.environ["SF_E2E_OUT"], f"{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\\n")
"""

TEST_FILE = """
import time, helpers

{tests}
"""

ONE_TEST = """
def test_{i}(request):
    helpers.record(request.node.nodeid, __file__)
    time.sleep(0.2)
"""

GATE = '''
import os, time, helpers

def test_in_flight(request):
    """Sleeps on its first run: the harness kills its Dask worker meanwhile."""
    helpers.record(request.node.nodeid, __file__)
    gate = os.path.join(os.environ["SF_E2E_OUT"], "gate")
    if os.environ.get("SF_E2E_KILL") and not os.path.exists(gate):
        with open(gate, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(30)
'''


WARMUP_HOOK = """
import os

def pytest_shadowfarm_warmup(config):
    # In a warm worker's shadow run: leaves warmed-<pid> next to this file (the copy it ran from)
    with open(os.path.join(os.path.dirname(__file__), f"warmed-{os.getpid()}"), "w") as f:
        f.write(str(config.rootpath))
"""


def make_project(root: Path, files: int = 4, per_file: int = 3) -> Path:
    project = root / "project"
    (project / "tests").mkdir(parents=True)
    (project / "helpers").mkdir()
    (project / "helpers" / "__init__.py").write_text(HELPERS)
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    for f in range(files):
        tests = "".join(ONE_TEST.format(i=i) for i in range(per_file))
        (project / "tests" / f"test_gen_{f}.py").write_text(TEST_FILE.format(tests=tests))
    (project / "tests" / "test_gate.py").write_text(GATE)
    (project / "conftest.py").write_text(WARMUP_HOOK)
    return project


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    dask = DaskCluster(tmp_path_factory.mktemp("dask"), workers=2)
    try:
        yield dask.start()
    finally:
        dask.stop()


class Run:
    def __init__(
        self,
        cluster: DaskCluster,
        tmp_path: Path,
        *,
        kill: bool = False,
        project: Path | None = None,
    ) -> None:
        tmp_path.mkdir(exist_ok=True)
        self.project = project or make_project(tmp_path)
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.report = tmp_path / "report.json"
        self.junit = tmp_path / "junit.xml"
        env = cluster.env()
        env["SF_E2E_OUT"] = str(self.out)
        if kill:
            env["SF_E2E_KILL"] = "1"
        url = cluster.url
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "shadowfarm", "-n", "2", "--sf-farm", url,
             f"--sf-report-json={self.report}", f"--junitxml={self.junit}",
             "-p", "no:cacheprovider", "-p", "no:randomly"],
            cwd=self.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def finish(self) -> tuple[int, str]:
        try:
            output, _ = self.proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            output, _ = self.proc.communicate(timeout=10)
            pytest.fail(f"the run did not end in {RUN_TIMEOUT_S} s:\n{output.decode()[-4000:]}")
        return self.proc.returncode, output.decode(errors="replace")

    def records(self) -> list[dict]:
        lines = [line for f in self.out.glob("*.jsonl") for line in f.read_text().splitlines()]
        return sorted((json.loads(line) for line in lines), key=lambda rec: rec["t"])

    def junit_outcomes(self) -> Counter[tuple[str, str]]:
        outcomes: Counter[tuple[str, str]] = Counter()
        root = ET.parse(self.junit).getroot()
        suite = next(root.iter("testsuite"))
        assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("13", "0", "0")
        # The crash leaves a nameless <testcase/> (the report withdrawn for the rerun):
        # the suite's totals above count it out.
        for case in root.iter("testcase"):
            if case.get("name") is None:
                continue
            tags = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            kind = tags[0] if tags else "passed"
            outcomes[(f"{case.get('classname')}.{case.get('name')}", kind)] += 1
        return outcomes


def worker_of(record: dict, cluster: DaskCluster) -> str | None:
    """The Dask worker (its nanny's process group leader) a test process descends from."""
    pids = {proc.pid: name for name, proc in cluster.procs.items() if name != "scheduler"}
    return next((pids[p] for p in record["ancestors"] if p in pids), None)


def check_placement(records: list[dict], cluster: DaskCluster, project: Path) -> None:
    for rec in records:
        name = worker_of(rec, cluster)
        assert name is not None, f"{rec['nodeid']} ran outside every Dask worker: {rec}"
        local = str(cluster.root / name) + os.sep
        for key in ("module", "helpers", "cwd"):
            assert (rec[key] + os.sep).startswith(local), (key, rec)
            assert not rec[key].startswith(str(project)), (key, rec)


class TestDaskFarm:
    def test_a_suite_runs_once_per_test_on_both_dask_workers_from_their_own_copies(
        self, cluster: DaskCluster, tmp_path: Path
    ) -> None:
        """-n 2 over dask://: all pass once, both workers used, code from each one's copy."""
        run = Run(cluster, tmp_path)
        code, output = run.finish()
        assert code == 0, output[-4000:]
        assert "2 workers on dask://" in output, output[:3000]
        records = run.records()
        nodeids = Counter(rec["nodeid"] for rec in records)
        assert len(nodeids) == 13, nodeids
        assert set(nodeids.values()) == {1}, nodeids
        check_placement(records, cluster, run.project)
        assert {worker_of(rec, cluster) for rec in records} == {"w0", "w1"}
        report = json.loads(run.report.read_text())
        assert [t["outcome"] for t in report["tests"]] == ["passed"] * 13
        assert len({t["nodeid"] for t in report["tests"]}) == 13
        assert report["workers"], report
        assert all(
            w["engine"] == "dask" and w["host"] == socket.gethostname() for w in report["workers"]
        ), report["workers"]
        # The session's bytes came over the relays: the run report counts them.
        (relay,) = [e for e in report["events"] if e["event"] == "dask_relay"]
        assert relay["relays"] == 2
        assert min(relay["bytes_in"], relay["bytes_out"]) > 1000, relay
        assert " MB in, " in output

    def test_the_next_run_takes_workers_warmed_up_over_its_shipped_copy(
        self, cluster: DaskCluster, tmp_path: Path
    ) -> None:
        """After a run each host warms the next one's workers as the local farm does: the
        project's warm-up hook ran in them over that host's shipped copy; the second run's
        tests run in exactly those processes."""
        first = Run(cluster, tmp_path / "first")
        code, output = first.finish()
        assert code == 0, output[-4000:]

        def warmed() -> list[Path]:
            return [p for p in cluster.root.glob("w*/**/trees/*/tree0/warmed-*") if p.is_file()]

        def hosts_warmed() -> int:
            return len({p.relative_to(cluster.root).parts[0] for p in warmed()})

        assert wait_until(lambda: hosts_warmed() >= 2), [str(p) for p in warmed()]
        second = Run(cluster, tmp_path / "second", project=first.project)
        code, output = second.finish()
        assert code == 0, output[-4000:]
        # (their warm-up may still be ending: the header may count one as cold)
        assert "2 workers on dask://" in output, output[:3000]
        by_pid = {int(p.name.removeprefix("warmed-")): p for p in warmed()}
        records = second.records()
        assert len(records) == 13
        for rec in records:
            assert rec["pid"] in by_pid, (rec, sorted(by_pid))
            name = worker_of(rec, cluster)
            assert name is not None
            copy = by_pid[rec["pid"]].parent
            assert copy.is_relative_to(cluster.root / name), (copy, name)
            assert Path(rec["module"]).is_relative_to(copy), (rec["module"], copy)
        assert {worker_of(rec, cluster) for rec in records} == {"w0", "w1"}

    @pytest.mark.parametrize("how", ["killed", "silent"])
    def test_losing_a_dask_worker_mid_run_reruns_its_test_on_the_survivor(
        self, cluster: DaskCluster, tmp_path: Path, how: str
    ) -> None:
        """A Dask worker killed with its nanny, or silent (SIGSTOP: no EOF, only the
        relay's heartbeat notices) under a test: exit 0, each test passed once, the test
        in flight rerun on the survivor."""
        live = cluster.live_workers()
        if len(live) < 2:
            cluster.add_worker(f"w{len(cluster.procs)}")
            cluster.wait_for_workers(2, time.monotonic() + 60)
            live = cluster.live_workers()
        run = Run(cluster, tmp_path, kill=True)
        gate = run.out / "gate"
        deadline = time.monotonic() + RUN_TIMEOUT_S / 2
        while not gate.exists():
            assert run.proc.poll() is None, run.finish()[1][-4000:]
            assert time.monotonic() < deadline, "the gate test never started"
            time.sleep(0.1)
        time.sleep(0.2)  # its record line is written before the gate file
        first = next(r for r in run.records() if r["nodeid"].endswith("test_in_flight"))
        victim = worker_of(first, cluster)
        assert victim in live
        if how == "killed":
            cluster.kill(victim)
        else:
            cluster.pause(victim)
        try:
            code, output = run.finish()
        finally:
            cluster.kill(victim)
        assert code == 0, output[-4000:]
        records = run.records()
        gate_runs = [r for r in records if r["nodeid"].endswith("test_in_flight")]
        assert len(gate_runs) == 2, gate_runs
        assert worker_of(gate_runs[1], cluster) in set(live) - {victim}
        check_placement([r for r in records if r is not first], cluster, run.project)
        outcomes = run.junit_outcomes()
        assert len(outcomes) == 13, outcomes
        assert all(kind == "passed" and n == 1 for (_, kind), n in outcomes.items()), outcomes
        report = json.loads(run.report.read_text())
        assert sorted(Counter(t["nodeid"] for t in report["tests"]).values()) == [1] * 13
        assert {t["outcome"] for t in report["tests"]} == {"passed"}
        assert all(w["engine"] == "dask" for w in report["workers"]), report["workers"]


class TestDaskFarmOverTLS:
    def test_a_dask_tls_url_runs_the_suite_over_dasks_tls_connections(
        self, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
    ) -> None:
        """A cluster that speaks tls:// only, the TLS settings in Dask's config: -n 2 over
        dask+tls:// passes every test once, on hosted workers reached through tls://."""
        root = tmp_path_factory.mktemp("dask-tls")
        cluster = DaskCluster(root, workers=2, tls=make_tls_files(root / "tls"))
        try:
            cluster.start()
            assert cluster.address.startswith("tls://")
            assert cluster.url.startswith("dask+tls://")
            run = Run(cluster, tmp_path)
            code, output = run.finish()
        finally:
            cluster.stop()
        assert code == 0, output[-4000:]
        assert "2 workers on dask+tls://" in output, output[:3000]
        assert "(tls://127.0.0.1:" in output, output[-3000:]  # the relays' Dask workers
        records = run.records()
        assert sorted(Counter(r["nodeid"] for r in records).values()) == [1] * 13
        check_placement(records, cluster, run.project)
        report = json.loads(run.report.read_text())
        assert all(w["engine"] == "dask" for w in report["workers"]), report["workers"]
