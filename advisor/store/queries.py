"""Read-side queries over the store, returning pandas: markets with coverage, raw prices, the hourly view.

The hourly view is DESIGN.md's: prices are step functions (a record holds until the next one, the last until
the window's end); an hour's cost is the time-weighted mean price over the hour, and an hour is eligible for
limit L when its maximum price is <= L and capacity (`available >= nodes`, where the source says) held for the
whole hour.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from advisor.errors import NotFoundError

MARKET_COLUMNS = ["market", "provider", "location", "instance_type", "gpu", "gpus_per_instance", "kind",
                  "first_ts", "last_ts", "rows"]


def list_markets(con: duckdb.DuckDBPyConnection, kind: str | None = None, gpu: str | None = None) -> pd.DataFrame:
    """Every market with its coverage (first/last observation and row count), ordered by key."""
    where, args = [], []
    if kind:
        where.append("m.kind = ?")
        args.append(kind)
    if gpu:
        where.append("lower(m.gpu) = lower(?)")
        args.append(gpu)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    return con.execute(f"""
        SELECT m.market, m.provider, m.location, m.instance_type, m.gpu, m.gpus_per_instance, m.kind,
               min(p.ts) AS first_ts, max(p.ts) AS last_ts, count(p.ts) AS rows
        FROM markets m LEFT JOIN prices p USING (market_id) {clause}
        GROUP BY ALL ORDER BY m.market
    """, args).df()[MARKET_COLUMNS]


def market_ids(con: duckdb.DuckDBPyConnection, markets: list[str]) -> dict[str, int]:
    """Map market keys to ids; raises NotFoundError naming the first unknown market and how to list them."""
    rows = dict(con.execute("SELECT market, market_id FROM markets WHERE market IN (SELECT unnest(?))",
                            [markets]).fetchall())
    for m in markets:
        if m not in rows:
            raise NotFoundError(f"no market {m!r} in the store. To fix: `advisor markets` lists them, "
                                f"`advisor ingest FILE` adds one")
    return rows


def raw_prices(con: duckdb.DuckDBPyConnection, market: str, start: datetime | None = None,
               end: datetime | None = None) -> pd.DataFrame:
    """The stored observations of one market in [start, end): ts, price, available."""
    mid = market_ids(con, [market])[market]
    return con.execute("""
        SELECT ts, price, available FROM prices
        WHERE market_id = ? AND (?::TIMESTAMP IS NULL OR ts >= ?) AND (?::TIMESTAMP IS NULL OR ts < ?)
        ORDER BY ts
    """, [mid, start, start, end, end]).df()


def coverage(con: duckdb.DuckDBPyConnection, markets: list[str]) -> tuple[datetime, datetime]:
    """The first and last observation over the given markets."""
    ids = list(market_ids(con, markets).values())
    return con.execute("SELECT min(ts), max(ts) FROM prices WHERE market_id IN (SELECT unnest(?))",
                       [ids]).fetchone()


_HOURLY_SQL = """
WITH sel AS (SELECT unnest(?) AS market_id),
anchor AS (
    SELECT s.market_id, coalesce(max(p.ts), ?::TIMESTAMP) AS a
    FROM sel s LEFT JOIN prices p ON p.market_id = s.market_id AND p.ts <= ?::TIMESTAMP GROUP BY s.market_id
),
seg AS (
    SELECT p.market_id, p.ts, p.price, p.available,
           coalesce(lead(p.ts) OVER (PARTITION BY p.market_id ORDER BY p.ts), ?::TIMESTAMP) AS te
    FROM prices p JOIN anchor a ON p.market_id = a.market_id AND p.ts >= a.a AND p.ts < ?::TIMESTAMP
),
clip AS (
    SELECT market_id, price, available, greatest(ts, ?::TIMESTAMP) AS s, least(te, ?::TIMESTAMP) AS e FROM seg
),
pieces AS (
    SELECT market_id, price, available, s, e,
           unnest(generate_series(date_trunc('hour', s), e - INTERVAL 1 MICROSECOND, INTERVAL 1 HOUR)) AS hour
    FROM clip WHERE e > s
),
w AS (
    SELECT market_id, hour, price, available,
           epoch(least(e, hour + INTERVAL 1 HOUR) - greatest(s, hour)) AS secs
    FROM pieces
)
SELECT market_id, hour,
       sum(price * secs) / nullif(sum(CASE WHEN price IS NOT NULL THEN secs END), 0) AS mean_price,
       max(price) AS max_price, min(available) AS min_available, sum(secs) / 3600.0 AS coverage
