"""The compiled Lloyd kernel (aeclust._lloyd_jit) against a plain float64 Lloyd.

The reference below recomputes every distance in float64 by brute force, with
the kernel's rules written out in numpy: same stopping rule, same empty-cluster
rule, the float64 sums updated by the moved points in row order. The kernel's
bounds may only skip work, never change a decision, so its labels must equal
the reference's after every assignment, and its centres to the bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from aeclust import _lloyd_jit as J  # noqa: E402
from helpers.data import make_blobs  # noqa: E402


# ------------------------------------------------------------------------------ reference
def ref_sq_dists(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared distances in float64, straight from the definition (one centre at a time)."""
    X64 = X.astype(np.float64)
    out = np.empty((X.shape[0], C.shape[0]))
    for j, c in enumerate(C.astype(np.float64)):
        diff = X64 - c
        out[:, j] = np.einsum("ij,ij->i", diff, diff)
    return out


def ref_lloyd(X, centers, max_iter, w=None):
    """Plain Lloyd in float64 with the kernel's rules; with weights ``w``, the weighted rules
    (sums of ``w x``, divided by the total weights; a cluster without a point of positive
    weight is empty, and only points of positive weight re-seed).

    Returns (the result tuple, the labels after each assignment)."""
    n, d = X.shape
    k = centers.shape[0]
    weighted = w is not None
    w = np.ones(n) if w is None else w
    carries = w > 0
    X64 = X.astype(np.float64)
    WX = w[:, None] * X64 if weighted else X64
    trace = []

    def assign(C):
        D = ref_sq_dists(X, C)
        lab = D.argmin(axis=1)  # ties: the lowest index
        trace.append(lab)
        return lab, D

    def update(labels, D, sums):
        counts = np.bincount(labels[carries], minlength=k)
        n_empty = int(np.count_nonzero(counts == 0))
        updated = labels
        if n_empty:
            own = D[np.arange(n), labels]
            left = counts.copy()
            donors = []
            for p in np.argsort(-own, kind="stable"):  # farthest first, ties to the lower row
                if carries[p] and left[labels[p]] > 1:
                    donors.append(p)
                    left[labels[p]] -= 1
                    if len(donors) == n_empty:
                        break
            updated = labels.copy()
            updated[donors] = np.flatnonzero(counts == 0)[: len(donors)]
            counts = np.bincount(updated[carries], minlength=k)
            if sums is not None:
                sums = sums.copy()
                for p in sorted(donors):
                    sums[labels[p]] -= WX[p]
                    sums[updated[p]] += WX[p]
        if sums is None:
            sums = np.zeros((k, d))
            np.add.at(sums, updated, WX)  # row order
        if weighted:
            C = (sums / np.where(counts > 0, np.bincount(updated, weights=w, minlength=k), 1.0)[:, None])
        else:
            C = sums / np.maximum(counts, 1)[:, None]
        return C.astype(np.float32), updated, n_empty, sums

    labels, D = assign(centers.astype(np.float32))
    sums, previous, total = None, None, 0
    for it in range(1, max_iter + 1):
        C, updated, n_empty, sums = update(labels, D, sums)
        total += n_empty
        if previous is not None and np.array_equal(C, previous):
            return (labels, C, it, True, total), trace
        new, D = assign(C)
        moved = np.flatnonzero(new != updated)
        if len(moved) == 0:
            return (new, C, it, True, total), trace
        if len(moved) > n // 4:
            sums = None
        else:
            for p in moved:
                sums[updated[p]] -= WX[p]
                sums[new[p]] += WX[p]
        labels, previous = new, C
    C, labels, n_empty, _ = update(labels, D, sums)
    return (labels, C, max_iter, False, total + n_empty), trace


def run_both(X, init, max_iter=300, w=None):
    trace = []
    got = J.lloyd(X, init, max_iter, callback=lambda it, lab, c: trace.append(lab), weights=w)
    want, want_trace = ref_lloyd(X, init, max_iter, w)
    return got, trace, want, want_trace


