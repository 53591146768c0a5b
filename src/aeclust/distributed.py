"""K-means and the exact metrics on Dask: ``dask.array`` data, ``dask.distributed`` workers.

Install with ``pip install "aeclust[dask]"``. ``import aeclust`` never imports
Dask; this module does so only when one of its functions runs.

Everything here runs on whatever Dask scheduler is active: a
``dask.distributed.Client`` (see :func:`connect`) spreads the work over its
workers; without one, Dask's local threads do it.

K-means (:func:`fit_kmeans`, called by :meth:`aeclust.KMeans.fit` for a dask
array). The rows are split into chunks that live on the workers. Each Lloyd
iteration sends the centres out; every chunk returns its per-cluster sums
(float64) and counts and a 128-bit digest of its labels, combined in a tree on
the workers, so only centre-sized arrays cross the network. The digests play
the part of "did any assignment change": a chunk's labels changed exactly when
its digest did (up to a 2**-128 chance of collision). No state is kept on the
workers between iterations, so a worker lost mid-run only costs the recomputation
of its chunks. Empty clusters are re-seeded as in memory (the globally
farthest points, ties by row), in an extra round that fetches a few
candidates per chunk. From the same initial centres the result follows the
in-memory path step by step. Where the float64 cluster sums are exact, as for
pixels scaled from integers, labels, centres and inertia are the same bits as
in memory (tested on CIFAR-10); otherwise the chunks' fresh sums and the
in-memory running sums differ in their last bits, and a point that lies within
rounding of two centres can, rarely, go the other way.

Initialisation. ``init="random"`` draws the same k rows as the in-memory
estimator for the same ``random_state``. ``init="k-means++"`` (or
``"k-means||"``) on a dask array is k-means|| (Bahmani et al., 2012,
:func:`kmeans_parallel_init`): a few passes that oversample about ``2k`` points each,
then a weighted k-means++ and Lloyd on those candidates on the client. It is the
scalable stand-in for k-means++, not the same random draw.

Metrics (:func:`cluster_quality`, :func:`silhouette_score`, :func:`dunn_index`).
Exact, blockwise over pairs of row chunks: one task per pair ``(i, j)``, ``j >= i``,
holds one ``chunk x chunk`` block of distances and returns, for the rows of both
chunks, their distance sums per cluster and their nearest other-cluster and
farthest same-cluster squared distances. O(n^2) work over the workers,
O(chunk^2) memory per task. Dunn's index is made exact as in
:mod:`aeclust.metrics`: the few points whose float32 extreme lies within the proven
error bound of the global extreme are measured again in float64 against every
chunk. For very large n, :func:`sampled_silhouette` estimates the silhouette
from a simple random sample with a confidence interval.

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
from dataclasses import asdict, dataclass

import numpy as np

from . import _lloyd
from ._pairwise import blas_single_threaded, row_sq_norms, sq_distance_error_bound, sq_distances_to
from .errors import AeclustError, InvalidInputError
from .metrics import ClusterQuality, _dunn

__all__ = [
    "connect",
    "close",
    "session",
    "is_dask_array",
    "fit_kmeans",
    "kmeans_parallel_init",
    "cluster_quality",
    "silhouette_score",
    "dunn_index",
    "sampled_silhouette",
    "SilhouetteEstimate",
    "cluster_on_scheduler",
    "DaskNotInstalledError",
]

#: Rows per chunk for k-means when the caller gives none and the array is not
#: already split by rows. A multiple of the in-memory assignment block (1024 rows).
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
        try:
            n_workers = int(count)
        except ValueError:
            n_workers = 0
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


def _tree(dask, combine, parts: list):
    """Combine delayed ``parts`` with ``combine(*group)`` in a tree of fan-in ``_FAN_IN``."""
    while len(parts) > 1:
        parts = [dask.delayed(combine)(*parts[s : s + _FAN_IN]) for s in range(0, len(parts), _FAN_IN)]
    return parts[0]


def _reduce(dask, combine, parts: list):
    """Compute delayed ``parts`` and combine them: in a tree on the workers down to
    ``_FAN_IN`` partial results, the last step on the client (one round trip fewer)."""
    while len(parts) > _FAN_IN:
        parts = [dask.delayed(combine)(*parts[s : s + _FAN_IN]) for s in range(0, len(parts), _FAN_IN)]
    return combine(*dask.compute(*parts))


def _count_bad(x) -> int:
    return int(x.size - np.count_nonzero(np.isfinite(x)))


def _check_finite(dask, blocks, name: str = "X") -> None:
    bad = sum(dask.compute(*[dask.delayed(_count_bad)(b) for b in blocks]))
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


def _lloyd_chunk(x: np.ndarray, centers: np.ndarray) -> tuple:
    """Assign one chunk; return (sums float64 (k, d), counts (k,), [label digest])."""
    k = centers.shape[0]
    labels, _ = _lloyd.assign(x, centers)
    counts = np.bincount(labels, minlength=k).astype(np.int64)
    return _sums64(x, labels, k), counts, [_digest(labels)]


@blas_single_threaded
def _sums64(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster sums of the rows, accumulated in float64."""
    if k <= 32:  # a masked sum per cluster beats a float64 copy of the chunk
        sums = np.zeros((k, x.shape[1]), dtype=np.float64)
        for c in np.flatnonzero(np.bincount(labels, minlength=k)):
            sums[c] = x[labels == c].sum(axis=0, dtype=np.float64)
        return sums
    onehot = np.zeros((x.shape[0], k), dtype=np.float64)
    onehot[np.arange(x.shape[0]), labels] = 1.0
    return onehot.T @ x.astype(np.float64)


