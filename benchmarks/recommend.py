"""`advisor recommend` speed: a 14-day, 2 x 8-GPU H100 job over the demo data (target < 5 s wall on 2 cores).

Times the whole command in a fresh process (imports included), median of a few runs.

    python benchmarks/recommend.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CMD = [sys.executable, "-m", "advisor.cli", "recommend", "--gpu", "H100", "--nodes", "2", "--gpu-hours", "5376",
       "--deadline", "16d", "--json"]


def main() -> None:
    subprocess.run(CMD, check=True, capture_output=True)  # builds the demo database if needed
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(CMD, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    print(f"recommend, 14-day 2 x 8 H100 over the demo market: median {statistics.median(times):.2f}s wall, "
          f"best {min(times):.2f}s (target < 5 s)")


if __name__ == "__main__":
    main()
