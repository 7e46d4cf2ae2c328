"""Rolling-origin evaluation of the forecaster against two baselines, on recorded history.

At each origin (every 24 h) every method sees only the `lookback` hours before it and forecasts `horizon` hours.
Scores, per market: pinball loss of the hourly mean price at q = 0.1/0.5/0.9, coverage of the 80% interval, and
the Brier score of P(peak <= L) at the given limits. Baselines: seasonal naive (the same hour last week, with
quantiles from the empirical distribution of week-over-week log changes) and the empirical distribution of the
last 4 weeks (the same forecast for every hour).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from advisor.forecast.forecaster import Forecaster
from advisor.plan import MarketPaths

QS = (0.1, 0.5, 0.9)
WEEK = 168


def pinball(y: np.ndarray, f: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of forecasts f for outcomes y, NaN outcomes skipped."""
    ok = np.isfinite(y)
    d = y[ok] - f[ok]
    return float(np.mean(np.maximum(q * d, (q - 1) * d))) if ok.any() else float("nan")


def seasonal_naive(train_mean: np.ndarray, train_peak: np.ndarray, horizon: int,
                   limits: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(horizon, 3) quantiles and (horizon, len(limits)) P(peak <= L) from last week's same hour."""
    idx = len(train_mean) - WEEK + (np.arange(horizon) % WEEK)
    base, base_peak = train_mean[idx], train_peak[idx]
    logs = np.log(np.where(train_mean > 0, train_mean, np.nan))
    changes = (logs[WEEK:] - logs[:-WEEK])
    changes = changes[np.isfinite(changes)] if np.isfinite(changes).any() else np.zeros(1)
    quants = base[:, None] * np.exp(np.quantile(changes, QS))[None, :]
    plogs = np.log(np.where(train_peak > 0, train_peak, np.nan))
    pchanges = (plogs[WEEK:] - plogs[:-WEEK])
    pchanges = pchanges[np.isfinite(pchanges)] if np.isfinite(pchanges).any() else np.zeros(1)
    probs = np.stack([(base_peak[:, None] * np.exp(pchanges)[None, :] <= lim).mean(axis=1) for lim in limits], 1)
    return quants, probs


def empirical_weeks(train_mean: np.ndarray, train_peak: np.ndarray, horizon: int, limits: list[float],
                    weeks: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The last `weeks` weeks' distribution, the same for every hour."""
    recent, recent_peak = train_mean[-weeks * WEEK:], train_peak[-weeks * WEEK:]
    q = np.nanquantile(recent, QS)
    p = [float(np.nanmean(recent_peak <= lim)) for lim in limits]
    return np.tile(q, (horizon, 1)), np.tile(p, (horizon, 1))


def _scores(y: np.ndarray, y_peak: np.ndarray, quants: np.ndarray, probs: np.ndarray,
            limits: list[float]) -> dict[str, float]:
    out = {f"pinball_{q}": pinball(y, quants[:, i], q) for i, q in enumerate(QS)}
    ok = np.isfinite(y)
    out["coverage_80"] = float(np.mean((y[ok] >= quants[ok, 0]) & (y[ok] <= quants[ok, 2]))) if ok.any() else np.nan
    okp = np.isfinite(y_peak)
    briers = [np.mean((probs[okp, j] - (y_peak[okp] <= lim)) ** 2) for j, lim in enumerate(limits)]
    out["brier"] = float(np.mean(briers)) if okp.any() else np.nan
    return out


def evaluate(history: MarketPaths, limits: dict[str, list[float]], lookback: int = 28 * 24, horizon: int = WEEK,
             every: int = 24, n_paths: int = 400, on_origin: Callable[[], None] | None = None) -> pd.DataFrame:
    """One row per (origin, market, method) with the scores above; origins start after `lookback` hours."""
    rows = []
    markets = [m for m in history.markets if m in limits]
    for origin in range(lookback, history.hours - horizon + 1, every):
        train = history.window(origin - lookback, lookback)
        test = history.window(origin, horizon)
        model = Forecaster(n_paths=n_paths, seed=origin).fit(train.select(markets))
        sims = model.scenarios(n_paths, horizon)
        for i, m in enumerate(markets):
            j = history.index(m)
            y, y_peak = test.mean[0, j], test.peak[0, j]
            tm, tp = train.mean[0, j], train.peak[0, j]
            lim = limits[m]
            model_q = np.quantile(sims.mean[:, i], QS, axis=0).T
            model_p = np.stack([(sims.peak[:, i] <= L).mean(axis=0) for L in lim], axis=1)
            for method, (q, p) in {"model": (model_q, model_p),
                                   "seasonal_naive": seasonal_naive(tm, tp, horizon, lim),
                                   "empirical_4w": empirical_weeks(tm, tp, horizon, lim)}.items():
                rows.append({"origin": train.start + pd.Timedelta(hours=lookback), "market": m, "method": method,
                             **_scores(y, y_peak, q, p, lim)})
        if on_origin:
            on_origin()
    return pd.DataFrame(rows)


def evaluate_store(con, markets: list[str], lookback: int, horizon: int, every: int,
                   on_origin: Callable[[], None] | None = None) -> pd.DataFrame:
    """`evaluate` on the store's history of `markets` (those with a moving price), with limits at 0.5x, 1x and 2x
    each market's on-demand price, or its median price where it has none."""
    from advisor.plan import load_history
    from advisor.store import coverage, on_demand_price

    first, last = coverage(con, markets)
    start = pd.Timestamp(first).ceil("h")
    history = load_history(con, markets, start, int((pd.Timestamp(last) - start) / pd.Timedelta(hours=1)))
    limits = {}
    for m in markets:
        series = history.mean[0, history.index(m)]
        if np.nanstd(series) > 1e-9:
            anchor = on_demand_price(con, m) or float(np.nanmedian(series))
            limits[m] = [0.5 * anchor, anchor, 2 * anchor]
    if not limits:
        raise ValueError("no market with a moving price to evaluate")
    rows = evaluate(history, limits, lookback, horizon, every, on_origin=on_origin)
    if rows.empty:
        raise ValueError(f"history of {history.hours} h is too short for --lookback + --horizon")
    return rows


def summarize_evaluation(rows: pd.DataFrame) -> pd.DataFrame:
    """Per market and method: mean scores over origins, and the model's pinball relative to each baseline."""
    table = rows.groupby(["market", "method"], sort=False).mean(numeric_only=True).reset_index()
    table["pinball_mean"] = table[[f"pinball_{q}" for q in QS]].mean(axis=1)
    return table
