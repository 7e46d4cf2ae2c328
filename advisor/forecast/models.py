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


@dataclass
class RegimePriceModel:
    """Two price regimes (calm and surge) switching as a Markov chain whose switch chances follow the hour of day.

    Why a third model: some spot markets sit at one of two levels an order of magnitude apart and jump between them
    (AWS 2015 c3.xlarge in April: 0.033 or 1.0 $/h, 14-18 h of surge from about noon UTC, 7% of hours in between).
    In log space the AR(1)-t model reads a jump as a residual to decay, so its scenarios glide down through the
    intermediate prices for many hours: a limit between the levels looked dear to buy, which the real series
    seldom offered. Here an hour's regime follows the chain (the switch timed by the copula score, so markets that
    surge together in history surge together in the scenarios), and its mean and peak are a recorded hour of that
    regime, picked through a persistent latent AR(1) rank, so a high-priced surge stays high for hours."""

    shrink_days: float = 1.0
    split_: float = 0.0
    up_: np.ndarray = field(default_factory=lambda: np.zeros(24))
    down_: np.ndarray = field(default_factory=lambda: np.zeros(24))
    levels_: tuple[np.ndarray, np.ndarray] = (np.zeros((1, 2)), np.zeros((1, 2)))
    rho_: float = 0.0
    last_state_: int = 0
    last_rank_: float = 0.0
    scores_: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def fit(self, mean: np.ndarray, peak: np.ndarray, how: np.ndarray) -> RegimePriceModel:
        """Fit on hourly mean and peak prices with their hour-of-week; NaN hours skipped (no transition across)."""
        ok = np.isfinite(mean) & (mean > 0)
        logs = np.log(np.where(ok, mean, 1.0))
        self.split_ = two_level_split(logs[ok])[1]
        state = (logs > self.split_).astype(int)
        both = ok[1:] & ok[:-1]
        prev, nxt, hod = state[:-1][both], state[1:][both], (how[1:] % 24)[both]
        self.up_ = _switch_chance(hod[prev == 0], nxt[prev == 0] == 1, self.shrink_days)
        self.down_ = _switch_chance(hod[prev == 1], nxt[prev == 1] == 0, self.shrink_days)
        top = np.where(np.isfinite(peak), np.maximum(peak, mean), mean)
        rank = np.zeros(len(mean))
        tables = []
        for k in (0, 1):
            hours = np.flatnonzero(ok & (state == k))
            order = hours[np.argsort(mean[hours], kind="stable")]
            tables.append(np.column_stack([mean[order], top[order]]))
            rank[order] = special.ndtri((np.arange(order.size) + 0.5) / order.size)
        self.levels_ = (tables[0], tables[1])
        stay = both & (state[1:] == state[:-1])
        x0, x1 = rank[:-1][stay], rank[1:][stay]
        self.rho_ = float(np.clip(np.corrcoef(x0, x1)[0, 1], 0.0, 0.99)) if stay.sum() > 2 and x0.std() > 0 else 0.0
        last = np.flatnonzero(ok)[-1]
        self.last_state_, self.last_rank_ = int(state[last]), float(rank[last])
        # the copula sees each observed transition's PIT (mid-interval): high scores push toward the surge
        up_t, down_t = self.up_[hod], self.down_[hod]
        lo = np.where(prev == 0, np.where(nxt == 1, 1 - up_t, 0.0), np.where(nxt == 0, 0.0, down_t))
        hi = np.where(prev == 0, np.where(nxt == 1, 1.0, 1 - up_t), np.where(nxt == 0, down_t, 1.0))
        self.scores_ = np.zeros(len(mean))
        self.scores_[1:][both] = special.ndtri(np.clip((lo + hi) / 2, 1e-6, 1 - 1e-6))
        return self

    def simulate(self, z: np.ndarray, how: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and peak price paths (n, h) from standard-normal scores z (n, h) (regime switches) and uniforms
        u (n, h, 2) (the latent rank's innovations)."""
        n, horizon = z.shape
        go_up = special.ndtr(z)
        e = special.ndtri(np.clip(u[..., 0], 1e-6, 1 - 1e-6)) * np.sqrt(1 - self.rho_ ** 2)
        state = np.empty((n, horizon), dtype=int)
        rank = np.empty((n, horizon))
        s, g = np.full(n, self.last_state_), np.full(n, self.last_rank_)
        for h, hod in enumerate(how % 24):
            s = np.where(s == 0, go_up[:, h] > 1 - self.up_[hod], go_up[:, h] >= self.down_[hod]).astype(int)
            g = self.rho_ * g + e[:, h]
            state[:, h], rank[:, h] = s, g
        mean, peak = np.empty((n, horizon)), np.empty((n, horizon))
        for k, table in enumerate(self.levels_):
            here = state == k
            pick = np.minimum((special.ndtr(rank[here]) * len(table)).astype(int), len(table) - 1)
            mean[here], peak[here] = table[pick, 0], table[pick, 1]
        return mean, peak


def _switch_chance(hod: np.ndarray, switched: np.ndarray, shrink: float) -> np.ndarray:
    """P(switch) entering each hour of day, shrunk toward the all-day rate by `shrink` pseudo-days; the all-day rate
    itself gets half a pseudo-switch, so a regime never left in the window can still end."""
    overall = (switched.sum() + 0.5) / (switched.size + 1.0)
    seen = np.bincount(hod, minlength=24)
    moved = np.bincount(hod, weights=switched.astype(float), minlength=24)
    return (moved + shrink * overall) / (seen + shrink)


REGIME_SEPARATION = 0.8  # share of the log-price variance between the two levels
REGIME_MIN_SHARE = 0.1  # hours in the rarer level: fewer are spikes, the AR-t model's tails
REGIME_MIN_RATIO = 4.0  # the levels' (log-mean) ratio
REGIME_MIN_VISITS = 5  # climbs to the upper level: one or two long excursions are no pattern to time
REGIME_MAX_SEASONAL = 0.9  # share of the variance the hour of week explains: above it the switches keep a clock,
# which the seasonal model forecasts exactly (real two-level markets: 0.17-0.55)


def two_level_split(logs: np.ndarray) -> tuple[float, float, float, float]:
    """The best split of log prices into two levels (Otsu: most between-level variance): (share of the variance
    between the levels, threshold, share of hours in the rarer level, ratio of the levels); zeros if flat."""
    ys = np.sort(logs[np.isfinite(logs)])
    if ys.size < 2 or ys[-1] - ys[0] < 1e-9:
        return 0.0, float(ys[-1]) if ys.size else 0.0, 0.0, 1.0
    k = np.arange(1, ys.size)
    cum = np.cumsum(ys)[:-1]
    low, high = cum / k, (ys.sum() - cum) / (ys.size - k)
    share = k / ys.size
    between = share * (1 - share) * (high - low) ** 2
    between[np.diff(ys) < 1e-9] = -1.0  # split only between distinct prices
    best = int(np.argmax(between))
    return (float(between[best] / ys.var()), float((ys[best] + ys[best + 1]) / 2),
            float(min(share[best], 1 - share[best])), float(np.exp(high[best] - low[best])))


POSTED_MOVE_SHARE = 0.02


def fit_price_model(mean: np.ndarray, peak: np.ndarray,
                    how: np.ndarray) -> PriceModel | PostedPriceModel | RegimePriceModel:
    """The posted-price model for a list price, the regime model for a two-level market, else the AR-t model.

    A list price moves in under 2% of its hours (a step every few days at most; markets that clear hourly move in
    25-95%) and never goes back to a price it left. A quiet auction-era spot market can move as rarely, but it
    leaves its floor for an excursion and returns to it (AWS 2015 m3.medium: 52 of 63 such four-week windows);
    its excursions are the AR-t model's spikes, and the posted model forecast it worse (pinball +30%). A market that
    sits at one of two levels far apart and climbs between them again and again gets the regime model."""
    ok = np.isfinite(mean) & (mean > 0)
    logs = np.log(mean[ok])
    moved = np.abs(np.diff(logs)) > 1e-6
    if moved.size and 0 < moved.mean() < POSTED_MOVE_SHARE and not _returns_to_a_left_price(logs):
        return PostedPriceModel().fit(mean, peak, how)
    separation, split, rarer, ratio = two_level_split(logs)
    visits = int(np.sum(np.diff((logs > split).astype(int)) == 1))
    if (separation >= REGIME_SEPARATION and rarer >= REGIME_MIN_SHARE and ratio >= REGIME_MIN_RATIO
            and visits >= REGIME_MIN_VISITS and _seasonal_share(logs, how[ok]) < REGIME_MAX_SEASONAL):
        return RegimePriceModel().fit(mean, peak, how)
    return PriceModel().fit(mean, peak, how)


def _seasonal_share(logs: np.ndarray, how: np.ndarray) -> float:
    """Share of the variance of log prices explained by their hour-of-week profile."""
    resid = logs - np.mean(logs) - _seasonal_profile(logs, how, PriceModel.shrink_weeks)[how]
    return 1.0 - float(np.var(resid) / max(np.var(logs), 1e-24))


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
    by golden-section search; for each df the scale solves its likelihood equation by Newton's method."""
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


def _t_scale2_given_df(x2: np.ndarray, df: float, scale2: float, iterations: int = 100) -> float:
    """The squared scale maximizing a centred t likelihood at fixed df: the root of
    mean((df + 1) x^2 / (df s^2 + x^2)) = 1, which falls in s^2, by Newton's method from `scale2` (the EM fixed point
    on the same equation took ~80 steps; this takes ~5). A step that would leave s^2 <= 0 halves it instead."""
    for _ in range(iterations):
        d = df * scale2 + x2
        r = (df + 1) * x2 / d
        slope = -float(np.mean(df * r / d))
        new = scale2 - (float(np.mean(r)) - 1) / slope if slope < 0 else scale2
        new = new if new > 0 else scale2 / 2
        if abs(new - scale2) <= 1e-12 * scale2:
            return max(new, 1e-24)
        scale2 = new
    return max(scale2, 1e-24)


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
