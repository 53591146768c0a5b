"""The Lloyd loop of k-means: the hot path, kept apart from the estimator's bookkeeping.

:class:`aeclust.KMeans` owns the parameters, the initialisation, the ``n_init``
loop and the learned attributes. It reaches its data through a :class:`Rows`:
a numpy array in :mod:`aeclust.kmeans`, row chunks on Dask in
:mod:`aeclust.distributed`. Each supplies the random rows, the k-means++ seeding
and a single Lloyd run from given centres (:class:`Run`).

Every assignment of points to centres, in memory or in a Dask chunk, goes
through :func:`assign`: one kernel, so that both paths make the same choices
(ties to the lowest centre index) at the same speed per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._pairwise import Workers, blas_single_threaded, one_hot, row_sq_norms

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
    bound the memory at ``chunk x k``, and go to the ``workers`` threads. Ties go
    to the lowest centre index.

    Returns
    -------
    labels : ndarray of shape (n,), intp
    best : ndarray of shape (n,), float32
        ``|c|^2 - 2 x.c`` for the chosen centre: add ``|x|^2`` for the squared
        distance (the empty-cluster re-seed ranks points by it).
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
        member = one_hot(labels[s:e], n_clusters, np.float64)
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


def greedy_seeding(closest: np.ndarray, sq_distances, n_clusters: int, rng: np.random.Generator,
                   weights: np.ndarray | None = None) -> list[int]:
    """Greedy k-means++ (Arthur & Vassilvitskii, 2007) once the first centre is chosen.

    Each further centre is the best (the lowest total cost) of ``2 + log(k)``
    candidates drawn with probability proportional to ``weight x D^2``.

    Parameters
    ----------
    closest : ndarray of shape (n,), float64
        Squared distance of every point to the first centre.
    sq_distances : callable
        ``sq_distances(rows)``: squared distances of every point to the points
        ``rows``, shape (n, len(rows)).
    n_clusters : int
    rng : numpy Generator
    weights : ndarray of shape (n,), optional
        Point weights (k-means|| candidates stand for many points); None for 1.

    Returns
    -------
    list of int
        The indices of the other ``n_clusters - 1`` centres, in order.
    """
    n = len(closest)
    n_trials = 2 + int(math.log(n_clusters))
    picks = []
    for _ in range(1, n_clusters):
        mass = closest if weights is None else weights * closest
        total = mass.sum()
        if total <= 0:  # fewer distinct points than clusters: any point will do
            candidates = rng.integers(n, size=n_trials)
        else:
            candidates = np.minimum(np.searchsorted(np.cumsum(mass), rng.random(n_trials) * total), n - 1)
        trial = np.minimum(closest[:, None], sq_distances(candidates))
        cost = trial if weights is None else weights[:, None] * trial
        pick = int(np.argmin(cost.sum(axis=0)))
        picks.append(int(candidates[pick]))
        closest = trial[:, pick].astype(np.float64)
    return picks


@blas_single_threaded
def weighted_kmeans(C: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator,
                    max_iter: int = 300) -> np.ndarray:
    """``k`` float32 centres for the points ``C`` of weights ``w``: greedy k-means++, then
    weighted Lloyd, in float64. k-means|| reduces its few thousand candidates with it."""
    m = C.shape[0]
    C64 = C.astype(np.float64)
    sq = np.einsum("ij,ij->i", C64, C64)

    def d2_to(rows):
        return np.maximum(sq[:, None] - 2.0 * C64 @ C64[rows].T + sq[rows][None, :], 0.0)

    first = int(rng.choice(m, p=w / w.sum()))
    picks = [first] + greedy_seeding(d2_to([first])[:, 0], d2_to, k, rng, weights=w)
    centers = C64[picks].copy()
    labels = None
    for _ in range(max_iter):
        d2 = np.einsum("ij,ij->i", centers, centers)[None, :] - 2.0 * C64 @ centers.T
        new = d2.argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        wsum = np.bincount(labels, weights=w, minlength=k)
        for j in range(k):
            if wsum[j] > 0:
                centers[j] = (w[labels == j, None] * C64[labels == j]).sum(axis=0) / wsum[j]
    return centers.astype(np.float32)


@dataclass
class Run:
    """The outcome of one Lloyd run from given centres (see :func:`lloyd`).

    ``labels`` is a numpy array in memory and a dask array on Dask.
    """

    labels: object
    centers: np.ndarray
    n_iter: int
    converged: bool
    n_empty: int
    inertia: float


class Rows:
    """The data of one k-means fit, as :meth:`aeclust.KMeans.fit` reads it.

    Subclasses hold the rows (a numpy array, or chunks on Dask) and supply what
    depends on where they are; the estimator calls :meth:`check_values` once,
    after its own parameter checks, then per run :meth:`take` or
    :meth:`kmeans_plus_plus` for the initial centres and :meth:`lloyd`.

    Attributes
    ----------
    shape : tuple of int
        (n_samples, n_features).
    inits : tuple of str
        The ``init`` strings this data accepts, besides an array of centres.
    """

    inits: tuple[str, ...] = ("random", "k-means++")
    shape: tuple[int, int]

    def check_values(self) -> None:
        """Checks that read every value (NaN, infinities); a no-op where reading the data did them."""

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows, in the given order, as a float32 numpy array."""
        raise NotImplementedError

    def kmeans_plus_plus(self, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
        """Initial centres by D^2 seeding (k-means++, or a scalable stand-in), drawn from ``rng``."""
        raise NotImplementedError

    def lloyd(self, centers: np.ndarray, max_iter: int) -> Run:
        """One Lloyd run from ``centers`` (:func:`lloyd`'s rules), with the inertia of its result."""
        raise NotImplementedError
