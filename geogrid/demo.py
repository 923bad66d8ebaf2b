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

import contextlib
import fcntl
import heapq
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely
from pyproj import Transformer

from layers.schema import CAMERAS, GRIDS, INCIDENTS, STORAGE_CRS, coerce_dtypes
from layers.store import GeoPackageStore

__all__ = [
    "DEMO_VERSION",
    "DemoDistrict",
    "build_demo",
    "demo_store",
    "write_demo",
]

DEMO_VERSION = 1
"""Bumped whenever the generator's output changes, so cached demo stores are rebuilt."""

METRIC_EPSG = 4548
"""CGCS2000 / 3-degree Gauss–Krüger CM 117E: the metric CRS of Tianjin."""

CENTRE_LONLAT = (117.155, 39.165)
"""Centre of the demo district (north-west Tianjin, where Hongqiao lies)."""

AREA_M2 = 23.76e6
LEVEL_COUNTS = (1, 9, 114, 990)
LEVEL_NAMES = ("district", "street", "community", "grid")
YEAR = 2025
TZ = "Asia/Shanghai"

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

CATEGORIES = (
    "环境卫生",
    "占道经营",
    "违章停车",
    "违法建设",
    "市政设施",
    "园林绿化",
    "噪音扰民",
    "安全隐患",
    "邻里纠纷",
    "消防通道",
    "养犬管理",
    "小广告",
)
_CATEGORY_P = np.array([0.22, 0.12, 0.12, 0.04, 0.10, 0.06, 0.07, 0.07, 0.05, 0.04, 0.03, 0.08])
_PHRASES: dict[str, tuple[str, ...]] = {
    "环境卫生": ("垃圾桶满溢未清运", "楼道堆放杂物", "路面有大量垃圾", "绿地内有建筑垃圾"),
    "占道经营": ("商贩占道摆摊", "早市占用人行道", "店外经营堵塞通道"),
    "违章停车": ("车辆占用消防通道", "非机动车乱停放", "机动车停在人行道上"),
    "违法建设": ("楼顶私搭乱建", "院内违建棚房", "临街违规搭建"),
    "市政设施": ("井盖破损", "路灯不亮", "人行道砖松动", "雨水口堵塞"),
    "园林绿化": ("树木倒伏", "绿地被踩踏", "树枝遮挡路灯"),
    "噪音扰民": ("夜间施工噪音", "广场舞音响过大", "商铺喇叭扰民"),
    "安全隐患": ("电动车楼道充电", "飞线充电", "外墙脱落"),
    "邻里纠纷": ("楼上漏水纠纷", "公共区域占用纠纷", "宠物扰邻"),
    "消防通道": ("消防通道被堵", "消防栓被遮挡"),
    "养犬管理": ("遛狗不拴绳", "犬只扰民"),
    "小广告": ("墙面张贴小广告", "电线杆小广告", "楼道喷涂小广告"),
}
_CITIZEN_TEXT = (
    "门口贴了很多<办证>小广告，请尽快处理",
    '居民反映："已经三天没人管了" & 希望回复',
    "有人在墙上写了<script>alert('办证')</script>",
    "请联系我 <b>138****0000</b>，谢谢",
    "问题在`${楼号}`号楼东侧 \\ 二单元",
)
"""Citizens write free text: some of it looks like markup and must always be escaped."""

SOURCES = ("grid_worker", "hotline", "snapshot", "camera", "other")
_SOURCE_P = np.array([0.86, 0.07, 0.04, 0.025, 0.005])
_MEDIAN_CLOSE_H = np.array([6.0, 40.0, 20.0, 8.0, 24.0])
OWNERS = ("公安", "城管", "教育", "应急管理", "民政", "交通")
_OWNER_P = np.array([0.55, 0.15, 0.10, 0.08, 0.05, 0.07])


@dataclass(frozen=True)
class DemoDistrict:
    """The layers of the demo district, in the storage CRS (EPSG:4326).

    Attributes
    ----------
    grids, incidents, cameras
        The three standard layers, in their canonical schema and dtypes.
    streets
        The street centre lines (``name``, ``road_class``: arterial / local, ``width_m``).
    metadata
        Seed, version and the planted hot spots (``demo_hotspots``).
    """

    grids: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame
    cameras: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame
    metadata: dict[str, Any]

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """Return the layers by store name."""
        return {"grids": self.grids, "incidents": self.incidents, "cameras": self.cameras, "streets": self.streets}


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


