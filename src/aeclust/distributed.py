"""K-means and the exact metrics on Dask: ``dask.array`` data, ``dask.distributed`` workers.

Install with ``pip install "aeclust[dask]"``. ``import aeclust`` never imports
Dask; this module does so only when one of its functions runs.

Everything here runs on whatever Dask scheduler is active: a
``dask.distributed.Client`` (see :func:`connect`) spreads the work over its
workers; without one, Dask's local threads do it.

K-means. :meth:`aeclust.KMeans.fit` keeps the parameters, the initialisation,
the ``n_init`` loop and the learned attributes; for a dask array it reads the
data through :class:`DaskRows`, which supplies the random rows, k-means|| and one
Lloyd run over row chunks that live on the workers (:func:`fit_kmeans` sets the
chunking). Each Lloyd iteration sends the centres out; every chunk returns its
per-cluster sums (float64) and counts and a 128-bit digest of its labels,
combined in a tree on the workers, so only centre-sized arrays cross the
network. The digests play the part of "did any assignment change": a chunk's
labels changed exactly when its digest did (up to a 2**-128 chance of
collision). No state is kept on the workers between iterations, so a worker
lost mid-run only costs the recomputation of its chunks. Empty clusters are
re-seeded as in memory (the globally farthest points, ties by row), in an extra
round that fetches a few candidates per chunk. Each chunk is assigned by
:func:`aeclust._lloyd.assign`, the in-memory kernel. From the same initial
centres the result follows the in-memory path step by step, with sample weights
too (each chunk's task gets its rows' weights). Where the float64
cluster sums are exact, as for pixels scaled from integers, labels, centres and
inertia are the same bits as in memory (tested on CIFAR-10); otherwise the
chunks' fresh sums and the in-memory running sums differ in their last bits,
and a point that lies within rounding of two centres can, rarely, go the other way.

Initialisation. ``init="random"`` draws the same k rows as the in-memory
estimator for the same ``random_state`` (and the same weights). ``init="k-means++"`` (or
``"k-means||"``) on a dask array is k-means|| (:func:`kmeans_parallel_init`), the
scalable stand-in for k-means++, not the same random draw.

Metrics (:func:`cluster_quality`, :func:`silhouette_score`, :func:`dunn_index`).
Exact, blockwise over pairs of row chunks: one task per pair ``(i, j)``, ``j >= i``,
holds one ``chunk x chunk`` block of distances and returns, for the rows of both
chunks, their distance sums per cluster and their nearest other-cluster and
farthest same-cluster squared distances. O(n^2) work over the workers,
O(chunk^2) memory per task. The distances of a block, the per-point silhouette
and Dunn's float64 re-measurement are the in-memory functions
(:mod:`aeclust._pairwise`, :mod:`aeclust.metrics`): the few points whose float32
extreme lies within the proven error bound of the global extreme are measured
again in float64 against every chunk. For very large n, :func:`sampled_silhouette`
estimates the silhouette from a random sample.

Determinism. Partial results are combined in a fixed tree (by chunk index),
never in the order the workers finish, and every task runs BLAS on one thread:
the results are the same bits on any scheduler and any number of workers, for
given chunk sizes (``chunk_rows``, which groups the float32 partial sums). Against
the in-memory metrics the silhouette is not the same bits: the in-memory pass
sorts the rows by cluster and sums each cluster over a contiguous slice, while
here the rows stay where they lie (sorting them would move all the data between
workers) and each cluster is summed through a one-hot product. Each per-point
sum then differs by float32 rounding, about 1e-7 relative, and the mean
silhouette by about 1e-9 (5e-10 measured on 4,000 CIFAR-10 images; the tests
hold it to 1e-6). Dunn's index is re-measured in float64 on both paths and agrees.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import statistics
import sys
import warnings

import numpy as np

from . import _lloyd
from ._pairwise import (blas_single_threaded, distance64, extreme_sq_distance64, one_hot, row_sq_norms,
                        sq_distance_block, sq_norms64)
from ._kmeans_input import check_sample_weight
from ._validation import check_labels
from .errors import AeclustError, InvalidInputError
from .metrics import (ClusterQuality, SilhouetteEstimate, check_cluster_count, dunn_cuts, dunn_from_parts,
                      near_extremes, silhouette_from_sums)

__all__ = [
    "connect",
    "close",
    "session",
    "is_dask_array",
    "DaskRows",
    "fit_kmeans",
    "kmeans_parallel_init",
    "cluster_quality",
    "silhouette_score",
    "dunn_index",
    "sampled_silhouette",
    "SilhouetteEstimate",
    "persist_on_cluster",
    "DaskNotInstalledError",
]

#: Rows per chunk for k-means when the caller gives none and the array is not
#: already split by rows: a 16384 x 1024 float32 chunk is 64 MiB.
KMEANS_CHUNK_ROWS = 16384
#: Rows per chunk for the pairwise metrics: a 2048 x 2048 float32 block is 16 MiB.
METRICS_CHUNK_ROWS = 2048
#: Partial results combined per task in the tree reductions.
_FAN_IN = 8


# ---------------------------------------------------------------------------------------
# Dask, loaded on demand


class DaskNotInstalledError(AeclustError, ImportError):
    """Dask (or dask.distributed) is not installed."""


def _dask(distributed: bool = False):
    try:
        import dask
        import dask.array as da

        if distributed:
            import dask.distributed  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DaskNotInstalledError(
            f'running on Dask needs dask[array,distributed] ({exc}): pip install "aeclust[dask]"'
        ) from None
    return dask, da


def is_dask_array(X) -> bool:
    """True for a ``dask.array.Array``; never imports Dask itself."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, da.Array)


