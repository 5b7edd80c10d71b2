"""The orphan sweep kills adopted orphans, never a helper the daemon is waiting for."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, subprocess, sys, threading, time
import psutil
from farm_server.procs import run_helper, sweep_orphans

done = {}
SLEEP = [sys.executable, "-c", "import time; time.sleep(2)"]
def helper():
    done["helper"] = run_helper(SLEEP, timeout=20).returncode
thread = threading.Thread(target=helper)
thread.start()
stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
deadline = time.monotonic() + 10
while len(psutil.Process().children()) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
swept = sweep_orphans(set())
thread.join(20)
print(json.dumps({"helper": done.get("helper"), "swept": swept, "stray": stray.pid}))
"""


def test_a_helper_survives_the_sweep_and_a_stray_child_does_not():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    assert found["helper"] == 0
    assert found["swept"] == [found["stray"]]
