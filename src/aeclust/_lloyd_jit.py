"""The compiled Lloyd loop: Elkan's bounds, exact decisions, float64 running sums.

This module is the fast path of k-means. It runs Lloyd's algorithm with the
same contract as :func:`aeclust._lloyd.lloyd` (same stopping rule, same
empty-cluster rule, same return values), with three changes of method:

* **Elkan's bounds** (Elkan, 2003): per point an upper bound on the distance to
  its own centre and one lower bound per other centre, moved by the centres'
  drift after each update; a point whose bounds show that no other centre can
  be nearer is not looked at, and a centre whose bound rules it out is not
  measured. Per-centre bounds stay tight in high dimensions, where the single
  lower bound of Hamerly's variant is loose (about 40 % of the CIFAR-10 pixel
  rows would still need all their distances); Hamerly's bound is kept as well,
  as a one-read test before the per-centre bounds.
* **Exact decisions.** The nearest centre is defined on one exactly specified
  number, :func:`sq_distance` below: ``sum_t (x_t - c_t)^2`` with the float32
  values widened to float64 (each difference and square is exact or correctly
  rounded) and added in float64 in a fixed order (:func:`_d64`), the same on
  every machine. The kernel mostly measures a cheaper float32 distance, whose
  rounding error has a proven bound; it settles a comparison on it only when
  the two intervals do not overlap, and computes the float64 distances
  otherwise. Ties go to the lowest centre index.
  Every bound is kept on the safe side of its rounding (see ``_margins``), so a
  pruned centre is one whose distance is provably larger.
* **Float64 cluster sums** updated by the points that changed cluster, in row
  order (fresh sums when more than a quarter of the points moved, also added in
  row order). Each element of the sums is a sequential sum in row order, so
  the bits are the same for any number of threads.

Where the time goes, and what was done about it: a pass after the first tests
each row against Hamerly's bound (one read), then its per-centre lower bounds
(float32), and fetches the features only of the rows that still need a
distance, a few rows ahead (software prefetch: those rows are scattered through
memory, and a late pass is bound by memory, not arithmetic); a row's surviving
centres are measured together, without branches that depend on the distances.
A row whose bounds leave more than about half the centres (every row in the
first pass, most in the next few) is measured against all of them at once from
float32 dot products, four rows against four centres at a time (each value
loaded serves four products, where a distance loop loads two values per
product), with an error bound of its own (:func:`_row_from_dots`); on the
CIFAR-10 codes (50,000 x 192) the first passes took about 40 % less time.
The float64 distance runs on 8-lane vectors in the scalar definition's order
(:func:`_make_d64_vector`), the pass's float32 distance on 8-lane vectors too
(:func:`_make_d32_vector`). A row's work is written out in the loop over the
rows, not in a function called per row: a call that passes a dozen arrays cost
70 to 180 ns a row on the codes (inlined by numba or not), more than the
decision it called for. No BLAS call inside the loop: OpenBLAS's threads spin for a
while after each product, and on two cores that halved the speed of the numba
passes that followed.

The assignment pass works in blocks of rows (``ROW_BLOCK``) that its threads
take one at a time as they become free (:func:`_run_blocks`: the calling thread
and helper threads, a shared counter). Each block's results depend on that block
alone, and every reduction across blocks runs in block order, so the results
are the same bits for any thread count, and whichever thread took a block. (A
numba ``prange`` over the OpenMP layer gives each thread a fixed share and
waits for the slowest: on two cores shared with other processes a 1 ms pass
took 10 ms.) The other parallel loops (k-means++, all distances) are numba
``prange`` loops. The cluster sums are updated on one thread (a memory-bound
pass that a second thread does not speed up). The thread count is
:func:`aeclust._pairwise.cpu_count` (``AECLUST_NUM_THREADS``), capped at numba's
pool size (``NUMBA_NUM_THREADS``).

Nothing is compiled when this module is imported, and numba itself is imported
on first use: the kernels are plain functions below, compiled (and cached on
disk, ``cache=True``) by :func:`_kernels` the first time one is needed.
:func:`warm_up` compiles (or loads) them all and returns the seconds it took.

Public functions: :func:`lloyd`, :func:`assign_chunk`, :func:`cluster_sums`, :func:`sq_distance`,
:func:`sq_distances`, :func:`kmeans_plus_plus`, :func:`warm_up`. :func:`lloyd`,
:func:`cluster_sums` and :func:`kmeans_plus_plus` take point weights (None: the
unweighted code, as it was before weights existed).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings

import numpy as np

__all__ = ["lloyd", "assign_chunk", "cluster_sums", "sq_distance", "sq_distances", "kmeans_plus_plus", "warm_up"]

#: Rows per parallel block of the assignment pass (statistics are kept per block).
ROW_BLOCK = 256
#: How many rows ahead of its turn a row that needs distances is fetched from memory.
PREFETCH_ROWS = 4

_U64 = 2.0**-53  # unit roundoff of float64
_U32 = 2.0**-24  # unit roundoff of float32
_UP = 1.0 + 8 * _U64  # nudges a computed non-negative value up past its rounding
_DN = 1.0 - 8 * _U64


def _margins(d: int) -> tuple[float, float, float]:
    """Relative error bounds for ``d`` features: ``(G, M, H)``.

    * The float64 distance (:func:`sq_distance`) is within ``g64 = (d + 4) u64``
      relative of the true squared distance: every term is non-negative and its
      difference and square each round once, and any order of a sum of ``d``
      non-negative terms errs by at most ``(d - 1) u``.
    * The float32 distance, in whatever order the compiler adds it, is within
      ``g32 = (d + 4) u32`` relative, plus an absolute ``d 2^-120`` for terms
      that underflow.
    * ``G``: an interval ``[a (1 - G) - tau, a (1 + G) + tau]`` around a float32
      distance ``a`` holds both the true and the float64 squared distance.
    * ``M``: a bound test ``u * M < l`` (``u`` above the true distance to the own
      centre, ``l`` below the true distance to another) proves that the float64
      distance to the other centre is strictly larger, so that the rounding of
      the defining number cannot undo what the true distances say.
    * ``H``: around a float64 distance ``e``, ``[e (1 - H), e (1 + H)]`` holds the
      true squared distance.

    Beyond about 160,000 features the float32 bound passes 1 %; ``G`` is then
    infinite, every float32 interval is ``[0, inf]``, and every comparison is
    settled in float64 (correct, and slow).
    """
    g64 = (d + 4) * _U64
    g32 = (d + 4) * _U32
    G = 3.0 * (g32 + g64) + 16 * _U64 if g32 <= 1e-2 else np.inf
    M = 1.0 + 2.0 * g64 + 16 * _U64
    H = 2.0 * g64 + 16 * _U64
    return G, M, H


def _dense_from(d: int, k: int) -> int:
    """How many centres a row's bounds must leave (its own included) for :func:`_assign_rows`
    to measure it against every centre from dot products rather than those alone: more than
    half of them. The products of all ``k`` centres cost about what a row-by-row distance
    loop pays for half of them (one load per product against two), and the decisions on
    them a little more. Measured on CIFAR-10 (k = 10; pixels, d = 1024, and codes, d = 192):
    with 4 to 8 centres the passes took within 10 % of each other (6 is the middle); with
    no row on the products, the second pass took 20 % (codes) to 60 % (pixels) longer.
    ``d`` does not enter."""
    return max(2, (k + 1) // 2 + 1)


# ----------------------------------------------------------------------------------------
# Kernels: plain Python functions here, compiled by _kernels() on first use. The names are
# rebound in this module's namespace to the compiled dispatchers, so that kernels calling
# kernels find the compiled versions when numba resolves their globals.
# ----------------------------------------------------------------------------------------

_TAU_UNIT = 2.0**-120  # absolute slack per feature for float32 underflow


def _d64(X, i, C, j):
    """The defining squared distance: float32 values widened to float64, 8 running
    sums over the features ``t = l mod 8`` (in order), combined as a fixed tree,
    then the tail, for row ``i`` of ``X`` and row ``j`` of ``C``.
    No fast-math: the order is the one written here, on every machine."""
    d = X.shape[1]
    d8 = d - d % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for t in range(0, d8, 8):
        e0 = np.float64(X[i, t]) - np.float64(C[j, t])
        e1 = np.float64(X[i, t + 1]) - np.float64(C[j, t + 1])
        e2 = np.float64(X[i, t + 2]) - np.float64(C[j, t + 2])
        e3 = np.float64(X[i, t + 3]) - np.float64(C[j, t + 3])
        e4 = np.float64(X[i, t + 4]) - np.float64(C[j, t + 4])
        e5 = np.float64(X[i, t + 5]) - np.float64(C[j, t + 5])
        e6 = np.float64(X[i, t + 6]) - np.float64(C[j, t + 6])
        e7 = np.float64(X[i, t + 7]) - np.float64(C[j, t + 7])
        a0 += e0 * e0
        a1 += e1 * e1
        a2 += e2 * e2
        a3 += e3 * e3
        a4 += e4 * e4
        a5 += e5 * e5
        a6 += e6 * e6
        a7 += e7 * e7
    s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for t in range(d8, d):
        e = np.float64(X[i, t]) - np.float64(C[j, t])
        s += e * e
    return s


def _sq_distance(X, i, C, j):
    return _d64(X, i, C, j)


#: The scalar definition, kept for the tests (compiled, it gives the same bits as the vector one).
_d64_reference = _d64


def _d32(X, i, C, j):
    """A fast float32 squared distance (compiled with reassociation: any order), as float64."""
    s = np.float32(0.0)
    for t in range(X.shape[1]):
        e = X[i, t] - C[j, t]
        s += e * e
    return np.float64(s)


def _interval(a, G, tau):
    """:func:`_approx`'s interval around a float32 distance ``a`` (``(-1, -1)`` on overflow)."""
    if a <= 3.0e38:
        lo = a - tau
        if lo > 0.0:
            lo *= 1.0 - G
            if lo < 0.0:
                lo = 0.0
        else:
            lo = 0.0
        return lo, (a + tau) * (1.0 + G)
    return -1.0, -1.0


