"""Chinese map datums: GCJ-02 ("Mars coordinates") and BD-09, to and from WGS-84.

Maps of Chinese providers (Gaode/AMap, Tencent, Google China: GCJ-02; Baidu: BD-09)
shift WGS-84 coordinates by 250–600 m with a published obfuscation formula. Data
digitised on those maps arrives in their datum; geogrid stores WGS-84, so importers
convert at the door.

All functions take array-likes (or scalars) of longitudes and latitudes in degrees
and return two ``float64`` numpy arrays of the same shape; NaN in gives NaN out.
The forward transforms are the published closed formulas (Krasovsky 1940 ellipsoid,
a = 6378245 m, e² = 0.00669342162296594323). The inverses have no closed form and
are computed by fixed-point iteration on the forward transform until every point
moves less than ``tol`` degrees (default 1e-9°, about 0.1 mm) or ``max_iter``
iterations have run; the round-trip error is then far below 1 cm.

**Outside China GCJ-02 equals WGS-84.** The usual rule of the reference
implementations (eviltransform, coordtransform) is applied: a point whose
longitude is outside [72.004, 137.8347] or latitude outside [0.8293, 55.8271] is not
shifted. BD-09 is defined on top of GCJ-02, so outside that box BD-09 is WGS-84 plus
the (small, ~0.006°) Baidu offset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHINA_GCJ_BOX",
    "DATUMS",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

ArrayLike = npt.ArrayLike
Pair = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]

DATUMS = ("wgs84", "gcj02", "bd09")
"""The datums importers accept (``--datum``)."""

CHINA_GCJ_BOX = (72.004, 0.8293, 137.8347, 55.8271)
"""(min lon, min lat, max lon, max lat) inside which GCJ-02 shifts coordinates."""

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> Pair:
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> npt.NDArray[np.bool_]:
    """Return where GCJ-02 does not shift (outside :data:`CHINA_GCJ_BOX`).

    Examples
    --------
    >>> out_of_china([117.2, 2.35], [39.1, 48.85]).tolist()
    [False, True]
    """
    x, y = _as_arrays(lon, lat)
    minx, miny, maxx, maxy = CHINA_GCJ_BOX
    with np.errstate(invalid="ignore"):
        return np.asarray(~((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)))


def _delta(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Pair:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS-84 (x, y); zero outside China."""
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, quietly: NaN/inf in, NaN out
        return _delta_raw(x, y)


