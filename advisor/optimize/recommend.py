"""`recommend`: from the store to a plan with honest numbers.

History before `as_of` -> forecaster -> training scenarios (plus windows of that recorded history, so real spike
shapes count; the two sources weigh half each) -> candidate plans scored by the replay engine -> the scenario MIP
picks one -> it and the alternatives are replayed on fresh scenarios (another seed, never fitted on); those are the
numbers reported.
Uncertain work (`hours_p90`) is a lognormal with median `hours`: scenarios are split over five of its quantiles, so
a plan that cannot absorb an overrun pays for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd

from advisor.backtest.strategies import Universe, docs_rule_plan, safe_margin
from advisor.errors import AdvisorError
from advisor.forecast import Forecaster
from advisor.optimize.candidates import (
    NONE,
    Candidate,
    as_limit,
    build_candidates,
    finite_peaks,
    first_fallback_price,
    ladder_name,
)
from advisor.optimize.solver import InfeasibleError, Solution, solve
from advisor.plan import (
    BatchResult,
    Bid,
    MarketPaths,
    Plan,
    Workload,
    load_history,
    replay_batch_many,
    same_structure,
)
from advisor.store import (
    Silence,
    as_of_past_records,
    coverage,
    first_price,
    instance_gpus,
    list_markets,
    market_regions,
    offers,
    silences,
    silent_at,
)
from advisor.units import format_usd, hour_after, parse_ts

WORK_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
# Training weight of the recorded-history windows against the forecast scenarios: half each, so a plan must look
# good both under the model and on what really happened lately (measured on AWS 2015: fewer workloads above the
# docs rule than weighting every scenario alike, or 0.8).
HISTORY_WEIGHT = 0.5
# History windows (one every 12 h that spans the deadline) needed for that full share: a two-day history holds one
# window for a 48-h deadline, one path, not half of what can happen; fewer windows share it in proportion.
HISTORY_FULL_WINDOWS = 8
# Training cost a higher limit (`_retune_limit`) or zones behind the chosen bid (`_broaden`) may add, per unit of
# work / slack, and still replace the chosen plan as insurance: 2% at a deadline of 1.25x the work, 0.5% at 2x, 0.25%
# at 3x. Measured on AWS 2015 g2.2xlarge (limits): mean cost / hindsight 1.242 -> 1.229, 96-h jobs at slack 1.25
# 1.071 -> 1.000 of the best static plan; a flat 2% at every slack lost as much at slack 4 (paying spikes the job
# could have waited out) as it won at 1.25. On spot-availability 2022 (zones): 1.489 -> 1.423, and a flat 1% at every
# slack cost GCP H100 1.342 -> 1.349 (this: 1.343) in extra moves at loose deadlines.
INSURANCE_TOLERANCE = 0.005
# ...and up to this much more for zones behind that price like the chosen ones (`_priced_alike`): such a zone costs no
# more an hour, only the restarts of moving to it, and a short history judges it by a few runs. Measured where zones
# of one type post one price and only capacity differs (spot-availability, 2 days of history at the first start):
# 2022 p3.2xlarge mean cost / hindsight 1.463 -> 1.404 (Greedy 1.382; 96 h due in 192 h 1.126 -> 1.001 of the
# hindsight-best static plan: 28 October, 2b alone, then 2a came back while 2b stayed out), p3.16xlarge 1.478 -> 1.444
# (Greedy 1.417); GCP H100 1.322 -> 1.325 (gangs of 4 and 8 at slack 2-4, 0.5-1.8% each: equal-priced zones there
# cost gang restarts); the same at 20%; 2023, the four-zone case and single-zone AWS 2015 unchanged.
ALIKE_TOLERANCE = 0.05
# With slack of THRIFT_SPARE x the work or more, the limit moves the other way (`_retune_limit`): down, as far as
# training costs at most THRIFT_TOLERANCE x slack / work more (1.5% at a deadline of 4x the work). Training ties
# limits that no recorded spike separates; with days to spare, a spike the history did not show is cheaper waited
# out than paid (AWS 2015 g2.2xlarge, 96 h due in 384 h from 19 July: 0.2 to 1.95 $/h within 1% in training; the
# August surge then cost 0.65-1.95 20.5 $, 0.2 10.0 $).
THRIFT_SPARE = 3.0
THRIFT_TOLERANCE = 0.005
# ...but never below this multiple of the market's median hourly peak price in training: a bid that close stakes the
# job on the level holding (AWS 2015 c3.xlarge: a calm level of 0.032 $/h drifted to 0.046 within weeks; lowered to
# 0.04 from 0.13, 96 h due in 384 h from 8 April cost 8.26 $ instead of 4.09).
THRIFT_FLOOR = 2.0
# Chance that a spot market a ladder bids on is out (no capacity, or priced out) for the whole job, one market at a
# time: a stockout longer than the recorded history showed. Real traces have them (GCP H100 2025: us-east4-a, never
# out over 3 h in the week before 11 October, then out 22 h, 17 h and 12 h in three days; AWS 2015 c3.xlarge at 5x
# on-demand for 3 days). Training adds, per market, copies of a few training scenarios without it, so a plan that
# stakes the job on one zone pays for that risk.
OUTAGE_CHANCE = 0.05
OUTAGE_SAMPLE = 0.1  # outage copies per market, as a share of the forecast scenarios
# ...with a week of history or more. With less, the chance grows in proportion (a day and a half: 4.7x, up to the cap
# of half the training weight over the markets bid on): a zone never out in a day and a half has shown far less than
# one never out in four weeks. Measured on GCP H100 2025 (first starts after a day of history): mean cost / hindsight
# 1.336 -> 1.322, P90 2.374 -> 2.122, 12-h jobs due in 15 h on one node 1.099 -> 1.009 of the hindsight-best static
# plan (the same with 14 days; 3.5 days: 1.335); spot-availability 2022 and 2023 (2 days and 1 day of history)
# unchanged; the AWS 2015 cases and the demo see four weeks.
OUTAGE_FULL_HISTORY_HOURS = 7 * 24
# A ladder's limits move down too (`_lower_ladder_limits`), at any slack, as far as training costs at most this much
# more: a ladder's limit is also its cue to leave a zone whose price climbs for one still below it, at the price of a
# restart rather than on-demand hours, and training scenarios tie such limits within a few percent. Measured on the
# four-zone AWS 2015 g2.2xlarge case: mean cost / hindsight 1.096 -> 1.072 (the same at 6%; 1.075 at 1.5%); 24-h
# jobs due in 30 h 1.097 -> 1.035 (16 July: 1b, first in the ladder, climbed from 0.09 to 0.13-0.22 $/h, a limit of
# 0.39 rode it at 3.15 $, one of 0.19 moved to 1c/1d at 0.07-0.08: 1.90 $).
LADDER_TOLERANCE = 0.03
# Training cost a smaller guard margin (`_lower_guard`) may add and still replace the chosen one. Found on
# spot-availability 2022 when weeks of phantom hours (before the spot records began) had both zones out: margins of
# 2, 4 and 8 h within 0.02% in training for 48 h due in 60 h; the 8 h the MIP took cost 143.8 $ where 2 h cost 88.7.
GUARD_TOLERANCE = 0.001
INSURANCE_CAP = 1.5  # x the on-demand price: above it a spike hour costs half again the on-demand hour it replaces
# A late limit (`_raise_late`, up to INSURANCE_CAP) takes over once the slack left beyond the guard margin is down to
# this share of it, on deadlines with at least LATE_MIN_ROOM_HOURS of such slack. Measured on AWS 2015 (38 starts,
# 9 workloads) as a fixed rule on the advisor's plans: a quarter cut c3.xlarge's cost 0.8% and g2.2xlarge's 0.3%;
# half cut c3's 1.4% and raised g2's 0.2%. Which starts gain, training does not tell (its predicted saving and the
# realized one were unrelated), so the move is insurance taken on a training tie, not a bet taken on a forecast.
LATE_SHARE = 0.25
LATE_MIN_ROOM_HOURS = 4.0
# ...or, for limits below on-demand, once no bid has run for this many hours in a row while every bid market was priced
# below on-demand: a level between the limits and on-demand that holds a whole day (past the daily cycle) is taken
# for a new level, not a spike to wait out, and with every zone below on-demand the raised ladder's first zone costs
# less than on-demand too. (A limit at or above on-demand that has not run for a day faced spikes above on-demand:
# AWS 2015 m3.medium, not used in tuning, 1.114 -> 1.119 when those counted too: from 13 June a limit of 0.07 $/h,
# on-demand 0.067, raised after a day of peaks at 0.077, paid a mean of 0.045 $/h where waiting paid 0.026.)
# Measured on AWS 2015 (`python benchmarks/backtests.py`): c3.xlarge 1.277 -> 1.271 x hindsight, 96 h due in 384 h
# 1.106 -> 1.041 of the best static plan (from 26 April a limit of 0.13 ran 30 h before the level moved to 0.10-0.25
# $/h for a week, then 69 h went on-demand), 48 h due in 192 h 1.036 -> 1.025; g2.2xlarge 1.200 either way, 96 h due
# in 384 h 1.018 -> 1.009; the four-zone g2 case unchanged (counting an hour with any one zone below on-demand: 1.073
# -> 1.075, a ladder raised after a day out from 15 August paid 13.9 $ where waiting paid 9.5 $). Counting every hour
# out, whatever the price, paid g2's August surge (96 h due in 384 h 1.061); 12 h paid g2's shorter spells (24 h due
# in 96 h 0.901 -> 0.935).
LATE_AFTER_HOURS = 24.0
# Keeping pace (`_keep_pace`) is a bet on the forecast, not insurance: it buys fallback hours early that waiting might
# have made unnecessary, so training must price it this much lower than the chosen plan. Measured on every case of
# `python benchmarks/backtests.py` (mean cost / hindsight, without pace -> any training saving -> 3%; before the line
# allowed an hour's lag, PACE_LAG_HOURS, which moved c3 to 1.228 and r3 to 1.262): c3.xlarge 1.271
# -> 1.223 -> 1.218 (slack 1.25: 1.000 / 1.008 / 1.000 of the best static plan -> 0.887 / 0.893 / 0.884); g2.2xlarge
# 1.200 -> 1.188 -> 1.195; spot-availability 2022 1.404 -> 1.360 -> 1.364 (Greedy 1.382); 2023 1.291 -> 1.296 ->
# 1.291; gcp-h100 1.325 -> 1.306 (P90 1.559 -> 1.843) -> 1.309 (P90 1.559); r3.large 1.290 -> 1.295 (P90 1.695 ->
# 1.867) -> 1.288; m3.medium, d2.8xlarge and the four-zone g2 case within 0.001.
PACE_GAIN = 0.03
# Patience (`_be_patient`): a ladder of zones hops to the next one whenever the zone it runs in blinks, and pays a
# restart (and a gang's lost work) each time; waiting a few hours for the zone instead is nearly free when the slack is
# days. The hours tried, and like keeping pace a bet on the forecast, taken only when training prices it this much
# lower (each longer patience this much lower again). Measured on every case of `python benchmarks/backtests.py` (mean
# cost / hindsight, without -> any training saving -> 3%): gcp-h100 1.308 -> 1.303 (P90 1.559 -> 2.008) -> 1.299 (P90
# 1.559; 12 h due in 24 h / 48 h on four nodes 1.056 / 1.051 -> 1.043 / 1.031 of the best static plan, 48 h due in
# 192 h on eight 1.053 -> 1.044); spot-availability 2022 1.364 -> 1.411 -> 1.364; AWS 2015 g2, c3, the four- and
# five-zone cases, m3, r3, d2 and 2023 the same at 3%. The cheapest patience 3% lower, not the shortest: gcp-h100
# 1.301, P90 1.732.
PATIENCE_HOURS = (1.0, 2.0, 4.0, 8.0)
PATIENCE_GAIN = 0.03
FIXED_LIMITS = "recommended, without the late limit"  # the alternative that shows what the late limit buys
UNPACED = "recommended, without keeping pace"  # ...and what keeping pace buys
HASTY = "recommended, moving zones at once"  # ...and what patience buys


@dataclass
class Outcome:
    """A plan and its replay on the evaluation scenarios."""

    name: str
    plan: Plan
    result: BatchResult

    @property
    def cost(self) -> dict[str, float]:
        c = self.result.cost
        return {"mean": float(c.mean()), "p50": float(np.quantile(c, 0.5)), "p90": float(np.quantile(c, 0.9))}

    @property
    def probability(self) -> float:
        return self.result.probability_meet_deadline


@dataclass
class Recommendation:
    """What `advisor recommend` found, with everything a report needs."""

    workload: Workload
    chosen: Outcome
    alternatives: list[Outcome]
    as_of: pd.Timestamp
    history_start: pd.Timestamp
    universe: Universe
    solution: Solution
    n_train: int
    n_eval: int
    candidates: int
    reservation_reason: str | None = None
    seed: int = 0
    evaluation_paths: MarketPaths | None = None
    notes: list[str] = field(default_factory=list)
    outage_chance: float = 0.0  # the chance training gave each bid market of being out all job (0: none)


@dataclass
class Training:
    """What candidates are scored on: the training paths (outage copies included), their weights `q`, the weights
    without the assumed outages (`plain`: what a budget holds) and the paths before the copies (`plain_paths`)."""

    paths: MarketPaths
    q: np.ndarray
    plain: np.ndarray
    plain_paths: MarketPaths


def work_levels(workload: Workload) -> list[float]:
    """Work hours per scenario group: just `hours`, or five quantiles of the lognormal through hours_p90."""
    if not workload.hours_p90 or workload.hours_p90 <= workload.hours:
        return [workload.hours]
    from scipy.special import ndtri

    sigma = math.log(workload.hours_p90 / workload.hours) / ndtri(0.9)
    return [round(workload.hours * math.exp(sigma * ndtri(q)), 2) for q in WORK_QUANTILES]


def replay_uncertain(workload: Workload, plan: Plan, paths: MarketPaths) -> BatchResult:
    """`replay_batch` with the scenarios split evenly over the work levels (one level: a plain replay)."""
    return replay_uncertain_many(workload, [plan], paths)[0]


def replay_uncertain_many(workload: Workload, plans: list[Plan], paths: MarketPaths,
                          by_market: bool = True) -> list[BatchResult]:
    """`replay_uncertain` of plans of one structure (see `same_structure`) in one pass per work level."""
    levels = work_levels(workload)
    if len(levels) == 1:
        return replay_batch_many(workload, plans, paths, by_market)
    parts: list[list[tuple[np.ndarray, BatchResult]]] = [[] for _ in plans]
    index = np.arange(paths.n_scenarios)
    for k, hours in enumerate(levels):
        sel = index[index % len(levels) == k]
        sub = MarketPaths(paths.markets, paths.mean[sel], paths.peak[sel], paths.avail[sel], paths.start)
        level = replace(workload, hours=hours, hours_p90=None)
        for j, result in enumerate(replay_batch_many(level, plans, sub, by_market)):
            parts[j].append((sel, result))
    return [_merge(part, paths.n_scenarios) for part in parts]


def replay_grouped(workload: Workload, plans: list[Plan], paths: MarketPaths, chunk: int = 16,
                   by_market: bool = True) -> list[BatchResult]:
    """`replay_uncertain` of every plan, those of one structure replayed together (`chunk` at a time)."""
    groups: dict[tuple, list[int]] = {}
    for i, plan in enumerate(plans):
        groups.setdefault(same_structure(plan), []).append(i)
    out: list[BatchResult | None] = [None] * len(plans)
    for members in groups.values():
        for c in range(0, len(members), chunk):
            ids = members[c:c + chunk]
            batch = replay_uncertain_many(workload, [plans[i] for i in ids], paths, by_market)
            for i, result in zip(ids, batch, strict=True):
                out[i] = result
    return out


def _merge(parts: list[tuple[np.ndarray, BatchResult]], n: int) -> BatchResult:
    labels = list(dict.fromkeys(label for _, r in parts for label in r.labels))
    out = {k: np.zeros(n) for k in ("cost", "finish_hour", "market_cost", "reservation_cost", "credits",
                                    "remaining_hours")}
    finished, pre, hours = np.zeros(n, dtype=bool), np.zeros(n, dtype=int), np.zeros((n, len(labels)))
    for sel, r in parts:
        for k in out:
            out[k][sel] = getattr(r, k)
        finished[sel], pre[sel] = r.finished, r.preemptions
        for j, label in enumerate(r.labels):
            hours[sel, labels.index(label)] = r.hours[:, j]
    return BatchResult(finished=finished, preemptions=pre, hours=hours, labels=labels, **out)


def with_history_windows(scenarios: MarketPaths, history: MarketPaths, horizon: int, every: int = 12,
                         posted: frozenset[str] = frozenset()) -> MarketPaths:
    """The forecast scenarios plus every `every`-hour window of the recorded history before as_of that spans the
    horizon: real spikes and outages, with their real shapes, next to the model's (training only). A `posted` price's
    windows are scaled to start at its last price: its level is known, and a window at a level it has left (GCP
    europe-north1 at 68.46 $/h for weeks, 17.65 since a step down) says only how it may step from here."""
    starts = list(range(0, history.hours - horizon + 1, every))
    if not starts:
        return scenarios
    idx = [history.index(m) for m in scenarios.markets]
    mean, peak = history.mean[0][idx], history.peak[0][idx]

    def stack(a: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        return np.concatenate([a[None, :, s:s + horizon] * (1.0 if scale is None else scale[:, s, None])
                               for s in starts], axis=0)

    scale = np.ones(mean.shape)
    for row, market in enumerate(scenarios.markets):
        known = np.flatnonzero(np.isfinite(mean[row]) & (mean[row] > 0))
        if market in posted and known.size:
            scale[row] = mean[row, known[-1]] / pd.Series(mean[row]).bfill().ffill().to_numpy()
    return MarketPaths(scenarios.markets, np.concatenate([scenarios.mean, stack(mean, scale)]),
                       np.concatenate([scenarios.peak, stack(peak, scale)]),
                       np.concatenate([scenarios.avail, stack(history.avail[0][idx])]), scenarios.start)


def scenario_weights(n_forecast: int, n_history: int, history_weight: float | None) -> np.ndarray:
    """Training-scenario weights summing to 1: the recorded-history windows share `history_weight` of the mass, in
    proportion when there are fewer than HISTORY_FULL_WINDOWS (None: every scenario counts the same)."""
    n = n_forecast + n_history
    if history_weight is None or not n_history or not n_forecast:
        return np.full(n, 1.0 / n)
    history_weight *= min(1.0, n_history / HISTORY_FULL_WINDOWS)
    return np.concatenate([np.full(n_forecast, (1 - history_weight) / n_forecast),
                           np.full(n_history, history_weight / n_history)])


def with_outages(train: MarketPaths, q: np.ndarray, markets: list[str], n_forecast: int,
                 chance: float = OUTAGE_CHANCE) -> tuple[MarketPaths, np.ndarray]:
    """Training scenarios and weights plus, for each market, copies of a sample spread evenly over the training
    scenarios (forecast and history windows alike; a tenth as many as the forecast ones) with that market out all
    job; each market's copies weigh `chance` (split as their originals' weights), the rest is scaled down to match."""
    each = min(max(5, int(n_forecast * OUTAGE_SAMPLE)), train.n_scenarios)
    if not markets or not each or chance <= 0:
        return train, q
    chance = min(chance, 0.5 / len(markets))  # the outages never outweigh the scenarios they are copied from
    pick = np.unique(np.linspace(0, train.n_scenarios - 1, each).round().astype(int))
    parts, weights = [train], [q * (1 - chance * len(markets))]
    for m in markets:
        avail = train.avail[pick].copy()
        avail[:, train.index(m)] = 0.0
        parts.append(MarketPaths(train.markets, train.mean[pick], train.peak[pick], avail, train.start))
        weights.append(chance * q[pick] / q[pick].sum())
    return (MarketPaths(train.markets, *(np.concatenate([getattr(p, k) for p in parts]) for k in
                                         ("mean", "peak", "avail")), train.start), np.concatenate(weights))


def _hours_recorded(history: MarketPaths, markets: list[str]) -> int:
    """Hours of the history in which any of `markets` has a price or a capacity record."""
    idx = [history.index(m) for m in markets]
    if not idx:
        return history.hours
    return int((np.isfinite(history.mean[0, idx]) | np.isfinite(history.avail[0, idx])).any(axis=0).sum())


def select_universe(con: duckdb.DuckDBPyConnection, w: Workload, instance_type: str | None = None) -> Universe:
    """Markets for the workload's GPU (instances of `gpus_per_node` GPUs), providers and explicit markets."""
    frame = list_markets(con)
    if w.markets:
        missing = [m for m in w.markets if m not in set(frame["market"])]
        if missing:
            raise AdvisorError(f"no market {missing[0]!r} in the store. To fix: `advisor markets` lists them")
        frame = frame[frame["market"].isin(w.markets)]
    else:
        if instance_type:  # the type fixes the GPUs per instance; its zones and regions compete
            frame = frame[frame["instance_type"] == instance_type]
        else:
            if w.gpu:
                frame = frame[frame["gpu"].str.lower() == w.gpu.lower()]
            frame = frame[frame["gpus_per_instance"] == w.gpus_per_node]
        if w.providers:
            regions = market_regions(con)
            frame = frame[[allowed_by(w.providers, r.provider, regions.get(r.market), r.location)
                           for r in frame.itertuples()]]
    spot = tuple(frame.loc[frame["kind"] == "spot", "market"])
    on_demand = tuple(frame.loc[frame["kind"] == "on_demand", "market"])
    what = ("the markets given" if w.markets else instance_type) or f"{w.gpu or 'any GPU'} x{w.gpus_per_node}"
    what += f" on {', '.join(w.providers)}" if w.providers else ""
    if not on_demand:
        raise AdvisorError(f"no on-demand market for {what} to fall back to. To fix: `advisor markets` lists what "
                           f"the store has; widen --providers/--markets or change --gpus-per-node")
    return Universe(spot=spot, on_demand=on_demand)