def _approx(X, i, C, j, G, tau):
    """``(lo, hi)``: an interval that holds both the true squared distance and :func:`_d64`,
    from the float32 distance; ``(-1, -1)`` on float32 overflow, where :func:`_exact` must
    serve. (Kept apart from :func:`_exact`, and free of run-time switches: either makes this
    hot function two to three times slower. It repeats :func:`_interval`'s body rather than
    calling it: the call gave the same bits but 7-17 % more time per iteration on the pixels.)
    ``G = inf`` gives ``[0, inf]``: no information."""
    a = _d32v(X, i, C, j)
    if a <= 3.0e38:  # float32 overflow otherwise
        lo = a - tau
        if lo > 0.0:
            lo *= 1.0 - G
            if lo < 0.0:
                lo = 0.0
        else:
            lo = 0.0
        return lo, (a + tau) * (1.0 + G)
    return -1.0, -1.0


def _exact(X, i, C, j, H):
    """``(lo, hi, e)``: the float64 distance ``e`` and an interval around it that holds the
    true squared distance."""
    e = _d64(X, i, C, j)
    return e * (1.0 - H), e * (1.0 + H), e


def _f32_down(v):
    """A float32 at most ``v`` (``v >= 0``), for storing lower bounds: 0 below float32's
    normal range (where rounding is no longer relative), float32's largest finite value
    above it."""
    if v < 1e-37:
        return np.float32(0.0)
    if v > 3.0e38:
        return np.float32(3.0e38)
    return np.float32(v * (1.0 - 2.0**-22))  # rounding to nearest stays below v


def _sqrt_up(v):
    return math.sqrt(v) * _UP


def _sqrt_dn(v):
    if v <= 0.0:
        return 0.0
    return math.sqrt(v) * _DN


def _queue_rows(labels, u, lbs, cum, L, cm, drift, half_cc, s, M, lo_row, hi_row, todo, old_lab, need, mask):
    """The first part of :func:`_assign_rows` for rows ``lo_row:hi_row``: moves each row's
    upper bound by its centre's drift, leaves alone the rows whose bounds rule out every
    other centre (they need no distance), and queues the others in ``todo`` (row order)
    with their labels in ``old_lab``, in ``need`` how many centres their bounds leave
    (the own one included) and in ``mask`` which other ones (bit ``j``; for ``k <= 63``).
    Returns ``(n_todo, n_skip)``."""
    k = lbs.shape[1]
    n_skip = 0
    n_todo = 0
    for i in range(lo_row, hi_row):
        a = labels[i]
        ua = (u[i] + drift[a]) * _UP
        u[i] = ua
        um = ua * M
        if um < s[a] or um < (L[i] - cm) * _DN:
            n_skip += 1
            continue
        m = 0
        bits = 0
        for j in range(k):
            lbj = (np.float64(lbs[i, j]) - cum[j]) * _DN
            bd = lbj if lbj > half_cc[a, j] else half_cc[a, j]
            left = (not (um < bd)) & (j != a)  # a NaN bound rules nothing out
            m += left
            bits |= np.int64(left) << (j & 63)
        if m == 0:
            # The per-centre bounds were tighter: keep their minimum. (Not taken in the loop
            # above: a running minimum there keeps the compiler from vectorising it, which
            # made the whole pass over the bounds twice as slow.)
            lmin = np.inf
            for j in range(k):
                lbj = (np.float64(lbs[i, j]) - cum[j]) * _DN
                lmin = lbj if (lbj < lmin) & (j != a) else lmin
            L[i] = (lmin + cm) * _DN
            n_skip += 1
            continue
        todo[n_todo] = i
        old_lab[n_todo] = a
        need[n_todo] = m + 1
        mask[n_todo] = bits
        n_todo += 1
    return n_todo, n_skip


def _measure_rows(X, C, rows, mask, n_rows, labels, u, lbs, cum, L, cm, half_cc, G, H, M, tau, cand, lo, hi,
                  ex, bound):
    """The second part of :func:`_assign_rows` for the queued rows ``rows[:n_rows]`` that need
    few centres: for each, measures the centres its bounds do not rule out (``mask``: the
    other ones, as :func:`_queue_rows` found them, for ``k <= 63``), assigns it, and renews
    its bounds (``u[i]``, ``lbs[i]``, ``L[i]``). ``cand``, ``lo``, ``hi``, ``ex``,
    ``bound``: scratch space of ``k`` entries. Returns ``(float32 distances, float64
    distances)`` computed.

    One call for all the rows, not one per row: a call that passes a dozen arrays cost more
    than measuring a row's few centres of 192 features (see the module notes). The rows are
    scattered through X: each is fetched from memory a few rows ahead of its turn, or the
    pass waits on memory for every row."""
    d = X.shape[1]
    k = C.shape[0]
    n_d32 = 0
    n_d64 = 0
    for r in range(min(PREFETCH_ROWS, n_rows)):
        for t in range(0, d, 16):
            _prefetch(X, rows[r], t)
    for r0 in range(n_rows):
        if r0 + PREFETCH_ROWS < n_rows:
            ip = rows[r0 + PREFETCH_ROWS]
            for t in range(0, d, 16):
                _prefetch(X, ip, t)
        i = rows[r0]
        a = labels[i]
        # Centres that the bounds do not rule out (written without data-dependent
        # branches: mispredicted branches, not distances, dominate the late passes), and
        # their bounds; the queue's mask saves reading the others'.
        um = u[i] * M
        m = 0
        if k <= 63:
            bits = mask[r0]
            for j in range(k):
                cand[m] = j
                m += (bits >> j) & 1
            for r in range(m):
                j = cand[r]
                bd = (np.float64(lbs[i, j]) - cum[j]) * _DN
                bound[j] = half_cc[a, j] if half_cc[a, j] > bd else bd
        else:
            for j in range(k):
                bd = (np.float64(lbs[i, j]) - cum[j]) * _DN
                if half_cc[a, j] > bd:
                    bd = half_cc[a, j]
                bound[j] = bd
                cand[m] = j
                m += (not (um < bd)) & (j != a)
        # The own centre's distance, and with it a tight upper bound.
        la, ha = _approx(X, i, C, a, G, tau)
        ea = -1.0
        if ha < 0.0:
            la, ha, ea = _exact(X, i, C, a, H)
            n_d64 += 1
        else:
            n_d32 += 1
        ua = _sqrt_up(ha)
        um = ua * M
        lbs[i, a] = _f32_down((_sqrt_dn(la) + cum[a]) * _DN)
        # Measure the centres that still survive; a's interval goes last.
        q = 0
        for r in range(m):
            j = cand[r]
            cand[q] = j
            q += not (um < bound[j])
        for r in range(q):
            ex[r] = _d32v(X, i, C, cand[r])
        for r in range(q):
            lo[r], hi[r] = _interval(ex[r], G, tau)
            ex[r] = -1.0
        n_d32 += q
        for r in range(q):
            if hi[r] < 0.0:  # float32 overflow
                lo[r], hi[r], ex[r] = _exact(X, i, C, cand[r], H)
                n_d32 -= 1
                n_d64 += 1
            lbs[i, cand[r]] = _f32_down((_sqrt_dn(lo[r]) + cum[cand[r]]) * _DN)
        if q > 0:
            cand[q] = a
            lo[q] = la
            hi[q] = ha
            ex[q] = ea
            q += 1
            # The smallest upper end; every centre whose interval reaches below it is a contender.
            best = q - 1
            for r in range(q - 1):
                best = r if hi[r] < hi[best] else best
            n_cont = 0
            for r in range(q):
                n_cont += lo[r] <= hi[best]
            if n_cont > 1:  # the intervals cannot tell: settle it in float64
                best, n_new = _settle(X, i, C, cand, lo, hi, ex, q, H)
                n_d64 += n_new
            a = cand[best]
            labels[i] = a
            ua = _sqrt_up(hi[best])
        u[i] = ua
        # Hamerly's bound afresh: the smallest lower bound over the other centres.
        lmin = np.inf
        for j in range(k):
            lbj = (np.float64(lbs[i, j]) - cum[j]) * _DN
            lmin = lbj if (lbj < lmin) & (j != a) else lmin
        L[i] = (lmin + cm) * _DN
    return n_d32, n_d64


