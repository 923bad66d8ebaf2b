"""Benchmark runner: our code against the tool a user would otherwise use, in one run.

Each ``benchmarks/bench_*.py`` module defines ``cases(scale: str) -> list[Case]``.
A case builds its inputs once (from a stated size and seed), then times ``ours`` and
``baseline`` alternately ``repeat`` times and reports medians (wall and CPU seconds),
peak traced memory of one run of each, and the ratio baseline / ours (> 1: we are faster).

Run: ``python -m benchmarks [--scale small|full] [--only NAME] [--json OUT]``.
"""

from __future__ import annotations

import gc
import importlib
import json
import pkgutil
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Case:
    """One comparison.

    Parameters
    ----------
    name
        Short id, e.g. ``"assign_10M_into_990"``.
    setup
        Builds the inputs (not timed); returns whatever ``ours``/``baseline`` take.
    ours, baseline
        Callables taking the setup's result. ``baseline`` may be None (absolute timing).
    baseline_name
        What the baseline is, e.g. ``"geopandas.sjoin(predicate='within')"``.
    check
        Optional callable(ours_result, baseline_result) asserting the results agree.
    repeat
        How many timed runs of each.
    notes
        Size, seed and anything a reader needs to reproduce it.
    """

    name: str
    setup: Callable[[], Any]
    ours: Callable[[Any], Any]
    baseline: Callable[[Any], Any] | None = None
    baseline_name: str = ""
    check: Callable[[Any, Any], None] | None = None
    repeat: int = 3
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _time(fn: Callable[[Any], Any], arg: Any) -> tuple[float, float, Any]:
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(arg)
    return time.perf_counter() - w0, time.process_time() - c0, out


def _peak(fn: Callable[[Any], Any], arg: Any) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn(arg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def run_case(case: Case, *, memory: bool = True) -> dict[str, Any]:
    """Run one case and return its measurements."""
    data = case.setup()
    ours_w, ours_c, base_w, base_c = [], [], [], []
    ours_out = base_out = None
    for _ in range(case.repeat):
        w, c, ours_out = _time(case.ours, data)
        ours_w.append(w)
        ours_c.append(c)
        if case.baseline is not None:
            w, c, base_out = _time(case.baseline, data)
            base_w.append(w)
            base_c.append(c)
    if case.check is not None and case.baseline is not None:
        case.check(ours_out, base_out)
    row: dict[str, Any] = {
        "name": case.name,
        "notes": case.notes,
        "ours_s": statistics.median(ours_w),
        "ours_cpu_s": statistics.median(ours_c),
        "baseline": case.baseline_name,
        **case.extra,
    }
    if base_w:
        row["baseline_s"] = statistics.median(base_w)
        row["baseline_cpu_s"] = statistics.median(base_c)
        row["ratio"] = row["baseline_s"] / row["ours_s"] if row["ours_s"] > 0 else float("inf")
    if memory:
        row["ours_peak_mib"] = _peak(case.ours, data)
        if case.baseline is not None:
            row["baseline_peak_mib"] = _peak(case.baseline, data)
    return row


def discover() -> list[str]:
    """Names of the benchmark modules (``bench_*``)."""
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run the benchmarks and print a table of ratios."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--scale", choices=["small", "full"], default="full", help="input sizes (small: a quick smoke run)"
    )
    parser.add_argument("--only", action="append", default=[], help="run only cases whose name contains this")
    parser.add_argument("--module", action="append", default=[], help="run only these bench_* modules")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    rows = []
    print(f"# geogrid benchmarks ({args.scale}) on {platform.machine()}, Python {platform.python_version()}")
    header = f"{'case':42} {'ours s':>9} {'baseline s':>11} {'ratio':>8} {'ours MiB':>9} {'base MiB':>9}  baseline"
    print(header)
    for mod_name in discover():
        if args.module and mod_name not in args.module and mod_name.removeprefix("bench_") not in args.module:
            continue
        mod = importlib.import_module(f"benchmarks.{mod_name}")
        for case in mod.cases(args.scale):
            if args.only and not any(o in case.name for o in args.only):
                continue
            row = run_case(case, memory=not args.no_memory)
            rows.append(row)
            ratio = f"{row['ratio']:.1f}x" if "ratio" in row else "-"
            base = f"{row['baseline_s']:.3f}" if "baseline_s" in row else "-"
            om = f"{row.get('ours_peak_mib', float('nan')):.0f}"
            bm = f"{row['baseline_peak_mib']:.0f}" if "baseline_peak_mib" in row else "-"
            print(
                f"{row['name']:42} {row['ours_s']:9.3f} {base:>11} {ratio:>8} {om:>9} {bm:>9}  {row['baseline']}",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    return 0
