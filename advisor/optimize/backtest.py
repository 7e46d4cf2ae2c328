"""The advisor as a backtest strategy: at each start it recommends with `as_of` = the start (seeing only the
past) and hands the plan, with the probability it promised, to the backtest's replay on what really happened."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pandas as pd

from advisor.backtest.strategies import Universe
from advisor.optimize.recommend import recommend
from advisor.plan import Plan, Workload

# The advisor's variants a backtest can name: as `advisor recommend` runs, and with `--fixed-limits` (what the late
# limit buys on a market's own history).
ADVISOR_STRATEGIES = {"advisor": {}, "advisor_fixed_limits": {"move_limits": False}}


def advisor_plan_fn(con: duckdb.DuckDBPyConnection, n_train: int = 80, lookback_hours: int = 28 * 24,
                    move_limits: bool = True):
    """A backtest plan function `(workload, universe, start) -> (plan, promised P(meet deadline))`."""

    def plan_at(workload: Workload, universe: Universe, start: pd.Timestamp) -> tuple[Plan, float]:
        scoped = replace(workload, markets=tuple(universe.spot + universe.on_demand), gpu=None)
        rec = recommend(con, scoped, as_of=start, n_train=n_train, n_eval=n_train, lookback_hours=lookback_hours,
                        move_limits=move_limits)
        return rec.chosen.plan, rec.chosen.probability

    return plan_at


def advisor_plan_fns(con: duckdb.DuckDBPyConnection, strategies: list[str]) -> dict:
    """A plan function for each of ADVISOR_STRATEGIES the strategies name."""
    return {name: advisor_plan_fn(con, **options) for name, options in ADVISOR_STRATEGIES.items()
            if name in strategies}
