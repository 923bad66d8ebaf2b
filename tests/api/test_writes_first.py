"""An edit under a crowd of readers: changes go first, and answers are written once as text."""

from __future__ import annotations

import json
import threading

import anyio
import pandas as pd
import pytest

import geopandas as gpd

from api import create_app
from api.auth import iter_routes
from api.deps import writes_first
from api.features import feature_texts, json_text
from api.middleware import WritesFirst
from api.routers import ogc
from api.settings import Role, Settings
from layers.store import GeoPackageStore
from tests import geometries as geo
from tests.api._support import TestClient


def _plain(value):
    """JSON as Python sees it after a round trip (tuples become lists)."""
    return json.loads(json.dumps(value))


GEOMETRIES = {
    "polygon": geo.SQUARE,
    "hole": geo.POLYGON_WITH_HOLE,
    "multipolygon": geo.MULTIPOLYGON,
    "point": geo.POINT,
    "line": geo.LINESTRING,
    "empty": geo.EMPTY_POLYGON,
    "missing": None,
}


@pytest.mark.parametrize("kind", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_feature_texts_are_the_features_geopandas_writes(kind):
    frame = gpd.GeoDataFrame(
        {
            "grid_id": pd.array(["a", None, '引号"</script>'], dtype="string"),
            "level": pd.array([1, None, 3], dtype="Int64"),
            "area_m2": [1.5, float("nan"), 1e-300],
            "ok": [True, False, True],
            "note": ["x", None, "网格"],
        },
        geometry=[GEOMETRIES[kind], geo.SQUARE, GEOMETRIES[kind]],
        crs=4326,
    )
    expected = json.loads(frame.to_json(na="null", show_bbox=False, drop_id=True))["features"]
    got = [json.loads(t) for t in feature_texts(frame)]
    assert got == _plain(expected)
    with_ids = [json.loads(t) for t in feature_texts(frame, ids=["1", "2", "3"])]
    assert [f.pop("id") for f in with_ids] == ["1", "2", "3"] and with_ids == got


def test_json_text_splices_raw_members_unparsed():
    text = json_text({"plan_id": "p", "n": 2}, grids='{"type":"FeatureCollection","features":[]}')
    assert json.loads(text) == {"plan_id": "p", "n": 2, "grids": {"type": "FeatureCollection", "features": []}}
    assert json_text({}, a="1") == '{"a":1}' and json_text({"a": "é"}) == '{"a":"é"}'
    with pytest.raises(ValueError, match="Out of range float"):
        json_text({"x": float("nan")})  # as JSONResponse: NaN is not JSON


def test_a_read_waits_while_a_change_runs():
    gate = WritesFirst(max_wait_s=60)
    order: list[str] = []

    async def read() -> None:
        await gate.read_turn()
        order.append("read")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            async with gate.change():
                tg.start_soon(read)
                for _ in range(20):
                    await anyio.sleep(0)  # the reader runs as far as it can
                order.append("change done")
            assert gate.running == 0

    anyio.run(main)
    assert order == ["change done", "read"]


def test_a_read_waits_at_most_max_wait_for_a_stream_of_changes():
    gate = WritesFirst(max_wait_s=0.05)
    order: list[str] = []

    async def main() -> None:
        async with gate.change():
            await gate.read_turn()  # would wait forever for this change without the bound
            order.append("read while changing")

    anyio.run(main)
    assert order == ["read while changing"]


def test_a_read_with_no_change_running_goes_straight_in():
    gate = WritesFirst(max_wait_s=60)

    async def main() -> None:
        with anyio.fail_after(30):  # a bound on a hang, not a timing assertion
            await gate.read_turn()

    anyio.run(main)


def test_every_change_route_goes_first_after_its_policy(tmp_path):
    app = create_app(Settings(store=tmp_path / "s.gpkg"))
    changes = [
        r
        for r in iter_routes(app)
        if r.dependant is not None and r.methods - {"GET", "HEAD"} and r.path not in ("/login", "/logout")
    ]
    assert changes, "no change routes found"
    for r in changes:
        calls = [d.call for d in r.dependant.dependencies]
        assert writes_first in calls, f"{sorted(r.methods)} {r.path} does not hold reads back while it runs"
        policy = next(i for i, c in enumerate(calls) if getattr(c, "__name__", "").startswith("require_"))
        assert calls.index(writes_first) > policy, f"{r.path}: unauthorised requests must not get ahead of readers"


KEYS = {"w-viewer-0123456789": Role.VIEWER, "w-planner-0123456789": Role.PLANNER}
PLANNER = {"Authorization": "Bearer w-planner-0123456789"}


def test_an_edit_gets_a_thread_while_reads_hold_every_thread_of_the_shared_pool(store_path, monkeypatch):
    """Walls waiting for a page build can hold every worker thread of the shared pool; edits have their own."""
    entered, release = threading.Event(), threading.Event()
    real = ogc.collection_spec

    def blocked(*args, **kwargs):
        entered.set()
        release.wait(120)
        return real(*args, **kwargs)

    target = str(GeoPackageStore(store_path).read("grids")["grid_id"].iloc[-1])
    monkeypatch.setattr(ogc, "collection_spec", blocked)
    with TestClient(create_app(Settings(store=store_path, api_keys=dict(KEYS)))) as c:
        created = c.post("/plans", json={"name": "p"}, headers=PLANNER)
        assert created.status_code == 201, created.text

        async def one_shared_thread() -> None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = 1

        c.portal.call(one_shared_thread)  # type: ignore[union-attr]
        answers: list[int] = []
        reader = threading.Thread(
            target=lambda: answers.append(c.get("/collections/grids/items", headers=PLANNER).status_code)
        )
        reader.start()
        try:
            assert entered.wait(120), "the read never started"
            edit = c.post(
                f"/plans/{created.json()['plan_id']}/edits",
                json={"op": "update_attributes", "grid_id": target, "values": {"households": 5}},
                headers={**PLANNER, "If-Match": created.headers["ETag"]},
            )
            read_still_running = reader.is_alive() and not answers
        finally:
            release.set()
            reader.join(120)
    assert edit.status_code == 200, edit.text
    assert read_still_running, "the edit waited for the read's thread"
    assert answers == [200]


def test_a_refused_change_lets_the_readers_go(store_path):
    """A change that fails (stale If-Match, topology) leaves no change counted: reads never wait for a ghost."""
    app = create_app(Settings(store=store_path, api_keys=dict(KEYS)))
    with TestClient(app) as c:
        created = c.post("/plans", json={"name": "p"}, headers=PLANNER)
        stale = c.post(
            f"/plans/{created.json()['plan_id']}/edits",
            json={"op": "update_attributes", "grid_id": "nope", "values": {"households": 5}},
            headers={**PLANNER, "If-Match": '"7"'},
        )
        assert stale.status_code == 412, stale.text
        missing = c.post(
            f"/plans/{created.json()['plan_id']}/edits",
            json={"op": "update_attributes", "grid_id": "nope", "values": {"households": 5}},
            headers={**PLANNER, "If-Match": created.headers["ETag"]},
        )
        assert missing.status_code == 404, missing.text
        assert app.state.writes_first.running == 0
