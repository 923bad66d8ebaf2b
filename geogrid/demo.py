"""The demo district: a realistic jurisdiction built deterministically from a seed.

Modelled on the figures DOMAIN.md reports for Tianjin's Hongqiao district: an irregular
outline of 23.76 km² near Tianjin, a street network, and four nested levels — 1 district,
9 streets (街道), 114 communities (社区), 990 basic grids (基础网格) — whose boundaries follow
the streets and nest exactly (every level a valid coverage; the children of a grid tile
it). On top of it: households, population and shops per grid, about 7,500 cameras along
the streets, and a year of incidents with daily and weekly rhythms, hot spots that
persist, emerge, fade or come and go, and closing times (about 99 % closed).

How it is built (all in the CGCS2000 Gauss–Krüger zone of Tianjin, EPSG:4548, then
stored in EPSG:4326):

1. the outline: a radial curve with a few random harmonics, scaled to exactly 23.76 km²;
2. streets: two families of wobbly roads at 70–105 m spacing, every fifth one an
   arterial, the minor roads cut into pieces of which about a fifth are dropped; noded
   with the outline and polygonized into ~2,000 blocks (a valid coverage by construction);
3. the levels, bottom up: blocks are grown into 990 contiguous basic grids balanced by
   population (seeded region growing on the block adjacency graph), grids into 114
   communities and communities into 9 streets, preferring to put boundaries on arterials;
   each grid is the coverage union of its blocks, so shared edges carry the same vertices;
4. cameras sampled along streets (more on arterials), incidents from a population-driven
   background plus hot spots with stated time profiles (``metadata["demo_hotspots"]``
   holds the truth, so hot-spot analyses can be tested against it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import geopandas as gpd
import shapely
from pyproj import Transformer

from geogrid._demo_buildings import _buildings
from geogrid._demo_city import (
    AREA_M2,
    CENTRE_LONLAT,
    DISTRICT_NAME,
    METRIC_EPSG,
    _adjacency,
    _blocks,
    _build_grids,
    _Density,
    _outline,
    _round_to_total,
    _street_layer,
    _streets,
)
from geogrid._demo_events import TZ, YEAR, _cameras, _incidents
from layers.schema import CAMERAS, GRIDS, INCIDENTS, STORAGE_CRS, coerce_dtypes
from layers.store import GeoPackageStore, file_lock

__all__ = [
    "DEMO_VERSION",
    "METRIC_EPSG",
    "DemoDistrict",
    "build_demo",
    "demo_store",
    "write_demo",
]

DEMO_VERSION = 3
"""Bumped whenever the generator's output changes, so cached demo stores are rebuilt."""


@dataclass(frozen=True)
class DemoDistrict:
    """The layers of the demo district, in the storage CRS (EPSG:4326).

    Attributes
    ----------
    grids, incidents, cameras
        The three standard layers, in their canonical schema and dtypes.
    streets
        The street centre lines (``name``, ``road_class``: arterial / local, ``width_m``).
    buildings
        Building footprints inside the blocks, set back from the streets (``building_id``,
        ``kind``: slab / tower / low_rise, ``floors``, ``height_m``): occluders for camera views.
    metadata
        Seed, version and the planted hot spots (``demo_hotspots``).
    """

    grids: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame
    cameras: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    metadata: dict[str, Any]
    buildings: gpd.GeoDataFrame

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """Return the layers by store name."""
        return {
            "grids": self.grids,
            "incidents": self.incidents,
            "cameras": self.cameras,
            "streets": self.streets,
            "buildings": self.buildings,
        }


