"""Deterministic CPU cost for the example suite.

The tests of a real project spend their time in real work. Here each test
says how much work it stands for, and `burn` does that much genuine
arithmetic, measured in CPU time of this process: durations stay the same
from run to run, and the work competes for cores like real test code does.
"""

import math
import time


def burn(milliseconds: float) -> float:
    """Do numeric work until `milliseconds` of process CPU time have passed."""
    deadline = time.process_time() + milliseconds / 1000
    acc, n = 0.0, 1
    while time.process_time() < deadline:
        for _ in range(200):
            acc += math.sqrt(n) * math.sin(n)
            n += 1
    return acc