def allowed_by(providers: tuple[str, ...], provider: str, region: str | None, location: str) -> bool:
    """A market (or offer) at `location` in `region` is among `providers`: each a cloud (`aws`) or SkyPilot's infra
    `cloud/region[/zone]`; a region also matches the locations named after it (us-central5 -> us-central5-a)."""
    for entry in providers:
        cloud, _, rest = entry.lower().partition("/")
        reg, _, zone = rest.partition("/")
        here = location.lower()
        if (cloud == provider.lower() and (not reg or reg == (region or "").lower() or here.startswith(reg))
                and (not zone or zone == here)):
            return True
    return False


@dataclass
class RecordedHistory:
    """What a recommendation is fitted on: the recorded paths, the universe left to use, the forecast origin, and a
    note per market left out."""

    paths: MarketPaths
    universe: Universe
    as_of: pd.Timestamp
    notes: list[str]


def fetch_history(con: duckdb.DuckDBPyConnection, universe: Universe, as_of: pd.Timestamp | None,
                  lookback_hours: int) -> RecordedHistory:
    """The recorded history a recommendation fits on, from a universe less its spot markets silent at as_of
    (`silent_markets`: a frozen last price is not data) and its on-demand markets with no price in the history, and
    the forecast origin (given, or the hour after the last spot record). The spot records bound the window: a list
    price recorded once, when it was quoted, would otherwise open it with weeks in which no bid holds, or stretch it
    past the last spot record with the market frozen at that record."""
    markets = list(universe.spot + universe.on_demand)
    first, last = coverage(con, list(universe.spot) or markets)
    live = as_of is None
    as_of = parse_ts(as_of).ceil("h") if not live else hour_after(last)
    if pd.Timestamp(first) >= as_of:
        raise AdvisorError(f"no history before {as_of} for {markets[0]} and the others. To fix: a later --as-of")
    gaps = silences(con, list(universe.spot), as_of)  # looked up once: they also mask the history's hours
    universe, notes = _without_silent(universe, silent_at(gaps, as_of), as_of)
    if notes:  # a zone left out may have held the first record
        markets = list(universe.spot + universe.on_demand)
        first, _ = coverage(con, list(universe.spot))
    start = max(as_of - pd.Timedelta(hours=lookback_hours), pd.Timestamp(first).ceil("h"))
    history = load_history(con, markets, start, int((as_of - start) / pd.Timedelta(hours=1)), gaps)
    if live:
        _quote_list_prices(con, history, universe.on_demand)
    return RecordedHistory(history, _priced_fallbacks(universe, history, as_of), as_of, notes)


