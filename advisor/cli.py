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
from advisor.units import parse_ts

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="What to bid, whether to reserve, and where to fall back for GPU compute.")
err = Console(stderr=True)

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
        except duckdb.IOException as exc:
            err.print(f"error: cannot open the database: {str(exc).splitlines()[0]}", markup=False, soft_wrap=True)
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


def print_table(frame: pd.DataFrame, title: str | None = None) -> None:
    """A readable table on stdout."""
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    for row in frame_records(frame):
        table.add_row(*("" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row.values()))
    Console().print(table)


def open_store(db: str | None, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Connect to the chosen database."""
    return store.connect(resolve_db(db), read_only=read_only)


@app.command()
@cli_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files to load (all or nothing).")],
    fmt: Annotated[str | None, typer.Option("--format", help=f"Override detection: {'|'.join(store.FORMATS)}.")] = None,
    price: Annotated[float | None, typer.Option("--price", help="Price for spot rows with availability only.")] = None,
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
    opts = store.StageOptions(price=price, provider=provider, at=at)
    with open_store(db, read_only=False) as con, \
            Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as progress:
        task = progress.add_task("ingesting", total=len(paths))
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
    """List markets with their coverage. Example: advisor markets --gpu H100 --json"""
    with open_store(db) as con:
        frame = store.list_markets(con, kind=kind, gpu=gpu)
    if as_json:
        emit_json(frame_records(frame))
    else:
        print_table(frame[["market", "gpu", "gpus_per_instance", "first_ts", "last_ts", "rows"]])


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
