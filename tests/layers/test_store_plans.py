"""Plans, versions and the edit log: conflicts, atomic commits, concurrency.

Every test runs on both backends (a GeoPackage file and a PostGIS schema) with the same
assertions; ``_snapshot`` stands for "the store's whole content" on either.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from layers.errors import EditConflict, NotFoundError, StoreError
from layers.postgis import PostGISStore
from layers.store import GeoPackageStore, Store, VersionInfo, open_store
from tests._stores import location as _location
from tests._stores import snapshot as _snapshot
from tests._stores import two_grids

ROOT = Path(__file__).resolve().parents[2]


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
        assert [v.version for v in fresh.versions()] == [1]
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


def test_chinese_names_round_trip_and_odd_plan_ids_are_just_not_found(store):
    plan = store.create_plan("拆分望海楼 C03", author="李雷")
    grids, _ = store.read_plan(plan.plan_id)
    grids["name"] = ["河北区", "网格一"]
    store.save_plan(
        plan.plan_id,
        grids,
        expected_version=0,
        author="韩梅梅",
        operation="update_attributes",
        parameters={"values": {"name": "网格一"}, "说明": "改名"},
    )
    assert (store.plan_info(plan.plan_id).name, store.plan_info(plan.plan_id).created_by) == ("拆分望海楼 C03", "李雷")
    assert store.read_plan(plan.plan_id)[0]["name"].tolist() == ["河北区", "网格一"]
    log = store.edit_log(plan.plan_id)
    assert log["author"].tolist() == ["李雷", "韩梅梅"]
    assert log["parameters"].tolist()[1] == {"values": {"name": "网格一"}, "说明": "改名"}
    assert log["parameters"].tolist()[0] == {"name": "拆分望海楼 C03", "base_version": 1}
    before = _snapshot(store)
    for odd in ["p1'; DROP TABLE grids; --", 'p1" OR 1=1', "P1", "p1 ", "网格"]:
        with pytest.raises(NotFoundError, match="no plan"):
            store.plan_info(odd)
        with pytest.raises(NotFoundError, match="no plan"):
            store.read_plan(odd)
        with pytest.raises(NotFoundError, match="no plan"):
            store.save_plan(odd, grids, expected_version=1, author="x", operation="x", parameters={})
        with pytest.raises(NotFoundError, match="no plan"):
            store.commit_plan(odd, expected_version=1, author="x")
        assert store.edit_log(odd).empty
    assert _snapshot(store) == before


def test_every_store_starts_with_its_network_as_version_1_and_no_plans(store):
    assert store.plans() == [] and store.network_version() == 1
    assert store.versions() == [VersionInfo(1, None, None, None, None)]
    assert store.edit_log().empty and list(store.edit_log().columns)[:3] == ["seq", "at", "author"]
    assert store.read_version(1)["households"].tolist() == [10, 10]
    with pytest.raises(NotFoundError, match="no version 2"):
        store.read_version(2)


_RACER = textwrap.dedent(
    """
    import sys, time
    import layers.postgis as pg
    import layers.store as s
    from layers.errors import EditConflict
    def slowly(real):
        def slow(*a, **k):
            real(*a, **k)
            time.sleep(0.3)  # widen the window: the others arrive while the winner holds the lock
        return slow
    s.pyogrio.write_dataframe = slowly(s.pyogrio.write_dataframe)
    pg.PostGISStore._load_layer = slowly(pg.PostGISStore._load_layer)
    pg.PostGISStore._copy_table = slowly(pg.PostGISStore._copy_table)
    store, what, plan_id, who, value = s.open_store(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    grids, info = store.read_plan(plan_id)
    grids["households"] = value  # what a save writes (a commit takes the plan as stored)
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        if what == "save":
            store.save_plan(plan_id, grids, expected_version=info.version, author=who, operation="race", parameters={})
        else:
            store.commit_plan(plan_id, expected_version=info.version, author=who)
        print("won", flush=True)
    except EditConflict as err:
        print(f"conflict {err.expected} {err.actual}", flush=True)
    """
)


def _race(store: Store, what: str, plan_ids: list[str]) -> list[str]:
    """Start one racer per plan id; once every one has read its plan, let them all go at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, _location(store), what, pid, f"racer{i}", str(100 + i)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, pid in enumerate(plan_ids)
    ]
    for p in procs:  # every racer has read its plan before any of them writes
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:  # then all of them go at once (communicate() would start them one by one)
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    return [o[0].strip() for o in outs]