def _without_silent(universe: Universe, silent: list[Silence], as_of: pd.Timestamp) -> tuple[Universe, list[str]]:
    """The universe less its spot markets `silent` at `as_of`, with a note for each; an AdvisorError when every spot
    market is (an --as-of past the records' end)."""
    if not silent:
        return universe, []
    if len(silent) == len(universe.spot):
        raise as_of_past_records(silent, as_of)
    gone = {s.market for s in silent}
    notes = [f"left out {s.market}: its last record ({s.last:%Y-%m-%d %H:%M}) is {s.hours / 24:.0f} days before "
             f"as_of, longer than it was ever silent before, so its last price would be carried forward as if it "
             f"still held. To fix: ingest its newer records" for s in silent]
    return replace(universe, spot=tuple(m for m in universe.spot if m not in gone)), notes


def _quote_list_prices(con: duckdb.DuckDBPyConnection, history: MarketPaths, on_demand: tuple[str, ...]) -> None:
    """In place: an on-demand market with no price in the history takes its first recorded one for all of it (a
    live recommendation uses a list price fetched after the last spot record)."""
    for market in on_demand:
        price = None if _has_price(history, market) else first_price(con, market)
        if price is not None:
            i = history.index(market)
            history.mean[0, i], history.peak[0, i] = price, price