def _delta_raw(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Pair:
    dx = x - 105.0
    dy = y - 35.0
    t_lat = (
        -100.0
        + 2.0 * dx
        + 3.0 * dy
        + 0.2 * dy * dy
        + 0.1 * dx * dy
        + 0.2 * np.sqrt(np.abs(dx))
        + (20.0 * np.sin(6.0 * dx * np.pi) + 20.0 * np.sin(2.0 * dx * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(dy * np.pi) + 40.0 * np.sin(dy / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(dy / 12.0 * np.pi) + 320.0 * np.sin(dy * np.pi / 30.0)) * 2.0 / 3.0
    )
    t_lon = (
        300.0
        + dx
        + 2.0 * dy
        + 0.1 * dx * dx
        + 0.1 * dx * dy
        + 0.1 * np.sqrt(np.abs(dx))
        + (20.0 * np.sin(6.0 * dx * np.pi) + 20.0 * np.sin(2.0 * dx * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(dx * np.pi) + 40.0 * np.sin(dx / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(dx / 12.0 * np.pi) + 300.0 * np.sin(dx / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad = y / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (t_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (t_lon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    outside = out_of_china(x, y)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Shift WGS-84 lon/lat (degrees) to GCJ-02.

    Examples
    --------
    >>> x, y = wgs84_to_gcj02([117.2], [39.1])
    >>> bool(0.001 < x[0] - 117.2 < 0.01)
    True
    >>> wgs84_to_gcj02(2.35, 48.85)  # outside China: unchanged
    (array(2.35), array(48.85))
    """
    x, y = _as_arrays(lon, lat)
    dlon, dlat = _delta(x, y)
    return np.asarray(x + dlon), np.asarray(y + dlat)


def _invert(
    forward: Callable[[ArrayLike, ArrayLike], Pair], lon: ArrayLike, lat: ArrayLike, tol: float, max_iter: int
) -> Pair:
    """Solve forward(w) = target for w by fixed-point iteration (the Jacobian is ~identity)."""
    tx, ty = _as_arrays(lon, lat)
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, quietly: non-finite in, NaN out
        fx, fy = forward(tx, ty)
        wx, wy = tx - (fx - tx), ty - (fy - ty)
        for _ in range(max_iter):
            fx, fy = forward(wx, wy)
            ex, ey = fx - tx, fy - ty
            wx = wx - ex
            wy = wy - ey
            worst = np.nanmax(np.abs(np.concatenate([ex.ravel(), ey.ravel()])), initial=0.0)
            if worst < tol:
                break
    return np.asarray(wx), np.asarray(wy)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-9, max_iter: int = 30) -> Pair:
    """Convert GCJ-02 lon/lat (degrees) to WGS-84 (iterative inverse, see the module notes).

    Examples
    --------
    >>> x, y = wgs84_to_gcj02([117.2], [39.1])
    >>> bx, by = gcj02_to_wgs84(x, y)
    >>> bool(abs(bx[0] - 117.2) < 1e-9 and abs(by[0] - 39.1) < 1e-9)
    True
    """
    return _invert(wgs84_to_gcj02, lon, lat, tol, max_iter)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Shift GCJ-02 lon/lat (degrees) to Baidu's BD-09.

    Examples
    --------
    >>> x, y = gcj02_to_bd09([117.2], [39.1])
    >>> round(float(x[0] - 117.2), 4), round(float(y[0] - 39.1), 4)
    (0.0065, 0.0058)
    """
    x, y = _as_arrays(lon, lat)
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, quietly
        z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
        theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
        return np.asarray(z * np.cos(theta) + 0.0065), np.asarray(z * np.sin(theta) + 0.006)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-9, max_iter: int = 30) -> Pair:
    """Convert BD-09 lon/lat (degrees) to GCJ-02 (iterative inverse).

    Examples
    --------
    >>> x, y = gcj02_to_bd09([117.2], [39.1])
    >>> bx, by = bd09_to_gcj02(x, y)
    >>> bool(abs(bx[0] - 117.2) < 1e-9 and abs(by[0] - 39.1) < 1e-9)
    True
    """
    return _invert(gcj02_to_bd09, lon, lat, tol, max_iter)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """Shift WGS-84 lon/lat (degrees) to BD-09 (through GCJ-02).

    Examples
    --------
    >>> x, y = wgs84_to_bd09([117.2], [39.1])
    >>> bool(0.005 < x[0] - 117.2 < 0.02)
    True
    """
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike, *, tol: float = 1e-9, max_iter: int = 30) -> Pair:
    """Convert BD-09 lon/lat (degrees) to WGS-84 (both inverses iterative).

    Examples
    --------
    >>> x, y = wgs84_to_bd09([117.2], [39.1])
    >>> bx, by = bd09_to_wgs84(x, y)
    >>> bool(abs(bx[0] - 117.2) < 1e-8 and abs(by[0] - 39.1) < 1e-8)
    True
    """
    gx, gy = bd09_to_gcj02(lon, lat, tol=tol, max_iter=max_iter)
    return gcj02_to_wgs84(gx, gy, tol=tol, max_iter=max_iter)


def to_wgs84(lon: ArrayLike, lat: ArrayLike, datum: str) -> Pair:
    """Convert lon/lat in ``datum`` (``"wgs84"``, ``"gcj02"`` or ``"bd09"``) to WGS-84.

    Raises
    ------
    ValueError
        If ``datum`` is not one of :data:`DATUMS`.

    Examples
    --------
    >>> to_wgs84([117.2], [39.1], "wgs84")
    (array([117.2]), array([39.1]))
    """
    d = str(datum).lower().replace("-", "").replace("_", "")
    if d == "wgs84":
        return _as_arrays(lon, lat)
    if d == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if d == "bd09":
        return bd09_to_wgs84(lon, lat)
    msg = f"unknown datum {datum!r}: use one of {', '.join(DATUMS)}"
    raise ValueError(msg)
