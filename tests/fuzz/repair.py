"""Differential family ``repair``: :func:`geogrid.repair.repair_grids` against the reference verdict.

One case: a seeded Voronoi hierarchy (2-3 levels, in a UTM CRS or EPSG:4326), one to three
perturbations (vertex moved, sliver, overlap by translation, exclave inside a neighbour,
duplicated grid, hole, deleted grid, grid straddling two parents, bow-tie, an enclave cut
through every level where two top-level grids meet), one encoding (Polygon, every grid MultiPolygon, mixed, reversed rings,
repeated vertices). Repair runs with ``errors="raise"`` and ``errors="skip"`` (incremental) and
with the full rebuild; the reference (:func:`geogrid._reference_repair.reference_defects`) judges
each result. Columns:

- ``crash``: an exception other than TopologyError (a refusal in raise mode);
- ``defect_left``: the reference finds a defect >= 1 m² that no refusal names (raise mode that
  returned, skip mode, the full rebuild in skip mode);
- ``refusal_vanished``: raise mode refused something skip mode does not list;
- ``false_refusal``: a grid refused as losing most of its area outside its parent lies mostly
  inside its (repaired) parent;
- ``input_mutated``: the input frame changed;
- ``sound_changed``: a layer sound by construction and by the reference (no perturbation, an
  enclave, a notch) was refused or had a grid changed by >= 1 m²;
- ``incremental_vs_full``: the incremental path gave other geometries, log rows (action, grid,
  other grids) or refusals than the full rebuild.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import Transformer

from geogrid._reference_repair import reference_defects
from layers.errors import TopologyError
from tests.fuzz import Outcome, gen

FAMILY = "repair"
COLUMNS = (
    "crash",
    "defect_left",
    "refusal_vanished",
    "false_refusal",
    "input_mutated",
    "incremental_vs_full",
    "sound_changed",
)
MIN_AREA_M2 = 1.0
_FILE_ENCODING_WEIGHT = 0.03  # GeoPackage / GeoJSON / Shapefile round trips: slow, a few percent

_PLACES = {  # UTM zone, centre (easting, northing)
    "china": ("EPSG:32650", 500_000.0, 4_330_000.0),
    "france": ("EPSG:32631", 450_000.0, 5_410_000.0),
    "peru": ("EPSG:32718", 280_000.0, 8_660_000.0),
}
PERTURBATIONS = (
    "vertex",
    "sliver",
    "translate",
    "exclave",
    "duplicate",
    "hole",
    "delete",
    "reparent",
    "bowtie",
    "enclave",
    "none",
)
ENCODINGS = ("polygon", "multipolygon", "mixed", "reversed", "repeated")


# -- generators -----------------------------------------------------------------------
def voronoi_hierarchy(rng: np.random.Generator, n_basic: int, levels: int) -> gpd.GeoDataFrame:
    """A sound hierarchy in local metres: Voronoi cells inside a district, dissolved into parents.

    The district is the union of the cells whose seeds fall in a disc, so every edge is
    shared exactly (no clipping). Parents group the cells by nearest parent seed.
    """
    size = 60.0 * np.sqrt(n_basic) * 2
    pts = rng.uniform(-size, size, (n_basic * 3, 2))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), ordered=True))
    inside = np.hypot(pts[:, 0], pts[:, 1]) < size * 0.62
    # keep the cells of the inner seeds (bounded, never at the envelope)
    cells, seeds = cells[inside], pts[inside]
    ids: list[str] = []
    parent: list[str | None] = []
    level: list[int] = []
    geoms: list[shapely.Geometry] = []
    # parents: level 0 has 1-2 grids, level 1 (when 3 levels) groups ~6 cells
    n_top = int(rng.integers(1, 3))
    top_seed = seeds[rng.choice(len(seeds), n_top, replace=False)]
    top_of = np.argmin(np.hypot(*(seeds[:, None, :] - top_seed[None, :, :]).transpose(2, 0, 1)), axis=1)
    if levels == 3:
        k = max(n_top, len(seeds) // 6)
        mid_seed = seeds[rng.choice(len(seeds), k, replace=False)]
        mid_of = np.argmin(np.hypot(*(seeds[:, None, :] - mid_seed[None, :, :]).transpose(2, 0, 1)), axis=1)
        # a street lies in one district: split it by district
        mid_key = mid_of * 10 + top_of
    else:
        mid_key = None
    for t in range(n_top):
        members = np.flatnonzero(top_of == t)
        if members.size == 0:
            continue
        ids.append(f"D{t}")
        parent.append(None)
        level.append(0)
        geoms.append(shapely.coverage_union_all(cells[members]))
    if mid_key is not None:
        for key in np.unique(mid_key):
            members = np.flatnonzero(mid_key == key)
            ids.append(f"S{key}")
            parent.append(f"D{key % 10}")
            level.append(1)
            geoms.append(shapely.coverage_union_all(cells[members]))
    for c in range(len(cells)):
        ids.append(f"g{c:03d}")
        parent.append(f"S{mid_key[c]}" if mid_key is not None else f"D{top_of[c]}")
        level.append(levels - 1)
        geoms.append(cells[c])
    return gpd.GeoDataFrame(
        {"grid_id": ids, "parent_id": parent, "level": level, "name": [f"n{i}" for i in ids]},
        geometry=geoms,
    )


def _basic_rows(g: gpd.GeoDataFrame, rng: np.random.Generator) -> np.ndarray:
    """The grids of the finest level (mostly), else of a level above."""
    top = int(g["level"].max())
    lv = top if rng.random() < 0.8 else int(rng.integers(0, top))
    return np.flatnonzero((g["level"] == lv).to_numpy())


def _neighbour(geo: np.ndarray, rows: np.ndarray, r: int) -> int | None:
    others = [int(o) for o in rows if o != r and shapely.intersects(geo[o], geo[r])]
    return others[0] if others else None


def _polygonal_part(g: shapely.Geometry) -> shapely.Geometry:
    parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and not p.is_empty]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def perturb(g: gpd.GeoDataFrame, rng: np.random.Generator, kind: str) -> gpd.GeoDataFrame:
    """Apply one perturbation, in local metres, to a copy of ``g``."""
    g = g.copy()
    geo = np.asarray(g.geometry.array, dtype=object).copy()
    rows = _basic_rows(g, rng)
    if rows.size == 0:  # a level emptied by an earlier deletion
        return g
    r = int(rng.choice(rows))
    if kind == "vertex":
        poly = shapely.get_parts(geo[r])[0]
        ring = np.asarray(poly.exterior.coords)
        i = int(rng.integers(0, len(ring) - 1))
        d = float(np.exp(rng.uniform(np.log(0.1), np.log(50.0))))
        a = rng.uniform(0, 2 * np.pi)
        ring[i] += d * np.array([np.cos(a), np.sin(a)])
        if i == 0:
            ring[-1] = ring[0]
        geo[r] = shapely.Polygon(ring, [np.asarray(h.coords) for h in poly.interiors])
    elif kind == "sliver":
        w = float(rng.uniform(0.2, 2.0))
        if rng.random() < 0.5:
            geo[r] = shapely.buffer(geo[r], -w, join_style="mitre")
        else:
            a = rng.uniform(0, 2 * np.pi)
            geo[r] = shapely.affinity.translate(geo[r], w * np.cos(a), w * np.sin(a))
    elif kind == "translate":
        d = float(rng.uniform(3.0, 50.0))
        a = rng.uniform(0, 2 * np.pi)
        geo[r] = shapely.affinity.translate(geo[r], d * np.cos(a), d * np.sin(a))
    elif kind == "exclave":
        o = _neighbour(geo, rows, r)
        if o is not None:
            inner = shapely.buffer(geo[o], -5.0)
            if not inner.is_empty:
                p = shapely.point_on_surface(inner)
                blob = shapely.intersection(shapely.buffer(p, float(rng.uniform(8, 60)), quad_segs=4), inner)
                blob = max(shapely.get_parts(blob), key=lambda q: q.area, default=None)
                if blob is not None and not blob.is_empty:
                    geo[r] = shapely.MultiPolygon([*shapely.get_parts(geo[r]), blob])
    elif kind == "duplicate":
        dup = g.iloc[[r]].copy()
        # unique: a case may duplicate one grid twice, with a deletion between (same length twice)
        n, taken = len(g), set(g["grid_id"])
        while f"{dup['grid_id'].iloc[0]}_dup{n}" in taken:
            n += 1
        dup["grid_id"] = dup["grid_id"] + f"_dup{n}"
        g = pd.concat([g, dup], ignore_index=True)
        geo = np.append(geo, geo[r])
    elif kind == "hole":
        # A grid an earlier perturbation made invalid (a bow-tie, an exclave drawn over a part) stays
        # as it is: GEOS cannot cut a hole into it, and the case keeps the invalid grid to repair.
        inner = shapely.buffer(geo[r], -8.0) if geo[r].is_valid else shapely.Polygon()
        if not inner.is_empty:
            p = shapely.point_on_surface(inner)
            hole = shapely.intersection(shapely.buffer(p, float(rng.uniform(3, 60)), quad_segs=4), inner)
            geo[r] = shapely.difference(geo[r], hole)
    elif kind == "enclave" and (g["level"] == 0).any():
        # land outside the jurisdiction, cut through every level where top-level grids meet
        top = np.flatnonzero((g["level"] == 0).to_numpy())
        a, b = shapely.make_valid(geo[top[0]]), shapely.make_valid(geo[top[-1]])
        where = shapely.intersection(a, b) if top.size > 1 else shapely.Point()
        if shapely.is_empty(where) or top.size == 1:
            where = shapely.point_on_surface(shapely.buffer(a, -100.0))
        if not shapely.is_empty(where):
            hole = shapely.buffer(shapely.point_on_surface(where), float(rng.uniform(10, 80)), quad_segs=4)
            geo = np.array(
                [_polygonal_part(shapely.difference(x, hole)) if x.is_valid else x for x in geo], dtype=object
            )
    elif kind == "delete":
        keep = np.ones(len(g), dtype=bool)
        keep[r] = False
        g, geo = g[keep].reset_index(drop=True), geo[keep]
    elif kind == "reparent":  # a grid straddling two parents: its parent_id names a neighbour's parent
        o = _neighbour(geo, rows, r)
        if o is not None:
            g.loc[g.index[r], "parent_id"] = g["parent_id"].iloc[o]
    elif kind == "bowtie":  # two vertices swapped: a self-intersecting ring
        poly = shapely.get_parts(geo[r])[0]
        ring = np.asarray(poly.exterior.coords)[:-1]
        if len(ring) >= 4:
            i = int(rng.integers(0, len(ring) - 1))
            ring[[i, i + 1]] = ring[[i + 1, i]]
            geo[r] = shapely.Polygon(ring)
    g[g.geometry.name] = gpd.GeoSeries(geo, index=g.index)
    return g


def encode(geo: np.ndarray, rng: np.random.Generator, how: str) -> np.ndarray:
    """Re-encode the polygons (same point sets)."""
    out = geo.copy()
    for i, g in enumerate(geo):
        parts = list(shapely.get_parts(g))
        if how == "multipolygon" or (how == "mixed" and rng.random() < 0.5):
            out[i] = shapely.MultiPolygon(parts)
        elif how == "reversed" and rng.random() < 0.5:
            out[i] = shapely.reverse(g)
        elif how == "repeated" and rng.random() < 0.5:
            new = []
            for p in parts:
                ring = np.asarray(p.exterior.coords)
                j = int(rng.integers(0, len(ring) - 1))
                ring = np.insert(ring, j, ring[j], axis=0)
                new.append(shapely.Polygon(ring, [np.asarray(h.coords) for h in p.interiors]))
            out[i] = new[0] if len(new) == 1 and isinstance(g, shapely.Polygon) else shapely.MultiPolygon(new)
    return out


def make_case(seed: int) -> tuple[gpd.GeoDataFrame, str, dict[str, Any], bool]:
    """The seeded input layer, its generator name, the repair options and whether it is sound by construction.

    Even seeds: this module's generator (up to four perturbations at once); odd seeds: the
    shared generators of :mod:`tests.fuzz.gen` (enclaves, notches, file round trips...).
    """
    if seed % 2:
        return _shared_case(seed)
    rng = np.random.default_rng(seed)
    place = str(rng.choice(list(_PLACES)))
    utm, e0, n0 = _PLACES[place]
    lonlat = rng.random() < 0.5
    n_basic = int(rng.integers(12, 100))
    levels = int(rng.choice([2, 3]))
    g = voronoi_hierarchy(rng, n_basic, levels)
    kinds = [str(k) for k in rng.choice(PERTURBATIONS, int(rng.integers(1, 5)))]
    for k in kinds:
        g = perturb(g, rng, k)
    how = str(rng.choice(ENCODINGS))
    geo = np.asarray(g.geometry.array, dtype=object)
    geo = shapely.transform(geo, lambda xy: xy + np.array([e0, n0]))
    crs = utm
    if lonlat:
        tr = Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
        geo = shapely.transform(geo, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        crs = "EPSG:4326"
    geo = encode(geo, rng, how)
    layer = gpd.GeoDataFrame(g.drop(columns=g.geometry.name), geometry=list(geo), crs=crs)
    if rng.random() < 0.3:
        layer = layer.iloc[rng.permutation(len(layer))]
        layer.index = layer.index + 100
    opts = {"snap_m": float(rng.choice([0.0, 0.5, 1.0, 2.0])), "max_gap_m2": float(rng.choice([5000.0, 300.0, 20.0]))}
    name = f"voronoi/{'4326' if lonlat else 'utm'}-{place}/{'+'.join(kinds)}/{how}"
    return layer, name, opts, set(kinds) <= {"none", "enclave"}


def _shared_case(seed: int) -> tuple[gpd.GeoDataFrame, str, dict[str, Any], bool]:
    rng = np.random.default_rng(seed)
    crs_kind = gen.CRS_KINDS[(seed // 2) % len(gen.CRS_KINDS)]
    n_levels = int(rng.integers(2, 5))
    n_basic = int(rng.choice([20, 40, 80, 150]))
    pert = str(rng.choice(sorted(gen.PERTURBATIONS)))
    names = sorted(gen.ENCODINGS)
    w = np.array([_FILE_ENCODING_WEIGHT if n in ("gpkg", "geojson", "shapefile") else 1.0 for n in names])
    enc = str(rng.choice(names, p=w / w.sum()))
    grids = gen.hierarchy(rng, n_basic, n_levels, crs_kind)
    grids, _ = gen.perturb(rng, grids, pert)
    grids = gen.encode(rng, grids, enc)
    opts = {"snap_m": float(rng.choice([0.0, 0.5, 1.0, 2.0])), "max_gap_m2": float(rng.choice([5000.0, 300.0, 20.0]))}
    return grids, f"gen/{crs_kind}/L{n_levels}/n{n_basic}/{pert}/{enc}", opts, pert in gen.SOUND_PERTURBATIONS


# -- comparison -----------------------------------------------------------------------
def _unexplained(result_grids: gpd.GeoDataFrame, refused: pd.DataFrame) -> pd.DataFrame:
    """Reference defects >= MIN_AREA_M2 that no refusal names (by grid id) or touches (by geometry)."""
    defects = reference_defects(result_grids, min_area_m2=MIN_AREA_M2)
    if defects.empty or refused is None or refused.empty:
        return defects
    named = {str(i) for ids in refused["grid_ids"] for i in ids}
    tol = 1e-5 if result_grids.crs.is_geographic else 1.0
    rgeo = np.array([g for g in refused["geometry"] if g is not None and not shapely.is_empty(g)], dtype=object)
    keep = []
    for ids, geom in zip(defects["grid_ids"], defects["geometry"], strict=True):
        if named & set(ids):
            keep.append(False)
            continue
        near = rgeo.size and bool(shapely.dwithin(rgeo, geom, tol).any())
        keep.append(not near)
    return defects[np.array(keep, dtype=bool)]


def _refusal_keys(refused: pd.DataFrame) -> set[tuple[str, int, tuple[str, ...]]]:
    return {
        (str(k), int(lv), tuple(ids))
        for k, lv, ids in zip(refused["kind"], refused["level"], refused["grid_ids"], strict=True)
    }


def _needless_refusals(layer: gpd.GeoDataFrame, result: Any) -> list[tuple[str, float]]:
    """Grids refused as "losing most of their area outside the parent" that lie mostly inside the repaired parent."""
    out = []
    ref = result.refused
    rows = ref[(ref["kind"] == "outside_parent") & ~ref["message"].str.contains("under its siblings")]
    if rows.empty:
        return out
    by_id = dict(zip(layer["grid_id"].astype(str), layer.geometry, strict=True))
    parent_of = dict(zip(layer["grid_id"].astype(str), layer["parent_id"], strict=True))
    repaired = dict(zip(result.grids["grid_id"].astype(str), result.grids.geometry, strict=True))
    for (gid,) in rows["grid_ids"]:
        pid = parent_of.get(gid)
        if gid not in by_id or not isinstance(pid, str) or pid not in repaired:
            continue
        child = shapely.make_valid(by_id[gid])
        outside = shapely.difference(child, shapely.make_valid(repaired[pid]))
        share = shapely.area(outside) / max(shapely.area(child), 1e-300)
        if share < 0.45:  # repair refuses above one half; snapping may move a little
            out.append((gid, float(share)))
    return out


def _log_keys(log: pd.DataFrame) -> list[tuple[str, int, str, tuple[str, ...]]]:
    cols = ("action", "level", "grid_id", "other_ids")
    return sorted((str(a), int(lv), str(g), tuple(o)) for a, lv, g, o in zip(*(log[c] for c in cols), strict=True))


def _describe(df: pd.DataFrame) -> str:
    return "; ".join(
        f"{k} L{lv} {ids} {a:.1f} m²" for k, lv, ids, a in df[["kind", "level", "grid_ids", "area_m2"]].values
    )


def run_case(seed: int) -> Outcome:
    """Generate case ``seed``, repair it in every mode and judge each result with the reference."""
    from geogrid.repair import _repair_grids

    layer, name, opts, sound = make_case(seed)
    out = Outcome(FAMILY, seed, name)
    for col in COLUMNS:
        out.counts[col] = 0
    if sound and len(reference_defects(layer, min_area_m2=MIN_AREA_M2)):
        sound = False  # the perturbation happened to make a defect after all
    before = layer.copy(deep=True)
    before_wkb = shapely.to_wkb(np.asarray(layer.geometry.array, dtype=object))
    results: dict[str, Any] = {}
    for mode, errors, incremental in (("raise", "raise", True), ("skip", "skip", True), ("full", "skip", False)):
        try:
            results[mode] = _repair_grids(layer, errors=errors, incremental=incremental, **opts)
        except TopologyError as err:
            results[mode] = err
        except Exception as err:  # any other exception is the finding
            out.fail("crash", f"{mode}: {type(err).__name__}: {err}")
            results[mode] = None
        now_wkb = shapely.to_wkb(np.asarray(layer.geometry.array, dtype=object))
        if not (
            np.array_equal(now_wkb, before_wkb)
            and layer.drop(columns=layer.geometry.name).equals(before.drop(columns=before.geometry.name))
        ):
            out.fail("input_mutated", f"{mode} changed its input")
            layer = before.copy(deep=True)
    for mode in ("raise", "skip", "full"):
        res = results.get(mode)
        if res is None or isinstance(res, TopologyError):
            continue
        try:
            left = _unexplained(res.grids, res.refused)
        except Exception as err:  # the reference failing on a result is counted, not hidden
            out.fail("crash", f"reference on the {mode} result: {type(err).__name__}: {err}")
            continue
        if len(left):
            out.fail("defect_left", f"{mode}: {_describe(left)} (refused: {len(res.refused)})")
    raised, skipped = results.get("raise"), results.get("skip")
    if isinstance(raised, TopologyError) and skipped is not None and not isinstance(skipped, TopologyError):
        missing = _refusal_keys(raised.findings) - _refusal_keys(skipped.refused)
        if missing:
            out.fail("refusal_vanished", f"raise refused {sorted(missing)}; skip lists {len(skipped.refused)}")
    if skipped is not None and not isinstance(skipped, TopologyError):
        for gid, share in _needless_refusals(layer, skipped):
            out.fail("false_refusal", f"{gid!r} refused as mostly outside its parent, but only {share:.0%} is")
    raised_ = results.get("raise")
    if sound and raised_ is not None:
        if isinstance(raised_, TopologyError):
            out.fail("sound_changed", f"sound layer refused: {_describe(raised_.findings)}")
        else:
            a = np.asarray(layer.geometry.array, dtype=object)
            b = np.asarray(raised_.grids.geometry.array, dtype=object)
            moved = gpd.GeoSeries(shapely.symmetric_difference(a, b), crs=layer.crs)
            if layer.crs.is_geographic:
                moved = moved.to_crs(layer.estimate_utm_crs())
            big = np.flatnonzero(moved.area.to_numpy() >= MIN_AREA_M2)
            if big.size:
                gids = list(layer["grid_id"].to_numpy()[big][:5])
                out.fail("sound_changed", f"sound layer changed: {gids} by up to {moved.area.max():.1f} m²")
    full = results.get("full")
    if skipped is not None and full is not None and not isinstance(skipped, TopologyError | type(None)):
        if isinstance(full, TopologyError):
            out.fail("incremental_vs_full", "full rebuild raised in skip mode")
        else:
            a = np.asarray(skipped.grids.geometry.array, dtype=object)
            b = np.asarray(full.grids.geometry.array, dtype=object)
            differ = np.flatnonzero(~shapely.equals(a, b))
            if differ.size:
                gids = skipped.grids["grid_id"].to_numpy()[differ]
                out.fail("incremental_vs_full", f"geometries differ: {list(gids[:5])}")
            la, lb = _log_keys(skipped.log), _log_keys(full.log)
            if la != lb:
                out.fail("incremental_vs_full", f"logs differ: {sorted(set(la) ^ set(lb))[:5]}")
            ka, kb = _refusal_keys(skipped.refused), _refusal_keys(full.refused)
            if ka != kb:
                out.fail("incremental_vs_full", f"refusals differ: {sorted(ka ^ kb)[:5]}")
    return out