def assert_same(got, trace, want, want_trace):
    assert len(trace) == len(want_trace) - 1  # the reference also records the first assignment
    for it, (a, b) in enumerate(zip(trace, want_trace[1:]), start=1):
        assert np.array_equal(a, b), f"labels differ after update {it}: {np.count_nonzero(a != b)} points"
    assert np.array_equal(got[0], want[0])
    assert got[1].dtype == np.float32
    assert np.array_equal(got[1], want[1])  # the centres, to the bit
    assert got[2:] == want[2:]  # n_iter, converged, n_empty_total


# ------------------------------------------------------------------------------ data sets
def grid_data(n, d, values, seed):
    """Small integers: exact sums, many duplicate points and exact distance ties."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, values, size=(n, d)).astype(np.float32)


@pytest.mark.parametrize(
    "n,d,k,seed",
    [(400, 2, 2, 0), (600, 5, 3, 1), (1000, 20, 8, 2), (300, 2, 20, 3), (1500, 64, 10, 4), (800, 33, 15, 5)],
)
def test_blobs_equal_the_reference_at_every_iteration(n, d, k, seed):
    X, _ = make_blobs(n=n, d=d, k=max(2, k // 2), spread=2.0, seed=seed)
    init = X[np.random.default_rng(seed).choice(n, k, replace=False)].copy()
    assert_same(*run_both(X, init))


@pytest.mark.parametrize("k", [2, 5, 12, 20])
def test_ties_and_duplicate_points(k):
    X = grid_data(500, 3, 3, seed=k)  # 27 distinct points, each about 18 times
    init = X[np.random.default_rng(k).choice(len(X), k, replace=False)].copy()
    got, trace, want, want_trace = run_both(X, init)
    assert_same(got, trace, want, want_trace)


def test_equidistant_points_go_to_the_lowest_centre():
    # Every point lies exactly halfway between centres 0 and 1 (and 2 is a twin of 1).
    X = np.array([[0.0, y] for y in range(-5, 6)], dtype=np.float32)
    init = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    labels, _ = J.assign_chunk(X, init)
    assert np.all(labels == 0)
    got, trace, want, want_trace = run_both(X, init, max_iter=10)
    assert np.all(trace[0] == want_trace[1])
    assert_same(got, trace, want, want_trace)


def test_duplicate_initial_centres_make_empty_clusters():
    X, _ = make_blobs(n=600, d=4, k=5, spread=1.0, seed=7)
    init = X[[0, 1, 2, 3, 4, 5]].copy()
    init[3] = init[1]  # twin centres: the higher index gets no point
    init[5] = init[1]
    got, trace, want, want_trace = run_both(X, init)
    assert want[4] >= 2
    assert_same(got, trace, want, want_trace)


def test_far_centre_empties_and_is_reseeded():
    X, _ = make_blobs(n=500, d=6, k=4, spread=1.0, seed=8)
    init = X[:5].copy()
    init[2] = 1e4  # nothing is near it
    got, trace, want, want_trace = run_both(X, init)
    assert want[4] >= 1
    assert_same(got, trace, want, want_trace)


def test_fewer_distinct_points_than_clusters():
    X = np.repeat(np.array([[0, 0], [0, 1], [5, 5]], dtype=np.float32), 10, axis=0)
    init = X[[0, 10, 20, 1, 11]].copy()
    got, trace, want, want_trace = run_both(X, init, max_iter=50)
    assert got[3]  # converged: the unchanged-centres rule
    assert_same(got, trace, want, want_trace)


def test_stopping_at_max_iter():
    X, _ = make_blobs(n=2000, d=8, k=6, spread=3.0, seed=9)
    init = X[:12].copy()
    for max_iter in (1, 2, 3):
        got, trace, want, want_trace = run_both(X, init, max_iter=max_iter)
        assert not got[3]
        assert_same(got, trace, want, want_trace)


def test_one_cluster():
    X, _ = make_blobs(n=100, d=3, k=2, seed=10)
    got, trace, want, want_trace = run_both(X, X[:1].copy())
    assert_same(got, trace, want, want_trace)
    assert np.all(got[0] == 0)


def test_float32_overflow_falls_back_to_float64():
    # Squared differences of about 1e40 overflow float32; the kernel must measure them in float64.
    X, _ = make_blobs(n=400, d=5, k=3, spread=1.0, seed=11)
    X = (X * np.float32(1e19)).astype(np.float32)
    init = X[:4].copy()
    got, trace, want, want_trace = run_both(X, init)
    assert_same(got, trace, want, want_trace)


def test_float64_only_mode_gives_the_same_results(monkeypatch):
    # With no usable float32 error bound (G = inf) every comparison is settled in float64.
    X, _ = make_blobs(n=700, d=10, k=5, spread=2.5, seed=12)
    init = X[:7].copy()
    fast = J.lloyd(X, init, 300)
    margins = J._margins
    monkeypatch.setattr(J, "_margins", lambda d: (np.inf,) + tuple(margins(d)[1:]))
    stats = []
    slow = J.lloyd(X, init, 300, stats=stats)
    assert sum(s["d64"] for s in stats) > 0
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1]) and fast[2:] == slow[2:]


def test_near_ties_are_settled_in_float64():
    # Points within a float32 rounding of equidistant from two centres.
    rng = np.random.default_rng(13)
    d = 256
    c0 = rng.random(d).astype(np.float32)
    c1 = c0.copy()
    c1[0] += np.float32(1.0)
    X = np.repeat(c0[None], 300, axis=0)
    X[:, 0] += np.float32(0.5) + rng.integers(-3, 4, size=300).astype(np.float32) * np.float32(2.0**-20)
    X[:, 1:] += rng.normal(scale=1e-3, size=(300, d - 1)).astype(np.float32)
    C = np.stack([c0, c1])
    labels, sq = J.assign_chunk(X, C)
    D = ref_sq_dists(X, C)
    assert np.array_equal(labels, D.argmin(axis=1))
    assert len(np.unique(labels)) == 2
    got, trace, want, want_trace = run_both(X, C, max_iter=20)
    assert_same(got, trace, want, want_trace)


def test_cifar_gray_pixels_equal_the_reference(cifar_test_gray):
    X = np.ascontiguousarray(cifar_test_gray[:2000])
    init = X[np.random.default_rng(0).choice(len(X), 10, replace=False)].copy()
    stats = []
    trace = []
    got = J.lloyd(X, init, 300, callback=lambda it, lab, c: trace.append(lab), stats=stats)
    want, want_trace = ref_lloyd(X, init, 300)
    assert_same(got, trace, want, want_trace)
    # The bounds did their job: most rows needed no distance at the end.
    assert stats[-1]["rows_skipped"] > 0.5 * len(X)


# ------------------------------------------------------------------------------ scikit-learn
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_sklearn_lloyd_from_the_same_start(seed):
    sk = pytest.importorskip("sklearn.cluster")
    X, _ = make_blobs(n=3000, d=16, k=8, spread=4.0, seed=seed)
    init = X[np.random.default_rng(seed).choice(len(X), 8, replace=False)].copy()
    labels, centers, *_ = J.lloyd(X, init, 1000)
    km = sk.KMeans(8, init=init, n_init=1, tol=0, max_iter=1000, algorithm="lloyd").fit(X)
    assert np.mean(labels == km.labels_) >= 0.995
    inertia = float(ref_sq_dists(X, centers)[np.arange(len(X)), labels].sum())
    assert abs(inertia - km.inertia_) <= 1e-4 * km.inertia_


def test_cifar_agrees_with_sklearn_lloyd(cifar_test_gray):
    sk = pytest.importorskip("sklearn.cluster")
    X = np.ascontiguousarray(cifar_test_gray[:2000])
    init = X[np.random.default_rng(1).choice(len(X), 10, replace=False)].copy()
    labels, centers, *_ = J.lloyd(X, init, 1000)
    km = sk.KMeans(10, init=init, n_init=1, tol=0, max_iter=1000, algorithm="lloyd").fit(X)
    assert np.mean(labels == km.labels_) >= 0.995
    inertia = float(ref_sq_dists(X, centers)[np.arange(len(X)), labels].sum())
    assert abs(inertia - km.inertia_) <= 1e-4 * km.inertia_


# ------------------------------------------------------------------------------ threads
_THREAD_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    from aeclust import _lloyd_jit as J
    rng = np.random.default_rng(5)
    # 3000 rows: 12 row blocks, shared out differently by 1 and 2 threads.
    X = rng.standard_normal((3000, 300)) * rng.random(300) + rng.integers(0, 4, (3000, 1))
    X = X.astype(np.float32)
    init = X[rng.choice(len(X), 9, replace=False)].copy()
    init[4] = init[2]  # an empty cluster on the way
    out = {}
    labels, centers, n_iter, conv, n_empty = J.lloyd(X, init, 500)
    digest = hashlib.sha256(labels.tobytes() + centers.tobytes()).hexdigest()
    out["lloyd"] = f"{digest} {n_iter} {conv} {n_empty}"
    lab, sq = J.assign_chunk(X, centers)
    out["chunk"] = hashlib.sha256(lab.tobytes() + sq.tobytes()).hexdigest()
    C = J.kmeans_plus_plus(X, 9, np.random.default_rng(3))
    out["pp"] = hashlib.sha256(C.tobytes()).hexdigest()
    import numba
    out["threads"] = numba.config.NUMBA_NUM_THREADS
    print(json.dumps(out))
    """
)