# -- public ------------------------------------------------------------------------------
def build_demo(
    seed: int = 0,
    *,
    n_incidents: int = 200_000,
    n_cameras: int = 7_500,
    progress: Callable[[str], None] | None = None,
) -> DemoDistrict:
    """Build the demo district in memory, deterministically from ``seed``.

    Parameters
    ----------
    seed
        Seed of every random choice: the same seed gives the same district.
    n_incidents
        Incidents over the year 2025 (Asia/Shanghai).
    n_cameras
        Cameras along the streets.
    progress
        Called with the name of each finished stage (for progress bars).

    Returns
    -------
    DemoDistrict
        Grids (1 / 9 / 114 / 990 on levels 0–3), incidents, cameras, streets and buildings in
        EPSG:4326 with the schema's dtypes, and metadata.

    Examples
    --------
    >>> demo = build_demo(seed=1, n_incidents=100, n_cameras=10)
    >>> demo.grids.groupby("level").size().tolist()
    [1, 9, 114, 990]
    >>> round(float(demo.grids.to_crs(4548).area[demo.grids.level == 0].sum()) / 1e6, 2)
    23.76
    """
    if n_incidents < 0 or n_cameras < 0:
        msg = f"n_incidents and n_cameras must be >= 0, got {n_incidents} and {n_cameras}"
        raise ValueError(msg)
    tick = progress or (lambda _stage: None)
    rng = np.random.default_rng(seed)
    to_metric = Transformer.from_crs(4326, METRIC_EPSG, always_xy=True)
    to_lonlat = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True)
    cx, cy = to_metric.transform(*CENTRE_LONLAT)
    outline = _outline(rng)
    lines, is_art = _streets(rng)
    blocks = _blocks(outline, lines)
    tick("streets and blocks")
    density = _Density.random(rng, outline)
    area = shapely.area(blocks)
    xy = shapely.get_coordinates(shapely.centroid(blocks))
    block_pop = _round_to_total(density(xy) * area, 480_000).astype(float)
    shops = rng.poisson(area / 1e6 * 400 * (0.3 + density(xy) / density(xy).max()))
    pairs, shared, arterial = _adjacency(blocks, shapely.union_all(lines[is_art]))
    grids = _build_grids(blocks, block_pop, shops, pairs, shared, arterial, rng, tick)
    cameras = _cameras(rng, outline, shapely.intersection(lines, outline), is_art, n_cameras)
    cameras = cameras[~shapely.is_empty(cameras.geometry.values)]
    tick("cameras")
    incidents, truth = _incidents(rng, outline, density, n_incidents)
    tick("incidents")
    streets = _street_layer(lines, is_art, outline, rng)
    # A generator of its own, so the other layers stay as they were before buildings existed.
    buildings = _buildings(np.random.default_rng([seed, 2]), blocks, lines, is_art)
    tick("streets and buildings")

    def place(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        moved = gdf.set_geometry(shapely.transform(gdf.geometry.values, lambda c: c + np.array([cx, cy])))
        return moved.to_crs(STORAGE_CRS)

    # The local frame is centred on (0, 0): shift to the district's place in EPSG:4548.
    incidents = place(incidents)
    for t in truth:
        lon, lat = to_lonlat.transform(t.pop("x") + cx, t.pop("y") + cy)
        t["lon"], t["lat"] = round(float(lon), 6), round(float(lat), 6)
    grids = coerce_dtypes(place(grids), GRIDS)
    incidents = coerce_dtypes(incidents, INCIDENTS)
    cameras = coerce_dtypes(place(cameras), CAMERAS)
    tick("coordinates")
    metadata = {
        "demo": {
            "seed": seed,
            "version": DEMO_VERSION,
            "name": DISTRICT_NAME,
            "area_km2": AREA_M2 / 1e6,
            "metric_crs": f"EPSG:{METRIC_EPSG}",
            "year": YEAR,
            "timezone": TZ,
        },
        "demo_hotspots": truth,
    }
    return DemoDistrict(
        grids=grids,
        incidents=incidents,
        cameras=cameras,
        streets=place(streets),
        metadata=metadata,
        buildings=place(buildings),
    )


def write_demo(
    path: str | os.PathLike[str],
    seed: int = 0,
    *,
    n_incidents: int = 200_000,
    n_cameras: int = 7_500,
    progress: Callable[[str], None] | None = None,
) -> GeoPackageStore:
    """Build the demo district and write it into the GeoPackage ``path`` (atomically).

    The file holds the layers ``grids``, ``incidents``, ``cameras``, ``streets`` and ``buildings`` and
    opens directly in QGIS. Returns the store.
    """
    demo = build_demo(seed, n_incidents=n_incidents, n_cameras=n_cameras, progress=progress)
    store = GeoPackageStore(path)
    store.write(demo.layers(), metadata=demo.metadata)
    if progress is not None:
        progress("written")
    return store


def demo_store(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return the path of the cached demo district, building it on first use.

    Parameters
    ----------
    cache_dir
        Where to keep it; default: the user cache directory (``platformdirs``), e.g.
        ``~/.cache/geogrid``.
    seed
        Seed of the demo (each seed is cached separately).
    progress
        Passed to :func:`build_demo` when the store has to be built.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/demo-v{DEMO_VERSION}-seed{seed}.gpkg``. Concurrent callers wait
        for one build.
    """
    if cache_dir is None:
        import platformdirs

        cache_dir = platformdirs.user_cache_dir("geogrid")
    path = Path(cache_dir) / f"demo-v{DEMO_VERSION}-seed{seed}.gpkg"
    with file_lock(path.with_name(path.name + ".build.lock")):
        if not path.exists():
            write_demo(path, seed, progress=progress)
    return path
