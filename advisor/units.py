"""Units the interfaces accept and print: ISO-8601 UTC timestamps, durations like `36h`, `14d`, dollar amounts."""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw]?)\s*$")


def parse_duration_hours(text: str | float | int) -> float:
    """Hours in a duration such as `36h`, `14d`, `2w` or a bare number of hours."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; use e.g. 36h, 14d or 2w")
    value, unit = float(match.group(1)), match.group(2) or "h"
    return value * {"h": 1, "d": 24, "w": 168}[unit]


def parse_ts(text: str | datetime | pd.Timestamp) -> pd.Timestamp:
    """A timestamp as naive UTC (the store's convention); naive input is taken as UTC."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{text!r} is not an ISO-8601 timestamp, e.g. 2026-05-01T00:00:00Z") from exc
    if ts is pd.NaT:
        raise ValueError(f"{text!r} is not an ISO-8601 timestamp, e.g. 2026-05-01T00:00:00Z")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


def hour_after(ts: str | datetime | pd.Timestamp) -> pd.Timestamp:
    """The forecast origin after a record at `ts`: the start of the next hour (a live view of the latest data)."""
    return pd.Timestamp(ts).floor("h") + pd.Timedelta(hours=1)


def format_usd(amount: float) -> str:
    """Dollars, with cents below $100 (a $3.48 job must not print as $3 beside a $4 mean)."""
    return f"${amount:,.0f}" if abs(amount) >= 100 else f"${amount:,.2f}"