# ---------------------------------------------------------------------------------------
# Connecting to a scheduler

_OWNED_CLUSTERS: dict[int, object] = {}


def connect(scheduler: str, *, timeout: str = "30s"):
    """A ``dask.distributed.Client`` for ``scheduler``; it becomes Dask's default scheduler.

    ``"local:N"`` starts a ``LocalCluster`` of N worker processes (one thread
    each, managed by Nannies that restart a worker that dies), bound to
    127.0.0.1 with no dashboard. ``"tcp://host:port"`` (or ``tls://...``)
    connects to a running ``dask scheduler`` (waiting up to ``timeout``). Release it
    with :func:`close`, or use :func:`session`.
    """
    if not isinstance(scheduler, str) or not scheduler:
        raise InvalidInputError(f"scheduler must be 'local:N' or 'tcp://host:port', got {scheduler!r}")
    if scheduler.startswith("local:") or scheduler == "local":
        count = scheduler.partition(":")[2] or "2"
        n_workers = int(count) if count.isdecimal() else 0
        if n_workers < 1:
            raise InvalidInputError(f"'local:N' needs a positive number of workers, got {scheduler!r}")
        _dask(distributed=True)
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
        _OWNED_CLUSTERS[id(client)] = cluster
        return client
    if "://" not in scheduler:
        raise InvalidInputError(
            f"scheduler must be 'local:N' or an address such as 'tcp://host:8786', got {scheduler!r}"
        )
    _dask(distributed=True)
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=timeout)
    except OSError as exc:
        raise AeclustError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def close(client) -> None:
    """Close a client from :func:`connect`, and the local cluster it started, if any."""
    cluster = _OWNED_CLUSTERS.pop(id(client), None)
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def session(scheduler: str):
    """``with session("local:2") as client: ...`` — :func:`connect`, then :func:`close`."""
    client = connect(scheduler)
    try:
        yield client
    finally:
        close(client)


# ---------------------------------------------------------------------------------------
# Helpers


def _as_dask_rows(X, chunk_rows: int | None, *, dtype, default_rows: int, name: str = "X"):
    """``X`` as a 2-D dask array split by rows only, of ``dtype`` (None: keep float32/64)."""
    _, da = _dask()
    if not is_dask_array(X):
        X = np.asarray(X)
        if X.ndim == 2:
            X = da.from_array(X, chunks=(chunk_rows or default_rows, -1))
    if X.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1))" if X.ndim == 1 else ""
        raise InvalidInputError(f"{name} must be 2-D (n_samples, n_features), got {X.ndim}-D shape {X.shape}{hint}")
    if any(math.isnan(s) for s in X.shape):
        raise InvalidInputError(f"{name} has unknown chunk sizes; call X.compute_chunk_sizes() first")
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise InvalidInputError(f"{name} must hold numbers, got dtype {X.dtype}")
    if X.shape[1] == 0:
        raise InvalidInputError(f"{name} has no features (shape {X.shape})")
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    if X.dtype != dtype:
        X = X.astype(dtype)
    if chunk_rows is not None:
        X = X.rechunk((int(chunk_rows), -1))
    elif len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    return X


def _offsets(chunks) -> list[int]:
    return [int(v) for v in np.cumsum((0,) + tuple(chunks[0]))[:-1]]


def _tree(dask, combine, parts: list, down_to: int = 1) -> list:
    """Combine delayed ``parts`` with ``combine(*group)``, groups of ``_FAN_IN`` in chunk order,
    until at most ``down_to`` are left."""
    while len(parts) > down_to:
        parts = [dask.delayed(combine)(*parts[s : s + _FAN_IN]) for s in range(0, len(parts), _FAN_IN)]
    return parts


def _reduce(dask, combine, parts: list):
    """Compute delayed ``parts`` and combine them: in a tree on the workers down to
    ``_FAN_IN`` partial results, the last step on the client (one round trip fewer)."""
    return combine(*dask.compute(*_tree(dask, combine, parts, _FAN_IN)))


def _count_bad(x) -> int:
    return int(x.size - np.count_nonzero(np.isfinite(x)))


def _add(*parts):
    """``parts[0] + parts[1] + ...``, in that order: a fixed order, whoever finished first."""
    return sum(parts[1:], parts[0])


