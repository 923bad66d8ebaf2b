"""Differential family ``edits``: random edits on generated hierarchies against the reference post-conditions.

A case (one seed) builds a hierarchy (Voronoi cells of random points noded with a star-shaped
district outline, dissolved into 2 or 3 levels; sometimes a grid with an island grid in a hole and
a two-part grid), encodes it (UTM or EPSG:4326; Polygon or every grid MultiPolygon; reversed rings;
repeated vertices), and applies one edit of a chosen kind. Valid kinds must be accepted (or the
refusal is counted as ``valid_refused``) and then satisfy :func:`geogrid.reference.verify_edit`
(``postcondition``); invalid kinds must raise a :class:`~layers.errors.GeogridError`
(``invalid_accepted``). Every other exception is a ``crash``; a changed input is
``input_mutated``; a refusal that names no grid is ``unclear_refusal``; a valid edit the guard
(:func:`~geogrid.hierarchy.check_grids`) refuses although the unguarded result meets every
post-condition is ``check_false_alarm`` (a defect of the check, not of the edit). Whether a "valid"
edit is really valid is decided by plain GEOS on the ideal result (would a grid fall into
pieces?), not by the engine, with the region or lens also grown and shrunk by twice the snap
distance: an edit whose verdict depends on snapping is "borderline" (refusing it is fine;
accepting it must still meet the post-conditions).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from shapely.ops import substring

from geogrid._reference_edits import verify_edit
from geogrid.edits import merge_grids, reparent, reshape_boundary, split_grid, transfer_area
from geogrid.hierarchy import check_grids
from layers.errors import GeogridError
from tests.fuzz import Outcome

FAMILY = "edits"
COLUMNS = (
    "crash",
    "invalid_accepted",
    "valid_refused",
    "postcondition",
    "input_mutated",
    "unclear_refusal",
    "check_false_alarm",
    "generator",
)
"""Failure columns (the long lane prints each, zeros included)."""

KINDS_VALID = ("transfer", "reshape", "split", "split_hole", "split_exclave", "merge", "reparent")
KINDS_INVALID = ("transfer_far", "merge_far", "reshape_out", "split_nocut", "reparent_far")
KINDS = KINDS_VALID + KINDS_INVALID
ENCODINGS = ("polygon", "multipolygon", "reversed", "repeated")
CRSS = ("utm", "lonlat")
UTM = "EPSG:32650"  # zone 50N, around Tianjin (117E, 39N)
OX, OY = 500_000.0, 4_330_000.0
SNAP_M = 1.0  # the edits' default snap_m


# -- hierarchies ---------------------------------------------------------------------------
def _district(rng: np.random.Generator) -> shapely.Polygon:
    n = int(rng.integers(7, 14))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(500, 1000, n)
    return shapely.Polygon(np.column_stack([r * np.cos(t), r * np.sin(t)]))


def _cells(rng: np.random.Generator, district: shapely.Polygon, n: int) -> np.ndarray:
    """Voronoi cells of ``n`` random points, noded with the outline and clipped to it (exact shared edges)."""
    x0, y0, x1, y1 = district.bounds
    pts = shapely.multipoints(rng.uniform([x0, y0], [x1, y1], (n, 2)))
    edges = shapely.voronoi_polygons(pts, extend_to=shapely.buffer(district.envelope, 100), only_edges=True)
    net = shapely.union_all([edges, district.boundary])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(net)))
    faces = faces[shapely.contains(district, shapely.point_on_surface(faces))]
    return faces[shapely.area(faces) > 1.0]


def _groups(rng: np.random.Generator, geoms: np.ndarray, k: int) -> np.ndarray:
    """Group index of each geometry: nearest of ``k`` random seeds."""
    c = shapely.get_coordinates(shapely.centroid(geoms))
    seeds = c[rng.choice(len(c), size=min(k, len(c)), replace=False)]
    return np.argmin(((c[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2), axis=1)


def _cover(geoms: list[shapely.Geometry]) -> shapely.Geometry:
    return geoms[0] if len(geoms) == 1 else shapely.coverage_union_all(np.array(geoms, dtype=object))


def build_hierarchy(rng: np.random.Generator, *, features: bool) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """A sound hierarchy in local metres (origin at the district's centre) and its special grids.

    Returns the layer (columns grid_id, parent_id, level, households, geometry; no CRS yet) and
    ``{"hole": id, "island": id, "exclave": id}`` for the grids made awkward on purpose.
    """
    district = _district(rng)
    cells = _cells(rng, district, int(rng.integers(20, 50)))
    n_lv = int(rng.integers(2, 4))
    special: dict[str, str] = {}
    basic = {f"c{i}": c for i, c in enumerate(cells)}
    # level-1 groups (streets) when 3 levels; their parents: 1 or 2 districts
    if n_lv == 3:
        grp = _groups(rng, cells, int(rng.integers(3, 7)))
        streets = sorted(set(grp.tolist()))
        street_geoms = np.array([_cover(list(cells[grp == s])) for s in streets], dtype=object)
        top = _groups(rng, street_geoms, int(rng.integers(1, 3)))
        parent_of_basic = {f"c{i}": f"s{g}" for i, g in enumerate(grp)}
        parent_of_street = {f"s{s}": f"d{t}" for s, t in zip(streets, top, strict=True)}
    else:
        top = _groups(rng, cells, int(rng.integers(1, 3)))
        parent_of_basic = {f"c{i}": f"d{t}" for i, t in enumerate(top)}
        parent_of_street = {}
    if features:
        ids = list(basic)
        # an island grid in a hole of a basic grid
        for gid in rng.permutation(ids):
            c = basic[gid]
            inner = shapely.buffer(c, -25)
            if shapely.is_empty(inner) or shapely.area(inner) < 400:
                continue
            p = shapely.point_on_surface(inner)
            island = shapely.intersection(shapely.buffer(p, 12, quad_segs=2), inner)
            if island.geom_type != "Polygon" or not shapely.contains_properly(c, island):
                continue
            basic[gid] = shapely.difference(c, island)
            basic[f"{gid}i"] = island
            parent_of_basic[f"{gid}i"] = parent_of_basic[gid]
            special["hole"], special["island"] = gid, f"{gid}i"
            break
        # a two-part basic grid: two cells of one parent that do not touch
        by_parent: dict[str, list[str]] = {}
        for g in ids:
            if g not in special.values():
                by_parent.setdefault(parent_of_basic[g], []).append(g)
        for p in sorted(by_parent):
            kids = by_parent[p]
            pairs = [
                (a, b) for i, a in enumerate(kids) for b in kids[i + 1 :] if shapely.distance(basic[a], basic[b]) > 50
            ]
            if pairs:
                a, b = pairs[int(rng.integers(len(pairs)))]
                basic[a] = shapely.MultiPolygon([basic[a], basic[b]])
                del basic[b], parent_of_basic[b]
                special["exclave"] = a
                break
    rows: list[tuple[str, str | None, int, shapely.Geometry]] = []
    fin = n_lv - 1
    for g, geom in basic.items():
        rows.append((g, parent_of_basic[g], fin, geom))
    if n_lv == 3:
        for s, d in parent_of_street.items():
            kids = [basic[g] for g in basic if parent_of_basic[g] == s]
            rows.append((s, d, 1, _cover(kids)))
    mid = {**parent_of_street} if n_lv == 3 else {}
    for d in sorted(set((parent_of_street if n_lv == 3 else parent_of_basic).values())):
        kids = [r[3] for r in rows if r[2] == 1 and r[1] == d]
        rows.append((d, None, 0, _cover(kids)))
    del mid
    hh = rng.integers(0, 300, len(rows))
    frame = pd.DataFrame(rows, columns=["grid_id", "parent_id", "level", "geometry"])
    frame["households"] = hh
    # parents' households are the sum of their children
    for lv in range(fin - 1, -1, -1):
        for i in np.flatnonzero(frame["level"] == lv):
            kids = frame["parent_id"] == frame.at[i, "grid_id"]
            frame.at[i, "households"] = int(frame.loc[kids, "households"].sum())
    frame["households"] = frame["households"].astype("Int64")
    frame["parent_id"] = frame["parent_id"].astype(object)
    return gpd.GeoDataFrame(frame, geometry="geometry"), special


def _encode_geom(geom: shapely.Geometry, encoding: str, rng: np.random.Generator) -> shapely.Geometry:
    if encoding == "multipolygon":
        return geom if geom.geom_type == "MultiPolygon" else shapely.MultiPolygon([geom])
    if encoding == "reversed":
        return shapely.reverse(geom)
    if encoding == "repeated":
        parts = []
        for poly in shapely.get_parts(geom):
            shell = np.asarray(poly.exterior.coords)
            k = int(rng.integers(0, len(shell) - 1))
            shell = np.insert(shell, k, shell[k], axis=0)
            parts.append(shapely.Polygon(shell, [np.asarray(r.coords) for r in poly.interiors]))
        return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return geom


def encode(local: gpd.GeoDataFrame, crs_kind: str, encoding: str, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Place the local-metre layer in a CRS and an encoding."""
    g = local.copy()
    g["geometry"] = shapely.transform(g.geometry.to_numpy(), lambda xy: xy + np.array([OX, OY]))
    g = g.set_crs(UTM)
    if crs_kind == "lonlat":
        g = g.to_crs(4326)
    g["geometry"] = [_encode_geom(x, encoding, rng) for x in g.geometry.to_numpy()]
    return g


# -- edits ---------------------------------------------------------------------------------
def _shared(a: shapely.Geometry, b: shapely.Geometry) -> shapely.Geometry | None:
    """The longest piece of the common boundary of two grids, or None."""
    inter = shapely.intersection(shapely.boundary(a), shapely.boundary(b))
    parts = shapely.get_parts(inter)
    parts = parts[np.isin(shapely.get_type_id(parts), [1, 5]) & ~shapely.is_empty(parts)]
    if parts.size == 0:
        return None
    merged = shapely.get_parts(shapely.line_merge(shapely.union_all(parts)))
    merged = merged[~shapely.is_empty(merged)]
    if merged.size == 0:
        return None
    best = merged[int(np.argmax(shapely.length(merged)))]
    return best if shapely.length(best) > 0 else None


def _n_parts(geom: shapely.Geometry) -> int:
    """Connected parts (0 for empty: a grid emptied by an edit is removed, which is fine)."""
    return len(shapely.get_parts(shapely.union_all(shapely.get_parts(geom))))


def _n_wide_parts(geom: shapely.Geometry, width: float) -> int:
    """Connected parts, those narrower than ``width`` (2 area / perimeter) left out unless all are."""
    parts = shapely.get_parts(shapely.union_all(shapely.get_parts(geom)))
    wide = 2 * shapely.area(parts) >= width * shapely.length(parts)
    return int(wide.sum()) or min(len(parts), 1)


class Case:
    """One generated layer, with metric helpers."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.kind = KINDS[seed % len(KINDS)]
        self.crs_kind = CRSS[(seed // len(KINDS)) % len(CRSS)]
        self.encoding = ENCODINGS[(seed // (len(KINDS) * len(CRSS))) % len(ENCODINGS)]
        features = self.kind in ("split_hole", "split_exclave") or bool(rng.random() < 0.3)
        self.local, self.special = build_hierarchy(rng, features=features)
        self.grids = encode(self.local, self.crs_kind, self.encoding, rng)
        self.ids = self.local["grid_id"].tolist()
        self.geom = dict(zip(self.local["grid_id"], self.local.geometry, strict=True))  # local metres
        self.level = dict(zip(self.local["grid_id"], self.local["level"], strict=True))
        self.parent = dict(zip(self.local["grid_id"], self.local["parent_id"], strict=True))
        self.finest = int(self.local["level"].max())
        self.generator = f"voronoi/{self.crs_kind}/{self.encoding}/{self.finest + 1}lv/{self.kind}"

    def to_input(self, geom: shapely.Geometry) -> shapely.Geometry:
        """Local metres -> the layer's CRS."""
        s = gpd.GeoSeries([shapely.transform(geom, lambda xy: xy + np.array([OX, OY]))], crs=UTM)
        return s.to_crs(self.grids.crs).iloc[0] if self.crs_kind == "lonlat" else s.iloc[0]

    def on_level(self, lv: int, *, plain: bool = True) -> list[str]:
        out = [g for g in self.ids if self.level[g] == lv]
        if plain:
            out = [g for g in out if g not in self.special.values()]
        return out

    def adjacent_pairs(self, lv: int, *, min_len: float = 20.0) -> list[tuple[str, str, shapely.Geometry]]:
        ids = self.on_level(lv)
        out = []
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                if not shapely.intersects(self.geom[a], self.geom[b]):
                    continue
                s = _shared(self.geom[a], self.geom[b])
                if s is not None and shapely.length(s) >= min_len:
                    out.append((a, b, s))
        return out

    def far_pairs(self, lv: int) -> list[tuple[str, str]]:
        ids = self.on_level(lv)
        return [
            (a, b) for i, a in enumerate(ids) for b in ids[i + 1 :] if shapely.distance(self.geom[a], self.geom[b]) > 5
        ]

    def pick(self, seq: list[Any]) -> Any:
        return seq[int(self.rng.integers(len(seq)))]


Edit = tuple[str, Callable[..., Any], dict[str, Any], bool | None]  # name, function, params, valid (None: unknown)


def _line_through(case: Case, geom: shapely.Geometry, centre: shapely.Point) -> shapely.LineString:
    ang = case.rng.uniform(0, np.pi)
    r = 3 * np.sqrt(shapely.area(shapely.envelope(geom))) + 10
    d = np.array([np.cos(ang), np.sin(ang)]) * r
    c = np.array([centre.x, centre.y])
    return shapely.LineString([c - d, c + d])


def make_edit(case: Case) -> Edit | None:
    """The edit of the case's kind (parameters in the layer's CRS), or None if the layer has no place for it."""
    kind, rng = case.kind, case.rng
    lv = int(rng.integers(1, case.finest + 1))
    if kind in ("transfer", "reshape", "merge"):
        pairs = case.adjacent_pairs(lv)
        if not pairs:
            return None
        a, b, s = case.pick(pairs)
        cascade = case.parent[a] != case.parent[b]
        if kind == "merge":
            ok = True
            for k in range(lv - 1, -1, -1):  # b's ancestors give up b's area (cascade)
                pa, pb = _ancestor(case, a, k), _ancestor(case, b, k)
                if pa != pb:
                    rest = shapely.difference(case.geom[pb], case.geom[b])
                    ok &= _n_parts(rest) <= _n_parts(case.geom[pb])
                    ok &= _n_parts(shapely.union(case.geom[pa], case.geom[b])) <= _n_parts(case.geom[pa])
            return "merge_grids", merge_grids, {"ids": [a, b], "cascade": cascade}, bool(ok)
        if kind == "transfer":
            m = shapely.line_interpolate_point(s, rng.uniform(0.3, 0.7), normalized=True)
            r = min(0.25 * shapely.length(s), 0.2 * np.sqrt(shapely.area(case.geom[b])))
            region = shapely.buffer(m, r, quad_segs=int(rng.integers(1, 4)))
            # valid only if nothing falls into pieces (plain GEOS on the ideal result)
            outline = shapely.union_all([case.geom[g] for g in case.on_level(0, plain=False)])

            def fine(pad: float, *, thin: float = 0.0) -> bool:
                reg = shapely.buffer(region, pad) if pad else region
                take = shapely.intersection(reg, outline)
                ok = _n_parts(shapely.union(case.geom[a], take)) <= max(1, _n_parts(case.geom[a]))
                if not cascade:  # documented: the region must stay in a's parent (seed 9411720: it reached
                    # 13.7 m² of a third grid of another parent near a junction, and was rightly refused)
                    ok &= shapely.area(shapely.difference(take, case.geom[case.parent[a]])) < 1e-3
                chain = [(lv, a)] + ([(k, _ancestor(case, a, k)) for k in range(lv - 1, -1, -1)] if cascade else [])
                for k, tgt in chain:
                    ok &= _n_parts(shapely.union(case.geom[tgt], take)) <= max(1, _n_parts(case.geom[tgt]))
                    for g in case.on_level(k, plain=False):
                        if g != tgt and shapely.intersects(case.geom[g], reg):
                            rest = shapely.difference(case.geom[g], reg)
                            ok &= _n_wide_parts(rest, thin) <= _n_parts(case.geom[g])
                # below, a one-part grid cut in pieces becomes one grid per piece (new ids), but a multi-part
                # grid must not gain parts (seed 9818472: a level-1 transfer cut a 2.4 m wide, 91 m² piece
                # off a two-part child of the giving street, and was rightly refused)
                for g in case.ids:
                    if (
                        case.level[g] > lv
                        and _n_parts(case.geom[g]) > 1
                        and _ancestor(case, g, lv) != a
                        and shapely.intersects(case.geom[g], reg)
                    ):
                        rest = shapely.difference(case.geom[g], reg)
                        ok &= _n_wide_parts(rest, thin) <= _n_parts(case.geom[g])
                return bool(ok)

            params = {"region": case.to_input(region), "to_grid": a, "cascade": cascade}
            verdict = _verdict([fine(p) for p in (-2 * SNAP_M, 0, 2 * SNAP_M)])
            if verdict is False and fine(0, thin=2 * SNAP_M):
                # only pieces thinner than the snap distance break off, and the edit gives them to their
                # widest neighbour (seeds 9306180, 9318144: 8.8 and 10.8 m² crumbs 0.9 m wide, accepted)
                verdict = None
            return "transfer_area", transfer_area, params, verdict
        # reshape: bend the middle of the shared piece into one side
        p = shapely.line_interpolate_point(s, 0.25, normalized=True)
        q = shapely.line_interpolate_point(s, 0.75, normalized=True)
        m = shapely.line_interpolate_point(s, 0.5, normalized=True)
        v = np.array([q.x - p.x, q.y - p.y])
        nrm = np.array([-v[1], v[0]]) * rng.uniform(-0.3, 0.3)
        line = shapely.LineString([(p.x, p.y), (m.x + nrm[0], m.y + nrm[1]), (q.x, q.y)])
        back = substring(s, 0.75, 0.25, normalized=True)
        lens = shapely.make_valid(
            shapely.Polygon([(p.x, p.y), (m.x + nrm[0], m.y + nrm[1]), *shapely.get_coordinates(back).tolist()])
        )
        both = shapely.union(case.geom[a], case.geom[b])

        def fine_lens(pad: float) -> bool:  # snapping may move the line by snap_m
            ln = shapely.buffer(lens, pad) if pad else lens
            # the line moved inwards (a shrunk lens) may no longer leave the two grids: a vertex
            # 0.97 m beyond the district's outline is snapped onto it (seed 9212353, accepted)
            ok = shapely.area(shapely.difference(ln if pad < 0 else lens, both)) < 1e-3
            ok &= _n_parts(shapely.difference(case.geom[a], ln)) <= _n_parts(case.geom[a])
            ok &= _n_parts(shapely.difference(case.geom[b], ln)) <= _n_parts(case.geom[b])
            return bool(ok)

        params = {"grid_a": a, "grid_b": b, "line": case.to_input(line), "cascade": cascade}
        return (
            "reshape_boundary",
            reshape_boundary,
            params,
            _verdict([fine_lens(p) for p in (-2 * SNAP_M, 0, 2 * SNAP_M)]),
        )
    if kind == "split":
        # a grid a few snap widths wide: a 3 m² sliver cannot be cut with snap_m=1
        ids = [g for g in case.on_level(lv) if not shapely.is_empty(shapely.buffer(case.geom[g], -5))]
        if not ids:
            return None
        gid = case.pick(ids)
        c = shapely.point_on_surface(case.geom[gid])
        line = _line_through(case, case.geom[gid], c)
        return "split_grid", split_grid, {"grid_id": gid, "line": case.to_input(line)}, True
    if kind == "split_hole":
        if "hole" not in case.special:
            return None
        gid = case.special["hole"]
        c = shapely.centroid(case.geom[case.special["island"]])
        line = _line_through(case, case.geom[gid], c)
        return "split_grid", split_grid, {"grid_id": gid, "line": case.to_input(line)}, True
    if kind == "split_exclave":
        if "exclave" not in case.special:
            return None
        gid = case.special["exclave"]
        parts = [q for q in shapely.get_parts(case.geom[gid]) if not shapely.is_empty(shapely.buffer(q, -5))]
        if not parts:  # a sliver part cannot be cut with snap_m=1
            return None
        part = case.pick(parts)
        line = _line_through(case, part, shapely.point_on_surface(part))
        return "split_grid", split_grid, {"grid_id": gid, "line": case.to_input(line)}, True
    if kind == "reparent":
        if case.finest < 1:
            return None
        cands = []
        for g in case.on_level(lv):
            if lv == 0:
                continue
            for p in case.on_level(lv - 1, plain=False):
                if p != case.parent[g] and _shared(case.geom[g], case.geom[p]) is not None:
                    cands.append((g, p))
        if not cands:
            return None
        g, p = case.pick(cands)
        old = case.parent[g]
        rest = shapely.difference(case.geom[old], case.geom[g])
        ok = _n_parts(rest) <= _n_parts(case.geom[old])
        ok &= _n_parts(shapely.union(case.geom[p], case.geom[g])) <= _n_parts(case.geom[p])
        cascade = case.parent.get(old) != case.parent.get(p)
        for k in range(lv - 2, -1, -1):  # ancestors follow with cascade
            ao, an = _ancestor(case, old, k), _ancestor(case, p, k)
            if ao != an:
                rest = shapely.difference(case.geom[ao], case.geom[g])
                ok &= _n_parts(rest) <= _n_parts(case.geom[ao])
                ok &= _n_parts(shapely.union(case.geom[an], case.geom[g])) <= _n_parts(case.geom[an])
        return "reparent", reparent, {"grid_id": g, "new_parent": p, "cascade": cascade}, bool(ok)
    # invalid kinds
    if kind == "transfer_far":
        pairs = case.far_pairs(lv)
        if not pairs:
            return None
        a, b = case.pick(pairs)
        inner = shapely.buffer(case.geom[b], -5)
        if shapely.is_empty(inner):
            return None
        c = shapely.point_on_surface(inner)
        region = shapely.intersection(shapely.buffer(c, 0.2 * np.sqrt(shapely.area(case.geom[b]))), inner)
        cascade = bool(rng.random() < 0.5)
        params = {"region": case.to_input(region), "to_grid": a, "cascade": cascade}
        return "transfer_area", transfer_area, params, False
    if kind == "merge_far":
        pairs = case.far_pairs(lv)
        if not pairs:
            return None
        a, b = case.pick(pairs)
        return "merge_grids", merge_grids, {"ids": [a, b], "cascade": bool(rng.random() < 0.5)}, False
    if kind == "reshape_out":
        outline = shapely.union_all([case.geom[g] for g in case.on_level(0, plain=False)])
        pairs = [t for t in case.adjacent_pairs(lv) if shapely.intersects(t[2], outline.boundary)]
        if not pairs:
            return None
        a, b, s = case.pick(pairs)
        # from the middle of the shared boundary out beyond the outline near its end, and back
        end = min(
            (shapely.Point(s.coords[0]), shapely.Point(s.coords[-1])),
            key=lambda e: shapely.distance(e, outline.boundary),
        )
        m = shapely.line_interpolate_point(s, 0.5, normalized=True)
        out_dir = np.array([end.x - m.x, end.y - m.y])
        out_pt = np.array([end.x, end.y]) + out_dir / max(np.hypot(*out_dir), 1e-9) * rng.uniform(5, 60)
        p = shapely.line_interpolate_point(s, 0.3, normalized=True)
        q = shapely.line_interpolate_point(s, 0.7, normalized=True)
        side = np.array([-out_dir[1], out_dir[0]]) * rng.uniform(-0.3, 0.3)
        line = shapely.LineString([(p.x, p.y), tuple(out_pt + side), (q.x, q.y)])
        if shapely.within(line, outline):
            return None
        params = {"grid_a": a, "grid_b": b, "line": case.to_input(line), "cascade": bool(rng.random() < 0.5)}
        # The outline may bend back towards the point "beyond" it: a line that leaves the district by
        # no more than twice the snap distance may be snapped onto the outline (accepting it is fine
        # then, as long as the result meets every post-condition).
        beyond = float(shapely.distance(shapely.Point(out_pt + side), outline))
        return "reshape_boundary", reshape_boundary, params, False if beyond > 2 * SNAP_M else None
    if kind == "split_nocut":
        gid = case.pick(case.on_level(lv))
        _x0, y0, x1, y1 = case.geom[gid].bounds
        line = shapely.LineString([(x1 + 50, y0), (x1 + 50, y1)])
        if shapely.intersects(line, case.geom[gid]):
            return None
        return "split_grid", split_grid, {"grid_id": gid, "line": case.to_input(line)}, False
    if kind == "reparent_far":
        cands = [
            (g, p)
            for g in case.on_level(lv)
            for p in case.on_level(lv - 1, plain=False)
            if p != case.parent[g] and shapely.distance(case.geom[g], case.geom[p]) > 5
        ]
        if not cands:
            return None
        g, p = case.pick(cands)
        return "reparent", reparent, {"grid_id": g, "new_parent": p, "cascade": True}, False
    msg = f"unknown edit kind {kind!r}"
    raise ValueError(msg)


def _verdict(fine: list[bool]) -> bool | None:
    """Valid if the ideal result is fine whatever snapping does, invalid if never, else unknown (None)."""
    return True if all(fine) else False if not any(fine) else None


def _ancestor(case: Case, gid: str, level: int) -> str:
    while case.level[gid] > level:
        gid = case.parent[gid]
    return gid


def _same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> bool:
    if list(a.columns) != list(b.columns) or not a.index.equals(b.index):
        return False
    if not shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), tolerance=0.0).all():
        return False
    rest = [c for c in a.columns if c != a.geometry.name]
    return bool(a[rest].equals(b[rest]))


