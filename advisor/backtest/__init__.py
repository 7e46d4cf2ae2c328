"""Rolling evaluation of strategies (baselines, the advisor) against the hindsight optimum on real history."""

from advisor.backtest.oracle import hindsight_cost
from advisor.backtest.run import STRATEGIES, Grid, advisor_by_workload, run_backtest, start_times, summarize
from advisor.backtest.strategies import (
    PLAN_STRATEGIES,
    Universe,
    cheapest_on_demand,
    run_strategy,
    safe_margin,
    uniform_progress,
)
from advisor.backtest.universe import backtest_from_store, starts_with_data, universe_from_store

__all__ = ["PLAN_STRATEGIES", "STRATEGIES", "Grid", "Universe", "advisor_by_workload", "backtest_from_store",
           "cheapest_on_demand", "hindsight_cost", "run_backtest", "run_strategy", "safe_margin", "start_times",
           "starts_with_data", "summarize", "uniform_progress", "universe_from_store"]
