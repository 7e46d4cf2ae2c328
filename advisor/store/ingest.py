"""Validated, idempotent, all-or-nothing ingest of price files and reservation offers into the store.

Each file is staged as text (`formats.py`), checked with set-based SQL (the first bad line/record wins), typed,
merged with the rows already stored, and appended; all files of one call share a single transaction, so a bad
row anywhere loads nothing. Re-ingesting a file adds 0 rows: (market, ts) is the key and an equal row is a
no-op, while a different price for a stored (market, ts) is an error. Well-formed normalized files take a typed
fast path; anything it cannot explain rolls back and reruns on the exact path, which names the bad line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from advisor.errors import AdvisorError, InputError
from advisor.store import formats
from advisor.store.catalog import KINDS, infer_gpu


@dataclass
class IngestResult:
    """What one ingest call did: rows read and added, markets touched, offers added."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_added: int = 0
    offers_added: int = 0
    markets: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"files": self.files, "rows_read": self.rows_read, "rows_added": self.rows_added,
                "offers_added": self.offers_added, "markets_touched": sorted(set(self.markets))}


def _blank(col: str) -> str:
    return f"({col} IS NULL OR trim({col}) = '')"


def _number_checks(col: str, name: str) -> list[tuple[str, str, str]]:
    num = f"TRY_CAST({col} AS DOUBLE)"
    present = f"NOT {_blank(col)}"
    return [
        (name, f"{present} AND {num} IS NULL", "not a number"),
        (name, f"{present} AND isnan({num})", "NaN"),
        (name, f"{present} AND isinf({num})", "infinite"),
        (name, f"{present} AND {num} < 0", "negative"),
    ]


Fill = float | dict[str, float] | None


def _fill_sql(fill: Fill) -> str:
    """SQL for the price a priceless spot row takes from `--price` (one price, or one per instance type)."""
    if fill is None:
        return "NULL::DOUBLE"
    if isinstance(fill, dict):
        cases = " ".join(f"WHEN '{k.replace(chr(39), chr(39) * 2)}' THEN {float(v)!r}" for k, v in fill.items())
        return f"(CASE trim(instance_type) {cases} END)::DOUBLE"
    return repr(float(fill))


def _price_checks(fill_price: Fill) -> list[tuple[str, str, str]]:
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    priceless_ok = f"kind = 'spot' AND (NOT {_blank('available')} OR {_fill_sql(fill_price)} IS NOT NULL)"
    missing_price = f"{_blank('price')} AND NOT ({priceless_ok})"
    ts = "TRY_CAST(ts AS TIMESTAMPTZ)"
    return [
        ("provider", _blank("provider"), "missing"),
        ("location", _blank("location"), "missing"),
        ("instance_type", _blank("instance_type"), "missing"),
        ("kind", _blank("kind"), "missing"),
        ("kind", f"NOT {_blank('kind')} AND kind NOT IN ({kinds})", f"not one of {', '.join(KINDS)}"),
        ("ts", _blank("ts"), "missing"),
        ("ts", f"NOT {_blank('ts')} AND {ts} IS NULL", "not an ISO-8601 timestamp"),
        *_number_checks("price", "price"),
        ("price", missing_price, "missing (a spot series with availability but no price takes --price)"),
        *_number_checks("available", "available"),
        ("available", f"NOT {_blank('available')} AND TRY_CAST(available AS DOUBLE) "
                      f"<> floor(TRY_CAST(available AS DOUBLE))", "not a whole number"),
        *_number_checks("gpus", "gpus"),
    ]


def _where(line: object, rec: object) -> str:
    return f"record {rec}" if rec is not None else f"line {line}"


def _first_bad(con: duckdb.DuckDBPyConnection, table: str,
               checks: list[tuple[str, str, str]]) -> tuple[int, str, str] | None:
    """(rowid, field, reason) of the first row (in file order) that fails any check, in one scan; None if none."""
    cols = ", ".join(f"min(CASE WHEN {cond} THEN rowid END)" for _, cond, _ in checks)
    firsts = con.execute(f"SELECT {cols} FROM {table}").fetchone()
    hits = [(row, i) for i, row in enumerate(firsts) if row is not None]
    if not hits:
        return
    rowid, i = min(hits)
    fld, _, reason = checks[i]
    return rowid, fld, reason


def _raise_bad(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, table: str, hit: tuple[int, str, str]) -> None:
    rowid, fld, reason = hit
    line, rec, value = con.execute(f"SELECT line, rec, {fld} FROM {table} WHERE rowid = ?", [rowid]).fetchone()
    name = formats.FIELD_NAMES.get(fmt, {}).get(fld, fld)
    raise InputError(str(path), _where(line, rec), name, value, reason)


