"""Candidate plans, built from pieces the optimizer chooses among: bid ladders, guard margins, reservations.

- Limits come from the forecast (quantiles of each market's simulated hourly peak price) and from fixed multiples
  of the best on-demand price, 0.3x to 3x (second price: a higher limit never raises what an hour costs, only how
  often the bid holds, and so how often the work pays restarts and spike hours).
- Ladders are ordered bid lists over the markets that look cheapest per hour of work obtained (restarts counted);
  a job on one switches to the first other zone priced below SWITCH_BELOW of the price it pays.
- Reservations are the store's offers for a matching instance type, in both flexibility tiers, sized to the gang
  and held for the expected work, its P90 (when the work is uncertain), or the whole window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from advisor.backtest.strategies import safe_margin
from advisor.plan import Bid, Fallback, MarketPaths, Plan, Reservation, Workload, run_starts

NONE = "none"
LIMIT_QUANTILES = (0.5, 0.75, 0.9, 0.97)
ON_DEMAND_MULTIPLES = (0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 3.0)
# A ladder's job switches to the first other zone in the list whose hourly price is below this share of the current
# one's: a preemption moves it down the ladder, and without a way back it stays in the dearer zone for the rest of the
# job (GCP H100, 24 h due in 30 h on eight nodes from 8 October 2025 19:00: every us zone out at the start, 24 h in
# asia-south2-b at 8.74 $/h while the us zones, at 1.86-2.38, came back within hours); and a zone held can turn
# dearer, under its limit, than one further down. Measured on `python benchmarks/backtests.py` (mean cost /
# hindsight), first as moving back up only (staying -> 0.6 / 0.7 / 0.8 / 0.9 / 1.0): gcp-h100 1.299 -> 1.266 / 1.266 /
# 1.265 / 1.267 / 1.262 (P90 1.559 -> 1.462-1.468); the four-zone g2 case 1.073 -> 1.071 / 1.067 / 1.063 / 1.063 /
# 1.066; the five-zone case 1.136 -> 1.123 at 0.8. Switching either way at 0.8: gcp-h100 1.261 (P90 1.432), four-zone
# 1.058, five-zone 1.084 (P90 1.243 -> 1.176; the best static plan 1.133). The 2022 and 2023 traces, whose zones post
# one price, unchanged. gcp-h100 with the starts 6 h later (the 8 October case above is one of them; not used in
# choosing 0.8): 1.347 -> 1.269 (back up only) -> 1.268 (P90 1.873 -> 1.540). Tried and left out: a post-MIP move to
# the same plan without switching where training prices that lower (a guard against zones whose prices cross back and
# forth): on a training tie gcp-h100 1.261 -> 1.272 (P90 1.432 -> 1.505), at a 3% saving 1.266 (P90 1.468); training,
# which misses outages, undervalues the switch back to a zone that returned. The restarts it costs are in the report
# (`restarts`).
SWITCH_BELOW = 0.8
# Once the guard has fired, a job still runs a bid priced below this share of the fallback's price while its slack
# absorbs a preemption there: on the fallback the slack no longer shrinks, so the guard need not be a point of no
# return (AWS 2015 c3.xlarge, 24 h due in 96 h from 14 April: the guard fired at hour 79 with spot at 0.49 $/h, and the
# last 15 h ran on on-demand at 0.21 while spot sat at 0.03-0.06 from the next hour: 3.72 $, returning 1.25 $).
# Switching's share, not tuned. Measured on `python benchmarks/backtests.py` (mean cost / hindsight, without -> with):
# g2 1.195 -> 1.150, c3 1.228 -> 1.166 (24 h due in 96 h 1.054 -> 1.001 of the best static plan), 2022 1.364 -> 1.267,
# 2023 1.291 -> 1.185, gcp-h100 1.261 -> 1.168 (P90 1.432 -> 1.305), four- and five-zone the same, m3 1.114 -> 1.109,
# r3 1.256 -> 1.199, d2 1.113 -> 1.103; gcp-h100 with the starts 6 h later 1.268 -> 1.162, 2022 p2.xlarge / p2.8xlarge
# / p3.16xlarge 1.299 / 1.537 / 1.444 -> 1.228 / 1.490 / 1.367. No misses. Flat in the share: at 0.6 / 1.0, c3 1.172 /
# 1.166, gcp-h100 1.168 / 1.167, 2022 1.267 either way.
RETURN_BELOW = 0.8


@dataclass(frozen=True)
class Candidate:
    """One plan and the structural choices it is made of (ids the MIP links to)."""

    plan: Plan
    ladder: str
    guard: float
    reservation: str


def on_demand_fallbacks(on_demand: list[str], paths: MarketPaths) -> tuple[Fallback, ...]:
    """On-demand markets, cheapest first by their price in the first hour, up to the first one with no capacity
    records (always there, so no fallback after it is ever reached: 80 regions' list prices would only be noise)."""
    price = {m: float(np.nanmean(paths.mean[:, paths.index(m), 0])) for m in on_demand}
    out = []
    for m in sorted(on_demand, key=lambda m: price[m]):
        out.append(Fallback(m))
        if np.isnan(paths.avail[:, paths.index(m)]).all():
            break
    return tuple(out)


def first_fallback_price(paths: MarketPaths, fallback: tuple[Fallback, ...]) -> float:
    """The first fallback's on-demand price in the first hour (inf without one): the yardstick for limits."""
    return float(np.nanmean(paths.mean[:, paths.index(fallback[0].market), 0])) if fallback else math.inf


def finite_peaks(paths: MarketPaths, market: str) -> np.ndarray:
    """A market's hourly peak prices over all scenarios and hours, where known (capacity-only series have none)."""
    peaks = paths.peak[:, paths.index(market)].ravel()
    return peaks[np.isfinite(peaks)]


def limit_grid(paths: MarketPaths, market: str, od_price: float) -> list[float]:
    """Candidate limits for a market: forecast quantiles of its hourly peak price (up to 1.5x the best on-demand
    price) and fixed multiples of that price. Multiples above 1 are there because a limit that rides out a short
    excursion above on-demand can cost less than the restarts and lost work of being preempted by it."""
    peaks = finite_peaks(paths, market)
    values = [v for v in np.quantile(peaks, LIMIT_QUANTILES) if v <= 1.5 * od_price] if peaks.size else []
    return sorted({as_limit(v) for v in values} | set(on_demand_limits(od_price)))


def price_floor(paths: MarketPaths, market: str) -> float:
    """The lowest hourly peak price a market shows in any scenario (0 for capacity-only series): a bid limited below
    it never holds (0.3 x on-demand to the cent can fall just under a posted price, or far under a dear zone's)."""
    peaks = finite_peaks(paths, market)
    return float(peaks.min()) if peaks.size else 0.0


def on_demand_limits(od_price: float) -> list[float]:
    """The fixed multiples of the best on-demand price as limits (none when there is no on-demand price)."""
    return (sorted({as_limit(f * od_price, up=False) for f in ON_DEMAND_MULTIPLES}) if math.isfinite(od_price)
            else [])


def as_limit(value: float, up: bool = True) -> float:
    """A price as a bid limit in cents, never below one (a limit must be > 0). A price the market showed is rounded
    up, so the limit holds at it (rounded down, it would never hold at a posted price between cents, as GCP's
    $2.04454); a multiple of on-demand is a round figure, to the nearest cent."""
    return max(math.ceil(value * 100 - 1e-6) / 100 if up else round(value, 2), 0.01)


def rank_markets(paths: MarketPaths, spot: list[str], nodes: int, od_price: float,
                 lost_per_start: float = 0.0) -> list[str]:
    """Spot markets ordered by expected price per hour of work obtained at a limit of the on-demand price: each run
    of usable hours loses `lost_per_start` hours (the restart, and the work since the last checkpoint when it ends),
    so a zone that flickers ranks below a steady one held as often."""
    scores = {}
    for m in spot:
        i = paths.index(m)
        ok = paths.usable(i, od_price, nodes)
        starts = run_starts(ok).sum()
        share = (ok.sum() - lost_per_start * starts) / ok.size
        scores[m] = (np.nanmean(np.where(ok, paths.mean[:, i], np.nan)) / max(share, 1e-3)) if ok.any() else np.inf
    return sorted(spot, key=lambda m: scores[m])


def ladder_name(bids: tuple[Bid, ...]) -> str:
    """A ladder's id: its bids in order, `market@limit > ...` (the MIP links a ladder's candidates by it)."""
    return " > ".join(f"{b.market}@{b.limit_price:g}" for b in bids)


def ladders(ranked: list[str], grids: dict[str, list[float]], width: int = 4, joint_levels: int = 5,
            shared: tuple[float, ...] = (), floors: dict[str, float] | None = None) -> dict[str, tuple[Bid, ...]]:
    """Bid ladders: every limit on each of the best markets alone, and the best 2..width markets together at
    `joint_levels` matching points of their grids (spread from the lowest to the highest) and at each `shared`
    limit (one price for every location of a type: a preempted bid moves to the next zone, not to on-demand). A bid
    below its market's price floor in `floors` never holds, so it is left out: the ladder goes on without that zone."""
    floors = floors or {}
    out: dict[str, tuple[Bid, ...]] = {}

    def add(bids: list[Bid]) -> None:
        live = tuple(b for b in bids if b.limit_price >= floors.get(b.market, 0.0))
        if live:
            out[ladder_name(live)] = live

    for m in ranked[:4]:
        for lim in grids[m]:
            add([Bid(m, lim)])
    for k in range(2, min(width, len(ranked)) + 1):
        top = ranked[:k]
        levels = min(len(grids[m]) for m in top)
        spread = [tuple(grids[m][-levels + j] for m in top)
                  for j in sorted({int(round(x)) for x in np.linspace(0, levels - 1, min(levels, joint_levels))})]
        for limits in spread + [(lim,) * k for lim in shared]:
            add([Bid(m, lim) for m, lim in zip(top, limits, strict=True)])
    return out


def reservation_options(offers: pd.DataFrame, workload: Workload) -> dict[str, Reservation]:
    """Offers sized to the gang: held for the work, its P90, or the whole window (3..336 h, within the deadline)."""
    need = [workload.hours + workload.restart_overhead]
    if workload.hours_p90:
        need.append(workload.hours_p90 + workload.restart_overhead)
    need.append(float(workload.horizon))
    out = {}
    for row in offers.itertuples():
        market = f"{row.provider}:{row.location}:{row.instance_type}:reserved"
        for hours in sorted({int(math.ceil(h)) for h in need}):
            hours = min(max(hours, int(row.min_hours)), int(row.max_hours), workload.horizon)
            if hours < row.min_hours:
                continue
            res = Reservation(market=market, tier=row.tier, instances=workload.nodes, start_hour=0, hours=hours,
                              unit_price=float(row.unit_price), pause_credit=float(row.pause_credit),
                              return_credit=float(row.return_credit))
            out[f"{row.tier} {row.provider}:{row.location} {hours}h"] = res
    return out


def guard_grid(workload: Workload) -> list[float]:
    base = safe_margin(workload)
    return [g for g in (base, base + 2, base + 6, base + 12, base + 24) if g < workload.horizon]


def build_candidates(workload: Workload, paths: MarketPaths, spot: list[str], on_demand: list[str],
                     offers: pd.DataFrame) -> list[Candidate]:
    """Every candidate plan: on-demand only, each bid ladder at each guard margin, each reservation option."""
    fallback = on_demand_fallbacks(on_demand, paths)
    od_price = first_fallback_price(paths, fallback)
    lost = workload.restart_overhead + (workload.checkpoint_every / 2 if workload.checkpoint_every > 0 else 0.0)
    ranked = rank_markets(paths, spot, workload.nodes, od_price, lost) if spot else []
    grids = {m: limit_grid(paths, m, od_price) for m in ranked[:4]}
    bid_ladders = ladders(ranked, grids, shared=tuple(on_demand_limits(od_price)),
                          floors={m: price_floor(paths, m) for m in ranked[:4]})
    reservations = reservation_options(offers, workload)
    out = [Candidate(Plan(fallback=fallback, guard_margin_hours=float(workload.horizon)), NONE,
                     float(workload.horizon), NONE)]
    for name, bids in bid_ladders.items():
        for g in guard_grid(workload):
            switch = SWITCH_BELOW if len(bids) > 1 else None
            out.append(Candidate(Plan(bids=bids, fallback=fallback, guard_margin_hours=g, switch_below=switch,
                                      return_below=RETURN_BELOW), name, g, NONE))
    for name, res in reservations.items():
        g = safe_margin(workload)
        out.append(Candidate(Plan(reservation=res, fallback=fallback, guard_margin_hours=g), NONE, g, name))
    return out
