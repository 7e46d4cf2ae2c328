"""Data for the dashboard's charts, as DataFrames: app.py lays these out and computes nothing itself."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from advisor import store
from advisor.forecast import Forecaster
from advisor.optimize import Recommendation
from advisor.plan import load_history, replay


def market_history(con: duckdb.DuckDBPyConnection, markets: list[str], start: pd.Timestamp,
                   end: pd.Timestamp) -> pd.DataFrame:
    """Hourly time-weighted mean price of each market, long form: hour, market, price, kind."""
    frame = store.hourly(con, markets, start, end)
    frame["kind"] = frame["market"].str.rsplit(":", n=1).str[-1]
    return frame.rename(columns={"mean_price": "price"})[["hour", "market", "price", "kind"]]


def gpus_of(markets: pd.DataFrame) -> list[str]:
    """GPUs a market listing covers, most markets first."""
    return markets["gpu"].dropna().value_counts().index.tolist()


def forecast_fan(con: duckdb.DuckDBPyConnection, market: str, as_of: pd.Timestamp, horizon: int,
                 lookback_hours: int = 28 * 24, n_paths: int = 500) -> tuple[pd.DataFrame, Forecaster]:
    """Quantiles 0.1/0.25/0.5/0.75/0.9 of each future hour's price, and the fitted forecaster."""
    history = load_history(con, [market], as_of - pd.Timedelta(hours=lookback_hours), lookback_hours)
    model = Forecaster(n_paths=n_paths).fit(history)
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    values = model.quantiles(market, qs, horizon)
    frame = pd.DataFrame(values, columns=[f"q{int(q * 100)}" for q in qs])
    frame.insert(0, "hour", pd.date_range(as_of, periods=horizon, freq="h"))
    return frame, model


def availability_curve(model: Forecaster, market: str, horizon: int, points: int = 40) -> pd.DataFrame:
    """Share of the next `horizon` hours a bid holds, as a function of its limit (P(peak price <= L))."""
    peaks = model.scenarios(model.n_paths, horizon).peak[:, model.markets_.index(market)]
    top = float(np.nanquantile(peaks, 0.995))
    limits = np.linspace(0.0, max(top, 0.01) * 1.05, points)
    probs = [(peaks <= lim).mean() for lim in limits]
    return pd.DataFrame({"limit": limits, "probability": probs})


def median_timeline(rec: Recommendation) -> pd.DataFrame:
    """Where the plan runs hour by hour in the scenario with the median cost: hour, where, preempted."""
    cost = rec.chosen.result.cost
    s = int(np.argsort(cost)[len(cost) // 2])
    result = replay(rec.workload, rec.chosen.plan, rec.evaluation_paths, s)
    start = rec.as_of
    rows = [{"hour": start + pd.Timedelta(hours=t), "where": where or "waiting", "preempted": pre}
            for t, where, pre in result.timeline]
    return pd.DataFrame(rows)


def alternatives_table(rec: Recommendation) -> pd.DataFrame:
    """The recommended plan and the alternatives: mean, P50, P90 cost and P(meet deadline)."""
    rows = [{"option": "recommended", **rec.chosen.cost, "p_meet_deadline": rec.chosen.probability}]
    rows += [{"option": a.name, **a.cost, "p_meet_deadline": a.probability} for a in rec.alternatives]
    return pd.DataFrame(rows)


def plan_table(rec: Recommendation) -> pd.DataFrame:
    """The plan as rows a person reads top to bottom."""
    plan, rows = rec.chosen.plan, []
    for i, bid in enumerate(plan.bids, 1):
        rows.append({"step": f"bid {i}", "market": bid.market, "detail": f"limit ${bid.limit_price:.2f}/instance-h"})
    if plan.bids and plan.late_limit is not None:
        rows.append({"step": "raise limits", "market": "every bid",
                     "detail": f"to ${plan.late_limit:.2f}/instance-h once {plan.late_margin_hours:g} h of slack "
                               "are left" + (f", or after {plan.late_after_hours:g} h in a row waiting below the "
                                             "fallback's price" if plan.late_after_hours else "")})
    if plan.bids and plan.dear_excess_hours is not None:
        rows.append({"step": "cap limits", "market": "every bid",
                     "detail": f"at the fallback's price once paying above it has cost {plan.dear_excess_hours:g} h "
                               "of its price more"})
    if len(plan.bids) > 1 and plan.patience_hours:
        rows.append({"step": "patience", "market": "every bid",
                     "detail": f"when a market drops the job, wait up to {plan.patience_hours:g} h for it (or an "
                               "earlier one) before taking a later one"})
    if len(plan.bids) > 1 and plan.switch_below is not None:
        rows.append({"step": "switch", "market": "every bid",
                     "detail": f"to the first other bid in the list priced below {plan.switch_below:.0%} of the "
                               "price paid"})
    if plan.reservation:
        r = plan.reservation
        rows.append({"step": "reserve", "market": r.market,
                     "detail": f"{r.instances} x {r.hours} h, {r.tier} flexibility, ${r.unit_price:.2f}/instance-h"})
    for i, f in enumerate(plan.fallback, 1):
        rows.append({"step": f"fallback {i}", "market": f.market,
                     "detail": f"once {plan.guard_margin_hours:g} h of slack are left"})
    if plan.bids and plan.fallback and plan.return_below is not None:
        rows.append({"step": "return", "market": "every bid",
                     "detail": f"after the fallback, a bid priced below {plan.return_below:.0%} of its price while "
                               "the slack left absorbs a preemption there"})
    if plan.keep_pace and plan.fallback:
        rows.append({"step": "keep pace", "market": plan.fallback[0].market,
                     "detail": "while no bid runs and the work done is over an hour behind elapsed x work / "
                               "deadline"})
    return pd.DataFrame(rows)
