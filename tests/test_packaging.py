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


# -- declared dependencies match imports ---------------------------------------------------------

_OPTIONAL_EXTRAS = ("postgis", "dask", "placement")
"""Extras whose packages the code imports lazily, only on the paths that need them."""


def _requirement_names(reqs) -> set[str]:
    import re

    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _imported_distributions() -> dict[str, set[str]]:
    """Third-party distributions the shipped packages import → the files that import them."""
    import ast
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for pkg in ("geogrid", "layers", "api"):
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in stdlib or top in ("geogrid", "layers", "api"):
                        continue
                    assert top in dists, (
                        f"{path.relative_to(ROOT)} imports {top}, which no installed distribution provides"
                    )
                    for dist in dists[top]:
                        found.setdefault(dist.lower().replace("_", "-"), set()).add(str(path.relative_to(ROOT)))
    return found


def test_declared_dependencies_are_exactly_what_the_packages_import():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = set().union(*(_requirement_names(project["optional-dependencies"][e]) for e in _OPTIONAL_EXTRAS))
    imported = _imported_distributions()
    undeclared = {d: sorted(files) for d, files in imported.items() if d not in core | extras}
    assert not undeclared, f"imported but not declared in [project] dependencies: {undeclared}"
    unused = core - set(imported)
    assert not unused, f"declared in [project] dependencies but never imported by geogrid, layers or api: {unused}"


@pytest.mark.parametrize("failing", ["ruff check", "ruff format", "mypy", None])
def test_the_test_command_stops_on_a_lint_or_type_failure(tmp_path, failing):
    """`bash scripts/test` (what .ci/run calls) must fail when ruff or mypy fails, before pytest: it once ran
    `ruff check . && ruff format --check .`, and under `set -e` a failure there did not stop the script, so a
    lint error passed CI. The tools are stubs on PATH that log their call and fail as asked."""
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "test"
    script.write_text((ROOT / "scripts" / "test").read_text(encoding="utf-8"), encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("python", "ruff", "mypy", "apt-get", "chromium", "chromedriver", "ogr2ogr"):
        fail = failing is not None and tool == failing.split()[0]
        sub = f'[ "$1" = "{failing.split()[1]}" ] && exit 1' if fail and " " in failing else ("exit 1" if fail else "")
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n{sub}\nexit 0\n', encoding="utf-8")
        stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, cwd=tmp_path)
    calls = log.read_text(encoding="utf-8").splitlines()
    ran_pytest = any(c.startswith("python -m pytest") for c in calls)
    if failing is None:
        assert done.returncode == 0, done.stderr
        assert ran_pytest and "mypy " in calls and "ruff check ." in calls and "ruff format --check ." in calls
    else:
        assert done.returncode != 0
        assert any(c.startswith(failing) for c in calls), calls  # it failed where asked, not on the way there
        assert not ran_pytest, calls
