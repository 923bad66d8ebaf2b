"""Every notebook runs top to bottom (they are the analysts' and planners' documentation)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# A script, stylesheet, image or frame fetched from another host (the map iframes' srcdoc is HTML-escaped).
EXTERNAL_ASSET = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]*)", re.IGNORECASE
)


def external_assets(output_html: str) -> list[str]:
    """Return the external asset URLs of a notebook's HTML output, inside map iframes too."""
    found = EXTERNAL_ASSET.findall(output_html)
    for doc in re.findall(r'srcdoc="([^"]*)"', output_html):
        found += external_assets(html.unescape(doc))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    # Every map the notebook shows works on a closed network: nothing fetched from another host.
    pages = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert {url for page in pages for url in external_assets(page)} == set()
    maps = [page for page in pages if "srcdoc=" in page]
    assert all("L.map(" in html.unescape(page) for page in maps)
    # a notebook that plots shows its plots (a non-interactive backend would draw and discard them)
    plots = sum("plt.subplots" in c.source for c in nb.cells if c.cell_type == "code")
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= plots


def test_external_assets_sees_links_inside_a_map_iframe():
    import folium

    page = folium.Map(tiles=None)._repr_html_()  # folium's own map: Leaflet from a CDN
    assert "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js" in external_assets(page)


def _imports(path: Path) -> set[str]:
    import re

    import nbformat

    nb = nbformat.read(path, as_version=4)
    found = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            found |= set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, flags=re.MULTILINE))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_imports_come_with_geogrid_and_its_notebooks_extra(path):
    """``pip install geogrid[notebooks]`` is enough: every import is the standard library, geogrid or a declared dep."""
    import re
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=\[ ;]", req, maxsplit=1)[0].lower().replace("_", "-")
        for req in [*project["dependencies"], *project["optional-dependencies"]["notebooks"]]
    }
    dists = packages_distributions()
    missing = []
    for module in sorted(_imports(path)):
        if module in sys.stdlib_module_names or module in ("geogrid", "layers"):
            continue
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        if not owners & declared:
            missing.append(f"{module} (from {sorted(owners) or 'unknown'})")
    assert not missing, f"{path.name} imports {missing}: not in geogrid's dependencies or the notebooks extra"


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should hold the walkthroughs"