def test_results_do_not_depend_on_the_thread_count():
    results = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, AECLUST_NUM_THREADS=threads)
        proc = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [r["threads"] for r in results] == [1, 2]
    for r in results[1:]:
        assert {k: v for k, v in r.items() if k != "threads"} == {
            k: v for k, v in results[0].items() if k != "threads"
        }


def test_aeclust_thread_count_caps_numba(monkeypatch):
    import numba

    seen = []
    X, _ = make_blobs(n=300, d=4, k=3, seed=14)
    monkeypatch.setenv("AECLUST_NUM_THREADS", "1")
    J.lloyd(X, X[:3].copy(), 50, callback=lambda *a: seen.append(numba.get_num_threads()))
    assert seen and set(seen) == {1}


@pytest.mark.parametrize("dense_from", [2, 100])
@pytest.mark.parametrize("data", ["blobs", "grid"])
def test_dot_product_and_few_centre_paths_each_equal_the_reference(monkeypatch, dense_from, data):
    # A queued row is measured against every centre from float32 dot products when its bounds
    # leave at least _dense_from(d, k) centres, else against those alone: with every row on one
    # path or the other (2: every row that needs a distance, 100: none, the first pass's
    # included), the labels after every pass and the centres are the reference's.
    X = make_blobs(n=1500, d=37, k=9, spread=2.5, seed=30)[0] if data == "blobs" else grid_data(1200, 6, 3, 31)
    init = X[np.random.default_rng(32).choice(len(X), 12, replace=False)].copy()
    init[5] = init[1]  # an empty cluster on the way
    monkeypatch.setattr(J, "_dense_from", lambda d, k: dense_from)
    stats = []
    got, trace, want, want_trace = run_both(X, init)
    assert_same(got, trace, want, want_trace)
    J.lloyd(X, init, 300, stats=stats)
    if dense_from == 2:  # every row that needs a distance is measured against all 12 centres
        assert all(s["d32"] >= 12 * (s["n"] - s["rows_skipped"]) for s in stats)