def _combine_lloyd(*parts) -> tuple:
    sums = parts[0][0].copy()
    counts = parts[0][1].copy()
    digests = list(parts[0][2])
    for s, c, h in parts[1:]:
        sums += s
        counts += c
        digests.extend(h)
    return sums, counts, digests


def _far_candidates(x: np.ndarray, centers: np.ndarray, offset: int, m: int) -> tuple:
    """The ``m`` points of a chunk farthest from their centres, as the in-memory re-seed ranks them."""
    labels, best = _lloyd.assign(x, centers)
    dist = best + row_sq_norms(x)
    rows = np.arange(x.shape[0])
    order = np.lexsort((rows, -dist))[:m]
    return dist[order], order + offset, labels[order], x[order].copy()


def _digest_chunk(x: np.ndarray, centers: np.ndarray, offset: int, overrides) -> bytes:
    labels, _ = _lloyd.assign(x, centers)
    return _digest(_apply_overrides(labels, offset, overrides))


def _final_chunk(x: np.ndarray, assigned_by: np.ndarray, centers: np.ndarray, offset: int, overrides) -> tuple:
    """Final labels of a chunk and its rows' inertia terms (:func:`_lloyd.inertia_terms`)."""
    labels, _ = _lloyd.assign(x, assigned_by)
    labels = _apply_overrides(labels, offset, overrides)
    return labels, _lloyd.inertia_terms(x, labels, centers)


# ---------------------------------------------------------------------------------------
# K-means: the driver


