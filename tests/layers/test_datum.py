"""GCJ-02 / BD-09 <-> WGS-84: published reference pairs, round trips, arrays, NaN."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pyproj import Geod

from layers import datum

DATA = Path(__file__).resolve().parents[1] / "data" / "datum_reference_pairs.csv"
GEOD = Geod(ellps="WGS84")

CONVERT = {
    ("wgs84", "gcj02"): datum.wgs84_to_gcj02,
    ("gcj02", "wgs84"): datum.gcj02_to_wgs84,
    ("gcj02", "bd09"): datum.gcj02_to_bd09,
    ("bd09", "gcj02"): datum.bd09_to_gcj02,
    ("wgs84", "bd09"): datum.wgs84_to_bd09,
    ("bd09", "wgs84"): datum.bd09_to_wgs84,
}


def metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Geodesic distance in metres between two sets of lon/lat."""
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


def reference_pairs() -> list:
    with DATA.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    return [
        pytest.param(
            r["src"],
            r["dst"],
            (float(r["lon_in"]), float(r["lat_in"])),
            (float(r["lon_out"]), float(r["lat_out"])),
            id=f"{r['source']}-{r['src']}-to-{r['dst']}-{r['lon_in']}-{r['lat_in']}",
        )
        for r in rows
    ]


def test_reference_file_covers_every_direction_we_ship():
    pairs = {(p.values[0], p.values[1]) for p in reference_pairs()}
    assert len(reference_pairs()) >= 10
    # forward formulas, both iterative inverses, and the composed WGS-84 -> BD-09
    assert {("wgs84", "gcj02"), ("gcj02", "wgs84"), ("gcj02", "bd09"), ("bd09", "gcj02"), ("wgs84", "bd09")} <= pairs


@pytest.mark.parametrize(("src", "dst", "given", "expected"), reference_pairs())
def test_published_reference_pair_within_half_a_metre(src, dst, given, expected):
    lon, lat = CONVERT[(src, dst)](*given)
    err = float(metres(float(lon), float(lat), *expected))
    # The sources quote 6 to 14 decimals and some invert approximately; 0.5 m is the spec.
    assert err < 0.5, f"{src}->{dst} of {given}: {err:.3f} m from the published {expected}"


def test_the_shift_is_the_famous_few_hundred_metres():
    # If the formula were not applied (or applied twice), the reference test would catch it;
    # this one says what the user sees: Gaode and GPS disagree by 250-700 m across China.
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(75, 134, 2000), rng.uniform(20, 52, 2000)
    gx, gy = datum.wgs84_to_gcj02(lon, lat)
    shift = metres(lon, lat, gx, gy)
    assert shift.min() > 20
    assert shift.max() < 1000
    assert 250 < np.median(shift) < 700


ROUND_TRIPS = [
    pytest.param(datum.wgs84_to_gcj02, datum.gcj02_to_wgs84, id="wgs84-gcj02-wgs84"),
    pytest.param(datum.wgs84_to_bd09, datum.bd09_to_wgs84, id="wgs84-bd09-wgs84"),
    pytest.param(datum.gcj02_to_bd09, datum.bd09_to_gcj02, id="gcj02-bd09-gcj02"),
]


@pytest.mark.parametrize(("forward", "inverse"), ROUND_TRIPS)
def test_round_trip_across_china_within_5_cm(forward, inverse):
    rng = np.random.default_rng(7)
    n = 50_000
    # Mainland China and a margin, kept 0.1 deg inside the box where GCJ-02 switches on
    # (at the box edge the forward map jumps, so the inverse is ambiguous there).
    lon, lat = rng.uniform(73.5, 135.0, n), rng.uniform(18.0, 53.6, n)
    x, y = forward(lon, lat)
    bx, by = inverse(x, y)
    err = metres(lon, lat, bx, by)
    assert err.max() < 0.05, f"worst round trip {err.max():.4f} m at {lon[err.argmax()]}, {lat[err.argmax()]}"