def _has_price(history: MarketPaths, market: str) -> bool:
    return bool(np.isfinite(history.mean[0, history.index(market)]).any())


def _priced_fallbacks(universe: Universe, history: MarketPaths, as_of: pd.Timestamp) -> Universe:
    """The universe without the on-demand markets that have no price before `as_of` (a fallback needs one); an
    AdvisorError when none has."""
    priced = tuple(m for m in universe.on_demand if _has_price(history, m))
    if not priced:
        raise AdvisorError(f"no on-demand price before {as_of} for {universe.on_demand[0]}"
                           f"{' or the others' if len(universe.on_demand) > 1 else ''}, so nothing to fall back on. "
                           f"To fix: a later --as-of, or ingest the list price with an earlier date")
    return replace(universe, on_demand=priced)


def _earliest_deadline(w: Workload) -> int:
    return int(math.ceil(max(work_levels(w)) + w.restart_overhead))


def _explain_infeasible(w: Workload, cost: np.ndarray, meet: np.ndarray, q: np.ndarray, plain: np.ndarray) -> str:
    rates = meet @ q
    if w.deadline_hours < _earliest_deadline(w) or rates.max() < w.target_probability:
        if w.deadline_hours < _earliest_deadline(w):
            return (f"no plan can finish {max(work_levels(w)):g} h of work in {w.deadline_hours:g} h; the earliest "
                    f"deadline you can meet is {_earliest_deadline(w)} h (on-demand from the start)")
        return (f"no plan meets the deadline with P >= {w.target_probability:g}; the best any plan reaches is "
                f"{rates.max():.2f}. To fix: loosen --deadline or lower --target-probability")
    feasible = (cost @ plain)[rates >= w.target_probability]
    return f"no plan fits a budget of ${w.budget:,.0f}; the budget needed is ${feasible.min():,.0f}"


def _alternatives(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                  universe: Universe, paths: MarketPaths) -> dict[str, Plan]:
    rate = meet @ q
    mean = np.where(rate >= w.target_probability, cost @ q, np.inf)
    out = {"on-demand only": cands[0].plan}
    singles = [p for p, c in enumerate(cands)  # one bid at one limit: the late limit is the advisor's own
               if c.ladder != NONE and len(c.plan.bids) == 1 and c.plan.late_limit is None]
    if singles:
        out["best single bid"] = cands[min(singles, key=lambda p: (mean[p], -rate[p]))].plan
    reserved = [p for p, c in enumerate(cands) if c.reservation != NONE]
    if reserved:
        out["reservation only"] = cands[min(reserved, key=lambda p: (mean[p], -rate[p]))].plan
    if universe.spot:
        out["docs rule (limit = on-demand price)"] = docs_rule_plan(w, universe, paths)
    return out


def _reservation_reason(w: Workload, outcomes: dict[str, Outcome]) -> str | None:
    tiers = {o.plan.reservation.tier: o for o in outcomes.values() if o.plan.reservation}
    if len(tiers) < 2:
        return None
    hi, lo = tiers["high"], tiers["low"]
    better = "high" if hi.cost["mean"] < lo.cost["mean"] else "low"
    credits = hi.result.credits.mean()
    return (f"{better} flexibility: on the evaluation scenarios a high-flexibility reservation nets "
            f"${hi.cost['mean']:,.0f} (credits worth ${credits:,.0f} at credit_value {w.credit_value:g}) against "
            f"${lo.cost['mean']:,.0f} for low; " + ("pauses and early returns earn back more than the higher price"
                                                   if better == "high" else "the work uses the reservation nearly "
                                                   "in full, so the lower unit price wins"))


