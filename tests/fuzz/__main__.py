"""Long lane of the differential harness: ``python -m tests.fuzz --minutes 60``.

Runs the families round-robin on fresh seeds (from ``--start``) until the time is up, counts
each failure column per family and generator (the perturbation / encoding part of the
label), prints the table and, with ``--write``, replaces the table in CORRECTNESS.md.
``--family F --seed N -v`` reproduces one case.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import defaultdict
from pathlib import Path

from tests.fuzz import FAMILIES, Outcome

_MARK = "<!-- long-lane -->"


def _modules(names: list[str]) -> dict[str, object]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.import_module(f"tests.fuzz.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"tests.fuzz.{name}":
                raise
    return out


def _generator_keys(label: str) -> list[str]:
    """'voronoi/utm/L3/n40/exclave/gpkg' -> ['utm', 'exclave', 'gpkg']: CRS, perturbation, encoding."""
    parts = label.split("/")
    return [parts[1], *parts[-2:]] if len(parts) > 3 else [label]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--family", action="append", choices=FAMILIES, help="default: every family present")
    ap.add_argument("--start", type=int, default=1_000_000, help="first seed (the CI lane uses small seeds)")
    ap.add_argument("--seed", type=int, help="run just this seed")
    ap.add_argument("--write", action="store_true", help="write the table into CORRECTNESS.md")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    mods = _modules(args.family or list(FAMILIES))
    if args.seed is not None:
        bad = 0
        for name, mod in mods.items():
            out: Outcome = mod.run_case(args.seed)  # type: ignore[attr-defined]
            print(f"{name} seed {args.seed} {out.generator}: {out.counts or 'ok'}")
            for d in out.details:
                print("  " + d)
            bad += out.failed
        return 1 if bad else 0
    deadline = time.monotonic() + 60 * args.minutes
    cases: dict[str, int] = defaultdict(int)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_gen: dict[tuple[str, str], int] = defaultdict(int)
    failures: list[str] = []
    seed = args.start
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        for name, mod in mods.items():
            try:
                out = mod.run_case(seed)  # type: ignore[attr-defined]
            except (
                Exception
            ) as err:  # a case that raises outside its own counting is a harness error, counted and named
                out = Outcome(name, seed, "harness")
                out.fail("harness_error", f"{type(err).__name__}: {err}")
            cases[name] += 1
            for key in _generator_keys(out.generator):
                by_gen[(name, key)] += 1
            for col, v in out.counts.items():
                counts[name][col] += v
            if out.failed:
                failures.append(f"{name} seed {seed} {out.generator}: {out.details[0][:300]}")
                if args.verbose:
                    print(failures[-1], flush=True)
        seed += 1
    minutes = (time.monotonic() - t0) / 60
    declared = [c for mod in mods.values() for c in getattr(mod, "COLUMNS", ())]
    cols = list(dict.fromkeys([*declared, *sorted({c for fam in counts.values() for c in fam})]))
    lines = [
        f"Long lane: `python -m tests.fuzz --minutes {args.minutes:g} --start {args.start} --write`, "
        f"seeds {args.start}-{seed - 1}, {minutes:.1f} min on this machine.",
        "",
        "| family | cases | " + " | ".join(cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
    for name in mods:
        lines.append(f"| {name} | {cases[name]:,} | " + " | ".join(str(counts[name].get(c, 0)) for c in cols) + " |")
    lines += ["", "Cases per generator (CRS, perturbation and encoding each counted; or the family's own label):", ""]
    for name in mods:
        gens = sorted((g, n) for (f, g), n in by_gen.items() if f == name)
        lines.append(f"- **{name}**: " + ", ".join(f"{g} {n}" for g, n in gens))
    if failures:
        lines += ["", "Failures (first 20):", ""] + [f"- {f}" for f in failures[:20]]
    table = "\n".join(lines)
    print(table)
    if args.write:
        path = Path(__file__).resolve().parents[2] / "CORRECTNESS.md"
        text = path.read_text(encoding="utf-8")
        head, _, rest = text.partition(_MARK)
        _, _, tail = rest.partition(_MARK)
        path.write_text(f"{head}{_MARK}\n{table}\n{_MARK}{tail}", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
