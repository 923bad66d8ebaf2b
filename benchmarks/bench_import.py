"""CSV import: wall time and peak memory of ``geogrid import --kind incidents`` on a generated CSV.

Run as a script (one import per run, in a child process measured by ``/usr/bin/time -v``)::

    nice -n 10 python -m benchmarks.bench_import --rows 1000000
    nice -n 10 python -m benchmarks.bench_import --rows 10000000

The CSV (seeded, ~95 bytes a row) and a store holding 400 grids around it are generated
under ``/tmp/geogrid-bench-import`` (kept for the next run; never in the repository). The
incidents are appended to the store (``--mode append``): the network-version and id checks
of an append run, and the store holds the incidents of no earlier run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from layers.store import GeoPackageStore

WORK = Path("/tmp/geogrid-bench-import")
_CATEGORIES = np.array(["环境卫生", "占道经营", "噪音扰民", "违章停车", "设施损坏"])
_SOURCES = np.array(["grid_worker", "hotline", "snapshot", "camera", "other"])
_STATUSES = np.array(["reported", "dispatched", "closed"])


def write_csv(path: Path, rows: int, *, seed: int = 0, block: int = 500_000) -> Path:
    """Write ``rows`` incidents in lon/lat (local time, no offset) to ``path``, block by block."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("编号,经度,纬度,上报时间,类别,来源,状态,描述\n")
        for first in range(0, rows, block):
            n = min(block, rows - first)
            ids = pd.Series(np.arange(first, first + n)).map("E{:08d}".format)
            lon = 117.0 + rng.random(n) * 0.4
            lat = 39.0 + rng.random(n) * 0.4
            when = (start + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")).strftime("%Y-%m-%d %H:%M:%S")
            frame = pd.DataFrame(
                {
                    "编号": ids,
                    "经度": np.round(lon, 6),
                    "纬度": np.round(lat, 6),
                    "上报时间": when,
                    "类别": _CATEGORIES[rng.integers(0, len(_CATEGORIES), n)],
                    "来源": _SOURCES[rng.integers(0, len(_SOURCES), n)],
                    "状态": _STATUSES[rng.integers(0, len(_STATUSES), n)],
                    "描述": "路边有垃圾",
                }
            )
            frame.to_csv(fh, header=False, index=False)
    return path


def grids(n_side: int = 20) -> gpd.GeoDataFrame:
    """A level-0 fishnet of ``n_side``² grids over the CSV's points (117..117.4, 39..39.4)."""
    d = 0.4 / n_side
    xs, ys = np.meshgrid(np.arange(n_side), np.arange(n_side))
    x, y = xs.ravel(), ys.ravel()
    return gpd.GeoDataFrame(
        {"grid_id": [f"g{i}" for i in range(x.size)], "parent_id": [None] * x.size, "level": np.zeros(x.size, int)},
        geometry=shapely.box(117 + x * d, 39 + y * d, 117 + (x + 1) * d, 39 + (y + 1) * d),
        crs="EPSG:4326",
    )


IMPORT_ARGS = [
    "--kind",
    "incidents",
    "--id-col",
    "编号",
    "--time-col",
    "上报时间",
    "--category-col",
    "类别",
    "--source-col",
    "来源",
    "--status-col",
    "状态",
    "--description-col",
    "描述",
    "--tz",
    "Asia/Shanghai",
    "--mode",
    "append",
]


def run(rows: int, extra: list[str]) -> dict[str, object]:
    """Import the ``rows``-row CSV into a fresh copy of the grid store; return wall s, peak RSS MiB."""
    WORK.mkdir(parents=True, exist_ok=True)
    src = WORK / f"incidents_{rows}.csv"
    if not src.exists():
        t0 = time.perf_counter()
        write_csv(src.with_suffix(".part"), rows).rename(src)
        print(f"generated {src} ({src.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.0f} s")
    base = WORK / "grids.gpkg"
    if not base.exists():
        GeoPackageStore(base).write({"grids": grids()})
    store = WORK / f"store_{rows}.gpkg"
    for p in WORK.glob(f"store_{rows}.gpkg*"):
        p.unlink()
    shutil.copy(base, store)
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-c",
        "from geogrid.cli import main; main()",
        "import",
        str(src),
        "--into",
        str(store),
        *IMPORT_ARGS,
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)
        msg = f"import failed with exit status {proc.returncode}"
        raise SystemExit(msg)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))  # type: ignore[union-attr]
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)  # type: ignore[union-attr]
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr).group(1))  # type: ignore[union-attr]
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", proc.stderr).group(1))  # type: ignore[union-attr]
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    stored = len(GeoPackageStore(store).read("incidents", bbox=(117.0, 39.0, 117.001, 39.001)))
    return {
        "rows": rows,
        "wall_s": round(seconds, 1),
        "cpu_s": round(user + system, 1),
        "peak_rss_mib": round(rss_kb / 1024),
        "store_mib": round(store.stat().st_size / 2**20),
        "sample_rows_read_back": stored,
        "stdout": proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("extra", nargs="*", help="more options for geogrid import (after --)")
    args = parser.parse_args()
    for key, value in run(args.rows, args.extra).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
