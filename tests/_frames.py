"""Compare what the CLI or the API answered with the engine's frame, column by column, exactly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


def rows_of(frame: pd.DataFrame, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``frame``'s rows as dicts of ``fields``: NaN, inf and missing as None, numpy scalars as Python values."""
    return [
        {k: _plain(v) for k, v in zip(fields, row, strict=True)}
        for row in frame[list(fields)].itertuples(index=False, name=None)
    ]
