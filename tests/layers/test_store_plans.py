"""Plans, versions and the edit log: conflicts, atomic commits, concurrency.

Every test runs on both backends (a GeoPackage file and a PostGIS schema) with the same
assertions; ``_snapshot`` stands for "the store's whole content" on either.
"""

from __future__ import annotations

import hashlib
import secrets
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import pytest

import geopandas as gpd
import shapely

from layers.errors import EditConflict, NotFoundError, StoreError
from layers.postgis import PostGISStore
from layers.store import GeoPackageStore, Store, open_store

ROOT = Path(__file__).resolve().parents[2]


def _grids(households: int = 10) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"grid_id": ["D", "a"], "parent_id": [None, "D"], "level": [0, 1], "households": [households] * 2},
        geometry=[shapely.box(117.2, 39.1, 117.22, 39.11)] * 2,
        crs="EPSG:4326",
    )


@pytest.fixture(params=["gpkg", "postgis"])
def store(request, tmp_path) -> Store:
    s: Store
    if request.param == "gpkg":
        s = GeoPackageStore(tmp_path / "s.gpkg")
    else:
        s = PostGISStore(request.getfixturevalue("postgis_dsn"), schema=f"t_{secrets.token_hex(6)}")
    s.write({"grids": _grids()})
    return s


def _location(store: Store) -> str:
    """What ``open_store`` takes to open ``store`` again (in another process)."""
    if isinstance(store, GeoPackageStore):
        return str(store.path)
    from psycopg.conninfo import conninfo_to_dict

    assert isinstance(store, PostGISStore)
    params = {k: str(v) for k, v in conninfo_to_dict(store.dsn).items()}
    return "postgresql:///?" + urlencode({**params, "schema": store.schema})


def _snapshot(store: Store) -> Any:
    """The store's whole content: the file's bytes, or every table of the schema with every row."""
    if isinstance(store, GeoPackageStore):
        return hashlib.sha256(store.path.read_bytes()).hexdigest()
    import psycopg
    from psycopg import sql

    assert isinstance(store, PostGISStore)
    with psycopg.connect(store.dsn) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY table_name",
                (store.schema,),
            )
        ]
        return {
            t: con.execute(
                sql.SQL("SELECT array_agg(x::text ORDER BY x::text) FROM {} x").format(sql.Identifier(store.schema, t))
            ).fetchone()[0]
            for t in tables
        }


def _bump(store: Store, plan_id: str, expected: int, author: str = "li") -> int:
    grids, _ = store.read_plan(plan_id)
    grids["households"] = grids["households"] + 1
    info = store.save_plan(
        plan_id, grids, expected_version=expected, author=author, operation="update_attributes", parameters={}
    )
    return info.version


def test_plan_is_a_draft_copy(store):
    plan = store.create_plan("more households", author="li")
    assert (plan.plan_id, plan.status, plan.version, plan.base_version) == ("p1", "open", 0, 1)
    assert _bump(store, "p1", 0) == 1
    assert store.read("grids")["households"].tolist() == [10, 10]  # the network is untouched
    assert store.read_plan("p1")[0]["households"].tolist() == [11, 11]
    assert store.layer_names() == ["grids"]  # plan and version layers are internal
    assert [p.plan_id for p in store.plans()] == ["p1"]


def test_stale_edit_is_refused_and_leaves_the_store_as_it_was(store):
    store.create_plan("x", author="li")
    _bump(store, "p1", 0)
    before = _snapshot(store)
    grids, _ = store.read_plan("p1")
    with pytest.raises(EditConflict, match=r"at version 1, but the edit was based on version 0") as err:
        store.save_plan("p1", grids, expected_version=0, author="wang", operation="x", parameters={})
    assert (err.value.expected, err.value.actual) == (0, 1)
    assert _snapshot(store) == before


def test_commit_keeps_every_version_with_its_period(store):
    store.create_plan("x", author="li")
    _bump(store, "p1", 0)
    v = store.commit_plan("p1", expected_version=1, author="li")
    assert v.version == 2 and store.network_version() == 2
    v1, v2 = store.versions()
    assert v1.valid_from is None and v1.valid_to == v2.valid_from and v2.valid_to is None
    assert store.read_version(1)["households"].tolist() == [10, 10]
    assert store.read_version(2)["households"].tolist() == [11, 11]
    assert store.read("grids")["households"].tolist() == [11, 11]
    assert store.plan_info("p1").status == "committed"
    with pytest.raises(StoreError, match="is committed"):
        store.read_plan("p1")
    log = store.edit_log()
    assert log["operation"].tolist() == ["create", "update_attributes", "commit"]
    assert log[["version_before", "version_after"]].iloc[1:].astype(int).values.tolist() == [[0, 1], [1, 2]]
    assert set(log["author"]) == {"li"}