def recommend(con: duckdb.DuckDBPyConnection, workload: Workload, as_of: pd.Timestamp | None = None,
              instance_type: str | None = None, n_train: int = 200, n_eval: int = 500, seed: int = 0,
              lookback_hours: int = 28 * 24, solver: str = "auto", time_limit: float = 30.0,
              history_weight: float | None = HISTORY_WEIGHT, outage_chance: float = OUTAGE_CHANCE,
              move_limits: bool = True) -> Recommendation:
    """Recommend bids, a reservation and fallbacks for `workload`, seeing only data before `as_of`, over the markets
    of `instance_type` (or the workload's) when given, else of its GPU. Without `move_limits` every bid keeps its limit
    for the whole job, no late raise and no cap (for bids that cannot be edited once placed)."""
    instance_type = instance_type or workload.instance_type
    fetched = fetch_history(con, select_universe(con, workload, instance_type), as_of, lookback_hours)
    history, universe, as_of = fetched.paths, fetched.universe, fetched.as_of
    model = Forecaster(n_paths=n_train, seed=seed).fit(history)
    train = with_history_windows(model.scenarios(n_train, workload.horizon, seed), history, workload.horizon,
                                 posted=model.posted_markets())
    q = scenario_weights(n_train, train.n_scenarios - n_train, history_weight)
    fresh = model.scenarios(n_eval, workload.horizon, seed + 7919)
    offer_rows = offers(con)
    types = {m.split(":")[2] for m in history.markets}
    recorded = instance_gpus(con, instance_type) if instance_type else None
    gpu = workload.gpu or (recorded[0] if recorded else None)  # an A100 reservation does not serve a p5's H100 job
    types |= {t for t in offer_rows["instance_type"] if _gpu_match(t, gpu, workload.gpus_per_node)}
    offer_rows = offer_rows[offer_rows["instance_type"].isin(types)]
    if workload.providers:
        offer_rows = offer_rows[[allowed_by(workload.providers, r.provider, None, r.location)
                                 for r in offer_rows.itertuples()]]
    pool = build_candidates(workload, train, list(universe.spot), list(universe.on_demand), offer_rows)
    od_price = first_fallback_price(train, pool[0].plan.fallback)  # the price build_candidates used
    cap = INSURANCE_CAP * od_price
    if move_limits:
        pool = [_capped(c, od_price, workload) for c in pool]
    n_plain, bid_on = train.n_scenarios, list(dict.fromkeys(b.market for c in pool for b in c.plan.bids))
    plain_paths = train  # before the outage copies: what the model and the history say prices are
    seen = _hours_recorded(history, list(universe.spot))
    chance = outage_chance * max(1.0, OUTAGE_FULL_HISTORY_HOURS / max(seen, 1))
    train, q = with_outages(train, q, bid_on, n_train, chance)
    outage_used = (1 - q[:n_plain].sum()) / len(bid_on) if train.n_scenarios > n_plain else 0.0  # after any clamp
    plain = np.where(np.arange(train.n_scenarios) < n_plain, q, 0.0) / q[:n_plain].sum()  # what a budget holds
    cands, cost, meet = _score_in_rounds(workload, pool, train, q)
    try:
        solution = solve(cands, cost, meet, workload.target_probability, workload.budget, solver, time_limit, q,
                         budget_weights=plain)
    except InfeasibleError:
        raise InfeasibleError(_explain_infeasible(workload, cost, meet, q, plain)) from None
    training = Training(train, q, plain, plain_paths)
    cands, cost, meet, index, notes = _refine(workload, pool, cands, cost, meet, training, solution.index, cap,
                                              move_limits)
    notes = fetched.notes + ([solution.note] if solution.note else []) + notes
    solution = replace(solution, index=index)
    alternatives = _alternatives(workload, cands, cost, meet, q, universe, train)
    if cands[solution.index].plan.late_limit is not None:  # what the raise buys on the evaluation scenarios
        alternatives[FIXED_LIMITS] = cands[solution.index].plan.without_late_limit()
    if cands[solution.index].plan.keep_pace:
        alternatives[UNPACED] = replace(cands[solution.index].plan, keep_pace=False)
    if cands[solution.index].plan.patience_hours:
        alternatives[HASTY] = replace(cands[solution.index].plan, patience_hours=0.0)
    outcomes = {name: Outcome(name, plan, replay_uncertain(workload, plan, fresh))
                for name, plan in alternatives.items()}
    chosen = Outcome("recommended", cands[solution.index].plan,
                     replay_uncertain(workload, cands[solution.index].plan, fresh))
    res_outcomes = _tier_outcomes(workload, cands, cost, meet, q, fresh)
    return Recommendation(workload=workload, chosen=chosen, alternatives=list(outcomes.values()), as_of=as_of,
                          history_start=history.start, universe=universe, solution=solution, n_train=n_train,
                          n_eval=n_eval, candidates=len(cands),
                          reservation_reason=_reservation_reason(workload, res_outcomes), seed=seed,
                          evaluation_paths=fresh, notes=notes,
                          outage_chance=float(outage_used))


def _refine(w: Workload, pool: list[Candidate], cands: list[Candidate], cost: np.ndarray, meet: np.ndarray,
            t: Training, index: int, cap: float,
            move_limits: bool = True) -> tuple[list[Candidate], np.ndarray, np.ndarray, int, list[str]]:
    """The moves after the MIP, in order: zones behind the chosen bids (`_broaden`), a smaller guard margin on a
    training tie (`_lower_guard`), the limits retuned (`_retune_limit`), a late limit (`_raise_late`, unless not
    `move_limits`), keeping pace (`_keep_pace`), patience (`_be_patient`); each within the budget and meeting the
    target as often. Plans a move needs that the rounds left unscored are scored first and appended. Returns the
    candidates, their (candidate x scenario) cost and deadline met, the final choice and a note per move made."""
    budget = math.inf if w.budget is None else w.budget
    notes: list[str] = []

    def score(extra: list[Candidate]) -> None:
        nonlocal cands, cost, meet
        cands, cost, meet = _score_more(w, cands, cost, meet, extra, t.paths)

    score(_unscored(pool, cands, _extends(cands[index])) + _headed_by(cands[index], pool))
    alike = _priced_alike(t.plain_paths, cands[index].plan.bids)
    moved = _broaden(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget, alike)
    if moved != index:
        notes.append(_broaden_note(cands, cost, t.q, index, moved))
    index = moved
    score(_unscored(pool, cands, _at_other_guards(cands[index])))
    moved = _lower_guard(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_guard_note(cands, cost, t.q, index, moved))
    index = moved
    score(_unscored(pool, cands, _at_other_limits(cands[index])))
    floors = {b.market: THRIFT_FLOOR * _median_peak(t.plain_paths, b.market) for b in cands[index].plan.bids}
    moved = _retune_limit(w, cands, cost, meet, t.q, t.plain, index, cap, floors, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_retune_note(w, cands, cost, t.plain, t.q, index, moved))
    index = moved
    if move_limits and any(_price_moved(t.plain_paths, b.market) for b in cands[index].plan.bids):
        score(_late_variant(w, cands[index], cap))
    moved = _raise_late(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_late_note(cands, cost, t.q, index, moved))
    index = moved
    score(_paced_variant(cands[index]))
    moved = _keep_pace(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_pace_note(cands, cost, t.q, index, moved))
    index = moved
    score(_patient_variants(cands[index]))
    moved = _be_patient(w, cands, cost, meet, t.q, index, cost @ t.plain <= budget)
    if moved != index:
        notes.append(_patience_note(cands, cost, t.q, index, moved))
    return cands, cost, meet, moved, notes