def _reject_non_finite(bad: int, name: str = "X") -> None:
    if bad:
        raise InvalidInputError(f"{name} contains {bad} NaN or infinite value(s); remove or impute them first")


# ---------------------------------------------------------------------------------------
# K-means: the per-chunk tasks


def _digest(labels: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(labels, dtype=np.int64).tobytes(), digest_size=16).digest()


def _apply_overrides(labels: np.ndarray, offset: int, overrides) -> np.ndarray:
    if overrides:
        labels = labels.copy()
        for row, label in overrides:
            labels[row - offset] = label
    return labels


def _lloyd_chunk(x: np.ndarray, centers: np.ndarray, w) -> tuple:
    """Assign one chunk (of weights ``w`` or None); return its sums, counts and total weights
    (:func:`aeclust._lloyd.cluster_stats`) and [its label digest]."""
    labels, _ = _lloyd.assign(x, centers)
    return (*_lloyd.cluster_stats(x, labels, centers.shape[0], w), [_digest(labels)])


def _add_fields(*parts) -> tuple:
    """Tuples of partial results added field by field, in order (arrays add, lists concatenate)."""
    return tuple(_add(*field) for field in zip(*parts))


def _far_candidates(x: np.ndarray, centers: np.ndarray, offset: int, m: int, w) -> tuple:
    """The ``m`` points of a chunk farthest from their centres, as the in-memory re-seed ranks
    them (of positive weight: a point of weight 0 cannot re-seed a cluster), with their weights."""
    labels, dist = _lloyd.assign(x, centers)
    order = np.lexsort((np.arange(x.shape[0]), -dist))
    order = (order if w is None else order[w[order] > 0])[:m]
    weights = np.ones(len(order)) if w is None else w[order]
    return dist[order], order + offset, labels[order], x[order].copy(), weights


def _digest_chunk(x: np.ndarray, centers: np.ndarray, offset: int, overrides) -> bytes:
    labels, _ = _lloyd.assign(x, centers)
    return _digest(_apply_overrides(labels, offset, overrides))


def _final_chunk(x: np.ndarray, assigned_by: np.ndarray, centers: np.ndarray, offset: int, overrides, w) -> tuple:
    """Final labels of a chunk and its rows' inertia terms (:func:`_lloyd.inertia_terms_weighted`)."""
    labels, _ = _lloyd.assign(x, assigned_by)
    labels = _apply_overrides(labels, offset, overrides)
    return labels, _lloyd.inertia_terms_weighted(x, labels, centers, w)


# ---------------------------------------------------------------------------------------
# K-means: the data of a fit, and one Lloyd run over its chunks


