"""The wheel ships exactly the three packages (never tests or notebooks) and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("geogrid-*.whl")
    return whl


def test_wheel_contains_exactly_geogrid_layers_api(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"geogrid", "layers", "api"}
    for pkg in ("geogrid", "layers", "api"):
        assert f"{pkg}/py.typed" in names


def test_wheel_declares_the_console_script(wheel):
    zf = zipfile.ZipFile(wheel)
    (ep,) = [n for n in zf.namelist() if n.endswith("entry_points.txt")]
    assert "geogrid = geogrid.cli:main" in zf.read(ep).decode()


def test_wheel_ships_the_vendored_browser_assets(wheel):
    from geogrid.maps import VENDORED_ASSETS

    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in VENDORED_ASSETS.values():
        assert f"api/static/vendor/{rel}" in names
    assert "api/static/vendor/leaflet-1.9.3/images/layers.png" in names
