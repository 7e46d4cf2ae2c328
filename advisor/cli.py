"""`advisor ...`: a thin command line over the library. Each command parses, calls `advisor.*`, prints.

Errors from the library become one line on stderr and a non-zero exit here, and only here.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from advisor import store
from advisor.errors import AdvisorError
from advisor.store.default import DEMO_DIR, build_demo_db, demo_db_path, resolve_db
from advisor.units import format_usd, hour_after, parse_ts

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="What to bid, whether to reserve, and where to fall back for GPU compute.")
err = Console(stderr=True, emoji=False)  # a market key like aws:x:... is not :x:
PIPED_WIDTH = 120  # columns for tables when stdout is not a terminal (rich would take 80)

DbOpt = Annotated[str | None, typer.Option("--db", help="Database file (default: $ADVISOR_DB, else the demo data).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout, nothing else.")]


def cli_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and exit code 1 (2 for bad flags)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (AdvisorError, FileNotFoundError) as exc:
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ValueError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            err.print(f"error: cannot open the database (is another program writing to it?): "
                      f"{str(exc).splitlines()[0]}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def emit_json(obj: Any) -> None:
    """Write one JSON document to stdout (timestamps as ISO-8601 UTC)."""

    def default(value: Any) -> Any:
        if isinstance(value, pd.Timestamp | pd.DatetimeIndex) or hasattr(value, "isoformat"):
            return pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ")
        if hasattr(value, "item"):
            return value.item()
        return str(value)

    sys.stdout.write(json.dumps(obj, default=default, allow_nan=False) + "\n")


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows as JSON-ready dicts (NaN/NA as null, timestamps as ISO-8601 UTC)."""
    out = frame.astype(object).where(frame.notna(), None)
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            out[col] = [None if v is None else pd.Timestamp(v).strftime("%Y-%m-%dT%H:%M:%SZ") for v in out[col]]
    return out.to_dict(orient="records")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def print_table(frame: pd.DataFrame, title: str | None = None) -> None:
    """A readable table on stdout."""
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame_records(frame):
        table.add_row(*(_cell(v) for v in row.values()))
    Console(width=None if sys.stdout.isatty() else PIPED_WIDTH, emoji=False).print(table)


def parse_price_flag(text: str | None) -> float | dict[str, float] | None:
    """`--price 0.92` or `--price TYPE=PRICE,TYPE=PRICE`."""
    if text is None:
        return None
    try:
        if "=" not in text:
            return float(text)
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise ValueError(f"--price {text!r}: give a number or TYPE=PRICE pairs, e.g. p3.2xlarge=0.92") from None


