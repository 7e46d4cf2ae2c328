"""Per-market models on hourly arrays (numpy in, numpy out; no DataFrames here).

`PriceModel`: log(mean price + c) = recent level + hour-of-week seasonality (shrunk toward hour-of-day while few
weeks are seen) + an AR(1) residual with zero-inflated Student-t innovations (fitted with `scipy.stats.t`), and a
level that drifts as a random walk. Why this shape: spot prices are step functions (most hours do not change at all,
so a plain t fit collapses onto zero; the zero-inflation keeps the moves' real size), with strong daily/weekly
cycles (auctions fall to the floor at night), level shifts when capacity changes (the random-walk level widens long
horizons as much as day-to-day level changes did, spikes excluded), and rare spikes of 5-15x (the t tails; the AR(1)
keeps a spike lasting hours rather than independent draws). The level is the median of the last two weeks, not the
mean: a week of 10x spikes would otherwise lift the whole forecast (measured on AWS 2015: pinball -9% -> -11% vs the
4-week empirical baseline). The shift c (half the mean price) keeps an auction's nightly drop to its floor from
reading as a 100x move, which a plain log would turn into absurd daytime quantiles. The hour's peak is the mean
times an intra-hour excess drawn from the market's own history. A flat series (on-demand) gets an exact constant.

`CapacityModel`: capacity held all hour, binned (0, 1, 2-3, 4-7, ...), as a Markov chain between bins; the value of
a bin is its lower bound, so a gang check `capacity >= nodes` is never optimistic.

Both simulate from standard-normal scores supplied by the caller, so a copula can correlate markets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

HOURS_PER_WEEK = 168
CAPACITY_BINS = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])


@dataclass
class PriceModel:
    """Seasonal level + AR(1)-t residual on log prices; see the module docstring."""

    shrink_weeks: float = 4.0
    level_days: float = 14.0
    constant_: float | None = None
    season_: np.ndarray = field(default_factory=lambda: np.zeros(HOURS_PER_WEEK))
    level_: float = 0.0
    phi_: float = 0.0
    df_: float = 30.0
    scale_: float = 0.0
    p_zero_: float = 0.0
    level_step_: float = 0.0
    last_resid_: float = 0.0
    excess_: np.ndarray = field(default_factory=lambda: np.zeros(1))
    floor_: float = 0.0
    shift_: float = 0.0
    scores_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, mean: np.ndarray, peak: np.ndarray, how: np.ndarray) -> PriceModel:
        """Fit on hourly time-weighted mean and peak prices with their hour-of-week (0..167); NaN hours skipped."""
        ok = np.isfinite(mean) & (mean > 0)
        if ok.sum() < 2 or np.nanstd(np.log(mean[ok])) < 1e-9:
            self.constant_ = float(mean[ok][-1]) if ok.any() else float("nan")
            self.scores_ = np.zeros(len(mean))
            return self
        self.floor_ = float(np.nanmin(mean[ok]))  # auctions have a bid floor; never forecast below what was seen
        self.shift_ = 0.5 * float(np.nanmean(mean[ok]))
        y = np.where(ok, np.log(np.where(ok, mean, 1.0) + self.shift_), np.nan)
        self.season_ = _seasonal_profile(y, how, self.shrink_weeks)
        deseason = y - self.season_[how]
        recent = deseason[-int(self.level_days * 24):]
        self.level_ = float(np.nanmedian(recent)) if np.isfinite(recent).any() else float(np.nanmedian(deseason))
        resid = deseason - np.nanmean(deseason)
        pairs = np.isfinite(resid[1:]) & np.isfinite(resid[:-1])
        x0, x1 = resid[:-1][pairs], resid[1:][pairs]
        self.phi_ = float(np.clip(np.dot(x0, x1) / max(np.dot(x0, x0), 1e-12), 0.0, 0.995)) if pairs.sum() > 2 else 0.0
        innov = x1 - self.phi_ * x0
        moves = innov[np.abs(innov) > 1e-6]
        self.p_zero_ = 1.0 - moves.size / max(innov.size, 1)
        if moves.size > 10:
            df, _, scale = stats.t.fit(moves, floc=0.0)
            self.df_, self.scale_ = float(np.clip(df, 2.2, 100.0)), float(scale)
        else:
            self.df_, self.scale_ = 30.0, float(np.std(moves)) if moves.size else 0.0
        self.level_step_ = _level_step(deseason)
        last = np.flatnonzero(np.isfinite(deseason))[-1]
        self.last_resid_ = float(deseason[last] - self.level_)
        both = ok & np.isfinite(peak) & (peak > 0)
        excess = np.log(np.maximum(peak[both], mean[both])) - np.log(mean[both])
        self.excess_ = excess if excess.size else np.zeros(1)
        scores = np.zeros(len(mean))
        if self.scale_ > 0:
            u = stats.t.cdf(innov / self.scale_, self.df_)  # zeros score 0.5: the copula sees only moves
            scores[1:][pairs] = stats.norm.ppf(np.clip(u, 1e-6, 1 - 1e-6))
        self.scores_ = scores
        return self

    def simulate(self, z: np.ndarray, how: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and peak price paths (n, h) from standard-normal innovation scores z (n, h) and uniforms u (n, h, 2)
        (whether a move happens; which intra-hour excess the peak gets)."""
        if self.constant_ is not None:
            flat = np.full(z.shape, self.constant_)
            return flat, flat.copy()
        innov = self.scale_ * stats.t.ppf(stats.norm.cdf(z), self.df_)
        innov[u[..., 0] < self.p_zero_] = 0.0
        resid = np.empty(z.shape)
        r = np.full(z.shape[0], self.last_resid_)
        for h in range(z.shape[1]):
            r = self.phi_ * r + innov[:, h]
            resid[:, h] = r
        level = self.level_ + np.cumsum(self.level_step_ * z, axis=1)  # the copula's scores drive the level too
        mean = np.maximum(np.exp(level + self.season_[how][None, :] + resid) - self.shift_, self.floor_)
        peak = mean * np.exp(self.excess_[np.minimum((u[..., 1] * self.excess_.size).astype(int),
                                                     self.excess_.size - 1)])
        return mean, peak