def run_case(seed: int) -> Outcome:
    """Build the layer of ``seed``, apply its edit, and compare with the reference."""
    try:
        case = Case(seed)
    except Exception as err:  # a generator bug is reported, not raised
        out = Outcome(FAMILY, seed, "voronoi/?")
        out.fail("crash", f"generator: {err!r}")
        return out
    out = Outcome(FAMILY, seed, case.generator)
    sane = verify_edit(case.grids, case.grids, "none")
    if sane:
        out.fail("generator", f"the generated layer breaks the reference: {sane[:3]}")
        return out
    edit = make_edit(case)
    if edit is None:
        out.details.append("no place for this edit kind in this layer")
        return out
    name, fn, params, valid = edit
    shown = {k: (v.wkt[:80] if isinstance(v, shapely.Geometry) else v) for k, v in params.items()}
    out.generator += {True: "", False: "/expect-refusal", None: "/borderline"}[valid]
    before = case.grids.copy()
    try:
        new, _cs = fn(case.grids, **params)
    except GeogridError as err:
        if not _same(before, case.grids):
            out.fail("input_mutated", f"{name}({shown}) changed its input")
        if not any(f"'{g}'" in str(err) for g in case.ids):
            out.fail("unclear_refusal", f"{name}({shown}) refused without naming a grid: {err}")
        if valid is None:
            out.details.append(f"borderline edit refused: {err}")
        elif valid:
            if not check_grids(before).sound:
                out.details.append(f"check_grids finds the generated layer unsound: {name} refused ({err})")
            elif str(err).startswith(f"{name} refused: the result would have"):  # the guard (check_grids)
                unguarded = fn(case.grids, **params, validate=False)[0]
                problems = verify_edit(before, unguarded, name, **params)
                column = "valid_refused" if problems else "check_false_alarm"
                out.fail(column, f"{name}({shown}): {err}; the unguarded result: {problems[:3] or 'sound'}")
            else:
                out.fail("valid_refused", f"{name}({shown}): {err}")
        return out
    except Exception as err:  # every other exception is a crash to count
        out.fail("crash", f"{name}({shown}): {err!r}\n{traceback.format_exc(limit=4)}")
        return out
    if not _same(before, case.grids):
        out.fail("input_mutated", f"{name}({shown}) changed its input")
    problems = verify_edit(before, new, name, **params)
    if valid is False:
        out.fail("invalid_accepted", f"{name}({shown}) accepted; reference: {problems[:3]}")
    elif problems:
        out.fail("postcondition", f"{name}({shown}): {problems[:4]}")
    return out
