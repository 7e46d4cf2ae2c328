"""Which database a command uses: `--db`, else `ADVISOR_DB`, else the embedded demo database.

The demo database is built from the committed `data/demo/*.csv*` on first use (atomically: built aside, then
renamed into place) and rebuilt when those files change, so `advisor` works with no step after install.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb

from advisor.store.ingest import _sha256, ingest_files
from advisor.store.schema import connect

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
DEMO_DIR = DATA_DIR / "demo"
DEMO_FILES = ("prices.csv.gz", "offers.csv")


def demo_sources(directory: Path = DEMO_DIR) -> list[Path]:
    """The committed demo files, in ingest order."""
    return [directory / name for name in DEMO_FILES]


def _is_current(db: Path, sources: list[Path]) -> bool:
    if not db.exists():
        return False
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            logged = {h for (h,) in con.execute("SELECT sha256 FROM ingest_log").fetchall()}
    except duckdb.Error:
        return False
    return all(_sha256(p) in logged for p in sources)


def build_demo_db(db: Path, sources: list[Path] | None = None) -> Path:
    """(Re)build the demo database at `db` from the demo files; readers never see a half-built file."""
    sources = sources or demo_sources()
    db.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=db.name + ".", suffix=".tmp", dir=db.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        con = connect(tmp)
        try:
            ingest_files(con, sources)
        finally:
            con.close()
        tmp.replace(db)
    finally:
        tmp.unlink(missing_ok=True)
    return db


def demo_db_path() -> Path:
    """Where the embedded demo database lives: `data/demo.duckdb`, or the user cache if `data/` is read-only."""
    target = DATA_DIR / "demo.duckdb"
    if os.access(DATA_DIR, os.W_OK):
        return target
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "advisor" / "demo.duckdb"


def resolve_db(db: str | Path | None = None) -> Path:
    """The database path to use; builds the demo database when that is the one and it is missing or stale."""
    chosen = db or os.environ.get("ADVISOR_DB")
    if chosen:
        return Path(chosen)
    path = demo_db_path()
    sources = demo_sources()
    if not _is_current(path, sources):
        build_demo_db(path, sources)
    return path