def _paced_variant(chosen: Candidate) -> list[Candidate]:
    """`chosen` keeping pace (none for a reservation, a plan without bids or fallback, or one that keeps it)."""
    plan = chosen.plan
    if not plan.bids or not plan.fallback or plan.reservation or plan.keep_pace:
        return []
    return [replace(chosen, plan=replace(plan, keep_pace=True))]


def _keep_pace(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
               index: int, affordable: np.ndarray) -> int:
    """The chosen plan keeping pace when training prices it at least PACE_GAIN lower (a negative tolerance) and it
    meets the target as often; else the chosen plan."""
    return _variant_within(w, cands, cost, meet, q, index, -PACE_GAIN, affordable,
                           lambda c: c.keep_pace and replace(c, keep_pace=False) == cands[index].plan)


def _pace_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, paced: int) -> str:
    """What `_keep_pace` did and the training cost it saved."""
    saved = 1 - float(cost[paced] @ q) / float(cost[chosen] @ q)
    return (f"keeps pace: an hour it would wait while over an hour behind the line elapsed x work / deadline runs "
            f"on {cands[paced].plan.fallback[0].market} instead, and returns to the bids once back within the hour; "
            f"{saved:.1%} lower expected cost in training")


def _patient_variants(chosen: Candidate) -> list[Candidate]:
    """`chosen` waiting each of PATIENCE_HOURS for a zone that blinked (none for fewer than two bids, or a patient
    plan)."""
    plan = chosen.plan
    if len(plan.bids) < 2 or plan.patience_hours:
        return []
    return [replace(chosen, plan=replace(plan, patience_hours=h)) for h in PATIENCE_HOURS]


def _be_patient(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                index: int, affordable: np.ndarray) -> int:
    """The chosen plan at the shortest patience that training prices at least PATIENCE_GAIN lower, and at each longer
    one that is that much lower again, meeting the target as often; else the chosen plan. Each hour more is a bet
    that the zone comes back, so it must earn its keep."""
    plan, mean, best = cands[index].plan, cost @ q, index
    ok = _no_worse(w, cost, meet, q, q, index, 0.0, affordable)
    patient = [int(p) for p in np.flatnonzero(ok)
               if cands[p].plan.patience_hours > 0 and replace(cands[p].plan, patience_hours=0.0) == plan]
    for p in sorted(patient, key=lambda p: cands[p].plan.patience_hours):
        if mean[p] <= mean[best] * (1 - PATIENCE_GAIN):
            best = p
    return best


def _patience_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, patient: int) -> str:
    """What `_be_patient` did and the training cost it saved."""
    saved = 1 - float(cost[patient] @ q) / float(cost[chosen] @ q)
    return (f"patience: a job that a zone drops waits up to {cands[patient].plan.patience_hours:g} h for it (or an "
            f"earlier zone) before it takes a later one, saving the restarts of hopping; {saved:.1%} lower expected "
            f"cost in training")


def _broaden(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray, index: int,
             affordable: np.ndarray, alike: frozenset[str] = frozenset()) -> int:
    """The chosen bids with the most zones behind them (the same bids first, in order, at the same limits; its guard
    and reservation) that training prices at most INSURANCE_TOLERANCE x work / slack more, or ALIKE_TOLERANCE more
    when every zone added is in `alike` (priced like the chosen ones), and that meet the target as often; the
    cheapest of those. A zone waited on costs nothing until the ones before it fail, and in training only the
    restarts of moving to it when the first zone blinks; it is insurance against a first zone out longer than the
    history showed, worth most near a tight deadline (an exact tie the solver already settles this way)."""
    chosen = cands[index]
    head = list(chosen.plan.bids)
    if not head:
        return index
    mean, best = cost @ q, index
    tolerance = INSURANCE_TOLERANCE / _spare(w)
    usual = _no_worse(w, cost, meet, q, q, index, tolerance, affordable)
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, max(ALIKE_TOLERANCE, tolerance), affordable)):
        c = cands[p]
        if (list(c.plan.bids[:len(head)]) == head and c.guard == chosen.guard and c.reservation == chosen.reservation
                and (usual[p] or all(b.market in alike for b in c.plan.bids[len(head):]))
                and (len(c.plan.bids), -mean[p]) > (len(cands[best].plan.bids), -mean[best])):
            best = p
    return best


def _priced_alike(paths: MarketPaths, bids: tuple[Bid, ...]) -> frozenset[str]:
    """The spot markets whose median training price is within 1% of the dearest bid's market or below (capacity-only
    series, with no price, are alike): a zone behind them costs no more an hour than the zones before it."""
    if not bids:
        return frozenset()
    top = max(_median_peak(paths, b.market) for b in bids)
    return frozenset(m for m in paths.markets if m.endswith(":spot") and _median_peak(paths, m) <= top * 1.01)


def _lower_guard(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray, index: int,
                 affordable: np.ndarray) -> int:
    """The chosen bids and reservation at the smallest guard margin that training prices at most GUARD_TOLERANCE
    more and that meets the target as often. Where training ties margins (spot scarce in every scenario, so the
    job runs on on-demand whatever the margin), the smaller one keeps more of the window for spot if it comes back;
    the margin's own job, the deadline, is held by the P(meet) test."""
    chosen, best = cands[index], index
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, GUARD_TOLERANCE, affordable)):
        c = cands[p]
        if c.plan.bids == chosen.plan.bids and c.reservation == chosen.reservation and c.guard < cands[best].guard:
            best = p
    return best


def _guard_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, guarded: int) -> str:
    """What `_lower_guard` did and the training cost it added."""
    extra = float(cost[guarded] @ q) / float(cost[chosen] @ q) - 1
    return (f"guard margin lowered from {cands[chosen].guard:g} h to {cands[guarded].guard:g} h: training ties them "
            f"({extra:+.2%} expected cost), and the smaller margin keeps more of the window for spot if it comes "
            f"back; the deadline is met as often")


def _broaden_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, broad: int) -> str:
    """What `_broaden` added and the training cost it added."""
    added = [b.market for b in cands[broad].plan.bids[len(cands[chosen].plan.bids):]]
    extra = float(cost[broad] @ q) / float(cost[chosen] @ q) - 1
    return (f"added {', '.join(added)} behind the chosen bids: a zone waited on costs nothing until the ones before it "
            f"fail, and a first zone out longer than the history showed is what it is for; {extra:+.1%} expected cost "
            f"in training")


def _retune_limit(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                  plain: np.ndarray, index: int, cap: float, floors: dict[str, float] | None = None,
                  affordable: np.ndarray | None = None) -> int:
    """A single bid's limit moved as far as training allows, the same market, guard and reservation, meeting the target
    as often: up to `cap` costing at most INSURANCE_TOLERANCE x work / slack more, or, with THRIFT_SPARE x the work
    of slack or more, down (not below its market's `floors` price) costing at most THRIFT_TOLERANCE x slack / work
    more. A limit no training spike reached costs nothing more in training but rides out the spike the history never
    showed, worth most near a tight deadline, where a preemption sends the rest of the job to on-demand; with days to
    spare, waiting that spike out is cheaper than paying it. Costs are weighed with `plain` (no assumed outages: with
    its market out, every limit costs the same). A ladder's limits only move down (`_lower_ladder_limits`). Only
    `affordable` candidates (within the budget) are moved to."""
    chosen, floors = cands[index], floors or {}
    affordable = np.ones(len(cands), dtype=bool) if affordable is None else affordable
    if len(chosen.plan.bids) > 1:
        return _lower_ladder_limits(w, cands, cost, meet, q, index, floors, affordable)
    if not chosen.plan.bids:
        return index
    spare = _spare(w)
    up = spare < THRIFT_SPARE
    tolerance = INSURANCE_TOLERANCE / spare if up else THRIFT_TOLERANCE * spare
    best, limit = index, chosen.plan.bids[0].limit_price
    floor_price = floors.get(chosen.plan.bids[0].market, 0.0)
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, plain, index, tolerance, affordable)):
        if not _same_bids(cands[p], chosen):
            continue
        other = cands[p].plan.bids[0].limit_price
        if (limit < other <= cap + 1e-9) if up else (floor_price <= other < limit):
            best, limit = p, other
    return best