class _Chunks:
    """A row-chunked float32 dask array as delayed blocks, with their offsets."""

    def __init__(self, X):
        self.dask, self.da = _dask()
        self.X = X
        self.blocks = list(X.to_delayed().ravel())
        self.offsets = _offsets(X.chunks)
        self.sizes = [int(s) for s in X.chunks[0]]
        self.n, self.d = int(X.shape[0]), int(X.shape[1])

    def chunk_of(self, row: int) -> int:
        return int(np.searchsorted(self.offsets, row, side="right") - 1)

    def step(self, centers: np.ndarray) -> tuple:
        """One assignment over all chunks: global float64 sums, counts, per-chunk digests."""
        dask = self.dask
        c = dask.delayed(centers)
        parts = [dask.delayed(_lloyd_chunk)(b, c) for b in self.blocks]
        return _reduce(dask, _combine_lloyd, parts)

    def update(self, state: tuple, centers_of_labels: np.ndarray):
        """The in-memory ``update_centers``, from combined sums: new centres, the digests of the
        (possibly re-seeded) labels, the number of empty clusters and the re-seed moves."""
        sums, counts, digests = state
        sums, counts, digests = sums.copy(), counts.copy(), list(digests)
        k = len(counts)
        n_empty = int(np.count_nonzero(counts == 0))
        moves: list[tuple[int, int]] = []
        if n_empty:
            dask = self.dask
            m = n_empty + k  # at most k candidates are skipped (one per cluster left with one point)
            c = dask.delayed(centers_of_labels)
            found = dask.compute(*[dask.delayed(_far_candidates)(b, c, off, m)
                                   for b, off in zip(self.blocks, self.offsets)])
            dist = np.concatenate([f[0] for f in found])
            rows = np.concatenate([f[1] for f in found])
            labels = np.concatenate([f[2] for f in found])
            points = np.concatenate([f[3] for f in found])
            donors = _lloyd.pick_donors(np.lexsort((rows, -dist)), labels, counts, n_empty)
            for e, p in zip(np.flatnonzero(counts == 0)[: len(donors)], donors):
                sums[labels[p]] -= points[p].astype(np.float64)
                sums[e] += points[p].astype(np.float64)
                counts[labels[p]] -= 1
                counts[e] += 1
                moves.append((int(rows[p]), int(e)))
            touched = sorted({self.chunk_of(r) for r, _ in moves})
            fresh = dask.compute(*[
                dask.delayed(_digest_chunk)(self.blocks[i], c, self.offsets[i],
                                            self._moves_in(moves, i))
                for i in touched
            ])
            for i, h in zip(touched, fresh):
                digests[i] = h
        centers = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        return centers, digests, n_empty, moves

    def _moves_in(self, moves, i: int):
        lo, hi = self.offsets[i], self.offsets[i] + self.sizes[i]
        return [(r, e) for r, e in moves if lo <= r < hi]

    def final(self, assigned_by: np.ndarray, centers: np.ndarray, moves, persist: bool):
        """Labels (a dask array: the assignment to ``assigned_by`` with the re-seed ``moves``)
        and their inertia about ``centers``."""
        dask, da = self.dask, self.da
        a, c = dask.delayed(assigned_by), dask.delayed(centers)
        parts = [dask.delayed(_final_chunk, nout=2)(b, a, c, off, self._moves_in(moves, i))
                 for i, (b, off) in enumerate(zip(self.blocks, self.offsets))]
        if persist:
            parts = list(dask.persist(*parts))
        labels = da.concatenate([da.from_delayed(p[0], shape=(s,), dtype=np.intp)
                                 for p, s in zip(parts, self.sizes)])
        # One correctly rounded sum of all the rows' terms, as in memory: the same bits
        # whatever the chunks (8 bytes a row travel to the client for it).
        inertia = math.fsum(np.concatenate(dask.compute(*[p[1] for p in parts])))
        if persist:
            labels = labels.persist()
        return labels, inertia

    def lloyd(self, centers: np.ndarray, max_iter: int, callback=None):
        """:func:`aeclust._lloyd.lloyd` over the chunks; same stopping rules and counts.

        Returns ``(centers, assigned_by, moves, n_iter, converged, n_empty_total)``: the
        final labels are the assignment to ``assigned_by`` with the re-seed ``moves``.
        """
        state = self.step(centers)
        labels_from = centers  # the centres whose assignment ``state`` describes
        previous = None
        n_empty_total = 0
        for it in range(1, max_iter + 1):
            centers, updated, n_empty, _ = self.update(state, labels_from)
            n_empty_total += n_empty
            if previous is not None and np.array_equal(centers, previous):
                return centers, centers, [], it, True, n_empty_total
            state = self.step(centers)
            if callback is not None:
                callback(it, centers)
            if state[2] == updated:
                return centers, centers, [], it, True, n_empty_total
            labels_from, previous = centers, centers
        # Not converged: the centres are brought in line with the last assignment and its re-seeds.
        centers, _, n_empty, moves = self.update(state, labels_from)
        return centers, labels_from, moves, max_iter, False, n_empty_total + n_empty


