"""Differential family ``check``: :func:`geogrid.check_grids` against :func:`geogrid.reference.check_grids`.

Columns: ``crash`` (the fast check raised), ``missed`` (a reference defect of at least 1 m²
with no matching finding), ``wrong_area`` (found, but the area differs), ``false_alarm`` (a
finding of at least 1 m² the reference does not have, or any finding on a layer the
reference finds sound).
"""

from __future__ import annotations

import traceback
from collections import defaultdict

import numpy as np

from geogrid import check_grids
from geogrid._reference_check import check_grids_reference
from tests.fuzz import Outcome
from tests.fuzz.gen import CRS_KINDS, ENCODINGS, PERTURBATIONS, SOUND_PERTURBATIONS, encode, hierarchy, perturb

FAMILY = "check"
COLUMNS = ("crash", "missed", "wrong_area", "false_alarm")
DEFECT_M2 = 1.0
"""Defects at least this large must be found (smaller ones are rounding-level and may go either way)."""

_ENCODING_WEIGHTS = {"gpkg": 0.04, "geojson": 0.03, "shapefile": 0.03}


def _tolerance(area: float) -> float:
    return 1e-4 * area + 0.05


def make_case(seed: int) -> tuple[str, object]:
    """The generated layer of ``seed`` and its label."""
    rng = np.random.default_rng(seed)
    crs_kind = CRS_KINDS[seed % len(CRS_KINDS)]
    n_levels = int(rng.integers(2, 5))
    n_basic = int(rng.choice([20, 40, 80, 150, 300, 2000], p=[0.2, 0.2, 0.2, 0.2, 0.17, 0.03]))
    pert = str(rng.choice(sorted(PERTURBATIONS)))
    names = sorted(ENCODINGS)
    w = np.array([_ENCODING_WEIGHTS.get(n, 1.0) for n in names])
    enc = str(rng.choice(names, p=w / w.sum()))
    grids = hierarchy(rng, n_basic, n_levels, crs_kind)
    grids, what = perturb(rng, grids, pert)
    grids = encode(rng, grids, enc)
    return f"voronoi/{crs_kind}/L{n_levels}/n{n_basic}/{pert}/{enc}", (grids, pert, what)


def _keyed(frame, kind: str) -> dict[tuple, float]:
    sub = frame[frame["kind"] == kind]
    out: dict[tuple, float] = defaultdict(float)
    for lv, ids, a in zip(sub["level"], sub["grid_ids"], sub["area_m2"], strict=True):
        if kind == "gap":
            key = (int(lv),)
        elif kind == "parent_not_tiled":
            key = (int(lv), ids[0])
        else:
            key = (int(lv), *ids)
        out[key] += float(a)
    return out


def compare(fast, ref, out: Outcome) -> None:
    """Compare the fast findings with the reference's, kind by kind."""
    for kind in ("overlap", "gap", "outside_parent", "parent_not_tiled"):
        f, r = _keyed(fast, kind), _keyed(ref, kind)
        for key in sorted(set(f) | set(r), key=str):
            fa, ra = f.get(key, 0.0), r.get(key, 0.0)
            if ra >= DEFECT_M2 and fa == 0.0:
                out.fail("missed", f"{kind} {key}: reference {ra:.3f} m², not found")
            elif fa >= DEFECT_M2 and ra == 0.0:
                out.fail("false_alarm", f"{kind} {key}: {fa:.3f} m² reported, reference none")
            elif max(fa, ra) >= DEFECT_M2 and abs(fa - ra) > _tolerance(ra):
                out.fail("wrong_area", f"{kind} {key}: {fa:.3f} m² reported, reference {ra:.3f} m²")
    fi = set(fast.loc[fast["kind"] == "invalid", "grid_ids"])
    ri = set(ref.loc[ref["kind"] == "invalid", "grid_ids"])
    for ids in sorted(ri - fi):
        out.fail("missed", f"invalid {ids} not reported")
    for ids in sorted(fi - ri):
        out.fail("false_alarm", f"invalid {ids} reported, reference valid")


def run_case(seed: int) -> Outcome:
    """One generated layer, checked by both paths."""
    label, (grids, pert, what) = make_case(seed)
    out = Outcome(FAMILY, seed, label)
    ref = check_grids_reference(grids)
    try:
        fast = check_grids(grids).findings
    except Exception as err:  # any exception of the engine is the finding, counted with its traceback
        out.fail("crash", f"{what}: {type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}")
        return out
    compare(fast, ref, out)
    big = ref[ref["area_m2"].fillna(np.inf) >= DEFECT_M2]
    if pert in SOUND_PERTURBATIONS and len(big) == 0 and len(fast):
        rows = fast[["kind", "level", "grid_ids", "area_m2", "length_m"]].head(5).to_string()
        out.fail("false_alarm", f"{what or 'unperturbed'}: sound per the reference, {len(fast)} findings:\n{rows}")
    return out