def _lower_ladder_limits(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                         index: int, floors: dict[str, float], affordable: np.ndarray) -> int:
    """The chosen ladder with every limit as low or lower, none below its market's `floors` price, the same zones in
    the same order, guard and reservation, costing at most LADDER_TOLERANCE more in training (outages included: a
    limit under a backup zone's price drops that zone) and meeting the target as often; the lowest such top limit.
    When the zone it is on climbs past the limit, a ladder moves to the next zone still below it for a restart, where
    a higher limit would have paid the climb."""
    chosen = cands[index]
    limits = np.array([b.limit_price for b in chosen.plan.bids])
    lowest = np.array([floors.get(b.market, 0.0) for b in chosen.plan.bids])
    best, top = index, limits.max()
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, LADDER_TOLERANCE, affordable)):
        if not _same_bids(cands[p], chosen):
            continue
        other = np.array([b.limit_price for b in cands[p].plan.bids])
        if (other <= limits + 1e-12).all() and (other >= lowest - 1e-12).all() and other.max() < top:
            best, top = p, other.max()
    return best


def _late_variant(w: Workload, chosen: Candidate, cap: float) -> list[Candidate]:
    """`chosen` with its bids raised to `cap` once the slack left beyond its guard margin is down to LATE_SHARE of
    it, or (limits below on-demand) after LATE_AFTER_HOURS waiting with every bid market below on-demand (none for a
    reservation, a limit at the cap already, or under LATE_MIN_ROOM_HOURS of such slack)."""
    plan = chosen.plan
    room = w.deadline_hours - w.hours - plan.guard_margin_hours
    if (not plan.bids or plan.reservation or plan.late_limit is not None or room < LATE_MIN_ROOM_HOURS
            or max(b.limit_price for b in plan.bids) >= cap * (1 - 1e-9)):
        return []
    margin = plan.guard_margin_hours + LATE_SHARE * room
    below = max(b.limit_price for b in plan.bids) < cap / INSURANCE_CAP  # every limit below on-demand
    return [replace(chosen, plan=replace(plan, late_limit=as_limit(cap, up=False), late_margin_hours=margin,
                                         late_after_hours=LATE_AFTER_HOURS if below else None))]


def _price_moved(paths: MarketPaths, market: str) -> bool:
    """Whether a market's price moved in training: a late limit is no insurance on a posted price, or none."""
    peaks = finite_peaks(paths, market)
    return bool(peaks.size) and bool(peaks.max() > peaks.min())


def _raise_late(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                index: int, affordable: np.ndarray) -> int:
    """The chosen plan with a late limit (`_late_variant`) when training prices it at most INSURANCE_TOLERANCE more
    and it meets the target as often; else the chosen plan. Bids kept low while the slack is ample wait out what a
    high limit would pay; once most of it is gone a preemption, or a level that settles above the limit, sends the
    rest of the job to on-demand, which the raised limit (a second price: the market is paid, not the limit) beats.
    The same insurance `_retune_limit` buys at a tight deadline, bought for the end of a loose one."""
    return _variant_within(w, cands, cost, meet, q, index, INSURANCE_TOLERANCE, affordable,
                           lambda c: c.late_limit is not None and c.without_late_limit() == cands[index].plan)


def _variant_within(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                    index: int, tolerance: float, affordable: np.ndarray, is_variant: Callable[[Plan], bool]) -> int:
    """The first candidate whose plan `is_variant` of the chosen one, within `tolerance` of its training cost (below
    zero: at least that much cheaper), within the budget and meeting the target as often; else the chosen one."""
    for p in np.flatnonzero(_no_worse(w, cost, meet, q, q, index, tolerance, affordable)):
        if is_variant(cands[p].plan):
            return int(p)
    return index


def _late_note(cands: list[Candidate], cost: np.ndarray, q: np.ndarray, chosen: int, raised: int) -> str:
    """What `_raise_late` did and the training cost it added."""
    plan = cands[raised].plan
    extra = float(cost[raised] @ q) / float(cost[chosen] @ q) - 1
    waited = (f", or after {plan.late_after_hours:g} h waiting on prices below the fallback's"
              if plan.late_after_hours else "")
    return (f"limits rise to {format_usd(plan.late_limit)} once the slack left is {plan.late_margin_hours:g} "
            f"h{waited}: near the deadline a preemption, and at any time a price level that settles above the limit, "
            f"would send the rest of the job to on-demand; {extra:+.1%} expected cost in training")


def _capped(c: Candidate, od_price: float, w: Workload) -> Candidate:
    """`c` with its limits falling to on-demand once riding prices above it has cost what leaving costs
    (`switch_cost_hours`), when any limit is above on-demand."""
    if c.plan.bids and max(b.limit_price for b in c.plan.bids) > od_price * (1 + 1e-9):
        return replace(c, plan=replace(c.plan, dear_excess_hours=switch_cost_hours(w)))
    return c


def switch_cost_hours(w: Workload) -> float:
    """What leaving a bid priced above on-demand costs, in on-demand hours: a restart there, the work lost since the
    last checkpoint (half an interval on average), and a restart back on spot later.

    Why this is when limits above on-demand (up to 3x, to ride an excursion rather than be preempted by it) fall to
    it: riding costs the excess over on-demand each hour and leaving costs this once, so riding until the excess paid
    equals it (the ski-rental rule) pays at most about twice what the better choice would have, made knowing how long
    the excursion lasts. AWS 2015 d2.8xlarge (not used in tuning), 28 April: a limit of 3x on-demand rode 10.50 $/h,
    1.9x on-demand, into a plateau that held 40 h; capped after 12 h in a row above on-demand (the rule before), it
    paid 60 $ over on-demand, under this rule 10 $. `python benchmarks/backtests.py`, 12 h -> this: d2.8xlarge 1.116 ->
    1.113 x hindsight, slack 1.25 against the docs' rule 1.088 / 1.045 / 1.023 -> 1.016 / 1.008 / 1.004; r3.large
    1.262 -> 1.256; m3.medium 1.113 -> 1.114; every other case the same. Twice this budget: d2 1.113, m3 1.116.
    Lifting the cap once the excursion ends (each excursion its own rental, so the next can be ridden): r3 1.259, m3
    1.114 (P90 1.426 -> 1.417), d2 and g2 the same; the cap stays for good."""
    return 2 * w.restart_overhead + w.checkpoint_every / 2


def _spare(w: Workload) -> float:
    """The slack as a multiple of the work: (deadline - work) / work."""
    return max(w.deadline_hours - w.hours, 1e-9) / w.hours


