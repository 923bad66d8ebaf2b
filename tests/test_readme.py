"""The README's Python tour runs as written (on the demo district, in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_the_python_tour_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the README should show the Python API"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    new, grids = namespace["new"], namespace["grids"]
    assert len(new) == len(grids) + 1  # one grid became two
    assert "D01-S01-C01-G01" not in set(new["grid_id"])
    assert (tmp_path / "demo.gpkg").exists()