@pytest.mark.slow
def test_racers_saving_the_same_version_exactly_one_wins(store):
    store.create_plan("x", author="li")
    racers = 4
    results = _race(store, "save", ["p1"] * racers)
    winners = [i for i, r in enumerate(results) if r == "won"]
    assert len(winners) == 1, results
    assert sorted(results) == ["conflict 0 1"] * (racers - 1) + ["won"]
    grids, info = store.read_plan("p1")
    assert info.version == 1
    assert grids["households"].tolist() == [100 + winners[0]] * 2  # the winner's grids, whole
    log = store.edit_log("p1")
    assert log["operation"].tolist() == ["create", "race"]
    assert log["author"].tolist()[1] == f"racer{winners[0]}"


@pytest.mark.slow
def test_racers_committing_plans_of_the_same_network_exactly_one_wins(store):
    racers = 3
    for i in range(racers):  # plan p<i+1> sets households to 100 + i
        plan = store.create_plan(f"plan {i}", author="li")
        grids, _ = store.read_plan(plan.plan_id)
        grids["households"] = 100 + i
        store.save_plan(plan.plan_id, grids, expected_version=0, author="li", operation="set", parameters={})
    results = _race(store, "commit", [f"p{i + 1}" for i in range(racers)])
    winners = [i for i, r in enumerate(results) if r == "won"]
    assert len(winners) == 1, results
    assert sorted(results) == ["conflict 1 2"] * (racers - 1) + ["won"]  # copied from version 1, 2 committed since
    assert [v.version for v in store.versions()] == [1, 2]
    assert store.versions()[1].plan_id == f"p{winners[0] + 1}"
    assert store.read("grids")["households"].tolist() == [100 + winners[0]] * 2
    assert store.read_version(1)["households"].tolist() == [10, 10]
    assert [p.status for p in store.plans()].count("committed") == 1
    assert store.edit_log()["operation"].tolist().count("commit") == 1


_CREATOR = textwrap.dedent(
    """
    import sys
    from layers.store import open_store
    store = open_store(sys.argv[1])
    print(" ".join(store.create_plan(f"{sys.argv[2]}-{i}", author=sys.argv[2]).plan_id for i in range(3)))
    """
)


@pytest.mark.slow
def test_concurrent_plan_starts_get_distinct_ids(store):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, _location(store), f"c{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    ids = [pid for o in outs for pid in o[0].split()]
    assert sorted(ids, key=lambda i: int(i[1:])) == [f"p{n}" for n in range(1, 13)]
    assert sorted(p.plan_id for p in store.plans()) == sorted(ids)
    assert store.edit_log()["operation"].tolist() == ["create"] * 12


@pytest.mark.parametrize("name", ["geogrid_edit_log", "geogrid_plan_p1", "geogrid_grids_v1"])
def test_layers_cannot_overwrite_the_plan_tables(store, name):
    store.create_plan("x", author="li")
    before = _snapshot(store)
    with pytest.raises(StoreError, match="geogrid keeps for its plans"):
        store.write({"grids": two_grids(99), name: two_grids()})
    assert _snapshot(store) == before


def test_count_equals_the_rows_read_without_reading_them(store):
    """``count`` (the import's refusal of an empty file asks it) equals ``len(read)`` on both backends; a layer the
    store lacks counts 0."""
    assert store.count("grids") == len(store.read("grids")) == 2
    assert store.count("incidents") == 0
    store.write({"extra": store.read("grids").iloc[:1]})
    assert store.count("extra") == len(store.read("extra")) == 1