def _no_worse(w: Workload, cost: np.ndarray, meet: np.ndarray, q: np.ndarray, weights: np.ndarray, index: int,
              tolerance: float, affordable: np.ndarray) -> np.ndarray:
    """The candidates a move after the MIP may go to (bool per candidate): `affordable` (within the budget), meeting
    the deadline as often as the chosen one (or the target), costing at most `tolerance` more under `weights`."""
    rate, mean = meet @ q, cost @ weights
    floor = min(w.target_probability, float(rate[index])) - 1e-12
    return affordable & (rate >= floor) & (mean <= float(mean[index]) * (1 + tolerance))


def _median_peak(paths: MarketPaths, market: str) -> float:
    """A market's median hourly peak price over the scenarios (0 where no price is known)."""
    peaks = finite_peaks(paths, market)
    return float(np.median(peaks)) if peaks.size else 0.0


def _same_bids(c: Candidate, chosen: Candidate) -> bool:
    """`c` bids on `chosen`'s markets in its order, at any limits, with its guard and reservation."""
    return ([b.market for b in c.plan.bids] == [b.market for b in chosen.plan.bids] and c.guard == chosen.guard
            and c.reservation == chosen.reservation)


def _retune_note(w: Workload, cands: list[Candidate], cost: np.ndarray, plain: np.ndarray, q: np.ndarray,
                 chosen: int, retuned: int) -> str:
    """What `_retune_limit` did and why, with the training cost it added (weighed as it was weighed)."""
    def limits(p: int) -> str:
        return ", ".join(format_usd(b.limit_price) for b in cands[p].plan.bids)

    ladder = len(cands[chosen].plan.bids) > 1
    weights = q if ladder else plain
    extra = float(cost[retuned] @ weights) / float(cost[chosen] @ weights) - 1
    slack = w.deadline_hours - w.hours
    if ladder:
        return (f"limits lowered from {limits(chosen)} to {limits(retuned)}: a ladder leaves a zone whose price climbs "
                f"past its limit for the next zone still below it, at the cost of a restart; {extra:+.1%} expected "
                f"cost in training")
    if cands[retuned].plan.bids[0].limit_price > cands[chosen].plan.bids[0].limit_price:
        return (f"limit raised from {limits(chosen)} to {limits(retuned)} as insurance against a spike the history "
                f"did not show: {extra:+.1%} expected cost in training, with {slack:g} h of slack to wait out a "
                f"preemption")
    return (f"limit lowered from {limits(chosen)} to {limits(retuned)}: with {slack:g} h of slack a spike the "
            f"history did not show is cheaper waited out than paid; {extra:+.1%} expected cost in training")


def _unscored(pool: list[Candidate], cands: list[Candidate], keep: Callable[[Candidate], bool]) -> list[Candidate]:
    """The pool's candidates that `keep` accepts and the rounds left unscored (other guards than the base one are
    scored for the best few ladders only): what a move after the MIP may need scored first."""
    seen = {id(c) for c in cands}
    return [c for c in pool if id(c) not in seen and keep(c)]


def _extends(chosen: Candidate) -> Callable[[Candidate], bool]:
    """Ladders starting with `chosen`'s bids at their limits, with more zones behind, same guard and reservation."""
    head = chosen.plan.bids
    return lambda c: (bool(head) and len(c.plan.bids) > len(head) and c.plan.bids[:len(head)] == head
                      and c.guard == chosen.guard and c.reservation == chosen.reservation)


def _headed_by(chosen: Candidate, pool: list[Candidate]) -> list[Candidate]:
    """Ladders headed by a chosen single bid: it, then the other zones of each ladder in the pool, in that ladder's
    order at its limits, with the chosen guard. The pool's ladders start with the zone that looks cheapest per hour
    obtained, so a bid chosen elsewhere (a zone never out in a short history) has no zones behind it there."""
    if len(chosen.plan.bids) != 1 or chosen.reservation != NONE:
        return []
    head, seen, out = chosen.plan.bids, {(c.plan.bids, c.guard) for c in pool}, {}
    for c in pool:
        bids = head + tuple(b for b in c.plan.bids if b.market != head[0].market)
        if len(c.plan.bids) > 1 and len(bids) > 1 and (bids, chosen.guard) not in seen and bids not in out:
            out[bids] = Candidate(replace(chosen.plan, bids=bids), ladder_name(bids), chosen.guard, NONE)
    return list(out.values())


def _at_other_guards(chosen: Candidate) -> Callable[[Candidate], bool]:
    """`chosen`'s bids at their limits and its reservation, at another guard margin."""
    return lambda c: (bool(chosen.plan.bids) and c.plan.bids == chosen.plan.bids and c.guard != chosen.guard
                      and c.reservation == chosen.reservation)


def _at_other_limits(chosen: Candidate) -> Callable[[Candidate], bool]:
    """`chosen`'s markets in its order at any limits, with its guard and reservation."""
    return lambda c: bool(chosen.plan.bids) and _same_bids(c, chosen)


def _score_more(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, extra: list[Candidate],
                train: MarketPaths) -> tuple[list[Candidate], np.ndarray, np.ndarray]:
    """`cands` with `extra` appended, scored on the same training scenarios (indices of `cands` unchanged)."""
    if not extra:
        return cands, cost, meet
    results = replay_grouped(w, [c.plan for c in extra], train, by_market=False)
    return (cands + extra, np.vstack([cost] + [r.cost[None] for r in results]),
            np.vstack([meet] + [r.finished[None] for r in results]))


def _score_in_rounds(w: Workload, pool: list[Candidate], train: MarketPaths, q: np.ndarray,
                     keep: int = 5) -> tuple[list[Candidate], np.ndarray, np.ndarray]:
    """Replay every ladder and reservation at the base guard margin, then the other margins for the best
    `keep` ladders only; returns the candidates scored with their (candidate x scenario) cost and deadline met."""
    base = safe_margin(w)
    first = [c for c in pool if c.ladder == NONE or c.guard == base]
    def score(group: list[Candidate]) -> dict[int, BatchResult]:
        return dict(zip((id(c) for c in group), replay_grouped(w, [c.plan for c in group], train, by_market=False),
                        strict=True))

    scored = score(first)

    def merit(c: Candidate) -> tuple[float, float]:
        r = scored[id(c)]
        return (float(r.finished @ q < w.target_probability), float(r.cost @ q))

    best = {c.ladder for c in sorted((c for c in first if c.ladder != NONE), key=merit)[:keep]}
    second = [c for c in pool if c.ladder in best and c.guard != base]
    scored.update(score(second))
    cands = first + second
    return (cands, np.stack([scored[id(c)].cost for c in cands]),
            np.stack([scored[id(c)].finished for c in cands]))


def _gpu_match(instance_type: str, gpu: str | None, gpus_per_node: int) -> bool:
    """An offer's instance type carries `gpus_per_node` GPUs of model `gpu` (any model when None)."""
    from advisor.store import infer_gpu

    model, count = infer_gpu(instance_type)
    return bool(model) and (gpu is None or model.lower() == gpu.lower()) and count == gpus_per_node


def _tier_outcomes(w: Workload, cands: list[Candidate], cost: np.ndarray, meet: np.ndarray, q: np.ndarray,
                   fresh: MarketPaths) -> dict[str, Outcome]:
    """The cheapest reservation candidate of each tier, replayed on the evaluation scenarios."""
    out = {}
    for tier in ("high", "low"):
        idx = [p for p, c in enumerate(cands) if c.plan.reservation and c.plan.reservation.tier == tier]
        if idx:
            best = min(idx, key=lambda p: (float(meet[p] @ q < w.target_probability), cost[p] @ q))
            out[tier] = Outcome(tier, cands[best].plan, replay_uncertain(w, cands[best].plan, fresh))
    return out
