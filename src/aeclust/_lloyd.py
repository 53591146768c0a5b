"""The Lloyd loop of k-means: the hot path, kept apart from the estimator's bookkeeping.

:class:`aeclust.KMeans` owns the parameters, the initialisation, the ``n_init``
loop and the learned attributes. It reaches its data through a :class:`Rows`:
a numpy array in :mod:`aeclust.kmeans`, row chunks on Dask in
:mod:`aeclust.distributed`. Each supplies the random rows, the k-means++ seeding
and a single Lloyd run from given centres (:class:`Run`).

The in-memory Lloyd run is the compiled, bounds-pruned kernel of
:mod:`aeclust._lloyd_jit`; every other assignment of points to centres (a Dask
chunk, ``predict``, k-means|| weights) goes through :func:`assign`, the same
kernel's assignment, so that both paths make the same choices (the float64
distance, ties to the lowest centre index).

Weights. A :class:`Rows` may carry point weights (``sample_weight``): the
centres are weighted means (:func:`cluster_stats`), the inertia is weighted
(:func:`inertia`), the draws of the initialisation are weighted. Without
weights (None) every path runs the unweighted code. The per-chunk tasks of
k-means|| (:func:`kpar_cost`, :func:`kpar_sample`, :func:`kpar_weights`) live
here too, beside :func:`weighted_kmeans`, which reduces their candidates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._pairwise import blas_single_threaded, row_sq_norms, single_threaded_blas, sq_distances_to

def assign(X: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row, and the squared distance to it.

    The compiled kernel's assignment (:func:`aeclust._lloyd_jit.assign_chunk`):
    the nearest centre by the float64 distance that defines it there, ties to
    the lowest centre index, so that the labels are those the in-memory Lloyd
    run gives. BLAS, which it uses for a first float32 guess, runs on one thread.

    Returns
    -------
    labels : ndarray of shape (n,), intp
    sq_dist : ndarray of shape (n,), float64
        The squared distance to the chosen centre (the empty-cluster re-seed ranks points by it).
    """
    from ._lloyd_jit import assign_chunk

    with single_threaded_blas():
        return assign_chunk(X, centers)


def sq_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``(n, k)`` float64: the defining squared distance of every row to every centre
    (:func:`aeclust._lloyd_jit.sq_distance`, the one the assignment ranks by)."""
    from ._lloyd_jit import sq_distances

    return sq_distances(X, centers)


def cluster_sums(X: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-cluster sums of the rows (of ``w x`` with ``weights``), ``(k, d)`` float64, each
    element added in row order (:func:`aeclust._lloyd_jit.cluster_sums`): the sums the
    in-memory Lloyd run keeps."""
    from ._lloyd_jit import cluster_sums

    return cluster_sums(X, labels, k, weights)


def cluster_stats(X: np.ndarray, labels: np.ndarray, k: int, weights: np.ndarray | None = None) -> tuple:
    """What a centre update needs from some rows: ``(sums, counts, totals)``.

    ``sums``: :func:`cluster_sums`; ``counts`` (int64): the points of positive weight
    per cluster (a cluster without one is empty); ``totals`` (float64): the clusters'
    total weights, added in row order, which the sums are divided by. Without
    weights, ``totals`` is ``counts`` as float64 (every weight 1).
    """
    if weights is None:
        counts = np.bincount(labels, minlength=k).astype(np.int64)
        return cluster_sums(X, labels, k), counts, counts.astype(np.float64)
    counts = np.bincount(labels[weights > 0], minlength=k).astype(np.int64)
    return cluster_sums(X, labels, k, weights), counts, np.bincount(labels, weights=weights, minlength=k)


