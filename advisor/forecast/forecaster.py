"""Joint forecasts for many markets: fit per-market models on history before the origin, draw scenario paths.

Markets are joined by a Gaussian copula on their innovation scores (price and capacity), so scenarios keep each
market's persistence (AR(1) prices, Markov capacity) and the correlation between markets. Quantiles, the
availability curve P(peak price <= L) and run lengths are all read off the same simulated paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from advisor.forecast.models import (
    HOURS_PER_WEEK,
    CapacityModel,
    PostedPriceModel,
    PriceModel,
    RegimePriceModel,
    fit_price_model,
)
from advisor.plan import MarketPaths, run_starts


def hour_of_week(start: pd.Timestamp, hours: int) -> np.ndarray:
    """Hour of week (Monday 00:00 = 0) of each hour from `start`."""
    first = pd.Timestamp(start).day_of_week * 24 + pd.Timestamp(start).hour
    return (first + np.arange(hours)) % HOURS_PER_WEEK


def _correlation(scores: np.ndarray) -> np.ndarray:
    """Correlation of score columns (zero-variance columns stay independent), made positive definite."""
    k = scores.shape[1]
    corr = np.eye(k)
    live = scores.std(axis=0) > 1e-9
    if live.sum() > 1:
        corr[np.ix_(live, live)] = np.corrcoef(scores[:, live].T)
    corr = np.nan_to_num(corr) * 0.98 + np.eye(k) * 0.02  # shrink a little toward independence
    values, vectors = np.linalg.eigh(corr)
    corr = vectors @ np.diag(np.clip(values, 1e-6, None)) @ vectors.T
    d = np.sqrt(np.diag(corr))
    return corr / np.outer(d, d)


class Forecaster:
    """Per-market price and capacity models plus a copula; `fit(history)` sees only the hours it is given."""

    def __init__(self, n_paths: int = 1000, seed: int = 0) -> None:
        self.n_paths, self.seed = n_paths, seed
        self.markets_: tuple[str, ...] = ()
        self.origin_: pd.Timestamp | None = None
        self.prices_: list[PriceModel | PostedPriceModel | RegimePriceModel] = []
        self.capacity_: list[CapacityModel] = []
        self.chol_: np.ndarray = np.eye(1)
        self._cache: dict[tuple[int, int, int], MarketPaths] = {}

    def fit(self, history: MarketPaths) -> Forecaster:
        """Fit on one recorded path (scenario 0); the forecast origin is the hour after its last hour."""
        if history.start is None:
            raise ValueError("history needs a start time")
        how = hour_of_week(history.start, history.hours)
        rng = np.random.default_rng(self.seed)
        self.markets_ = history.markets
        self.origin_ = history.start + pd.Timedelta(hours=history.hours)
        self.prices_ = [fit_price_model(history.mean[0, m], history.peak[0, m], how)
                        for m in range(len(history.markets))]
        self.capacity_ = [CapacityModel().fit(history.avail[0, m], rng) for m in range(len(history.markets))]
        scores = np.column_stack([p.scores_ for p in self.prices_] + [c.scores_ for c in self.capacity_])
        self.chol_ = np.linalg.cholesky(_correlation(scores))
        self._cache.clear()
        return self

    def posted_markets(self) -> frozenset[str]:
        """The markets fitted with the posted-price model (a list price: it holds until it steps)."""
        return frozenset(m for m, p in zip(self.markets_, self.prices_, strict=True) if isinstance(p, PostedPriceModel))

    def scenarios(self, n: int, horizon: int, seed: int | None = None) -> MarketPaths:
        """`n` joint sample paths of every market for `horizon` hours from the origin (reproducible per seed).

        Each hour draws from its own seeded stream, so a longer horizon extends the same paths (common random
        numbers: plans compared across deadlines see the same futures)."""
        seed = self.seed if seed is None else seed
        key = (n, horizon, seed)
        if key not in self._cache:
            k = len(self.markets_)
            draws = [np.random.default_rng([seed, h]) for h in range(horizon)]
            z = np.stack([g.standard_normal((n, 2 * k)) for g in draws], axis=1) @ self.chol_.T
            u = np.stack([g.random((n, k, 2)) for g in draws], axis=1)  # (n, h, k, 2)
            how = hour_of_week(self.origin_, horizon)
            mean, peak, cap = (np.empty((n, k, horizon)) for _ in range(3))
            for m in range(k):
                mean[:, m], peak[:, m] = self.prices_[m].simulate(z[:, :, m], how, u[:, :, m])
                cap[:, m] = self.capacity_[m].simulate(z[:, :, k + m])
            self._cache[key] = MarketPaths(self.markets_, mean, peak, cap, self.origin_)
        return self._cache[key]

    def _paths(self, horizon: int) -> MarketPaths:
        return self.scenarios(self.n_paths, horizon)

    def quantiles(self, market: str, qs: list[float], horizon: int) -> np.ndarray:
        """(horizon, len(qs)) quantiles of each hour's time-weighted mean price; monotone in q."""
        paths = self._paths(horizon)
        return np.quantile(paths.mean[:, paths.index(market)], qs, axis=0).T

    def prob_price_below(self, market: str, limit: float, horizon: int) -> np.ndarray:
        """P(the hour's peak price <= limit) for each hour: the probability a bid at `limit` holds that hour."""
        paths = self._paths(horizon)
        return (paths.peak[:, paths.index(market)] <= limit).mean(axis=0)

    def prob_capacity(self, market: str, nodes: int, horizon: int) -> np.ndarray:
        """P(capacity for a gang of `nodes` all hour) for each hour (1 where the source never says)."""
        paths = self._paths(horizon)
        cap = paths.avail[:, paths.index(market)]
        return (np.isnan(cap) | (cap >= nodes)).mean(axis=0)

    def expected_run_length(self, market: str, limit: float, horizon: int, nodes: int = 1) -> float:
        """Mean length (hours) of the uninterrupted stretches a bid at `limit` holds, over the simulated paths; on
        an availability-only series (no prices) the stretches the gang has capacity."""
        paths = self._paths(horizon)
        i = paths.index(market)
        if np.isnan(paths.peak[:, i]).all():
            cap = paths.avail[:, i]
            ok = np.isnan(cap) | (cap >= nodes)
        else:
            ok = paths.usable(i, limit, nodes)
        starts = run_starts(ok)
        return float(ok.sum() / starts.sum()) if starts.sum() else 0.0