def test_inverse_is_exact_not_the_one_step_approximation():
    # coordtransform's gcj02towgs84 subtracts the shift once and is off by up to a few metres;
    # ours iterates: forward(inverse(p)) lands back on p.
    rng = np.random.default_rng(3)
    lon, lat = rng.uniform(100, 125, 1000), rng.uniform(22, 45, 1000)
    wx, wy = datum.gcj02_to_wgs84(lon, lat)
    fx, fy = datum.wgs84_to_gcj02(wx, wy)
    assert metres(lon, lat, fx, fy).max() < 1e-3
    one_step_x = lon - (datum.wgs84_to_gcj02(lon, lat)[0] - lon)
    assert np.abs(one_step_x - wx).max() > 1e-6  # the approximation really differs


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        pytest.param(2.35, 48.85, id="paris"),
        pytest.param(-74.0, 40.7, id="new-york"),
        pytest.param(151.2, -33.9, id="sydney"),
    ],
)
def test_outside_china_gcj02_is_wgs84(lon, lat):
    x, y = datum.wgs84_to_gcj02(lon, lat)
    assert (float(x), float(y)) == (lon, lat)
    x, y = datum.gcj02_to_wgs84(lon, lat)
    assert (float(x), float(y)) == (lon, lat)
    assert bool(datum.out_of_china(lon, lat))


def test_nan_and_inf_in_nan_out_and_the_others_still_convert():
    lon = np.array([np.nan, 117.2, 117.2, np.inf])
    lat = np.array([39.1, np.nan, 39.1, 39.1])
    for d in ("gcj02", "bd09"):
        x, y = datum.to_wgs84(lon, lat, d)
        assert np.isnan(x[0]) or np.isnan(y[0])
        assert np.isnan(x[1]) or np.isnan(y[1])
        assert np.isfinite([x[2], y[2]]).all()
        assert not np.isfinite([x[3], y[3]]).all()
        assert 100 < metres(117.2, 39.1, x[2], y[2]) < 1500


def test_all_nan_input_converts_without_warnings():
    # filterwarnings=error: an "All-NaN slice" RuntimeWarning would fail here.
    x, y = datum.to_wgs84([np.nan, np.nan], [np.nan, np.nan], "bd09")
    assert np.isnan(x).all()
    assert np.isnan(y).all()


def test_arrays_keep_their_shape_and_scalars_broadcast():
    lon = np.full((3, 4), 117.2)
    x, y = datum.to_wgs84(lon, 39.1, "gcj02")
    assert x.shape == y.shape == (3, 4)
    assert x.dtype == np.float64
    assert np.ptp(x) == 0
    assert datum.to_wgs84([], [], "bd09")[0].shape == (0,)


def test_inputs_are_not_modified():
    lon = np.array([117.2, 117.3])
    lat = np.array([39.1, 39.2])
    datum.gcj02_to_wgs84(lon, lat)
    datum.bd09_to_wgs84(lon, lat)
    assert lon.tolist() == [117.2, 117.3]
    assert lat.tolist() == [39.1, 39.2]


@pytest.mark.parametrize("name", ["wgs84", "WGS-84", "gcj02", "GCJ_02", "bd09", "BD-09"])
def test_to_wgs84_accepts_common_spellings(name):
    x, _ = datum.to_wgs84([117.2], [39.1], name)
    assert x.shape == (1,)


def test_to_wgs84_names_an_unknown_datum_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown datum 'mars'.*wgs84, gcj02, bd09"):
        datum.to_wgs84([117.2], [39.1], "mars")


def test_a_million_points_convert_at_once_as_each_would_alone():
    # One vectorised call on a million points gives, point for point, what converting each alone gives
    # (to 1e-9 degrees, 0.1 mm: the iterative inverse runs until every point of the batch converges).
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(110, 120, 1_000_000), rng.uniform(30, 40, 1_000_000)
    x, y = datum.gcj02_to_wgs84(lon, lat)
    assert x.shape == y.shape == (1_000_000,)
    for i in rng.choice(1_000_000, 50, replace=False):
        xi, yi = datum.gcj02_to_wgs84(lon[i : i + 1], lat[i : i + 1])
        assert xi[0] == pytest.approx(x[i], abs=1e-9)
        assert yi[0] == pytest.approx(y[i], abs=1e-9)
