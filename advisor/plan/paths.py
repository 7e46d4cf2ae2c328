"""Hourly market paths: what the replay engine reads, for one recorded history or many forecast scenarios.

Arrays are shaped (scenarios, markets, hours): `mean` is the hour's time-weighted mean price, `peak` its maximum
price, `avail` the capacity (instances) that held all hour, NaN where the source does not say. An hour with no
data (before a market's first record) has NaN prices and 0 capacity, so nothing can run in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from advisor.errors import AdvisorError

if TYPE_CHECKING:
    from advisor.store import Silence


@dataclass(frozen=True)
class MarketPaths:
    """Hourly prices and capacity of `markets` over `hours` hours in `n` scenarios (n = 1 for history)."""

    markets: tuple[str, ...]
    mean: np.ndarray
    peak: np.ndarray
    avail: np.ndarray
    start: pd.Timestamp | None = None

    def __post_init__(self) -> None:
        shape = self.mean.shape
        if len(shape) != 3 or shape[1] != len(self.markets) or self.peak.shape != shape or self.avail.shape != shape:
            raise ValueError(f"paths must be (scenarios, {len(self.markets)} markets, hours); got {shape}")

    @property
    def n_scenarios(self) -> int:
        return self.mean.shape[0]

    @property
    def hours(self) -> int:
        return self.mean.shape[2]

    def index(self, market: str) -> int:
        try:
            return self.markets.index(market)
        except ValueError:
            raise AdvisorError(f"the plan names market {market!r}, which the price paths do not cover. "
                               f"To fix: ingest its prices or drop it from the plan") from None

    def usable(self, market: int, limit: float, nodes: int) -> np.ndarray:
        """(scenarios, hours) bool: the peak price is <= limit and a gang of `nodes` had capacity all hour."""
        cap = self.avail[:, market, :]
        return (self.peak[:, market, :] <= limit) & (np.isnan(cap) | (cap >= nodes))

    def select(self, markets: list[str]) -> MarketPaths:
        """The same paths restricted (and reordered) to `markets`."""
        idx = [self.index(m) for m in markets]
        return MarketPaths(tuple(markets), self.mean[:, idx], self.peak[:, idx], self.avail[:, idx], self.start)

    def window(self, first_hour: int, hours: int) -> MarketPaths:
        """Hours [first_hour, first_hour + hours) of every path."""
        sl = slice(first_hour, first_hour + hours)
        start = None if self.start is None else self.start + pd.Timedelta(hours=first_hour)
        return MarketPaths(self.markets, self.mean[:, :, sl], self.peak[:, :, sl], self.avail[:, :, sl], start)


def run_starts(ok: np.ndarray) -> np.ndarray:
    """Where a run of True begins along the last axis (hours): True at the first hour of each run."""
    return ok & ~np.concatenate([np.zeros(ok.shape[:-1] + (1,), bool), ok[..., :-1]], axis=-1)


def paths_from_hourly(frame: pd.DataFrame, markets: list[str]) -> MarketPaths:
    """One path from the store's long hourly view (`advisor.store.hourly`). An hour the market's records cover only
    in part cannot be held all hour (capacity 0); one before its first record is unknown (NaN), not out: a zone
    whose records begin later than another's must not read as out until then (no price: no bid holds there). An
    on-demand list price holds before the hour it was first recorded too (`_carry_list_prices_back`)."""
    frame = frame.copy()
    frame.loc[frame["coverage"] < 1.0 - 1e-9, ["mean_price", "max_price"]] = np.nan
    frame.loc[frame["coverage"] < 1.0 - 1e-9, "min_available"] = 0.0
    frame.loc[frame["coverage"] <= 1e-9, "min_available"] = np.nan
    hours = pd.DatetimeIndex(sorted(frame["hour"].unique()))

    def grid(col: str) -> np.ndarray:
        wide = frame.pivot(index="market", columns="hour", values=col).reindex(index=markets, columns=hours)
        return wide.to_numpy(dtype=float, copy=True)[None, :, :]

    mean, peak, avail = grid("mean_price"), grid("max_price"), grid("min_available")
    for i, market in enumerate(markets):
        if market.endswith(":on_demand"):
            _carry_list_prices_back(mean[0, i], peak[0, i], avail[0, i])
    return MarketPaths(tuple(markets), mean, peak, avail, hours[0] if len(hours) else None)


def _carry_list_prices_back(mean: np.ndarray, peak: np.ndarray, avail: np.ndarray) -> None:
    """Give the hours before an on-demand market's first fully recorded hour that hour's price and capacity, in
    place: a list price fetched today, with spot records going back weeks, is the price those weeks too, and read as
    missing it would leave the early history with nothing to fall back on (every deadline missed there)."""
    known = np.flatnonzero(np.isfinite(mean))
    if known.size and known[0] > 0:
        first = known[0]
        mean[:first], peak[:first], avail[:first] = mean[first], peak[first], avail[first]


def load_history(con, markets: list[str], start: pd.Timestamp, hours: int,
                 gaps: list[Silence] | None = None) -> MarketPaths:
    """Recorded history of `markets` for `hours` hours from `start` (hour-aligned), as one path; the hours inside a
    spot market's silence (`advisor.store.silences`: its trace had ended) are unknown, not its last record held.
    `gaps`: those silences, up to the window's end, when the caller has looked them up already (of any markets)."""
    from advisor.store import hourly, silences

    start = pd.Timestamp(start).floor("h")
    end = start + pd.Timedelta(hours=hours)
    paths = paths_from_hourly(hourly(con, markets, start, end), markets)
    gaps = silences(con, markets, end) if gaps is None else [g for g in gaps if g.market in markets]
    for gap in gaps if paths.start is not None else []:
        first = max(int((gap.last.floor("h") - paths.start) / pd.Timedelta(hours=1)) + 1, 0)
        stop = int((gap.until.floor("h") - paths.start) / pd.Timedelta(hours=1))
        if stop > first:
            i = paths.index(gap.market)
            paths.mean[0, i, first:stop] = paths.peak[0, i, first:stop] = paths.avail[0, i, first:stop] = np.nan
    return paths