def centres_from_stats(sums: np.ndarray, counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """The float32 centres: each cluster's sum over its total weight (an empty cluster's sum as it is)."""
    return (sums / np.where(counts > 0, totals, 1.0)[:, None]).astype(np.float32)


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


def inertia_terms_weighted(X: np.ndarray, labels: np.ndarray, centers: np.ndarray,
                           weights: np.ndarray | None) -> np.ndarray:
    """:func:`inertia_terms`, each multiplied by its point's weight (as they are without weights)."""
    terms = inertia_terms(X, labels, centers)
    return terms if weights is None else terms * weights


def inertia(X: np.ndarray, labels: np.ndarray, centers: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Sum of (weighted) squared distances of points to their centres.

    The per-point terms (:func:`inertia_terms_weighted`) are added with ``math.fsum``,
    which rounds the exact sum once: the result does not depend on how the rows
    are split into chunks (here, or on Dask) or in which order they are added.
    """
    return math.fsum(inertia_terms_weighted(X, labels, centers, weights))


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


# k-means|| (:func:`aeclust.distributed.kmeans_parallel_init`): the tasks on one chunk of rows,
# ``w`` its weights or None.


@blas_single_threaded
def _min_sq_dist(x: np.ndarray, C: np.ndarray) -> np.ndarray:
    D = sq_distances_to(x, C, row_sq_norms(C))
    D += row_sq_norms(x)[:, None]
    return np.maximum(D.min(axis=1), 0.0).astype(np.float64)


def _kpar_mass(x: np.ndarray, C: np.ndarray, w) -> np.ndarray:
    d = _min_sq_dist(x, C)
    return d if w is None else w * d


def kpar_cost(x: np.ndarray, C: np.ndarray, w) -> float:
    """The chunk's share of phi: its points' (weighted) squared distances to the candidates ``C``."""
    return float(_kpar_mass(x, C, w).sum())


def kpar_sample(x: np.ndarray, C: np.ndarray, phi: float, ell: float, seed: int, rnd: int, chunk: int, w):
    """Keep each point with probability ``min(1, ell * w d^2 / phi)``; the draw depends only on
    (seed, round, chunk), so a recomputed task samples the same points."""
    p = np.minimum(1.0, ell * _kpar_mass(x, C, w) / phi)
    u = np.random.default_rng([seed, rnd, chunk]).random(x.shape[0])
    return x[u < p].copy()


def kpar_weights(x: np.ndarray, C: np.ndarray, w) -> np.ndarray:
    """Each candidate's weight from the chunk: the (weighted) count of the points nearest to it."""
    nearest, _ = assign(x, C)
    if w is None:
        return np.bincount(nearest, minlength=C.shape[0]).astype(np.float64)
    return np.bincount(nearest, weights=w, minlength=C.shape[0])


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
    weights : ndarray of shape (n_samples,), float64, or None
        The points' weights (checked: finite, non-negative, not all 0); None when
        every point weighs 1, which runs the unweighted code.
    """

    inits: tuple[str, ...] = ("random", "k-means++")
    shape: tuple[int, int]
    weights: np.ndarray | None = None

    def check_values(self) -> None:
        """Checks that read every value (NaN, infinities); a no-op where reading the data did them."""

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows, in the given order, as a float32 numpy array."""
        raise NotImplementedError

    def random_rows(self, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
        """``n_clusters`` distinct rows drawn from ``rng``: uniformly, or with probability
        proportional to the weights (as scikit-learn's ``init="random"`` draws them)."""
        p = None if self.weights is None else self.weights / self.weights.sum()
        return self.take(rng.choice(self.shape[0], size=n_clusters, replace=False, p=p))

    def kmeans_plus_plus(self, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
        """Initial centres by D^2 seeding (k-means++, or a scalable stand-in), drawn from ``rng``;
        with weights, the draws are proportional to weight x D^2."""
        raise NotImplementedError

    def lloyd(self, centers: np.ndarray, max_iter: int) -> Run:
        """One Lloyd run from ``centers`` (:func:`lloyd`'s rules), with the (weighted) inertia
        of its result."""
        raise NotImplementedError