def test_a_centre_whose_dot_products_overflow_float32():
    # x.c beyond float32's range for the far centre (|x| ~ 50, c ~ 3e37 per feature): the
    # float32 product is inf, the expansion |x|^2 + |c|^2 - 2 x.c gives -inf, and the row must
    # still go to its nearest centre (not to the far one), in the pass and in assign_chunk.
    rng = np.random.default_rng(33)
    X = (np.abs(rng.standard_normal((600, 16))) * 10 + 5).astype(np.float32)
    C = np.stack([np.full(16, 3e37, np.float32), np.zeros(16, np.float32), np.full(16, 7.0, np.float32),
                  X[0], X[1]])
    labels, sq = J.assign_chunk(X, C)
    assert np.array_equal(labels, ref_sq_dists(X, C).argmin(axis=1))
    got, trace, want, want_trace = run_both(X, C)
    assert_same(got, trace, want, want_trace)


def test_a_pass_does_not_wait_for_a_helper_thread_that_never_starts(monkeypatch):
    # The calling thread takes every block that no helper has taken: with the helpers never
    # given the work (as when the machine keeps them from running), a pass still finishes, and
    # with the same results.
    X, _ = make_blobs(n=5000, d=20, k=7, spread=3.0, seed=34)
    init = X[:7].copy()
    monkeypatch.setenv("AECLUST_NUM_THREADS", "2")
    shared = J.lloyd(X, init, 300)
    monkeypatch.setattr(J._helpers, "give", lambda task, n: None)
    alone = J.lloyd(X, init, 300)
    assert np.array_equal(shared[0], alone[0]) and np.array_equal(shared[1], alone[1])
    assert shared[2:] == alone[2:]


