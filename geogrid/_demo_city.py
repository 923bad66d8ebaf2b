"""Private: the demo district's geometry — outline, streets, blocks and the nested levels."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from layers.schema import GRIDS

METRIC_EPSG = 4548
"""CGCS2000 / 3-degree Gauss–Krüger CM 117E: the metric CRS of Tianjin."""

CENTRE_LONLAT = (117.155, 39.165)
"""Centre of the demo district (north-west Tianjin, where Hongqiao lies)."""

AREA_M2 = 23.76e6
LEVEL_COUNTS = (1, 9, 114, 990)
LEVEL_NAMES = ("区", "街道", "社区", "基础网格")

DISTRICT_NAME = "津门示范区"
STREET_NAMES = ("光明", "和平", "新华", "建设", "幸福", "长安", "振兴", "文化", "河畔")
_COMMUNITY_FIRST = "春秋丽锦翠金银桃柳丰安福瑞鸿阳美和朝新园光华兴泰"
_COMMUNITY_SECOND = "华苑园湖桥河源岸泽居康景里庭"
_ROAD_WORDS = [
    "光荣",
    "勤俭",
    "西青",
    "红旗",
    "复兴",
    "长江",
    "黄河",
    "永安",
    "团结",
    "胜利",
    "民主",
    "友谊",
    "青年",
    "育才",
    "同心",
    "兴业",
    "丰收",
    "顺达",
    "清源",
    "景明",
    "和顺",
    "春晖",
    "朝霞",
    "北辰",
    "南湖",
    "东风",
    "西湖",
    "中山",
    "解放",
    "人民",
]


# -- geometry: outline, streets, blocks --------------------------------------------
def _outline(rng: np.random.Generator) -> shapely.Polygon:
    n = 256
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 7):
        r += rng.uniform(0.02, 0.09) / (k - 1) ** 0.5 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    x, y = r * np.sin(theta), r * np.cos(theta)
    scale = np.sqrt(AREA_M2 / shapely.Polygon(np.column_stack([x, y])).area)
    return shapely.Polygon(np.column_stack([x * scale, y * scale]))


def _streets(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two families of wobbly roads over a 8 km square; minor roads cut and thinned."""
    half = 4000.0
    a1 = np.deg2rad(rng.uniform(5, 20))
    angles = (a1, a1 + np.pi / 2 + np.deg2rad(rng.normal(0, 3)))
    lines: list[shapely.LineString] = []
    arterial: list[bool] = []
    s = np.arange(-half, half + 1, 50.0)
    for ang in angles:
        d = np.array([np.sin(ang), np.cos(ang)])  # along the road (azimuth from north)
        nrm = np.array([d[1], -d[0]])
        off = -half + rng.uniform(0, 100)
        k = 0
        while off < half:
            is_art = k % 5 == 0
            amp = rng.uniform(0, 6) if is_art else rng.uniform(0, 18)
            lateral = off + amp * np.sin(2 * np.pi * s / rng.uniform(600, 2000) + rng.uniform(0, 2 * np.pi))
            pts = s[:, None] * d + lateral[:, None] * nrm
            if is_art:
                lines.append(shapely.LineString(pts))
                arterial.append(True)
            else:
                cuts = np.cumsum(rng.uniform(3, 10, 200)).astype(int)
                cuts = cuts[cuts < len(s) - 1]
                ends = np.concatenate([[0], cuts, [len(s) - 1]])
                keep = rng.random(len(ends) - 1) >= 0.22
                for i0, i1, kept in zip(ends[:-1], ends[1:], keep, strict=True):
                    if kept:
                        lines.append(shapely.LineString(pts[i0 : i1 + 1]))
                        arterial.append(False)
            off += rng.uniform(70, 105)
            k += 1
    return np.array(lines, dtype=object), np.array(arterial)


def _blocks(outline: shapely.Polygon, lines: np.ndarray) -> np.ndarray:
    """Polygonize the noded street network inside the outline into blocks (a valid coverage)."""
    net = shapely.union_all(np.concatenate([lines, [outline.exterior]]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(net)))
    inside = shapely.contains(outline, shapely.point_on_surface(faces))
    faces = faces[inside]
    # Deterministic order: by centroid, north to south then west to east.
    c = shapely.get_coordinates(shapely.centroid(faces))
    return faces[np.lexsort((np.round(c[:, 0], 3), -np.round(c[:, 1], 3)))]


