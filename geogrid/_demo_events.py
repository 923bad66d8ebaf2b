"""Private: the demo district's cameras and incidents."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from geogrid._demo_city import METRIC_EPSG, _Density, _round_to_total, _sample_in

YEAR = 2025
TZ = "Asia/Shanghai"

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


# -- cameras ------------------------------------------------------------------------------
def _cameras(
    rng: np.random.Generator, outline: shapely.Polygon, roads: np.ndarray, is_art: np.ndarray, n: int
) -> gpd.GeoDataFrame:
    """``n`` cameras on poles beside the streets, looking along them (a fifth are domes)."""
    lengths = shapely.length(roads)
    p = lengths * np.where(is_art, 3.0, 1.0)
    shapely.prepare(outline)
    xs: list[np.ndarray] = [np.empty((0, 2))]
    heads: list[np.ndarray] = [np.empty(0)]
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
    if n == 0:
        empty = gpd.GeoDataFrame(
            {
                "incident_id": pd.Series([], dtype="string"),
                "reported_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                "closed_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                **{c: pd.Series([], dtype="string") for c in ("category", "source", "status", "description")},
            },
            geometry=gpd.GeoSeries([], crs=f"EPSG:{METRIC_EPSG}"),
            crs=f"EPSG:{METRIC_EPSG}",
        )
        return empty, []
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
