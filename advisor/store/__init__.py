"""The DuckDB price store: schema, validated idempotent ingest, and queries that return pandas."""

from advisor.store.catalog import KINDS, MarketKey, infer_gpu
from advisor.store.formats import FORMATS, StageOptions, detect_format
from advisor.store.ingest import IngestResult, ingest_files
from advisor.store.queries import (
    coverage,
    eligible,
    first_price,
    hourly,
    hourly_view,
    instance_gpus,
    list_markets,
    market_ids,
    market_regions,
    offers,
    on_demand_price,
    raw_prices,
    record_counts,
)
from advisor.store.schema import connect
from advisor.store.silence import Silence, as_of_past_records, silences, silent_at, silent_markets

__all__ = [
    "FORMATS", "KINDS", "IngestResult", "MarketKey", "Silence", "StageOptions", "as_of_past_records", "connect",
    "coverage", "detect_format", "eligible", "first_price", "hourly", "hourly_view", "infer_gpu", "ingest_files",
    "instance_gpus", "list_markets", "market_ids", "market_regions", "offers", "on_demand_price", "raw_prices",
    "record_counts", "silences", "silent_at", "silent_markets",
]
