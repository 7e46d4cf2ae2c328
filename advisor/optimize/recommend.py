"""`recommend`: from the store to a plan with honest numbers.

History before `as_of` -> forecaster -> training scenarios (plus windows of that recorded history, so real spike
shapes count; the two sources weigh half each) -> candidate plans scored by the replay engine (`scoring`) -> the
scenario MIP picks one (`solver`) -> the moves after it (`refine`) -> it and the alternatives are replayed on fresh
scenarios (another seed, never fitted on); those are the numbers reported.
Uncertain work (`hours_p90`) is a lognormal with median `hours`: scenarios are split over five of its quantiles, so
a plan that cannot absorb an overrun pays for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd

from advisor.backtest.strategies import Universe
from advisor.errors import AdvisorError
from advisor.forecast import Forecaster
from advisor.optimize.alternatives import Outcome, alternative_outcomes, reservation_reason
from advisor.optimize.candidates import build_candidates, first_fallback_price
from advisor.optimize.refine import INSURANCE_CAP, Training, capped, refine
from advisor.optimize.scoring import replay_uncertain, score_in_rounds, work_levels
from advisor.optimize.solver import InfeasibleError, Solution, solve
from advisor.plan import MarketPaths, Workload, load_history
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
from advisor.units import hour_after, parse_ts

# Training weight of the recorded-history windows against the forecast scenarios: half each, so a plan must look
# good both under the model and on what really happened lately (measured on AWS 2015: fewer workloads above the
# docs rule than weighting every scenario alike, or 0.8).
HISTORY_WEIGHT = 0.5
# History windows (one every 12 h that spans the deadline) needed for that full share: a two-day history holds one
# window for a 48-h deadline, one path, not half of what can happen; fewer windows share it in proportion.
HISTORY_FULL_WINDOWS = 8
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
        pool = [capped(c, od_price, workload) for c in pool]
    n_plain, bid_on = train.n_scenarios, list(dict.fromkeys(b.market for c in pool for b in c.plan.bids))
    plain_paths = train  # before the outage copies: what the model and the history say prices are
    seen = _hours_recorded(history, list(universe.spot))
    chance = outage_chance * max(1.0, OUTAGE_FULL_HISTORY_HOURS / max(seen, 1))
    train, q = with_outages(train, q, bid_on, n_train, chance)
    outage_used = (1 - q[:n_plain].sum()) / len(bid_on) if train.n_scenarios > n_plain else 0.0  # after any clamp
    plain = np.where(np.arange(train.n_scenarios) < n_plain, q, 0.0) / q[:n_plain].sum()  # what a budget holds
    cands, cost, meet = score_in_rounds(workload, pool, train, q)
    try:
        solution = solve(cands, cost, meet, workload.target_probability, workload.budget, solver, time_limit, q,
                         budget_weights=plain)
    except InfeasibleError:
        raise InfeasibleError(_explain_infeasible(workload, cost, meet, q, plain)) from None
    training = Training(train, q, plain, plain_paths)
    cands, cost, meet, index, notes = refine(workload, pool, cands, cost, meet, training, solution.index, cap,
                                              move_limits)
    notes = fetched.notes + ([solution.note] if solution.note else []) + notes
    solution = replace(solution, index=index)
    chosen = Outcome("recommended", cands[solution.index].plan,
                     replay_uncertain(workload, cands[solution.index].plan, fresh))
    outcomes = alternative_outcomes(workload, cands, cost, meet, training, solution.index, universe, fresh)
    return Recommendation(workload=workload, chosen=chosen, alternatives=outcomes, as_of=as_of,
                          history_start=history.start, universe=universe, solution=solution, n_train=n_train,
                          n_eval=n_eval, candidates=len(cands),
                          reservation_reason=reservation_reason(workload, cands, cost, meet, q, fresh), seed=seed,
                          evaluation_paths=fresh, notes=notes,
                          outage_chance=float(outage_used))


def _gpu_match(instance_type: str, gpu: str | None, gpus_per_node: int) -> bool:
    """An offer's instance type carries `gpus_per_node` GPUs of model `gpu` (any model when None)."""
    from advisor.store import infer_gpu

    model, count = infer_gpu(instance_type)
    return bool(model) and (gpu is None or model.lower() == gpu.lower()) and count == gpus_per_node

