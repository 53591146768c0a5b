"""The Lloyd loop of k-means: the hot path, kept apart from the estimator's bookkeeping."""

from __future__ import annotations

import numpy as np

from ._pairwise import row_sq_norms, sq_distances_to


def assign(X: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row, and the squared distance to it less ``|x|^2``.

    One matrix product per chunk of rows; chunks bound the memory at ``chunk x k``
    and keep each chunk of X in cache while its distances are reduced.
    """
    center_sq = row_sq_norms(centers)
    n = X.shape[0]
    labels = np.empty(n, dtype=np.intp)
    best = np.empty(n, dtype=np.float32)
    for s in range(0, n, chunk):
        D = sq_distances_to(X[s : s + chunk], centers, center_sq)
        labels[s : s + chunk] = D.argmin(axis=1)
        best[s : s + chunk] = D[np.arange(D.shape[0]), labels[s : s + chunk]]
    return labels, best


def update_centers(
    X: np.ndarray, labels: np.ndarray, best: np.ndarray, x_sq: np.ndarray, n_clusters: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean of each cluster's points; an empty cluster takes the point farthest from its centre.

    Returns the centres, the (possibly changed) labels and the number of
    clusters that were empty. The sums are one ``d x n`` by ``n x k`` matrix product
    with a 0/1 membership matrix, so there is no Python loop over points.
    """
    counts = np.bincount(labels, minlength=n_clusters)
    n_empty = int(np.count_nonzero(counts == 0))
    if n_empty:
        labels = labels.copy()
        # Distance of each point to its own centre; the farthest points seed the empty clusters,
        # which is what lowers the inertia the most (and what scikit-learn does).
        far = np.argsort(-(best + x_sq), kind="stable")
        donors = []
        for p in far:
            if counts[labels[p]] > 1:
                donors.append(p)
                counts[labels[p]] -= 1
                if len(donors) == n_empty:
                    break
        for e, p in zip(np.flatnonzero(counts == 0)[: len(donors)], donors):
            labels[p] = e
        counts = np.bincount(labels, minlength=n_clusters)
    member = np.zeros((X.shape[0], n_clusters), dtype=np.float32)
    member[np.arange(X.shape[0]), labels] = 1.0
    # X.T @ member, not member.T @ X: BLAS runs the tall-skinny form several times faster.
    sums = (X.T @ member).T.astype(np.float64)
    centers = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return centers, labels, n_empty


def lloyd(X: np.ndarray, centers: np.ndarray, max_iter: int, callback=None):
    """Run Lloyd's algorithm from ``centers`` until no assignment changes.

    Returns ``(labels, centers, n_iter, converged, n_empty_total)``. ``n_iter``
    counts centre updates; the last one is followed by an assignment that
    changed nothing (as in scikit-learn's strict convergence). Centres that come
    out exactly as before also end the loop: the next assignment could only
    repeat the last one. That happens when there are fewer distinct points than
    clusters, where ties would otherwise bounce points between twin centres.
    """
    x_sq = row_sq_norms(X)
    k = centers.shape[0]
    labels, best = assign(X, centers)
    previous = None
    n_empty_total = 0
    for it in range(1, max_iter + 1):
        centers, updated, n_empty = update_centers(X, labels, best, x_sq, k)
        n_empty_total += n_empty
        if previous is not None and np.array_equal(centers, previous):
            return labels, centers, it, True, n_empty_total
        new_labels, best = assign(X, centers)
        if callback is not None:
            callback(it, new_labels, centers)
        if np.array_equal(new_labels, updated):
            return new_labels, centers, it, True, n_empty_total
        labels, previous = new_labels, centers
    # Not converged: the centres are brought in line with the last assignment.
    centers, labels, n_empty = update_centers(X, labels, best, x_sq, k)
    return labels, centers, max_iter, False, n_empty_total + n_empty


def inertia(X: np.ndarray, labels: np.ndarray, centers: np.ndarray, chunk: int = 4096) -> float:
    """Sum of squared distances of points to their centres.

    Direct differences (no cancellation), squared in float32 and summed in float64.
    """
    total = 0.0
    for s in range(0, X.shape[0], chunk):
        diff = X[s : s + chunk] - centers[labels[s : s + chunk]]
        diff *= diff
        total += float(diff.sum(dtype=np.float64))
    return total
