"""pytest-fast (PyPI ``pytest-fast``, a resident forkserver) as a peer of the farm in
``bench_real_suites.py``.

pytest-fast's daemon (``python -m pytest_fast --serve``) collects the suite once in a
forkserver process and, for every client request, forks fresh workers off it that run the
already collected items through pytest's runtest protocol. It takes no pytest arguments on
its command line: the collecting config is built from ``PYTEST_ADDOPTS`` (plus
``-m $PYTEST_FAST_MARK -q -n0``) in its working directory. So :class:`FastDaemon` turns the
suite's arguments into that environment, starts the daemon in ``tree`` and measures one
warm client run at a time with pytest-fast's public quiet client ``request_run_results``,
which returns every test's outcome. A tiny probe plugin, loaded into the daemon's
collection, notes when each forked worker starts its first test.

The daemon re-collects (exits "stale", and this module raises :class:`FastUnfit`) when a
``*.py`` file under its watched directories, or a watched config file, is newer than its
boot, or when one of its fingerprinted variables (``PYTEST_ADDOPTS``, ``PYTEST_FAST_*``)
differs in the client. The watched directories default to every top-level directory of
the tree that holds Python code, so its stale-code check covers the code under test as
the farm's does.

Tested with pytest-fast 0.16.0 (``pip install pytest-fast==0.16.0`` into the interpreter
that runs the suites). Installed, it is a ``pytest11`` plugin that every pytest session of
that interpreter imports, and the import sets ``no_proxy``/``NO_PROXY=*``; other arms keep
it out with ``-p no:pytest_fast`` (which :class:`FastDaemon` drops from its own arguments).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["FastDaemon", "FastUnfit", "available", "fast_environment"]

#: the pytest-fast version this module was written against
TESTED_VERSION = "0.16.0"

#: options that change which tests run, stop early or need a terminal: pytest-fast
#: forks its workers past pytest's run loop and cannot honour them
REFUSED = frozenset(
    {
        "-x",
        "--exitfirst",
        "--maxfail",
        "--lf",
        "--last-failed",
        "--sw",
        "--stepwise",
        "--sw-skip",
        "--stepwise-skip",
        "--pdb",
        "--trace",
        "-f",
        "--looponfail",
        "--co",
        "--collect-only",
        "--setup-only",
        "--setup-plan",
        "--fast",
        "--tx",
        "--rsyncdir",
    }
)
#: xdist's distribution modes whose meaning pytest-fast's per-test work queue keeps
DIST_KEPT = frozenset({"load", "no", "worksteal"})

PROBE_MODULE = "_pf_bench_probe"
PROBE = '''\
"""Notes when this pytest-fast worker starts its first test (bench probe)."""
import os
import time

import pytest

_SEEN = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    global _SEEN
    if not _SEEN:
        _SEEN = True
        out = os.environ.get("PF_BENCH_PROBE_DIR")
        if out:
            with open(os.path.join(out, "first-%d" % os.getpid()), "w") as fh:
                fh.write(repr(time.time()))
'''

CLIENT = """\
import json, sys
from pytest_fast import request_run_results
results = []
frame = request_run_results(
    sys.argv[1], lambda r: results.append([r["nodeid"], r["outcome"], r.get("cpu", 0.0)])
)
keep = {k: frame[k] for k in ("rc", "summary", "stale", "collection_errors") if k in frame}
with open(sys.argv[2], "w") as fh:
    json.dump({"frame": keep, "meta": frame.get("run_meta"), "results": results}, fh)
