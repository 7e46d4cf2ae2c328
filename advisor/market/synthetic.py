"""Seeded generators of realistic price paths at 10-minute steps.

`auction_path` simulates a Mithril-style blind second-price spot auction: a persistent population of bids
(arrivals follow daily and weekly demand cycles plus surges, each bid stays for hours) competes for a capacity
that shifts between regimes; the clearing price is the highest losing bid (or the floor when bids fit in
capacity), which is why off-peak prices fall to the floor and surges spike. `cloud_spot_path` is a hyperscaler
or marketplace spot market: a slowly moving price (log AR(1) around a level, re-priced every few hours) and
capacity that comes and goes as a Markov chain with a daily cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEPS_PER_HOUR = 6  # 10-minute steps


@dataclass(frozen=True)
class AuctionSpec:
    """One auction: capacity (instances), the bidders' value distribution ($/instance-h) and the bid floor."""

    capacity: int
    value_median: float
    value_sigma: float
    floor: float
    demand: float = 1.0  # mean bids / capacity at the daily peak
    stay_hours: float = 5.0


def _demand_cycle(hours: np.ndarray, start_weekday: int) -> np.ndarray:
    """Relative demand by hour: a daytime peak (US hours, UTC 14-23) and quieter weekends."""
    hod = hours % 24
    daily = 0.5 + 0.5 * np.cos(2 * np.pi * (hod - 19) / 24)
    weekday = (start_weekday + hours // 24) % 7
    weekend = np.where(weekday >= 5, 0.7, 1.0)
    return (0.35 + 0.75 * daily) * weekend


def _surges(rng: np.random.Generator, n_hours: int, per_week: float) -> np.ndarray:
    """Multiplicative demand surges: Poisson arrivals lasting 2-12 h, 1.3-2.2x demand."""
    out = np.ones(n_hours)
    for start in np.flatnonzero(rng.random(n_hours) < per_week / 168):
        out[start:start + rng.integers(2, 13)] *= rng.uniform(1.3, 2.2)
    return out


def _regimes(rng: np.random.Generator, n_hours: int, mean_hours: float = 240.0) -> np.ndarray:
    """Capacity multipliers that shift every ~10 days (new hardware arrives, a large tenant leaves)."""
    out, t = np.empty(n_hours), 0
    while t < n_hours:
        length = int(rng.exponential(mean_hours)) + 24
        out[t:t + length] = rng.choice([0.7, 0.85, 1.0, 1.0, 1.2, 1.4])
        t += length
    return out


def auction_path(spec: AuctionSpec, n_hours: int, start_weekday: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clearing price and capacity per 10-minute step of a second-price auction over `n_hours`."""
    rng = np.random.default_rng(seed)
    hours = np.arange(n_hours)
    capacity_h = np.maximum(1, np.round(spec.capacity * _regimes(rng, n_hours))).astype(int)
    load_h = spec.demand * _demand_cycle(hours, start_weekday) * _surges(rng, n_hours, 1.5)
    leave = 1.0 / (spec.stay_hours * STEPS_PER_HOUR)
    mu = np.log(spec.value_median)
    bids = rng.lognormal(mu, spec.value_sigma, size=int(spec.capacity * spec.demand * 0.6))
    prices = np.empty(n_hours * STEPS_PER_HOUR)
    caps = np.repeat(capacity_h, STEPS_PER_HOUR)
    for step in range(prices.size):
        h = step // STEPS_PER_HOUR
        arrivals = rng.poisson(leave * spec.capacity * load_h[h])
        bids = bids[rng.random(bids.size) >= leave]
        bids = np.concatenate([bids, rng.lognormal(mu, spec.value_sigma, size=arrivals)])
        cap = caps[step]
        prices[step] = spec.floor if bids.size <= cap else max(spec.floor, np.partition(bids, -cap - 1)[-cap - 1])
    return np.round(prices, 2), caps


def cloud_spot_path(level: float, n_hours: int, seed: int, capacity: int, outage_per_week: float = 2.0,
                    volatility: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Spot price and available instances per 10-minute step for a hyperscaler/marketplace spot market."""
    rng = np.random.default_rng(seed)
    log_dev = np.empty(n_hours)
    x = 0.0
    for h in range(n_hours):
        if h % 4 == 0:  # re-priced every few hours, not every tick
            x = 0.97 * x + volatility * rng.standard_t(4)
        log_dev[h] = x
    price_h = np.round(level * np.exp(log_dev), 4)
    # capacity: a two-state chain (normal / scarce) whose scarce spells last hours, busier in the day
    p_enter = outage_per_week / 168 * (0.5 + _demand_cycle(np.arange(n_hours), 0))
    scarce, state = np.zeros(n_hours, dtype=bool), False
    for h in range(n_hours):
        state = rng.random() < (0.8 if state else p_enter[h])
        scarce[h] = state
    free_h = np.where(scarce, rng.integers(0, 2, n_hours), rng.integers(capacity // 2, capacity + 1, n_hours))
    steps = n_hours * STEPS_PER_HOUR
    price = np.repeat(price_h, STEPS_PER_HOUR)
    free = np.repeat(free_h, STEPS_PER_HOUR)
    # short intra-hour capacity blips, as capacity probes see them
    blips = rng.random(steps) < 0.004
    free[blips] = 0
    return price, free
