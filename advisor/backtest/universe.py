"""Which markets a workload may use, read from the store: spot candidates (in listed order) and on-demand ones."""

from __future__ import annotations

import duckdb
import pandas as pd

from advisor.backtest.strategies import Universe
from advisor.errors import AdvisorError
from advisor.store import MarketKey, list_markets, record_counts


def universe_from_store(con: duckdb.DuckDBPyConnection, instance_type: str | None = None, gpu: str | None = None,
                        markets: list[str] | None = None) -> Universe:
    """Spot and on-demand markets matching an instance type, a GPU, or an explicit list (kept in its order)."""
    if markets:
        for m in markets:
            MarketKey.parse(m)
        known = set(list_markets(con)["market"])
        missing = [m for m in markets if m not in known]
        if missing:
            raise AdvisorError(f"no market {missing[0]!r} in the store. To fix: `advisor markets` lists them")
        chosen = markets
    else:
        frame = list_markets(con, gpu=gpu)
        if instance_type:
            frame = frame[frame["instance_type"] == instance_type]
        chosen = frame["market"].tolist()
    spot = tuple(m for m in chosen if m.endswith(":spot"))
    on_demand = tuple(m for m in chosen if m.endswith(":on_demand"))
    what = instance_type or gpu or "the given markets"
    if not spot:
        raise AdvisorError(f"no spot market for {what}. To fix: `advisor markets` lists them, or pass --markets")
    if not on_demand:
        raise AdvisorError(f"no on-demand market for {what} to fall back to. To fix: ingest its list price as a "
                           f"normalized CSV row with market=on_demand, or add one to --markets")
    return Universe(spot=spot, on_demand=on_demand)


def starts_with_data(con: duckdb.DuckDBPyConnection, universe: Universe, starts: list[pd.Timestamp],
                     hours: int, block_hours: int = 24) -> list[pd.Timestamp]:
    """The starts whose next `hours` hours hold a record of every spot market in every `block_hours` block.

    A step function carries its last value forward, which is right between close records and wrong across a
    gap between two traces or past a trace's end; a day with no record of some market is such a gap.
    """
    if not starts:
        return []
    counts = record_counts(con, list(universe.spot), starts[0], starts[-1] + pd.Timedelta(hours=hours))
    seen = {(m, h) for m, h in zip(counts["market"], counts["hour"], strict=True)}
    keep = []
    for start in starts:
        blocks = range(0, hours, block_hours)
        if all(any((m, start + pd.Timedelta(hours=b + i)) in seen for i in range(min(block_hours, hours - b)))
               for m in universe.spot for b in blocks):
            keep.append(start)
    return keep
