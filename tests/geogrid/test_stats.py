"""Grid statistics: hand-computed figures on the tiny hierarchy, windows, filters, by, smoothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import geopandas as gpd

from geogrid.stats import STAT_COLUMNS, grid_stats, open_at, smooth_rates, summarise_codes
from layers.errors import CRSError

X0, Y0, D = 117.20, 39.10, 0.01
T0 = pd.Timestamp("2025-03-01 08:00", tz="UTC")


@pytest.fixture
def grids(tiny_grids):
    g = tiny_grids.copy()
    g["population"] = pd.array([4000, 3000, 1000, 2000, 1000, 1000, 0], dtype="Int64")
    g["households"] = pd.array([1600, 1200, 400, 800, 400, 400, None], dtype="Int64")
    return g


@pytest.fixture
def incidents(grids):
    # G1: 3 incidents, G2: 1, G3: 1, G4: 0; one outside the district
    rows = [
        # x, y, hours after T0 reported, hours to close (None = open), status, source, category
        (X0 + 0.002, Y0 + 0.001, 0, 2.0, "closed", "hotline", "噪音扰民"),
        (X0 + 0.003, Y0 + 0.002, 1, 4.0, "closed", "grid_worker", "环境卫生"),
        (X0 + 0.004, Y0 + 0.003, 2, None, "handling", "grid_worker", "环境卫生"),
        (X0 + 0.005, Y0 + 0.008, 3, 10.0, "closed", "grid_worker", "环境卫生"),
        (X0 + 0.015, Y0 + 0.002, 100, None, "cancelled", "hotline", "噪音扰民"),
        (X0 - 0.5, Y0, 5, None, "reported", "hotline", "噪音扰民"),
    ]
    x, y, rep, close, status, source, cat = zip(*rows, strict=True)
    reported = [T0 + pd.Timedelta(hours=h) for h in rep]
    closed = [r + pd.Timedelta(hours=c) if c is not None else pd.NaT for r, c in zip(reported, close, strict=True)]
    return gpd.GeoDataFrame(
        {
            "incident_id": [f"E{i}" for i in range(len(rows))],
            "reported_at": pd.to_datetime(reported, utc=True),
            "closed_at": pd.to_datetime(closed, utc=True),
            "category": pd.array(cat, dtype="string"),
            "source": pd.array(source, dtype="string"),
            "status": pd.array(status, dtype="string"),
        },
        geometry=gpd.points_from_xy(x, y),
        crs=grids.crs,
    )


def test_hand_computed_figures_on_the_tiny_hierarchy(incidents, grids):
    now = T0 + pd.Timedelta(hours=80)
    s = grid_stats(incidents, grids, level=2, now=now).set_index("grid_id")
    assert list(s.index) == ["G1", "G2", "G3", "G4"]
    assert s["count"].tolist() == [3, 1, 1, 0]
    assert s["small"].tolist() == [True] * 4
    assert s["closed"].tolist() == [2, 1, 0, 0]
    np.testing.assert_allclose(s["closing_rate"].to_numpy(), [2 / 3, 1.0, 0.0, np.nan])
    np.testing.assert_allclose(s["close_hours_median"].to_numpy(), [3.0, 10.0, np.nan, np.nan])
    np.testing.assert_allclose(s["close_hours_p90"].to_numpy(), [2 + 0.9 * 2, 10.0, np.nan, np.nan])
    assert s["open"].tolist() == [1, 0, 0, 0]  # cancelled is not open
    assert s["overdue"].tolist() == [1, 0, 0, 0]  # 78 h old > 72 h
    assert s["hotline"].tolist() == [1, 0, 1, 0]
    assert s["grid_worker"].tolist() == [2, 1, 0, 0]
    np.testing.assert_allclose(s["hotline_ratio"].to_numpy(), [0.5, 0.0, np.nan, np.nan])
    np.testing.assert_allclose(s["per_1000_residents"].to_numpy(), [1.5, 1.0, 1.0, np.nan])  # G4 has 0 residents
    np.testing.assert_allclose(s["per_household"].to_numpy(), [3 / 800, 1 / 400, 1 / 400, np.nan])
    # each basic grid: 0.01° × 0.005° at 39.1° N ≈ 863.7 m × 555.0 m
    np.testing.assert_allclose(s["area_km2"].to_numpy(), [0.4794] * 4, rtol=2e-3)
    np.testing.assert_allclose(s["per_km2"].to_numpy(), s["count"].to_numpy() / s["area_km2"].to_numpy())
    assert list(s.columns[-len(STAT_COLUMNS) - 1 : -1]) == list(STAT_COLUMNS)


def test_result_keeps_the_grids_index_crs_and_geometry(incidents, grids):
    g = grids.set_index(pd.Index([f"r{i}" for i in range(len(grids))]))
    s = grid_stats(incidents, g)
    assert list(s.index) == list(g.index)
    assert s.crs == g.crs
    assert s.geometry.geom_equals(g.geometry).all()
    assert s.set_index("grid_id").loc[["D", "S1", "S2"], "count"].tolist() == [
        5,
        4,
        1,
    ]  # the outside one is not counted


def test_overdue_defaults_to_the_latest_time_in_the_data(incidents, grids):
    s = grid_stats(incidents, grids, level=2).set_index("grid_id")
    # latest time: reported_at of the cancelled one, T0+100 h; the open one is 98 h old
    assert s.loc["G1", "overdue"] == 1
    s = grid_stats(incidents, grids, level=2, overdue_after="120h").set_index("grid_id")
    assert s.loc["G1", "overdue"] == 0


@pytest.mark.parametrize("written", ["5d", "5D", "120H", "120 hours", "7200min", "0.5 weeks", "5 days"])
def test_overdue_after_in_any_unit_spelling_without_pandas_warnings(incidents, grids, written):
    """pandas 3 warns on "5d", "120H" (and will refuse them); they are read as users write them (warnings are errors here)."""
    same = grid_stats(incidents, grids, level=2, overdue_after=pd.Timedelta(hours=120 if "week" not in written else 84))
    got = grid_stats(incidents, grids, level=2, overdue_after=written)
    assert got["overdue"].tolist() == same["overdue"].tolist()


def test_overdue_after_of_months_is_refused_not_read_as_minutes(incidents, grids):
    with pytest.raises(ValueError, match=r"overdue_after='3M' is not a duration"):
        grid_stats(incidents, grids, level=2, overdue_after="3M")


def test_window_and_filters(incidents, grids):
    s = grid_stats(incidents, grids, level=2, since=T0 + pd.Timedelta(hours=1), until=T0 + pd.Timedelta(hours=3))
    assert s["count"].tolist() == [2, 1, 0, 0]  # both ends include the instant they name
    s = grid_stats(incidents, grids, level=2, since=T0 + pd.Timedelta(hours=1), until=T0 + pd.Timedelta(hours=2.9))
    assert s["count"].tolist() == [2, 0, 0, 0]
    s = grid_stats(incidents, grids, level=2, source="hotline")
    assert s["count"].tolist() == [1, 0, 1, 0]
    s = grid_stats(incidents, grids, level=1, category=["环境卫生"])
    assert s["count"].tolist() == [3, 0]


def test_by_category_gives_a_row_per_grid_and_value(incidents, grids):
    s = grid_stats(incidents, grids, level=2, by="category")
    assert len(s) == 8
    assert s["category"].tolist() == ["噪音扰民", "环境卫生"] * 4
    got = s.set_index(["grid_id", "category"])["count"]
    assert got[("G1", "环境卫生")] == 2
    assert got[("G1", "噪音扰民")] == 1
    assert got[("G4", "环境卫生")] == 0
    assert got.sum() == 5


def test_precomputed_assignment_columns_are_used(incidents, grids):
    inc = incidents.copy()
    inc["grid_id_2"] = pd.array(["G4"] * len(inc), dtype="string")
    assert grid_stats(inc, grids, level=2)["count"].tolist() == [0, 0, 0, 6]


def test_refusals(incidents, grids):
    with pytest.raises(ValueError, match=r"no level 7; levels present: \[0, 1, 2\]"):
        grid_stats(incidents, grids, level=7)
    with pytest.raises(ValueError, match="not a date"):
        grid_stats(incidents, grids, since="last tuesday-ish")
    with pytest.raises(ValueError, match="by='nope'"):
        grid_stats(incidents, grids, by="nope")
    with pytest.raises(CRSError, match="to_crs"):
        grid_stats(incidents.to_crs(3857), grids)


def test_summarise_codes_ignores_unassigned_and_interpolates_quantiles():
    out = summarise_codes([0, 0, 0, 0, 1, -1], 2, close_hours=[1, 2, 3, 10, np.nan, 7], is_hotline=[1, 0, 0, 0, 1, 1])
    assert out["count"].tolist() == [4, 1]
    assert out["hotline"].tolist() == [1, 1]
    np.testing.assert_allclose(out["close_hours_median"], [2.5, np.nan])
    np.testing.assert_allclose(out["close_hours_p90"], [np.percentile([1, 2, 3, 10], 90), np.nan])


def test_smoothing_agrees_with_esda():
    from esda import smoothing  # the reference implementation (esda is a dependency)

    rng = np.random.default_rng(0)
    base = rng.integers(50, 5000, 200).astype(float)
    events = rng.poisson(base * rng.gamma(2.0, 0.005, 200))
    expected = smoothing.Empirical_Bayes(events, base).r.ravel()
    np.testing.assert_allclose(smooth_rates(events, base), expected, rtol=1e-12)


def test_smoothing_shrinks_to_the_global_rate_when_rates_vary_by_chance_only():
    base = np.full(5, 1000.0)
    events = np.array([10, 10, 11, 9, 10])  # far less spread than Poisson: between-unit variance < 0
    np.testing.assert_allclose(smooth_rates(events, base), np.full(5, 0.01))
    assert np.isnan(smooth_rates([1, 2], [0, 10])[0])


def test_smooth_columns_on_the_demo(demo_district):
    s = grid_stats(demo_district.incidents, demo_district.grids, level=3, smooth=True, until="2025-02-01")
    assert {"per_km2_eb", "per_1000_residents_eb"} <= set(s.columns)
    raw, eb = s["per_1000_residents"], s["per_1000_residents_eb"]
    ok = raw.notna()
    assert raw[ok].std() > eb[ok].std()  # shrinkage towards the global rate
    assert s["small"].sum() > 0


def test_by_with_nothing_left_after_the_filters_gives_no_rows(tiny_grids):
    import pandas as pd

    import geopandas as gpd
    import shapely

    from geogrid.stats import grid_stats

    incidents = gpd.GeoDataFrame(
        {
            "incident_id": ["e1"],
            "reported_at": pd.to_datetime(["2025-03-01 08:00"], utc=True),
            "closed_at": pd.to_datetime([None], utc=True),
            "category": ["环境卫生"],
            "source": ["hotline"],
            "status": ["handling"],
        },
        geometry=[shapely.Point(117.205, 39.102)],
        crs="EPSG:4326",
    )
    some = grid_stats(incidents, tiny_grids, level=2, by="category")
    none = grid_stats(incidents, tiny_grids, level=2, category="no such category", by="category")
    assert len(some) == 4
    assert len(none) == 0
    assert list(none.columns) == list(some.columns)


def _one_incident(grids, *, closed_after_days, status):
    t = pd.Timestamp("2025-07-01 09:00", tz="Asia/Shanghai")
    return gpd.GeoDataFrame(
        {
            "incident_id": ["E1"],
            "reported_at": [t],
            "closed_at": pd.to_datetime(
                [t + pd.Timedelta(days=closed_after_days) if closed_after_days is not None else pd.NaT], utc=True
            ),
            "category": ["环境卫生"],
            "source": ["hotline"],
            "status": [status],
        },
        geometry=gpd.points_from_xy([X0 + 0.002], [Y0 + 0.001]),
        crs=grids.crs,
    )


@pytest.mark.parametrize(
    ("closed_after_days", "status", "expected"),
    [
        (50, "closed", (1, 1)),  # closed on 20 August: open and overdue on 31 July
        (50, "cancelled", (1, 1)),  # cancelled on 20 August: still pending on 31 July
        (3, "closed", (0, 0)),  # closed on 4 July
        (None, "handling", (1, 1)),  # still open today
        (None, "closed", (0, 0)),  # done with no closed_at: taken as done (see open_at)
    ],
    ids=["closed-after-window", "cancelled-after-window", "closed-in-window", "still-open", "closed-no-time"],
)
def test_open_and_overdue_are_the_backlog_at_the_window_end(grids, closed_after_days, status, expected):
    inc = _one_incident(grids, closed_after_days=closed_after_days, status=status)
    s = grid_stats(inc, grids, level=0, since="2025-07-01", until="2025-07-31")
    assert (int(s["open"].iloc[0]), int(s["overdue"].iloc[0])) == expected
    # closed/closing_rate keep telling what became of the window's incidents
    assert int(s["closed"].iloc[0]) == (status == "closed")


def test_an_incident_closed_exactly_at_the_window_end_was_open_during_it(grids):
    inc = _one_incident(grids, closed_after_days=None, status="closed")
    inc["closed_at"] = pd.to_datetime(["2025-08-01 00:00"]).tz_localize("Asia/Shanghai").tz_convert("UTC")
    assert grid_stats(inc, grids, level=0, until="2025-07-31")["open"].iloc[0] == 1
    assert grid_stats(inc, grids, level=0, until="2025-08-01")["open"].iloc[0] == 0


def test_open_at_counts_only_what_was_reported_and_not_yet_closed(incidents):
    # at T0+1.5 h: E0 (closed T0+2 h) and E1 (reported T0+1 h) are open; the rest come later;
    # at T0+2 h exactly E0 is closed and E2 reported: an instant includes what happens at it
    at = T0 + pd.Timedelta(hours=1, minutes=30)
    assert open_at(incidents, at).tolist() == [True, True, False, False, False, False]
    assert open_at(incidents, T0 + pd.Timedelta(hours=2)).tolist() == [False, True, True, False, False, False]
