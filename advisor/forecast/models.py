"""Per-market models on hourly arrays (numpy in, numpy out; no DataFrames here).

`PriceModel`: log(mean price + c) = recent level + hour-of-week seasonality (shrunk toward hour-of-day while few
weeks are seen) + an AR(1) residual with zero-inflated Student-t innovations (maximum likelihood, `fit_student_t`),
and a level that drifts as a random walk. Why this shape: spot prices are step functions (most hours do not change
at all, so a plain t fit collapses onto zero; the zero-inflation keeps the moves' real size), with strong daily/weekly
cycles (auctions fall to the floor at night), level shifts when capacity changes (the random-walk level widens long
horizons as much as day-to-day level changes did, spikes excluded), and rare spikes of 5-15x (the t tails; the AR(1)
keeps a spike lasting hours rather than independent draws). The level is the median of the last two weeks, not the
mean: a week of 10x spikes would otherwise lift the whole forecast (measured on AWS 2015: pinball -9% -> -11% vs the
4-week empirical baseline). The shift c (half the mean price) keeps an auction's nightly drop to its floor from
reading as a 100x move, which a plain log would turn into absurd daytime quantiles. The hour's peak is the mean
times an intra-hour excess drawn from the market's own history. A flat series (on-demand) gets an exact constant.

`PostedPriceModel`: a list price (it moves in under 2% of hours and never returns to a price it left, as GCP's
spot prices): the last price held, with compound-Poisson steps; `fit_price_model` chooses between the two.

`CapacityModel`: capacity held all hour, binned (0, 1, 2-3, 4-7, ...), as a Markov chain between bins; the value of
a bin is its lower bound, so a gang check `capacity >= nodes` is never optimistic.

All simulate from standard-normal scores supplied by the caller, so a copula can correlate markets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

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
            df, scale = fit_student_t(moves)
            self.df_, self.scale_ = float(np.clip(df, 2.2, 100.0)), scale
        else:
            self.df_, self.scale_ = 30.0, float(np.std(moves)) if moves.size else 0.0
        self.level_step_ = _level_step(deseason)
        last = np.flatnonzero(np.isfinite(deseason))[-1]
        self.last_resid_ = float(deseason[last] - self.level_)
        self.excess_ = _peak_excess(mean, peak)
        scores = np.zeros(len(mean))
        if self.scale_ > 0:
            u = special.stdtr(self.df_, innov / self.scale_)  # zeros score 0.5: the copula sees only moves
            scores[1:][pairs] = special.ndtri(np.clip(u, 1e-6, 1 - 1e-6))
        self.scores_ = scores
        return self

    def simulate(self, z: np.ndarray, how: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and peak price paths (n, h) from standard-normal innovation scores z (n, h) and uniforms u (n, h, 2)
        (whether a move happens; which intra-hour excess the peak gets)."""
        if self.constant_ is not None:
            flat = np.full(z.shape, self.constant_)
            return flat, flat.copy()
        innov = self.scale_ * _t_scores(z, self.df_)
        innov[u[..., 0] < self.p_zero_] = 0.0
        resid = np.empty(z.shape)
        r = np.full(z.shape[0], self.last_resid_)
        for h in range(z.shape[1]):
            r = self.phi_ * r + innov[:, h]
            resid[:, h] = r
        level = self.level_ + np.cumsum(self.level_step_ * z, axis=1)  # the copula's scores drive the level too
        mean = np.maximum(np.exp(level + self.season_[how][None, :] + resid) - self.shift_, self.floor_)
        return mean, mean * _draw_excess(self.excess_, u[..., 1])