def _assign_rows(
    X, C, labels, u, lbs, cum, L, cm, drift, half_cc, s, G, H, M, tau, stats, mv_n, mv_row, mv_old,
    x_sq, c_sq, c_norm, gd, rel, dense_from, first, n_threads
):
    """One Elkan assignment pass, in place: ``labels``, ``u`` (upper bound on the distance
    to the own centre) and ``lbs`` (lower bounds, one per centre, stored lazily).

    ``drift[j]`` (an upper bound on how far centre ``j`` moved since the last pass)
    is added to ``u``. The lower bounds are not moved one by one: ``cum[j]`` is an
    upper bound on the total path of centre ``j`` so far (its drifts added, rounded
    up), and ``lbs[i, j]`` holds a bound set at some earlier pass plus ``cum[j]`` of
    that time (rounded down, to float32: half the memory traffic); ``lbs[i, j] - cum[j]``
    (rounded down) is then a lower bound now. So the pass reads each row's lower
    bounds, and touches its features only when they do not rule out every centre.

    Before the per-centre bounds, Hamerly's single one: ``L[i] - cm`` (rounded down)
    is at most the distance to every other centre, stored the same lazy way with
    ``cm`` an upper bound on the sum of the largest drift of each pass. It rules
    out most rows for the price of one read.

    ``half_cc[a, j]`` is at most half the distance between centres ``a`` and ``j``;
    ``s[a]`` the smallest of those over ``j != a``. A row whose bounds leave fewer than
    ``dense_from`` centres (its own included) has those measured together (in float32,
    :func:`_measure_rows`): measuring them one after the other, each decision waiting on
    the last distance, is several times slower. A row that needs more is measured
    against every centre at once from float32 dot products (:func:`_dots_rows`, four
    rows and four centres at a time, so that each value loaded serves four products,
    then :func:`_dense_rows`): the first pass and the early ones, where the bounds rule
    out little, are mostly such rows. ``x_sq``: the rows' squared norms (float64,
    negative until first needed), ``c_sq`` and ``c_norm`` the centres', ``gd`` and
    ``rel`` the error terms of :func:`_dot_margins`. ``first``: the first pass, with no
    bounds yet (every row needs every centre; the bounds are not read).
    ``stats[b]`` gets, for row block ``b``: rows left alone, float32 distances (a dot
    product counts as one), float64 distances. The rows of block ``b`` that changed
    cluster go to ``mv_row[b * ROW_BLOCK:][:mv_n[b]]`` in row order, their old labels to
    ``mv_old``.

    The blocks are shared out among ``n_threads`` threads as they ask for them
    (:func:`_run_blocks`); each block's results depend on that block alone.
    """
    n_blocks = (X.shape[0] + ROW_BLOCK - 1) // ROW_BLOCK
    _run_blocks(_assign_blocks, n_blocks, n_threads,
                (X, C, labels, u, lbs, cum, L, cm, drift, half_cc, s, G, H, M, tau, stats, mv_n, mv_row, mv_old,
                 x_sq, c_sq, c_norm, gd, rel, dense_from, first))


def _assign_blocks(claim, X, C, labels, u, lbs, cum, L, cm, drift, half_cc, s, G, H, M, tau, stats, mv_n,
                   mv_row, mv_old, x_sq, c_sq, c_norm, gd, rel, dense_from, first):
    """The blocks of :func:`_assign_rows` that this thread claims: ``claim[0]`` is the next
    block to take, ``claim[1]`` counts the blocks finished (both changed atomically)."""
    n = X.shape[0]
    k = C.shape[0]
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    # Scratch space for this thread's blocks, one after the other.
    cand = np.empty(k, dtype=np.intp)
    lo = np.empty(k)
    hi = np.empty(k)
    ex = np.empty(k)
    bound = np.empty(k)
    todo = np.empty(ROW_BLOCK, dtype=np.intp)
    old_lab = np.empty(ROW_BLOCK, dtype=np.intp)
    need = np.empty(ROW_BLOCK, dtype=np.intp)
    mask = np.empty(ROW_BLOCK, dtype=np.int64)
    dense = np.empty(ROW_BLOCK, dtype=np.intp)
    dots = np.empty((ROW_BLOCK, k), dtype=np.float32)
    every = (np.int64(1) << min(k, 63)) - 1  # every centre, for the first pass
    while True:
        b = _atomic_add(claim, 0, 1)
        if b >= n_blocks:
            break
        lo_row = b * ROW_BLOCK
        hi_row = min(n, lo_row + ROW_BLOCK)
        # First the rows whose bounds rule out every other centre: they need no distance.
        if first:
            n_todo = hi_row - lo_row
            n_skip = 0
            for r0 in range(n_todo):
                todo[r0] = lo_row + r0
                old_lab[r0] = labels[lo_row + r0]
                need[r0] = k
                mask[r0] = every & ~(np.int64(1) << (labels[lo_row + r0] & 63))
        else:
            n_todo, n_skip = _queue_rows(labels, u, lbs, cum, L, cm, drift, half_cc, s, M, lo_row, hi_row,
                                         todo, old_lab, need, mask)
        n_d32, n_d64 = _assign_queued(X, C, labels, u, lbs, cum, L, cm, half_cc, G, H, M, tau, todo, n_todo,
                                      need, mask, dense, dots, x_sq, c_sq, c_norm, gd, rel, dense_from,
                                      cand, lo, hi, ex, bound)
        stats[b, 0] = n_skip
        stats[b, 1] = n_d32
        stats[b, 2] = n_d64
        # The rows that changed cluster (todo is in row order).
        n_mv = 0
        for r0 in range(n_todo):
            i = todo[r0]
            if labels[i] != old_lab[r0]:
                mv_row[lo_row + n_mv] = i
                mv_old[lo_row + n_mv] = old_lab[r0]
                n_mv += 1
        mv_n[b] = n_mv
        _atomic_add(claim, 1, 1)


def _assign_queued(X, C, labels, u, lbs, cum, L, cm, half_cc, G, H, M, tau, todo, n_todo, need, mask, dense,
                   dots, x_sq, c_sq, c_norm, gd, rel, dense_from, cand, lo, hi, ex, bound):
    """The second part of :func:`_assign_rows` for one block's queued rows ``todo[:n_todo]``
    (``need``: how many centres each one's bounds leave, ``mask``: which; ``dense``,
    ``dots``: scratch space). Returns ``(float32 distances, float64 distances)`` computed."""
    k = C.shape[0]
    # The rows that need every centre go to ``dense``, the others to the front of ``need``
    # (each entry is read before it is written over).
    n_dense = 0
    n_few = 0
    for r0 in range(n_todo):
        if need[r0] >= dense_from:
            dense[n_dense] = todo[r0]
            n_dense += 1
        else:
            need[n_few] = todo[r0]
            mask[n_few] = mask[r0]
            n_few += 1
    n_d32, n_d64 = _measure_rows(X, C, need, mask, n_few, labels, u, lbs, cum, L, cm, half_cc, G, H, M, tau,
                                 cand, lo, hi, ex, bound)
    _dots_rows(X, dense, n_dense, C, dots, x_sq)
    c32, c64 = _dense_rows(X, C, dense, n_dense, dots, labels, u, lbs, cum, L, cm, x_sq, c_sq, c_norm, gd, rel,
                           tau, G, H, cand, lo, hi, ex)
    return n_d32 + k * n_dense + c32, n_d64 + c64


def _settle(X, i, C, cand, lo, hi, ex, q, H):
    """Row ``i``'s nearest among the ``q`` measured centres ``cand[:q]`` by the float64
    distance, ties to the lowest centre index; returns ``(position in cand, float64
    distances computed)``. The contenders are the centres whose interval reaches below
    the smallest upper end: any other is provably farther than the one with that end.
    ``ex[r]`` is the float64 distance where known (else negative); it, ``lo`` and ``hi``
    are filled in for the contenders."""
    hb = hi[0]
    for r in range(1, q):
        if hi[r] < hb:
            hb = hi[r]
    best = -1
    n_new = 0
    for r in range(q):
        if lo[r] <= hb:
            if ex[r] < 0.0:
                lo[r], hi[r], ex[r] = _exact(X, i, C, cand[r], H)
                n_new += 1
            if best < 0 or ex[r] < ex[best] or (ex[r] == ex[best] and cand[r] < cand[best]):
                best = r
    return best, n_new


def _centre_geometry(C, C_old, G, H, tau, drift, half_cc, s):
    """Drift of each centre from ``C_old`` (upper bounds), half the centre-centre
    distances and their row minima (lower bounds)."""
    k = C.shape[0]
    for j in range(k):
        lo, hi = _approx(C, j, C_old, j, G, tau)
        if not (0.0 <= hi < np.inf):
            lo, hi, ex = _exact(C, j, C_old, j, H)
        drift[j] = _sqrt_up(hi) if hi > 0.0 else 0.0
    for a in range(k):
        half_cc[a, a] = 0.0
        for j in range(a + 1, k):
            lo, hi = _approx(C, a, C, j, G, tau)
            if not (0.0 <= hi < np.inf):
                lo, hi, ex = _exact(C, a, C, j, H)
            h = 0.5 * _sqrt_dn(lo) * _DN
            half_cc[a, j] = h
            half_cc[j, a] = h
    for a in range(k):
        m = np.inf
        for j in range(k):
            if j != a and half_cc[a, j] < m:
                m = half_cc[a, j]
        s[a] = m


