"""The Lloyd loop of k-means: the hot path, kept apart from the estimator's bookkeeping."""

from __future__ import annotations

import math

import numpy as np

from ._pairwise import Workers, row_sq_norms

#: Rows per block of the assignment: a 1024 x 1024 float32 block of X is 4 MiB,
#: and one block per thread keeps both cores busy on 10,000 rows.
CHUNK = 1024


def _chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def assign(
    X: np.ndarray, centers: np.ndarray, chunk: int = CHUNK, workers: Workers | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row, and the squared distance to it less ``|x|^2``.

    One matrix product per chunk of rows (``x.(-2c)``, plus ``|c|^2``); chunks
    bound the memory at ``chunk x k``, and go to the ``workers`` threads.
    """
    if workers is None:
        with Workers() as pool:
            return assign(X, centers, chunk, pool)
    center_sq = row_sq_norms(centers)
    centers_m2 = np.ascontiguousarray(centers.T * np.float32(-2.0))  # exact: a power of two
    n = X.shape[0]
    labels = np.empty(n, dtype=np.intp)
    best = np.empty(n, dtype=np.float32)

    def block(span):
        s, e = span
        D = X[s:e] @ centers_m2
        D += center_sq
        lab = D.argmin(axis=1)
        labels[s:e] = lab
        best[s:e] = np.take_along_axis(D, lab[:, None], axis=1)[:, 0]

    workers.map(block, _chunks(n, chunk))
    return labels, best


def cluster_sums(
    X: np.ndarray, labels: np.ndarray, n_clusters: int, chunk: int = CHUNK, workers: Workers | None = None
) -> np.ndarray:
    """Sum of the rows of each cluster in float64, chunk by chunk.

    Float64 throughout, so that for data such as pixels scaled from integers the
    sums are exact and the result does not depend on how the rows are split
    (threads here, chunks on Dask). For other data the chunks' sums are added in
    chunk order, so the bits depend on ``chunk`` but never on the threads.
    """
    if workers is None:
        with Workers() as pool:
            return cluster_sums(X, labels, n_clusters, chunk, pool)

    def block(span):
        s, e = span
        member = np.zeros((e - s, n_clusters), dtype=np.float64)
        member[np.arange(e - s), labels[s:e]] = 1.0
        # X.T @ member, not member.T @ X: BLAS runs the tall-skinny form faster.
        return (X[s:e].astype(np.float64).T @ member).T

    return np.sum(workers.map(block, _chunks(X.shape[0], chunk)), axis=0)


def move_points(
    sums: np.ndarray, X: np.ndarray, moved: np.ndarray, old: np.ndarray, new: np.ndarray
) -> None:
    """Update the cluster sums in place for the rows ``moved`` going from cluster ``old`` to ``new``.

    In float64, so that the updates add no error worth the name; the cost is
    proportional to the number of rows that moved, which after the first few
    iterations is a small fraction of the data.
    """
    rows = X[moved].astype(np.float64)
    delta = np.zeros((len(moved), sums.shape[0]), dtype=np.float64)
    idx = np.arange(len(moved))
    delta[idx, new[moved]] += 1.0
    delta[idx, old[moved]] -= 1.0
    sums += delta.T @ rows


def pick_donors(order, labels: np.ndarray, counts: np.ndarray, n_empty: int) -> list[int]:
    """The first ``n_empty`` points in ``order`` whose clusters can spare one (more than one point).

    ``order`` ranks the points farthest from their centre first: they re-seed empty
    clusters. ``counts`` is not changed.
    """
    left = counts.copy()
    donors = []
    for p in order:
        if left[labels[p]] > 1:
            donors.append(p)
            left[labels[p]] -= 1
            if len(donors) == n_empty:
                break
    return donors


def update_centers(
    X: np.ndarray,
    labels: np.ndarray,
    best: np.ndarray,
    x_sq: np.ndarray,
    n_clusters: int,
    sums: np.ndarray | None = None,
    workers: Workers | None = None,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Mean of each cluster's points; an empty cluster takes the point farthest from its centre.

    ``sums`` are the per-cluster sums of the rows for ``labels`` (computed here
    when not given). Returns the centres, the (possibly changed) labels, the
    number of clusters that were empty, and the sums that go with those labels.
    """
    counts = np.bincount(labels, minlength=n_clusters)
    n_empty = int(np.count_nonzero(counts == 0))
    if n_empty:
        old = labels
        labels = labels.copy()
        # Distance of each point to its own centre; the farthest points seed the empty clusters,
        # which is what lowers the inertia the most (and what scikit-learn does).
        donors = pick_donors(np.argsort(-(best + x_sq), kind="stable"), labels, counts, n_empty)
        for e, p in zip(np.flatnonzero(counts == 0)[: len(donors)], donors):
            labels[p] = e
        counts = np.bincount(labels, minlength=n_clusters)
        if sums is not None:
            sums = sums.copy()
            move_points(sums, X, np.asarray(donors, dtype=np.intp), old, labels)
    if sums is None:
        sums = cluster_sums(X, labels, n_clusters, workers=workers)
    centers = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return centers, labels, n_empty, sums


def lloyd(X: np.ndarray, centers: np.ndarray, max_iter: int, callback=None):
    """Run Lloyd's algorithm from ``centers`` until no assignment changes.

    Returns ``(labels, centers, n_iter, converged, n_empty_total)``. ``n_iter``
    counts centre updates; the last one is followed by an assignment that
    changed nothing (as in scikit-learn's strict convergence). Centres that come
    out exactly as before also end the loop: the next assignment could only
    repeat the last one. That happens when there are fewer distinct points than
    clusters, where ties would otherwise bounce points between twin centres.

    The cluster sums are carried from one iteration to the next and updated
    with the points that changed cluster; they are summed afresh whenever more
    than a quarter of the points moved.
    """
    x_sq = row_sq_norms(X)
    n, k = X.shape[0], centers.shape[0]
    with Workers() as pool:
        labels, best = assign(X, centers, workers=pool)
        sums = None
        previous = None
        n_empty_total = 0
        for it in range(1, max_iter + 1):
            centers, updated, n_empty, sums = update_centers(X, labels, best, x_sq, k, sums, pool)
            n_empty_total += n_empty
            if previous is not None and np.array_equal(centers, previous):
                return labels, centers, it, True, n_empty_total
            new_labels, best = assign(X, centers, workers=pool)
            if callback is not None:
                callback(it, new_labels, centers)
            moved = np.flatnonzero(new_labels != updated)
            if len(moved) == 0:
                return new_labels, centers, it, True, n_empty_total
            if len(moved) > n // 4:
                sums = None
            else:
                move_points(sums, X, moved, updated, new_labels)
            labels, previous = new_labels, centers
        # Not converged: the centres are brought in line with the last assignment.
        centers, labels, n_empty, _ = update_centers(X, labels, best, x_sq, k, sums, pool)
    return labels, centers, max_iter, False, n_empty_total + n_empty


def inertia_terms(X: np.ndarray, labels: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Squared distance of each point to its centre: direct differences (no
    cancellation), squared in float32, summed over the features in float64.
    Each value depends on its own row alone."""
    out = np.empty(X.shape[0], dtype=np.float64)
    for s in range(0, X.shape[0], chunk):
        diff = X[s : s + chunk] - centers[labels[s : s + chunk]]
        diff *= diff
        diff.sum(axis=1, dtype=np.float64, out=out[s : s + chunk])
    return out


def inertia(X: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> float:
    """Sum of squared distances of points to their centres.

    The per-point terms (:func:`inertia_terms`) are added with ``math.fsum``,
    which rounds the exact sum once: the result does not depend on how the rows
    are split into chunks (here, or on Dask) or in which order they are added.
    """
    return math.fsum(inertia_terms(X, labels, centers))