def test_an_error_in_a_helper_thread_reaches_the_caller():
    import threading
    import time

    def fn(claim, n_blocks):
        while True:  # takes blocks as the kernels do; a helper fails inside its first block
            b = claim[0]
            claim[0] += 1
            if b >= n_blocks:
                return
            if threading.current_thread().name == "aeclust-lloyd":
                raise ValueError("failed in a helper")
            time.sleep(0.005)  # the caller is slow enough (0.5 s in all) for the helper to take a block
            claim[1] += 1

    with pytest.raises(ValueError, match="failed in a helper"):
        J._run_blocks(fn, 100, 2, (100,))


# ------------------------------------------------------------------------------ the other functions
def test_assign_chunk_is_the_exact_nearest_centre():
    for seed, (X, k) in enumerate([(make_blobs(n=2000, d=30, k=6, spread=3.0, seed=15)[0], 11),
                                   (grid_data(700, 4, 3, seed=16), 9)]):
        C = X[np.random.default_rng(seed).choice(len(X), k, replace=False)].copy()
        C[-1] = C[0]  # a twin centre: never chosen
        labels, sq = J.assign_chunk(X, C)
        D = ref_sq_dists(X, C)
        assert labels.dtype == np.intp and sq.dtype == np.float64
        assert np.array_equal(labels, D.argmin(axis=1))
        assert np.all(labels != k - 1)
        np.testing.assert_allclose(sq, D[np.arange(len(X)), labels], rtol=1e-12, atol=0)
        assert all(sq[i] == J.sq_distance(X[i], C[labels[i]]) for i in range(len(X)))
    labels, sq = J.assign_chunk(np.empty((0, 3), np.float32), np.ones((2, 3), np.float32))
    assert labels.shape == (0,) and sq.shape == (0,)


def test_assign_chunk_matches_the_loop_at_its_fixed_point():
    X, _ = make_blobs(n=1500, d=12, k=5, spread=2.0, seed=17)
    labels, centers, *_ = J.lloyd(X, X[:5].copy(), 500)
    chunks = [J.assign_chunk(X[s : s + 400], centers)[0] for s in range(0, len(X), 400)]
    assert np.array_equal(np.concatenate(chunks), labels)