def test_the_later_commit_of_two_plans_gets_the_conflict(store):
    store.create_plan("first", author="li")
    store.create_plan("second", author="wang")
    store.commit_plan("p1", expected_version=0, author="li")
    before = _snapshot(store)
    with pytest.raises(EditConflict, match="copied from network version 1, but version 2"):
        store.commit_plan("p2", expected_version=0, author="wang")
    assert _snapshot(store) == before


def test_discard_leaves_the_network_and_keeps_the_log(store):
    store.create_plan("x", author="li")
    _bump(store, "p1", 0)
    store.discard_plan("p1", expected_version=1, author="li")
    assert store.plan_info("p1").status == "discarded"
    assert store.read("grids")["households"].tolist() == [10, 10]
    assert store.edit_log("p1")["operation"].tolist() == ["create", "update_attributes", "discard"]
    with pytest.raises(EditConflict, match="is discarded"):
        store.discard_plan("p1", expected_version=2, author="li")
    with pytest.raises(NotFoundError, match="no plan 'p9'"):
        store.plan_info("p9")


def _raw(store: Store, statement: str) -> None:
    """Run ``statement`` on the store's database directly, as any client of it could (bypassing geogrid)."""
    if isinstance(store, GeoPackageStore):
        with sqlite3.connect(store.path) as con:
            con.execute(statement)
        return
    import psycopg

    assert isinstance(store, PostGISStore)
    with psycopg.connect(store.dsn, options=f"-c search_path={store.schema}") as con:
        con.execute(statement)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE geogrid_edit_log SET author = 'mallory'", "DELETE FROM geogrid_edit_log"],
    ids=["update", "delete"],
)
def test_the_edit_log_is_append_only(store, statement):
    store.create_plan("x", author="li")
    before = store.edit_log()
    with pytest.raises(Exception, match="append-only"):
        _raw(store, statement)
    after = store.edit_log()
    assert after.equals(before) and after["author"].tolist() == ["li"]


_EDITOR = textwrap.dedent(
    """
    import sys
    from layers.errors import EditConflict
    from layers.store import open_store
    store, n, who = open_store(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    done = conflicts = 0
    while done < n:
        grids, info = store.read_plan("p1")
        grids["households"] = grids["households"] + 1
        try:
            store.save_plan("p1", grids, expected_version=info.version, author=who, operation="bump", parameters={})
            done += 1
        except EditConflict:
            conflicts += 1
    print(conflicts)
    """
)


@pytest.mark.slow
def test_concurrent_editors_lose_no_update(store):
    store.create_plan("x", author="li")
    editors, each = 6, 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _EDITOR, _location(store), str(each), f"editor{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(editors)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    grids, info = store.read_plan("p1")
    assert info.version == editors * each
    assert grids["households"].tolist() == [10 + editors * each] * 2  # every increment is there
    log = store.edit_log("p1")
    bumps = log[log["operation"] == "bump"]
    assert len(bumps) == editors * each
    assert sorted(bumps["version_before"].astype(int)) == list(range(editors * each))


_COMMITTER = textwrap.dedent(
    """
    import sys, time
    import layers.postgis as pg
    import layers.store as s
    def slowly(real):
        def slow(*a, **k):
            real(*a, **k)
            time.sleep(0.15)
        return slow
    s.pyogrio.write_dataframe = slowly(s.pyogrio.write_dataframe)
    pg.PostGISStore._copy_table = slowly(pg.PostGISStore._copy_table)
    print("ready", flush=True)
    s.open_store(sys.argv[1]).commit_plan("p1", expected_version=1, author="li")
    print("done", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.25, 0.4, 0.6], ids=lambda d: f"kill_after_{d}s")
def test_killed_commit_leaves_the_old_or_the_new_version(store, delay):
    store.create_plan("x", author="li")
    _bump(store, "p1", 0)
    with subprocess.Popen(
        [sys.executable, "-c", _COMMITTER, _location(store)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    fresh = open_store(_location(store))
    hh = fresh.read("grids")["households"].tolist()
    version = fresh.network_version()
    if version == 1:  # killed before the rename: the old version, the plan still open
        assert hh == [10, 10]
        assert fresh.versions() == []
        assert fresh.plan_info("p1").status == "open"
    else:
        assert version == 2 and hh == [11, 11]
        assert fresh.plan_info("p1").status == "committed"
        assert fresh.read_version(1)["households"].tolist() == [10, 10]
    ops = fresh.edit_log()["operation"].tolist()
    assert ops == (["create", "update_attributes"] if version == 1 else ["create", "update_attributes", "commit"])
    assert pd.Series(hh).nunique() == 1
    if version == 1:  # the dead writer's locks went with it: the commit can be redone
        assert fresh.commit_plan("p1", expected_version=1, author="li").version == 2
        assert fresh.read("grids")["households"].tolist() == [11, 11]
