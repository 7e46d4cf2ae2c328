"""`advisor recommend` speed: a 14-day, 2 x 8-GPU H100 job over the demo data (target < 5 s wall on 2 cores).

Times the whole command in a fresh process (imports included), median of 5 runs (the machines are shared: one
run can be 20% off).

    python benchmarks/recommend.py
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time

CMD = [sys.executable, "-m", "advisor.cli", "recommend", "--gpu", "H100", "--nodes", "2", "--gpu-hours", "5376",
       "--deadline", "16d", "--json"]


def main() -> None:
    subprocess.run(CMD, check=True, capture_output=True)  # builds the demo database if needed
    times, cpu = [], []
    for _ in range(5):
        t, used = time.perf_counter(), _children_cpu()
        subprocess.run(CMD, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
        cpu.append(_children_cpu() - used)
    print(f"recommend, 14-day 2 x 8 H100 over the demo market: median {statistics.median(times):.2f}s wall, "
          f"best {min(times):.2f}s (target < 5 s); CPU median {statistics.median(cpu):.2f}s")


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