@pytest.mark.parametrize("d", [1, 7, 8, 13, 192, 1024])
def test_vector_float64_distance_has_the_scalar_bits(d):
    import numba

    scalar = numba.njit(J._d64_reference)
    rng = np.random.default_rng(d)
    X = (rng.standard_normal((50, d)) * rng.choice([1e-3, 1.0, 1e3], size=(50, 1))).astype(np.float32)
    for i in range(0, 50, 7):
        for j in range(0, 50, 5):
            assert J.sq_distance(X[i], X[j]) == scalar(X, i, X, j)


def test_bounds_hold_after_every_pass(monkeypatch):
    # Upper bounds at least the distance to the own centre, lower bounds at most the distance
    # to each centre, Hamerly's bound at most the distance to every other centre, after every
    # pass (float64 reference distances, relative slack 1e-12).
    X, _ = make_blobs(n=1500, d=24, k=6, spread=3.0, seed=22)
    J._kernels()  # compile first: the wrappers below must not be compiled in the kernels' place
    inner = J._assign_rows
    checked = []

    def check(X_, C, labels, u, lower, hamerly):
        D = np.sqrt(ref_sq_dists(X_, C))
        rows = np.arange(len(X_))
        assert np.all(u * (1 + 1e-12) >= D[rows, labels])
        assert np.all(lower <= D * (1 + 1e-12))
        others = D.copy()
        others[rows, labels] = np.inf
        assert np.all(hamerly <= others.min(axis=1) * (1 + 1e-12))

    def checking(X_, C, labels, u, lbs, cum, L, cm, *rest):
        out = inner(X_, C, labels, u, lbs, cum, L, cm, *rest)
        check(X_, C, labels, u, (lbs.astype(np.float64) - cum) * J._DN, (L - cm) * J._DN)
        checked.append(1)
        return out

    monkeypatch.setattr(J, "_assign_rows", checking)
    got = J.lloyd(X, X[:10].copy(), 300)
    assert len(checked) == got[2] + 1  # the first pass too


def test_sq_distance_is_exact_on_small_integers():
    x = np.array([1, 2, 3, 250], dtype=np.float32)
    c = np.array([0, 0, 1, -3], dtype=np.float32)
    assert J.sq_distance(x, c) == 1 + 4 + 4 + 253**2
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 1000)).astype(np.float32)
    assert J.sq_distance(a, b) == pytest.approx(float(((a.astype(float) - b) ** 2).sum()), rel=1e-13)


def numpy_pp(X, k, rng):
    """Greedy k-means++ in plain float64 numpy, with the same random draws."""
    from aeclust._lloyd import greedy_seeding

    X64 = X.astype(np.float64)
    first = int(rng.integers(X.shape[0]))

    def sq_distances(rows):
        return ((X64[:, None, :] - X64[rows][None, :, :]) ** 2).sum(axis=2)

    closest = sq_distances([first])[:, 0]
    return X[[first] + greedy_seeding(closest, sq_distances, k, rng)]


def test_kmeans_plus_plus_matches_the_numpy_seeding():
    for seed, (X, k) in enumerate([(make_blobs(n=1200, d=10, k=6, spread=1.5, seed=18)[0], 8),
                                   (grid_data(300, 2, 4, seed=19), 12)]):
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        want = numpy_pp(X, k, r1)
        got = J.kmeans_plus_plus(X, k, r2)
        assert np.array_equal(got, want)
        assert r1.random() == r2.random()  # the same draws were taken


def test_kmeans_plus_plus_all_points_equal():
    X = np.ones((20, 3), dtype=np.float32)
    C = J.kmeans_plus_plus(X, 4, np.random.default_rng(0))
    assert np.array_equal(C, np.ones((4, 3), np.float32))