def _fresh_sums(X, labels, sums):
    """``sums[c] = sum of the rows labelled c``, in float64, each element added in row order.

    On the calling thread: the pass is bound by memory bandwidth (a second thread
    gains nothing measurable), and a parallel region would wait, on a busy
    machine, for its slowest thread."""
    n, d = X.shape
    sums[:, :] = 0.0
    for i in range(n):
        # Slices and a loop from 0: numba then vectorises the loop (about 4 times faster).
        row = sums[labels[i], 0:d]
        x = X[i, 0:d]
        for t in range(d):
            row[t] += np.float64(x[t])


def _move_rows(X, rows, old, new, sums):
    """Move ``rows[r]`` (in the order given) from cluster ``old[r]`` to ``new[r]`` in the
    float64 sums: subtract, then add, row by row; each element's updates in row order.
    On the calling thread, as :func:`_fresh_sums`: after the first iterations few rows move."""
    d = X.shape[1]
    for r in range(rows.shape[0]):
        out = sums[old[r], 0:d]
        into = sums[new[r], 0:d]
        x = X[rows[r], 0:d]
        for t in range(d):
            v = np.float64(x[t])
            out[t] -= v
            into[t] += v


def _fresh_sums_w(X, w, labels, sums):
    """:func:`_fresh_sums` of the weighted rows: ``sums[c] = sum of w_i x_i`` over the rows
    labelled c, each product rounded once in float64, each element added in row order."""
    n, d = X.shape
    sums[:, :] = 0.0
    for i in range(n):
        row = sums[labels[i], 0:d]
        x = X[i, 0:d]
        wi = w[i]
        for t in range(d):
            row[t] += wi * np.float64(x[t])


def _move_rows_w(X, w, rows, old, new, sums):
    """:func:`_move_rows` of the weighted rows (the products of :func:`_fresh_sums_w`)."""
    d = X.shape[1]
    for r in range(rows.shape[0]):
        out = sums[old[r], 0:d]
        into = sums[new[r], 0:d]
        x = X[rows[r], 0:d]
        wi = w[rows[r]]
        for t in range(d):
            v = wi * np.float64(x[t])
            out[t] -= v
            into[t] += v


def _all_sq_dist(X, C, out):
    """``out[i, j]``: the float64 defining distance of row ``i`` to centre ``j`` (parallel over rows)."""
    for i in numba_prange(X.shape[0]):
        for j in range(C.shape[0]):
            out[i, j] = _d64(X, i, C, j)


def _own_sq_dist(X, C, labels, out):
    """The float64 defining distance of each row to its own centre (parallel over rows)."""
    n = X.shape[0]
    for i in numba_prange(n):
        out[i] = _d64(X, i, C, labels[i])


def _collect_moved(mv_n, mv_row, mv_old, labels, counts):
    """The rows that changed cluster in the last pass, in row order (the blocks' lists in
    block order), with their old and new labels; ``counts`` is updated."""
    total = 0
    for b in range(mv_n.shape[0]):
        total += mv_n[b]
    rows = np.empty(total, dtype=np.intp)
    old = np.empty(total, dtype=np.intp)
    new = np.empty(total, dtype=np.intp)
    m = 0
    for b in range(mv_n.shape[0]):
        for r in range(mv_n[b]):
            i = mv_row[b * ROW_BLOCK + r]
            rows[m] = i
            old[m] = mv_old[b * ROW_BLOCK + r]
            new[m] = labels[i]
            counts[old[m]] -= 1
            counts[new[m]] += 1
            m += 1
    return rows, old, new


def _pick_donors(order, labels, counts, n_empty):
    """The first ``n_empty`` points in ``order`` whose cluster can spare one (the rule of
    :func:`aeclust._lloyd.pick_donors`)."""
    left = counts.copy()
    donors = np.empty(n_empty, dtype=np.intp)
    m = 0
    for r in range(order.shape[0]):
        if m == n_empty:
            break
        p = order[r]
        if left[labels[p]] > 1:
            donors[m] = p
            left[labels[p]] -= 1
            m += 1
    return donors[:m]


def _row_from_dots(X, i, C, dots, r, x_sq, c_sq, c_norm, gd, rel, tau, G, H, cand, lo, hi, ex):
    """Row ``i``'s nearest centre from its float32 dot products with the centres, ``dots[r]``
    (a row of ``X C^T``), exactly.

    ``|fl(x.c) - x.c| <= gd |x| |c| / 2`` whatever the order of the sum, and the float64
    arithmetic around it adds at most ``rel (|x|^2 + |c|^2)``: so every centre gets an
    interval ``lo[j], hi[j]`` that holds its true and its float64 distance. Centres
    whose interval reaches below the smallest upper end are measured again in float32
    (the intersection of both intervals holds), and settled in float64 if that is not
    enough. Returns ``(nearest, float32 distances, float64 distances)``; ``lo``/``hi``
    are left filled in for every centre (``lo`` possibly negative: no bound), and
    ``ex[nearest]`` holds the float64 distance if it was computed, else -1.
    """
    k = C.shape[0]
    xs = x_sq[i]
    xn = math.sqrt(xs)
    hb = np.inf
    check = 0.0
    for j in range(k):
        v = xs + c_sq[j] - 2.0 * np.float64(dots[r, j])
        err = gd * xn * c_norm[j] + rel * (xs + c_sq[j]) + tau
        lo[j] = v - err
        hi[j] = v + err
        hb = hi[j] if hi[j] < hb else hb
        check += abs(hi[j])  # inf or nan if any upper end is (an overflowing product makes one -inf)
    # An overflow in the float32 product shows as inf or nan; beyond 1e37 it may be close.
    if not (xs < 1e37 and check < np.inf):
        for j in range(k):
            lo[j] = 0.0
            hi[j] = np.inf
        hb = np.inf
    # The contenders: centres whose interval reaches below the smallest upper end (the
    # centre with that end is one). A single contender is the nearest centre.
    best = 0
    n_cont = 0
    for j in range(k):
        c = lo[j] <= hb
        best = j if c else best
        n_cont += c
    if n_cont == 1:
        ex[best] = -1.0
        return best, 0, 0
    return _refine_from_dots(X, i, C, hb, G, H, tau, cand, lo, hi, ex)


def _refine_from_dots(X, i, C, hb, G, H, tau, cand, lo, hi, ex):
    """The rest of :func:`_row_from_dots` for a row with more than one contender (the
    centres whose interval ``lo[j], hi[j]`` reaches below the smallest upper end ``hb``):
    those measured again in float32, and settled in float64 if that is not enough.
    Returns ``(nearest, float32 distances, float64 distances)``."""
    k = C.shape[0]
    for j in range(k):
        cand[j] = j
        ex[j] = -1.0
        lo[j] = lo[j] if lo[j] > 0.0 else 0.0
    n32 = 0
    n64 = 0
    for j in range(k):
        if lo[j] <= hb:
            l2, h2 = _approx(X, i, C, j, G, tau)
            if h2 < 0.0:
                l2, h2, ex[j] = _exact(X, i, C, j, H)
                n64 += 1
            else:
                n32 += 1
            if l2 > lo[j]:
                lo[j] = l2
            if h2 < hi[j]:
                hi[j] = h2
    best = 0
    for j in range(1, k):
        best = j if hi[j] < hi[best] else best
    n_cont = 0
    for j in range(k):
        n_cont += lo[j] <= hi[best]
    if n_cont > 1:
        best, n_new = _settle(X, i, C, cand, lo, hi, ex, k, H)
        n64 += n_new
    return best, n32, n64


def _assign_chunk_rows(X, C, dots, x_sq, c_sq, gd, rel, tau, G, H, labels, best_sq):
    """:func:`assign_chunk`'s rows, one after the other, with the float64 distance to the
    chosen centre."""
    n = X.shape[0]
    k = C.shape[0]
    c_norm = np.sqrt(c_sq) * (1.0 + 4 * _U64)
    cand = np.empty(k, dtype=np.intp)
    lo = np.empty(k)
    hi = np.empty(k)
    ex = np.empty(k)
    for i in range(n):
        a, m32, m64 = _row_from_dots(
            X, i, C, dots, i, x_sq, c_sq, c_norm, gd, rel, tau, G, H, cand, lo, hi, ex
        )
        labels[i] = a
        best_sq[i] = ex[a] if ex[a] >= 0.0 else _d64(X, i, C, a)