def _level_step(deseason: np.ndarray, tail: float = 0.05) -> float:
    """Hourly step of a random-walk level, per sqrt(hour): the spread of day-to-day changes of the daily mean,
    winsorized at `tail` on each side (scaled to be consistent for Gaussian steps). Spikes that come and go are the
    AR-t residual's job; counted here as well, they made 80% intervals cover ~87% of real 2015 spot hours."""
    days = deseason[: len(deseason) // 24 * 24].reshape(-1, 24)
    daily = np.array([np.nanmean(d) if np.isfinite(d).any() else np.nan for d in days])
    steps = np.diff(daily)
    steps = steps[np.isfinite(steps)]
    if steps.size <= 2:
        return 0.0
    lo, hi = np.quantile(steps, [tail, 1 - tail])
    return float(np.std(np.clip(steps, lo, hi)) / _winsorized_sd(tail) / np.sqrt(24))


def _winsorized_sd(tail: float) -> float:
    """Standard deviation of a standard normal winsorized at its `tail` and 1 - `tail` quantiles."""
    c = float(stats.norm.ppf(1 - tail))
    inner = 1 - 2 * tail - 2 * c * float(stats.norm.pdf(c))
    return float(np.sqrt(inner + 2 * tail * c * c))


def _seasonal_profile(y: np.ndarray, how: np.ndarray, shrink_weeks: float) -> np.ndarray:
    """Hour-of-week medians shrunk toward hour-of-day medians by how many weeks each hour has been seen."""
    center = np.nanmedian(y)
    hod = np.array([_nanmedian(y[how % 24 == j], center) for j in range(24)])
    out = np.empty(HOURS_PER_WEEK)
    for k in range(HOURS_PER_WEEK):
        vals = y[how == k]
        vals = vals[np.isfinite(vals)]
        weight = vals.size / (vals.size + shrink_weeks)
        out[k] = weight * (np.median(vals) if vals.size else 0.0) + (1 - weight) * hod[k % 24]
    return out - np.nanmean(out) + 0.0


def _nanmedian(values: np.ndarray, default: float) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else default


@dataclass
class CapacityModel:
    """A Markov chain over capacity bins; unknown capacity (NaN) stays unknown."""

    smoothing: float = 0.5
    known_: bool = False
    levels_: np.ndarray = field(default_factory=lambda: np.zeros(1))
    cdf_: np.ndarray = field(default_factory=lambda: np.ones((1, 1)))
    last_: int = 0
    scores_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, capacity: np.ndarray, rng: np.random.Generator | None = None) -> CapacityModel:
        """Fit on hourly capacity (instances held all hour); NaN means the source does not say."""
        ok = np.isfinite(capacity)
        self.scores_ = np.zeros(len(capacity))
        if not ok.any():
            self.known_ = False
            return self
        self.known_ = True
        bins = np.searchsorted(CAPACITY_BINS, capacity[ok], side="right") - 1
        used = np.unique(bins)
        self.levels_ = CAPACITY_BINS[used].astype(float)
        state = np.searchsorted(used, bins)
        counts = np.full((used.size, used.size), 0.0)
        np.add.at(counts, (state[:-1], state[1:]), 1.0)
        counts += self.smoothing / used.size
        probs = counts / counts.sum(axis=1, keepdims=True)
        self.cdf_ = np.cumsum(probs, axis=1)
        self.last_ = int(state[-1])
        rng = rng or np.random.default_rng(0)
        lo = np.where(state[1:] > 0, self.cdf_[state[:-1], np.maximum(state[1:] - 1, 0)], 0.0)
        hi = self.cdf_[state[:-1], state[1:]]
        u = lo + (hi - lo) * rng.random(lo.size)  # randomized PIT of each observed transition
        scores = np.zeros(ok.sum())
        scores[1:] = stats.norm.ppf(np.clip(u, 1e-6, 1 - 1e-6))
        self.scores_[ok] = scores
        return self

    def simulate(self, z: np.ndarray) -> np.ndarray:
        """Capacity paths (n, h) from standard-normal scores z (n, h); NaN when unknown."""
        if not self.known_:
            return np.full(z.shape, np.nan)
        u = stats.norm.cdf(z)
        out = np.empty(z.shape)
        s = np.full(z.shape[0], self.last_)
        for h in range(z.shape[1]):
            s = np.minimum((u[:, h, None] > self.cdf_[s]).sum(axis=1), self.levels_.size - 1)
            out[:, h] = self.levels_[s]
        return out
