"""The one chunked distance kernel that k-means and the metrics share.

Squared Euclidean distances are computed as ``|x|^2 - 2 x.y + |y|^2``: the
cross term is a float32 matrix product (the fast path on every BLAS), and the
squared norms are computed in float64 and rounded once. The metrics never hold
more than a ``tile x tile`` block of distances. A given distance matrix
(metric="precomputed") is read in blocks of rows by :func:`precomputed_stats`,
which gives the same per-point statistics.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

#: Rows (and columns) per block of the pairwise pass. A 1024 x 1024 float32 block
#: is 4 MiB: large enough for an efficient matrix product, small enough to stay
#: in cache for the element-wise passes that follow it.
DEFAULT_TILE = 1024

_EPS32 = float(np.finfo(np.float32).eps)


def row_sq_norms(X: np.ndarray) -> np.ndarray:
    """Squared Euclidean norm of each row, accumulated in float64, returned as float32."""
    return np.einsum("ij,ij->i", X, X, dtype=np.float64).astype(np.float32)


def sq_distance_error_bound(n_features: int, largest_sq_norm: float) -> float:
    """An upper bound on the absolute error of a float32 squared distance from this kernel.

    The dot product of two d-vectors in float32 errs by at most about
    ``d * eps * |x| |y|`` (the classic bound; blocked BLAS sums do better), and
    the norms and the two additions add a few ``eps * (|x|^2 + |y|^2)`` more.
    Bounding ``|x| |y|`` by the largest squared norm of the data
    (``largest_sq_norm``) gives one number for all pairs.
    """
    return (n_features + 8) * _EPS32 * 2.0 * float(largest_sq_norm)


def sq_distances_to(X: np.ndarray, centers: np.ndarray, center_sq: np.ndarray) -> np.ndarray:
    """``|c|^2 - 2 x.c`` for every row of ``X`` and every centre: the squared distance
    less ``|x|^2``, which does not change which centre is nearest."""
    D = X @ centers.T
    D *= -2.0
    D += center_sq
    return D


def sq_distance_block(a_m2: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Float32 squared distances between the rows of ``a`` and of ``b``, clipped at 0.

    ``a_m2`` is ``a * -2`` (exact: a power of two), so that the expansion
    ``|a|^2 - 2 a.b + |b|^2`` costs one matrix product and two broadcast additions;
    ``a_sq`` and ``b_sq`` are the rows' squared norms (:func:`row_sq_norms`).
    The in-memory pass and the Dask tasks both take their blocks from here.
    """
    D2 = a_m2 @ b.T
    D2 += a_sq[:, None]
    D2 += b_sq[None, :]
    np.maximum(D2, 0.0, out=D2)
    return D2


def one_hot(codes: np.ndarray, n_codes: int, dtype) -> np.ndarray:
    """An ``(len(codes), n_codes)`` matrix with a single 1 per row, at column ``codes[i]``.

    A product with it sums rows (or columns) per cluster, which BLAS does faster
    than a loop over the clusters.
    """
    out = np.zeros((len(codes), n_codes), dtype=dtype)
    out[np.arange(len(codes)), codes] = 1.0
    return out


def sq_norms64(X: np.ndarray) -> np.ndarray:
    """Squared norm of each row of a float64 array, in float64."""
    return np.einsum("ij,ij->i", X, X)