def _dense_rows(X, C, rows, m, dots, labels, u, lbs, cum, L, cm, x_sq, c_sq, c_norm, gd, rel, tau, G, H,
                cand, lo, hi, ex):
    """The rows ``rows[:m]`` of :func:`_assign_rows` measured against every centre: each
    one's nearest centre from its dot products ``dots[r]`` (the intervals of
    :func:`_row_from_dots`, exact), and all its bounds afresh from those intervals.
    Returns ``(float32 distances, float64 distances)`` computed beyond the dot products.
    (The body of :func:`_row_from_dots` is repeated here, not called: one call per row,
    passing a dozen arrays, took more time than the decision itself.)"""
    k = C.shape[0]
    n32 = 0
    n64 = 0
    for r in range(m):
        i = rows[r]
        xs = x_sq[i]
        xn = math.sqrt(xs)
        hb = np.inf
        check = 0.0
        for j in range(k):
            v = xs + c_sq[j] - 2.0 * np.float64(dots[r, j])
            err = gd * xn * c_norm[j] + rel * (xs + c_sq[j]) + tau
            lo[j] = v - err
            h = v + err
            hi[j] = h
            hb = h if h < hb else hb
            check += abs(h)  # inf or nan if any upper end is (an overflowing product makes one -inf)
        # An overflow in the float32 product shows as inf or nan; beyond 1e37 it may be close.
        if not (xs < 1e37 and check < np.inf):
            for j in range(k):
                lo[j] = 0.0
                hi[j] = np.inf
            hb = np.inf
        # The contenders: centres whose interval reaches below the smallest upper end. A
        # single contender is the nearest centre; else measure them again (rarely).
        a = 0
        n_cont = 0
        for j in range(k):
            c = lo[j] <= hb
            a = j if c & (n_cont == 0) else a
            n_cont += c
        if n_cont > 1:
            a, c32, c64 = _refine_from_dots(X, i, C, hb, G, H, tau, cand, lo, hi, ex)
            n32 += c32
            n64 += c64
        labels[i] = a
        u[i] = _sqrt_up(hi[a])
        lmin = np.inf
        for j in range(k):
            b = _f32_down((_sqrt_dn(lo[j]) + cum[j]) * _DN)
            lbs[i, j] = b
            lbj = (np.float64(b) - cum[j]) * _DN
            lmin = lbj if (lbj < lmin) & (j != a) else lmin
        L[i] = (lmin + cm) * _DN
    return n32, n64


def _dots_rows(X, rows, m, C, dots, x_sq):
    """``dots[r, j]``: the float32 dot product of row ``rows[r]`` of ``X`` with centre ``j``,
    for ``r < m`` (compiled with reassociation: any order, which :func:`_dot_margins`'s
    bound allows for); four rows at a time by :func:`_dot_tile`, the last ones alone.
    ``x_sq[i]``, where still negative, gets row ``i``'s squared norm (float64, any order),
    while the row is in cache."""
    k, d = C.shape
    r = 0
    while r + 4 <= m:
        _dot_tile(X, rows[r], rows[r + 1], rows[r + 2], rows[r + 3], C, dots, r)
        r += 4
    while r < m:
        i = rows[r]
        for j in range(k):
            s = np.float32(0.0)
            for t in range(d):
                s += X[i, t] * C[j, t]
            dots[r, j] = s
        r += 1
    for r in range(m):
        i = rows[r]
        if x_sq[i] < 0.0:
            s = 0.0
            for t in range(d):
                v = np.float64(X[i, t])
                s += v * v
            x_sq[i] = s


def _dot_tile(X, i0, i1, i2, i3, C, dots, r):
    """``dots[r:r + 4]``: rows ``i0..i3`` of ``X`` against every centre, four centres at a
    time: sixteen sums in registers, each feature of a row and of a centre loaded once for
    four products (one product per load is what bounds a row-by-row loop)."""
    k, d = C.shape
    j = 0
    while j + 4 <= k:
        a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = np.float32(0.0)
        a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = np.float32(0.0)
        for t in range(d):
            c0 = C[j, t]
            c1 = C[j + 1, t]
            c2 = C[j + 2, t]
            c3 = C[j + 3, t]
            x0 = X[i0, t]
            x1 = X[i1, t]
            x2 = X[i2, t]
            x3 = X[i3, t]
            a00 += x0 * c0
            a01 += x0 * c1
            a02 += x0 * c2
            a03 += x0 * c3
            a10 += x1 * c0
            a11 += x1 * c1
            a12 += x1 * c2
            a13 += x1 * c3
            a20 += x2 * c0
            a21 += x2 * c1
            a22 += x2 * c2
            a23 += x2 * c3
            a30 += x3 * c0
            a31 += x3 * c1
            a32 += x3 * c2
            a33 += x3 * c3
        dots[r, j], dots[r, j + 1], dots[r, j + 2], dots[r, j + 3] = a00, a01, a02, a03
        dots[r + 1, j], dots[r + 1, j + 1], dots[r + 1, j + 2], dots[r + 1, j + 3] = a10, a11, a12, a13
        dots[r + 2, j], dots[r + 2, j + 1], dots[r + 2, j + 2], dots[r + 2, j + 3] = a20, a21, a22, a23
        dots[r + 3, j], dots[r + 3, j + 1], dots[r + 3, j + 2], dots[r + 3, j + 3] = a30, a31, a32, a33
        j += 4
    while j < k:
        s0 = s1 = s2 = s3 = np.float32(0.0)
        for t in range(d):
            c = C[j, t]
            s0 += X[i0, t] * c
            s1 += X[i1, t] * c
            s2 += X[i2, t] * c
            s3 += X[i3, t] * c
        dots[r, j], dots[r + 1, j], dots[r + 2, j], dots[r + 3, j] = s0, s1, s2, s3
        j += 1


def _row_sq_norms64(X, out):
    """Squared norms in float64 (compiled with reassociation: any order, error at most
    ``(d - 1) u64`` relative, which :func:`_product`'s bound allows for)."""
    for i in range(X.shape[0]):
        s = 0.0
        for t in range(X.shape[1]):
            v = np.float64(X[i, t])
            s += v * v
        out[i] = s


def _pp_update(X, cand, closest, trial, sums):
    """k-means++: ``trial[i, m] = min(closest[i], |x_i - X[cand[m]]|^2)`` (the float32 distance,
    as float64), and ``sums[m]``: the column sums of ``trial`` over fixed row blocks, the blocks'
    partial sums added in block order (the same bits for any thread count)."""
    n = X.shape[0]
    nt = cand.shape[0]
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    part = np.zeros((n_blocks, nt))
    for b in numba_prange(n_blocks):
        for i in range(b * ROW_BLOCK, min(n, (b + 1) * ROW_BLOCK)):
            ci = closest[i]
            for m in range(nt):
                v = _d32(X, i, X, cand[m])
                if ci < v:
                    v = ci
                trial[i, m] = v
                part[b, m] += v
    for m in range(nt):
        sums[m] = 0.0
    for b in range(n_blocks):
        for m in range(nt):
            sums[m] += part[b, m]


def _pp_update_w(X, w, cand, closest, trial, sums):
    """:func:`_pp_update` with the column sums weighted: ``sums[m] = sum_i w[i] trial[i, m]``
    (``trial`` itself unweighted), over the same fixed row blocks."""
    n = X.shape[0]
    nt = cand.shape[0]
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    part = np.zeros((n_blocks, nt))
    for b in numba_prange(n_blocks):
        for i in range(b * ROW_BLOCK, min(n, (b + 1) * ROW_BLOCK)):
            ci = closest[i]
            for m in range(nt):
                v = _d32(X, i, X, cand[m])
                if ci < v:
                    v = ci
                trial[i, m] = v
                part[b, m] += w[i] * v
    for m in range(nt):
        sums[m] = 0.0
    for b in range(n_blocks):
        for m in range(nt):
            sums[m] += part[b, m]


def _pp_first(X, c0, closest):
    n = X.shape[0]
    for i in numba_prange(n):
        closest[i] = _d32(X, i, X, c0)


def _d32v(X, i, C, j):  # replaced by a compiled vector version (see _make_d32_vector)
    return _d32(X, i, C, j)


def numba_prange(n):  # replaced by numba.prange when the kernels are compiled
    return range(n)


def _atomic_add(a, i, v):  # replaced by a compiled atomic fetch-and-add (see _make_atomic_add)
    old = a[i]
    a[i] += v
    return old


def _make_atomic_add():
    """A numba intrinsic: ``_atomic_add(a, i, v)`` adds ``v`` to ``a[i]`` (an int64 array) in one
    atomic step (LLVM's ``atomicrmw add``, sequentially consistent) and returns the value before."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    @intrinsic
    def atomic_add(typingctx, arr, i, v):
        if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
            raise TypingError("_atomic_add takes a 1-d int64 array")
        sig = types.int64(arr, types.intp, types.int64)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
            return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

        return sig, codegen

    return atomic_add



def _prefetch(a, i, j):  # replaced by a compiled memory prefetch of a[i, j] (see _make_prefetch)
    pass


def _make_prefetch():
    """A numba intrinsic: ``_prefetch(a, i, j)`` asks the CPU to fetch the cache line of
    ``a[i, j]`` (LLVM's ``llvm.prefetch``: a read, kept in all cache levels); it changes no value."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, arr, i, j):
        sig = types.void(arr, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], args[2]])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]  # read, keep, data
            builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


