"""Baselines, Uniform Progress and the hindsight optimum, on small paths the tests build."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan import MARKETS3, OD, SPOT, SPOT2, cases, paths

from advisor.backtest import Universe, hindsight_cost, run_strategy, safe_margin, uniform_progress
from advisor.plan import MarketPaths, Workload, replay_batch

UNIVERSE = Universe(spot=(SPOT, SPOT2), on_demand=(OD,))


def test_hindsight_picks_cheap_hours_and_pays_overhead() -> None:
    w = Workload(hours=2, deadline_hours=6, restart_overhead=0.5)
    p = paths([[5.0, 1.0, 1.0, 1.0, 5.0, 5.0], [3.0] * 6], markets=(SPOT, OD))
    # start on spot at t=1 (0.5 work), t=2 (1), t=3: 0.5 more at half an hour -> 1 + 1 + 0.5
    assert hindsight_cost(w, p, [SPOT, OD]) == pytest.approx(2.5)
    tight = Workload(hours=2, deadline_hours=2, restart_overhead=0.5)
    assert hindsight_cost(tight, p, [SPOT, OD]) == np.inf  # 2.5 h of wall time needed, 2 available


def test_uniform_progress_catches_up_on_demand_when_spot_is_gone() -> None:
    w = Workload(hours=4, deadline_hours=12, restart_overhead=0.25, checkpoint_every=1.0)
    avail = [[0] * 12, [np.nan] * 12]
    r = uniform_progress(w, SPOT, OD, paths([[1.0] * 12, [3.0] * 12], avail=avail, markets=(SPOT, OD)))
    # idle while on the uniform line, on-demand whenever behind it (hysteresis to t + 2d): 4 starts, 4 x 0.25 h lost
    assert r.finished and r.hours_by_market == {OD: pytest.approx(5.0)} and r.cost == pytest.approx(15.0)
    free = uniform_progress(w, SPOT, OD, paths([[1.0] * 12, [3.0] * 12], markets=(SPOT, OD)))
    assert free.hours_by_market == {SPOT: pytest.approx(4.25)}


@settings(max_examples=120, deadline=None)
@given(cases())
def test_hindsight_is_below_every_strategy_and_random_plan(case) -> None:
    w, plan, p = case
    best = hindsight_cost(w, p, list(MARKETS3), 0)
    one = MarketPaths(p.markets, p.mean[:1], p.peak[:1], p.avail[:1])
    outcomes = [replay_batch(w, plan, one)]
    for name in ("on_demand", "greedy", "docs_rule", "uniform_progress"):
        r = run_strategy(name, w, UNIVERSE, one)
        if r.finished:
            assert best <= r.cost + 1e-9, name
    for batch in outcomes:
        if batch.finished[0] and plan.reservation is None:
            assert best <= batch.cost[0] + 1e-9


@settings(max_examples=80, deadline=None)
@given(cases(), st.integers(1, 10))
def test_more_slack_never_raises_the_hindsight_optimum(case, extra: int) -> None:
    w, _, p = case
    if w.deadline_hours <= extra:
        return
    tight = Workload(hours=w.hours, deadline_hours=w.deadline_hours - extra, nodes=w.nodes,
                     restart_overhead=w.restart_overhead)
    loose = Workload(hours=w.hours, deadline_hours=w.deadline_hours, nodes=w.nodes,
                     restart_overhead=w.restart_overhead)
    assert hindsight_cost(loose, p, list(MARKETS3)) <= hindsight_cost(tight, p, list(MARKETS3)) + 1e-9


def test_baselines_never_miss_when_on_demand_is_always_there() -> None:
    rng = np.random.default_rng(3)
    for _ in range(30):
        hours = int(rng.integers(20, 60))
        mean = rng.uniform(0.2, 1.0, (1, 3, hours))
        peak = mean * rng.choice([1.0, 8.0], (1, 3, hours), p=[0.8, 0.2])
        avail = np.where(rng.random((1, 3, hours)) < 0.3, 0.0, np.nan)
        avail[:, 2] = np.nan
        mean[:, 2] = 3.0
        p = MarketPaths(MARKETS3, mean, np.where(np.arange(3)[None, :, None] == 2, 3.0, peak), avail)
        w = Workload(hours=float(rng.integers(5, hours // 2)), deadline_hours=hours, checkpoint_every=2.0)
        assert safe_margin(w) == 3.0
        for name in ("on_demand", "greedy", "docs_rule"):
            assert run_strategy(name, w, UNIVERSE, p).finished, name


def test_best_static_in_hindsight_is_no_worse_than_the_docs_rule() -> None:
    import pandas as pd

    from advisor.backtest import Grid, run_backtest

    rng = np.random.default_rng(11)
    hours = 24 * 20
    base = 0.3 + 0.05 * rng.standard_normal(hours).cumsum() / 10
    peak = np.where(rng.random(hours) < 0.08, 2.5, np.abs(base))
    mean = np.stack([np.abs(base), np.full(hours, 1.0)])[None]
    p = MarketPaths((SPOT, OD), mean, np.stack([peak, np.full(hours, 1.0)])[None], np.full((1, 2, hours), np.nan),
                    pd.Timestamp("2015-04-01"))
    starts = list(pd.date_range("2015-04-01", periods=8, freq="48h"))
    rows = run_backtest(p, Universe(spot=(SPOT,), on_demand=(OD,)), Grid((12.0, 24.0), (1.5, 3.0)), starts,
                        ["docs_rule", "best_static", "best_static_returning"])
    mean_cost = rows.groupby(["hours", "slack", "strategy"])["cost"].mean().unstack()
    assert (mean_cost["best_static"] <= mean_cost["docs_rule"] + 1e-9).all()
    assert rows.loc[rows["strategy"] == "best_static", "finished"].all()
    assert (mean_cost["best_static_returning"] <= mean_cost["best_static"] + 1e-9).all()  # its grid holds the other


def test_the_static_yardstick_as_equipped_as_the_advisor_returns_after_the_guard() -> None:
    import pandas as pd

    from advisor.backtest import Grid, run_backtest

    # spot priced out (5x on-demand) for the first 6 h, then 0.1: 6 h due in 12 h fires the guard at t = 4
    hours = 24
    spot = np.where(np.arange(hours) < 6, 5.0, 0.1)
    mean = np.stack([spot, np.full(hours, 1.0)])[None]
    p = MarketPaths((SPOT, OD), mean, mean.copy(), np.full((1, 2, hours), np.nan), pd.Timestamp("2015-04-01"))
    rows = run_backtest(p, Universe(spot=(SPOT,), on_demand=(OD,)), Grid((6.0,), (2.0,)), [pd.Timestamp("2015-04-01")],
                        ["best_static", "best_static_returning"])
    cost = rows.set_index("strategy")["cost"]
    assert cost["best_static"] == pytest.approx(6.25)  # on-demand from t = 4 to the end
    assert cost["best_static_returning"] == pytest.approx(2.0 + 0.1 * 4.5)  # 2 h on-demand, back on spot at t = 6
    assert (rows["ratio"] >= 1 - 1e-9).all()
