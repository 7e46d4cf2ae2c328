"""Source formats: detect a file's format and stage its rows, as raw text, through DuckDB's own readers.

Every loader fills the temp table `stage` with one row per observation, every value still a string, so that
validation (in `ingest.py`) can name the line, field and bad value. `line` is the source line (CSV) or row
(Parquet); `rec` names the JSON record where there are no lines. `FIELD_NAMES` maps staged columns back to
the names the source uses.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from advisor.errors import AdvisorError

FORMATS = ("csv", "parquet", "mithril", "aws", "skypilot", "offers")

STAGE_COLUMNS = "line, rec, provider, region, location, instance_type, gpu, gpus, kind, ts, price, available"

FIELD_NAMES: dict[str, dict[str, str]] = {
    "csv": {"location": "region/zone", "gpu": "gpu_type", "gpus": "gpu_count", "kind": "market",
            "price": "price_usd_per_hour"},
    "mithril": {"location": "region", "ts": "timestamps", "price": "spot_prices/reserved_prices"},
    "aws": {"location": "AvailabilityZone", "instance_type": "InstanceType", "ts": "Timestamp",
            "price": "SpotPrice"},
    "skypilot": {"location": "Region/AvailabilityZone", "instance_type": "InstanceType", "gpu": "AcceleratorName",
                 "gpus": "AcceleratorCount", "price": "Price/SpotPrice"},
}
FIELD_NAMES["parquet"] = FIELD_NAMES["csv"]

NORMALIZED_COLUMNS = ("ts", "provider", "region", "zone", "instance_type", "gpu_type", "gpu_count", "market",
                      "price_usd_per_hour", "available")
SKYPILOT_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "SpotPrice", "Region",
                    "AvailabilityZone")
OFFER_COLUMNS = ("provider", "location", "instance_type", "tier", "unit_price", "pause_credit", "return_credit",
                 "min_hours", "max_hours")


@dataclass(frozen=True)
class StageOptions:
    """Per-ingest options some formats need: a price for priceless spot rows, a catalog's provider and time."""

    price: float | dict[str, float] | None = None  # one price, or one per instance type
    provider: str | None = None
    at: str | None = None
    product: str = "Linux/UNIX"


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def detect_format(path: Path) -> str:
    """Guess a file's format from its name and first bytes; `--format` overrides this."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".yaml", ".yml")):
        return "offers"
    if name.endswith(".json"):
        head = path.read_text(errors="replace")[:4096]
        if "SpotPriceHistory" in head:
            return "aws"
        if '"series"' in head:
            return "mithril"
        raise AdvisorError(f"{path}: JSON of unknown shape. To fix: pass --format mithril or --format aws")
    if ".csv" in name:
        header = _read_header(path)
        if set(NORMALIZED_COLUMNS) <= header:
            return "csv"
        if set(SKYPILOT_COLUMNS) <= header:
            return "skypilot"
        if {"tier", "unit_price"} <= header:
            return "offers"
        raise AdvisorError(
            f"{path}:1: header matches no known format (normalized CSV needs {', '.join(NORMALIZED_COLUMNS)})"
        )
    raise AdvisorError(f"{path}: cannot tell the format from the name. To fix: pass --format ({'|'.join(FORMATS)})")


def _read_header(path: Path) -> set[str]:
    rel = duckdb.sql(f"SELECT * FROM read_csv({_q(path)}, all_varchar=true, header=true) LIMIT 0")
    return set(rel.columns)


def _require_columns(path: Path, have: set[str], need: tuple[str, ...]) -> None:
    missing = [c for c in need if c not in have]
    if missing:
        raise AdvisorError(f"{path}:1: missing column(s) {', '.join(missing)}")


def stage_normalized(con: duckdb.DuckDBPyConnection, path: Path, parquet: bool = False) -> None:
    """Stage the normalized CSV (or Parquet with the same columns) of shared/data/README.md."""
    reader = f"read_parquet({_q(path)})" if parquet else f"read_csv({_q(path)}, all_varchar=true, header=true)"
    cols = set(con.sql(f"SELECT * FROM {reader} LIMIT 0").columns)
    _require_columns(path, cols, NORMALIZED_COLUMNS)
    first_line = 1 if parquet else 2
    v = {c: f"CAST({c} AS VARCHAR)" for c in NORMALIZED_COLUMNS}
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE stage AS
        SELECT row_number() OVER () + {first_line - 1} AS line, NULL::VARCHAR AS rec,
               {v['provider']} AS provider, {v['region']} AS region,
               coalesce(nullif(trim({v['zone']}), ''), nullif(trim({v['region']}), '')) AS location,
               {v['instance_type']} AS instance_type, {v['gpu_type']} AS gpu, {v['gpu_count']} AS gpus,
               {v['market']} AS kind, {v['ts']} AS ts, {v['price_usd_per_hour']} AS price,
               {v['available']} AS available
        FROM {reader}
    """)