def test_callback_gets_copies_and_stats_are_counted():
    X, _ = make_blobs(n=800, d=6, k=4, spread=1.5, seed=20)
    seen = []

    def cb(it, labels, centers):
        seen.append((it, labels, centers))
        labels[:] = 0  # must not reach the kernel
        centers[:] = 0

    stats = []
    want = J.lloyd(X, X[:4].copy(), 300)
    got = J.lloyd(X, X[:4].copy(), 300, callback=cb, stats=stats)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert [s[0] for s in seen] == list(range(1, got[2] + 1))
    assert len(stats) == got[2] + 1
    assert stats[0]["rows_skipped"] == 0 and stats[0]["d32"] + stats[0]["d64"] >= len(X) * 4  # every centre
    assert all(0 <= s["rows_skipped"] <= len(X) for s in stats)


def test_input_is_not_modified_and_float64_input_is_cast():
    X, _ = make_blobs(n=300, d=5, k=3, seed=21)
    X64 = X.astype(np.float64)
    init = X[:3].astype(np.float64)
    before = (X64.copy(), init.copy())
    got = J.lloyd(X64, init, 100)
    want = J.lloyd(X, X[:3].copy(), 100)
    assert np.array_equal(X64, before[0]) and np.array_equal(init, before[1])
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_import_compiles_nothing_and_warm_up_reports_seconds():
    code = (
        "import sys, time; t = time.perf_counter(); import aeclust, aeclust._lloyd_jit as J; "
        "assert 'numba' not in sys.modules, 'numba imported at import time'; "
        "print(J.warm_up())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) > 0


@pytest.mark.parametrize("k", [3, 40])
def test_cluster_sums_are_row_order_float64_sums(k):
    # The Dask chunks' sums: bit for bit the masked float64 sums (row order), empty clusters 0.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 17)).astype(np.float32)
    labels = rng.integers(0, k - 1, 3000)  # the last cluster stays empty
    got = J.cluster_sums(x, labels, k)
    want = np.zeros((k, 17))
    for c in range(k):
        want[c] = x[labels == c].sum(axis=0, dtype=np.float64)
    np.testing.assert_array_equal(got, want)
    assert not got[k - 1].any()


# ------------------------------------------------------------------------------ weights
@pytest.mark.parametrize("n,d,k,seed", [(600, 5, 3, 1), (1000, 20, 8, 2), (800, 33, 15, 5)])
def test_weighted_lloyd_equals_the_weighted_reference(n, d, k, seed):
    X, _ = make_blobs(n=n, d=d, k=max(2, k // 2), spread=2.0, seed=seed)
    rng = np.random.default_rng(seed)
    init = X[rng.choice(n, k, replace=False)].copy()
    w = rng.exponential(size=n)
    w[rng.random(n) < 0.2] = 0.0  # a fifth of the points weigh nothing
    assert_same(*run_both(X, init, w=w))


def test_weighted_lloyd_with_unit_weights_gives_the_unweighted_bits():
    # 1.0 * x is x and the total weights are the counts: the weighted code, the same numbers.
    X, _ = make_blobs(n=1500, d=24, k=6, spread=3.0, seed=30)
    init = X[np.random.default_rng(30).choice(1500, 9, replace=False)].copy()
    plain, weighted = J.lloyd(X, init, 300), J.lloyd(X, init, 300, weights=np.ones(1500))
    assert np.array_equal(plain[0], weighted[0]) and np.array_equal(plain[1], weighted[1])
    assert plain[2:] == weighted[2:]


def test_a_cluster_of_weightless_points_is_empty_and_reseeded_by_a_weighted_point():
    X, init = grid_data(400, 3, 6, seed=31), None
    w = np.ones(400)
    far = np.arange(390, 400)
    X[far] += 100.0  # ten far points of weight 0: the centre put there has no weight
    w[far] = 0.0
    init = np.concatenate([X[:3], X[far[:1]]])
    got, trace, want, want_trace = run_both(X, init, w=w)
    assert_same(got, trace, want, want_trace)
    assert got[4] >= 1  # n_empty_total
    assert w[np.flatnonzero(got[0] == 3)].sum() > 0  # the re-seeded cluster holds weight


def test_integer_weights_equal_repeated_rows():
    # Small integers: every float64 sum is exact, so repeating a row w times and giving
    # it weight w are the same arithmetic: the same labels and centres, to the bit.
    X = grid_data(500, 4, 9, seed=32)
    w = np.random.default_rng(32).integers(1, 4, size=500)
    init = X[:7].copy()
    weighted = J.lloyd(X, init, 300, weights=w.astype(np.float64))
    repeated = J.lloyd(np.repeat(X, w, axis=0), init, 300)
    np.testing.assert_array_equal(np.repeat(weighted[0], w), repeated[0])
    np.testing.assert_array_equal(weighted[1], repeated[1])
    assert weighted[2:] == repeated[2:]


def test_zero_weights_equal_removed_rows():
    X = grid_data(500, 4, 9, seed=35)
    keep = np.random.default_rng(35).random(500) < 0.7
    init = X[np.flatnonzero(keep)[:7]].copy()
    weighted = J.lloyd(X, init, 300, weights=keep.astype(np.float64))
    removed = J.lloyd(X[keep], init, 300)
    np.testing.assert_array_equal(weighted[0][keep], removed[0])
    np.testing.assert_array_equal(weighted[1], removed[1])
    # The weightless points are assigned like any other (to the nearest centre) ...
    np.testing.assert_array_equal(weighted[0][~keep], J.assign_chunk(X[~keep], weighted[1])[0])
    # ... and when only they change cluster, the centres do not move: that update ends
    # the run by the "same centres" rule, one update after the run without them.
    assert weighted[2] in (removed[2], removed[2] + 1) and weighted[3:] == removed[3:]


def test_weighted_cluster_sums_and_distances():
    rng = np.random.default_rng(33)
    x = rng.standard_normal((2000, 13)).astype(np.float32)
    labels, w = rng.integers(0, 5, 2000), rng.exponential(size=2000)
    want = np.zeros((5, 13))
    np.add.at(want, labels, w[:, None] * x.astype(np.float64))  # row order
    np.testing.assert_array_equal(J.cluster_sums(x, labels, 5, w), want)
    C = x[:7]
    np.testing.assert_array_equal(J.sq_distances(x, C),
                                  [[J.sq_distance(x[i], C[j]) for j in range(7)] for i in range(2000)])
    np.testing.assert_allclose(J.sq_distances(x, C), ref_sq_dists(x, C), rtol=1e-14)


def test_weighted_kmeans_plus_plus_matches_the_numpy_seeding_and_skips_weightless_points():
    from aeclust._lloyd import greedy_seeding

    X, _ = make_blobs(n=1200, d=10, k=6, spread=1.5, seed=34)
    X64 = X.astype(np.float64)
    w = np.random.default_rng(34).exponential(size=1200)
    w[::3] = 0.0

    def sq_distances(rows):
        return ((X64[:, None, :] - X64[rows][None, :, :]) ** 2).sum(axis=2)

    for seed in range(3):
        r1, r2 = np.random.default_rng(seed), np.random.default_rng(seed)
        first = int(r1.choice(1200, p=w / w.sum()))
        want = X[[first] + greedy_seeding(sq_distances([first])[:, 0], sq_distances, 8, r1, weights=w)]
        got = J.kmeans_plus_plus(X, 8, r2, w)
        np.testing.assert_array_equal(got, want)
        assert r1.random() == r2.random()  # the same draws were taken
        rows = [int(np.flatnonzero((X == c).all(axis=1))[0]) for c in got]
        assert all(w[r] > 0 for r in rows)
