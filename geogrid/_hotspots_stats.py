"""Array cores of the hot-spot statistics (private; the public front is :mod:`geogrid.hotspots`).

Everything here works on numpy arrays and scipy sparse matrices: values per grid (or per
grid × period), a binary neighbour matrix without its diagonal, and an integer seed. No
geometry, no pandas.

The conditional permutation engine reproduces esda's (``esda.crand``, non-numba path)
draw for draw: the permuted neighbour ids come from ``RandomState(seed).choice(n - 1,
max_card, replace=False)`` once per permutation and are shared by every site, site ``i``
skipping itself. With the same seed it gives the same pseudo p-values as
``esda.G_Local(star=True)`` and ``esda.Moran_Local``, but evaluates all sites of a chunk
in one vectorised step instead of one Python iteration per site.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__: list[str] = []

# Bytes of scratch memory one chunk of the permutation engine may use.
_CHUNK_BYTES = 64 * 2**20

EHSA_CATEGORIES = (
    "new hot spot",
    "consecutive hot spot",
    "intensifying hot spot",
    "persistent hot spot",
    "diminishing hot spot",
    "sporadic hot spot",
    "oscillating hot spot",
    "historical hot spot",
    "new cold spot",
    "consecutive cold spot",
    "intensifying cold spot",
    "persistent cold spot",
    "diminishing cold spot",
    "sporadic cold spot",
    "oscillating cold spot",
    "historical cold spot",
    "no pattern",
)


# -- weights -------------------------------------------------------------------------------
def _binary_offdiag(adj: Any) -> sp.csr_array:
    """Return ``adj`` as a binary CSR matrix without its diagonal (``adj`` itself if it is one; never change the result)."""
    a = sp.csr_array(adj, dtype=np.float64)
    n = a.shape[0]
    if not a.has_canonical_format:  # unsorted, or a repeated (i, j): that is one neighbour, not two
        key = np.repeat(np.arange(n, dtype=np.int64), np.diff(a.indptr)) * a.shape[1] + a.indices
        if np.unique(key).size < key.size:
            a = a.copy()
            a.sum_duplicates()  # sorts each row: only such a matrix loses its order
    # 32-bit indices where they fit (scipy keeps 64 if either array has it): a space-time cube's
    # neighbours are millions, each index 4 bytes less
    idx = np.int32 if max(a.nnz, max(a.shape)) < 2**31 else np.int64
    rows = np.repeat(np.arange(n, dtype=idx), np.diff(a.indptr))
    keep = (a.indices != rows) & (a.data != 0)
    if keep.all() and a.indices.dtype == idx and a.indptr.dtype == idx and (a.data == 1).all():
        return a  # binary, no diagonal already (a space-time cube: no second copy of its millions)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=n))]).astype(idx)
    # The neighbour order within a row is kept: it is the summation order of the spatial lag.
    return sp.csr_array((np.ones(int(keep.sum())), a.indices[keep].astype(idx), indptr), shape=a.shape)


# -- conditional permutations ------------------------------------------------------------------
def _permuted_ids(n: int, max_card: int, permutations: int, seed: int) -> np.ndarray:
    """Draw the neighbour ids of each permutation exactly as esda does (legacy Mersenne Twister)."""
    rs = np.random.RandomState(seed)
    out = np.empty((permutations, max_card), dtype=np.int64)
    for k in range(permutations):
        out[k] = rs.choice(n - 1, size=max_card, replace=False)
    return out


def _directed_p(observed: np.ndarray, larger: np.ndarray, permutations: int) -> np.ndarray:
    """Esda's ``directed`` pseudo p: the tail the observed value lies in, ``(M + 1) / (R + 1)``."""
    larger = larger.astype(np.int64)
    low = (permutations - larger) < larger
    larger = np.where(low, permutations - larger, larger)
    return (larger + 1.0) / (permutations + 1.0)