class DaskRows(_lloyd.Rows):
    """A dask array's rows as :meth:`aeclust.KMeans.fit` reads them: float32 chunks on the workers.

    ``KMeans.fit`` wraps a dask array in one of these with the defaults; give
    ``KMeans.fit`` one directly, or call :func:`fit_kmeans`, to choose them.

    Parameters
    ----------
    X : dask or numpy array of shape (n_samples, n_features)
        Converted to float32 and split by rows: ``chunk_rows`` per chunk if given,
        else the dask array's own row chunks (16384 rows for a numpy array).
    chunk_rows : int, optional
    persist : bool, default=True
        Keep the float32 chunks in the workers' memory for the iterations. With
        ``False`` every pass reads ``X`` from its source again (for data larger than
        the cluster's memory).
    callback : callable, optional
        ``callback(iteration, centers)`` after each assignment pass.
    sample_weight : numpy or dask array of shape (n_samples,), optional
        Non-negative weights (:class:`aeclust.KMeans`'s rules), read into the client's
        memory to be checked, then chunked as ``X``'s rows on the workers.
    """

    inits = ("random", "k-means++", "k-means||")

    def __init__(self, X, *, chunk_rows: int | None = None, persist: bool = True, callback=None,
                 sample_weight=None):
        self.dask, self.da = _dask()
        self.persist, self.callback = persist, callback
        self._use(_as_dask_rows(X, chunk_rows, dtype=np.float32, default_rows=KMEANS_CHUNK_ROWS))
        self.offsets = _offsets(self.X.chunks)
        self.sizes = [int(s) for s in self.X.chunks[0]]
        self.shape = (int(self.X.shape[0]), int(self.X.shape[1]))
        self.weights = check_sample_weight(sample_weight, self.shape[0])
        self.w_blocks = [None] * len(self.blocks)
        if self.weights is not None:  # held here: persisted chunks live as long as their array
            self.W = self.da.from_array(self.weights, chunks=(self.X.chunks[0],))
            self.W = self.W.persist() if persist else self.W
            self.w_blocks = list(self.W.to_delayed().ravel())

    def _use(self, X) -> None:
        self.X = X
        self.blocks = list(X.to_delayed().ravel())

    def check_values(self) -> None:
        if self.persist:
            self._use(self.X.persist())
        dask = self.dask
        _reject_non_finite(sum(dask.compute(*[dask.delayed(_count_bad)(b) for b in self.blocks])))

    def take(self, rows: np.ndarray) -> np.ndarray:
        # Dask takes rows in increasing order; the second argsort puts them back in the given one.
        got = np.asarray(self.dask.compute(self.X[np.sort(rows)])[0])
        return got[np.argsort(np.argsort(rows))]

    def kmeans_plus_plus(self, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
        """k-means|| (:func:`kmeans_parallel_init`), the scalable stand-in for k-means++."""
        return kmeans_parallel_init(self, n_clusters, random_state=rng)

    def lloyd(self, centers: np.ndarray, max_iter: int) -> _lloyd.Run:
        """:func:`aeclust._lloyd.lloyd` over the chunks: the same steps, stopping rules and counts.

        The final labels (a dask array, persisted when ``persist``) are the
        assignment to the centres of the last pass, with its re-seed moves.
        """
        state = self._step(centers)
        labels_from = centers  # the centres whose assignment ``state`` describes
        previous = None
        n_empty_total = 0
        for it in range(1, max_iter + 1):
            centers, updated, n_empty, _ = self._update(state, labels_from)
            n_empty_total += n_empty
            if previous is not None and np.array_equal(centers, previous):
                return self._final(centers, centers, [], it, True, n_empty_total)
            state = self._step(centers)
            if self.callback is not None:
                self.callback(it, centers)
            if state[3] == updated:
                return self._final(centers, centers, [], it, True, n_empty_total)
            labels_from, previous = centers, centers
        # Not converged: the centres are brought in line with the last assignment and its re-seeds.
        centers, _, n_empty, moves = self._update(state, labels_from)
        return self._final(centers, labels_from, moves, max_iter, False, n_empty_total + n_empty)

    def _chunk_of(self, row: int) -> int:
        return int(np.searchsorted(self.offsets, row, side="right") - 1)

    def _moves_in(self, moves, i: int):
        lo, hi = self.offsets[i], self.offsets[i] + self.sizes[i]
        return [(r, e) for r, e in moves if lo <= r < hi]

    def _step(self, centers: np.ndarray) -> tuple:
        """One assignment over all chunks: global float64 sums, counts, total weights, per-chunk digests."""
        dask = self.dask
        c = dask.delayed(centers)
        return _reduce(dask, _add_fields,
                       [dask.delayed(_lloyd_chunk)(b, c, w) for b, w in zip(self.blocks, self.w_blocks)])

    def _update(self, state: tuple, centers_of_labels: np.ndarray):
        """The in-memory ``update_centers``, from combined sums: new centres, the digests of the
        (possibly re-seeded) labels, the number of empty clusters and the re-seed moves."""
        sums, counts, totals, digests = state
        sums, counts, totals, digests = sums.copy(), counts.copy(), totals.copy(), list(digests)
        k = len(counts)
        n_empty = int(np.count_nonzero(counts == 0))
        moves: list[tuple[int, int]] = []
        if n_empty:
            dask = self.dask
            m = n_empty + k  # at most k candidates are skipped (one per cluster left with one point)
            c = dask.delayed(centers_of_labels)
            found = dask.compute(*[dask.delayed(_far_candidates)(b, c, off, m, w)
                                   for b, off, w in zip(self.blocks, self.offsets, self.w_blocks)])
            dist, rows, labels, points, weights = (np.concatenate(part) for part in zip(*found))
            donors = _lloyd.pick_donors(np.lexsort((rows, -dist)), labels, counts, n_empty)
            for e, p in zip(np.flatnonzero(counts == 0)[: len(donors)], donors):
                moved = weights[p] * points[p].astype(np.float64)  # weight 1: the point itself
                sums[labels[p]] -= moved
                sums[e] += moved
                counts[labels[p]] -= 1
                counts[e] += 1
                totals[labels[p]] -= weights[p]
                totals[e] += weights[p]
                moves.append((int(rows[p]), int(e)))
            touched = sorted({self._chunk_of(r) for r, _ in moves})
            fresh = dask.compute(*[
                dask.delayed(_digest_chunk)(self.blocks[i], c, self.offsets[i], self._moves_in(moves, i))
                for i in touched
            ])
            for i, h in zip(touched, fresh):
                digests[i] = h
        return _lloyd.centres_from_stats(sums, counts, totals), digests, n_empty, moves

    def _final(self, centers: np.ndarray, assigned_by: np.ndarray, moves, n_iter: int, converged: bool,
               n_empty: int) -> _lloyd.Run:
        """The run's outcome: labels (the assignment to ``assigned_by`` with the re-seed ``moves``)
        and their inertia about ``centers``."""
        dask, da = self.dask, self.da
        a, c = dask.delayed(assigned_by), dask.delayed(centers)
        parts = [dask.delayed(_final_chunk, nout=2)(b, a, c, off, self._moves_in(moves, i), w)
                 for i, (b, off, w) in enumerate(zip(self.blocks, self.offsets, self.w_blocks))]
        if self.persist:
            parts = list(dask.persist(*parts))
        labels = da.concatenate([da.from_delayed(p[0], shape=(s,), dtype=np.intp)
                                 for p, s in zip(parts, self.sizes)])
        # One correctly rounded sum of all the rows' terms, as in memory: the same bits
        # whatever the chunks (8 bytes a row travel to the client for it).
        inertia = math.fsum(np.concatenate(dask.compute(*[p[1] for p in parts])))
        if self.persist:
            labels = labels.persist()
        return _lloyd.Run(labels, centers, n_iter, converged, n_empty, inertia)


def fit_kmeans(estimator, X, *, chunk_rows: int | None = None, persist: bool = True, callback=None,
               sample_weight=None):
    """Fit an :class:`aeclust.KMeans` on a dask array, choosing how its rows are held
    (the parameters of :class:`DaskRows`); ``KMeans.fit`` on a dask array uses the defaults.

    The attributes are those of the in-memory fit, except that ``labels_`` is a
    dask array of ints (chunked like ``X``'s rows, persisted on the workers when
    ``persist``). From the same initial centres (``init`` an array, or
    ``init="random"`` with the same ``random_state``) the labels, centres and
    inertia match the in-memory fit (see the module notes for the rare exception).
    """
    return estimator.fit(DaskRows(X, chunk_rows=chunk_rows, persist=persist, callback=callback,
                                  sample_weight=sample_weight))


# ---------------------------------------------------------------------------------------
# k-means|| initialisation


def kmeans_parallel_init(X, n_clusters: int, *, random_state=None, rounds: int = 5,
                         oversampling: float | None = None) -> np.ndarray:
    """k-means|| (Bahmani, Moseley, Vattani, Kumar, Vassilvitskii, 2012): initial centres in a few passes.

    Start from one uniformly drawn point; in each of ``rounds`` rounds, one pass
    sums the squared distances of all points to the candidates (phi) and a
    second keeps each point independently with probability
    ``min(1, oversampling * d^2 / phi)`` (``oversampling`` defaults to ``2 k``, so
    about 2k points per round). A last pass weighs each candidate by the number
    of points nearest to it; the weighted candidates are then reduced to
    ``n_clusters`` centres on the client with greedy k-means++ and weighted
    Lloyd. The paper shows 5 rounds with ``oversampling = 2k`` already match
    k-means++; with fewer candidates than clusters, random points fill in.
    ``X`` is a dask or numpy array, or a :class:`DaskRows`; the weights of a
    :class:`DaskRows` weigh every draw and every candidate, as in weighted k-means++.
    """
    rows = X if isinstance(X, DaskRows) else DaskRows(X, persist=False)
    rng = np.random.default_rng(random_state)  # a Generator comes back as it is: its draws go on
    dask, blocks, n, k = rows.dask, list(zip(rows.blocks, rows.w_blocks)), rows.shape[0], int(n_clusters)
    p = None if rows.weights is None else rows.weights / rows.weights.sum()
    ell = float(oversampling) if oversampling is not None else 2.0 * k
    seed = int(rng.integers(2**63 - 1))
    C = rows.take(np.array([rng.integers(n) if p is None else rng.choice(n, p=p)]))
    for r in range(rounds):
        c = dask.delayed(C)
        phi = float(sum(dask.compute(*[dask.delayed(_lloyd.kpar_cost)(b, c, w) for b, w in blocks])))
        if phi <= 0.0:
            break
        new = dask.compute(*[dask.delayed(_lloyd.kpar_sample)(b, c, phi, ell, seed, r, i, w)
                             for i, (b, w) in enumerate(blocks)])
        C = np.concatenate([C, *new])
    if C.shape[0] < k:
        C = np.concatenate([C, rows.take(np.sort(rng.choice(n, size=k - C.shape[0], replace=False, p=p)))])
    c = dask.delayed(C)
    weights = _reduce(dask, _add, [dask.delayed(_lloyd.kpar_weights)(b, c, w) for b, w in blocks])
    return _lloyd.weighted_kmeans(C, weights, k, rng)


# ---------------------------------------------------------------------------------------
# Exact metrics, blockwise over pairs of chunks


def _label_summary(labels: np.ndarray, x: np.ndarray) -> tuple:
    labels = check_labels(labels, len(labels))  # NaN labels, worded as in memory
    u, c = np.unique(labels, return_counts=True)
    return [(u, c)], x.sum(axis=0, dtype=np.float64), _count_bad(x)


def _combine_summary(*parts) -> tuple:
    return ([p for part in parts for p in part[0]], sum(p[1] for p in parts), sum(p[2] for p in parts))


def _centre_chunk(x: np.ndarray, labels: np.ndarray, mean: np.ndarray, uniques: np.ndarray) -> tuple:
    """The float32 centred rows, their squared norms and their cluster codes."""
    xc = np.ascontiguousarray(x - mean, dtype=np.float32)
    codes = np.searchsorted(uniques, np.asarray(labels)).astype(np.intp)
    return xc, row_sq_norms(xc), codes


@blas_single_threaded
def _pair_block(a: tuple, b: tuple | None, k: int, sums: bool, extremes: bool) -> tuple:
    """Distances between two chunks (``b is None``: a chunk with itself), reduced per row and column.

    Returns ``(rows, cols)``, each ``(sums (r, k) float64 or None, min_inter_sq, max_intra_sq)``;
    ``cols`` is None on the diagonal. The distances are those of
    :func:`aeclust._pairwise.pair_stats` (:func:`aeclust._pairwise.sq_distance_block`);
    the per-cluster sums go through a one-hot product, as the rows are not sorted by cluster.
    """
    xa, sqa, ca = a
    diagonal = b is None
    xb, sqb, cb = a if diagonal else b
    D2 = sq_distance_block(xa * np.float32(-2.0), sqa, xb, sqb)
    if diagonal:
        np.fill_diagonal(D2, 0.0)
    rows, cols = [None, None, None], [None, None, None]
    if extremes:
        same = ca[:, None] == cb[None, :]
        masked = np.where(same, D2, np.float32(0.0))
        rows[2] = masked.max(axis=1)
        cols[2] = masked.max(axis=0)
        np.copyto(masked, D2)
        masked[same] = np.inf
        rows[1] = masked.min(axis=1)
        cols[1] = masked.min(axis=0)
        del masked, same
    if sums:
        D = np.sqrt(D2, out=D2)
        rows[0] = (D @ one_hot(cb, k, np.float32)).astype(np.float64)
        if not diagonal:
            cols[0] = (one_hot(ca, k, np.float32).T @ D).T.astype(np.float64)
    return tuple(rows), (None if diagonal else tuple(cols))


def _pick(block: tuple, side: int) -> tuple:
    return block[side]


def _merge_stats(*parts) -> tuple:
    """One row chunk's results from several blocks: sums added in block order, extremes merged."""
    S, lo, hi = zip(*parts)
    return (None if S[0] is None else _add(*S), None if lo[0] is None else np.minimum.reduce(lo),
            None if hi[0] is None else np.maximum.reduce(hi))


def _finish_chunk(stats: tuple, prepared: tuple, counts: np.ndarray) -> tuple:
    """Silhouette sum of a chunk; its float32 Dunn extremes stay on the worker for the next step."""
    S, lo, hi = stats
    sil = float(silhouette_from_sums(S, prepared[2], counts).sum()) if S is not None else None
    return sil, lo, hi, float(prepared[1].max(initial=0.0))


def _chunk_extremes(fin: tuple) -> tuple:
    _, lo, hi, big = fin
    return (float(lo.min()) if lo is not None else None, float(hi.max()) if hi is not None else None, big, fin[0])


def _candidates(fin: tuple, offset: int, cuts: tuple[float, float]) -> tuple:
    near_min, near_max = near_extremes(fin[1], fin[2], cuts)
    return near_min + offset, near_max + offset


def _rows_and_codes(x: np.ndarray, prepared: tuple, local: np.ndarray) -> tuple:
    return x[local].astype(np.float64), prepared[2][local]


@blas_single_threaded
def _remeasure(x: np.ndarray, prepared: tuple, offset: int, cand: np.ndarray, cand_codes: np.ndarray,
               same_cluster: bool) -> tuple:
    """Float64 extreme between the candidate rows and one chunk: (value, candidate, row, that row),
    or a row of None where no pair qualifies (:func:`aeclust._pairwise.extreme_sq_distance64`)."""
    X = x.astype(np.float64)
    sq, csq = sq_norms64(X), sq_norms64(cand)
    found = [extreme_sq_distance64(cand[s : s + 256], csq[s : s + 256], cand_codes[s : s + 256],
                                   X, sq, prepared[2], same_cluster=same_cluster)
             for s in range(0, len(cand), 256)]
    b = int(np.argmax([f[0] for f in found]) if same_cluster else np.argmin([f[0] for f in found]))
    value, i, j = found[b]  # the first of the best, in candidate order
    if not np.isfinite(value):  # no pair of the kind sought with this chunk
        return value, -1, -1, None
    return value, 256 * b + i, j + offset, X[j].copy()


class _Prepared:
    """Data and labels on the workers, centred and coded, ready for the block pass."""

    def __init__(self, X, labels, chunk_rows, *, max_clusters_rel: int | None):
        self.dask, self.da = dask, da = _dask()
        # Blocks are chunk x chunk, so the metrics always pick their own chunk size.
        X = _as_dask_rows(X, chunk_rows or METRICS_CHUNK_ROWS, dtype=None, default_rows=METRICS_CHUNK_ROWS)
        n = int(X.shape[0])
        if n < 2:
            raise InvalidInputError(f"X has {n} sample(s); at least 2 are needed")
        if is_dask_array(labels):
            # A zero-memory stand-in with the labels' shape: the in-memory shape checks and
            # wording, without computing the labels (NaN labels are caught chunk by chunk).
            check_labels(np.broadcast_to(np.int8(0), labels.shape), n)
            labels = labels.rechunk((X.chunks[0],))
        else:
            labels = da.from_array(check_labels(labels, n), chunks=(X.chunks[0],))
        self.n, self.d = n, int(X.shape[1])
        self.x_blocks = list(X.to_delayed().ravel())
        self.l_blocks = list(labels.to_delayed().ravel())
        self.offsets = _offsets(X.chunks)
        pairs, total, bad = _reduce(dask, _combine_summary, [
            dask.delayed(_label_summary)(lb, xb) for lb, xb in zip(self.l_blocks, self.x_blocks)
        ])
        _reject_non_finite(bad)
        uniques = np.unique(np.concatenate([u for u, _ in pairs]))
        counts = np.zeros(len(uniques), dtype=np.int64)
        for u, c in pairs:
            counts[np.searchsorted(uniques, u)] += c
        self.k = check_cluster_count(len(uniques), n, min_clusters=2, max_clusters_rel=max_clusters_rel)
        self.counts, self.uniques = counts, uniques
        m, u = dask.delayed(total / n), dask.delayed(uniques)
        self.prepared = list(dask.persist(*[
            dask.delayed(_centre_chunk)(xb, lb, m, u) for xb, lb in zip(self.x_blocks, self.l_blocks)
        ]))

    def gather(self, rows: np.ndarray, task, *per_chunk: list) -> list[np.ndarray]:
        """``task(*chunk's items, local rows)`` on each chunk that holds some of the sorted ``rows``;
        each of the results' parts concatenated over the chunks, in row order."""
        dask = self.dask
        chunk_ids = np.searchsorted(self.offsets, rows, side="right") - 1
        got = dask.compute(*[
            dask.delayed(task)(*(items[i] for items in per_chunk), rows[chunk_ids == i] - self.offsets[i])
            for i in np.unique(chunk_ids)
        ])
        return [np.concatenate(part) for part in zip(*got)]

    def block_stats(self, *, sums: bool, extremes: bool):
        """Per chunk, the delayed result of :func:`_finish_chunk` after the pass over all pairs."""
        dask = self.dask
        nb = len(self.prepared)
        contributions: list[list] = [[] for _ in range(nb)]
        for i in range(nb):
            for j in range(i, nb):
                block = dask.delayed(_pair_block)(
                    self.prepared[i], None if i == j else self.prepared[j], self.k, sums, extremes)
                contributions[i].append(dask.delayed(_pick)(block, 0))
                if i != j:
                    contributions[j].append(dask.delayed(_pick)(block, 1))
        counts = dask.delayed(self.counts)
        return [dask.delayed(_finish_chunk)(_tree(dask, _merge_stats, parts)[0], p, counts)
                for parts, p in zip(contributions, self.prepared)]

    def dunn_parts(self, finished: list, summaries: list) -> tuple[float, float]:
        """Exact (smallest inter-cluster distance, largest diameter) from the float32 pass."""
        dask = self.dask
        cuts = dunn_cuts(min(s[0] for s in summaries), max(s[1] for s in summaries), self.d,
                         max(s[2] for s in summaries))
        found = dask.compute(*[dask.delayed(_candidates)(f, off, cuts) for f, off in zip(finished, self.offsets)])
        d_min = self._exact(np.concatenate([f[0] for f in found]), same_cluster=False)
        d_max = self._exact(np.concatenate([f[1] for f in found]), same_cluster=True)
        return d_min, d_max

    def _exact(self, rows: np.ndarray, *, same_cluster: bool) -> float:
        dask = self.dask
        cand, cand_codes = self.gather(rows, _rows_and_codes, self.x_blocks, self.prepared)
        c, cc = dask.delayed(cand), dask.delayed(cand_codes)
        results = dask.compute(*[
            dask.delayed(_remeasure)(xb, p, off, c, cc, same_cluster)
            for xb, p, off in zip(self.x_blocks, self.prepared, self.offsets)
        ])
        results = [r for r in results if r[3] is not None]
        pick = max(results, key=lambda r: r[0]) if same_cluster else min(results, key=lambda r: r[0])
        return distance64(cand[pick[1]], pick[3])


def _quality(X, labels, chunk_rows, *, sil: bool, dunn: bool):
    data = _Prepared(X, labels, chunk_rows, max_clusters_rel=-1 if sil else None)
    dask = data.dask
    finished = list(dask.persist(*data.block_stats(sums=sil, extremes=dunn)))
    summaries = dask.compute(*[dask.delayed(_chunk_extremes)(f) for f in finished])
    silhouette = float(sum(s[3] for s in summaries) / data.n) if sil else None
    d_min = d_max = None
    if dunn:
        d_min, d_max = data.dunn_parts(finished, summaries)
    return data, silhouette, d_min, d_max


def cluster_quality(X, labels, *, chunk_rows: int | None = None) -> ClusterQuality:
    """Exact silhouette and Dunn's index of a dask (or numpy) array, blockwise on the workers.

    Equal to :func:`aeclust.metrics.cluster_quality` on the same data: the
    silhouette to about 1e-7, Dunn's index to rounding of the final float64
    difference. ``labels`` may be a dask or numpy array of any sortable values.
    The rows are re-chunked to ``chunk_rows`` (default 2048); each task holds one
    ``chunk_rows x chunk_rows`` block: 16 MiB of float32 distances at 2048, and
    a few temporaries of that size.
    """
    data, sil, d_min, d_max = _quality(X, labels, chunk_rows, sil=True, dunn=True)
    return ClusterQuality.from_parts(sil, d_min, d_max, data.n, data.k)


def silhouette_score(X, labels, *, chunk_rows: int | None = None) -> float:
    """Exact mean silhouette, blockwise on the workers (see :func:`cluster_quality`)."""
    return _quality(X, labels, chunk_rows, sil=True, dunn=False)[1]


def dunn_index(X, labels, *, chunk_rows: int | None = None) -> float:
    """Exact Dunn's index, blockwise on the workers (see :func:`cluster_quality`)."""
    _, _, d_min, d_max = _quality(X, labels, chunk_rows, sil=False, dunn=True)
    return dunn_from_parts(d_min, d_max)


# ---------------------------------------------------------------------------------------
# Sampled silhouette


@blas_single_threaded
def _sample_sums(prepared: tuple, offset: int, sample: np.ndarray, sample_rows: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster sums of the distances from the sampled points to the points of one chunk."""
    xc, sq, codes = prepared
    D2 = sq_distance_block(sample * np.float32(-2.0), row_sq_norms(sample), xc, sq)
    inside = (sample_rows >= offset) & (sample_rows < offset + xc.shape[0])
    D2[np.flatnonzero(inside), sample_rows[inside] - offset] = 0.0  # a point's distance to itself
    D = np.sqrt(D2, out=D2)
    return (D @ one_hot(codes, k, np.float32)).astype(np.float64)


def _sample_rows(prepared: tuple, local: np.ndarray) -> tuple:
    return prepared[0][local], prepared[2][local]


def sampled_silhouette(X, labels, *, n_sampled: int = 10000, confidence: float = 0.95,
                       random_state=None, chunk_rows: int | None = None) -> SilhouetteEstimate:
    """Estimate the mean silhouette from ``n_sampled`` points drawn without replacement.

    Each sampled point's silhouette is exact (its distances to all n points are
    summed on the workers: O(n_sampled x n) work, one ``n_sampled x chunk``
    block per task), so the only error is the sampling error, which the interval
    describes: about ``1.96 * sd / sqrt(n_sampled)`` at 95%, where sd (the spread
    of the per-point silhouettes) is typically 0.1-0.2. This is an estimate, not
    the exact score; use :func:`cluster_quality` where O(n^2) work is affordable.
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence!r}")
    data = _Prepared(X, labels, chunk_rows, max_clusters_rel=-1)
    dask = data.dask
    n = data.n
    m = int(min(max(int(n_sampled), 2), n))
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(n, size=m, replace=False))
    sample, codes = data.gather(rows, _sample_rows, data.prepared)
    s, r = dask.delayed(sample), dask.delayed(rows)
    S = _reduce(dask, _add, [
        dask.delayed(_sample_sums)(p, off, s, r, data.k) for p, off in zip(data.prepared, data.offsets)
    ])
    values = silhouette_from_sums(S, codes, data.counts)
    est = float(values.mean())
    sd = float(values.std(ddof=1)) if m > 1 else 0.0
    se = sd / math.sqrt(m) * math.sqrt(max(0.0, (n - m) / max(n - 1, 1)))
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return SilhouetteEstimate(estimate=est, low=est - z * se, high=est + z * se, std_error=se,
                              confidence=float(confidence), n_sampled=m, n_samples=n, n_clusters=data.k)


# ---------------------------------------------------------------------------------------
# Data held by the cluster


def persist_on_cluster(X, chunk_rows: int | None = None):
    """``X`` as a dask array held by the active scheduler; a dask array is returned as it is.

    A numpy array is split into ``chunk_rows`` rows per chunk (default 16384) and
    travels once, inside the task graph: the scheduler keeps it, so the chunks
    of a worker that dies can be rebuilt.
    """
    _, da = _dask()
    if is_dask_array(X):
        return X
    X = da.from_array(np.asarray(X), chunks=(chunk_rows or KMEANS_CHUNK_ROWS, -1))
    with warnings.catch_warnings():  # Dask warns about large graphs: this one is large by design
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        return X.persist()
