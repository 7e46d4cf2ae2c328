"""The DuckDB schema and connections: one database file holds markets, prices, offers and the ingest log."""

from __future__ import annotations

from pathlib import Path

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS markets (
    market_id INTEGER PRIMARY KEY,
    market VARCHAR NOT NULL UNIQUE,
    provider VARCHAR NOT NULL,
    location VARCHAR NOT NULL,
    region VARCHAR,
    instance_type VARCHAR NOT NULL,
    gpu VARCHAR,
    gpus_per_instance INTEGER,
    kind VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS prices (
    market_id INTEGER NOT NULL,
    ts TIMESTAMP NOT NULL,
    price DOUBLE,
    available INTEGER
    -- key (market_id, ts): enforced by the ingest (equal rows are skipped, different ones rejected) instead of
    -- an ART index, which would cost 2x the load time and ~1 GB of memory per 10M rows
);
CREATE TABLE IF NOT EXISTS reservation_offers (
    provider VARCHAR NOT NULL,
    location VARCHAR NOT NULL,
    instance_type VARCHAR NOT NULL,
    tier VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    unit_price DOUBLE NOT NULL,
    pause_credit DOUBLE NOT NULL,
    return_credit DOUBLE NOT NULL,
    min_hours INTEGER NOT NULL,
    max_hours INTEGER NOT NULL,
    PRIMARY KEY (provider, location, instance_type, tier, ts)
);
CREATE TABLE IF NOT EXISTS ingest_log (
    file VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    format VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_added BIGINT NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
"""


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database at `path` with the schema in place and UTC session time."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no database at {path}. To fix: `advisor ingest FILE --db {path}` or drop --db")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        con.execute(SCHEMA)
    return con
