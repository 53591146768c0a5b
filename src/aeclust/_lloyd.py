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


def cluster_sums(X: np.ndarray, labels: np.ndarray, n_clusters: int, rows=None, sign: float = 1.0,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Add ``sign`` times the float64 sum of each cluster's rows of ``X`` to ``out`` (k x d).

    One ``d x m`` by ``m x k`` matrix product per chunk with a 0/1 membership
    matrix: no Python loop over points. ``rows`` restricts the sum to those rows.
    """
    if out is None:
        out = np.zeros((n_clusters, X.shape[1]), dtype=np.float64)
    idx = np.arange(X.shape[0]) if rows is None else rows
    for s in range(0, len(idx), 8192):
        part = idx[s : s + 8192]
        member = np.zeros((len(part), n_clusters), dtype=np.float64)
        member[np.arange(len(part)), labels[part]] = sign
        # X.T @ member, not member.T @ X: BLAS runs the tall-skinny form several times faster.
        out += (X[part].astype(np.float64).T @ member).T
    return out


def reseed_empty(labels: np.ndarray, counts: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Give each empty cluster the point farthest from its own centre.

    ``dist`` is each point's squared distance to its centre. Points are taken
    only from clusters with more than one point. Returns the indices of the
    moved points and their new clusters.
    """
    counts = counts.copy()
    empty = list(np.flatnonzero(counts == 0))
    moved, targets = [], []
    for p in np.argsort(-dist, kind="stable"):
        if not empty:
            break
        if counts[labels[p]] > 1:
            counts[labels[p]] -= 1
            moved.append(p)
            targets.append(empty.pop(0))
    return np.asarray(moved, dtype=np.intp), np.asarray(targets, dtype=np.intp)


def lloyd(X: np.ndarray, centers: np.ndarray, max_iter: int, callback=None):
    """Run Lloyd's algorithm from ``centers`` until no assignment changes.

    Returns ``(labels, centers, n_iter, converged, n_empty_total)``. ``n_iter``
    counts centre updates; the last one is followed by an assignment that
    changed nothing (as in scikit-learn's strict convergence). Centres that come
    out exactly as before also end the loop: the next assignment could only
    repeat the last one. That happens when there are fewer distinct points than
    clusters, where ties would otherwise bounce points between twin centres.

    The cluster sums are float64 and updated only for the points that changed
    cluster, so late iterations, where few points move, cost one assignment.
    For data such as pixels scaled from integers the float64 sums are exact,
    so the result does not depend on the order of summation at all.
    """
    x_sq = row_sq_norms(X)
    k = centers.shape[0]
    labels, best = assign(X, centers)
    sums = cluster_sums(X, labels, k)
    counts = np.bincount(labels, minlength=k)
    previous = None
    n_empty_total = 0
    for it in range(1, max_iter + 1):
        if (counts == 0).any():
            n_empty_total += int(np.count_nonzero(counts == 0))
            moved, targets = reseed_empty(labels, counts, best + x_sq)
            cluster_sums(X, labels, k, rows=moved, sign=-1.0, out=sums)
            labels = labels.copy()
            labels[moved] = targets
            cluster_sums(X, labels, k, rows=moved, out=sums)
            counts = np.bincount(labels, minlength=k)
        centers = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        if previous is not None and np.array_equal(centers, previous):
            return labels, centers, it, True, n_empty_total
        new_labels, best = assign(X, centers)
        if callback is not None:
            callback(it, new_labels, centers)
        changed = np.flatnonzero(new_labels != labels)
        if len(changed) == 0:
            return labels, centers, it, True, n_empty_total
        cluster_sums(X, labels, k, rows=changed, sign=-1.0, out=sums)
        cluster_sums(X, new_labels, k, rows=changed, out=sums)
        counts = np.bincount(new_labels, minlength=k)
        labels, previous = new_labels, centers
    # Not converged: the centres are brought in line with the last assignment.
    centers = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return labels, centers, max_iter, False, n_empty_total


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
