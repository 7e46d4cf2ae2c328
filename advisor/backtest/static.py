"""The best static plan chosen in hindsight: for each workload, the one plan from a grid of market order x limit
x guard margin whose mean cost over all the backtest's starts is lowest (fewest misses first). It knows the future
in choosing, so it is the bar an advisor that sees only the past should come close to."""

from __future__ import annotations

import numpy as np
import pandas as pd

from advisor.backtest.strategies import Universe, cheapest_on_demand, safe_margin
from advisor.plan import Bid, Fallback, MarketPaths, Plan, Workload, replay

LIMIT_FACTORS = (0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 3.0)  # x the cheapest on-demand price
EXTRA_GUARD = (0.0, 2.0, 6.0, 12.0)


def static_grid(w: Workload, universe: Universe, first: MarketPaths, return_below: float | None = None) -> list[Plan]:
    """Market orders (each spot market alone, and all of them cheapest-first) x limits x guard margins; with
    `return_below`, each also once returning after the guard (a grid as equipped as the advisor's plans)."""
    od, price = cheapest_on_demand(universe, first)
    by_price = sorted(universe.spot, key=lambda m: np.nan_to_num(first.mean[0, first.index(m), 0], nan=np.inf))
    orders = [(m,) for m in universe.spot] + ([tuple(by_price)] if len(by_price) > 1 else [])
    fallback = (Fallback(od),)
    returns = (None,) if return_below is None else (None, return_below)
    return [Plan(bids=tuple(Bid(m, round(f * price, 4)) for m in order), fallback=fallback,
                 guard_margin_hours=safe_margin(w) + g, return_below=r)
            for order in orders for f in LIMIT_FACTORS for g in EXTRA_GUARD if safe_margin(w) + g < w.horizon
            for r in returns]


def best_static_rows(windows: list[tuple[pd.Timestamp, Workload, MarketPaths]], universe: Universe,
                     return_below: float | None = None) -> list[dict]:
    """Rows (start, cost, finished, ...) of the hindsight-best grid plan over the given windows of one workload."""
    w0, first = windows[0][1], windows[0][2]
    best, best_key = None, None
    for plan in static_grid(w0, universe, first, return_below):
        results = [replay(w, plan, window) for _, w, window in windows]
        key = (sum(not r.finished for r in results), float(np.mean([r.cost for r in results])))
        if best_key is None or key < best_key:
            best, best_key = results, key
    return [{"start": start, "cost": r.cost, "finished": r.finished, "finish_hour": r.finish_hour,
             "preemptions": r.preemptions} for (start, _, _), r in zip(windows, best, strict=True)]
