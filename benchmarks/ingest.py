"""Ingest speed and memory: `advisor` ingest of N rows of the normalized CSV vs a bare DuckDB load.

Prints rows/s, peak RSS and the ratio of wall times, each variant in a fresh process on a fresh database.
Baselines: `bare` is `CREATE TABLE AS SELECT * FROM read_csv(...)` (no validation, no key); `keyed` is the same
load into the store's `prices` table (typed, with its primary key) without any validation. Target: the
advisor ingest within 1.5x of `bare`.

    python benchmarks/ingest.py --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def make_csv(path: Path, rows: int, markets: int = 200) -> None:
    """A normalized CSV of `rows` spot observations spread over `markets` markets, 1 minute apart."""
    per = rows // markets
    duckdb.sql(f"""
        COPY (
            SELECT strftime(TIMESTAMP '2020-01-01' + to_minutes(i % {per}), '%Y-%m-%dT%H:%M:%SZ') AS ts,
                   'aws' AS provider, 'us-east-1' AS region,
                   'us-east-1' || chr((97 + (i // {per}) % 6)::INTEGER) AS zone,
                   'type' || ((i // {per}) // 6) AS instance_type, 'H100' AS gpu_type, 8 AS gpu_count,
                   'spot' AS market, round(1 + (hash(i) % 1000) / 100.0, 4) AS price_usd_per_hour,
                   '' AS available
            FROM range({per * markets}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')
    """)


def _child(variant: str, csv_path: str, db_path: str) -> None:
    from advisor import store

    start = time.perf_counter()
    if variant == "advisor":
        con = store.connect(db_path)
        rows = store.ingest_files(con, [csv_path]).rows_added
    elif variant == "keyed":
        con = store.connect(db_path)
        con.execute(f"""
            INSERT INTO markets SELECT row_number() OVER (), m, 'aws', 'x', 'x', 'x', 'H100', 8, 'spot'
            FROM (SELECT DISTINCT provider || ':' || zone || ':' || instance_type || ':' || market AS m
                  FROM read_csv('{csv_path}'))""")
        con.execute(f"""
            INSERT INTO prices SELECT mk.market_id, r.ts::TIMESTAMP, r.price_usd_per_hour, NULL
            FROM read_csv('{csv_path}') r JOIN markets mk
              ON mk.market = r.provider || ':' || r.zone || ':' || r.instance_type || ':' || r.market""")
        rows = con.execute("SELECT count(*) FROM prices").fetchone()[0]
    else:
        con = duckdb.connect(db_path)
        con.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{csv_path}')")
        rows = con.execute("SELECT count(*) FROM raw").fetchone()[0]
    con.close()
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": variant, "rows": rows, "seconds": wall, "peak_mb": peak_mb}))


def run_variant(variant: str, csv_path: Path, workdir: Path) -> dict:
    db = workdir / f"{variant}.duckdb"
    out = subprocess.run([sys.executable, __file__, "--child", variant, str(csv_path), str(db)],
                         check=True, capture_output=True, text=True)
    db.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "CSV", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="advisor-bench-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "prices.csv"
        t = time.perf_counter()
        make_csv(csv_path, args.rows)
        print(f"wrote {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
        results = {v: run_variant(v, csv_path, workdir) for v in ("bare", "keyed", "advisor")}
    for r in results.values():
        print(f"{r['variant']:8s} {r['rows']:>12,} rows {r['seconds']:7.2f}s {r['rows'] / r['seconds']:>12,.0f} rows/s "
              f"peak {r['peak_mb']:7.0f} MB")
    bare, keyed, ours = (results[v]["seconds"] for v in ("bare", "keyed", "advisor"))
    print(f"ratio advisor/bare  = {ours / bare:.2f}x (target <= 1.5x)")
    print(f"ratio advisor/keyed = {ours / keyed:.2f}x")


if __name__ == "__main__":
    main()
