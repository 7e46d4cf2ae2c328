"""When a spot market's last record has stopped being data.

A record holds until the next one (a step function), so the hourly view carries a market's last record across any
gap. For a change log that is right over a calm spell (Mithril's auction and AWS 2015 hold a clearing price for up
to 5 days), but across the end of a trace it is a frozen price: an --as-of a year after the store's records, a zone
whose collector stopped a week before the others', or one trace of a zone in 2022 and the next in 2023. A gap
between two records (or from the last one to as_of) is a silence when it is longer than SILENCE_FLOOR_HOURS and
SILENCE_SPACINGS x the market's median gap between records; its hours are unknown, not the last price held.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from advisor.errors import AdvisorError
from advisor.store.queries import market_ids

SILENCE_FLOOR_HOURS = 7 * 24
SILENCE_SPACINGS = 20.0


@dataclass(frozen=True)
class Silence:
    """A spot market's records stop at `last` and resume at `until` (or not before the time asked about)."""

    market: str
    last: pd.Timestamp
    until: pd.Timestamp

    @property
    def hours(self) -> float:
        return (self.until - self.last) / pd.Timedelta(hours=1)


def silences(con: duckdb.DuckDBPyConnection, markets: list[str], end: pd.Timestamp) -> list[Silence]:
    """The silences of the spot markets among `markets` before `end`, a trailing one ending at `end`, in the order
    given (see the module docstring). A market with fewer than two records before `end` is not judged: no gap says
    how often it reports (a price posted once)."""
    spot = [m for m in markets if m.endswith(":spot")]
    if not spot:
        return []
    ids = market_ids(con, spot)
    rows = con.execute("""
        WITH r AS (
            SELECT market_id, ts, lead(ts) OVER (PARTITION BY market_id ORDER BY ts) AS nxt
            FROM prices WHERE market_id IN (SELECT unnest(?)) AND ts < ?
        ),
        g AS (SELECT market_id, ts, coalesce(r.nxt, ?::TIMESTAMP) AS upto, r.nxt IS NULL AS is_last FROM r),
        s AS (
            SELECT market_id, greatest(median(epoch(upto - ts)) FILTER (WHERE NOT is_last) * ?, ?) AS allowed,
                   count(*) FILTER (WHERE NOT is_last) AS gaps
            FROM g GROUP BY market_id
        )
        SELECT g.market_id, g.ts, g.upto FROM g JOIN s USING (market_id)
        WHERE s.gaps > 0 AND epoch(g.upto - g.ts) > s.allowed ORDER BY g.market_id, g.ts
    """, [list(ids.values()), end, end, SILENCE_SPACINGS, SILENCE_FLOOR_HOURS * 3600.0]).fetchall()
    by_id: dict[int, list[Silence]] = {}
    names = {mid: m for m, mid in ids.items()}
    for mid, last, until in rows:
        by_id.setdefault(mid, []).append(Silence(names[mid], pd.Timestamp(last), pd.Timestamp(until)))
    return [s for m in spot for s in by_id.get(ids[m], [])]


def silent_markets(con: duckdb.DuckDBPyConnection, markets: list[str], as_of: pd.Timestamp) -> list[Silence]:
    """The spot markets silent at `as_of`: their last record before it begins a silence that lasts to it."""
    return silent_at(silences(con, markets, as_of), as_of)


def silent_at(gaps: list[Silence], as_of: pd.Timestamp) -> list[Silence]:
    """Of `silences(..., as_of)`, those that last to `as_of` (see `silent_markets`)."""
    as_of = pd.Timestamp(as_of)
    return [s for s in gaps if s.until >= as_of]


def as_of_past_records(silent: list[Silence], as_of: pd.Timestamp) -> AdvisorError:
    """The error for an --as-of at which every market asked about is silent (past the end of their records)."""
    latest = max(silent, key=lambda s: s.last)
    return AdvisorError(f"--as-of {pd.Timestamp(as_of):%Y-%m-%dT%H:%M}Z is {latest.hours / 24:.0f} days after the last "
                        f"record of {latest.market} ({latest.last:%Y-%m-%d %H:%M}), longer than it was ever silent, "
                        f"and a price carried forward that long is not data. To fix: an --as-of within the records "
                        f"(`advisor markets` lists their span), or ingest newer prices")