def fit_kmeans(estimator, X, *, chunk_rows: int | None = None, persist: bool = True, callback=None):
    """Fit an :class:`aeclust.KMeans` on a dask array; :meth:`KMeans.fit` calls this.

    The attributes are those of the in-memory fit, except that ``labels_`` is a
    dask array of ints (chunked like ``X``'s rows, persisted on the workers when
    ``persist``); ``np.asarray(km.labels_)`` or ``km.labels_.compute()`` brings it
    home. With the same initial centres (``init`` an array, or ``init="random"``
    with the same ``random_state``) the labels, centres and inertia match the
    in-memory fit (see the module notes for the one source of rare differences).

    Parameters
    ----------
    estimator : aeclust.KMeans
    X : dask array of shape (n_samples, n_features)
        Converted to float32 and split by rows (``chunk_rows`` per chunk if given).
    chunk_rows : int, optional
    persist : bool, default=True
        Keep the float32 chunks in the workers' memory for the iterations. With
        ``False`` every pass reads ``X`` from its source again (for data larger than
        the cluster's memory).
    callback : callable, optional
        ``callback(iteration, centers)`` after each assignment pass.
    """
    from .kmeans import ConvergenceWarning, KMeans

    dask, da = _dask()
    X = _as_dask_rows(X, chunk_rows, dtype=np.float32, default_rows=KMEANS_CHUNK_ROWS)
    n, d = int(X.shape[0]), int(X.shape[1])
    init = estimator.init
    parallel = isinstance(init, str) and init in ("k-means++", "k-means||")
    probe = KMeans(estimator.n_clusters, init="k-means++" if parallel else init,
                   n_init=estimator.n_init, max_iter=estimator.max_iter)
    given = probe._check_params(_Shape(n, d))
    if persist:
        X = X.persist()
    chunks = _Chunks(X)
    _check_finite(dask, chunks.blocks)
    k = estimator.n_clusters
    rng = np.random.default_rng(estimator.random_state)
    best = None
    for run in range(estimator.n_init):
        if given is not None:
            centers0 = given.copy()
        elif init == "random":
            idx = rng.choice(n, size=k, replace=False)  # the in-memory draw, row for row
            centers0 = np.asarray(dask.compute(X[np.sort(idx)])[0])[np.argsort(np.argsort(idx))]
        else:
            centers0 = kmeans_parallel_init(X, k, random_state=rng, _chunks=chunks)
        centers, assigned_by, moves, n_iter, converged, n_empty = chunks.lloyd(
            centers0, estimator.max_iter, callback)
        labels, inertia = chunks.final(assigned_by, centers, moves, persist)
        if estimator.verbose:
            print(f"k-means run {run + 1}/{estimator.n_init}: {n_iter} iterations, inertia {inertia:.6g}")
        if best is None or inertia < best[0]:
            best = (inertia, labels, centers, n_iter, converged, n_empty, centers0)
    (estimator.inertia_, estimator.labels_, estimator.cluster_centers_, estimator.n_iter_,
     estimator.converged_, estimator.n_empty_clusters_, estimator.init_centers_) = best
    estimator.n_features_in_ = d
    if not estimator.converged_:
        warnings.warn(
            f"k-means stopped at max_iter={estimator.max_iter} with assignments still changing; "
            f"raise max_iter to run it to convergence",
            ConvergenceWarning,
            stacklevel=3,
        )
    return estimator


class _Shape:
    """Stands in for an array where only ``.shape`` is read."""

    def __init__(self, n: int, d: int):
        self.shape = (n, d)


# ---------------------------------------------------------------------------------------
# k-means|| initialisation


@blas_single_threaded
def _min_sq_dist(x: np.ndarray, C: np.ndarray) -> np.ndarray:
    D = sq_distances_to(x, C, row_sq_norms(C))
    D += row_sq_norms(x)[:, None]
    return np.maximum(D.min(axis=1), 0.0).astype(np.float64)


def _kpar_cost(x: np.ndarray, C: np.ndarray) -> float:
    return float(_min_sq_dist(x, C).sum())


def _kpar_sample(x: np.ndarray, C: np.ndarray, phi: float, ell: float, seed: int, rnd: int, chunk: int):
    """Keep each point with probability ``min(1, ell * d^2 / phi)``; the draw depends only on
    (seed, round, chunk), so a recomputed task samples the same points."""
    p = np.minimum(1.0, ell * _min_sq_dist(x, C) / phi)
    u = np.random.default_rng([seed, rnd, chunk]).random(x.shape[0])
    return x[u < p].copy()


def _kpar_weights(x: np.ndarray, C: np.ndarray) -> np.ndarray:
    nearest, _ = _lloyd.assign(x, C)
    return np.bincount(nearest, minlength=C.shape[0]).astype(np.float64)


def _sum_all(*parts):
    return sum(parts[1:], parts[0])


