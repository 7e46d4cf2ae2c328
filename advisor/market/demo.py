"""The embedded demo market: 12 weeks of H100, A100-80GB and B200 prices across Mithril, Spheron, Lambda, AWS
and GCP, anchored on the seeds' 16 May 2026 prices, plus Mithril reservation offers in two flexibility tiers.

Written in the normalized CSV schema (shared/data/README.md) so it goes through the same ingest as real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from advisor.market.synthetic import STEPS_PER_HOUR, AuctionSpec, auction_path, cloud_spot_path

DEMO_END = pd.Timestamp("2026-05-16T00:00:00")
DEMO_WEEKS = 12
PRICE_COLUMNS = ["ts", "provider", "region", "zone", "instance_type", "gpu_type", "gpu_count", "market",
                 "price_usd_per_hour", "available"]


@dataclass(frozen=True)
class DemoMarket:
    """One demo instance type at one place: on-demand list price and, where it has one, a spot market."""

    provider: str
    region: str
    zone: str
    instance_type: str
    gpu: str
    gpus: int
    on_demand: float | None  # $/instance-hour
    spot: float | None  # typical spot level, $/instance-hour (auctions: bidders' median value)
    capacity: int = 8
    auction: AuctionSpec | None = None


def _auction(capacity: int, median_per_gpu: float, demand: float) -> AuctionSpec:
    return AuctionSpec(capacity=capacity, value_median=8 * median_per_gpu, value_sigma=0.8, floor=0.08,
                       demand=demand)


# Per-GPU anchors from the seeds (16 May 2026): Spheron H100 3.90 / 1.66, AWS P5 6.88 / 2.50, GCP A3 6.98 / 2.10,
# Lambda 2.49 on-demand; Spheron A100-80GB 1.71 / 0.45. Others are public list prices of the same period.
DEMO_MARKETS: tuple[DemoMarket, ...] = (
    DemoMarket("mithril", "us-central5", "us-central5-a", "h100-80gb.sxm.8x", "H100", 8, None, None,
               auction=_auction(48, 2.0, 1.5)),
    DemoMarket("mithril", "us-central3", "us-central3-a", "h100-80gb.sxm.8x", "H100", 8, None, None,
               auction=_auction(24, 2.2, 1.6)),
    DemoMarket("mithril", "us-central5", "us-central5-a", "b200.8x", "B200", 8, None, None,
               auction=_auction(16, 3.6, 1.4)),
    DemoMarket("mithril", "us-central2", "us-central2-a", "a100-80gb.sxm.8x", "A100-80GB", 8, None, None,
               auction=_auction(32, 1.1, 1.3)),
    DemoMarket("spheron", "global", "", "spheron-h100-sxm5-8", "H100", 8, 31.20, 13.28, capacity=6),
    DemoMarket("spheron", "global", "", "spheron-a100-80g-sxm-8", "A100-80GB", 8, 13.68, 3.60, capacity=6),
    DemoMarket("lambda", "us-east-1", "", "gpu_8x_h100_sxm5", "H100", 8, 19.92, None),
    DemoMarket("lambda", "us-east-1", "", "gpu_8x_a100_80gb_sxm4", "A100-80GB", 8, 14.32, None),
    DemoMarket("lambda", "us-east-1", "", "gpu_8x_b200_sxm6", "B200", 8, 39.92, None),
    DemoMarket("aws", "us-east-1", "us-east-1a", "p5.48xlarge", "H100", 8, 55.04, 20.00, capacity=4),
    DemoMarket("aws", "us-east-1", "us-east-1b", "p5.48xlarge", "H100", 8, 55.04, 21.50, capacity=4),
    DemoMarket("aws", "us-east-1", "us-east-1a", "p6-b200.48xlarge", "B200", 8, 113.93, 44.00, capacity=2),
    DemoMarket("gcp", "us-central1", "us-central1-a", "a3-highgpu-8g", "H100", 8, 55.84, 16.80, capacity=4),
    DemoMarket("gcp", "us-central1", "us-central1-a", "a2-ultragpu-8g", "A100-80GB", 8, 40.22, 12.10, capacity=4),
)

# Mithril reserved unit prices per 8-GPU instance-hour (8x H100 at $28.66 as seen in public catalog work,
# 8x B200 at $38.73); high flexibility costs more and credits more, as the reservation docs describe.
RESERVED_UNIT = {"h100-80gb.sxm.8x": 28.66, "b200.8x": 38.73, "a100-80gb.sxm.8x": 14.40}
TIERS = {"high": (1.00, 0.50, 0.60), "low": (0.84, 0.15, 0.25)}  # (unit x, pause credit x, return credit x)


def _rows(m: DemoMarket, times: pd.DatetimeIndex, kind: str, price: np.ndarray,
          avail: np.ndarray | None) -> pd.DataFrame:
    """Normalized rows for one series, keeping only the steps where price or availability changes."""
    change = np.ones(price.size, dtype=bool)
    change[1:] = price[1:] != price[:-1]
    if avail is not None:
        change[1:] |= avail[1:] != avail[:-1]
    idx = np.flatnonzero(change)
    return pd.DataFrame({
        "ts": times[idx].strftime("%Y-%m-%dT%H:%M:%SZ"), "provider": m.provider, "region": m.region,
        "zone": m.zone, "instance_type": m.instance_type, "gpu_type": m.gpu, "gpu_count": m.gpus, "market": kind,
        "price_usd_per_hour": price[idx], "available": (avail[idx] if avail is not None else pd.NA),
    })


def demo_prices(seed: int = 7, weeks: int = DEMO_WEEKS, end: pd.Timestamp = DEMO_END) -> pd.DataFrame:
    """Every demo market's history in the normalized schema, deterministic for a seed."""
    n_hours = weeks * 168
    start = end - pd.Timedelta(hours=n_hours)
    times = pd.date_range(start, periods=n_hours * STEPS_PER_HOUR, freq=f"{60 // STEPS_PER_HOUR}min")
    frames = []
    for i, m in enumerate(DEMO_MARKETS):
        if m.auction is not None:
            price, cap = auction_path(m.auction, n_hours, start.weekday(), seed * 1000 + i)
            frames.append(_rows(m, times, "spot", price, cap))
        elif m.spot is not None:
            price, free = cloud_spot_path(m.spot, n_hours, seed * 1000 + i, m.capacity)
            frames.append(_rows(m, times, "spot", price, free))
        if m.on_demand is not None:
            frames.append(_rows(m, times[:1], "on_demand", np.array([m.on_demand]), None))
    out = pd.concat(frames, ignore_index=True)
    out["available"] = out["available"].astype("Int64")
    return out[PRICE_COLUMNS]


