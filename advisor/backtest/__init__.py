"""Rolling evaluation of strategies (baselines, the advisor) against the hindsight optimum on real history."""

from advisor.backtest.oracle import hindsight_cost
from advisor.backtest.strategies import (
    PLAN_STRATEGIES,
    Universe,
    cheapest_on_demand,
    run_strategy,
    safe_margin,
    uniform_progress,
)

__all__ = ["PLAN_STRATEGIES", "Universe", "cheapest_on_demand", "hindsight_cost", "run_strategy", "safe_margin",
           "uniform_progress"]
