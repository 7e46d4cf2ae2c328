"""Shared fixtures: fresh databases and writers of small source files in the real formats."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from advisor import store

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HEADER = ["ts", "provider", "region", "zone", "instance_type", "gpu_type", "gpu_count", "market",
          "price_usd_per_hour", "available"]


@pytest.fixture
def con(tmp_path: Path):
    connection = store.connect(tmp_path / "t.duckdb")
    yield connection
    connection.close()


def write_normalized(path: Path, rows: list[list[object]]) -> Path:
    """Write the normalized CSV schema with the given rows (lists in HEADER order)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def spot_row(ts: str, price: object, available: object = "", zone: str = "us-east-1a",
             itype: str = "g2.2xlarge") -> list[object]:
    return [ts, "aws", "us-east-1", zone, itype, "K520", 1, "spot", price, available]


def price_count(con) -> int:
    return con.execute("SELECT count(*) FROM prices").fetchone()[0]
