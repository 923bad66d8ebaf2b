"""The served layers stay cached while planners edit, and a rebuild is done once however many ask."""

from __future__ import annotations

import subprocess
import threading
import time

from api.features import LayerCache
from api.pages import AnalysisCache
from layers.store import GeoPackageStore


def _counting(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = GeoPackageStore.read

    def read(self, name, **kw):
        reads.append(name)
        time.sleep(0.3)  # a slow read: the other requests arrive while it runs
        return real(self, name, **kw)

    monkeypatch.setattr(GeoPackageStore, "read", read)
    return reads


def test_plan_edits_keep_the_served_grids_cached_and_a_commit_refreshes_them(store_path, monkeypatch):
    store = GeoPackageStore(store_path)
    cache = LayerCache()
    first = cache.get(store, "grids")
    plan = store.create_plan("p", author="li")
    grids, _ = store.read_plan(plan.plan_id)
    grids["households"] = 7
    store.save_plan(plan.plan_id, grids, expected_version=0, author="li", operation="x", parameters={})
    reads = _counting(monkeypatch)
    assert cache.get(store, "grids") is first and reads == []
    store.commit_plan(plan.plan_id, expected_version=1, author="li")  # reads the plan, then commits
    reads.clear()
    fresh = cache.get(store, "grids")
    assert reads == ["grids"] and fresh is not first and set(fresh["households"]) == {7}


def test_a_layer_changed_by_qgis_is_read_again(store_path, incidents):
    store = GeoPackageStore(store_path)
    store.write({"incidents": incidents})
    cache = LayerCache()
    before = cache.get(store, "incidents")
    # An attribute edit by GDAL, as QGIS saves it.
    subprocess.run(["ogrinfo", "-q", str(store.path), "-sql", "UPDATE incidents SET status = 'closed'"], check=True)
    after = cache.get(store, "incidents")
    assert after is not before and set(after["status"]) == {"closed"}


def test_sixteen_viewers_rebuild_a_layer_once(store_path, monkeypatch):
    store = GeoPackageStore(store_path)
    reads = _counting(monkeypatch)
    cache = LayerCache()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(store, "grids"))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["grids"] and len(got) == 16 and all(g is got[0] for g in got)


def test_sixteen_walls_compute_an_analysis_once():
    cache = AnalysisCache()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.3)
        return 42

    got: list[int] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", compute))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and got == [42] * 16