@dataclass
class PostedPriceModel:
    """A posted (list) price: it holds until it steps, and steps come as a compound Poisson process.

    Why a second model: list prices and smoothed spot prices change in a few hours a month (GCP spot list prices:
    0.1-0.3% of hours). The seasonal AR-t model reads such a series badly - a recent step looks like a residual to
    revert toward the two-week median, and the Gaussian random-walk level spreads a week's quantiles although most
    weeks nothing moves. Here the forecast starts at the last price; a step happens in an hour with the rate seen in
    the window (steps per hour), with Gaussian log sizes of the spread seen. The step's timing and sign come from the
    copula score (|z| beyond the rate's two-sided quantile), so markets that step together in history (one price
    list) step together in the scenarios."""

    last_: float = float("nan")
    rate_: float = 0.0
    step_: float = 0.0
    excess_: np.ndarray = field(default_factory=lambda: np.zeros(1))
    scores_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, mean: np.ndarray, peak: np.ndarray, how: np.ndarray) -> PostedPriceModel:
        """Fit on hourly mean and peak prices (`how` is unused: list prices have no daily cycle); NaN hours skipped."""
        ok = np.flatnonzero(np.isfinite(mean) & (mean > 0))
        self.last_ = float(mean[ok[-1]]) if ok.size else float("nan")
        change = np.diff(np.log(mean[ok])) if ok.size > 1 else np.zeros(0)
        moved = np.abs(change) > 1e-6
        # a change inside an hour moves that hour's mean and the next one's: one step, summed over the run
        first = moved & ~np.concatenate([[False], moved[:-1]])
        run = np.cumsum(first)
        sizes = np.bincount(run[moved], weights=change[moved], minlength=run[-1] + 1)[1:] if moved.any() else change[:0]
        self.rate_ = sizes.size / max(change.size, 1)
        self.step_ = float(np.sqrt(np.mean(sizes ** 2))) if sizes.size else 0.0
        self.excess_ = _peak_excess(mean, peak)
        self.scores_ = np.zeros(len(mean))
        if sizes.size:
            self.scores_[ok[1:][first]] = sizes / self.step_ * _tail_rms(self.rate_)
        return self

    def simulate(self, z: np.ndarray, how: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and peak price paths (n, h) from standard-normal scores z (n, h) and uniforms u (n, h, 2)."""
        steps = np.zeros(z.shape)
        if self.rate_ > 0 and self.step_ > 0:
            beyond = np.abs(z) > -special.ndtri(self.rate_ / 2)
            steps[beyond] = z[beyond] * (self.step_ / _tail_rms(self.rate_))
        mean = self.last_ * np.exp(np.cumsum(steps, axis=1))
        return mean, mean * _draw_excess(self.excess_, u[..., 1])


POSTED_MOVE_SHARE = 0.02


def fit_price_model(mean: np.ndarray, peak: np.ndarray, how: np.ndarray) -> PriceModel | PostedPriceModel:
    """The posted-price model for a list price, else the seasonal AR-t model.

    A list price moves in under 2% of its hours (a step every few days at most; markets that clear hourly move in
    25-95%) and never goes back to a price it left. A quiet auction-era spot market can move as rarely, but it
    leaves its floor for an excursion and returns to it (AWS 2015 m3.medium: 52 of 63 such four-week windows);
    its excursions are the AR-t model's spikes, and the posted model forecast it worse (pinball +30%)."""
    ok = np.isfinite(mean) & (mean > 0)
    logs = np.log(mean[ok])
    moved = np.abs(np.diff(logs)) > 1e-6
    if moved.size and 0 < moved.mean() < POSTED_MOVE_SHARE and not _returns_to_a_left_price(logs):
        return PostedPriceModel().fit(mean, peak, how)
    return PriceModel().fit(mean, peak, how)


def _returns_to_a_left_price(logs: np.ndarray, same: float = 0.005, away: float = 0.05) -> bool:
    """Whether the series, after moving more than `away` (log) from a price it held for an hour or more, comes
    back within `same` of it."""
    starts = np.flatnonzero(np.concatenate([[True], np.abs(np.diff(logs)) > 1e-6]))
    lengths = np.diff(np.concatenate([starts, [logs.size]]))
    held = logs[starts][lengths >= 2]  # a one-hour value is a change caught mid-hour, not a price that held
    for k in range(2, held.size):
        earlier = held[:k - 1]
        for j in np.flatnonzero(np.abs(earlier - held[k]) < same):
            if np.max(np.abs(held[j + 1:k] - held[j])) > away:
                return True
    return False


def _tail_rms(rate: float) -> float:
    """Root mean square of a standard normal beyond its two-sided `rate` quantile: scales a tail score to a step."""
    c = float(-special.ndtri(rate / 2))
    return float(np.sqrt(1 + c * _norm_pdf(c) / special.ndtr(-c)))


def _peak_excess(mean: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """log(peak / mean) of each recorded hour: how far above its mean an hour's peak price went."""
    both = np.isfinite(mean) & (mean > 0) & np.isfinite(peak) & (peak > 0)
    excess = np.log(np.maximum(peak[both], mean[both])) - np.log(mean[both])
    return excess if excess.size else np.zeros(1)


def _draw_excess(excess: np.ndarray, u: np.ndarray) -> np.ndarray:
    """exp of a recorded hour's excess picked by uniforms u: multiplies a simulated mean into a peak."""
    return np.exp(excess[np.minimum((u * excess.size).astype(int), excess.size - 1)])


_Z_GRID = np.linspace(-8.0, 8.0, 4001)


def _t_scores(z: np.ndarray, df: float) -> np.ndarray:
    """Student-t(df) quantiles at the standard-normal scores z: t.ppf(norm.cdf(z)) read off a fine table (the
    direct ppf is the slowest step of drawing scenarios; the table is within 1e-4 of it, relative)."""
    return np.interp(z, _Z_GRID, _t_table(df))


@functools.lru_cache(maxsize=256)
def _t_table(df: float) -> np.ndarray:
    """The table for one df, built once: a market's df is fixed after its fit, and every scenario draw reads it."""
    table = special.stdtrit(df, special.ndtr(_Z_GRID))
    table.flags.writeable = False
    return table


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


def fit_student_t(x: np.ndarray, df_bounds: tuple[float, float] = (0.3, 1e4)) -> tuple[float, float]:
    """Maximum-likelihood (df, scale) of a Student-t centred at 0: what scipy.stats.t.fit(x, floc=0) finds, without
    importing scipy.stats or scipy.optimize (~0.6 s of every command). The profile likelihood in log df is maximized
    by golden-section search; for each df the scale solves its likelihood equation by the EM fixed point."""
    x2 = np.square(np.asarray(x, dtype=float))
    scale2 = max(float(np.median(np.sqrt(x2))) / 0.7407, 1e-12) ** 2  # 0.7407: median |t_4|, a start

    def profile_nll(log_df: float) -> float:
        nonlocal scale2
        df = float(np.exp(log_df))
        scale2 = _t_scale2_given_df(x2, df, scale2)
        return -(x2.size * (special.gammaln((df + 1) / 2) - special.gammaln(df / 2) - 0.5 * np.log(df * np.pi)
                            - 0.5 * np.log(scale2)) - (df + 1) / 2 * float(np.sum(np.log1p(x2 / (scale2 * df)))))

    df = float(np.exp(_golden_min(profile_nll, *np.log(df_bounds), tol=1e-5)))
    return df, float(np.sqrt(_t_scale2_given_df(x2, df, scale2)))


def _t_scale2_given_df(x2: np.ndarray, df: float, scale2: float, iterations: int = 200) -> float:
    """The squared scale maximizing a centred t likelihood at fixed df (EM: weights (df+1)/(df + x^2/s^2))."""
    for _ in range(iterations):
        new = max(float(np.mean((df + 1) * x2 / (df + x2 / scale2))), 1e-24)
        if abs(new - scale2) <= 1e-12 * scale2:
            return new
        scale2 = new
    return scale2


def _golden_min(f: Callable[[float], float], lo: float, hi: float, tol: float) -> float:
    """The minimizer of a unimodal `f` on [lo, hi], to within `tol`."""
    ratio = (np.sqrt(5.0) - 1) / 2
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = f(a), f(b)
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2


def _norm_pdf(x: float) -> float:
    return float(np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))


def _winsorized_sd(tail: float) -> float:
    """Standard deviation of a standard normal winsorized at its `tail` and 1 - `tail` quantiles."""
    c = float(special.ndtri(1 - tail))
    inner = 1 - 2 * tail - 2 * c * _norm_pdf(c)
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
        scores[1:] = special.ndtri(np.clip(u, 1e-6, 1 - 1e-6))
        self.scores_[ok] = scores
        return self

    def simulate(self, z: np.ndarray) -> np.ndarray:
        """Capacity paths (n, h) from standard-normal scores z (n, h); NaN when unknown."""
        if not self.known_:
            return np.full(z.shape, np.nan)
        u = special.ndtr(z)
        out = np.empty(z.shape)
        s = np.full(z.shape[0], self.last_)
        for h in range(z.shape[1]):
            s = np.minimum((u[:, h, None] > self.cdf_[s]).sum(axis=1), self.levels_.size - 1)
            out[:, h] = self.levels_[s]
        return out
