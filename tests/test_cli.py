"""The command line, in-process: JSON contracts, one-line errors with non-zero exits, help everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from conftest import spot_row, write_normalized
from typer.testing import CliRunner

from advisor.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_every_command_has_help_with_an_example() -> None:
    commands = list(typer.main.get_command(app).commands)
    assert {"ingest", "markets", "prices", "demo", "forecast", "replay", "backtest", "recommend"} <= set(commands)
    for name in commands:
        result = run(name, "--help")
        assert result.exit_code == 0, name
        assert "Example:" in result.output, name


def test_markets_json_on_demo_data() -> None:
    result = run("markets", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) >= 10
    assert set(rows[0]) == {"market", "provider", "location", "instance_type", "gpu", "gpus_per_instance", "kind",
                            "first_ts", "last_ts", "rows", "silent"}
    assert rows[0]["first_ts"].endswith("Z") and not any(r["silent"] for r in rows)


def test_markets_flags_a_zone_whose_records_stopped(tmp_path: Path) -> None:
    db = str(tmp_path / "s.duckdb")
    hours = pd.date_range("2015-04-01", periods=24 * 20, freq="h")
    rows = [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.5) for t in hours]
    rows += [spot_row(f"{t:%Y-%m-%dT%H:%M:%SZ}", 0.4, zone="us-east-1b") for t in hours[:24 * 5]]
    run("ingest", str(write_normalized(tmp_path / "s.csv", rows)), "--db", db)
    listed = {r["market"]: r["silent"] for r in json.loads(run("markets", "--db", db, "--json").stdout)}
    assert listed == {"aws:us-east-1a:g2.2xlarge:spot": False, "aws:us-east-1b:g2.2xlarge:spot": True}


def test_ingest_json_then_idempotent_then_bad_file(tmp_path: Path) -> None:
    db = str(tmp_path / "x.duckdb")
    good = write_normalized(tmp_path / "good.csv", [spot_row("2015-04-01T00:00:00Z", 0.1)])
    result = run("ingest", str(good), "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"files": [str(good)], "rows_read": 1, "rows_added": 1, "offers_added": 0,
                                         "markets_touched": ["aws:us-east-1a:g2.2xlarge:spot"]}
    assert json.loads(run("ingest", str(good), "--db", db, "--json").stdout)["rows_added"] == 0
    bad = write_normalized(tmp_path / "bad.csv", [spot_row("2015-04-02T00:00:00Z", 0.1),
                                                  spot_row("2015-04-02T01:00:00Z", "x")])
    result = run("ingest", str(bad), "--db", db, "--json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: {bad}:line 3: field 'price_usd_per_hour': not a number (got 'x')"
    rows = json.loads(run("prices", "aws:us-east-1a:g2.2xlarge:spot", "--db", db, "--json").stdout)
    assert [r["price"] for r in rows] == [0.1]


def test_prices_hourly_json(tmp_path: Path) -> None:
    db = str(tmp_path / "x.duckdb")
    path = write_normalized(tmp_path / "p.csv", [spot_row("2015-04-01T00:00:00Z", 1.0),
                                                 spot_row("2015-04-01T00:30:00Z", 3.0)])
    run("ingest", str(path), "--db", db)
    rows = json.loads(run("prices", "aws:us-east-1a:g2.2xlarge:spot", "--hourly", "--db", db, "--json").stdout)
    assert rows[0]["hour"] == "2015-04-01T00:00:00Z" and rows[0]["mean_price"] == pytest.approx(2.0)


@pytest.mark.parametrize(("args", "code", "text"), [
    (["prices", "not-a-market"], 2, "provider:location:instance_type:kind"),
    (["prices", "aws:nowhere:x:spot"], 1, "advisor markets"),
    (["ingest", "/nonexistent.csv"], 1, "no such file"),
    (["ingest", "x.csv", "--format", "xml"], 2, "--format"),
])
def test_bad_input_is_one_line_and_non_zero(args: list[str], code: int, text: str) -> None:
    result = run(*args)
    assert result.exit_code == code
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _two_market_db(tmp_path: Path) -> str:
    db = str(tmp_path / "x.duckdb")
    rows = [spot_row(f"2015-04-01T{h:02d}:00:00Z", 0.5 if h % 5 else 4.0) for h in range(24)]
    rows.append(["2015-04-01T00:00:00Z", "aws", "us-east-1", "us-east-1a", "g2.2xlarge", "K520", 1, "on_demand",
                 2.0, ""])
    run("ingest", str(write_normalized(tmp_path / "p.csv", rows)), "--db", db)
    return db


def test_replay_command_on_history(tmp_path: Path) -> None:
    db = _two_market_db(tmp_path)
    plan = {"workload": {"hours": 3, "deadline_hours": 12, "restart_overhead": 0.25, "checkpoint_every": 1.0},
            "plan": {"bids": [{"market": "aws:us-east-1a:g2.2xlarge:spot", "limit_price": 1.0}],
                     "fallback": [{"market": "aws:us-east-1a:g2.2xlarge:on_demand"}], "guard_margin_hours": 2.0}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    result = run("replay", str(tmp_path / "plan.json"), "--start", "2015-04-01T01:00:00Z", "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    # hours 1-4 at 0.5 (0.75 + 1 + 1 + 0.25 of work): finishes at 3.25
    assert out == {"cost": pytest.approx(0.5 * 3.25), "finished": True, "finish_hour": pytest.approx(3.25),
                   "hours_by_market": {"aws:us-east-1a:g2.2xlarge:spot": pytest.approx(3.25)}, "preemptions": 0}
    del plan["workload"]
    (tmp_path / "bare.json").write_text(json.dumps(plan))
    missing = run("replay", str(tmp_path / "bare.json"), "--start", "2015-04-01T01:00:00Z", "--db", db)
    assert missing.exit_code == 2 and "--workload" in missing.stderr


def test_tables_keep_their_headers_whole_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    from advisor.cli import print_table

    # a backtest summary with the advisor's column is 95 columns wide; rich folds it at 80 when stdout is a pipe
    frame = pd.DataFrame([{"strategy": "uniform_progress@us-central1-a", "runs": 324, "mean_ratio": 1.322,
                           "p90_ratio": 1.559, "miss_rate": 0.0, "mean_cost": 655.5, "promised_p": 1.0}])
    print_table(frame, title="cost / hindsight")
    out = capsys.readouterr().out
    assert all(name in out for name in frame.columns) and "uniform_progress@us-central1-a" in out


def test_backtest_json_rows_never_beat_hindsight(tmp_path: Path) -> None:
    db = _two_market_db(tmp_path)
    result = run("backtest", "--db", db, "--instance-type", "g2.2xlarge", "--hours", "2,4", "--slack", "1.5,3",
                 "--every", "2h", "--warmup", "0h", "--json", "--strategies",
                 "on_demand,greedy,uniform_progress,docs_rule")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["strategy"] for r in rows} == {"on_demand", "greedy", "uniform_progress", "docs_rule"}
    assert all(r["ratio"] >= 1 - 1e-9 for r in rows if r["finished"])
    assert {r["hours"] for r in rows} == {2.0, 4.0}


def test_backtest_puts_the_advisor_beside_the_baselines_and_per_workload_by_default(tmp_path: Path) -> None:
    db = _two_market_db(tmp_path)
    sweep = ("backtest", "--db", db, "--instance-type", "g2.2xlarge", "--hours", "2", "--slack", "2,4", "--every", "4h")
    result = run(*sweep, "--warmup", "6h", "--csv", str(tmp_path / "rows.csv"))  # the tables and the rows, one run
    assert result.exit_code == 0, result.stderr
    assert all(name in result.stdout for name in ("greedy", "docs_rule", "best_static", "advisor", "vs_best_static",
                                                  "vs_docs_rule", "realized_p"))
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert set(rows["strategy"]) >= {"best_static", "advisor"}
    assert rows.loc[rows["strategy"] == "advisor", "promised"].notna().all()
    alone = run(*sweep, "--warmup", "6h", "--strategies", "advisor")  # no columns for strategies not run
    assert alone.exit_code == 0 and "realized_p" in alone.stdout and "vs_docs_rule" not in alone.stdout
    cold = run(*sweep, "--warmup", "0h")  # no history before the first start to plan from
    assert cold.exit_code == 2 and cold.stderr.startswith("error: --warmup '0h': the advisor plans from the history")
    assert len(cold.stderr.strip().splitlines()) == 1


def test_backtest_skips_windows_without_records(tmp_path: Path) -> None:
    from advisor import store
    from advisor.backtest import Universe, starts_with_data

    con = store.connect(tmp_path / "g.duckdb")
    rows = [spot_row(f"2015-04-0{d}T{h:02d}:00:00Z", 0.5) for d in (1, 2) for h in range(24)]
    rows += [spot_row(f"2015-04-2{d}T{h:02d}:00:00Z", 0.5) for d in (1, 2) for h in range(24)]
    store.ingest_files(con, [write_normalized(tmp_path / "gap.csv", rows)])
    u = Universe(spot=("aws:us-east-1a:g2.2xlarge:spot",), on_demand=())
    starts = list(pd.date_range("2015-04-01", "2015-04-22", freq="D"))
    # 21 April: the trace resumes that hour after 18 silent days, so the market's state at the start is unknown
    assert starts_with_data(con, u, starts, 24) == [pd.Timestamp("2015-04-01"), pd.Timestamp("2015-04-02"),
                                                    pd.Timestamp("2015-04-22")]
    assert starts_with_data(con, u, starts, 48) == [pd.Timestamp("2015-04-01")]


def test_backtest_reads_a_posted_price_silent_for_days_as_unchanged_not_as_a_gap(tmp_path: Path) -> None:
    from advisor import store
    from advisor.backtest import Universe, starts_with_data

    # GCP posts spot prices that change every few days: one record per 3 days, then a 90-day silence (30 x the
    # spacing: a gap between two traces), then records again
    con = store.connect(tmp_path / "p.duckdb")
    days = [*range(0, 60, 3), *range(150, 210, 3)]
    rows = [spot_row(f"{pd.Timestamp('2025-01-01') + pd.Timedelta(days=d):%Y-%m-%dT%H:%M:%SZ}", 2.0 + d / 100)
            for d in days]
    store.ingest_files(con, [write_normalized(tmp_path / "posted.csv", rows)])
    u = Universe(spot=("aws:us-east-1a:g2.2xlarge:spot",), on_demand=())
    starts = list(pd.date_range("2025-01-01", "2025-07-29", freq="D"))
    kept = starts_with_data(con, u, starts, 96)
    assert kept[0] == pd.Timestamp("2025-01-01") and pd.Timestamp("2025-02-20") in kept
    assert not [s for s in kept if pd.Timestamp("2025-02-27") < s < pd.Timestamp("2025-05-31")]  # the silence
    assert pd.Timestamp("2025-06-10") in kept and kept[-1] <= pd.Timestamp("2025-07-27")  # not past the last record


def test_demo_rebuilds_byte_identical_files_and_a_database(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        result = run("demo", "--out", str(tmp_path / name), "--db", str(tmp_path / f"{name}.duckdb"), "--json")
        assert result.exit_code == 0, result.stderr
        outs.append(json.loads(result.stdout))
    for file in ("prices.csv.gz", "offers.csv"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    markets = json.loads(run("markets", "--db", outs[0]["db"], "--json").stdout)
    assert len(markets) >= 10 and {m["provider"] for m in markets} >= {"mithril", "aws", "gcp", "lambda", "spheron"}


def test_an_as_of_past_the_records_is_a_one_line_error_not_a_frozen_forecast(tmp_path: Path) -> None:
    db = _two_market_db(tmp_path)
    spot = "aws:us-east-1a:g2.2xlarge:spot"
    ok = run("forecast", spot, "--db", db, "--as-of", "2015-04-03T00:00:00Z", "--horizon", "3h", "--json")
    assert ok.exit_code == 0, ok.stderr
    for args in (("forecast", spot), ("recommend", "--instance-type", "g2.2xlarge", "--gpu-hours", "4",
                                      "--deadline", "12h")):
        late = run(*args, "--db", db, "--as-of", "2015-06-01T00:00:00Z")
        assert late.exit_code == 1 and late.stdout == ""
        assert late.stderr.strip() == (
            f"error: --as-of 2015-06-01T00:00Z is 60 days after the last record of {spot} (2015-04-01 23:00), "
            "longer than it was ever silent, and a price carried forward that long is not data. To fix: an --as-of "
            "within the records (`advisor markets` lists their span), or ingest newer prices")


def test_bad_sweep_and_workload_flags_are_one_line_errors_naming_the_flag(tmp_path: Path) -> None:
    db = _two_market_db(tmp_path)
    base = ("backtest", "--db", db, "--instance-type", "g2.2xlarge", "--hours", "2", "--strategies", "on_demand")
    for flag, value, message in (("--nodes", "0", "each must be a whole number >= 1"),
                                 ("--nodes", "1.5", "each must be a whole number >= 1"),
                                 ("--slack", "0.5", "each must be >= 1"),
                                 ("--every", "0h", "must be longer than 0 h"),  # was a ZeroDivisionError
                                 ("--warmup", "soon", "is not a duration")):
        result = run(*base, flag, value)
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {flag} ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    # a gang of 0 instances was a ZeroDivisionError in --gpu-hours; a deadline before --as-of named no flag
    zero = run("recommend", "--db", db, "--instance-type", "g2.2xlarge", "--nodes", "0", "--gpu-hours", "4",
               "--deadline", "12h")
    assert zero.exit_code == 2 and "--nodes" in zero.stderr and "Traceback" not in zero.output
    early = run("recommend", "--db", db, "--instance-type", "g2.2xlarge", "--hours", "4", "--deadline",
                "2015-04-01T00:00:00Z", "--as-of", "2015-04-01T12:00:00Z")
    assert early.exit_code == 2 and early.stderr.strip() == (
        "error: --deadline 2015-04-01T00:00:00Z: must be at least 1 h after --as-of (2015-04-01T12:00Z), got -12 h")
    assert "--horizon '0h': must be longer than 0 h" in run("forecast", "aws:us-east-1a:g2.2xlarge:spot", "--db", db,
                                                              "--horizon", "0h").stderr


def test_market_keys_print_as_typed_and_windows_past_the_records_are_refused(tmp_path: Path) -> None:
    db = _two_market_db(tmp_path)
    # rich read ':x:' in a key as the emoji shortcode for a cross mark
    assert "'aws:x:y:spot'" in run("prices", "aws:x:y:spot", "--db", db).stderr
    spot = "aws:us-east-1a:g2.2xlarge:spot"
    backwards = run("prices", spot, "--db", db, "--from", "2015-04-02", "--to", "2015-04-01")
    assert backwards.exit_code == 2
    assert backwards.stderr.strip() == "error: --to 2015-04-01: must be after --from 2015-04-02"
    (tmp_path / "plan.json").write_text(json.dumps({
        "workload": {"hours": 3, "deadline_hours": 12},
        "plan": {"bids": [{"market": spot, "limit_price": 1.0}],
                 "fallback": [{"market": "aws:us-east-1a:g2.2xlarge:on_demand"}]}}))
    late = run("replay", str(tmp_path / "plan.json"), "--db", db, "--start", "2015-05-01T00:00:00Z")
    assert late.exit_code == 1 and late.stderr.startswith(
        f"error: --start 2015-05-01T00:00:00Z: the 12 h window runs into a silence of {spot} (no record from "
        "2015-04-01 23:00 to 2015-05-01 12:00), whose hours are unknown")
    assert run("replay", str(tmp_path / "plan.json"), "--db", db, "--start", "2015-04-01T06:00:00Z").exit_code == 0
