"""One time convention for every time filter: dates and zone-less times in the store's time zone.

Every command, function, endpoint and map that selects incidents by time reads its bounds
here, so that the same words select the same incidents everywhere:

* a date (``2025-12-01``; GDAL also sends ``2025-12-01T``) is the whole day in the store's
  time zone: as a start it begins the day, as an end it includes the day;
* a time without a zone (``2025-12-01T08:00``, ``2025-12-01 08:00:00``, as QGIS sends it)
  is a time in the store's time zone; a time with ``Z`` or an offset is that instant; an
  end time is included;
* ``..`` or an empty end is open;
* underneath, a window is half-open in UTC: ``start <= t < end``.

The store's time zone is its metadata key ``time_zone`` (an IANA name), else
:data:`DEFAULT_TZ` (Asia/Shanghai: the platform serves Chinese cities).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_TZ", "in_window", "parse_interval", "parse_time", "store_time_zone", "time_window"]

DEFAULT_TZ = "Asia/Shanghai"
"""The time zone of dates and zone-less times when the store does not name one."""

_DAY = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})T?\s*$")
_ONE_NS = pd.Timedelta(1, "ns")


def store_time_zone(metadata: Mapping[str, Any] | None) -> str:
    """Return the store's time zone: metadata ``time_zone``, else :data:`DEFAULT_TZ`.

    Examples
    --------
    >>> store_time_zone({}), store_time_zone({"time_zone": "UTC"})
    ('Asia/Shanghai', 'UTC')
    """
    tz = (metadata or {}).get("time_zone")
    return str(tz) if tz else DEFAULT_TZ


def parse_time(value: Any, tz: str = DEFAULT_TZ, *, end: bool = False, what: str = "time") -> pd.Timestamp | None:
    """Return the UTC bound a date or time stands for (None for an open end).

    Parameters
    ----------
    value
        A date (``str`` ``YYYY-MM-DD`` or ``YYYY-MM-DDT``, or :class:`datetime.date`), a time
        (ISO 8601 text, :class:`datetime.datetime`, :class:`pandas.Timestamp`), or None,
        ``""``, ``".."``.
    tz
        The time zone of dates and zone-less times.
    end
        An end bound: the first instant after the day named, or just after the time named
        (windows are half-open, ends inclusive of what they name).
    what
        The parameter's name, for the error message.

    Raises
    ------
    ValueError
        Not a date or time, or a time that does not exist in ``tz``.

    Examples
    --------
    >>> parse_time("2025-12-01")
    Timestamp('2025-11-30 16:00:00+0000', tz='UTC')
    >>> parse_time("2025-12-01", end=True)
    Timestamp('2025-12-01 16:00:00+0000', tz='UTC')
    >>> parse_time("2025-12-01T08:00:00Z")
    Timestamp('2025-12-01 08:00:00+0000', tz='UTC')
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "..")):
        return None
    day: dt.date | None = None
    if isinstance(value, str) and (m := _DAY.match(value)):
        try:
            day = dt.date.fromisoformat(m.group(1))
        except ValueError as err:
            msg = f"{what}={value!r} is not a date: write YYYY-MM-DD (a whole day in {tz})"
            raise ValueError(msg) from err
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        day = value
    try:
        if day is not None:
            ts = pd.Timestamp(day + dt.timedelta(days=1) if end else day).tz_localize(tz)
        else:
            ts = pd.Timestamp(value.strip() if isinstance(value, str) else value)
            if ts is pd.NaT:
                raise ValueError(value)
            if ts.tzinfo is None:
                ts = ts.tz_localize(tz, ambiguous="raise", nonexistent="raise")
            if end:
                ts = ts + _ONE_NS
    except (ValueError, TypeError, OverflowError) as err:
        msg = (
            f"{what}={value!r} is not a date or time: write YYYY-MM-DD (a whole day in {tz}) "
            "or an ISO 8601 time such as 2025-12-01T08:00 (in that zone) or 2025-12-01T00:00Z"
        )
        raise ValueError(msg) from err
    return ts.tz_convert("UTC")


def time_window(since: Any, until: Any, tz: str = DEFAULT_TZ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Return the half-open UTC window ``[start, end)`` of ``since``/``until`` (both inclusive of what they name).

    Raises
    ------
    ValueError
        A bound is not a date or time, or ``until`` comes before ``since``.

    Examples
    --------
    >>> [t.isoformat() for t in time_window("2025-12-01", "2025-12-01")]
    ['2025-11-30T16:00:00+00:00', '2025-12-01T16:00:00+00:00']
    """
    start = parse_time(since, tz, what="since")
    end = parse_time(until, tz, end=True, what="until")
    if start is not None and end is not None and end <= start:
        msg = f"until ({until}) is before since ({since}): the window is empty"
        raise ValueError(msg)
    return start, end


def parse_interval(value: str, tz: str = DEFAULT_TZ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse an OGC API ``datetime``: an instant or ``start/end`` with ``..`` open, into ``[start, end)`` UTC.

    A date instant is that whole day; a time instant is that instant. Dates and times
    without a zone are in ``tz``; GDAL's ``2025-12-01T/..`` is a date.

    Raises
    ------
    ValueError
        Not an instant or interval, or an interval that starts after it ends.

    Examples
    --------
    >>> parse_interval("2025-12-01T/..")
    (Timestamp('2025-11-30 16:00:00+0000', tz='UTC'), None)
    """
    parts = value.split("/")
    if len(parts) == 1:
        if parts[0].strip() in ("", ".."):
            msg = f"datetime={value!r}: an instant must be a date or date-time; for all times omit the parameter"
            raise ValueError(msg)
        return parse_time(parts[0], tz, what="datetime"), parse_time(parts[0], tz, end=True, what="datetime")
    if len(parts) != 2:
        msg = f"datetime={value!r} is neither an instant nor an interval start/end"
        raise ValueError(msg)
    start = parse_time(parts[0], tz, what="datetime")
    end = parse_time(parts[1], tz, end=True, what="datetime")
    if start is not None and end is not None and end <= start:
        msg = f"datetime={value!r} starts after it ends"
        raise ValueError(msg)
    return start, end


def in_window(times: pd.Series, start: pd.Timestamp | None, end: pd.Timestamp | None) -> np.ndarray:
    """Boolean mask of ``start <= t < end`` (missing times are outside every bounded window)."""
    t = pd.to_datetime(times, utc=True)
    keep = np.ones(len(t), dtype=bool)
    if start is not None:
        keep &= (t >= start).fillna(False).to_numpy(dtype=bool)
    if end is not None:
        keep &= (t < end).fillna(False).to_numpy(dtype=bool)
    return keep