# -- cameras ------------------------------------------------------------------------------
def _cameras(
    rng: np.random.Generator, outline: shapely.Polygon, roads: np.ndarray, is_art: np.ndarray, n: int
) -> gpd.GeoDataFrame:
    """``n`` cameras on poles beside the streets, looking along them (a fifth are domes)."""
    lengths = shapely.length(roads)
    p = lengths * np.where(is_art, 3.0, 1.0)
    shapely.prepare(outline)
    xs: list[np.ndarray] = []
    heads: list[np.ndarray] = []
    have = 0
    while have < n:
        m = int((n - have) * 1.2) + 8
        idx = rng.choice(len(roads), size=m, p=p / p.sum())
        d = rng.uniform(0, 1, m) * lengths[idx]
        a = shapely.get_coordinates(shapely.line_interpolate_point(roads[idx], d))
        b = shapely.get_coordinates(shapely.line_interpolate_point(roads[idx], np.minimum(d + 1.0, lengths[idx])))
        t = b - a
        t /= np.maximum(np.hypot(t[:, 0], t[:, 1]), 1e-9)[:, None]
        side = rng.choice([-1.0, 1.0], m)
        off = rng.uniform(4, 10, m)
        xy = a + np.column_stack([t[:, 1], -t[:, 0]]) * (side * off)[:, None]
        az = np.degrees(np.arctan2(t[:, 0], t[:, 1]))
        az = az + rng.choice([0.0, 180.0], m) + rng.normal(0, 15, m)
        inside = shapely.contains_xy(outline, xy[:, 0], xy[:, 1])
        xs.append(xy[inside])
        heads.append(np.mod(az[inside], 360.0))
        have += int(inside.sum())
    xy = np.vstack(xs)[:n]
    heading = np.round(np.concatenate(heads)[:n], 1)
    dome = rng.random(n) < 0.2
    fov = np.where(dome, 360.0, np.round(rng.uniform(50, 100, n)))
    rng_m = np.where(
        dome, np.round(rng.uniform(40, 80, n)), np.round(np.clip(rng.lognormal(np.log(70), 0.3, n), 30, 150))
    )
    status = np.where(rng.random(n) < 0.04, "offline", "online")
    owner = np.array(OWNERS)[rng.choice(len(OWNERS), n, p=_OWNER_P)]
    return gpd.GeoDataFrame(
        {
            "camera_id": [f"CAM{i + 1:05d}" for i in range(n)],
            "heading_deg": np.where(dome, 0.0, heading),
            "fov_deg": fov,
            "range_m": rng_m,
            "status": status,
            "owner": owner,
        },
        geometry=shapely.points(xy),
        crs=f"EPSG:{METRIC_EPSG}",
    )


# -- incidents ----------------------------------------------------------------------------
_HOTSPOT_KINDS = (
    ("persistent", 4),
    ("emerging", 3),
    ("fading", 3),
    ("intensifying", 1),
    ("sporadic", 2),
    ("oscillating", 2),
)


