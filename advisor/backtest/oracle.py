"""The hindsight optimum: the cheapest way to finish on a known path, by dynamic programming.

State (hour t, work left r on a grid of delta hours, market run in t-1 or none); actions: wait, or run on any
market with capacity for the gang at any price (full knowledge: no limit needed). Moving (or resuming) costs the
restart overhead; the finishing hour is charged pro rata. It is exact for the relaxation in which no work is ever
lost to a preemption (with foresight a job checkpoints just before a price rise), which makes it a lower bound on
every strategy under the replay rules: any strategy's sequence of markets, replayed without losses, finishes no
later and pays no more. Work and overhead are put on the grid by rounding down, which keeps it a lower bound.
"""

from __future__ import annotations

import math

import numpy as np

from advisor.plan import MarketPaths, Workload


def _grid(workload: Workload) -> int:
    """Steps per hour: the smallest k <= 100 that puts the work and the restart overhead on the grid."""
    for k in range(1, 101):
        if all(abs(x * k - round(x * k)) < 1e-9 for x in (workload.hours, workload.restart_overhead)):
            return k
    return 100


def hindsight_cost(workload: Workload, paths: MarketPaths, markets: list[str], scenario: int = 0) -> float:
    """Lowest possible cost to finish by the deadline on this path (inf when no way exists)."""
    k = _grid(workload)
    units = int(math.floor(workload.hours * k + 1e-9))
    restart_units = int(math.floor(workload.restart_overhead * k + 1e-9))
    full, partial = k, k - restart_units  # progress units in an hour: kept market / (re)started
    idx = [paths.index(m) for m in markets]
    n_m, deadline = len(idx), workload.horizon
    cap = paths.avail[scenario, idx, :deadline]
    price = paths.mean[scenario, idx, :deadline] * workload.nodes
    ok = (np.isnan(cap) | (cap >= workload.nodes)) & ~np.isnan(price)
    r = np.arange(units + 1)
    value = np.full((n_m + 1, units + 1), np.inf)  # rows: markets, then "none"
    value[:, 0] = 0.0
    with np.errstate(invalid="ignore"):  # inf x 0 for unusable markets at r = 0; reset to 0 below
        return _solve(value, ok, price, units, restart_units, full, partial, k, n_m, deadline, r)


def _solve(value: np.ndarray, ok: np.ndarray, price: np.ndarray, units: int, restart_units: int, full: int,
           partial: int, k: int, n_m: int, deadline: int, r: np.ndarray) -> float:
    """Backward induction over the hours; `value[c, r]` is the cost to finish r units from market c (or none)."""
    for t in range(deadline - 1, -1, -1):
        p = np.where(ok[:, t], price[:, t], np.inf)[:, None]
        same = np.where(r <= full, p * r / k, p + value[:n_m, np.maximum(r - full, 0)])
        fresh = np.where(r <= partial, p * (restart_units + r) / k, p + value[:n_m, np.maximum(r - partial, 0)])
        fresh = np.where(np.isnan(fresh), np.inf, fresh)
        same = np.where(np.isnan(same), np.inf, same)
        order = np.argsort(fresh, axis=0)
        best, second = order[0], order[1] if n_m > 1 else order[0]
        best_val = np.take_along_axis(fresh, best[None], 0)[0]
        second_val = np.take_along_axis(fresh, second[None], 0)[0] if n_m > 1 else np.full(units + 1, np.inf)
        new = np.empty_like(value)
        for c in range(n_m):
            other = np.where(best == c, second_val, best_val)
            new[c] = np.minimum.reduce([value[n_m], same[c], other])
        new[n_m] = np.minimum(value[n_m], best_val)
        new[:, 0] = 0.0
        value = new
    return float(value[n_m, units])
