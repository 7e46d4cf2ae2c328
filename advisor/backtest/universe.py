"""The backtest's view of the store: which markets a workload may use (spot candidates in listed order, on-demand
ones), which starts have real data, and a whole backtest run from the store."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd

from advisor.backtest.run import Grid, PlanFn, run_backtest, start_times
from advisor.backtest.strategies import Universe
from advisor.errors import AdvisorError
from advisor.plan import load_history
from advisor.store import MarketKey, coverage, list_markets, record_counts, silent_markets
from advisor.store.silence import SILENCE_SPACINGS


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
    """The starts at which no spot market is silent (`advisor.store.silent_markets`: its trace had ended, so its
    state at the start is unknown and a recommendation would leave it out) and whose next `hours` hours hold a
    record of every spot market in every `block_hours` block.

    A step function carries its last value forward, which is right between close records and wrong across a
    gap between two traces or past a trace's end; a day with no record of some market is such a gap. A market
    whose records are sparse (a posted price that changes every few days: records over `block_hours` / 4 apart at
    the median) says nothing by a silent day, so for it a gap is a silence SILENCE_SPACINGS x its median spacing
    long (the store's rule for a silence, without its week's floor), and a window must begin after its first record
    and end before its last one.
    """
    if not starts:
        return []
    end = starts[-1] + pd.Timedelta(hours=hours)
    first, _ = coverage(con, list(universe.spot))
    counts = record_counts(con, list(universe.spot), pd.Timestamp(first).floor("h"), end)
    record_hours = {m: pd.DatetimeIndex(sorted(g["hour"])) for m, g in counts.groupby("market")}
    sparse = {m: _silences(h) for m, h in record_hours.items() if _median_spacing_hours(h) > block_hours / 4}
    seen = {(m, h) for m, h in zip(counts["market"], counts["hour"], strict=True) if m not in sparse}
    keep = []
    for start in starts:
        if silent_markets(con, list(universe.spot), start):
            continue
        blocks = range(0, hours, block_hours)
        last_hour = start + pd.Timedelta(hours=hours - 1)
        dense = all(any((m, start + pd.Timedelta(hours=b + i)) in seen for i in range(min(block_hours, hours - b)))
                    for m in universe.spot if m not in sparse for b in blocks)
        if dense and all(opens <= start and last_hour <= closes and all(a >= last_hour or b <= start for a, b in gaps)
                         for opens, closes, gaps in sparse.values()):
            keep.append(start)
    return keep


def _median_spacing_hours(hours: pd.DatetimeIndex) -> float:
    return float(pd.Series(hours).diff().dt.total_seconds().median() / 3600) if len(hours) > 1 else 0.0


def _silences(hours: pd.DatetimeIndex) -> tuple[pd.Timestamp, pd.Timestamp, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """A sparse market's first and last record hours and the silences between two records longer than
    SILENCE_SPACINGS x their median spacing: a window is covered when it lies between the first and last and overlaps
    no silence."""
    longest = pd.Timedelta(hours=SILENCE_SPACINGS * _median_spacing_hours(hours))
    gaps = [(a, b) for a, b in zip(hours[:-1], hours[1:], strict=True) if b - a > longest]
    return hours[0], hours[-1], gaps


def backtest_from_store(con: duckdb.DuckDBPyConnection, universe: Universe, grid: Grid, every_hours: float,
                        warmup_hours: float, strategies: list[str] | None = None,
                        plan_fns: dict[str, PlanFn] | None = None,
                        on_step: Callable[[], None] | None = None,
                        on_total: Callable[[int], None] | None = None) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """Run `run_backtest` over the store's history: starts every `every_hours` after `warmup_hours`, kept only
    where every spot market has records; returns the rows and the starts. `on_total` hears the number of steps
    `on_step` will be called for (progress bars). Raises ValueError when no start fits."""
    first, last = coverage(con, list(universe.spot))
    longest = max(w.horizon for _, w in grid.workloads())
    starts = starts_with_data(con, universe, start_times(first, last, every_hours, warmup_hours, longest), longest)
    if not starts:
        raise ValueError(f"history {first} .. {last} has no start after {warmup_hours:g} h of warm-up with records "
                         f"of every spot market through a {longest}-h deadline (a day without a record of a sampled "
                         f"market is a gap). To fix: shorten --warmup or the grid, or pick markets recorded together")
    span = int((starts[-1] - starts[0]) / pd.Timedelta(hours=1)) + longest
    history = load_history(con, list(universe.spot + universe.on_demand), starts[0], span)
    if on_total:
        on_total(len(starts) * len(grid.workloads()))
    kwargs = {} if strategies is None else {"strategies": strategies}
    return run_backtest(history, universe, grid, starts, plan_fns=plan_fns, on_step=on_step, **kwargs), starts