def demo_offers(as_of: pd.Timestamp = DEMO_END) -> pd.DataFrame:
    """Mithril reservation offers, two tiers for each auctioned instance type and region."""
    rows = []
    for m in DEMO_MARKETS:
        if m.auction is None:
            continue
        unit = RESERVED_UNIT[m.instance_type]
        for tier, (u, pause, ret) in TIERS.items():
            rows.append({"provider": m.provider, "location": m.zone, "instance_type": m.instance_type, "tier": tier,
                         "unit_price": round(unit * u, 2), "pause_credit": round(unit * pause, 2),
                         "return_credit": round(unit * ret, 2), "min_hours": 3, "max_hours": 336,
                         "ts": as_of.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return pd.DataFrame(rows)


def write_demo(directory: Path, seed: int = 7) -> tuple[Path, Path]:
    """Write `prices.csv.gz` and `offers.csv` into `directory`; byte-identical for the same seed."""
    directory.mkdir(parents=True, exist_ok=True)
    prices_path, offers_path = directory / "prices.csv.gz", directory / "offers.csv"
    tmp = directory / "prices.csv.gz.tmp"
    demo_prices(seed).to_csv(tmp, index=False, compression={"method": "gzip", "mtime": 0})
    tmp.replace(prices_path)
    demo_offers().to_csv(offers_path, index=False)
    return prices_path, offers_path
