"""The store: every source format, idempotency, atomicity with exact messages, and the hourly view."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA, price_count, spot_row, write_normalized

from advisor import store
from advisor.errors import AdvisorError, InputError


def test_normalized_csv_ingest_is_idempotent(con, tmp_path: Path) -> None:
    path = write_normalized(tmp_path / "p.csv", [spot_row("2015-04-01T00:00:00Z", 0.1),
                                                 spot_row("2015-04-01T00:30:00+00:00", 0.2)])
    first = store.ingest_files(con, [path])
    second = store.ingest_files(con, [path])
    assert (first.rows_read, first.rows_added) == (2, 2)
    assert (second.rows_read, second.rows_added) == (2, 0)
    assert first.to_dict()["markets_touched"] == ["aws:us-east-1a:g2.2xlarge:spot"]
    assert con.execute("SELECT count(*) FROM ingest_log").fetchone()[0] == 2


def test_market_metadata_and_utc(con, tmp_path: Path) -> None:
    path = write_normalized(tmp_path / "p.csv", [spot_row("2015-04-01T02:00:00+02:00", 0.1)])
    store.ingest_files(con, [path])
    row = store.list_markets(con).iloc[0]
    assert (row.market, row.gpu, row.gpus_per_instance, row.kind) == ("aws:us-east-1a:g2.2xlarge:spot", "K520", 1,
                                                                     "spot")
    assert row.first_ts == pd.Timestamp("2015-04-01T00:00:00")


def test_parquet_with_normalized_columns(con, tmp_path: Path) -> None:
    csv_path = write_normalized(tmp_path / "p.csv", [spot_row("2015-04-01T00:00:00Z", 0.1)])
    frame = pd.read_csv(csv_path)
    frame.to_parquet(tmp_path / "p.parquet")
    assert store.ingest_files(con, [tmp_path / "p.parquet"]).rows_added == 1
    assert store.ingest_files(con, [csv_path]).rows_added == 0


def test_mithril_history_json_with_cli_progress_line(con, tmp_path: Path) -> None:
    doc = {"series": [{"instance_type": "h100-80gb.sxm.8x", "region": "us-central5-a",
                       "timestamps": ["2026-05-16T00:00:00Z", "2026-05-16T00:02:00Z"],
                       "spot_prices": ["$8.00", "$12.50"], "reserved_prices": ["$28.66", "$28.66"]}],
           "complete": True}
    path = tmp_path / "hist.json"
    path.write_text("Fetching pricing history...\n" + json.dumps(doc))
    result = store.ingest_files(con, [path])
    assert result.rows_added == 4
    spot = store.raw_prices(con, "mithril:us-central5-a:h100-80gb.sxm.8x:spot")
    assert spot["price"].tolist() == [8.0, 12.5]
    row = store.list_markets(con, kind="spot").iloc[0]
    assert (row.gpu, row.gpus_per_instance) == ("H100", 8)


def test_mithril_bad_price_names_the_record(con, tmp_path: Path) -> None:
    doc = {"series": [{"instance_type": "b200.8x", "region": "us-central5-a",
                       "timestamps": ["2026-05-16T00:00:00Z", "2026-05-16T00:02:00Z"],
                       "spot_prices": ["$8.00", "$abc"], "reserved_prices": []}]}
    path = tmp_path / "hist.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as info:
        store.ingest_files(con, [path])
    assert str(info.value) == (f"{path}:record series[0].spot_prices[1]: field 'spot_prices/reserved_prices': "
                               f"not a number (got 'abc')")
    assert price_count(con) == 0


def test_aws_spot_price_history_json(con, tmp_path: Path) -> None:
    doc = {"SpotPriceHistory": [
        {"AvailabilityZone": "us-east-1e", "InstanceType": "p5.48xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "20.1234", "Timestamp": "2026-05-16T00:00:00+00:00"},
        {"AvailabilityZone": "us-east-1e", "InstanceType": "p5.48xlarge", "ProductDescription": "Windows",
         "SpotPrice": "40.0", "Timestamp": "2026-05-16T00:00:00+00:00"},
        {"AvailabilityZone": "us-east-1e", "InstanceType": "p5.48xlarge",
         "ProductDescription": "Linux/UNIX (Amazon VPC)", "SpotPrice": "21.0", "Timestamp": "2026-05-16T01:00:00Z"},
    ]}
    path = tmp_path / "aws.json"
    path.write_text(json.dumps(doc))
    assert store.ingest_files(con, [path]).rows_added == 2
    assert store.raw_prices(con, "aws:us-east-1e:p5.48xlarge:spot")["price"].tolist() == [20.1234, 21.0]
    doc["SpotPriceHistory"][0]["Timestamp"] = "yesterday"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"record SpotPriceHistory\[0\]: field 'Timestamp': not an ISO-8601"):
        store.ingest_files(con, [path])


def test_aws_history_larger_than_duckdbs_default_json_object_bound(con, tmp_path: Path) -> None:
    # months of spot history across zones is one JSON object over 16 MB (DuckDB's default bound for read_json)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    rows = [{"AvailabilityZone": f"us-east-1{'abcdef'[i % 6]}", "InstanceType": "p5.48xlarge",
             "ProductDescription": "Linux/UNIX", "SpotPrice": f"{20 + i % 7:.4f}",
             "Timestamp": (start + pd.Timedelta(minutes=i)).isoformat()} for i in range(120_000)]
    path = tmp_path / "aws.json"
    path.write_text(json.dumps({"SpotPriceHistory": rows}, indent=1))
    assert path.stat().st_size > 16 * 2 ** 20
    assert store.ingest_files(con, [path]).rows_added == 120_000


def test_skypilot_catalog_snapshot(con, tmp_path: Path) -> None:
    path = tmp_path / "aws" / "vms.csv"
    path.parent.mkdir()
    path.write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone,GpuInfo\n"
        "p5.48xlarge,H100,8.0,192,2048,55.04,20.0,us-east-1,us-east-1a,\"{'Gpus': []}\"\n"
        "p4d.24xlarge,A100,8.0,96,1152,32.77,,us-east-1,us-east-1b,\n")
    with pytest.raises(AdvisorError, match="pass --at"):
        store.ingest_files(con, [path])
    result = store.ingest_files(con, [path], opts=store.StageOptions(at="2026-05-16T00:00:00Z"))
    assert result.rows_added == 3
    kinds = store.list_markets(con).set_index("market")
    assert kinds.loc["aws:us-east-1a:p5.48xlarge:spot", "gpus_per_instance"] == 8
    assert "aws:us-east-1b:p4d.24xlarge:spot" not in kinds.index


def test_reservation_offers_csv_and_yaml(con, tmp_path: Path) -> None:
    csv_path = tmp_path / "offers.csv"
    csv_path.write_text("provider,location,instance_type,tier,unit_price,pause_credit,return_credit,min_hours,max_hours\n"
                        "mithril,us-central5-a,h100-80gb.sxm.8x,high,28.66,14.3,17.2,3,336\n"
                        "mithril,us-central5-a,h100-80gb.sxm.8x,low,24.07,4.3,7.2,3,336\n")
    yaml_path = tmp_path / "offers.yaml"
    yaml_path.write_text("offers:\n  - {provider: mithril, location: us-central3-a, instance_type: b200.8x,"
                         " tier: high, unit_price: 38.73, pause_credit: 19, return_credit: 23}\n")
    result = store.ingest_files(con, [csv_path, yaml_path])
    assert result.offers_added == 3
    assert store.ingest_files(con, [csv_path, yaml_path]).offers_added == 0
    frame = store.offers(con)
    assert frame.loc[frame.tier == "high", "unit_price"].max() == 38.73
    assert set(frame["max_hours"]) == {336}
    yaml_path.write_text("- {provider: mithril, location: x, instance_type: b200.8x, tier: medium, unit_price: 1,"
                         " pause_credit: 0, return_credit: 0}\n")
    with pytest.raises(InputError, match=r"record offers\[0\]: field 'tier': not one of high, low"):
        store.ingest_files(con, [yaml_path])


def test_bad_row_in_middle_of_large_file_loads_nothing(con, tmp_path: Path) -> None:
    rows = [spot_row(f"2015-04-01T00:00:{i % 60:02d}Z", 0.1, zone=f"z{i // 60}") for i in range(50_000)]
    rows[31_337][8] = "abc"
    path = write_normalized(tmp_path / "big.csv", rows)
    good = write_normalized(tmp_path / "good.csv", [spot_row("2015-05-01T00:00:00Z", 0.1)])
    with pytest.raises(InputError) as info:
        store.ingest_files(con, [good, path])
    assert str(info.value) == f"{path}:line 31339: field 'price_usd_per_hour': not a number (got 'abc')"
    assert price_count(con) == 0
    assert con.execute("SELECT count(*) FROM markets").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM ingest_log").fetchone()[0] == 0


@pytest.mark.parametrize(("row", "field", "reason"), [
    (spot_row("2015-04-01T00:00:00Z", -1), "price_usd_per_hour", "negative"),
    (spot_row("2015-04-01T00:00:00Z", "NaN"), "price_usd_per_hour", "NaN"),
    (spot_row("2015-04-01T00:00:00Z", ""), "price_usd_per_hour", "missing"),
    (spot_row("2015-13-01T00:00:00Z", 0.1), "ts", "not an ISO-8601 timestamp"),
    (spot_row("", 0.1), "ts", "missing"),
    (["2015-04-01T00:00:00Z", "", "us-east-1", "a", "g2.2xlarge", "", 1, "spot", 0.1, ""], "provider", "missing"),
    (["2015-04-01T00:00:00Z", "aws", "us-east-1", "a", "g2.2xlarge", "", 1, "auction", 0.1, ""], "market",
     "not one of"),
    (spot_row("2015-04-01T00:00:00Z", 0.1, available="-2"), "available", "negative"),
])
def test_each_bad_value_is_named(con, tmp_path: Path, row: list, field: str, reason: str) -> None:
    path = write_normalized(tmp_path / "bad.csv", [spot_row("2015-03-01T00:00:00Z", 0.1), row])
    with pytest.raises(InputError) as info:
        store.ingest_files(con, [path])
    assert f"{path}:line 3: field '{field}': {reason}" in str(info.value)
    assert price_count(con) == 0


def test_conflicting_prices_in_file_and_against_store(con, tmp_path: Path) -> None:
    path = write_normalized(tmp_path / "dup.csv", [spot_row("2015-04-01T00:00:00Z", 0.1),
                                                   spot_row("2015-04-01T00:00:00Z", 0.1),
                                                   spot_row("2015-04-01T00:00:00Z", 0.2)])
    with pytest.raises(InputError, match=r"dup.csv:line 4: .*already has price 0.1 at line 2"):
        store.ingest_files(con, [path])
    store.ingest_files(con, [write_normalized(tmp_path / "a.csv", [spot_row("2015-04-01T00:00:00Z", 0.1)])])
    clash = write_normalized(tmp_path / "b.csv", [spot_row("2015-04-02T00:00:00Z", 0.3),
                                                  spot_row("2015-04-01T00:00:00Z", 0.2)])
    with pytest.raises(InputError, match=r"b.csv:line 3: .*is stored with price 0.1"):
        store.ingest_files(con, [clash])
    assert price_count(con) == 1


def test_availability_only_series_takes_price_flag(con, tmp_path: Path) -> None:
    path = write_normalized(tmp_path / "avail.csv", [spot_row("2023-08-27T00:00:00Z", "", 3),
                                                     spot_row("2023-08-27T00:10:00Z", "", 0)])
    store.ingest_files(con, [path], opts=store.StageOptions(price=0.92))
    assert store.raw_prices(con, "aws:us-east-1a:g2.2xlarge:spot")["price"].tolist() == [0.92, 0.92]


def test_hourly_view_spike_and_time_weighted_mean(con, tmp_path: Path) -> None:
    path = write_normalized(tmp_path / "p.csv", [
        spot_row("2015-04-01T00:00:00Z", 1.0, 5),
        spot_row("2015-04-01T00:20:00Z", 7.0, 5),  # a 10-minute spike
        spot_row("2015-04-01T00:30:00Z", 1.0, 5),
        spot_row("2015-04-01T01:50:00Z", 1.0, 0),  # capacity gone for the last 10 minutes of hour 1
        spot_row("2015-04-01T02:00:00Z", 2.0, 5),
    ])
    store.ingest_files(con, [path])
    view = store.hourly_view(con, "aws:us-east-1a:g2.2xlarge:spot", pd.Timestamp("2015-03-31T23:00"),
                             pd.Timestamp("2015-04-01T04:00"), limit=5.0)
    assert view["hour"].tolist() == list(pd.date_range("2015-03-31T23:00", periods=5, freq="h"))
    assert view["coverage"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert view["mean_price"].iloc[1] == pytest.approx((50 * 1.0 + 10 * 7.0) / 60)
    assert view["max_price"].iloc[1] == 7.0
    assert view["eligible"].tolist() == [False, False, False, True, True]  # before data, spike, capacity gap
    assert store.hourly_view(con, "aws:us-east-1a:g2.2xlarge:spot", pd.Timestamp("2015-04-01T00:00"),
                             pd.Timestamp("2015-04-01T01:00"), limit=7.0)["eligible"].tolist() == [True]
    assert view["mean_price"].iloc[4] == 2.0  # the last record holds to the window's end
    gang = store.hourly_view(con, "aws:us-east-1a:g2.2xlarge:spot", pd.Timestamp("2015-04-01T03:00"),
                             pd.Timestamp("2015-04-01T04:00"), limit=5.0, nodes=6)
    assert gang["eligible"].tolist() == [False]


def test_unknown_market_says_how_to_fix(con) -> None:
    with pytest.raises(AdvisorError, match="advisor markets"):
        store.raw_prices(con, "aws:nowhere:x:spot")


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent (it sits beside the repo in CI)")
@pytest.mark.parametrize("relpath", ["aws-spot-2015/us-east-1a.csv", "gcp-h100-2025/dev-zones.csv",
                                     "spot-availability/aws-2022-10-26-1node.csv",
                                     "spot-availability/aws-2023-08-27-16node.csv",
                                     "gcp-gpu-prices/prices-2022-2026.csv.gz"])
def test_real_shared_files_ingest_twice(con, relpath: str) -> None:
    path = SHARED_DATA / relpath
    first = store.ingest_files(con, [path])
    assert first.rows_added > 0
    assert store.ingest_files(con, [path]).rows_added == 0


def _duplicate_keys(con) -> int:
    return con.execute("SELECT count(*) FROM (SELECT 1 FROM prices GROUP BY market_id, ts HAVING count(*) > 1)"
                       ).fetchone()[0]


def test_overlapping_appends_keep_the_key_unique(con, tmp_path: Path) -> None:
    first = write_normalized(tmp_path / "a.csv", [spot_row(f"2015-04-01T0{h}:00:00Z", 0.1) for h in range(5)])
    second = write_normalized(tmp_path / "b.csv", [spot_row(f"2015-04-01T0{h}:00:00Z", 0.1) for h in range(3, 9)])
    assert store.ingest_files(con, [first]).rows_added == 5
    assert store.ingest_files(con, [second]).rows_added == 4
    assert price_count(con) == 9 and _duplicate_keys(con) == 0


def test_whitespace_variants_of_a_key_are_one_market(con, tmp_path: Path) -> None:
    rows = [spot_row("2015-04-01T00:00:00Z", 0.1), spot_row("2015-04-01T01:00:00Z", 0.1)]
    rows[1][1] = " aws "
    store.ingest_files(con, [write_normalized(tmp_path / "a.csv", rows)])
    assert store.list_markets(con)["market"].tolist() == ["aws:us-east-1a:g2.2xlarge:spot"]
    assert price_count(con) == 2 and _duplicate_keys(con) == 0


def test_identical_duplicate_rows_load_once(con, tmp_path: Path) -> None:
    row = spot_row("2015-04-01T00:00:00Z", 0.1)
    assert store.ingest_files(con, [write_normalized(tmp_path / "a.csv", [row, row])]).rows_added == 1
    assert _duplicate_keys(con) == 0


def test_fast_and_exact_paths_store_the_same_rows(tmp_path: Path) -> None:
    from advisor.store.default import demo_sources

    dumps = []
    for exact in (False, True):
        con = store.connect(tmp_path / f"{exact}.duckdb")
        store.ingest_files(con, demo_sources(), exact=exact)
        dumps.append(con.execute("SELECT market, ts, price, available FROM prices JOIN markets USING (market_id) "
                                 "ORDER BY ALL").df())
        con.close()
    pd.testing.assert_frame_equal(dumps[0], dumps[1])
    assert len(dumps[0]) > 10_000


def test_price_flag_per_instance_type(con, tmp_path: Path) -> None:
    rows = [spot_row("2023-08-27T00:00:00Z", "", 1, itype="p3.2xlarge"),
            spot_row("2023-08-27T00:00:00Z", "", 1, itype="p2.xlarge"),
            spot_row("2023-08-27T00:00:00Z", "", 1, itype="p3.16xlarge")]
    path = write_normalized(tmp_path / "a.csv", rows)
    store.ingest_files(con, [path], opts=store.StageOptions(price={"p3.2xlarge": 0.92, "p2.xlarge": 0.27}))
    got = con.execute("SELECT instance_type, price FROM prices JOIN markets USING (market_id) ORDER BY 1").fetchall()
    assert got == [("p2.xlarge", 0.27), ("p3.16xlarge", None), ("p3.2xlarge", 0.92)]


def test_on_demand_price_of_the_same_instance_type(con, tmp_path: Path) -> None:
    rows = [spot_row("2015-04-01T00:00:00Z", 0.1),
            ["2015-04-01T00:00:00Z", "aws", "us-east-1", "us-east-1a", "g2.2xlarge", "K520", 1, "on_demand", 0.65, ""],
            ["2015-05-01T00:00:00Z", "aws", "us-east-1", "us-east-1a", "g2.2xlarge", "K520", 1, "on_demand", 0.60, ""]]
    store.ingest_files(con, [write_normalized(tmp_path / "a.csv", rows)])
    assert store.on_demand_price(con, "aws:us-east-1a:g2.2xlarge:spot") == 0.60
    assert store.on_demand_price(con, "aws:us-east-1a:c3.xlarge:spot") is None


def test_a_trace_that_ended_is_silent_but_a_calm_change_log_is_not(con, tmp_path: Path) -> None:
    # zone a: hourly records for two days, nothing for twelve, then two more days (one trace ended, another began);
    # zone b: a change log quiet for three days at a time (Mithril and AWS 2015 hold a price up to five days)
    rows = [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.5) for t in pd.date_range("2015-04-01", periods=48, freq="h")]
    rows += [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.6) for t in pd.date_range("2015-04-15", periods=48, freq="h")]
    rows += [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.4 + (t.day % 2) / 10, zone="us-east-1b")
             for t in pd.date_range("2015-04-01", "2015-04-17", freq="3D")]
    rows += [spot_row("2015-04-01T00:00:00Z", 0.3, zone="us-east-1c")]  # a price posted once
    store.ingest_files(con, [write_normalized(tmp_path / "s.csv", rows)])
    a, b, c = (f"aws:{z}:g2.2xlarge:spot" for z in ("us-east-1a", "us-east-1b", "us-east-1c"))
    gaps = store.silences(con, [a, b, c], pd.Timestamp("2015-04-17"))
    assert [(s.market, s.last, s.until) for s in gaps] == [(a, pd.Timestamp("2015-04-02 23:00"),
                                                            pd.Timestamp("2015-04-15"))]
    assert store.silent_markets(con, [a, b, c], pd.Timestamp("2015-04-10")) == [
        store.Silence(a, pd.Timestamp("2015-04-02 23:00"), pd.Timestamp("2015-04-10"))]
    # ten days past a's last hourly record it is silent (the floor is a week); b, recorded every three days, only
    # after twenty such gaps; the price posted once says nothing of how often it reports; nothing before the first
    # record is judged
    late = store.silent_markets(con, [a, b, c], pd.Timestamp("2015-04-27"))
    assert [s.market for s in late] == [a] and late[0].hours == pytest.approx(10 * 24 + 1)
    assert [s.market for s in store.silent_markets(con, [a, b, c], pd.Timestamp("2015-06-20"))] == [a, b]
    assert store.silent_markets(con, [a, b, c], pd.Timestamp("2015-04-20")) == []
    assert store.silent_markets(con, [a], pd.Timestamp("2015-03-01")) == []
