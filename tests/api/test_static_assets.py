"""The vendored Leaflet and plugins are the pinned releases, unchanged, and are served by the app."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import folium
import folium.plugins

import api
from geogrid.maps import LEAFLET_VERSION, PLUGIN_VERSIONS, VENDORED_ASSETS

VENDOR = Path(api.__file__).parent / "static" / "vendor"
FOLDERS = sorted(p.name for p in VENDOR.iterdir() if p.is_dir())


def test_vendored_leaflet_is_the_version_folium_links_to():
    folium_links = dict(folium.Map.default_js) | dict(folium.Map.default_css)
    for name in ("leaflet", "leaflet_css"):
        assert folium_links[name] in VENDORED_ASSETS, (
            f"folium now links {folium_links[name]}; vendor that Leaflet release (see SOURCE.txt) "
            "and update geogrid.maps.LEAFLET_VERSION"
        )
    assert f't.version="{LEAFLET_VERSION}"' in (VENDOR / f"leaflet-{LEAFLET_VERSION}" / "leaflet.js").read_text()


@pytest.mark.parametrize(
    "plugin",
    [folium.plugins.MarkerCluster, folium.plugins.FastMarkerCluster, folium.plugins.HeatMap, folium.plugins.GeoMan],
    ids=lambda c: c.__name__,
)
def test_every_link_of_the_plugins_the_maps_use_is_vendored(plugin):
    links = [url for _name, url in [*plugin.default_js, *plugin.default_css]]
    missing = [u for u in links if u not in VENDORED_ASSETS]
    assert not missing, f"folium's {plugin.__name__} now links {missing}: vendor them (see SOURCE.txt)"


def test_every_plugin_is_vendored_in_a_folder_named_for_its_version():
    from api.routers.meta import SWAGGER_UI

    maps = {f"leaflet-{LEAFLET_VERSION}", *(f"{n}-{v}" for n, v in PLUGIN_VERSIONS.items())}
    assert maps | {SWAGGER_UI.rsplit("/", 1)[1]} == set(FOLDERS)
    assert all(not re.search(r"latest", rel) for rel in VENDORED_ASSETS.values())


def test_every_vendored_asset_exists():
    for rel in VENDORED_ASSETS.values():
        assert (VENDOR / rel).is_file(), rel


@pytest.mark.parametrize("folder", FOLDERS)
def test_vendored_files_match_their_recorded_checksums(folder):
    root = VENDOR / folder
    source = (root / "SOURCE.txt").read_text()
    assert re.search(r"npm pack \S+@\d+\.\d+\.\d+`", source), "SOURCE.txt names the pinned package"
    assert re.search(r"integrity: sha512-[A-Za-z0-9+/=]{80,}", source), "SOURCE.txt has the tarball's integrity"
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", source, flags=re.MULTILINE)
    assert {name for _, name in listed} >= {"LICENSE"}
    for digest, name in listed:
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest, name
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"SOURCE.txt"}
    assert on_disk == {name for _, name in listed}, "every vendored file is listed in SOURCE.txt"


@pytest.mark.parametrize("folder", FOLDERS)
def test_css_images_are_vendored_next_to_the_css(folder):
    for css in (VENDOR / folder).glob("*.css"):
        for rel in re.findall(r"url\(['\"]?(?!data:|#|%23)([^)'\"]+)", css.read_text()):
            assert (css.parent / rel).is_file(), f"{css.name}: {rel}"