def _type_stage(con: duckdb.DuckDBPyConnection, fill_price: Fill) -> None:
    fill = _fill_sql(fill_price)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE typed AS
        SELECT rowid AS ord, line, rec, trim(provider) AS provider, trim(region) AS region,
               trim(location) AS location, trim(instance_type) AS instance_type, nullif(trim(gpu), '') AS gpu,
               TRY_CAST(gpus AS DOUBLE)::INTEGER AS gpus, kind,
               trim(provider) || ':' || trim(location) || ':' || trim(instance_type) || ':' || kind AS market,
               TRY_CAST(ts AS TIMESTAMPTZ)::TIMESTAMP AS ts,
               coalesce(TRY_CAST(price AS DOUBLE), CASE WHEN kind = 'spot' THEN {fill} END) AS price,
               TRY_CAST(available AS DOUBLE)::INTEGER AS available
        FROM stage
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE grouped AS
        SELECT market, ts, min(price) AS price, max(price) AS price_hi, min(available) AS available,
               max(available) AS available_hi, count(*) AS n, count(price) AS n_price,
               count(available) AS n_available, min(ord) AS ord
        FROM typed GROUP BY market, ts
    """)


def _check_in_file_conflicts(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> None:
    bad = con.execute("""
        SELECT market, ts FROM grouped
        WHERE price <> price_hi OR available <> available_hi OR n_price NOT IN (0, n)
              OR n_available NOT IN (0, n)
        ORDER BY ord LIMIT 1
    """).fetchone()
    if bad is None:
        return
    rows = con.execute("SELECT line, rec, price, available FROM typed WHERE market = ? AND ts = ? ORDER BY ord",
                       list(bad)).fetchall()
    first = rows[0]
    other = next(r for r in rows[1:] if (r[2], r[3]) != (first[2], first[3]))
    raise InputError(str(path), _where(other[0], other[1]), formats.FIELD_NAMES.get(fmt, {}).get("price", "price"),
                     other[2], f"{bad[0]} at {bad[1]} already has price {first[2]} at {_where(first[0], first[1])}")


def _upsert_markets(con: duckdb.DuckDBPyConnection, table: str = "typed") -> list[str]:
    meta = con.execute(f"""
        SELECT market, any_value(provider), any_value(location), any_value(region), any_value(instance_type),
               any_value(gpu), any_value(gpus), any_value(kind)
        FROM {table} GROUP BY market ORDER BY market
    """).fetchall()
    known = {m for (m,) in con.execute("SELECT market FROM markets").fetchall()}
    next_id = con.execute("SELECT coalesce(max(market_id), 0) + 1 FROM markets").fetchone()[0]
    for market, provider, location, region, itype, gpu, gpus, kind in meta:
        if market in known:
            continue
        if gpu is None:
            gpu, inferred = infer_gpu(itype)
            gpus = gpus if gpus else inferred
        con.execute("INSERT INTO markets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [next_id, market, provider, location, region, itype, gpu, gpus, kind])
        next_id += 1
    return [m[0] for m in meta]


def _merge_prices(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> int:
    """Append the `incoming` rows not stored yet; a stored (market, ts) with another value is an error."""
    clash = con.execute("""
        SELECT i.ord, m.market, i.ts, i.price, p.price
        FROM incoming i JOIN prices p USING (market_id, ts) JOIN markets m USING (market_id)
        WHERE i.price IS DISTINCT FROM p.price OR i.available IS DISTINCT FROM p.available
        ORDER BY i.ord LIMIT 1
    """).fetchone()
    if clash is not None:
        if clash[0] is None:
            raise _NeedExactPath
        line, rec = con.execute("SELECT line, rec FROM typed WHERE ord = ?", [clash[0]]).fetchone()
        raise InputError(str(path), _where(line, rec), formats.FIELD_NAMES.get(fmt, {}).get("price", "price"),
                         clash[3], f"{clash[1]} at {clash[2]} is stored with price {clash[4]}")
    before = con.execute("SELECT count(*) FROM prices").fetchone()[0]
    con.execute("""
        INSERT INTO prices
        SELECT i.market_id, i.ts, i.price, i.available FROM incoming i ANTI JOIN prices p USING (market_id, ts)
    """)
    return con.execute("SELECT count(*) FROM prices").fetchone()[0] - before


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stage(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, opts: formats.StageOptions) -> None:
    if fmt in ("csv", "parquet"):
        formats.stage_normalized(con, path, parquet=fmt == "parquet")
    elif fmt == "mithril":
        formats.stage_mithril(con, path)
    elif fmt == "aws":
        formats.stage_aws(con, path, opts.product)
    elif fmt == "skypilot":
        formats.stage_skypilot(con, path, opts.provider, opts.at)
    else:
        raise AdvisorError(f"{path}: unknown format {fmt!r}; one of {', '.join(formats.FORMATS)}")


_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advisor-sha256")  # overlaps hashing with loading


class _NeedExactPath(Exception):
    """The fast path met something it cannot explain; the exact (text) path will name it."""


def _fast_normalized(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, fill_price: Fill) -> None:
    """Typed single-pass load of the normalized schema for well-formed files; raises _NeedExactPath otherwise.

    Rows carry a hash of their raw key columns; trimming and naming happen once per distinct key (`fast_keys`).
    """
    fill = _fill_sql(fill_price)
    types = "{'ts': 'TIMESTAMPTZ', 'price_usd_per_hour': 'DOUBLE', 'available': 'DOUBLE', 'gpu_count': 'DOUBLE'}"
    reader = (f"read_parquet({formats._q(path)})" if fmt == "parquet"
              else f"read_csv({formats._q(path)}, header=true, types={types})")
    try:
        cols = set(con.sql(f"SELECT * FROM {reader} LIMIT 0").columns)
        if not set(formats.NORMALIZED_COLUMNS) <= cols:
            raise _NeedExactPath
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE fast AS
            WITH r AS (
                SELECT hash(provider, region, zone, instance_type, market) AS h, provider, region, zone,
                       instance_type, gpu_type, gpu_count::DOUBLE AS gpus, market AS kind,
                       ts::TIMESTAMPTZ::TIMESTAMP AS ts,
                       coalesce(price_usd_per_hour::DOUBLE, CASE WHEN market = 'spot' THEN {fill} END) AS price,
                       available::DOUBLE AS available
                FROM {reader}
            )
            SELECT * FROM r WHERE CASE WHEN {_fast_checks()} THEN error('bad row') ELSE true END""")
    except duckdb.Error as exc:  # a cast failed or a check raised: the exact path names the row
        raise _NeedExactPath from exc
    same = " AND ".join(f"min({c}) IS NOT DISTINCT FROM max({c})"
                        for c in ("provider", "region", "zone", "instance_type", "kind"))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE fast_keys AS
        WITH raw AS (
            SELECT h, {same} AS one_key, any_value(provider) AS provider, any_value(region) AS region,
                   any_value(zone) AS zone, any_value(instance_type) AS instance_type, any_value(kind) AS kind,
                   any_value(gpu_type) AS gpu_type, any_value(gpus)::INTEGER AS gpus
            FROM fast GROUP BY h
        ), named AS (
            SELECT h, one_key, trim(provider) AS provider, trim(region) AS region,
                   trim(coalesce(nullif(trim(zone), ''), region)) AS location, trim(instance_type) AS instance_type,
                   kind, nullif(trim(gpu_type), '') AS gpu, gpus
            FROM raw
        )
        SELECT *, provider || ':' || location || ':' || instance_type || ':' || kind AS market FROM named""")
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    bad_keys = con.execute(f"""
        SELECT count(*) FROM fast_keys WHERE NOT one_key OR coalesce(provider, '') = '' OR
            coalesce(location, '') = '' OR coalesce(instance_type, '') = '' OR kind IS NULL OR kind NOT IN ({kinds})
    """).fetchone()[0]
    if bad_keys:
        raise _NeedExactPath  # a missing key field (or a 64-bit hash collision): the exact path names it


def _fast_checks() -> str:
    """Per-row checks on typed values (key fields are checked once per distinct key; prices already filled)."""
    return " OR ".join([
        "ts IS NULL", "isnan(price) OR isinf(price) OR price < 0",
        "price IS NULL AND NOT (kind = 'spot' AND available IS NOT NULL)",
        "available < 0 OR isinf(available) OR available <> floor(available)", "gpus < 0 OR isinf(gpus)",
    ])


def _ingest_fast(con: duckdb.DuckDBPyConnection, path: Path, fmt: str,
                 opts: formats.StageOptions) -> tuple[int, int, list[str]]:
    """(rows read, rows added, markets touched) of one well-formed normalized file; _NeedExactPath otherwise."""
    _fast_normalized(con, path, fmt, opts.price)
    markets = _upsert_markets(con, "fast_keys")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE incoming AS
        SELECT m.market_id, f.ts, f.price, f.available::INTEGER AS available, NULL::BIGINT AS ord
        FROM fast f JOIN (SELECT h, market_id FROM fast_keys JOIN markets USING (market)) m USING (h)
    """)
    if con.execute("SELECT count(*) FROM (SELECT 1 FROM incoming GROUP BY market_id, ts HAVING count(*) > 1)"
                   ).fetchone()[0]:
        raise _NeedExactPath  # the same (market, ts) twice in the file: the exact path names the lines
    stored = con.execute("SELECT count(*) FROM prices WHERE market_id IN (SELECT market_id FROM markets "
                         "JOIN fast_keys USING (market))").fetchone()[0]
    if stored == 0:
        con.execute("INSERT INTO prices SELECT market_id, ts, price, available FROM incoming")
        added = con.execute("SELECT count(*) FROM incoming").fetchone()[0]
    else:
        added = _merge_prices(con, path, fmt)
    return con.execute("SELECT count(*) FROM fast").fetchone()[0], added, markets