def _mid_p_two_sided(greater: np.ndarray, equal: np.ndarray, permutations: int) -> np.ndarray:
    """Two-sided permutation mid-p: ties count half, on both sides, the observed value being one of them.

    Upper tail ``(G + (T + 1) / 2) / (R + 1)``, lower tail ``(L + (T + 1) / 2) / (R + 1)`` with
    ``G``/``L`` the permuted statistics strictly above/below the observed one and ``T`` those
    equal to it; the two-sided p is twice the smaller tail, capped at 1. A value that ties with
    every permutation (a zero among zeros) gets p = 1, not the smallest p there is.
    """
    g = greater.astype(np.float64)
    t = equal.astype(np.float64)
    low = permutations - g - t
    half = (t + 1.0) / 2.0
    tail = np.minimum(g + half, low + half) / (permutations + 1.0)
    return np.minimum(1.0, 2.0 * tail)


def permutations_needed(m: int, alpha: float) -> int:
    """Fewest permutations whose smallest two-sided mid-p survives Benjamini–Hochberg over ``m`` tests at ``alpha``.

    The smallest two-sided mid-p is ``1 / (R + 1)`` (no permuted value as extreme, no tie);
    BH rejects it only if ``m / (R + 1) <= alpha``.
    """
    return max(0, math.ceil(m / alpha) - 1) if m > 0 else 0