FROM w GROUP BY market_id, hour
"""


def hourly(con: duckdb.DuckDBPyConnection, markets: list[str], start: datetime, end: datetime) -> pd.DataFrame:
    """The hourly view of several markets over [start, end), one row per market and hour (long form).

    Columns: market, hour, mean_price (time-weighted), max_price, min_available (NaN where the source does not
    say), coverage (fraction of the hour with a price in force; hours before a market's first record are 0).
    """
    start, end = pd.Timestamp(start).floor("h").to_pydatetime(), pd.Timestamp(end).ceil("h").to_pydatetime()
    ids = market_ids(con, markets)
    frame = con.execute(_HOURLY_SQL, [list(ids.values()), start, start, end, end, start, end]).df()
    names = {v: k for k, v in ids.items()}
    frame["market"] = frame["market_id"].map(names)
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    grid = pd.MultiIndex.from_product([markets, hours], names=["market", "hour"]).to_frame(index=False)
    out = grid.merge(frame.drop(columns="market_id"), on=["market", "hour"], how="left")
    out["coverage"] = out["coverage"].fillna(0.0)
    return out.astype({"mean_price": float, "max_price": float, "min_available": float})


def hourly_view(con: duckdb.DuckDBPyConnection, market: str, start: datetime, end: datetime,
                limit: float | None = None, nodes: int = 1) -> pd.DataFrame:
    """The hourly view of one market; with `limit`, adds `eligible` (DESIGN.md's rule, for a gang of `nodes`)."""
    frame = hourly(con, [market], start, end).drop(columns="market")
    if limit is not None:
        frame["eligible"] = eligible(frame, limit, nodes)
    return frame


def eligible(frame: pd.DataFrame, limit: float, nodes: int = 1) -> np.ndarray:
    """Hours whose maximum price is <= limit (unknown prices pass) and whose capacity held for a gang all hour."""
    price_ok = frame["max_price"].isna() | (frame["max_price"] <= limit)
    capacity_ok = frame["min_available"].isna() | (frame["min_available"] >= nodes)
    return (price_ok & capacity_ok & (frame["coverage"] >= 1.0 - 1e-9)).to_numpy()


def record_counts(con: duckdb.DuckDBPyConnection, markets: list[str], start: datetime, end: datetime) -> pd.DataFrame:
    """Records per market and hour in [start, end) (hours with none are absent): where a series has real data."""
    ids = market_ids(con, markets)
    frame = con.execute("""
        SELECT market, date_trunc('hour', ts) AS hour, count(*) AS records
        FROM prices JOIN markets USING (market_id)
        WHERE market_id IN (SELECT unnest(?)) AND ts >= ? AND ts < ? GROUP BY ALL ORDER BY ALL
    """, [list(ids.values()), start, end]).df()
    return frame


def instance_gpus(con: duckdb.DuckDBPyConnection, instance_type: str) -> tuple[str | None, int] | None:
    """The GPU model and GPUs per instance the store records for an instance type ((None, 0) where it records
    none); None when no market has that type."""
    frame = list_markets(con)
    rows = frame.loc[frame["instance_type"] == instance_type]
    if rows.empty:
        return None
    models = rows["gpu"].dropna()
    return (str(models.iloc[0]) if not models.empty else None), int(rows["gpus_per_instance"].fillna(0).max())


def market_regions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every market's region (its location where the source gives none: a region-level on-demand market)."""
    return dict(con.execute("SELECT market, coalesce(region, location) FROM markets").fetchall())


def first_price(con: duckdb.DuckDBPyConnection, market: str) -> float | None:
    """A market's first recorded price, if any (a list price is often recorded once, when it was fetched)."""
    row = con.execute("""
        SELECT p.price FROM prices p JOIN markets m USING (market_id)
        WHERE m.market = ? AND p.price IS NOT NULL ORDER BY p.ts LIMIT 1
    """, [market]).fetchone()
    return float(row[0]) if row else None


def on_demand_price(con: duckdb.DuckDBPyConnection, market: str) -> float | None:
    """The latest list price of the same provider's on-demand market for this market's instance type, if any."""
    provider, _, instance_type, _ = market.split(":")
    row = con.execute("""
        SELECT p.price FROM prices p JOIN markets m USING (market_id)
        WHERE m.kind = 'on_demand' AND m.provider = ? AND m.instance_type = ? AND p.price IS NOT NULL
        ORDER BY m.market, p.ts DESC LIMIT 1
    """, [provider, instance_type]).fetchone()
    return float(row[0]) if row else None


def offers(con: duckdb.DuckDBPyConnection, provider: str | None = None) -> pd.DataFrame:
    """Reservation offers, newest quote first per (provider, location, instance_type, tier)."""
    return con.execute("""
        SELECT * FROM reservation_offers WHERE (?::VARCHAR IS NULL OR provider = ?)
        QUALIFY row_number() OVER (PARTITION BY provider, location, instance_type, tier ORDER BY ts DESC) = 1
        ORDER BY provider, location, instance_type, tier
    """, [provider, provider]).df()