def _profile(kind: str, days: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Relative daily intensity of a hot spot over the year (one value per day)."""
    t = days / days[-1]
    if kind == "persistent":
        return np.ones_like(t)
    if kind == "emerging":
        start = rng.uniform(0.55, 0.7)
        return np.clip((t - start) / (1 - start), 0, None) * 3.0
    if kind == "fading":
        end = rng.uniform(0.35, 0.5)
        return np.clip(1 - t / end, 0, None) * 3.0
    if kind == "intensifying":
        return 0.3 + 1.7 * t**2
    if kind == "sporadic":
        weeks = np.zeros(53)
        weeks[rng.choice(53, 6, replace=False)] = 1
        return weeks[(days // 7).astype(int)] * 4.0
    # oscillating: on and off every other month
    return ((days // 61) % 2 == 0).astype(float) * 2.0


def _hours(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hour of day (float) by source: patrols in working hours, the hotline into the evening."""
    n = len(source)
    h = np.empty(n)
    gw = source == "grid_worker"
    morning = rng.random(n) < 0.55
    h[gw] = np.where(morning[gw], rng.normal(9.5, 1.3, n)[gw], rng.normal(15.0, 1.5, n)[gw])
    hl = source == "hotline"
    h[hl] = np.where(morning[hl], rng.normal(10.5, 2.0, n)[hl], rng.normal(19.0, 2.2, n)[hl])
    other = ~(gw | hl)
    h[other] = rng.uniform(7, 22, n)[other]
    cam = source == "camera"
    h[cam] = rng.uniform(0, 24, n)[cam]
    return np.mod(h, 24.0)


def _incidents(
    rng: np.random.Generator,
    outline: shapely.Polygon,
    density: _Density,
    n: int,
) -> tuple[gpd.GeoDataFrame, list[dict[str, Any]]]:
    days = np.arange(365)
    start = pd.Timestamp(f"{YEAR}-01-01", tz=TZ)
    weekday = ((start.day_of_week + days) % 7) < 5
    base_day = np.where(weekday, 1.1, 0.8) * (1 + 0.15 * np.sin(2 * np.pi * (days - 100) / 365))
    n_hot_total = int(n * 0.25)
    n_bg = n - n_hot_total
    # Background: where people live.
    pool = _sample_in(outline, n_bg * 4, rng)
    dens = density(pool)
    bg = pool[rng.choice(len(pool), n_bg, replace=False, p=dens / dens.sum())]
    bg_day = rng.choice(365, n_bg, p=base_day / base_day.sum())
    bg_cat = rng.choice(len(CATEGORIES), n_bg, p=_CATEGORY_P / _CATEGORY_P.sum())
    # Hot spots with time profiles.
    kinds = [k for k, c in _HOTSPOT_KINDS for _ in range(c)]
    centres = _sample_in(outline.buffer(-300), len(kinds), rng)
    shares = rng.uniform(0.5, 1.5, len(kinds))
    counts = _round_to_total(shares, n_hot_total)
    hot_xy, hot_day, hot_cat, truth = [], [], [], []
    for kind, c, m in zip(kinds, centres, counts, strict=True):
        sigma = rng.uniform(40, 110)
        prof = _profile(kind, days.astype(float), rng) * base_day
        cat = int(rng.choice(len(CATEGORIES), p=_CATEGORY_P / _CATEGORY_P.sum()))
        xy = c + rng.normal(0, sigma, (m, 2))
        inside = shapely.contains_xy(outline, xy[:, 0], xy[:, 1])
        xy[~inside] = c  # the rare point thrown outside the district lands on the centre
        hot_xy.append(xy)
        hot_day.append(rng.choice(365, m, p=prof / prof.sum()))
        hot_cat.append(np.where(rng.random(m) < 0.7, cat, rng.choice(len(CATEGORIES), m)))
        truth.append(
            {
                "kind": kind,
                "x": float(c[0]),
                "y": float(c[1]),
                "sigma_m": round(float(sigma), 1),
                "category": CATEGORIES[cat],
                "incidents": int(m),
            }
        )
    xy = np.vstack([bg, *hot_xy])
    day = np.concatenate([bg_day, *hot_day])
    cat_i = np.concatenate([bg_cat, *hot_cat])
    source = np.array(SOURCES)[rng.choice(len(SOURCES), n, p=_SOURCE_P)]
    hours = _hours(source, rng)
    offset_s = day * 86400 + np.floor(hours * 3600) + rng.integers(0, 60, n)
    reported = start + pd.to_timedelta(offset_s, unit="s")
    src_i = pd.Series(source).map({s: i for i, s in enumerate(SOURCES)}).to_numpy()
    dur_h = rng.lognormal(np.log(_MEDIAN_CLOSE_H[src_i]), 1.0)
    closed = reported + pd.to_timedelta(np.round(dur_h * 3600), unit="s")
    end = pd.Timestamp(f"{YEAR + 1}-01-01", tz=TZ)
    stuck = rng.random(n) < 0.006
    cancelled = rng.random(n) < 0.003
    is_open = (closed >= end) | stuck
    open_status = np.array(["reported", "accepted", "dispatched", "handling"])[rng.choice(4, n, p=[0.1, 0.2, 0.3, 0.4])]
    status = np.where(cancelled, "cancelled", np.where(is_open, open_status, "closed"))
    closed_at = pd.Series(closed).where(status == "closed")
    cats = np.array(CATEGORIES)[cat_i]
    phrase_pick = rng.random(n)
    citizen = rng.random(n) < 0.002
    texts = []
    for c, u, cit in zip(cats.tolist(), phrase_pick.tolist(), citizen.tolist(), strict=True):
        opts = _PHRASES[c]
        texts.append(_CITIZEN_TEXT[int(u * len(_CITIZEN_TEXT))] if cit else opts[int(u * len(opts))])
    order = np.argsort(offset_s, kind="stable")
    gdf = gpd.GeoDataFrame(
        {
            "incident_id": [f"E{YEAR}{i + 1:07d}" for i in range(n)],
            "reported_at": reported[order].tz_convert("UTC"),
            "closed_at": closed_at.iloc[order].dt.tz_convert("UTC").to_numpy(),
            "category": cats[order],
            "source": source[order],
            "status": status[order],
            "description": np.array(texts, dtype=object)[order],
        },
        geometry=shapely.points(xy[order]),
        crs=f"EPSG:{METRIC_EPSG}",
    )
    gdf["closed_at"] = pd.to_datetime(gdf["closed_at"], utc=True)
    return gdf, truth


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
        Grids (1 / 9 / 114 / 990 on levels 0–3), incidents, cameras and streets in
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

    The file holds the layers ``grids``, ``incidents``, ``cameras`` and ``streets`` and
    opens directly in QGIS. Returns the store.
    """
    demo = build_demo(seed, n_incidents=n_incidents, n_cameras=n_cameras, progress=progress)
    store = GeoPackageStore(path)
    store.write(demo.layers(), metadata=demo.metadata)
    if progress is not None:
        progress("written")
    return store


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


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
    with _file_lock(path.with_name(path.name + ".build.lock")):
        if not path.exists():
            write_demo(path, seed, progress=progress)
    return path