def kmeans_parallel_init(X, n_clusters: int, *, random_state=None, rounds: int = 5,
                         oversampling: float | None = None, _chunks=None) -> np.ndarray:
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
    """
    dask, da = _dask()
    rng = np.random.default_rng(random_state)
    chunks = _chunks if _chunks is not None else _Chunks(_as_dask_rows(X, None, dtype=np.float32, default_rows=KMEANS_CHUNK_ROWS))
    n, k = chunks.n, int(n_clusters)
    ell = float(oversampling) if oversampling is not None else 2.0 * k
    seed = int(rng.integers(2**63 - 1))
    first = int(rng.integers(n))
    C = np.asarray(dask.compute(chunks.X[first : first + 1])[0], dtype=np.float32)
    for r in range(rounds):
        c = dask.delayed(C)
        phi = float(sum(dask.compute(*[dask.delayed(_kpar_cost)(b, c) for b in chunks.blocks])))
        if phi <= 0.0:
            break
        new = dask.compute(*[dask.delayed(_kpar_sample)(b, c, phi, ell, seed, r, i)
                             for i, b in enumerate(chunks.blocks)])
        C = np.concatenate([C, *new])
    if C.shape[0] < k:
        extra = rng.choice(n, size=k - C.shape[0], replace=False)
        C = np.concatenate([C, np.asarray(dask.compute(chunks.X[np.sort(extra)])[0])])
    c = dask.delayed(C)
    w = _reduce(dask, _sum_all, [dask.delayed(_kpar_weights)(b, c) for b in chunks.blocks])
    return _weighted_kmeans(C, w, k, rng)


@blas_single_threaded
def _weighted_kmeans(C: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator,
                     max_iter: int = 300) -> np.ndarray:
    """Greedy weighted k-means++ on the candidates, then weighted Lloyd."""
    m = C.shape[0]
    C64 = C.astype(np.float64)
    sq = np.einsum("ij,ij->i", C64, C64)

    def d2_to(rows):
        return np.maximum(sq[:, None] - 2.0 * C64 @ C64[rows].T + sq[rows][None, :], 0.0)

    n_trials = 2 + int(math.log(k))
    picks = [int(rng.choice(m, p=w / w.sum()))]
    closest = d2_to([picks[0]])[:, 0]
    for _ in range(1, k):
        total = float((w * closest).sum())
        if total <= 0:
            cand = rng.integers(m, size=n_trials)
        else:
            cand = np.minimum(np.searchsorted(np.cumsum(w * closest), rng.random(n_trials) * total), m - 1)
        trial = np.minimum(closest[:, None], d2_to(cand))
        pick = int(np.argmin((w[:, None] * trial).sum(axis=0)))
        picks.append(int(cand[pick]))
        closest = trial[:, pick]
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


# ---------------------------------------------------------------------------------------
# Exact metrics, blockwise over pairs of chunks


def _label_summary(labels: np.ndarray, x: np.ndarray) -> tuple:
    labels = np.asarray(labels)
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise InvalidInputError("labels contains NaN or infinite values")
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
    ``cols`` is None on the diagonal. The arithmetic is that of :func:`aeclust._pairwise.pair_stats`.
    """
    xa, sqa, ca = a
    diagonal = b is None
    xb, sqb, cb = a if diagonal else b
    D2 = (xa * np.float32(-2.0)) @ xb.T
    D2 += sqa[:, None]
    D2 += sqb[None, :]
    np.maximum(D2, 0.0, out=D2)
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
        onehot_b = np.zeros((xb.shape[0], k), dtype=np.float32)
        onehot_b[np.arange(xb.shape[0]), cb] = 1.0
        rows[0] = (D @ onehot_b).astype(np.float64)
        if not diagonal:
            onehot_a = np.zeros((xa.shape[0], k), dtype=np.float32)
            onehot_a[np.arange(xa.shape[0]), ca] = 1.0
            cols[0] = (onehot_a.T @ D).T.astype(np.float64)
    return tuple(rows), (None if diagonal else tuple(cols))


def _pick(block: tuple, side: int) -> tuple:
    return block[side]


def _merge_stats(*parts) -> tuple:
    S = None if parts[0][0] is None else parts[0][0].copy()
    lo = None if parts[0][1] is None else parts[0][1].copy()
    hi = None if parts[0][2] is None else parts[0][2].copy()
    for s, mn, mx in parts[1:]:
        if S is not None:
            S += s
        if lo is not None:
            np.minimum(lo, mn, out=lo)
            np.maximum(hi, mx, out=hi)
    return S, lo, hi