def open_store(db: str | None, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Connect to the chosen database."""
    return store.connect(resolve_db(db), read_only=read_only)


@app.command()
@cli_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files to load (all or nothing).")],
    fmt: Annotated[str | None, typer.Option("--format", help=f"Override detection: {'|'.join(store.FORMATS)}.")] = None,
    price: Annotated[str | None, typer.Option(
        "--price", help="Price of spot rows with availability only: 0.92, or per type p3.2xlarge=0.92,...")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="Cloud of a SkyPilot vms.csv.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Snapshot time of a SkyPilot vms.csv.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load price history or reservation offers. Example: advisor ingest prices.csv --db my.duckdb"""
    if fmt and fmt not in store.FORMATS:
        raise ValueError(f"--format {fmt!r}: one of {', '.join(store.FORMATS)}")
    if at:
        parse_ts(at)
    for path in paths:
        if not path.is_file():
            raise AdvisorError(f"{path}: no such file")
    opts = store.StageOptions(price=parse_price_flag(price), provider=provider, at=at)
    with open_store(db, read_only=False) as con, \
            Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
        task = progress.add_task("ingesting", total=len(paths))
        if err.is_terminal and not as_json:
            con.execute("SET enable_progress_bar = true")  # DuckDB's own bar inside one large file
        result = store.ingest_files(con, paths, fmt, opts, on_file=lambda _: progress.advance(task))
    if as_json:
        emit_json(result.to_dict())
    else:
        d = result.to_dict()
        typer.echo(f"{len(d['files'])} file(s): {d['rows_read']} rows read, {d['rows_added']} added, "
                   f"{d['offers_added']} offers added, {len(d['markets_touched'])} market(s) touched")


@app.command()
@cli_errors
def markets(
    gpu: Annotated[str | None, typer.Option("--gpu", help="Only markets with this GPU, e.g. H100.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="spot | on_demand | reserved")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List markets with their coverage, and which spot markets went silent (their records stopped long before the
    others': a live recommendation leaves them out). Example: advisor markets --gpu H100 --json"""
    with open_store(db) as con:
        frame = store.list_markets(con, kind=kind, gpu=gpu)
        spot = frame.loc[frame["kind"] == "spot"]
        silent = set()
        if not spot.empty:
            live = hour_after(spot["last_ts"].max())
            silent = {s.market for s in store.silent_markets(con, list(spot["market"]), live)}
    frame["silent"] = frame["market"].isin(silent)
    if as_json:
        emit_json(frame_records(frame))
    else:
        print_table(frame[["market", "gpu", "gpus_per_instance", "first_ts", "last_ts", "rows", "silent"]])


@app.command()
@cli_errors
def prices(
    market: Annotated[str, typer.Argument(help="provider:location:instance_type:kind")],
    start: Annotated[str | None, typer.Option("--from", help="First time (ISO-8601 UTC).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End time, exclusive.")] = None,
    hourly: Annotated[bool, typer.Option("--hourly", help="The hourly view instead of raw records.")] = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one market's prices. Example: advisor prices aws:us-east-1a:p5.48xlarge:spot --hourly --from 2026-05-01"""
    store.MarketKey.parse(market)
    lo, hi = (parse_ts(start) if start else None), (parse_ts(end) if end else None)
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"--to {end}: must be after --from {start}")
    with open_store(db) as con:
        if hourly:
            first, last = store.coverage(con, [market])
            frame = store.hourly_view(con, market, lo or first, hi or last + pd.Timedelta(hours=1))
        else:
            frame = store.raw_prices(con, market, lo, hi)
    if as_json:
        emit_json(frame_records(frame))
    else:
        print_table(frame, title=market)


@app.command()
@cli_errors
def demo(
    seed: Annotated[int, typer.Option(help="Generator seed; the same seed gives the same bytes.")] = 7,
    out: Annotated[Path, typer.Option(help="Where to write the demo files.")] = DEMO_DIR,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the embedded demo data (synthetic market) and its database. Example: advisor demo"""
    from advisor.market import write_demo

    files = write_demo(out, seed=seed)
    path = build_demo_db(Path(db) if db else demo_db_path(), list(files))
    if as_json:
        emit_json({"files": [str(f) for f in files], "db": str(path)})
    else:
        typer.echo(f"wrote {', '.join(str(f) for f in files)}; database {path}")


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give comma-separated numbers, e.g. 24,48,96") from None


def _duration(text: str, flag: str, zero: bool = False) -> float:
    """A duration flag in hours (`36h`, `14d`), longer than 0 unless `zero`; a one-line error naming the flag."""
    from advisor.units import parse_duration_hours

    try:
        hours = parse_duration_hours(text)
    except ValueError as exc:
        raise ValueError(f"{flag} {exc}") from None
    if hours < 0 or (hours == 0 and not zero):
        raise ValueError(f"{flag} {text!r}: must be {'0 h or more' if zero else 'longer than 0 h'}")
    return hours


@app.command("replay")
@cli_errors
def replay_cmd(
    document: Annotated[Path, typer.Argument(help="A plan, or a report holding workload and plan (JSON/YAML).")],
    start: Annotated[str, typer.Option("--start", help="When the plan starts (ISO-8601 UTC).")],
    workload_file: Annotated[Path | None, typer.Option("--workload", help="Workload file when the plan has none.")]
    = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a plan on recorded history. Example: advisor replay report.json --start 2026-04-01T00:00:00Z --json"""
    from advisor.plan import load_document, load_history, replay

    workload, plan = load_document(document)
    if workload_file is not None:
        workload, _ = load_document(workload_file) if workload_file.suffix == ".json" else (None, None)
        if workload is None:
            import yaml

            from advisor.plan import workload_from_dict
            workload = workload_from_dict(yaml.safe_load(workload_file.read_text()))
    if workload is None:
        raise ValueError(f"{document} holds no workload. To fix: pass --workload FILE")
    begin = parse_ts(start).floor("h")
    end = begin + pd.Timedelta(hours=workload.horizon)
    with open_store(db) as con:
        found = store.silences(con, plan.markets(), end)
        gaps = [g for g in found if g.until > begin]
        if gaps:
            g = gaps[0]
            raise AdvisorError(f"--start {start}: the {workload.horizon} h window runs into a silence of {g.market} "
                               f"(no record from {g.last:%Y-%m-%d %H:%M} to {g.until:%Y-%m-%d %H:%M}), whose hours are "
                               f"unknown. To fix: a --start whose window lies within its records (`advisor markets` "
                               f"lists their span)")
        paths = load_history(con, plan.markets(), begin, workload.horizon, found)
    result = replay(workload, plan, paths)
    out = {k: v for k, v in result.to_dict().items()
           if k in ("cost", "finished", "finish_hour", "hours_by_market", "preemptions")}
    if as_json:
        emit_json(out)
    else:
        for key, value in out.items():
            typer.echo(f"{key:16s} {value}")


@app.command()
@cli_errors
def backtest(
    instance_type: Annotated[str | None, typer.Option("--instance-type", help="Markets of this type.")] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="Markets with this GPU.")] = None,
    markets: Annotated[str | None, typer.Option("--markets", help="Comma-separated market keys, in order.")] = None,
    hours: Annotated[str, typer.Option("--hours", help="Work hours to sweep.")] = "24,48,96",
    slack: Annotated[str, typer.Option("--slack", help="Deadline / work ratios to sweep.")] = "1.25,2,4",
    nodes: Annotated[str, typer.Option("--nodes", help="Gang sizes to sweep.")] = "1",
    every: Annotated[str, typer.Option("--every", help="Time between starts.")] = "3d",
    warmup: Annotated[str, typer.Option("--warmup", help="History before the first start.")] = "28d",
    strategies: Annotated[str, typer.Option("--strategies", help="Comma-separated strategies (the advisor, with "
                                            "--as-of each start, and advisor_fixed_limits too; best_static_returning: "
                                            "the hindsight grid, its plans also returning after the guard).")] =
    "on_demand,greedy,uniform_progress,docs_rule,best_static,advisor",
    checkpoint_every: Annotated[float, typer.Option("--checkpoint-every")] = 1.0,
    restart_overhead: Annotated[float, typer.Option("--restart-overhead")] = 0.25,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write the per-run rows as CSV.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare strategies with the hindsight optimum on history, and per workload the advisor with the hindsight-best
    static plan and the docs' rule. Example: advisor backtest --instance-type g2.2xlarge"""
    from advisor.backtest import Grid, advisor_by_workload, backtest_from_store, summarize, universe_from_store
    from advisor.optimize.backtest import advisor_plan_fns

    slacks, gangs = _floats(slack, "--slack"), _floats(nodes, "--nodes")
    if any(s < 1 for s in slacks):
        raise ValueError(f"--slack {slack!r}: each must be >= 1 (the deadline over the work: below 1 it cannot be met)")
    if any(n < 1 or n != int(n) for n in gangs):
        raise ValueError(f"--nodes {nodes!r}: each must be a whole number >= 1")
    grid = Grid(hours=_floats(hours, "--hours"), slack=slacks, nodes=tuple(int(n) for n in gangs),
                checkpoint_every=checkpoint_every, restart_overhead=restart_overhead)
    step, warm = _duration(every, "--every"), _duration(warmup, "--warmup", zero=True)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    if warm <= 0 and any(n.startswith("advisor") for n in names):
        raise ValueError(f"--warmup {warmup!r}: the advisor plans from the history before each start, and the first "
                         f"would have none; give a warmup (the issue's backtests use 28d) or leave the advisor out of "
                         f"--strategies")
    with open_store(db) as con:
        universe = universe_from_store(con, instance_type, gpu, markets.split(",") if markets else None)
        with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
            task = progress.add_task("backtest", total=None)
            rows, starts = backtest_from_store(con, universe, grid, step, warm, names, advisor_plan_fns(con, names),
                                               on_step=lambda: progress.advance(task),
                                               on_total=lambda n: progress.update(task, total=n))
    if csv_out:
        rows.to_csv(csv_out, index=False)
    if as_json:
        emit_json(frame_records(rows))
        return
    print_table(summarize(rows), title=f"{len(starts)} starts x {len(grid.workloads())} workloads, cost / hindsight")
    if "advisor" in names:
        print_table(advisor_by_workload(rows).round(3).dropna(axis=1, how="all"),  # columns of strategies run
                    title="the advisor per workload: its mean cost / theirs, P(meet deadline) promised and met")


def _forecast_evaluate(markets: str | None, lookback: float, horizon: float, every: float, db: str | None,
                       as_json: bool) -> None:
    from advisor.forecast.evaluate import evaluate_store, summarize_evaluation

    with open_store(db) as con:
        names = markets.split(",") if markets else store.list_markets(con, kind="spot")["market"].tolist()
        first, last = store.coverage(con, names)
        span = (pd.Timestamp(last) - pd.Timestamp(first)) / pd.Timedelta(hours=1)
        with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
            task = progress.add_task("origins", total=max(0, int((span - lookback - horizon) // every) + 1))
            rows = evaluate_store(con, names, int(lookback), int(horizon), int(every),
                                  on_origin=lambda: progress.advance(task))
    table = summarize_evaluation(rows)
    if as_json:
        emit_json(frame_records(table))
        return
    cols = ["market", "method", "pinball_0.1", "pinball_0.5", "pinball_0.9", "coverage_80", "brier"]
    print_table(table[cols], title=f"{rows['origin'].nunique()} origins, every {every:g} h, horizon {horizon:g} h")
    overall = table.groupby("method", sort=False)[["pinball_mean", "coverage_80", "brier"]].mean().reset_index()
    print_table(overall, title="mean over markets")


@app.command()
@cli_errors
def forecast(
    market: Annotated[str, typer.Argument(help="A market key, or `evaluate` for the rolling-origin evaluation.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Forecast origin; only data before it is used.")]
    = None,
    horizon: Annotated[str, typer.Option("--horizon", help="How far ahead, e.g. 7d.")] = "7d",
    quantiles: Annotated[str, typer.Option("--quantiles", help="Comma-separated quantiles.")] = "0.1,0.5,0.9",
    lookback: Annotated[str, typer.Option("--lookback", help="History the model is fitted on.")] = "28d",
    markets: Annotated[str | None, typer.Option("--markets", help="evaluate: markets (default all spot).")] = None,
    every: Annotated[str, typer.Option("--every", help="evaluate: time between origins.")] = "24h",
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Price quantiles per future hour. Example: advisor forecast MARKET --as-of 2026-05-01T00:00:00Z --horizon 7d"""
    import numpy as np

    from advisor.forecast import Forecaster
    from advisor.plan import load_history

    hours, back = int(_duration(horizon, "--horizon")), int(_duration(lookback, "--lookback"))
    if market == "evaluate":
        _forecast_evaluate(markets, back, hours, _duration(every, "--every"), db, as_json)
        return
    store.MarketKey.parse(market)
    qs = [float(q) for q in _floats(quantiles, "--quantiles")]
    if not all(0 < q < 1 for q in qs):
        raise ValueError(f"--quantiles {quantiles!r}: each must be in (0, 1)")
    with open_store(db) as con:
        _, last = store.coverage(con, [market])
        origin = parse_ts(as_of).ceil("h") if as_of else hour_after(last)
        found = store.silences(con, [market], origin)
        silent = store.silent_at(found, origin)
        if silent:
            raise store.as_of_past_records(silent, origin)
        history = load_history(con, [market], origin - pd.Timedelta(hours=back), back, found)
    model = Forecaster().fit(history)
    values = model.quantiles(market, sorted(qs), hours)
    capacity = model.prob_capacity(market, 1, hours)
    times = pd.date_range(origin, periods=hours, freq="h")
    out = {"market": market, "as_of": origin,
           "hours": [{"ts": t, "quantiles": {f"{q:g}": (float(v) if np.isfinite(v) else None)
                                             for q, v in zip(sorted(qs), row, strict=True)},
                      "p_capacity": float(c)}
                     for t, row, c in zip(times, values, capacity, strict=True)]}
    if as_json:
        emit_json(out)
        return
    frame = pd.DataFrame(values, columns=[f"q{q:g}" for q in sorted(qs)]).assign(p_capacity=capacity, hour=times)
    print_table(frame[["hour", *frame.columns[:-1]]], title=f"{market} as of {origin}")


def _deadline_hours(text: str, as_of: pd.Timestamp | None) -> float:
    """`--deadline 36h` / `14d`, or an ISO timestamp counted from --as-of (or now)."""
    from advisor.units import parse_duration_hours

    try:
        return parse_duration_hours(text)
    except ValueError:
        pass
    end = parse_ts(text)
    origin = as_of if as_of is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    hours = float((end - origin) / pd.Timedelta(hours=1))
    if hours < 1:
        raise ValueError(f"--deadline {text}: must be at least 1 h after {'--as-of' if as_of is not None else 'now'}"
                         f" ({origin:%Y-%m-%dT%H:%M}Z), got {hours:g} h")
    return hours


def _build_workload(flags: dict, workload_file: Path | None, task: dict | None, as_of: pd.Timestamp | None):
    from advisor.plan import load_workload, to_dict, workload_from_dict
    from advisor.report import workload_fields

    data = to_dict(load_workload(workload_file)) if workload_file else {}
    if task is not None:
        data.update(workload_fields(task, str(flags.get("task"))))
    gpu_hours = flags.pop("gpu_hours")
    deadline = flags.pop("deadline")
    for key, value in flags.items():
        if value is not None and key != "task":
            data[key] = value
    if deadline is not None:
        data["deadline_hours"] = _deadline_hours(deadline, as_of)
    if gpu_hours is not None:
        data["hours"] = gpu_hours / (data.get("nodes", 1) * data.get("gpus_per_node", 8))
    if "hours" not in data or "deadline_hours" not in data:
        raise ValueError("a workload needs --hours (or --gpu-hours) and --deadline, or a --workload file")
    return workload_from_dict(data)


def _gpus_of_type(con, instance_type: str, need_gpus: bool) -> int | None:
    """GPUs per instance of `instance_type` as the store records it (None when it has none and none are needed)."""
    recorded = store.instance_gpus(con, instance_type)
    if recorded is None:
        raise ValueError(f"--instance-type {instance_type}: no market of this type in the store; "
                         f"`advisor markets` lists them")
    gpus = recorded[1]
    if gpus < 1:
        if need_gpus:
            raise ValueError(f"--gpu-hours: {instance_type} has no GPUs; give the work in --hours")
        return None
    return gpus


def _print_summary(report: dict) -> None:
    # long market names stay on their line when the summary is piped or pasted; a key's :x: is not an emoji
    console = Console(soft_wrap=True, emoji=False)
    cost = report["cost"]
    console.print(f"[bold]Recommended plan[/bold] (as of {report['data']['as_of']}, "
                  f"{report['data']['scenarios']['evaluation']} fresh scenarios)")
    from advisor.report.markdown import _plan_lines, restarts_line

    for line in _plan_lines(report["plan"]):
        console.print("  " + line.replace("**", "").replace("`", ""), highlight=False)
    console.print(f"Expected cost {format_usd(cost['mean'])}  P50 {format_usd(cost['p50'])}  "
                  f"P90 {format_usd(cost['p90'])}  P(meet deadline) {report['probability_meet_deadline']:.1%}",
                  highlight=False)
    if report.get("restarts"):
        console.print(restarts_line(report), highlight=False)
    saving = report["savings_vs_on_demand"]
    console.print(f"Savings against on-demand only: {format_usd(saving['usd'])} ({saving['fraction']:.0%})",
                  highlight=False)
    if report["reservation_reason"]:
        console.print(f"Reservation: {report['reservation_reason']}", highlight=False)
    rows = [{"option": "recommended", **cost, "P(meet)": f"{report['probability_meet_deadline']:.1%}"}]
    rows += [{"option": a["name"], **a["cost"], "P(meet)": f"{a['probability_meet_deadline']:.1%}"}
             for a in report["alternatives"]]
    print_table(pd.DataFrame(rows), title="alternatives (USD)")
    for cmd in report["bid_commands"]:
        console.print(cmd, highlight=False, markup=False)
    console.print("Assumptions (and adjustments after the optimizer):", highlight=False)
    for line in report["assumptions"]:
        console.print(f"  - {line}", highlight=False, markup=False)


@app.command()
@cli_errors
def recommend(
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU type, e.g. H100.")] = None,
    instance_type: Annotated[str | None, typer.Option("--instance-type", help="Only this instance type.")] = None,
    gpus_per_node: Annotated[int | None, typer.Option("--gpus-per-node", min=1, help="GPUs per instance (default 8).")]
    = None,
    nodes: Annotated[int | None, typer.Option("--nodes", min=1, help="Instances that run together (a gang).")] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="Gang wall-hours of work.")] = None,
    gpu_hours: Annotated[float | None, typer.Option("--gpu-hours", help="GPU-hours of work (instead of --hours).")]
    = None,
    hours_p90: Annotated[float | None, typer.Option("--hours-p90", help="P90 of the work when it is uncertain.")]
    = None,
    deadline: Annotated[str | None, typer.Option("--deadline", help="Duration (36h, 14d) or timestamp.")] = None,
    checkpoint_every: Annotated[float | None, typer.Option("--checkpoint-every", help="Hours between checkpoints.")]
    = None,
    restart_overhead: Annotated[float | None, typer.Option("--restart-overhead", help="Hours lost per start.")]
    = None,
    target_probability: Annotated[float | None, typer.Option("--target-probability")] = None,
    budget: Annotated[float | None, typer.Option("--budget", help="Most you will spend (USD).")] = None,
    credit_value: Annotated[float | None, typer.Option("--credit-value", help="Worth of $1 of Mithril credit.")]
    = None,
    providers: Annotated[str | None, typer.Option(
        "--providers", help="Comma-separated providers, or SkyPilot infra: aws/us-east-1[/us-east-1a].")] = None,
    markets: Annotated[str | None, typer.Option("--markets", help="Comma-separated market keys.")] = None,
    workload_file: Annotated[Path | None, typer.Option("--workload", help="Workload YAML/JSON.")] = None,
    task: Annotated[Path | None, typer.Option("--task", help="SkyPilot task YAML (accelerators, num_nodes).")]
    = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="See only data before this time (default: the hour after the last spot record).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON report here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown section here.")] = None,
    write_task_to: Annotated[Path | None, typer.Option("--write-task", help="Write the SkyPilot task with the plan.")]
    = None,
    scenarios: Annotated[int, typer.Option("--scenarios", help="Training scenarios (evaluation uses 2.5x).")] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    solver: Annotated[str, typer.Option("--solver", help="auto (HiGHS if installed, else CBC), cbc or highs: the "
                                        "same plan either way.")] = "auto",
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver seconds before the best plan found.")]
    = 30.0,
    fixed_limits: Annotated[bool, typer.Option(
        "--fixed-limits", help="Keep every bid's limit for the whole job: no late raise, no cap (bids you cannot "
                               "edit).")]
    = False,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recommend bids, a reservation and fallbacks.

    Example: advisor recommend --gpu H100 --nodes 2 --gpu-hours 5376 --deadline 16d
    """
    from advisor.optimize import recommend as run_recommend
    from advisor.optimize.solver import SOLVERS
    from advisor.report import build_report, dump_task, new_task, read_task, to_markdown, write_task, write_text_atomic

    if solver not in SOLVERS:
        raise ValueError(f"--solver {solver!r}: {', '.join(SOLVERS)}")
    for flag, path in (("--out", out), ("--markdown", markdown), ("--write-task", write_task_to)):
        if path is not None and not path.parent.is_dir():  # found before the minutes of work, not after
            raise ValueError(f"{flag} {path}: no directory {path.parent} to write it in")
    origin = parse_ts(as_of) if as_of else None
    task_doc = read_task(task) if task else None
    flags = {"gpu": gpu, "gpus_per_node": gpus_per_node, "nodes": nodes, "hours": hours, "gpu_hours": gpu_hours,
             "hours_p90": hours_p90, "deadline": deadline, "checkpoint_every": checkpoint_every,
             "restart_overhead": restart_overhead, "target_probability": target_probability, "budget": budget,
             "credit_value": credit_value, "task": task, "instance_type": instance_type,
             "providers": tuple(providers.split(",")) if providers else None,
             "markets": tuple(markets.split(",")) if markets else None}
    with open_store(db) as con:
        if instance_type and gpus_per_node is None and not workload_file and task_doc is None:
            flags["gpus_per_node"] = _gpus_of_type(con, instance_type, gpu_hours is not None)
        workload = _build_workload(flags, workload_file, task_doc, origin)
        rec = run_recommend(con, workload, origin, n_train=scenarios, n_eval=int(scenarios * 2.5),
                            seed=seed, solver=solver, time_limit=time_limit, move_limits=not fixed_limits)
        regions = store.market_regions(con)
    report = build_report(rec)
    text = json.dumps(report, indent=2)
    if out:
        write_text_atomic(out, text + "\n")
    if markdown:
        write_text_atomic(markdown, to_markdown(report))
    if write_task_to:
        task_out = write_task(task_doc or new_task(workload), rec.chosen.plan, regions)
        write_text_atomic(write_task_to, dump_task(task_out))
    if as_json:
        sys.stdout.write(text + "\n")
    else:
        _print_summary(report)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