"""

AVAILABLE = """\
import importlib.metadata, pytest_fast
assert hasattr(pytest_fast, "request_run_results"), "no request_run_results"
print(importlib.metadata.version("pytest-fast"))
"""

#: files at a tree's top whose change means a re-collection
CONFIG_FILES = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", "conftest.py")
#: top-level directories never watched
UNWATCHED = frozenset({"__pycache__", "build", "dist", "node_modules"})


class FastUnfit(Exception):
    """pytest-fast cannot run this suite as asked; the message says why."""


def available(python: str) -> str:
    """``""`` when pytest-fast can be used with ``python``, else why not (a sentence)."""
    if os.name != "posix":
        return "pytest-fast needs POSIX (a forkserver)"
    try:
        done = subprocess.run(
            [python, "-c", AVAILABLE],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} did not answer: {exc}"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return (
            f"pytest-fast is not importable by {python} ({tail}); "
            f"pip install pytest-fast=={TESTED_VERSION} there"
        )
    return ""


def _value(args: list[str], i: int, name: str) -> tuple[str, int]:
    """The value of option ``args[i]`` (``--opt=v``, ``-ov`` or ``--opt v``) and the next index."""
    arg = args[i]
    if arg.startswith("--") and "=" in arg:
        return arg.split("=", 1)[1], i + 1
    if not arg.startswith("--") and len(arg) > 2:
        return arg[2:], i + 1
    if i + 1 >= len(args):
        raise FastUnfit(f"option {name} without a value")
    return args[i + 1], i + 2


def fast_environment(args: list[str]) -> tuple[str, str | None]:
    """(the ``PYTEST_ADDOPTS`` text, the ``-m`` expression or None) that make pytest-fast's
    collection match ``pytest ARGS``: ``-n``/``--numprocesses``, ``--dist load`` and
    ``-p no:pytest_fast`` are dropped, ``-m`` moves to ``PYTEST_FAST_MARK``.
    Raises :class:`FastUnfit` on an option pytest-fast cannot honour."""
    kept: list[str] = []
    mark: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name in REFUSED:
            raise FastUnfit(f"pytest-fast cannot honour {name} (it has no pytest run loop)")
        if name in ("-n", "--numprocesses") or (arg.startswith("-n") and not arg.startswith("--")):
            _, i = _value(args, i, "-n")  # pytest-fast chooses its workers itself
            continue
        if name == "--dist":
            dist, i = _value(args, i, name)
            if dist not in DIST_KEPT:
                raise FastUnfit(f"pytest-fast has one per-test work queue, no --dist {dist}")
            continue
        if name == "-m" or (arg.startswith("-m") and not arg.startswith("--")):
            mark, i = _value(args, i, "-m")  # collection appends -m $PYTEST_FAST_MARK last
            continue
        if name == "-p" or (arg.startswith("-p") and not arg.startswith("--")):
            plugin, nxt = _value(args, i, "-p")
            if plugin == "no:pytest_fast":  # its workers call pytest-fast's own hooks
                i = nxt
                continue
        kept.append(arg)
        i += 1
    return shlex.join(kept), mark


def _watched(tree: Path) -> tuple[list[str], list[str]]:
    """(top-level directories holding Python code, top-level config and ``*.py`` files)."""
    dirs = []
    for d in sorted(tree.iterdir()):
        if (
            not d.is_dir()
            or d.name.startswith(".")
            or d.name in UNWATCHED
            or d.name.endswith((".egg-info", ".dist-info"))
            or "," in d.name
            or ":" in d.name
        ):
            continue
        if next(d.rglob("*.py"), None) is not None:
            dirs.append(d.name)
    files = [f for f in CONFIG_FILES if (tree / f).is_file()]
    files += sorted(p.name for p in tree.glob("*.py") if p.name not in files)
    return dirs, [f for f in files if "," not in f and ":" not in f]


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` has exited, without reaping it: while it is unreaped its pid, and so
    its process group's id, cannot be taken by another process before :meth:`FastDaemon.stop`."""
    if proc.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class FastDaemon:
    """One resident pytest-fast daemon for one suite; :meth:`start`, :meth:`run`, :meth:`stop`.

    ``python`` must have pytest-fast installed (see :func:`available`). ``ttl`` is the
    daemon's idle time-out: long enough to outlast the other arms of a round.
    """

    def __init__(
        self,
        python: str = sys.executable,
        *,
        ttl: float = 7200.0,
        ready_timeout: float = 900.0,
        run_timeout: float = 1800.0,
    ) -> None:
        self.python = python
        self.ttl = ttl
        self.ready_timeout = ready_timeout
        self.run_timeout = run_timeout
        self.tree: Path | None = None
        self.env: dict[str, str] = {}
        self.workers = 0
        self.boot_s: float | None = None
        #: the last run's summary and return code from the daemon, and its tests' CPU seconds
        #: (each worker's process time over each test's protocol, summed)
        self.last_summary = ""
        self.last_rc: int | None = None
        self.last_cpu_s = 0.0
        #: whether pytest-fast flagged the last run untrusted (a worker died, results short)
        self.last_untrusted = False
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._gone = ""

    @property
    def address(self) -> str:
        """The daemon's control socket."""
        if self._dir is None:
            raise RuntimeError("the daemon is not started")
        return str(self._dir / "d.sock")

    @property
    def log(self) -> Path | None:
        """The daemon's stdout and stderr (its lifecycle log and collection errors)."""
        return None if self._dir is None else self._dir / "daemon.log"

    def log_tail(self, lines: int = 20) -> str:
        """The daemon log's lines that say "error:" (a usage error while collecting), if any,
        else its end."""
        log = self.log
        if log is None or not log.is_file():
            return ""
        text = log.read_text(errors="replace").splitlines()
        errors = list(dict.fromkeys(line for line in text if "error:" in line.lower()))
        return "\n".join(errors[:5] or text[-lines:])

    def start(self, tree: Path, args: list[str], env: dict[str, str], workers: int = 2) -> None:
        """Start the daemon for the suite at ``tree`` as ``pytest ARGS`` in ``env`` would run it,
        with ``workers`` workers, and return once it has collected (bounded by ``ready_timeout``).
        Raises :class:`FastUnfit` if pytest-fast cannot run it."""
        if self._proc is not None:
            raise RuntimeError("already started")
        reason = available(self.python)
        if reason:
            raise FastUnfit(reason)
        addopts, mark = fast_environment(args)
        tree = tree.resolve()
        self._dir = Path(tempfile.mkdtemp(prefix="pf-bench-"))
        (self._dir / f"{PROBE_MODULE}.py").write_text(PROBE)
        (self._dir / "probe").mkdir()
        dirs, files = _watched(tree)
        run_env = {k: v for k, v in env.items() if not k.startswith("PYTEST_FAST_")}
        run_env.pop("_PYTEST_FAST_COLLECT", None)
        run_env["PYTEST_ADDOPTS"] = " ".join(
            p for p in (env.get("PYTEST_ADDOPTS", ""), addopts, f"-p {PROBE_MODULE}") if p
        )
        if mark is not None:
            run_env["PYTEST_FAST_MARK"] = mark
        run_env["PYTEST_FAST_ROOT"] = str(tree)
        run_env["PYTEST_FAST_WATCH_DIRS"] = ",".join(dirs)
        run_env["PYTEST_FAST_WATCH_FILES"] = ",".join(files)
        run_env["PF_BENCH_PROBE_DIR"] = str(self._dir / "probe")
        path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        run_env["PYTHONPATH"] = os.pathsep.join([*path, str(self._dir)])
        self.tree, self.env, self.workers = tree, run_env, workers
        cmd = [self.python, "-m", "pytest_fast", "--serve", "--address", self.address]
        cmd += ["--ttl", str(self.ttl), "--workers", str(workers)]
        started = time.monotonic()
        with (self._dir / "daemon.log").open("wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=tree,
                env=run_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its forkserver and workers share its process group
            )
        # serve() collects first, then binds the socket and writes the pid file last
        pid_file = Path(self.address + ".pid")
        while not (pid_file.is_file() and Path(self.address).exists()):
            if _exited(self._proc):
                tail = self.log_tail()
                self.stop()
                raise FastUnfit(f"pytest-fast's daemon exited while collecting:\n{tail}")
            if time.monotonic() - started > self.ready_timeout:
                tail = self.log_tail()
                self.stop()
                raise FastUnfit(f"pytest-fast's daemon not ready in {self.ready_timeout}s:\n{tail}")
            time.sleep(0.05)
        self.boot_s = time.monotonic() - started

    def run(self) -> tuple[float, float | None, dict[str, str]]:
        """One warm client run: (wall seconds from the client's process start to its exit,
        seconds from that start to the first test starting in any worker or None,
        nodeid -> "passed"/"failed"/"error"/"skipped"/"xfailed").

        An xpass counts as "passed" (a strict one as "failed"), as the benchmark's probe has it.
        Raises :class:`FastUnfit` when the daemon refuses or loses the run (collection errors,
        stale sources or environment, no answer in ``run_timeout``)."""
        if self._proc is None or self._dir is None or self.tree is None:
            raise RuntimeError("the daemon is not started")
        if self._gone or _exited(self._proc):
            raise FastUnfit(f"pytest-fast's daemon is gone ({self._gone or 'exited'})")
        probe = self._dir / "probe"
        for old in probe.iterdir():
            old.unlink()
        out = self._dir / "result.json"
        out.unlink(missing_ok=True)
        started = time.time()
        try:
            done = subprocess.run(
                [self.python, "-c", CLIENT, self.address, str(out)],
                cwd=self.tree,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.run_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FastUnfit(f"pytest-fast's run gave no answer in {self.run_timeout}s") from exc
        wall = time.time() - started
        if done.returncode != 0 or not out.is_file():
            raise FastUnfit(
                f"pytest-fast's client failed ({done.returncode}): {done.stderr[-2000:]}\n"
                f"{self.log_tail()}"
            )
        data = json.loads(out.read_text())
        frame = data["frame"]
        self.last_summary = str(frame.get("summary", ""))
        self.last_rc = frame.get("rc")
        if frame.get("stale"):
            self._gone = "it went stale"
            raise FastUnfit(
                "pytest-fast's daemon went stale (a watched source is newer than its boot, or "
                "the environment differs) and exited"
            )
        if frame.get("rc") not in (0, 1):
            raise FastUnfit(f"pytest-fast refused the run: {self.last_summary}\n{self.log_tail()}")
        self.last_untrusted = "UNTRUSTED RUN" in self.last_summary
        outcomes: dict[str, str] = {}
        self.last_cpu_s = 0.0
        for nodeid, outcome, cpu in data["results"]:
            outcomes[nodeid] = "passed" if outcome == "xpassed" else outcome
            self.last_cpu_s += float(cpu or 0.0)
        firsts = []
        for p in probe.glob("first-*"):
            try:
                firsts.append(float(p.read_text()))
            except (OSError, ValueError):
                continue
        first = (min(firsts) - started) if firsts else None
        return wall, first, outcomes

    def stop(self) -> None:
        """End the daemon, its forkserver and any worker (one process group), with bounded waits,
        and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            pgid = proc.pid  # start_new_session: the daemon leads its own group
            for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait_s)
                except subprocess.TimeoutExpired:
                    continue
                if self._group_gone(pgid, wait_s):
                    break
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5.0)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    @staticmethod
    def _group_gone(pgid: int, wait_s: float) -> bool:
        """Whether no process of group ``pgid`` is left within ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> FastDaemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def overlay(cache: Path, python: str = sys.executable) -> str:
    """An interpreter that sees ``python``'s packages plus pytest-fast, built once in ``cache``.

    pytest-fast is a ``pytest11`` plugin: installed beside the suites it would be imported
    by every other arm's pytest session (and set ``no_proxy=*`` there). A virtualenv of
    its own, whose ``.pth`` file adds ``python``'s site-packages, keeps it out of them.
    Returns the overlay's python, or raises :class:`FastUnfit` when pip cannot build it.
    """
    import sysconfig

    root = cache / f"pytest-fast-{TESTED_VERSION}-overlay"
    target = root / "bin" / "python"
    if target.exists():
        return str(target)
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    steps = [
        [python, "-m", "venv", str(partial)],
        [
            str(partial / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            f"pytest-fast=={TESTED_VERSION}",
        ],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise FastUnfit(f"could not build the pytest-fast overlay: {done.stderr[-500:]}")
    site = subprocess.run(
        [
            str(partial / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    base = (
        sysconfig.get_paths()["purelib"]
        if python == sys.executable
        else subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    Path(site, "zz_base_packages.pth").write_text(f"import site; site.addsitedir({base!r})\n")
    partial.rename(root)
    return str(target)
