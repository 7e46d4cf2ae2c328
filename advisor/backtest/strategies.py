"""The strategies the advisor is compared against, each costed by the replay engine.

- `on_demand`: the cheapest on-demand market from the first hour.
- `greedy`: spot whenever any spot market is available, on-demand once the slack is gone; markets tried cheapest
  first at the start.
- `docs_rule`: Mithril's advice, limit = your next best alternative (the cheapest on-demand price), on the first
  listed spot market, on-demand once the slack is gone.
- `uniform_progress`: "Can't Be Late" (Wu et al., NSDI '24), single region, with its rules: Safety Net (on-demand
  for good once time left < work left + 2 x restart overhead, tick-aligned), Hysteresis (stay on on-demand until
  progress >= the uniform line at t + 2d), Taking Risks / Exploitation (spot whenever available, kept until
  preempted), Uniform Progress (idle and behind the line t x C0 / R0: on-demand to catch up), Thrifty (stop when
  done). It is not a plan, so it drives the same `Ledger` the plan replay uses.

In a priced market, "spot is available" for Greedy and Uniform Progress means it has capacity at a price below the
cheapest on-demand price (both policies assume spot is the cheaper option); on capacity-only traces the price
never binds.

"Slack gone" uses the smallest guard margin that provably never misses when on-demand is always there:
1 hour (decisions are hourly) + `checkpoint_every` (the most a preemption can take back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from advisor.plan import Bid, Fallback, Ledger, MarketPaths, Plan, ReplayResult, Slot, Workload, replay


@dataclass(frozen=True)
class Universe:
    """The markets a backtest may use for one workload: spot markets (listed order) and on-demand markets."""

    spot: tuple[str, ...]
    on_demand: tuple[str, ...]


def safe_margin(workload: Workload) -> float:
    """The guard margin that never misses when on-demand is always available (see the module docstring)."""
    return 1.0 + workload.checkpoint_every


def cheapest_on_demand(universe: Universe, paths: MarketPaths) -> tuple[str, float]:
    """The on-demand market with the lowest price in the first hour (its list price)."""
    if not universe.on_demand:
        raise ValueError("no on-demand market to fall back to")
    prices = {m: float(paths.mean[0, paths.index(m), 0]) for m in universe.on_demand}
    known = {m: p for m, p in prices.items() if not math.isnan(p)}
    market = min(known or prices, key=lambda m: (known or prices)[m])
    return market, prices[market]


def on_demand_plan(workload: Workload, universe: Universe, paths: MarketPaths) -> Plan:
    market, _ = cheapest_on_demand(universe, paths)
    return Plan(fallback=(Fallback(market),), guard_margin_hours=float(workload.horizon))


def greedy_plan(workload: Workload, universe: Universe, paths: MarketPaths) -> Plan:
    market, price = cheapest_on_demand(universe, paths)
    by_price = sorted(universe.spot, key=lambda m: np.nan_to_num(paths.mean[0, paths.index(m), 0], nan=np.inf))
    bids = tuple(Bid(m, price) for m in by_price)
    return Plan(bids=bids, fallback=(Fallback(market),), guard_margin_hours=safe_margin(workload))


def docs_rule_plan(workload: Workload, universe: Universe, paths: MarketPaths) -> Plan:
    market, price = cheapest_on_demand(universe, paths)
    bids = (Bid(universe.spot[0], price),) if universe.spot else ()
    return Plan(bids=bids, fallback=(Fallback(market),), guard_margin_hours=safe_margin(workload))


PLAN_STRATEGIES = {"on_demand": on_demand_plan, "greedy": greedy_plan, "docs_rule": docs_rule_plan}


def uniform_progress(workload: Workload, spot: str, on_demand: str, paths: MarketPaths,
                     scenario: int = 0) -> ReplayResult:
    """Replay Uniform Progress on one spot market with one on-demand market (see the module docstring)."""
    limit = float(paths.mean[scenario, paths.index(on_demand), 0])
    spot_slot = Slot("bid", spot, paths.index(spot), limit)
    od_slot = Slot("fallback", on_demand, paths.index(on_demand))
    job = Ledger(workload, paths, scenario)
    c0, r0, d = workload.hours, float(workload.horizon), workload.restart_overhead
    safety = False
    for t in range(workload.horizon):
        if job.done:
            break
        done = c0 - job.remaining
        safety = safety or math.ceil(job.remaining + 2 * d - 1e-9) >= workload.horizon - t
        on_od, od_ok = job.current is od_slot, job.usable(od_slot, t)
        if safety or (on_od and (t + 2 * d) * c0 / r0 > done):
            choice = od_slot if od_ok else None
        elif job.usable(spot_slot, t):
            choice = spot_slot
        elif t * c0 / r0 > done and od_ok:
            choice = od_slot
        else:
            choice = None
        job.step(t, choice)
    return job.result(None)


def run_strategy(name: str, workload: Workload, universe: Universe, paths: MarketPaths) -> ReplayResult:
    """Cost one named strategy on one path (scenario 0) with the replay engine."""
    if name == "uniform_progress":
        od, _ = cheapest_on_demand(universe, paths)
        return uniform_progress(workload, universe.spot[0], od, paths)
    if name not in PLAN_STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}")
    return replay(workload, PLAN_STRATEGIES[name](workload, universe, paths), paths)
