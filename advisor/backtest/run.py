"""Rolling-origin backtest: many start times x a grid of workloads x strategies, each replayed on recorded
history and compared with the hindsight optimum on the same window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from advisor.backtest.oracle import hindsight_cost
from advisor.backtest.static import best_static_rows
from advisor.backtest.strategies import PLAN_STRATEGIES, Universe, cheapest_on_demand, uniform_progress
from advisor.plan import MarketPaths, Plan, ReplayResult, Workload, replay

STRATEGIES = ("on_demand", "greedy", "uniform_progress", "docs_rule")
# the hindsight-best static plans, by name: the grid, and the same grid also returning after the guard at the
# share the advisor's plans use (`optimize.candidates.RETURN_BELOW`), a yardstick as equipped as the advisor
STATIC = {"best_static": None, "best_static_returning": 0.8}

# A strategy that sees only the past: given the workload, its universe and the start time, return a plan (or a
# plan and the probability of meeting the deadline it promised).
PlanFn = Callable[[Workload, Universe, pd.Timestamp], Plan | tuple[Plan, float]]


@dataclass(frozen=True)
class Grid:
    """The workloads a backtest sweeps: work hours x deadline slack (deadline = hours x slack) x gang size."""

    hours: tuple[float, ...]
    slack: tuple[float, ...]
    nodes: tuple[int, ...] = (1,)
    checkpoint_every: float = 1.0
    restart_overhead: float = 0.25

    def workloads(self) -> list[tuple[float, Workload]]:
        return [(s, Workload(hours=h, deadline_hours=float(np.floor(h * s)), nodes=n,
                             checkpoint_every=self.checkpoint_every, restart_overhead=self.restart_overhead))
                for h in self.hours for s in self.slack for n in self.nodes]


def start_times(first: pd.Timestamp, last: pd.Timestamp, every_hours: float, warmup_hours: float,
                longest_hours: float) -> list[pd.Timestamp]:
    """Starts every `every_hours` after `warmup_hours` of history, leaving room for the longest deadline."""
    begin = pd.Timestamp(first).ceil("h") + pd.Timedelta(hours=warmup_hours)
    end = pd.Timestamp(last).floor("h") - pd.Timedelta(hours=longest_hours)
    if end < begin:
        return []
    return list(pd.date_range(begin, end, freq=pd.Timedelta(hours=every_hours)))


def _strategy_results(name: str, w: Workload, universe: Universe, window: MarketPaths, plan_fns: dict[str, PlanFn],
                      start: pd.Timestamp) -> Iterable[tuple[str, ReplayResult, float | None]]:
    if name == "uniform_progress":
        od, _ = cheapest_on_demand(universe, window)
        for spot in universe.spot:
            label = name if len(universe.spot) == 1 else f"{name}@{spot.split(':')[1]}"
            yield label, uniform_progress(w, spot, od, window), None
    elif name in PLAN_STRATEGIES:
        yield name, replay(w, PLAN_STRATEGIES[name](w, universe, window), window), None
    elif name in plan_fns:
        out = plan_fns[name](w, universe, start)
        plan, promised = out if isinstance(out, tuple) else (out, None)
        yield name, replay(w, plan, window), promised
    else:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join([*STRATEGIES, *STATIC, *plan_fns])}")


def run_backtest(history: MarketPaths, universe: Universe, grid: Grid, starts: list[pd.Timestamp],
                 strategies: Iterable[str] = STRATEGIES, plan_fns: dict[str, PlanFn] | None = None,
                 on_step: Callable[[], None] | None = None) -> pd.DataFrame:
    """One row per (start, workload, strategy): cost, deadline met, preemptions, hindsight cost and the ratio.

    `history` must start at or before the first start and cover the longest deadline after the last one.
    """
    plan_fns = plan_fns or {}
    markets = list(universe.spot + universe.on_demand)
    rows = []
    windows: dict[tuple, list] = {}
    for start in starts:
        offset = int((start - history.start) / pd.Timedelta(hours=1))
        for slack, base in grid.workloads():
            w = replace(base, start=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
            window = history.window(offset, w.horizon)
            best = hindsight_cost(w, window, markets)
            windows.setdefault((slack, w.hours, w.nodes), []).append((start, w, window, best))
            for name in strategies:
                if name in STATIC:
                    continue
                for label, r, promised in _strategy_results(name, w, universe, window, plan_fns, start):
                    rows.append({"start": start, "hours": w.hours, "slack": slack, "deadline_hours": w.deadline_hours,
                                 "nodes": w.nodes, "strategy": label, "cost": r.cost, "finished": r.finished,
                                 "finish_hour": r.finish_hour, "preemptions": r.preemptions, "hindsight_cost": best,
                                 "ratio": r.cost / best if np.isfinite(best) and best > 0 else np.nan,
                                 "promised": promised})
            if on_step:
                on_step()
    for name in STATIC:
        if name in strategies:
            rows += _best_static(windows, universe, name)
    return pd.DataFrame(rows)


def _best_static(windows: dict[tuple, list], universe: Universe, name: str) -> list[dict]:
    out = []
    for (slack, _, _), items in windows.items():
        picked = best_static_rows([(s, w, win) for s, w, win, _ in items], universe, STATIC[name])
        for (_, w, _, best), row in zip(items, picked, strict=True):
            out.append({**row, "hours": w.hours, "slack": slack, "deadline_hours": w.deadline_hours,
                        "nodes": w.nodes, "strategy": name, "hindsight_cost": best,
                        "ratio": row["cost"] / best if np.isfinite(best) and best > 0 else np.nan, "promised": None})
    return out


def advisor_by_workload(rows: pd.DataFrame) -> pd.DataFrame:
    """Per workload (hours, slack, nodes): the advisor's mean cost over the hindsight-best static plan's (and the one
    that may return after the guard) and over the docs' rule's (NaN for a strategy not run), and the P(meet deadline)
    it promised against the rate it met."""
    keys = ["hours", "slack", "nodes"]
    mean = rows.pivot_table(index=keys, columns="strategy", values="cost", aggfunc="mean")
    advisor = rows[rows["strategy"] == "advisor"].groupby(keys)
    out = pd.DataFrame({"vs_best_static": mean["advisor"] / mean.get("best_static", np.nan),
                        "vs_best_static_returning": mean["advisor"] / mean.get("best_static_returning", np.nan),
                        "vs_docs_rule": mean["advisor"] / mean.get("docs_rule", np.nan),
                        "promised_p": advisor["promised"].mean().astype(float),
                        "realized_p": advisor["finished"].mean().astype(float)})
    return out.reset_index()


def summarize(rows: pd.DataFrame, by: tuple[str, ...] = ("strategy",)) -> pd.DataFrame:
    """Per group: runs, mean and P90 cost ratio to the hindsight optimum, deadline-miss rate, mean cost."""
    groups = rows.groupby(list(by), sort=False)
    out = groups.agg(runs=("cost", "size"), mean_ratio=("ratio", "mean"),
                     p90_ratio=("ratio", lambda r: float(np.nanquantile(r, 0.9)) if r.notna().any() else np.nan),
                     miss_rate=("finished", lambda f: 1.0 - float(np.mean(f))), mean_cost=("cost", "mean"))
    if "promised" in rows and rows["promised"].notna().any():
        out["promised_p"] = groups["promised"].mean()
    return out.reset_index()
