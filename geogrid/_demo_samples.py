"""The README tour's sample inputs, cut from the demo district: files as they arrive in practice.

- ``bad.gpkg``: the demo network (grids only) with planted defects — one basic grid moved
  3 m (an overlap with its neighbours and a gap behind it), one basic grid deleted (a gap
  in its community) and one grid whose boundary crosses itself (an invalid polygon);
- ``网格.shp``: the sound network as a Shapefile with Chinese column names (网格编码,
  上级编码, 层级, 名称, 户数, 人口) encoded in GBK, with no ``.cpg`` and no code page in the
  ``.dbf``: as exported by many Chinese desktop tools (read it with ``--encoding gbk``);
- ``事件.csv``: incidents with Chinese column names (编号, 上报时间, 结案时间, 类别, 来源,
  状态, 描述, 经度, 纬度), coordinates in GCJ-02 (as digitised on Gaode/AMap) and local
  times written without a zone (Asia/Shanghai).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

import geopandas as gpd
import pyogrio
import shapely

from layers.datum import wgs84_to_gcj02

__all__ = ["SAMPLE_FILES", "write_samples"]

SAMPLE_FILES = ("bad.gpkg", "网格.shp", "事件.csv")
"""The files :func:`write_samples` writes (a Shapefile also has its .shx, .dbf and .prj)."""

_GRID_COLUMNS = {
    "grid_id": "网格编码",
    "parent_id": "上级编码",
    "level": "层级",
    "name": "名称",
    "households": "户数",
    "population": "人口",
}
_INCIDENT_COLUMNS = {
    "incident_id": "编号",
    "reported_at": "上报时间",
    "closed_at": "结案时间",
    "category": "类别",
    "source": "来源",
    "status": "状态",
    "description": "描述",
}
_N_INCIDENTS = 2_000
_MOVE_M = 3.0


def _bad_network(grids: gpd.GeoDataFrame, metric_epsg: int) -> gpd.GeoDataFrame:
    """Return the grids with three planted defects (moved, deleted, self-crossing), in EPSG:4326."""
    bad = grids.to_crs(metric_epsg).reset_index(drop=True)
    leaves = bad.index[bad["level"] == bad["level"].max()]
    moved, deleted, crossed = leaves[10], leaves[500], leaves[800]
    bad.loc[moved, "geometry"] = shapely.affinity.translate(bad.geometry[moved], xoff=_MOVE_M)
    # A bow-tie: swap two neighbouring vertices of the ring, so the boundary crosses itself.
    ring = np.asarray(shapely.get_coordinates(shapely.get_exterior_ring(bad.geometry[crossed])))
    ring[[1, 2]] = ring[[2, 1]]
    ring[-1] = ring[0]
    bad.loc[crossed, "geometry"] = shapely.Polygon(ring)
    bad = bad.drop(index=deleted)
    return bad.to_crs(4326)


def _gbk_shapefile(grids: gpd.GeoDataFrame, path: Path) -> None:
    """Write ``grids`` as a GBK Shapefile with Chinese column names and no code page anywhere."""
    out = grids[[*_GRID_COLUMNS, "geometry"]].rename(columns=_GRID_COLUMNS)
    out["层级"] = out["层级"].astype("int32")
    for col in ("户数", "人口"):
        out[col] = out[col].astype("int64")
    out["上级编码"] = out["上级编码"].astype(object).where(out["上级编码"].notna(), None)
    pyogrio.write_dataframe(out, path, encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    # Byte 29 of the .dbf header is the language driver id (a code page): clear it, as the
    # tools that write such files do, so nothing in the file names its encoding.
    with path.with_suffix(".dbf").open("r+b") as dbf:
        dbf.seek(29)
        dbf.write(b"\x00")


def _gcj02_csv(incidents: gpd.GeoDataFrame, path: Path, seed: int, tz: str) -> None:
    """Write a sample of ``incidents`` as a CSV in GCJ-02 with local times and Chinese column names."""
    rng = np.random.default_rng([seed, 3])
    n = min(_N_INCIDENTS, len(incidents))
    picked = incidents.iloc[np.sort(rng.choice(len(incidents), size=n, replace=False))]
    frame = pd.DataFrame({c: picked[c].to_numpy() for c in _INCIDENT_COLUMNS})
    for col in ("reported_at", "closed_at"):
        local = pd.to_datetime(picked[col]).dt.tz_convert(tz).dt.tz_localize(None)
        frame[col] = local.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy()
    frame = frame.rename(columns=_INCIDENT_COLUMNS)
    lon, lat = wgs84_to_gcj02(picked.geometry.x.to_numpy(), picked.geometry.y.to_numpy())
    frame["经度"] = np.round(lon, 6)
    frame["纬度"] = np.round(lat, 6)
    frame.to_csv(path, index=False, encoding="utf-8")


def write_samples(
    directory: str | os.PathLike[str],
    grids: gpd.GeoDataFrame,
    incidents: gpd.GeoDataFrame,
    *,
    seed: int,
    metric_epsg: int,
    tz: str,
) -> list[Path]:
    """Write the tour's sample inputs (:data:`SAMPLE_FILES`) into ``directory``; return their paths."""
    from layers.store import GeoPackageStore

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    bad, shp, csv = (out / name for name in SAMPLE_FILES)
    for stale in (bad, *(shp.with_suffix(s) for s in (".shp", ".shx", ".dbf", ".prj", ".cpg"))):
        stale.unlink(missing_ok=True)
    GeoPackageStore(bad).write({"grids": _bad_network(grids, metric_epsg)})
    _gbk_shapefile(grids, shp)
    _gcj02_csv(incidents, csv, seed, tz)
    return [bad, shp, csv]
