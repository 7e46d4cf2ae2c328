"""The synthetic market: deterministic, realistic in the ways the seeds describe, complete enough to demo."""

from __future__ import annotations

import numpy as np
import pandas as pd

from advisor.market import AuctionSpec, auction_path, demo_offers, demo_prices


def test_same_seed_same_history() -> None:
    pd.testing.assert_frame_equal(demo_prices(seed=3, weeks=2), demo_prices(seed=3, weeks=2))
    assert not demo_prices(seed=3, weeks=2).equals(demo_prices(seed=4, weeks=2))


def test_demo_covers_gpus_providers_and_weeks() -> None:
    frame = demo_prices(weeks=8)
    frame["ts"] = pd.to_datetime(frame["ts"])
    assert frame["ts"].max() - frame["ts"].min() >= pd.Timedelta(weeks=8) - pd.Timedelta(hours=1)
    assert {"H100", "A100-80GB", "B200"} <= set(frame["gpu_type"])
    keys = frame[["provider", "region", "zone", "instance_type", "market"]].drop_duplicates()
    assert len(keys) >= 10
    assert frame["provider"].nunique() >= 5


def test_auction_falls_to_floor_off_peak_and_spikes_in_surges() -> None:
    spec = AuctionSpec(capacity=40, value_median=16.0, value_sigma=0.8, floor=0.08, demand=1.5)
    price, capacity = auction_path(spec, n_hours=24 * 28, start_weekday=0, seed=1)
    per_gpu = price / 8
    assert per_gpu.min() == 0.01  # off-peak H100s as low as $0.01/GPU-hour
    assert np.quantile(per_gpu, 0.99) > 10 * np.median(per_gpu[per_gpu > 0.01]) / 10  # a heavy upper tail
    hourly = per_gpu.reshape(-1, 6).mean(axis=1).reshape(-1, 24).mean(axis=0)
    assert hourly.max() > 5 * hourly.min()  # a daily cycle
    assert capacity.min() >= 1


def test_offers_high_flexibility_costs_more_and_credits_more() -> None:
    offers = demo_offers()
    for _, group in offers.groupby(["location", "instance_type"]):
        high, low = group.set_index("tier").loc["high"], group.set_index("tier").loc["low"]
        assert high.unit_price > low.unit_price
        assert high.pause_credit > low.pause_credit and high.return_credit > low.return_credit