def _row_pair_intrinsic(name: str, emit):
    """A numba intrinsic ``f(X, i, C, j) -> float64`` on the rows ``X[i]`` and ``C[j]`` of C-contiguous
    2-d float32 arrays: the type check and the rows' pointers, shared by the vector distances;
    ``emit(builder, xp, cp, d, intp)`` writes the rest (``xp``, ``cp``: the rows' first elements,
    ``d``: their length) and returns the float64 value."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.core.errors import TypingError
    from numba.extending import intrinsic

    def typer(typingctx, X, i, C, j):
        for a in (X, C):
            if not (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
                    and a.dtype == types.float32):
                raise TypingError(f"{name} takes C-contiguous 2-d float32 arrays")
        sig = types.float64(X, types.intp, C, types.intp)

        def codegen(context, builder, signature, args):
            xty, _, cty, _ = signature.args
            xa = context.make_array(xty)(context, builder, args[0])
            ca = context.make_array(cty)(context, builder, args[2])
            intp = context.get_value_type(types.intp)
            zero = ir.Constant(intp, 0)
            xp = cgutils.get_item_pointer(context, builder, xty, xa, [args[1], zero])
            cp = cgutils.get_item_pointer(context, builder, cty, ca, [args[3], zero])
            d = cgutils.unpack_tuple(builder, xa.shape)[1]
            return emit(builder, xp, cp, d, intp)

        return sig, codegen

    typer.__name__ = name
    return intrinsic(typer)


def _make_d32_vector():
    """A float32 squared distance as a numba intrinsic, for the assignment pass: four
    16-lane float32 sums over the features (then one, then the tail), combined as a tree;
    any order would do for :func:`_approx`'s bound, and this one is fixed. Unlike a call
    to :func:`_d32` (compiled apart, with reassociation), its code is written out where it
    is used, so that a row's distances cost no function calls. :func:`_d32` itself is kept
    for k-means++, whose draws depend on its bits."""
    from llvmlite import ir
    from numba.core import cgutils

    W = 8

    def emit(builder, xp, cp, d, intp):
        zero = ir.Constant(intp, 0)
        f32 = ir.FloatType()
        vty = ir.VectorType(f32, W)
        i32 = ir.IntType(32)

        def load(p, t):
            return builder.load(builder.bitcast(builder.gep(p, [t]), vty.as_pointer()), align=4)

        def sq(t):
            e = builder.fsub(load(xp, t), load(cp, t))
            return builder.fmul(e, e)

        accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * W)) for _ in range(4)]
        d64 = builder.and_(d, ir.Constant(intp, -4 * W))
        with cgutils.for_range_slice(builder, zero, d64, ir.Constant(intp, 4 * W), intp) as (t, _):
            for m in range(4):
                tm = builder.add(t, ir.Constant(intp, m * W))
                builder.store(builder.fadd(builder.load(accs[m]), sq(tm)), accs[m])
        d16 = builder.and_(d, ir.Constant(intp, -W))
        with cgutils.for_range_slice(builder, d64, d16, ir.Constant(intp, W), intp) as (t, _):
            builder.store(builder.fadd(builder.load(accs[0]), sq(t)), accs[0])
        v = builder.fadd(builder.fadd(builder.load(accs[0]), builder.load(accs[1])),
                         builder.fadd(builder.load(accs[2]), builder.load(accs[3])))
        n = W
        while n > 1:  # the lanes, as a tree
            h = n // 2
            lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, h), list(range(h))))
            hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, h), list(range(h, n))))
            v = builder.fadd(lo, hi)
            n = h
        acc1 = cgutils.alloca_once_value(builder, builder.extract_element(v, ir.Constant(i32, 0)))
        with cgutils.for_range_slice(builder, d16, d, ir.Constant(intp, 1), intp) as (t, _):
            e = builder.fsub(builder.load(builder.gep(xp, [t])), builder.load(builder.gep(cp, [t])))
            builder.store(builder.fadd(builder.load(acc1), builder.fmul(e, e)), acc1)
        return builder.fpext(builder.load(acc1), ir.DoubleType())

    return _row_pair_intrinsic("_d32v", emit)


def _make_d64_vector():
    """:func:`_d64` as a numba intrinsic that keeps its 8 running sums in one 8-lane float64
    vector: the same additions in the same order (lane ``l`` holds the features
    ``t = l mod 8``; the lanes are combined as the same tree, then the tail), so the same
    bits, 3 to 4 times faster. numba does not vectorise the scalar version: its
    superword (SLP) vectoriser is off, and reassociating the sums, as fast-math
    would, changes the result. Lane-wise IEEE operations, no fused multiply-add."""
    from llvmlite import ir
    from numba.core import cgutils

    def emit(builder, xp, cp, d, intp):
        zero = ir.Constant(intp, 0)
        d8 = builder.and_(d, ir.Constant(intp, -8))
        f64 = ir.DoubleType()
        v32 = ir.VectorType(ir.FloatType(), 8)
        v64 = ir.VectorType(f64, 8)
        acc = cgutils.alloca_once_value(builder, ir.Constant(v64, [0.0] * 8))
        with cgutils.for_range_slice(builder, zero, d8, ir.Constant(intp, 8), intp) as (t, _):
            vx = builder.load(builder.bitcast(builder.gep(xp, [t]), v32.as_pointer()), align=4)
            vc = builder.load(builder.bitcast(builder.gep(cp, [t]), v32.as_pointer()), align=4)
            e = builder.fsub(builder.fpext(vx, v64), builder.fpext(vc, v64))
            builder.store(builder.fadd(builder.load(acc), builder.fmul(e, e)), acc)
        a = builder.load(acc)
        lane = [builder.extract_element(a, ir.Constant(ir.IntType(32), m)) for m in range(8)]
        total = builder.fadd(
            builder.fadd(builder.fadd(lane[0], lane[1]), builder.fadd(lane[2], lane[3])),
            builder.fadd(builder.fadd(lane[4], lane[5]), builder.fadd(lane[6], lane[7])),
        )
        acc1 = cgutils.alloca_once_value(builder, total)
        with cgutils.for_range_slice(builder, d8, d, ir.Constant(intp, 1), intp) as (t, _):
            x = builder.fpext(builder.load(builder.gep(xp, [t])), f64)
            c = builder.fpext(builder.load(builder.gep(cp, [t])), f64)
            e = builder.fsub(x, c)
            builder.store(builder.fadd(builder.load(acc1), builder.fmul(e, e)), acc1)
        return builder.load(acc1)

    return _row_pair_intrinsic("_d64", emit)


_PARALLEL = ("_own_sq_dist", "_pp_update", "_pp_update_w", "_pp_first", "_all_sq_dist")
_SERIAL = ("_sq_distance", "_interval", "_approx", "_exact", "_settle", "_f32_down", "_sqrt_up", "_sqrt_dn",
           "_queue_rows", "_measure_rows", "_assign_queued", "_dense_rows", "_refine_from_dots", "_assign_blocks",
           "_centre_geometry", "_collect_moved", "_pick_donors", "_row_from_dots", "_assign_chunk_rows",
           "_fresh_sums", "_move_rows", "_fresh_sums_w", "_move_rows_w")
_FAST = ("_d32", "_row_sq_norms64", "_dots_rows", "_dot_tile")

_build_lock = threading.Lock()
_compiled = False


def _disk_cache(numba) -> bool:
    """Whether numba can cache the kernels on disk (``cache=True``).

    numba caches beside this file (``__pycache__``), in ``NUMBA_CACHE_DIR`` or in the user's cache
    folder, the first that is writable. An installed package often lies in a read-only
    site-packages; where the user's cache folder is not writable either (an account without a
    home), ``cache=True`` would stop with numba's "no locator available", so the kernels are
    compiled in memory instead, in every process.
    """
    try:
        numba.njit(cache=True)(_sq_distance)  # finds (or creates) the cache folder; compiles nothing
    except RuntimeError:
        warnings.warn("numba finds no writable folder to cache aeclust's kernels in: they are compiled "
                      "again in every process (5-10 s); set NUMBA_CACHE_DIR to a writable folder to keep them",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


def _kernels():
    """Compile (or load from numba's on-disk cache) the kernels; once per process."""
    global _compiled
    if _compiled:
        return
    with _build_lock:
        if _compiled:
            return
        import numba

        g = globals()
        g["numba_prange"] = numba.prange
        g["_prefetch"] = _make_prefetch()
        g["_d64"] = _make_d64_vector()
        g["_d32v"] = _make_d32_vector()
        g["_atomic_add"] = _make_atomic_add()
        cache = _disk_cache(numba)
        for name in _FAST:
            g[name] = numba.njit(cache=cache, nogil=True, fastmath={"reassoc", "contract"})(g[name])
        for name in _SERIAL:
            g[name] = numba.njit(cache=cache, nogil=True)(g[name])
        for name in _PARALLEL:
            g[name] = numba.njit(cache=cache, nogil=True, parallel=True)(g[name])
        _compiled = True


# ----------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------

_pool_lock = threading.Lock()


@contextlib.contextmanager
def _threads():
    """numba's threads for one call: ``cpu_count()``, capped at numba's pool size.

    numba's ``workqueue`` layer (used when neither OpenMP nor TBB is available)
    must not be entered from two threads at once: calls are then serialised.
    """
    import numba

    from ._pairwise import cpu_count

    n = max(1, min(cpu_count(), numba.config.NUMBA_NUM_THREADS))
    layer = getattr(numba.config, "THREADING_LAYER", "default")
    serial = layer == "workqueue"
    try:
        serial = serial or numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel region has run yet: be careful the first time
        serial = True
    lock = _pool_lock if serial else contextlib.nullcontext()
    with lock:
        previous = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(previous)


class _Task:
    """One call of a block kernel, shared with the helper threads: ``fn(claim, *args)``."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.claim = np.zeros(2, dtype=np.int64)  # [next block to take, blocks finished]
        self.cond = threading.Condition()
        self.error = None

    def run(self):
        try:
            self.fn(self.claim, *self.args)
        except BaseException as e:  # the caller raises it
            self.error = e
        finally:
            with self.cond:
                self.cond.notify_all()


class _Helpers:
    """Helper threads for :func:`_run_blocks`, started on first use, each with its own queue
    of tasks; daemon threads, replaced by fresh ones in a forked child."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queues = []

    def _work(self, q):
        while True:
            task = q.get()
            if task is None:
                return
            task.run()

    def give(self, task, n: int) -> None:
        """Offers ``task`` to ``n`` helper threads."""
        import queue

        with self.lock:
            while len(self.queues) < n:
                q = queue.SimpleQueue()
                threading.Thread(target=self._work, args=(q,), name="aeclust-lloyd", daemon=True).start()
                self.queues.append(q)
        for q in self.queues[:n]:
            q.put(task)


_helpers = _Helpers()
if hasattr(__import__("os"), "register_at_fork"):
    __import__("os").register_at_fork(after_in_child=lambda: globals().__setitem__("_helpers", _Helpers()))


def _run_blocks(fn, n_blocks: int, n_threads: int, args: tuple) -> None:
    """``fn(claim, *args)`` on this thread and on ``n_threads - 1`` helpers: each call takes
    blocks one at a time from ``claim[0]`` until none is left, and counts each block it
    finishes in ``claim[1]`` (:func:`_atomic_add`). ``fn`` releases the GIL.

    A thread asks for the next block when it is done with the last, so a thread that the
    operating system holds back (a machine busy with other work) takes fewer blocks
    instead of holding up the pass; the calling thread waits only for blocks that have
    been taken, never for a helper that has not started. (numba's ``prange`` over the
    OpenMP layer gives each thread a fixed half and waits for both: on two cores shared
    with other processes, passes of 1 ms took 10 ms.) Which thread takes a block changes
    no result: each block's results depend on that block alone.
    """
    task = _Task(fn, args)
    if n_threads > 1 and n_blocks > 1:
        _helpers.give(task, n_threads - 1)
    task.run()
    with task.cond:
        while task.claim[1] < n_blocks and task.error is None:
            task.cond.wait()
    if task.error is not None:
        raise task.error


# ----------------------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------------------


def _as_f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def sq_distance(x: np.ndarray, c: np.ndarray) -> float:
    """The defining squared distance between two float32 vectors (float64; see the module notes)."""
    _kernels()
    return float(_sq_distance(_as_f32(x).reshape(1, -1), 0, _as_f32(c).reshape(1, -1), 0))


def _geometry(C, C_old, G, H, tau):
    k = C.shape[0]
    drift = np.empty(k)
    half_cc = np.empty((k, k))
    s = np.empty(k)
    _centre_geometry(C, C_old, G, H, tau, drift, half_cc, s)
    return drift, half_cc, s


class _ClusterSums:
    """The cluster sums of :func:`lloyd` and what it divides them by, unweighted.

    ``counts`` (points per cluster) is kept up to date in place by
    :func:`_collect_moved` and :meth:`update`; ``sums`` (float64) by :meth:`move`
    for the points that changed cluster, or afresh by :meth:`fresh`.
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray, k: int):
        self.X, self.k = X, k
        self.counts = np.bincount(labels, minlength=k)
        self.sums = np.zeros((k, X.shape[1]))

    def refresh(self, labels: np.ndarray) -> None:
        """Counts from the labels, where they are not kept up to date (the weighted case)."""

    def recount(self, labels: np.ndarray) -> None:
        self.counts[:] = np.bincount(labels, minlength=self.k)

    def spare(self, order: np.ndarray) -> np.ndarray:
        """The points, in ``order``, that may re-seed an empty cluster: all of them."""
        return order

    def fresh(self, labels: np.ndarray) -> None:
        _fresh_sums(self.X, labels, self.sums)

    def move(self, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        _move_rows(self.X, rows, old, new, self.sums)

    def centres(self) -> np.ndarray:
        return (self.sums / np.maximum(self.counts, 1)[:, None]).astype(np.float32)

    def update(self, C: np.ndarray, labels: np.ndarray, u: np.ndarray, have_sums: bool):
        """update_centers, in place on ``labels`` and the counts: returns (new centres, the
        labels before any empty cluster took a point, n_empty, have_sums). ``C``: the centres
        that ``labels`` were assigned to; ``u``: the upper bounds, reset for the moved points."""
        X, n = self.X, self.X.shape[0]
        self.refresh(labels)
        counts = self.counts
        n_empty = int(np.count_nonzero(counts == 0))
        before = labels
        if n_empty:
            own = np.empty(n)
            _own_sq_dist(X, C, labels, own)
            order = self.spare(np.argsort(-own, kind="stable"))
            by_rank = _pick_donors(order, labels, counts, n_empty)
            donors = np.sort(by_rank)
            before = labels.copy()
            # The farthest donor goes to the first empty cluster, and so on.
            labels[by_rank] = np.flatnonzero(counts == 0)[: len(by_rank)]
            self.recount(labels)
            if have_sums:
                self.move(donors, before[donors], labels[donors])
            u[donors] = np.inf  # their own centre changed: no bound holds
        if not have_sums:
            self.fresh(labels)
            have_sums = True
        return self.centres(), before, n_empty, have_sums


class _WeightedSums(_ClusterSums):
    """Weighted cluster sums: ``sum w x`` (float64, kept as the unweighted sums are),
    divided by the cluster's total weight.

    ``counts`` counts the points of positive weight. A cluster whose points all weigh
    0 has a total weight of 0: it is empty, and is re-seeded as an empty cluster is,
    by the farthest point of positive weight whose cluster keeps one. The counts and
    the total weights are taken afresh from the labels at every update (an O(n) pass:
    exact, however many points moved), in row order.
    """

    def __init__(self, X: np.ndarray, labels: np.ndarray, k: int, w: np.ndarray):
        self.w, self.carries = w, w > 0
        super().__init__(X, labels, k)
        self.refresh(labels)

    def refresh(self, labels: np.ndarray) -> None:
        self.counts = np.bincount(labels[self.carries], minlength=self.k)
        self.total = np.bincount(labels, weights=self.w, minlength=self.k)

    recount = refresh

    def spare(self, order: np.ndarray) -> np.ndarray:
        return order[self.carries[order]]  # a point of weight 0 cannot make a cluster non-empty

    def fresh(self, labels: np.ndarray) -> None:
        _fresh_sums_w(self.X, self.w, labels, self.sums)

    def move(self, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        _move_rows_w(self.X, self.w, rows, old, new, self.sums)

    def centres(self) -> np.ndarray:
        return (self.sums / np.where(self.counts > 0, self.total, 1.0)[:, None]).astype(np.float32)


def lloyd(X: np.ndarray, centers: np.ndarray, max_iter: int, callback=None, *, stats=None, weights=None):
    """Run Lloyd's algorithm from ``centers`` until no assignment changes.

    The contract of :func:`aeclust._lloyd.lloyd`: returns ``(labels, centers,
    n_iter, converged, n_empty_total)``; ``n_iter`` counts centre updates, the last
    followed by an assignment that changed nothing; centres that come out exactly
    as before also end the loop; an empty cluster takes the point farthest from
    its centre (float64 defining distance, ties to the lower row) among the
    clusters that can spare one, several empty clusters the next-farthest
    points, in cluster order. ``callback(it, labels, centers)`` after each
    assignment (copies).

    Every pass is :func:`_assign_rows`; the first, with no bounds yet, measures
    every centre (in float32, settling near ties in float64).

    ``weights`` (float64, non-negative, or None for all 1): each centre is the
    weighted mean of its points (:class:`_WeightedSums`; the assignment does not
    depend on the weights). None runs the unweighted code, unchanged.

    ``stats``, if a list, receives one dict per assignment pass: ``rows_skipped``
    (rows whose bounds ruled out every other centre, so that no distance was
    computed), ``d32`` and ``d64`` (distances computed in float32 and float64),
    and ``n``, ``k``.
    """
    _kernels()
    X = _as_f32(X)
    C = np.array(centers, dtype=np.float32, order="C", copy=True)
    n, d = X.shape
    k = C.shape[0]
    G, M, H = _margins(d)
    tau = d * _TAU_UNIT
    n_blocks = (n + ROW_BLOCK - 1) // ROW_BLOCK
    block_stats = np.zeros((n_blocks, 3), dtype=np.int64)

    def record():
        if stats is not None:
            tot = block_stats.sum(axis=0)
            stats.append({"n": n, "k": k, "rows_skipped": int(tot[0]), "d32": int(tot[1]),
                          "d64": int(tot[2])})

    with _threads() as n_threads:
        labels = np.zeros(n, dtype=np.intp)  # assigned in place, pass after pass
        u = np.full(n, np.inf)
        lbs = np.zeros((n, k), dtype=np.float32)
        cum = np.zeros(k)  # upper bounds on each centre's total path
        L = np.zeros(n)  # Hamerly's bound, stored with cm as lbs with cum
        cm = 0.0
        mv_n = np.zeros(n_blocks, dtype=np.intp)
        mv_row = np.empty(n, dtype=np.intp)
        mv_old = np.empty(n, dtype=np.intp)
        x_sq = np.full(n, -1.0)  # the rows' squared norms, computed where first needed
        gd, rel, _ = _dot_margins(d)
        dense_from = _dense_from(d, k)

        def assign(C, drift, half_cc, s, first=False):
            c_sq = np.empty(k)
            _row_sq_norms64(C, c_sq)
            c_norm = np.sqrt(c_sq) * (1.0 + 4 * _U64)
            _assign_rows(X, C, labels, u, lbs, cum, L, cm, drift, half_cc, s, G, H, M, tau, block_stats,
                         mv_n, mv_row, mv_old, x_sq, c_sq, c_norm, gd, rel, dense_from, first, n_threads)
            record()

        # The first assignment: the same pass with no bounds yet, which measures every
        # centre, from dot products (numba's own, not BLAS: OpenBLAS's threads keep spinning
        # for a while after a product, taking a core from numba's threads for the passes
        # that follow).
        assign(C, np.zeros(k), np.zeros((k, k)), np.full(k, -1.0), first=True)
        if weights is None:
            acc = _ClusterSums(X, labels, k)
        else:
            acc = _WeightedSums(X, labels, k, np.ascontiguousarray(weights, dtype=np.float64))
        have_sums = False
        previous = None
        n_empty_total = 0
        for it in range(1, max_iter + 1):
            new_c, before, n_empty, have_sums = acc.update(C, labels, u, have_sums)
            n_empty_total += n_empty
            if previous is not None and np.array_equal(new_c, previous):
                return before, new_c, it, True, n_empty_total
            drift, half_cc, s = _geometry(new_c, C, G, H, tau)
            cum = (cum + drift) * _UP
            cm = (cm + float(drift.max())) * _UP
            C = new_c
            assign(C, drift, half_cc, s)
            if callback is not None:
                callback(it, labels.copy(), C.copy())
            moved, old, new = _collect_moved(mv_n, mv_row, mv_old, labels, acc.counts)
            if len(moved) == 0:
                return labels, C, it, True, n_empty_total
            if len(moved) > n // 4:
                have_sums = False
            else:
                acc.move(moved, old, new)
            previous = C
        # Not converged: the centres are brought in line with the last assignment.
        new_c, before, n_empty, have_sums = acc.update(C, labels, u, have_sums)
    return labels, new_c, max_iter, False, n_empty_total + n_empty


def assign_chunk(x: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row of one chunk, and the squared distance to it.

    Returns ``(labels, sq_dists)``: labels (intp) by the defining float64 distance
    (:func:`sq_distance`, ties to the lowest index), exactly as :func:`lloyd`
    assigns them; ``sq_dists`` (float64) that distance to the chosen centre. One
    float32 matrix product ranks the centres, with a proven error bound; rows
    where it cannot tell are settled in float64. Single-threaded and releases
    the GIL (for Dask's threads); the BLAS product runs on however many threads
    BLAS has (its bits do not reach the results).
    """
    _kernels()
    x = _as_f32(x)
    C = _as_f32(centers)
    n, d = x.shape
    labels = np.empty(n, dtype=np.intp)
    best = np.empty(n)
    if n == 0:
        return labels, best
    dots, x_sq, c_sq, gd, rel, tau = _product(x, C)
    G, _, H = _margins(d)
    _assign_chunk_rows(x, C, dots, x_sq, c_sq, gd, rel, tau, G, H, labels, best)
    return labels, best


def cluster_sums(x: np.ndarray, labels: np.ndarray, k: int, weights=None) -> np.ndarray:
    """Per-cluster sums of the rows of one chunk (of ``w x`` with ``weights``), ``(k, d)``
    float64, each element added in row order: the sums :func:`lloyd` keeps, in one pass
    over the chunk. Single-threaded; releases the GIL."""
    _kernels()
    x = _as_f32(x)
    sums = np.empty((k, x.shape[1]))
    labels = np.ascontiguousarray(labels, dtype=np.intp)
    if weights is None:
        _fresh_sums(x, labels, sums)
    else:
        _fresh_sums_w(x, np.ascontiguousarray(weights, dtype=np.float64), labels, sums)
    return sums


def sq_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``(n, k)`` float64: :func:`sq_distance` of every row of ``x`` to every centre, in
    parallel over the rows (each value computed by one thread in one way: the same bits
    for any thread count)."""
    _kernels()
    x = _as_f32(x)
    C = _as_f32(centers)
    out = np.empty((x.shape[0], C.shape[0]))
    with _threads():
        _all_sq_dist(x, C, out)
    return out


def _product(X, C):
    """``X C^T`` in float32 (BLAS), the squared norms in float64, and the error terms of
    :func:`_row_from_dots`."""
    n, d = X.shape
    x_sq = np.empty(n)
    c_sq = np.empty(C.shape[0])
    _row_sq_norms64(X, x_sq)
    _row_sq_norms64(C, c_sq)
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing rows are measured again
        dots = np.ascontiguousarray(X @ C.T, dtype=np.float32)
    return (dots, x_sq, c_sq) + _dot_margins(d)


def _dot_margins(d):
    """The error terms of :func:`_row_from_dots` for ``d`` features: ``(gd, rel, tau)``."""
    # |fl(x.c) - x.c| <= gamma_d sum |x_t c_t| <= gamma_d |x| |c| in any order, with or without
    # FMA; doubled (the product enters twice), 2 % to spare for the float64 sqrt and products.
    gd = 2.0 * 1.02 * (d * _U32) / (1.0 - d * _U32) if d * _U32 < 0.5 else np.inf
    # The norms (float64 sums) and the two float64 additions; and the float64 distance's own error.
    rel = 8.0 * (d + 4) * _U64 + 32 * _U64
    return gd, rel, d * _TAU_UNIT


def kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator, weights=None) -> np.ndarray:
    """Greedy k-means++ with the random draws of ``aeclust.kmeans._init_kmeans_plus_plus``:
    each new centre is the best of ``2 + log(k)`` D^2-sampled candidates.

    The same calls on ``rng`` in the same order. The distances are float32 sums of
    squared differences (the numpy version expands ``|x|^2 - 2 x.c + |c|^2`` in a
    float32 matrix product), so a draw that falls within rounding of a boundary
    between two points could pick the other one. Each distance is computed by one
    thread in one fixed way, and the candidates' potentials are summed over fixed
    row blocks in block order: the same bits for any thread count. (The float32
    sum is added in the order the compiler vectorises it in, which depends on the
    CPU's instruction set, as a BLAS product's does.)

    ``weights`` (float64, non-negative; None for all 1), as scikit-learn weighs
    k-means++: the first centre is drawn with probability proportional to the
    weight, the candidates to ``weight x D^2``, and the best candidate is the one
    of the lowest weighted potential.
    """
    _kernels()
    X = _as_f32(X)
    n = X.shape[0]
    n_trials = 2 + int(math.log(k))
    centers = np.empty((k, X.shape[1]), dtype=X.dtype)
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        p = weights / weights.sum()
    with _threads():
        first = int(rng.integers(n)) if weights is None else int(rng.choice(n, p=p))
        centers[0] = X[first]
        closest = np.empty(n)
        _pp_first(X, first, closest)
        trial = np.empty((n, n_trials))
        sums = np.empty(n_trials)
        for c in range(1, k):
            mass = closest if weights is None else weights * closest
            total = mass.sum()
            if total <= 0:  # fewer distinct points (of positive weight) than clusters
                candidates = rng.integers(n, size=n_trials) if weights is None else rng.choice(n, n_trials, p=p)
            else:
                candidates = np.searchsorted(np.cumsum(mass), rng.random(n_trials) * total)
                candidates = np.minimum(candidates, n - 1)
            candidates = np.ascontiguousarray(candidates, dtype=np.intp)
            if weights is None:
                _pp_update(X, candidates, closest, trial, sums)
            else:
                _pp_update_w(X, weights, candidates, closest, trial, sums)
            pick = int(np.argmin(sums))
            centers[c] = X[candidates[pick]]
            closest = trial[:, pick].copy()
    return centers


def warm_up() -> float:
    """Compile (or load from the disk cache) every kernel on tiny data; returns the seconds it took."""
    t = time.perf_counter()
    _kernels()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 9)).astype(np.float32)
    init = X[:4].copy()
    init[3] = init[2]  # twin centres: an empty cluster, so that its code is compiled too
    lloyd(X, init, 5)
    weights = np.arange(64.0) % 3  # some of weight 0
    lloyd(X, init, 5, weights=weights)
    assign_chunk(X, X[:3])
    sq_distances(X, X[:3])
    kmeans_plus_plus(X, 3, np.random.default_rng(0))
    kmeans_plus_plus(X, 3, np.random.default_rng(0), weights)
    sq_distance(X[0], X[1])
    return time.perf_counter() - t