def stage_mithril(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Stage Mithril `GET /v2/pricing/history`: spot prices as `spot`, reserved prices as `reserved` markets."""
    src = _json_from_first_bracket(path)
    series_type = ("STRUCT(instance_type VARCHAR, region VARCHAR, timestamps VARCHAR[], spot_prices VARCHAR[], "
                   "reserved_prices VARCHAR[])[]")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE stage AS
        WITH s AS (
            SELECT unnest(series) AS s, generate_subscripts(series, 1) - 1 AS i
            FROM read_json({_q(src)}, columns={{series: '{series_type}'}}, format='auto', {_whole_file(src)})
        ), p AS (
            SELECT i, s, unnest(generate_series(1, coalesce(len(s.timestamps), 0))) AS j FROM s
        ), both_kinds AS (
            SELECT i, j, s, 'spot' AS kind, s.spot_prices[j] AS price, 'spot_prices' AS fld FROM p
            UNION ALL
            SELECT i, j, s, 'reserved', s.reserved_prices[j], 'reserved_prices' FROM p
            WHERE s.reserved_prices[j] IS NOT NULL
        )
        SELECT NULL::BIGINT AS line, 'series[' || i || '].' || fld || '[' || (j - 1) || ']' AS rec,
               'mithril' AS provider, s.region AS region, s.region AS location, s.instance_type AS instance_type,
               NULL::VARCHAR AS gpu, NULL::VARCHAR AS gpus, kind, s.timestamps[j] AS ts,
               replace(replace(trim(price), '$', ''), ',', '') AS price, NULL::VARCHAR AS available
        FROM both_kinds
    """)


def stage_aws(con: duckdb.DuckDBPyConnection, path: Path, product: str) -> None:
    """Stage AWS `describe-spot-price-history` JSON; keeps one product (default Linux/UNIX, with or without VPC)."""
    src = _json_from_first_bracket(path)
    row_type = ("STRUCT(AvailabilityZone VARCHAR, InstanceType VARCHAR, ProductDescription VARCHAR, "
                "SpotPrice VARCHAR, \"Timestamp\" VARCHAR)[]")
    prod = product.replace("'", "''")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE stage AS
        WITH r AS (
            SELECT unnest(SpotPriceHistory) AS r, generate_subscripts(SpotPriceHistory, 1) - 1 AS i
            FROM read_json({_q(src)}, columns={{SpotPriceHistory: '{row_type}'}}, format='auto',
                           {_whole_file(src)})
        )
        SELECT NULL::BIGINT AS line, 'SpotPriceHistory[' || i || ']' AS rec, 'aws' AS provider,
               regexp_replace(r.AvailabilityZone, '[a-z]$', '') AS region, r.AvailabilityZone AS location,
               r.InstanceType AS instance_type, NULL::VARCHAR AS gpu, NULL::VARCHAR AS gpus, 'spot' AS kind,
               r."Timestamp" AS ts, r.SpotPrice AS price, NULL::VARCHAR AS available
        FROM r
        WHERE r.ProductDescription IS NULL OR r.ProductDescription IN ('{prod}', '{prod} (Amazon VPC)')
    """)


def stage_skypilot(con: duckdb.DuckDBPyConnection, path: Path, provider: str | None, at: str | None) -> None:
    """Stage a SkyPilot catalog `vms.csv` snapshot: Price as `on_demand`, SpotPrice as `spot`, both at `at`."""
    provider = provider or _provider_from_path(path)
    if not provider:
        raise AdvisorError(f"{path}: a SkyPilot catalog needs its cloud. To fix: pass --provider (e.g. aws, gcp)")
    if not at:
        raise AdvisorError(f"{path}: a SkyPilot catalog is a snapshot. To fix: pass --at TS (when it was fetched)")
    reader = f"read_csv({_q(path)}, all_varchar=true, header=true)"
    _require_columns(path, set(con.sql(f"SELECT * FROM {reader} LIMIT 0").columns), SKYPILOT_COLUMNS)
    prov, ts = provider.replace("'", "''"), at.replace("'", "''")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE stage AS
        WITH r AS (SELECT row_number() OVER () + 1 AS line, * FROM {reader}),
        k AS (
            SELECT line, *, 'on_demand' AS kind, Price AS price FROM r WHERE nullif(trim(Price), '') IS NOT NULL
            UNION ALL
            SELECT line, *, 'spot', SpotPrice FROM r WHERE nullif(trim(SpotPrice), '') IS NOT NULL
        )
        SELECT line, NULL::VARCHAR AS rec, '{prov}' AS provider, Region AS region,
               coalesce(nullif(trim(AvailabilityZone), ''), Region) AS location, InstanceType AS instance_type,
               nullif(trim(AcceleratorName), '') AS gpu,
               CAST(TRY_CAST(AcceleratorCount AS DOUBLE) AS BIGINT)::VARCHAR AS gpus, kind, '{ts}' AS ts,
               price, NULL::VARCHAR AS available
        FROM k
    """)


def _provider_from_path(path: Path) -> str | None:
    known = {"aws", "gcp", "azure", "lambda", "oci", "runpod", "nebius", "kubernetes", "spheron", "mithril"}
    for part in reversed(path.resolve().parts[:-1]):
        if part.lower() in known:
            return part.lower()
    return None


def _whole_file(path: Path) -> str:
    """read_json's object-size bound set to the file's size: these responses are one JSON object, and DuckDB's
    default bound (16 MB) rejects a few months of spot history across zones."""
    return f"maximum_object_size={max(path.stat().st_size + 1, 16 * 2 ** 20)}"


def _json_from_first_bracket(path: Path) -> Path:
    """The `ml` CLI prints a progress line before its JSON: parse from the first `{` or `[`."""
    with path.open("rb") as f:
        head = f.read(4096)
    starts = [i for i in (head.find(b"{"), head.find(b"[")) if i >= 0]
    if not starts:
        raise AdvisorError(f"{path}:1: no JSON object or array found")
    start = min(starts)
    if start == 0:
        return path
    tmp = Path(tempfile.mkdtemp(prefix="advisor-json-")) / path.name
    data = path.read_bytes()[start:]
    tmp.write_bytes(data)
    return tmp
