"""Forecaster speed: fit 20 markets + draw 1000 joint scenarios x 336 h (target < 10 s on 2 cores).

Uses the embedded demo market (4 weeks of history before its last week); prints the median of a few repeats.

    python benchmarks/forecast.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from advisor import store
from advisor.forecast import Forecaster
from advisor.plan import load_history
from advisor.store.default import resolve_db


def main() -> None:
    con = store.connect(resolve_db(None), read_only=True)
    markets = store.list_markets(con)["market"].tolist()[:20]
    _, last = store.coverage(con, markets)
    origin = pd.Timestamp(last).floor("h") - pd.Timedelta(weeks=1)
    history = load_history(con, markets, origin - pd.Timedelta(weeks=4), 28 * 24)
    times = []
    for seed in range(3):
        t = time.perf_counter()
        Forecaster(n_paths=1000, seed=seed).fit(history).scenarios(1000, 336)
        times.append(time.perf_counter() - t)
    print(f"{len(markets)} markets: fit + 1000 scenarios x 336 h: median {np.median(times):.2f}s, "
          f"best {min(times):.2f}s (target < 10 s)")


if __name__ == "__main__":
    main()