def sq_distance_block64(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Float64 squared distances between the rows of ``a`` and of ``b`` by the expansion
    (``a_sq`` and ``b_sq`` their :func:`sq_norms64`); not clipped, for choosing a pair only."""
    return a_sq[:, None] - 2.0 * (a @ b.T) + b_sq[None, :]


def pick_extreme(D2: np.ndarray, a_codes: np.ndarray, b_codes: np.ndarray,
                 *, same_cluster: bool) -> tuple[float, int, int]:
    """The largest same-cluster, or smallest other-cluster, entry of ``D2`` (rows coded
    ``a_codes``, columns ``b_codes``) and its place ``(value, i, j)``: the first such entry
    in row-major order; ``-inf`` (``inf``) when none qualifies. ``D2`` is overwritten."""
    same = a_codes[:, None] == b_codes[None, :]
    if same_cluster:
        D2[~same] = -np.inf
        flat = int(np.argmax(D2))
    else:
        D2[same] = np.inf
        flat = int(np.argmin(D2))
    return D2.flat[flat], flat // D2.shape[1], flat % D2.shape[1]


def extreme_sq_distance64(a: np.ndarray, a_sq: np.ndarray, a_codes: np.ndarray,
                          b: np.ndarray, b_sq: np.ndarray, b_codes: np.ndarray,
                          *, same_cluster: bool) -> tuple[float, int, int]:
    """The largest same-cluster, or smallest other-cluster, squared distance between
    the rows of ``a`` and of ``b``, by the float64 expansion.

    ``a`` and ``b`` are float64, ``a_sq`` and ``b_sq`` their :func:`sq_norms64`.
    Returns ``(value, i, j)`` for the first such pair in row-major order (row ``i``
    of ``a``, row ``j`` of ``b``); the value is ``-inf`` (``inf``) when no pair
    qualifies. This is Dunn's float64 re-measurement, in memory and on Dask alike;
    the winning pair is then measured by :func:`distance64`.
    """
    return pick_extreme(sq_distance_block64(a, a_sq, b, b_sq), a_codes, b_codes, same_cluster=same_cluster)


def sq_distance64(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Euclidean distance of two float64 rows by direct differences: no cancellation at all."""
    return float(np.sum((a - b) ** 2))


def distance64(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two float64 rows by direct differences: no cancellation at all."""
    return float(np.sqrt(np.sum((a - b) ** 2)))


@dataclass
class PairStats:
    """Per-point results of one pass over all pairs (in the caller's sorted order).

    Attributes
    ----------
    sums : ndarray of shape (n, k), float64, or None
        Sum of the Euclidean distances from each point to the points of each cluster
        (of the squared distances with :func:`pair_stats`'s ``squared``; of the given
        distances from :func:`precomputed_stats`).
    min_inter_sq : ndarray of shape (n,), float32, or None
        Smallest squared distance from each point to a point of another cluster (float32
        estimate); from :func:`precomputed_stats`, the smallest given distance (float64, exact).
    max_intra_sq : ndarray of shape (n,), float32, or None
        Largest squared distance from each point to another point of its own cluster
        (float32 estimate; 0 for a point alone); from :func:`precomputed_stats`, the largest
        given distance (float64, exact).
    """

    sums: np.ndarray | None
    min_inter_sq: np.ndarray | None
    max_intra_sq: np.ndarray | None


#: Environment variable that sets the number of worker threads (default: one per CPU).
THREADS_ENV = "AECLUST_NUM_THREADS"


def cpu_count() -> int:
    """The number of worker threads: ``$AECLUST_NUM_THREADS`` if set, else the CPUs this process may run on.

    The count changes only the speed: every result is the same bits whatever it is.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            from .errors import InvalidInputError

            raise InvalidInputError(f"{THREADS_ENV} must be a positive whole number, got {value!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# One BLAS thread, process-wide, while any kernel runs. OpenBLAS splits some
# products differently by thread count, and the split changes the last bits
# (a float32 1024 x 1000 by 1000 x 10 product differs between 1 and 2 threads
# here), so a result would depend on how many CPUs the process was given. The
# limit is process-wide in BLAS itself, so it is reference-counted: it holds
# from the first kernel that enters to the last that leaves, whichever threads
# (ours, or a Dask worker's) they run on.
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limits = None


@contextlib.contextmanager
def single_threaded_blas():
    """Run the enclosed BLAS calls on one BLAS thread (see the note above); reentrant."""
    global _blas_users, _blas_limits
    with _blas_lock:
        if _blas_users == 0:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - threadpoolctl is a dependency
                _blas_limits = None
            else:
                _blas_limits = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limits is not None:
                _blas_limits.restore_original_limits()
                _blas_limits = None


def blas_single_threaded(fn):
    """Decorator: ``fn`` runs inside :func:`single_threaded_blas` (for Dask tasks and one-off products)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return fn(*args, **kwargs)

    return wrapper


#: Called before each task a :class:`Workers` runs; tests set it to inject random
#: delays, which must not change any result.
_task_hook = None


class Workers:
    """Threads for independent blocks of work, with BLAS on one thread.

    Threads that each call BLAS on their own blocks must not each start a full
    BLAS thread pool: that would put ``threads x cores`` threads on ``cores``
    cores. Inside ``with Workers():`` BLAS runs on one thread (also with a single
    worker, so that the bits do not depend on the thread count), and :meth:`map`
    shares the blocks out. Callers reduce the results of :meth:`map` in the order
    of the items, never in the order the threads finish.
    """

    def __init__(self, n_threads: int | None = None):
        self.n_threads = cpu_count() if n_threads is None else max(1, int(n_threads))
        self._pool = None
        self._blas = None

    def __enter__(self) -> "Workers":
        self._blas = single_threaded_blas()
        self._blas.__enter__()
        if self.n_threads > 1:
            self._pool = ThreadPoolExecutor(max_workers=self.n_threads)
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._blas is not None:
            self._blas.__exit__(None, None, None)
            self._blas = None

    def map(self, fn, items) -> list:
        """``[fn(item) for item in items]``, in parallel when there are threads; in the items' order."""
        items = list(items)
        hook = _task_hook
        if hook is not None:
            inner = fn

            def fn(item):
                hook()
                return inner(item)

        if self._pool is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))


def _cluster_edges(codes: np.ndarray, starting: np.ndarray, lo: int, hi: int) -> tuple[int, np.ndarray]:
    """First cluster in the sorted rows lo:hi, and the offsets (relative to lo) where its clusters start and end."""
    c0, c1 = int(codes[lo]), int(codes[hi - 1])
    return c0, np.clip(starting[c0 : c1 + 2], lo, hi) - lo


def _extremes_along_rows(D2: np.ndarray, starting: np.ndarray, r_first: int, r_edges: np.ndarray,
                         j0: int, j1: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a block: smallest squared distance to another cluster, largest to its own.

    The block's columns are the sorted rows ``j0:j1``; ``starting`` gives where each
    cluster starts among them, so that each cluster is a contiguous band.
    """
    lo = np.full(D2.shape[0], np.inf, dtype=np.float32)
    hi = np.zeros(D2.shape[0], dtype=np.float32)
    for r in range(len(r_edges) - 1):
        rs, re = r_edges[r], r_edges[r + 1]
        c = r_first + r
        cs = min(max(starting[c], j0), j1) - j0
        ce = min(max(starting[c + 1], j0), j1) - j0
        band = D2[rs:re]
        if ce > cs:
            band[:, cs:ce].max(axis=1, out=hi[rs:re])
        if cs > 0:
            band[:, :cs].min(axis=1, out=lo[rs:re])
        if ce < D2.shape[1]:
            np.minimum(lo[rs:re], band[:, ce:].min(axis=1), out=lo[rs:re])
    return lo, hi


def _band_sums(D: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Column sums of each band of rows ``edges[b]:edges[b + 1]``, shape ``(bands, columns)``.

    The same sums as ``np.add.reduceat(D, edges[:-1], axis=0)``, which numpy runs
    as a strided loop: 3.6 ms for a 1024 x 1024 block here, against 0.08 ms for
    these contiguous ``sum(axis=0)`` (each column summed down its rows in order).
    """
    out = np.empty((len(edges) - 1, D.shape[1]), dtype=D.dtype)
    for b in range(len(edges) - 1):
        D[edges[b] : edges[b + 1]].sum(axis=0, out=out[b])
    return out


class _PairResults:
    """The per-point results of :func:`pair_stats`, filled in by blocks that finish in any order.

    Each row range has a lock, held only while a block's finished contributions
    are added in. A row range's distance sums receive one partial sum from each
    block it takes part in, added in a fixed order (by the other block's index): a
    partial that arrives early waits until those before it are in.
    """

    def __init__(self, n: int, n_clusters: int, n_blocks: int, tile: int, *, sums: bool, extremes: bool):
        self.tile = tile
        self.S = np.zeros((n, n_clusters), dtype=np.float64) if sums else None
        self.min_inter = np.full(n, np.inf, dtype=np.float32) if extremes else None
        self.max_intra = np.zeros(n, dtype=np.float32) if extremes else None
        self.locks = [threading.Lock() for _ in range(n_blocks)]
        # Per row block: partial sums that arrived before their turn, keyed by the other
        # block's index, and the index whose partial is to be added next.
        self.waiting: list[dict] = [{} for _ in range(n_blocks)]
        self.turn = [0] * n_blocks

    def add(self, b: int, other: int, first_cluster: int, part, extremes) -> None:
        """Block ``other``'s contributions to row block ``b``: partial sums for the clusters
        from ``first_cluster`` on (or None), and (min_inter, max_intra) (or None)."""
        with self.locks[b]:
            lo = b * self.tile
            if part is not None:
                self.waiting[b][other] = (first_cluster, part)
                while self.turn[b] in self.waiting[b]:
                    c0, p = self.waiting[b].pop(self.turn[b])
                    self.S[lo : lo + p.shape[0], c0 : c0 + p.shape[1]] += p
                    self.turn[b] += 1
            if extremes is not None:
                hi = lo + len(extremes[0])
                np.minimum(self.min_inter[lo:hi], extremes[0], out=self.min_inter[lo:hi])
                np.maximum(self.max_intra[lo:hi], extremes[1], out=self.max_intra[lo:hi])

    def all_sums_added(self) -> bool:
        return all(t == len(self.turn) for t in self.turn)


def pair_stats(
    X: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    *,
    sums: bool = True,
    extremes: bool = True,
    tile: int = DEFAULT_TILE,
    progress=None,
    workers: int | None = None,
    duplicates: np.ndarray | None = None,
    squared: bool = False,
    zero_rows: np.ndarray | None = None,
) -> PairStats:
    """Visit every unordered pair of points once and collect per-point statistics.

    ``X`` must be float32, C-contiguous and sorted by ``codes`` (cluster codes
    0..k-1, every cluster non-empty), so that each cluster is one contiguous run
    of rows: then the part of a block that belongs to one cluster, on either
    axis, is a contiguous range, and every per-cluster quantity is a reduction
    over a slice. Each block ``(i, j)`` with ``j >= i`` serves both its rows and
    its columns, which halves the matrix products.

    Blocks are shared out to ``workers`` threads (default: one per CPU), each
    running single-threaded BLAS, so that the element-wise passes run in
    parallel as well as the products.

    Determinism. The partial distance sums are added in a fixed order whatever
    order the threads finish in (see :class:`_PairResults`), and the minima and
    maxima are exact in any order. So the results are the same bits for any
    number of workers and any schedule; they do depend on ``tile``, which decides
    how the float32 partial sums are grouped (a change in the last bits, about
    1e-7 relative).

    ``progress`` is an optional callable that receives the number of pairs done.

    ``duplicates`` (optional) gives each row an id shared only by identical rows.
    Their distance is then exactly 0; the expansion would leave a residue of
    about ``eps * |x|^2``, whose square root is far from 0 next to small distances.

    ``squared`` sums the squared distances instead of the distances: the
    "sqeuclidean" metric, and "cosine", which is half the squared distance
    between the rows scaled to unit length.

    ``zero_rows`` (optional, a boolean mask) marks rows at squared distance exactly 2
    from every other row (cosine distance 1): the zero vectors under the cosine
    metric, whose unit form scikit-learn takes as the zero vector. It is applied
    after ``duplicates``, so two zero rows are at distance 1 from each other too.
    """
    n = X.shape[0]
    sq = row_sq_norms(X)
    X_m2 = X * np.float32(-2.0)  # folds the -2 of the expansion into the product
    # Cluster c occupies rows starting[c]:starting[c + 1].
    starting = np.searchsorted(codes, np.arange(n_clusters + 1), side="left")
    blocks = list(range(0, n, tile))
    tasks = [(i0, j0) for a, i0 in enumerate(blocks) for j0 in blocks[a:]]
    out = _PairResults(n, n_clusters, len(blocks), tile, sums=sums, extremes=extremes)
    progress_lock = threading.Lock()

    def visit(i0: int, j0: int) -> None:
        i1, j1 = min(i0 + tile, n), min(j0 + tile, n)
        diagonal = i0 == j0
        D2 = sq_distance_block(X_m2[i0:i1], sq[i0:i1], X[j0:j1], sq[j0:j1])
        if duplicates is not None:
            D2[duplicates[i0:i1, None] == duplicates[None, j0:j1]] = 0.0
        if zero_rows is not None:
            D2[zero_rows[i0:i1]] = 2.0
            D2[:, zero_rows[j0:j1]] = 2.0
        if diagonal:
            np.fill_diagonal(D2, 0.0)  # a point's distance to itself is exactly 0
        r_first, r_edges = _cluster_edges(codes, starting, i0, i1)
        c_first, c_edges = _cluster_edges(codes, starting, j0, j1)
        rows = cols = row_sums = col_sums = None
        if extremes:
            rows = _extremes_along_rows(D2, starting, r_first, r_edges, j0, j1)
            if not diagonal:  # D2.T is D2 seen from the columns: the same reductions, along axis 0
                cols = _extremes_along_rows(D2.T, starting, c_first, c_edges, i0, i1)
        if sums:
            D = D2 if squared else np.sqrt(D2, out=D2)
            # Per-cluster sums are sums over contiguous slices: a reduceat along the rows,
            # contiguous column sums per band of rows.
            row_sums = np.add.reduceat(D, c_edges[:-1], axis=1)
            col_sums = None if diagonal else _band_sums(D, r_edges).T
        out.add(i0 // tile, j0 // tile, c_first, row_sums, rows)
        if not diagonal:
            out.add(j0 // tile, i0 // tile, r_first, col_sums, cols)
        if progress is not None:
            with progress_lock:
                progress((i1 - i0) * (j1 - j0) if not diagonal else (i1 - i0) * (i1 - i0 + 1) // 2)

    with Workers(min(workers or cpu_count(), len(tasks))) as pool:
        pool.map(lambda task: visit(*task), tasks)
    assert not sums or out.all_sums_added(), "a block's partial sums were not all added"
    return PairStats(out.S, out.min_inter, out.max_intra)


#: Entries of a precomputed distance matrix read per task (32 MiB as float64).
_PRECOMPUTED_BLOCK = 1 << 22


def precomputed_stats(
    D: np.ndarray,
    order: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    *,
    sums: bool = True,
    extremes: bool = True,
    tile: int = DEFAULT_TILE,
    progress=None,
    workers: int | None = None,
) -> PairStats:
    """:func:`pair_stats` for a given n x n distance matrix ``D`` (any numeric dtype, any layout).

    ``order`` sorts the samples by cluster, ``codes`` are the sorted samples' clusters;
    the results are in that sorted order, as :func:`pair_stats`'s. Rows are read in
    blocks of at most ``tile`` rows (fewer when n is large: a block holds at most
    4 Mi entries), converted to float64 with their columns in sorted order, so that
    each cluster is a contiguous slice. Row ``i`` gives ``i``'s distances, as in
    scikit-learn (which does not require ``D`` to be symmetric); its sums include
    the diagonal entry, as scikit-learn's do, and its extremes leave it out.

    Exact and deterministic: every value is read as given and summed in float64,
    each row by one task in column order, so the results do not depend on
    ``tile``, on the number of threads or on their schedule.
    """
    n = len(order)
    starting = np.searchsorted(codes, np.arange(n_clusters + 1), side="left")
    step = max(1, min(tile, _PRECOMPUTED_BLOCK // n))
    S = np.zeros((n, n_clusters), dtype=np.float64) if sums else None
    lo = np.full(n, np.inf) if extremes else None
    hi = np.zeros(n) if extremes else None
    progress_lock = threading.Lock()

    def visit(r0: int) -> None:
        r1 = min(r0 + step, n)
        B = np.asarray(D[order[r0:r1]], dtype=np.float64)[:, order]
        if sums:
            S[r0:r1] = np.add.reduceat(B, starting[:-1], axis=1)
        if extremes:
            B[np.arange(r1 - r0), np.arange(r0, r1)] = 0.0  # a point's own entry is no pair
            r_first, r_edges = _cluster_edges(codes, starting, r0, r1)
            for r in range(len(r_edges) - 1):
                rs, re = r0 + r_edges[r], r0 + r_edges[r + 1]
                cs, ce = starting[r_first + r], starting[r_first + r + 1]
                band = B[rs - r0 : re - r0]
                band[:, cs:ce].max(axis=1, out=hi[rs:re])
                if cs > 0:
                    band[:, :cs].min(axis=1, out=lo[rs:re])
                if ce < n:
                    np.minimum(lo[rs:re], band[:, ce:].min(axis=1), out=lo[rs:re])
        if progress is not None:
            with progress_lock:
                progress((r1 - r0) * n)

    with Workers(min(workers or cpu_count(), -(-n // step))) as pool:
        pool.map(visit, range(0, n, step))
    return PairStats(S, lo, hi)