def _permute(
    z: np.ndarray,
    adj: sp.csr_array,
    weights: np.ndarray,
    self_weights: np.ndarray,
    observed: np.ndarray,
    permutations: int,
    seed: int,
    stat: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count, per site, the permuted statistics above and equal to the observed one (conditional randomisation).

    ``adj`` gives the neighbours (CSR, no diagonal), ``weights`` their weights in CSR
    order; ``stat(lag, zi, self_w)`` turns the permuted weighted neighbour sums
    ``(sites, permutations)`` into statistics. Returns ``(at_least, greater, equal)``:
    ``at_least`` is esda's count of permuted values ``>=`` the observed one in exact
    arithmetic; ``greater`` and ``equal`` allow a relative 1e-9 for the rounding of a
    different summation order, so that a tie is a tie. Sites without neighbours get ``-1``.
    """
    n = z.shape[0]
    card = np.diff(adj.indptr)
    max_card = int(card.max()) if n else 0
    at_least = np.full(n, -1, dtype=np.int64)
    larger = np.full(n, -1, dtype=np.int64)
    equal = np.full(n, -1, dtype=np.int64)
    if max_card == 0 or permutations == 0:
        return at_least, larger, equal
    pids = _permuted_ids(n, max_card, permutations, seed)
    # Sites are taken in groups of equal cardinality c, so that each site's permuted lag is
    # the same BLAS product as esda's ``zrand @ other_weights`` ((R, c) @ (c,)): equal
    # rounding, hence equal decisions on ties (common with counts).
    for c in np.unique(card[card > 0]):
        group = np.flatnonzero(card == c)
        wc = weights[adj.indptr[group][:, None] + np.arange(c)[None, :]]
        p_c = pids[:, :c]
        chunk = max(1, _CHUNK_BYTES // (8 * 3 * permutations * int(c)))
        for start in range(0, group.size, chunk):
            s = group[start : start + chunk]
            # z without site i, indexed by the permuted ids: z[p + (p >= i)].
            idx = p_c[None, :, :] + (p_c[None, :, :] >= s[:, None, None])
            lag = np.matmul(z[idx], wc[start : start + chunk, :, None])[..., 0]
            rstats = stat(lag, z[s][:, None], self_weights[s][:, None])
            obs = observed[s][:, None]
            tie = np.abs(rstats - obs) <= 1e-9 * np.maximum(np.abs(obs), np.abs(rstats))
            tie |= rstats == obs
            at_least[s] = (rstats >= obs).sum(axis=1)
            larger[s] = ((rstats > obs) & ~tie).sum(axis=1)
            equal[s] = tie.sum(axis=1)
    return at_least, larger, equal


# -- Getis–Ord Gi* ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _GiStar:
    g: np.ndarray
    z: np.ndarray
    p_sim: np.ndarray
    """Esda's directed (folded) pseudo p, ``(M + 1) / (R + 1)``, ties counted as extreme."""
    p_norm: np.ndarray
    """One-tailed normal p of ``z`` (esda's ``p_norm``)."""
    p_perm: np.ndarray
    """Two-sided permutation mid-p (ties count half)."""
    islands: np.ndarray


def _gi_star(
    y: np.ndarray, adj: sp.csr_array, *, permutations: int, seed: int, w_star: sp.csr_array | None = None
) -> _GiStar:
    """Gi* with binary weights and a self-weight of 1, as ``esda.G_Local(y, w, transform="B", star=True)``.

    ``w_star``: ``_binary_offdiag(adj)`` plus the identity, if the caller has it (a space-time
    cube's is hundreds of megabytes: not built twice).
    """
    from scipy import stats  # lazy: scipy.stats costs ~1 s at import

    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if w_star is None:
        adj = _binary_offdiag(adj)
        islands = np.diff(adj.indptr) == 0
    else:  # each row of w_star: the neighbours and the site itself
        islands = np.diff(w_star.indptr) == 1
    nan = np.full(n, np.nan)
    if n == 0 or y.sum() == 0 or np.all(y == y[0]):
        # Nothing to test: no incidents in the window, or every grid has the same value
        # (Gi* is 0/0 there). Report "no pattern" rather than a division warning.
        return _GiStar(g=nan, z=nan.copy(), p_sim=nan.copy(), p_norm=nan.copy(), p_perm=nan.copy(), islands=islands)
    if w_star is None:
        w_star = sp.csr_array(adj + sp.eye_array(n, format="csr"))
    g, z = _gi_star_z(y[:, None], w_star)
    g, z = g[:, 0], z[:, 0]
    p_norm = stats.norm.sf(np.abs(z))
    p_sim, p_perm = nan.copy(), nan.copy()
    if permutations:
        ysum = y.sum()

        def stat(lag: np.ndarray, zi: np.ndarray, self_w: np.ndarray) -> np.ndarray:
            return (lag + self_w * zi) / ysum

        if w_star is not None:
            adj = _binary_offdiag(adj)
        at_least, greater, equal = _permute(y, adj, adj.data, np.ones(n), g, permutations, seed, stat)
        p_sim = _directed_p(g, at_least, permutations)
        p_perm = _mid_p_two_sided(greater, equal, permutations)
        p_sim[islands] = np.nan
        p_perm[islands] = np.nan
    return _GiStar(g=g, z=z, p_sim=p_sim, p_norm=p_norm, p_perm=p_perm, islands=islands)


def _gi_star_z(y: np.ndarray, w_star: sp.csr_array) -> tuple[np.ndarray, np.ndarray]:
    """Gi* and its z-score for each column of ``y`` (sites × replicates), binary ``w_star`` with the diagonal.

    The arithmetic of ``esda.G_Local(star=True)`` (Getis and Ord 1995), vectorised over columns
    so that a calibration study computes the weights once. Columns summing to 0 or constant
    give NaN.
    """
    n = y.shape[0]
    ysum = y.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (w_star @ y) / ysum
        mean = ysum / n
        var = (y**2).sum(axis=0) / n - mean**2
        card = np.asarray(w_star.sum(axis=1)).ravel()[:, None]
        expected = card / n
        expected_var = card * (n - card)
        expected_var = expected_var / (n - 1)
        expected_var = expected_var * (1 / n**2)
        expected_var = expected_var * (var / mean**2)
        z = (g - expected) / np.sqrt(expected_var)
    bad = (ysum == 0) | np.all(y == y[:1], axis=0)
    z[:, bad] = np.nan
    return g, z


# -- exact test for counts ----------------------------------------------------------------------
def _count_test(
    y: np.ndarray, w_star: sp.csr_array, exposure: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Binomial test of each neighbourhood sum of counts, for each column of ``y`` (sites × replicates).

    Under homogeneous risk, given the column's total ``N``, the counts are multinomial with
    cell probabilities proportional to ``exposure`` (default: equal), so the sum ``S_i`` of
    grid ``i``'s neighbourhood (``w_star``: binary, with the diagonal) is
    ``Binomial(N, share_i)`` with ``share_i`` the neighbourhood's share of the exposure. The
    two-sided p is twice the smaller tail, ``P(S >= s)`` or ``P(S <= s)`` (each counting
    the observed value), capped at 1: never smaller than the size it claims, which a
    mid-p is not, and BH over ~1,000 grids reaches far into the tails.

    Real counts vary more than Poisson (overdispersion: risk differs for reasons no
    exposure column holds), and against a pure binomial most grids of a real district
    would be "significant". So the counts are scaled by the dispersion ``phi = max(1,
    X² / (n - 1))`` (Pearson's X² of the counts against their expectation, the
    quasi-Poisson estimate): ``S / phi ~ Binomial(N / phi, share)``, its tails taken with
    the regularized incomplete beta function (``I_share(s, N - s + 1)`` is ``P(S >= s)``,
    for real ``s`` and ``N`` too). With ``phi = 1`` (counts no more variable than Poisson)
    it is the exact binomial test; with large ``phi`` its variance is that of Gi*'s z.

    Returns ``(p, direction, expected, phi)``: ``direction`` is the sign of
    ``s - N share_i`` (+1 an excess, -1 a deficit), ``expected`` is ``N share_i`` and
    ``phi`` the dispersion per column. A neighbourhood with no exposure gets NaN.
    """
    n = y.shape[0]
    e = np.ones(n) if exposure is None else np.asarray(exposure, dtype=np.float64)
    share = np.asarray(w_star @ e, dtype=np.float64) / e.sum()
    s = np.asarray(w_star @ y, dtype=np.float64)
    total = y.sum(axis=0)
    expected = share[:, None] * total[None, :]
    mu = (e / e.sum())[:, None] * total[None, :]
    phi = _dispersion(y, mu)
    p = _binomial_two_sided(s / phi, np.broadcast_to((total / phi)[None, :], s.shape), share[:, None])
    direction = np.sign(s - expected)
    return p, direction, expected, phi


def _dispersion(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Quasi-Poisson dispersion per column, ``phi = max(1, X² / (n - 1))`` (Pearson's X² of ``y`` against ``mu``)."""
    n = y.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        x2 = np.where(mu > 0, (y - mu) ** 2 / mu, 0.0).sum(axis=0)
    return np.maximum(1.0, x2 / max(n - 1, 1))


def _binomial_two_sided(k: np.ndarray, big_n: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Two-sided binomial test of ``k`` successes in ``big_n`` trials of probability ``share`` (all broadcast).

    ``min(1, 2 min(P(S >= k), P(S <= k)))``, each tail counting the observed value, the
    tails taken with the regularized incomplete beta function so that ``k`` and ``big_n``
    may be real (counts divided by the dispersion). ``share`` 0 or outside [0, 1] gives NaN,
    ``share`` 1 gives 1.
    """
    from scipy import special

    k, big_n, share = np.broadcast_arrays(k, big_n, share)
    with np.errstate(divide="ignore", invalid="ignore"):
        upper = np.where(k <= 0, 1.0, special.betainc(np.maximum(k, 1e-300), big_n - k + 1, share))
        lower = np.where(big_n - k <= 0, 1.0, special.betainc(np.maximum(big_n - k, 1e-300), k + 1, 1 - share))
    p = np.minimum(1.0, 2.0 * np.minimum(upper, lower))
    p = np.where((share <= 0) | np.isnan(share), np.nan, p)
    return np.where(share >= 1, 1.0, p)


def _neighbour_count_test(
    y: np.ndarray, w_star: sp.csr_array, exposure: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Binomial test of each site's neighbour sum given its own count, per column of ``y`` (sites × replicates).

    Local Moran's test: with binary (or row-standardised binary) weights, ``I_i`` given
    ``y_i`` is a monotone function of the neighbours' sum ``S_i`` (``w_star``: binary
    neighbours; a diagonal is dropped), and conditional randomisation (esda's
    permutations) holds ``y_i`` and shuffles the other counts. Under homogeneous risk the
    same conditioning is exact for counts: given the total ``N`` and ``y_i``, ``S_i`` is ``Binomial(N - y_i, share_i)``
    with ``share_i`` the neighbours' share of the exposure of all sites but ``i``. The
    tails, the dispersion scaling and the return values are those of :func:`_count_test`.
    """
    n = y.shape[0]
    e = np.ones(n) if exposure is None else np.asarray(exposure, dtype=np.float64)
    adj = _binary_offdiag(w_star)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.asarray(adj @ e, dtype=np.float64) / (e.sum() - e)
    s = np.asarray(adj @ y, dtype=np.float64)
    total = y.sum(axis=0)
    rest = total[None, :] - y
    expected = share[:, None] * rest
    phi = _dispersion(y, (e / e.sum())[:, None] * total[None, :])
    p = _binomial_two_sided(s / phi, rest / phi, share[:, None])
    return p, np.sign(s - expected), expected, phi


# -- Local Moran's I --------------------------------------------------------------------------
@dataclass(frozen=True)
class _LocalMoran:
    i: np.ndarray
    q: np.ndarray
    z: np.ndarray
    """Analytic z of I under conditional randomisation (Sokal et al. 1998, esda's ``EIc``/``VIc``)."""
    p_norm: np.ndarray
    """Two-sided normal p of ``z``."""
    p_sim: np.ndarray
    p_perm: np.ndarray
    islands: np.ndarray


def _local_moran(y: np.ndarray, adj: sp.csr_array, *, permutations: int, seed: int) -> _LocalMoran:
    """Local Moran's I with row-standardised weights, as ``esda.Moran_Local(y, w, transformation="r")``.

    ``q``: 1 HH, 2 LH, 3 LL, 4 HL (esda's quadrants).
    """
    from scipy import stats  # lazy: scipy.stats costs ~1 s at import

    y = np.asarray(y, dtype=np.float64)
    n = y.size
    adj = _binary_offdiag(adj)
    card = np.diff(adj.indptr)
    islands = card == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (y - y.mean()) / y.std()
        row_w = np.repeat(1.0 / np.maximum(card, 1), card)
    w_r = sp.csr_array((row_w, adj.indices, adj.indptr), shape=adj.shape)
    lag = w_r @ z
    den = (z * z).sum()
    local_i = (n - 1) * z * lag / den
    zp, lp = z > 0, lag > 0
    q = np.select([zp & lp, ~zp & lp, ~zp & ~lp], [1, 2, 3], 4)
    # Conditional randomisation moments (Sokal et al. 1998, A7/A8, as esda's EIc/VIc) of
    # Anselin's I_i = z_i Σ w_ij z_j / m2; esda's I is (n - 1)/n of it.
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = den / n
        wi = np.asarray(w_r.sum(axis=1)).ravel()
        wi2 = np.asarray(w_r.multiply(w_r).sum(axis=1)).ravel()
        e_ic = -(z**2 * wi) / ((n - 1) * m2)
        v_ic = (z / m2) ** 2 * (n / (n - 2)) * (wi2 - wi**2 / (n - 1)) * (m2 - z**2 / (n - 1))
        z_i = (local_i * n / (n - 1) - e_ic) / np.sqrt(v_ic)
    z_i[islands | ~np.isfinite(z_i)] = np.nan
    p_norm = 2 * stats.norm.sf(np.abs(z_i))
    p_sim = np.full(n, np.nan)
    p_perm = np.full(n, np.nan)
    if permutations and np.isfinite(den) and den > 0:
        scaling = (n - 1) / den

        def stat(lagp: np.ndarray, zi: np.ndarray, self_w: np.ndarray) -> np.ndarray:
            return zi * (lagp + self_w * zi) * scaling

        at_least, greater, equal = _permute(z, adj, row_w, np.zeros(n), local_i, permutations, seed, stat)
        p_sim = _directed_p(local_i, at_least, permutations)
        p_perm = _mid_p_two_sided(greater, equal, permutations)
        p_sim[islands] = np.nan
        p_perm[islands] = np.nan
    return _LocalMoran(i=local_i, q=q, z=z_i, p_norm=p_norm, p_sim=p_sim, p_perm=p_perm, islands=islands)


# -- sparse data --------------------------------------------------------------------------------
WITHHELD_REASONS = {
    "no_value": "the grid has no value (NaN): left out of the analysis",
    "constant": "every grid has the same value (or none has any): nothing to compare",
    "too_few": "fewer incidents in the window than the minimum for the whole analysis",
    "sparse": "fewer incidents expected in a neighbourhood than the minimum: counts that small cannot be told from chance",
    "no_neighbours": "the grid has no neighbour: its neighbourhood is the grid alone",
    "few_nearby": "fewer incidents in the grid and its neighbours than the minimum: not enough to call it anything",
    "empty_neighbourhood": "the grid and all its neighbours are 0: no data, not a cold spot",
    "no_exposure": "the grid and its neighbours have no exposure (population 0): no incidents are expected there",
}
"""Why a grid got no bin: code → explanation (the ``withheld`` column holds the code)."""


def _withhold(
    y: np.ndarray,
    w_star: sp.csr_array,
    *,
    min_total: float,
    min_expected: float,
    min_neighbourhood: float = 0.0,
) -> np.ndarray:
    """Reason code per site (None: analysed) for values ``y`` (no NaN) and binary ``w_star`` with the diagonal.

    For the whole analysis: ``constant`` (all equal), ``too_few`` (``sum(y) < min_total``),
    ``sparse`` (an average neighbourhood expects fewer than ``min_expected``: ``mean(card)
    * mean(y)``). These depend on the data only through ``sum(y)``, so they select nothing
    by the tested value. Per site: ``no_neighbours``, ``empty_neighbourhood`` (the site and
    its neighbours all 0) and ``few_nearby`` (their sum below ``min_neighbourhood``): a
    neighbourhood that small can be neither a hot spot nor evidence of a cold one.
    """
    n = y.size
    out = np.full(n, None, dtype=object)
    if n == 0:
        return out
    total = float(y.sum())
    if total == 0 or np.all(y == y[0]):
        out[:] = "constant"
        return out
    if total < min_total:
        out[:] = "too_few"
        return out
    card = np.asarray(w_star.sum(axis=1)).ravel()
    if card.mean() * total / n < min_expected:
        out[:] = "sparse"
        return out
    hood = w_star @ np.abs(y)
    out[hood < min_neighbourhood] = "few_nearby"
    out[hood == 0] = "empty_neighbourhood"
    out[card <= 1] = "no_neighbours"
    return out


# -- multiple testing and bins -------------------------------------------------------------------
def _fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values); NaN stays NaN and is not counted."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv, kind="stable")
    ranked = pv[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(q, 1.0)
    out[ok] = adj
    return out


def _gi_bin(z: np.ndarray, p_two_sided: np.ndarray) -> np.ndarray:
    """ArcGIS Gi_Bin: ±3 at p < 0.01, ±2 at p < 0.05, ±1 at p < 0.10 (sign of z), else 0."""
    level = np.select([p_two_sided < 0.01, p_two_sided < 0.05, p_two_sided < 0.10], [3, 2, 1], 0)
    return (np.sign(np.nan_to_num(z)) * level).astype(np.int8)


def _two_sided(p_directed: np.ndarray) -> np.ndarray:
    """Two-sided p from a one-tailed (directed / folded-normal) p: ``min(1, 2 p)``."""
    return np.minimum(1.0, 2.0 * p_directed)


# -- Mann–Kendall -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _MannKendall:
    s: np.ndarray
    var_s: np.ndarray
    z: np.ndarray
    p: np.ndarray
    tau: np.ndarray


def _mann_kendall(x: np.ndarray) -> _MannKendall:
    """Mann–Kendall trend test of each row of ``x`` (rows: series, columns: time), ties corrected.

    ``S = Σ_{i<j} sign(x_j − x_i)``; ``Var S = [n(n−1)(2n+5) − Σ t(t−1)(2t+5)] / 18`` over tie
    groups of size ``t``; ``Z = (S − sign S) / √Var S`` (continuity correction); two-sided
    ``p = 2 (1 − Φ(|Z|))``; ``tau = S / (n(n−1)/2)``. The same as ``pymannkendall.original_test``.
    """
    from scipy import stats  # lazy: scipy.stats costs ~1 s at import

    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    m, n = x.shape
    s = np.zeros(m)
    for k in range(n - 1):
        s += np.sign(x[:, k + 1 :] - x[:, k : k + 1]).sum(axis=1)
    xs = np.sort(x, axis=1)
    ties = np.zeros(m)
    for r in range(m):
        _, counts = np.unique(xs[r], return_counts=True)
        t = counts[counts > 1].astype(np.float64)
        ties[r] = (t * (t - 1) * (2 * t + 5)).sum()
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var_s > 0, (s - np.sign(s)) / np.sqrt(var_s), 0.0)
    p = 2 * stats.norm.sf(np.abs(z))
    tau = s / (0.5 * n * (n - 1)) if n > 1 else np.zeros(m)
    return _MannKendall(s=s, var_s=var_s, z=z, p=p, tau=tau)


# -- emerging hot spots -------------------------------------------------------------------------
def _space_time_adjacency(adj: sp.csr_array, n_periods: int, time_lag: int) -> sp.csr_array:
    """Neighbours in the cube (node ``g * T + t``): spatial neighbours and self, at ``t - time_lag .. t``."""
    n = adj.shape[0]
    spatial = sp.csr_array(_binary_offdiag(adj) + sp.eye_array(n, format="csr"))
    # period t sees s when 0 <= t - s <= time_lag: the diagonal and time_lag sub-diagonals, built sparse
    # (a dense T x T mask took 900 MB and 2.7 s for 26 years of days)
    k = min(time_lag, n_periods - 1)
    lag = sp.diags_array(
        [np.ones(n_periods - j) for j in range(k + 1)],
        offsets=[-j for j in range(k + 1)],
        shape=(n_periods, n_periods),
        format="csr",
    )
    cube = sp.kron(spatial, lag, format="csr")
    return _binary_offdiag(cube)


def _classify_ehsa(
    hot: np.ndarray,
    cold: np.ndarray,
    trend_z: np.ndarray,
    trend_p: np.ndarray,
    *,
    min_share: float,
    alpha: float,
    strict: bool = False,
) -> np.ndarray:
    """ArcGIS's emerging-hot-spot categories per row (rows: locations, columns: periods, oldest first)."""
    m, t = hot.shape
    out = np.full(m, "no pattern", dtype=object)
    up = (trend_p < alpha) & (trend_z > 0)
    down = (trend_p < alpha) & (trend_z < 0)
    for kind, this, other, rising, falling in (
        ("hot spot", hot, cold, up, down),
        ("cold spot", cold, hot, down, up),
    ):
        for r in range(m):
            if out[r] != "no pattern":
                continue
            h = this[r]
            share = h.mean()
            last = bool(h[-1])
            if share >= min_share:
                if not last:
                    out[r] = f"historical {kind}"
                elif rising[r]:
                    out[r] = f"intensifying {kind}"
                elif falling[r]:
                    out[r] = f"diminishing {kind}"
                else:
                    out[r] = f"persistent {kind}"
                continue
            if not last:
                if not strict and falling[r] and _longest_run(h) >= 2:
                    out[r] = f"historical {kind}"
                continue
            before = h[:-1]
            if not before.any():
                out[r] = f"new {kind}"
                continue
            run = t - (np.flatnonzero(~h)[-1] + 1) if (~h).any() else t
            if run >= 2 and not h[: t - run].any():
                out[r] = f"consecutive {kind}"
            elif other[r, :-1].any():
                out[r] = f"oscillating {kind}"
            else:
                out[r] = f"sporadic {kind}"
    return out


def _longest_run(flags: np.ndarray) -> int:
    """Length of the longest run of True."""
    best = run = 0
    for f in flags:
        run = run + 1 if f else 0
        best = max(best, run)
    return best


# -- Knox -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Knox:
    n: int
    ns: int
    nt: int
    nst: int
    expected: float
    p_poisson: float
    p_sim: float
    sim: np.ndarray


def _knox(xy: np.ndarray, t: np.ndarray, *, distance: float, interval: float, permutations: int, seed: int) -> _Knox:
    """Knox test: pairs close in space (``<= distance``) and time (``<= interval``), times permuted."""
    from scipy import stats  # lazy: scipy.stats costs ~1 s at import
    from scipy.spatial import cKDTree

    n = xy.shape[0]
    pairs = cKDTree(xy).query_pairs(r=distance, output_type="ndarray") if n > 1 else np.empty((0, 2), np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    ns = int(i.size)
    ts = np.sort(t)
    # temporal pairs: for each event, the events after it (in sorted order) within the interval
    nt = int((np.searchsorted(ts, ts + interval, side="right") - np.arange(n) - 1).sum())
    nst = int((np.abs(t[i] - t[j]) <= interval).sum())
    n_pairs = n * (n - 1) / 2
    expected = ns * nt / n_pairs if n_pairs else math.nan
    p_poisson = float(1 - stats.poisson.cdf(nst, expected)) if n_pairs else math.nan
    rng = np.random.default_rng(seed)
    sim = np.empty(permutations, dtype=np.int64)
    for k in range(permutations):
        tp = t[rng.permutation(n)]
        sim[k] = int((np.abs(tp[i] - tp[j]) <= interval).sum())
    p_sim = float(((sim >= nst).sum() + 1) / (permutations + 1)) if permutations else math.nan
    return _Knox(n=n, ns=ns, nt=nt, nst=nst, expected=expected, p_poisson=p_poisson, p_sim=p_sim, sim=sim)


# -- kernel density ---------------------------------------------------------------------------------
def _scott_bandwidth(xy: np.ndarray) -> float:
    """Scott's rule in 2-D, ``h = n^(-1/6) · √((σx² + σy²)/2)`` (Silverman's rule is the same in 2-D)."""
    n = xy.shape[0]
    sd = math.sqrt(0.5 * (xy[:, 0].var(ddof=1) + xy[:, 1].var(ddof=1)))
    return float(sd * n ** (-1 / 6))


def _kde_grid(
    xy: np.ndarray, bandwidth: float, cell: float, bounds: tuple[float, float, float, float] | None
) -> tuple[np.ndarray, tuple[float, float, float, float, float, float]]:
    """Gaussian kernel density on square cells (points per km²), rows north to south.

    The points are binned on the cells, then smoothed with a Gaussian of standard
    deviation ``bandwidth`` (truncated at 4 σ). Returns the array and its affine
    transform ``(a, b, c, d, e, f)`` as rasterio/GDAL use it: ``x = a·col + b·row + c``,
    ``y = d·col + e·row + f``.
    """
    from scipy.ndimage import gaussian_filter

    if bounds is None:
        pad = 4 * bandwidth + cell
        x0, y0 = xy.min(axis=0) - pad
        x1, y1 = xy.max(axis=0) + pad
    else:
        x0, y0, x1, y1 = bounds
    x0 = math.floor(x0 / cell) * cell
    y0 = math.floor(y0 / cell) * cell
    nx = max(1, math.ceil((x1 - x0) / cell))
    ny = max(1, math.ceil((y1 - y0) / cell))
    y_top = y0 + ny * cell
    col = np.floor((xy[:, 0] - x0) / cell).astype(np.int64)
    row = np.floor((y_top - xy[:, 1]) / cell).astype(np.int64)
    ok = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)
    counts = np.zeros((ny, nx))
    np.add.at(counts, (row[ok], col[ok]), 1.0)
    dens = gaussian_filter(counts, sigma=bandwidth / cell, mode="constant", truncate=4.0)
    dens *= 1e6 / (cell * cell)  # points per km²
    return dens, (cell, 0.0, x0, 0.0, -cell, y_top)