def _ingest_prices(con: duckdb.DuckDBPyConnection, path: Path, fmt: str,
                   opts: formats.StageOptions) -> tuple[int, int, list[str]]:
    """(rows read, rows added, markets touched) of one price file on the exact path, which names bad rows."""
    try:
        _stage(con, path, fmt, opts)
    except duckdb.Error as exc:
        raise AdvisorError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
    hit = _first_bad(con, "stage", _price_checks(opts.price))
    if hit:
        _raise_bad(con, path, fmt, "stage", hit)
    _type_stage(con, opts.price)
    _check_in_file_conflicts(con, path, fmt)
    markets = _upsert_markets(con)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE incoming AS
        SELECT m.market_id, g.ts, g.price, g.available, g.ord FROM grouped g JOIN markets m USING (market)
    """)
    added = _merge_prices(con, path, fmt)
    return con.execute("SELECT count(*) FROM stage").fetchone()[0], added, markets


def ingest_files(con: duckdb.DuckDBPyConnection, paths: list[str | Path], fmt: str | None = None,
                 opts: formats.StageOptions | None = None,
                 on_file: Callable[[Path], None] | None = None, exact: bool = False) -> IngestResult:
    """Ingest every file in one transaction; any bad row in any file raises and loads nothing.

    Args:
        con: a writable store connection.
        paths: files to load; each file's format is detected unless `fmt` is given.
        fmt: one of `formats.FORMATS` to override detection.
        opts: options some formats need (`--price`, `--provider`, `--at`).
        on_file: called after each file (progress bars).
        exact: skip the typed fast path (same result, slower; for checking one against the other).
    Raises:
        InputError: a bad row (names file, line or record, field, value); AdvisorError for unreadable files.
    """
    opts = opts or formats.StageOptions()
    if exact:
        return _ingest_all(con, paths, fmt, opts, on_file, exact=True)
    con.execute("SET preserve_insertion_order = false")  # row order matters only to the exact path's messages
    try:
        return _ingest_all(con, paths, fmt, opts, on_file, exact=False)
    except (_NeedExactPath, AdvisorError):
        pass  # rerun in file order, so the error names the first bad row
    finally:
        con.execute("RESET preserve_insertion_order")
    return _ingest_all(con, paths, fmt, opts, on_file, exact=True)


def _ingest_all(con: duckdb.DuckDBPyConnection, paths: list[str | Path], fmt: str | None,
                opts: formats.StageOptions, on_file: Callable[[Path], None] | None, exact: bool) -> IngestResult:
    result = IngestResult()
    con.execute("BEGIN TRANSACTION")
    try:
        for raw in paths:
            path = Path(raw)
            if not path.is_file():
                raise AdvisorError(f"{path}: no such file")
            kind = fmt or formats.detect_format(path)
            digest = _HASHER.submit(_sha256, path)
            if kind == "offers":
                rows_read, added = ingest_offers(con, path)
                result.offers_added += added
            else:
                load = _ingest_fast if (kind in ("csv", "parquet") and not exact) else _ingest_prices
                rows_read, added, markets = load(con, path, kind, opts)
                result.rows_read += rows_read
                result.rows_added += added
                result.markets += markets
            con.execute("INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?)",
                        [str(path.resolve()), digest.result(), kind, rows_read, added,
                         datetime.now(UTC).replace(tzinfo=None)])
            result.files.append(str(path))
            if on_file:
                on_file(path)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return result


def _offers_frame(path: Path) -> pd.DataFrame:
    """Offers as text columns, with `line` (CSV) or `rec` (YAML) naming each row in messages."""
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise AdvisorError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        rows = doc.get("offers", doc) if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise AdvisorError(f"{path}: expected a list of offers (or a mapping with key 'offers')")
        frame = pd.DataFrame([{k: (None if v is None else str(v)) for k, v in r.items()} for r in rows])
        return frame.assign(line=None, rec=[f"offers[{i}]" for i in range(len(rows))])
    frame = duckdb.sql(f"SELECT * FROM read_csv({formats._q(path)}, all_varchar=true, header=true)").df()
    return frame.assign(line=range(2, len(frame) + 2), rec=None)


def ingest_offers(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int]:
    """Load reservation offers (CSV or YAML); returns (rows read, offers added). Call inside a transaction."""
    frame = _offers_frame(path)
    for col in (*formats.OFFER_COLUMNS, "ts"):
        if col not in frame.columns:
            if col in ("min_hours", "max_hours", "ts"):
                frame[col] = {"min_hours": "3", "max_hours": "336", "ts": "1970-01-01T00:00:00Z"}[col]
            else:
                raise AdvisorError(f"{path}:1: missing column {col}")
    frame = frame[[*formats.OFFER_COLUMNS, "ts", "line", "rec"]].astype(object)
    con.register("offer_frame", frame)
    con.execute("CREATE OR REPLACE TEMP TABLE offer_stage AS SELECT * FROM offer_frame")
    con.unregister("offer_frame")
    checks = [(c, _blank(c), "missing") for c in ("provider", "location", "instance_type", "tier")]
    checks.append(("tier", "tier NOT IN ('high', 'low')", "not one of high, low"))
    for c in ("unit_price", "pause_credit", "return_credit", "min_hours", "max_hours"):
        checks += [(c, _blank(c), "missing"), *_number_checks(c, c)]
    checks += [
        ("ts", "TRY_CAST(ts AS TIMESTAMPTZ) IS NULL", "not an ISO-8601 timestamp"),
        ("pause_credit", "TRY_CAST(pause_credit AS DOUBLE) > TRY_CAST(unit_price AS DOUBLE)", "exceeds unit_price"),
        ("return_credit", "TRY_CAST(return_credit AS DOUBLE) > TRY_CAST(unit_price AS DOUBLE)",
         "exceeds unit_price"),
        ("max_hours", "TRY_CAST(max_hours AS DOUBLE) < TRY_CAST(min_hours AS DOUBLE)", "below min_hours"),
    ]
    hit = _first_bad(con, "offer_stage", checks)
    if hit:
        _raise_bad(con, path, "offers", "offer_stage", hit)
    typed = """SELECT trim(provider) p, trim(location) l, trim(instance_type) it, tier,
                      TRY_CAST(ts AS TIMESTAMPTZ)::TIMESTAMP ts, unit_price::DOUBLE u, pause_credit::DOUBLE pc,
                      return_credit::DOUBLE rc, min_hours::DOUBLE::INTEGER mn, max_hours::DOUBLE::INTEGER mx,
                      line, rec FROM offer_stage"""
    clash = con.execute(f"""
        SELECT n.line, n.rec, n.u, o.unit_price FROM ({typed}) n JOIN reservation_offers o
          ON o.provider = n.p AND o.location = n.l AND o.instance_type = n.it AND o.tier = n.tier AND o.ts = n.ts
        WHERE (o.unit_price, o.pause_credit, o.return_credit, o.min_hours, o.max_hours)
              IS DISTINCT FROM (n.u, n.pc, n.rc, n.mn, n.mx) LIMIT 1""").fetchone()
    if clash:
        raise InputError(str(path), _where(clash[0], clash[1]), "unit_price", clash[2],
                         f"this offer is stored with unit_price {clash[3]}")
    before = con.execute("SELECT count(*) FROM reservation_offers").fetchone()[0]
    con.execute(f"""
        INSERT INTO reservation_offers
        SELECT DISTINCT n.p, n.l, n.it, n.tier, n.ts, n.u, n.pc, n.rc, n.mn, n.mx FROM ({typed}) n
        WHERE NOT EXISTS (SELECT 1 FROM reservation_offers o WHERE o.provider = n.p AND o.location = n.l
                          AND o.instance_type = n.it AND o.tier = n.tier AND o.ts = n.ts)""")
    added = con.execute("SELECT count(*) FROM reservation_offers").fetchone()[0] - before
    return len(frame), added
