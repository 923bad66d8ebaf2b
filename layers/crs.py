"""CRS rules: the storage CRS, choosing a metric CRS, and CRS checks at the door.

Areas and distances are always measured in an explicit metric CRS. When the caller
does not give one, :func:`metric_crs` picks the CGCS2000 3-degree Gauss–Krüger zone
for data in China and the WGS-84 UTM zone elsewhere.
"""

from __future__ import annotations

import math

import numpy as np

from pyproj import CRS
from pyproj.exceptions import CRSError as _PyprojCRSError

from layers.errors import CRSError
from layers.schema import EQUIVALENT_GEOGRAPHIC_CRS

__all__ = ["CHINA_BOUNDS", "ensure_crs", "is_storage_crs", "metric_crs", "to_crs_object"]

CHINA_BOUNDS = (73.5, 18.0, 135.1, 53.6)
"""Rough lon/lat box of mainland China (minx, miny, maxx, maxy), used to pick GK zones."""


def to_crs_object(crs: object, *, what: str = "crs") -> CRS:
    """Parse anything pyproj understands into a :class:`pyproj.CRS`.

    Raises
    ------
    CRSError
        If ``crs`` is missing or not understood, naming the value seen.

    Examples
    --------
    >>> to_crs_object("EPSG:4326").to_epsg()
    4326
    """
    if crs is None:
        msg = f"{what} is missing: pass crs='EPSG:4326' (or the CRS your data is in)"
        raise CRSError(msg)
    try:
        return CRS.from_user_input(crs)
    except _PyprojCRSError as err:
        msg = f"{what} {crs!r} is not a CRS pyproj understands: give an EPSG code such as 'EPSG:4326'"
        raise CRSError(msg) from err


def is_storage_crs(crs: object) -> bool:
    """Return whether ``crs`` is WGS-84 or CGCS2000 geographic (the storage CRS).

    Examples
    --------
    >>> is_storage_crs("EPSG:4490"), is_storage_crs("EPSG:3857")
    (True, False)
    """
    if crs is None:
        return False
    c = to_crs_object(crs)
    return any(c.equals(CRS.from_user_input(e), ignore_axis_order=True) for e in EQUIVALENT_GEOGRAPHIC_CRS)


def ensure_crs(crs: object, *, what: str = "layer") -> CRS:
    """Return ``crs`` as a pyproj CRS or raise a CRSError that says how to fix it."""
    if crs is None:
        msg = (
            f"{what} has no CRS: geogrid will not guess. Set it with "
            "gdf.set_crs('EPSG:4326') or pass --crs EPSG:4326 (or the CRS the file is in)"
        )
        raise CRSError(msg)
    return to_crs_object(crs, what=f"{what} CRS")


def metric_crs(lon: float, lat: float) -> CRS:
    """Choose a metric CRS for measurements around (lon, lat).

    In China this is the CGCS2000 3-degree Gauss–Krüger zone (EPSG:4534–4554, no
    zone prefix in the false easting); elsewhere the WGS-84 UTM zone.

    Parameters
    ----------
    lon, lat
        A representative point in degrees (e.g. the centre of the data).

    Returns
    -------
    pyproj.CRS

    Raises
    ------
    CRSError
        If the point is not a valid lon/lat (NaN or outside ±180/±90).

    Examples
    --------
    >>> metric_crs(117.2, 39.1).to_epsg()  # Tianjin
    4548
    >>> metric_crs(2.35, 48.85).to_epsg()  # Paris
    32631
    """
    if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        msg = f"cannot choose a metric CRS for lon={lon}, lat={lat}: not a valid lon/lat"
        raise CRSError(msg)
    minx, miny, maxx, maxy = CHINA_BOUNDS
    if minx <= lon <= maxx and miny <= lat <= maxy:
        cm = round(lon / 3.0) * 3
        cm = min(max(cm, 75), 135)
        return CRS.from_epsg(4534 + (cm - 75) // 3)
    zone = math.floor((lon + 180) / 6) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