def _adjacency(faces: np.ndarray, arterials: shapely.Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge-adjacent pairs of faces with their shared length and its share along arterials.

    Faces from polygonize share identical vertices along common edges, so equal
    segments (as rounded coordinate keys) are exactly the shared edges.
    """
    parts, owner = shapely.get_parts(shapely.boundary(faces), return_index=True)
    xy, part = shapely.get_coordinates(parts, return_index=True)
    same = part[:-1] == part[1:]
    a, b = xy[:-1][same], xy[1:][same]
    face = owner[part[:-1][same]]
    ka, kb = np.round(a * 1000).astype(np.int64), np.round(b * 1000).astype(np.int64)
    swap = (ka[:, 0] > kb[:, 0]) | ((ka[:, 0] == kb[:, 0]) & (ka[:, 1] > kb[:, 1]))
    key = np.where(swap[:, None], np.hstack([kb, ka]), np.hstack([ka, kb]))
    _, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    shared = counts[inv] == 2
    order = np.argsort(inv[shared], kind="stable")
    f = face[shared][order].reshape(-1, 2)
    seg_len = np.hypot(*(b - a)[shared][order][::2].T)
    mid = ((a + b) / 2)[shared][order][::2]
    on_art = shapely.dwithin(arterials, shapely.points(mid), 2.0)
    lo, hi = np.minimum(f[:, 0], f[:, 1]), np.maximum(f[:, 0], f[:, 1])
    pairs = pd.DataFrame({"i": lo, "j": hi, "len": seg_len, "art": seg_len * on_art})
    agg = pairs.groupby(["i", "j"], sort=True).sum()
    ij = np.array(agg.index.tolist(), dtype=np.int64).reshape(-1, 2)
    return ij, agg["len"].to_numpy(), agg["art"].to_numpy()


# -- seeded region growing -----------------------------------------------------------
def _kmeans_seeds(xy: np.ndarray, w: np.ndarray, k: int, eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pick ``k`` distinct seed units: weighted k-means++ then a few Lloyd steps."""
    cand = np.flatnonzero(eligible)
    pts, wts = xy[cand], w[cand]
    centres = [pts[rng.choice(len(pts), p=wts / wts.sum())]]
    d2 = ((pts - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = wts * d2
        centres.append(pts[rng.choice(len(pts), p=p / p.sum())])
        d2 = np.minimum(d2, ((pts - centres[-1]) ** 2).sum(1))
    c = np.array(centres)
    for _ in range(6):
        lab = np.argmin(((pts[:, None, :] - c[None, :, :]) ** 2).sum(2), axis=1)
        sw = np.bincount(lab, wts, minlength=k)
        moved = np.column_stack([np.bincount(lab, wts * pts[:, i], minlength=k) for i in (0, 1)])
        ok = sw > 0
        c[ok] = moved[ok] / sw[ok, None]
    # Nearest distinct eligible unit to each centre, greedily.
    dist = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(2)
    seeds = np.empty(k, dtype=np.int64)
    taken = np.zeros(len(pts), dtype=bool)
    for j in np.argsort(dist.min(0)):
        order = np.argsort(dist[:, j])
        first = order[~taken[order]][0]
        taken[first] = True
        seeds[j] = cand[first]
    return seeds


def _grow_regions(
    k: int,
    xy: np.ndarray,
    weight: np.ndarray,
    pairs: np.ndarray,
    shared: np.ndarray,
    arterial: np.ndarray,
    *,
    eligible: np.ndarray,
    arterial_penalty: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Label ``len(xy)`` units with ``k`` contiguous regions of balanced weight.

    The lightest region that can still grow takes its cheapest unassigned neighbour:
    cost = distance to the region's seed (in typical region radii) plus a penalty for
    crossing an arterial. Every unit of a connected graph ends up in a region.
    """
    n = len(xy)
    nbrs: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    frac = np.divide(arterial, shared, out=np.zeros_like(shared), where=shared > 0)
    for (i, j), f in zip(pairs.tolist(), frac.tolist(), strict=True):
        nbrs[i].append((j, f))
        nbrs[j].append((i, f))
    seeds = _kmeans_seeds(xy, weight, k, eligible, rng)
    extent = np.ptp(xy, axis=0).prod() if n > 1 else 1.0
    radius = np.sqrt(extent / k / np.pi) or 1.0
    labels = np.full(n, -1, dtype=np.int64)
    total = weight[seeds].astype(float).copy()
    cand: list[list[tuple[float, int]]] = [[] for _ in range(k)]

    def push(r: int, u: int) -> None:
        for v, f in nbrs[u]:
            if labels[v] < 0:
                cost = float(np.hypot(*(xy[v] - xy[seeds[r]]))) / radius + arterial_penalty * f
                heapq.heappush(cand[r], (cost, v))

    for r, s in enumerate(seeds):
        labels[s] = r
    for r, s in enumerate(seeds):
        push(r, int(s))
    active = [(total[r], r) for r in range(k)]
    heapq.heapify(active)
    while active:
        w, r = heapq.heappop(active)
        if w != total[r]:
            continue
        heap = cand[r]
        while heap and labels[heap[0][1]] >= 0:
            heapq.heappop(heap)
        if not heap:
            continue
        _, u = heapq.heappop(heap)
        labels[u] = r
        total[r] += weight[u]
        push(r, u)
        heapq.heappush(active, (total[r], r))
    if (labels < 0).any():  # pragma: no cover - the block graph of a polygon is connected
        msg = f"{int((labels < 0).sum())} units unreachable from any seed"
        raise RuntimeError(msg)
    return labels


def _aggregate_pairs(
    pairs: np.ndarray, shared: np.ndarray, arterial: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacency of regions from the adjacency of their units."""
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    keep = a != b
    df = pd.DataFrame(
        {"i": np.minimum(a, b)[keep], "j": np.maximum(a, b)[keep], "len": shared[keep], "art": arterial[keep]}
    )
    agg = df.groupby(["i", "j"], sort=True).sum()
    ij = np.array(agg.index.tolist(), dtype=np.int64).reshape(-1, 2)
    return ij, agg["len"].to_numpy(), agg["art"].to_numpy()


# -- population ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Density:
    """Residents per m² as a mixture of Gaussian town centres over a floor."""

    centres: np.ndarray
    sigmas: np.ndarray
    peaks: np.ndarray
    floor: float

    @classmethod
    def random(cls, rng: np.random.Generator, outline: shapely.Polygon) -> _Density:
        pts = _sample_in(outline, 5, rng)
        return cls(pts, rng.uniform(600, 1400, 5), rng.uniform(0.015, 0.035, 5), 0.006)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        d2 = ((xy[:, None, :] - self.centres[None]) ** 2).sum(2)
        return self.floor + (self.peaks * np.exp(-d2 / (2 * self.sigmas**2))).sum(1)


def _sample_in(poly: shapely.Polygon, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform points inside ``poly`` (rejection sampling)."""
    minx, miny, maxx, maxy = poly.bounds
    out = np.empty((0, 2))
    shapely.prepare(poly)
    while len(out) < n:
        m = int((n - len(out)) * 1.6) + 16
        xy = np.column_stack([rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)])
        out = np.vstack([out, xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])]])
    return out[:n]


def _round_to_total(x: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``x`` summing exactly to ``total`` (largest remainder)."""
    raw = x / x.sum() * total
    out = np.floor(raw).astype(np.int64)
    rest = total - out.sum()
    out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


# -- the levels ------------------------------------------------------------------------
def _community_names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [a + b for a in _COMMUNITY_FIRST for b in _COMMUNITY_SECOND if a != b]
    picked = rng.choice(len(combos), size=n, replace=False)
    return [combos[i] for i in picked]


def _build_grids(
    blocks: np.ndarray,
    block_pop: np.ndarray,
    block_shops: np.ndarray,
    pairs: np.ndarray,
    shared: np.ndarray,
    arterial: np.ndarray,
    rng: np.random.Generator,
    tick: Callable[[str], None],
) -> gpd.GeoDataFrame:
    """Grow blocks into 990 grids, grids into 114 communities, those into 9 streets."""
    xy = shapely.get_coordinates(shapely.centroid(blocks))
    area = shapely.area(blocks)
    eligible = area > 0.3 * np.median(area)
    n_grid, n_comm, n_street = LEVEL_COUNTS[3], LEVEL_COUNTS[2], LEVEL_COUNTS[1]
    g_of_block = _grow_regions(
        n_grid, xy, block_pop + 1.0, pairs, shared, arterial, eligible=eligible, arterial_penalty=0.5, rng=rng
    )
    tick("grids")
    gp, gs, ga = _aggregate_pairs(pairs, shared, arterial, g_of_block)
    g_pop = np.bincount(g_of_block, block_pop, minlength=n_grid)
    g_area = np.bincount(g_of_block, area, minlength=n_grid)
    g_xy = np.column_stack([np.bincount(g_of_block, xy[:, i] * area, minlength=n_grid) / g_area for i in (0, 1)])
    c_of_grid = _grow_regions(
        n_comm,
        g_xy,
        g_pop + 1.0,
        gp,
        gs,
        ga,
        eligible=np.ones(n_grid, bool),
        arterial_penalty=4.0,
        rng=rng,
    )
    cp, cs, ca = _aggregate_pairs(gp, gs, ga, c_of_grid)
    c_area = np.bincount(c_of_grid, g_area, minlength=n_comm)
    c_xy = np.column_stack([np.bincount(c_of_grid, g_xy[:, i] * g_area, minlength=n_comm) / c_area for i in (0, 1)])
    s_of_comm = _grow_regions(
        n_street,
        c_xy,
        c_area,
        cp,
        cs,
        ca,
        eligible=np.ones(n_comm, bool),
        arterial_penalty=12.0,
        rng=rng,
    )
    tick("communities and streets")
    # Number the levels in reading order (north-west first) and give them codes and names.
    s_order = _reading_order(c_xy, c_area, s_of_comm, n_street)
    street_code = {s: f"D01-S{i + 1:02d}" for i, s in enumerate(s_order)}
    comm_code: dict[int, str] = {}
    comm_names = iter(_community_names(rng, n_comm))
    comm_name: dict[int, str] = {}
    c_order = _reading_order(g_xy, g_area, c_of_grid, n_comm)
    counters: dict[int, int] = {}
    for c in sorted(range(n_comm), key=lambda c: (s_order.index(int(s_of_comm[c])), c_order.index(c))):
        s = int(s_of_comm[c])
        counters[s] = counters.get(s, 0) + 1
        comm_code[c] = f"{street_code[s]}-C{counters[s]:02d}"
        comm_name[c] = next(comm_names)
    g_order = _reading_order(xy, area, g_of_block, n_grid)
    grid_code: dict[int, str] = {}
    grid_no: dict[int, int] = {}
    counters = {}
    for g in g_order:
        c = int(c_of_grid[g])
        counters[c] = counters.get(c, 0) + 1
        grid_code[g] = f"{comm_code[c]}-G{counters[c]:02d}"
        grid_no[g] = counters[c]

    # Geometry: every grid is the coverage union of its blocks; parents likewise.
    def unions(labels: np.ndarray, k: int) -> list[shapely.Geometry]:
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(k + 1))
        return [shapely.coverage_union_all(blocks[order[bounds[i] : bounds[i + 1]]]) for i in range(k)]

    c_of_block = c_of_grid[g_of_block]
    s_of_block = s_of_comm[c_of_block]
    geoms = {
        0: [shapely.coverage_union_all(blocks)],
        1: unions(s_of_block, n_street),
        2: unions(c_of_block, n_comm),
        3: unions(g_of_block, n_grid),
    }
    tick("grid geometry")
    households = np.maximum(np.round(block_pop / rng.uniform(2.3, 2.8, len(block_pop))), 0).astype(np.int64)
    work = {
        "population": block_pop.astype(np.int64),
        "households": households,
        "shops": block_shops.astype(np.int64),
    }
    g_work = {k: np.bincount(g_of_block, v, minlength=n_grid).astype(np.int64) for k, v in work.items()}
    rows: list[dict[str, Any]] = [
        {
            "grid_id": "D01",
            "parent_id": None,
            "level": 0,
            "name": DISTRICT_NAME,
            **{k: int(v.sum()) for k, v in g_work.items()},
        }
    ]
    rows += [
        {
            "grid_id": street_code[s],
            "parent_id": "D01",
            "level": 1,
            "name": f"{STREET_NAMES[i]}街道",
            **{k: int(v[s_of_comm[c_of_grid] == s].sum()) for k, v in g_work.items()},
        }
        for i, s in enumerate(s_order)
    ]
    rows += [
        {
            "grid_id": comm_code[c],
            "parent_id": street_code[int(s_of_comm[c])],
            "level": 2,
            "name": f"{comm_name[c]}社区",
            **{k: int(v[c_of_grid == c].sum()) for k, v in g_work.items()},
        }
        for c in sorted(comm_code, key=comm_code.__getitem__)
    ]
    rows += [
        {
            "grid_id": grid_code[g],
            "parent_id": comm_code[int(c_of_grid[g])],
            "level": 3,
            "name": f"{comm_name[int(c_of_grid[g])]}第{grid_no[g]}网格",
            **{k: int(v[g]) for k, v in g_work.items()},
        }
        for g in sorted(grid_code, key=grid_code.__getitem__)
    ]
    geom_of = {"D01": geoms[0][0]}
    geom_of.update({street_code[s]: geoms[1][s] for s in range(n_street)})
    geom_of.update({comm_code[c]: geoms[2][c] for c in range(n_comm)})
    geom_of.update({grid_code[g]: geoms[3][g] for g in range(n_grid)})
    df = pd.DataFrame(rows)
    df.insert(3, "level_name", [LEVEL_NAMES[lv] for lv in df["level"]])
    df = df[[*GRIDS.names]]
    return gpd.GeoDataFrame(df, geometry=[geom_of[i] for i in df["grid_id"]], crs=f"EPSG:{METRIC_EPSG}")


def _reading_order(xy: np.ndarray, w: np.ndarray, labels: np.ndarray, k: int) -> list[int]:
    """Regions sorted north to south in bands, then west to east (how codes are read on a map)."""
    sw = np.bincount(labels, w, minlength=k)
    cx = np.bincount(labels, xy[:, 0] * w, minlength=k) / sw
    cy = np.bincount(labels, xy[:, 1] * w, minlength=k) / sw
    band = np.floor((cy.max() - cy) / max(np.ptp(cy) / max(np.sqrt(k), 1), 1e-9)).astype(int)
    return [int(i) for i in np.lexsort((cx, band))]


def _street_layer(
    lines: np.ndarray, is_art: np.ndarray, outline: shapely.Polygon, rng: np.random.Generator
) -> gpd.GeoDataFrame:
    clipped = shapely.intersection(lines, outline)
    keep = ~shapely.is_empty(clipped) & (shapely.length(clipped) > 1.0)
    parts, idx = shapely.get_parts(clipped[keep], return_index=True)
    art = is_art[keep][idx]
    src = np.flatnonzero(keep)[idx]
    words = list(_ROAD_WORDS)
    rng.shuffle(words)
    art_ids = sorted(set(src[art].tolist()))
    art_name = {s: words[i % len(words)] + ("道" if i % 2 else "路") for i, s in enumerate(art_ids)}
    names = [art_name[s] if a else None for s, a in zip(src.tolist(), art.tolist(), strict=True)]
    return gpd.GeoDataFrame(
        {
            "street_id": [f"R{i + 1:05d}" for i in range(len(parts))],
            "name": names,
            "road_class": np.where(art, "arterial", "local"),
            "width_m": np.where(art, 24.0, 8.0),
        },
        geometry=parts,
        crs=f"EPSG:{METRIC_EPSG}",
    )
