"""The vendored Leaflet is the release folium links to, unchanged, and is served by the app."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import folium

import api
from geogrid.maps import LEAFLET_VERSION, VENDORED_ASSETS

VENDOR = Path(api.__file__).parent / "static" / "vendor"


def test_vendored_leaflet_is_the_version_folium_links_to():
    folium_links = dict(folium.Map.default_js) | dict(folium.Map.default_css)
    for name in ("leaflet", "leaflet_css"):
        assert folium_links[name] in VENDORED_ASSETS, (
            f"folium now links {folium_links[name]}; vendor that Leaflet release (see SOURCE.txt) "
            "and update geogrid.maps.LEAFLET_VERSION"
        )
    assert f't.version="{LEAFLET_VERSION}"' in (VENDOR / f"leaflet-{LEAFLET_VERSION}" / "leaflet.js").read_text()


def test_every_vendored_asset_exists():
    for rel in VENDORED_ASSETS.values():
        assert (VENDOR / rel).is_file(), rel


def test_vendored_files_match_their_recorded_checksums():
    folder = VENDOR / f"leaflet-{LEAFLET_VERSION}"
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (folder / "SOURCE.txt").read_text(), flags=re.MULTILINE)
    assert {name for _, name in listed} >= {"leaflet.js", "leaflet.css", "LICENSE", "images/layers.png"}
    for digest, name in listed:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SOURCE.txt"}
    assert on_disk == {name for _, name in listed}, "every vendored file is listed in SOURCE.txt"


def test_css_images_are_vendored_next_to_the_css():
    css = (VENDOR / f"leaflet-{LEAFLET_VERSION}" / "leaflet.css").read_text()
    for rel in re.findall(r"url\((images/[^)]+)\)", css):
        assert (VENDOR / f"leaflet-{LEAFLET_VERSION}" / rel).is_file(), rel