def _silhouette_values(S: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-row silhouette from per-cluster distance sums (as :mod:`aeclust.metrics` computes it)."""
    rows = np.arange(len(codes))
    own = counts[codes]
    a = S[rows, codes] / np.maximum(own - 1, 1)
    mean_other = S / counts
    mean_other[rows, codes] = np.inf
    b = mean_other.min(axis=1)
    denom = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(denom > 0, (b - a) / denom, 0.0)
    s[own == 1] = 0.0
    return s


def _finish_chunk(stats: tuple, prepared: tuple, counts: np.ndarray) -> tuple:
    """Silhouette sum of a chunk; its float32 Dunn extremes stay on the worker for the next step."""
    S, lo, hi = stats
    sil = float(_silhouette_values(S, prepared[2], counts).sum()) if S is not None else None
    return sil, lo, hi, float(prepared[1].max(initial=0.0))


def _chunk_extremes(fin: tuple) -> tuple:
    _, lo, hi, big = fin
    return (float(lo.min()) if lo is not None else None, float(hi.max()) if hi is not None else None, big, fin[0])


def _candidates(fin: tuple, offset: int, lo_cut: float, hi_cut: float) -> tuple:
    _, lo, hi, _ = fin
    return np.flatnonzero(lo <= lo_cut) + offset, np.flatnonzero(hi >= hi_cut) + offset


def _rows_and_codes(x: np.ndarray, prepared: tuple, local: np.ndarray) -> tuple:
    return x[local].astype(np.float64), prepared[2][local]


@blas_single_threaded
def _remeasure(x: np.ndarray, prepared: tuple, offset: int, cand: np.ndarray, cand_codes: np.ndarray,
               same_cluster: bool) -> tuple:
    """Float64 extreme between the candidate rows and one chunk: (value, candidate, row, that row)."""
    X = x.astype(np.float64)
    codes = prepared[2]
    sq = np.einsum("ij,ij->i", X, X)
    csq = np.einsum("ij,ij->i", cand, cand)
    best, where = (-np.inf if same_cluster else np.inf), None
    for s in range(0, len(cand), 256):
        r = slice(s, s + 256)
        D2 = csq[r, None] - 2.0 * (cand[r] @ X.T) + sq[None, :]
        same = cand_codes[r, None] == codes[None, :]
        if same_cluster:
            D2[~same] = -np.inf
            flat = int(np.argmax(D2))
            better = D2.flat[flat] > best
        else:
            D2[same] = np.inf
            flat = int(np.argmin(D2))
            better = D2.flat[flat] < best
        if better:
            best, where = D2.flat[flat], (s + flat // D2.shape[1], flat % D2.shape[1])
    if where is None:
        return best, -1, -1, None
    return best, where[0], where[1] + offset, X[where[1]].copy()


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
            if labels.ndim != 1:
                raise InvalidInputError(f"labels must be 1-D, got shape {labels.shape}")
        else:
            labels = np.asarray(labels)
            if labels.ndim != 1:
                raise InvalidInputError(f"labels must be 1-D, got shape {labels.shape}")
        if labels.shape[0] != n:
            raise InvalidInputError(
                f"labels has length {labels.shape[0]} but X has {n} samples; they must match"
            )
        labels = da.from_array(labels, chunks=(X.chunks[0],)) if not is_dask_array(labels) \
            else labels.rechunk((X.chunks[0],))
        self.X = X
        self.n = n
        self.x_blocks = list(X.to_delayed().ravel())
        self.l_blocks = list(labels.to_delayed().ravel())
        self.offsets = _offsets(X.chunks)
        pairs, total, bad = _reduce(dask, _combine_summary, [
            dask.delayed(_label_summary)(lb, xb) for lb, xb in zip(self.l_blocks, self.x_blocks)
        ])
        if bad:
            raise InvalidInputError(f"X contains {bad} NaN or infinite value(s); remove or impute them first")
        uniques = np.unique(np.concatenate([u for u, _ in pairs]))
        counts = np.zeros(len(uniques), dtype=np.int64)
        for u, c in pairs:
            counts[np.searchsorted(uniques, u)] += c
        k = len(uniques)
        if k < 2:
            raise InvalidInputError(f"labels name {k} cluster(s); these metrics need at least 2")
        if max_clusters_rel is not None and k > n + max_clusters_rel:
            raise InvalidInputError(
                f"labels name {k} clusters for {n} samples; the silhouette needs "
                f"between 2 and n_samples - 1 clusters"
            )
        self.k, self.counts, self.uniques = k, counts, uniques
        mean = total / n
        u = dask.delayed(uniques)
        m = dask.delayed(mean)
        self.prepared = list(dask.persist(*[
            dask.delayed(_centre_chunk)(xb, lb, m, u) for xb, lb in zip(self.x_blocks, self.l_blocks)
        ]))
        self.d = int(X.shape[1])

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
        return [dask.delayed(_finish_chunk)(_tree(dask, _merge_stats, parts), p, counts)
                for parts, p in zip(contributions, self.prepared)]

    def dunn_parts(self, finished: list, summaries: list) -> tuple[float, float]:
        """Exact (smallest inter-cluster distance, largest diameter) from the float32 pass."""
        dask = self.dask
        min32 = min(s[0] for s in summaries)
        max32 = max(s[1] for s in summaries)
        largest = max(s[2] for s in summaries)
        tol = 2.0 * sq_distance_error_bound(np.empty((0, self.d), np.float32),
                                             np.array([largest], dtype=np.float32))
        found = dask.compute(*[dask.delayed(_candidates)(f, off, min32 + tol, max32 - tol)
                               for f, off in zip(finished, self.offsets)])
        d_min = self._exact(np.concatenate([f[0] for f in found]), same_cluster=False)
        d_max = self._exact(np.concatenate([f[1] for f in found]), same_cluster=True)
        return d_min, d_max

    def _exact(self, rows: np.ndarray, *, same_cluster: bool) -> float:
        dask = self.dask
        chunk_ids = np.searchsorted(self.offsets, rows, side="right") - 1
        got = dask.compute(*[
            dask.delayed(_rows_and_codes)(self.x_blocks[i], self.prepared[i], rows[chunk_ids == i] - self.offsets[i])
            for i in np.unique(chunk_ids)
        ])
        cand = np.concatenate([g[0] for g in got])
        cand_codes = np.concatenate([g[1] for g in got])
        c, cc = dask.delayed(cand), dask.delayed(cand_codes)
        results = dask.compute(*[
            dask.delayed(_remeasure)(xb, p, off, c, cc, same_cluster)
            for xb, p, off in zip(self.x_blocks, self.prepared, self.offsets)
        ])
        results = [r for r in results if r[3] is not None]
        pick = max(results, key=lambda r: r[0]) if same_cluster else min(results, key=lambda r: r[0])
        # The winning pair once more, by direct differences: no cancellation at all.
        return float(np.sqrt(np.sum((cand[pick[1]] - pick[3]) ** 2)))


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
    return ClusterQuality(
        silhouette=sil,
        dunn=_dunn(d_min, d_max),
        min_intercluster_distance=d_min,
        max_cluster_diameter=d_max,
        n_samples=data.n,
        n_clusters=data.k,
    )


def silhouette_score(X, labels, *, chunk_rows: int | None = None) -> float:
    """Exact mean silhouette, blockwise on the workers (see :func:`cluster_quality`)."""
    return _quality(X, labels, chunk_rows, sil=True, dunn=False)[1]


def dunn_index(X, labels, *, chunk_rows: int | None = None) -> float:
    """Exact Dunn's index, blockwise on the workers (see :func:`cluster_quality`)."""
    _, _, d_min, d_max = _quality(X, labels, chunk_rows, sil=False, dunn=True)
    return _dunn(d_min, d_max)


# ---------------------------------------------------------------------------------------
# Sampled silhouette


@dataclass(frozen=True)
class SilhouetteEstimate:
    """An estimate of the mean silhouette from a random sample of points (not the exact value).

    ``estimate`` is the mean of the exact silhouettes of ``n_sampled`` points
    drawn without replacement; ``[low, high]`` is the normal-approximation
    confidence interval for the mean over all ``n_samples`` points at level
    ``confidence`` (with the finite-population correction; it has zero width when
    every point is sampled).
    """

    estimate: float
    low: float
    high: float
    std_error: float
    confidence: float
    n_sampled: int
    n_samples: int
    n_clusters: int

    def to_dict(self) -> dict:
        return asdict(self)


@blas_single_threaded
def _sample_sums(prepared: tuple, offset: int, sample: np.ndarray, sample_rows: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster sums of the distances from the sampled points to the points of one chunk."""
    xc, sq, codes = prepared
    ssq = row_sq_norms(sample)
    D2 = (sample * np.float32(-2.0)) @ xc.T
    D2 += ssq[:, None]
    D2 += sq[None, :]
    np.maximum(D2, 0.0, out=D2)
    inside = (sample_rows >= offset) & (sample_rows < offset + xc.shape[0])
    D2[np.flatnonzero(inside), sample_rows[inside] - offset] = 0.0  # a point's distance to itself
    D = np.sqrt(D2, out=D2)
    onehot = np.zeros((xc.shape[0], k), dtype=np.float32)
    onehot[np.arange(xc.shape[0]), codes] = 1.0
    return (D @ onehot).astype(np.float64)


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
    chunk_ids = np.searchsorted(data.offsets, rows, side="right") - 1
    got = dask.compute(*[
        dask.delayed(_sample_rows)(data.prepared[i], rows[chunk_ids == i] - data.offsets[i])
        for i in np.unique(chunk_ids)
    ])
    sample = np.concatenate([g[0] for g in got])
    codes = np.concatenate([g[1] for g in got])
    s, r = dask.delayed(sample), dask.delayed(rows)
    S = _reduce(dask, _sum_all, [
        dask.delayed(_sample_sums)(p, off, s, r, data.k) for p, off in zip(data.prepared, data.offsets)
    ])
    values = _silhouette_values(S, codes, data.counts)
    est = float(values.mean())
    sd = float(values.std(ddof=1)) if m > 1 else 0.0
    se = sd / math.sqrt(m) * math.sqrt(max(0.0, (n - m) / max(n - 1, 1)))
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    return SilhouetteEstimate(estimate=est, low=est - z * se, high=est + z * se, std_error=se,
                              confidence=float(confidence), n_sampled=m, n_samples=n, n_clusters=data.k)


# ---------------------------------------------------------------------------------------
# The CLI's entry point


def cluster_on_scheduler(X, n_clusters: int, seed, scheduler: str, chunk_rows: int | None = None, *,
                         init: str = "random", n_init: int = 1, max_iter: int = 1000,
                         metrics: str = "exact", n_sampled: int = 10000,
                         metrics_chunk_rows: int | None = None, timings=None):
    """K-means and the metrics of ``X`` on a Dask scheduler: what ``aeclust cluster --scheduler`` runs.

    Parameters
    ----------
    X : numpy or dask array of shape (n_samples, n_features)
    n_clusters, seed, init, n_init, max_iter
        As for :class:`aeclust.KMeans` (``seed`` is its ``random_state``).
    scheduler : str
        ``"local:N"`` or ``"tcp://host:port"`` (see :func:`connect`).
    chunk_rows : int, optional
        Rows per k-means chunk (default: the dask array's own chunks, or 16384 rows).
    metrics_chunk_rows : int, optional
        Rows per chunk of the pairwise metrics (default 2048: 16 MiB blocks).
    timings : callable, optional
        ``timings(name)`` returns a context manager; the k-means and metrics
        steps run inside ``timings("kmeans")`` and ``timings("metrics")``.
    metrics : {"exact", "sampled"}
        ``"exact"``: :func:`cluster_quality` (O(n^2) work). ``"sampled"``:
        :func:`sampled_silhouette` over ``n_sampled`` points, and no Dunn index.

    Returns
    -------
    (KMeans, ClusterQuality) for ``metrics="exact"``, or (KMeans, SilhouetteEstimate)
    for ``"sampled"``. The estimator's ``labels_`` is a numpy array here (the
    client is closed on return).
    """
    from .kmeans import KMeans

    if metrics not in ("exact", "sampled"):
        raise InvalidInputError(f"metrics must be 'exact' or 'sampled', got {metrics!r}")
    with session(scheduler):
        _, da = _dask()
        if not is_dask_array(X):
            X = da.from_array(np.asarray(X), chunks=(chunk_rows or KMEANS_CHUNK_ROWS, -1))
            # The array travels once, inside the graph: the scheduler keeps it, so the
            # chunks of a worker that dies can be rebuilt. Dask warns about large graphs.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                X = X.persist()
        step = timings if timings is not None else (lambda name: contextlib.nullcontext())
        km = KMeans(n_clusters, init=init, n_init=n_init, max_iter=max_iter, random_state=seed)
        with step("kmeans"):
            fit_kmeans(km, X, chunk_rows=chunk_rows)
        labels = km.labels_
        with step("metrics"):
            if metrics == "exact":
                quality = cluster_quality(X, labels, chunk_rows=metrics_chunk_rows)
            else:
                quality = sampled_silhouette(X, labels, n_sampled=n_sampled, random_state=seed,
                                             chunk_rows=metrics_chunk_rows)
        km.labels_ = np.asarray(labels.compute())
    return km, quality
