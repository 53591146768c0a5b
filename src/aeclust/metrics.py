"""Internal cluster-quality metrics, exact and from scratch: silhouette and Dunn's index.

Drop-ins for ``sklearn.metrics.silhouette_score`` and ``silhouette_samples``:
the same arguments (``metric`` "euclidean", "sqeuclidean", "cosine" or
"precomputed"; ``sample_size`` and ``random_state``) and the same inputs
(lists, integers, any sortable labels), plus Dunn's index in the same metrics.

Both metrics read the same n^2 pairwise distances, so :func:`cluster_quality`
computes them in one fused pass (the CLI uses it); :func:`silhouette_score` and
:func:`dunn_index` are that pass with half of the work switched off. Memory is
O(tile x n_clusters + n x n_clusters): never an n x n matrix (with
"precomputed", the given matrix is read in blocks of rows).

Exactness. Distances come from float32 matrix products, and sums are kept in
float64, which puts the silhouette within about 1e-6 of a float64 computation.
The cosine distance is half the squared Euclidean distance between the rows
scaled to unit length, so it takes the same products. Dunn's index depends on
just two pairs of points, so it is made exact: the float32 pass finds every
point that could own the closest different-cluster pair or the farthest
same-cluster pair (within a proven bound on the float32 error), and those few
points are measured again in float64. A precomputed matrix is read as given and
summed in float64.

Determinism. The results are the same bits for any number of threads and any
thread schedule (partial sums are added in a fixed order, BLAS runs on one
thread); they depend on ``tile``, which groups the float32 partial sums, by
about 1e-7 relative in the silhouette.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np

from . import _pairwise
from ._validation import (check_cluster_labels, check_distance_matrix, check_features, check_sample_size,
                          encode_labels)
from .errors import InvalidInputError

#: Rows per chunk where the whole data is read once in pieces (centring, hashing).
_CHUNK_ROWS = 512

#: The metrics computed here (see :func:`check_metric`).
METRICS = ("euclidean", "sqeuclidean", "cosine", "precomputed")
_ALIASES = {"l2": "euclidean"}  # scikit-learn's

__all__ = ["silhouette_score", "silhouette_samples", "dunn_index", "cluster_quality", "ClusterQuality",
           "SilhouetteEstimate", "METRICS"]


class _Record:
    """A frozen record of results; :meth:`to_dict` gives its fields, in order, ready for JSON."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClusterQuality(_Record):
    """Silhouette and Dunn's index of one clustering, with the parts Dunn is made of (in the metric's units)."""

    silhouette: float
    dunn: float
    min_intercluster_distance: float
    max_cluster_diameter: float
    n_samples: int
    n_clusters: int

    @classmethod
    def from_parts(cls, silhouette: float, d_min: float, d_max: float, n_samples: int,
                   n_clusters: int) -> "ClusterQuality":
        """The record, with Dunn's index computed from its parts (:func:`dunn_from_parts`)."""
        return cls(silhouette, dunn_from_parts(d_min, d_max), d_min, d_max, n_samples, n_clusters)


@dataclass(frozen=True)
class SilhouetteEstimate(_Record):
    """An estimate of the mean silhouette from a random sample of points (not the exact value).

    ``estimate`` is the mean of the exact silhouettes of ``n_sampled`` points
    drawn without replacement; ``[low, high]`` is the normal-approximation
    confidence interval for the mean over all ``n_samples`` points at level
    ``confidence`` (with the finite-population correction; it has zero width when
    every point is sampled). :func:`aeclust.distributed.sampled_silhouette` gives one.
    """

    estimate: float
    low: float
    high: float
    std_error: float
    confidence: float
    n_sampled: int
    n_samples: int
    n_clusters: int


def check_metric(metric) -> str:
    """The metric's name (``"l2"`` read as ``"euclidean"``), or an error naming the supported ones."""
    name = _ALIASES.get(metric, metric) if isinstance(metric, str) else None
    if name not in METRICS:
        raise InvalidInputError(
            f"metric={metric!r} is not supported: aeclust's metrics take 'euclidean' (or 'l2'), "
            f"'sqeuclidean', 'cosine' and 'precomputed' (X is then the n x n distance matrix). For "
            f"another metric, compute its distance matrix (sklearn.metrics.pairwise_distances) and "
            f"pass it with metric='precomputed'"
        )
    return name


@contextlib.contextmanager
def _progress_bar(total: int, enabled: bool):
    """A progress bar over ``total`` pairs: yields its update callable, or None when not ``enabled``."""
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="pair", unit_scale=True, desc="pairwise", leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


class _Clusters:
    """The labels as the passes want them: cluster codes 0..k-1, and the order that sorts by them."""

    def _set_labels(self, labels, n_samples: int, *, min_clusters: int, max_clusters_rel: int | None):
        classes, codes = encode_labels(check_cluster_labels(labels, n_samples))
        self.k = check_cluster_count(len(classes), n_samples, min_clusters=min_clusters,
                                     max_clusters_rel=max_clusters_rel)
        self.order = np.argsort(codes, kind="stable")
        self.codes = codes[self.order].astype(np.intp)
        self.counts = np.bincount(self.codes, minlength=self.k)

    def silhouette_samples(self, sums: np.ndarray) -> np.ndarray:
        """Per-sample silhouette in the input's order, from per-cluster distance sums."""
        out = np.empty(len(self.codes), dtype=np.float64)
        out[self.order] = silhouette_from_sums(sums, self.codes, self.counts)
        return out


class _Sorted(_Clusters):
    """Feature vectors sorted by cluster, as the pairwise kernel wants them.

    Under "cosine" the rows are scaled to unit length first (in float64): the cosine
    distance ``1 - u.v`` of unit rows is half their squared Euclidean distance, so
    one kernel serves the three metrics. A zero row stays zero, and is at cosine
    distance 1 from every other row: scikit-learn's convention (it normalises a zero
    vector to itself, whose dot product with anything is 0).
    """

    def __init__(self, X, labels, *, min_clusters: int, max_clusters_rel: int | None,
                 metric: str = "euclidean"):
        X = check_features(X, min_samples=2)
        self._set_labels(labels, X.shape[0], min_clusters=min_clusters, max_clusters_rel=max_clusters_rel)
        self.metric = metric
        self._X = X  # the input, in its own order and precision (for the exact re-measurement)
        self._norms = _row_norms64(X) if metric == "cosine" else None
        zero = None if self._norms is None else self._norms == 0.0
        self.zero_rows = zero[self.order] if zero is not None and zero.any() else None
        self.X32 = self._sorted_centred32()
        # Identical points (duplicate images, codes that a ReLU sent to zero) must be at
        # distance exactly 0; ids shared by identical rows, or None when there are none.
        ids = _duplicate_ids(X)
        self.duplicates = None if ids is None else ids[self.order]

    def _sorted_centred32(self) -> np.ndarray:
        """The rows the kernel reads (unit rows under "cosine"): sorted, centred, float32.

        Centring costs nothing in distance and shrinks the norms, and with them the
        cancellation error of |x|^2 - 2 x.y + |y|^2. The copy is made in row chunks:
        whole-array temporaries (a float64 copy is 80 MB for the CIFAR pixels) cost
        more in fresh memory pages than in arithmetic.
        """
        X, n = self._X, self._X.shape[0]
        chunks = range(0, n, _CHUNK_ROWS)
        if self._norms is None:
            mean = X.mean(axis=0, dtype=np.float64)
        else:
            mean = sum(self._rows64(np.arange(s, min(s + _CHUNK_ROWS, n)), sorted_=False).sum(axis=0)
                       for s in chunks) / n
        out = np.empty(X.shape, dtype=np.float32)
        for start in chunks:
            which = self.order[start : start + _CHUNK_ROWS]
            rows = X[which] if self._norms is None else self._rows64(which, sorted_=False)
            np.subtract(rows, mean, out=out[start : start + len(rows)], casting="same_kind")
        return out

    def rows(self, which) -> np.ndarray:
        """Rows ``which`` of the sorted order, in the input's precision."""
        return self._X[self.order[which]]

    def _rows64(self, which, *, sorted_: bool = True) -> np.ndarray:
        """Rows ``which`` (of the sorted order; of the input's with ``sorted_=False``) in float64,
        as the metric measures them: as given, or scaled to unit length under "cosine"."""
        index = self.order[which] if sorted_ else which
        rows = self._X[index].astype(np.float64)
        if self._norms is not None:
            norms = self._norms[index]
            rows /= np.where(norms > 0.0, norms, 1.0)[:, None]
        return rows

    def stats(self, *, sums: bool, extremes: bool, progress: bool, tile: int) -> _pairwise.PairStats:
        n = len(self.codes)
        with _progress_bar(n * (n + 1) // 2, progress) as update:
            stats = _pairwise.pair_stats(self.X32, self.codes, self.k, sums=sums, extremes=extremes, tile=tile,
                                         progress=update, duplicates=self.duplicates,
                                         squared=self.metric != "euclidean", zero_rows=self.zero_rows)
        if sums and self.metric == "cosine":
            stats.sums *= 0.5  # half the squared distance of the unit rows (exact: a power of two)
        return stats

    def dunn_parts(self, stats: _pairwise.PairStats) -> tuple[float, float]:
        """Exact (smallest inter-cluster distance, largest cluster diameter)."""
        largest = _pairwise.row_sq_norms(self.X32).max(initial=0.0)
        cuts = dunn_cuts(float(stats.min_inter_sq.min()), float(stats.max_intra_sq.max()),
                         self.X32.shape[1], largest)
        near_min, near_max = near_extremes(stats.min_inter_sq, stats.max_intra_sq, cuts)
        d_min = self._exact_extreme(near_min, same_cluster=False)
        d_max = self._exact_extreme(near_max, same_cluster=True)
        return d_min, d_max

    def _exact_extreme(self, rows: np.ndarray, *, same_cluster: bool) -> float:
        """Re-measure the candidate rows in float64: the largest same-cluster
        distance, or the smallest other-cluster distance, from them.

        Both ends of the extreme pair are candidates: the pass measures each pair
        once, in one float32 value that serves its two points, so the other end's
        own float32 extreme is as close to the global one as the first end's, and
        :func:`dunn_cuts` lets both through. So the candidates (tens to a few
        hundred) are measured against each other; only if no qualifying pair were
        among them would all the rows be read.
        """
        cols = rows
        value, (i, j) = self._extreme_between(rows, cols, same_cluster)
        if not np.isfinite(value):  # not expected (see above); the whole data then
            cols = np.arange(len(self.codes))
            value, (i, j) = self._extreme_between(rows, cols, same_cluster)
        return self._distance64(int(rows[i]), int(cols[j]))

    def _distance64(self, i: int, j: int) -> float:
        """The metric's distance between sorted rows ``i`` and ``j`` in float64, by direct
        differences (no cancellation): Euclidean, squared Euclidean, or half the squared
        distance of the unit rows (cosine, which ``1 - u.v`` would lose to cancellation
        for close rows; 1 from a zero row to any other row)."""
        a, b = self._rows64(np.array([i, j]))
        if self.metric == "euclidean":
            return _pairwise.distance64(a, b)
        if self.metric == "sqeuclidean":
            return _pairwise.sq_distance64(a, b)
        if i != j and self.zero_rows is not None and (self.zero_rows[i] or self.zero_rows[j]):
            return 1.0
        return 0.5 * _pairwise.sq_distance64(a, b)

    def _extreme_between(self, rows: np.ndarray, cols: np.ndarray, same_cluster: bool):
        """The extreme float64 squared distance between ``rows`` and ``cols`` (sorted row
        numbers; of the unit rows under "cosine"), and its pair (positions in ``rows``
        and ``cols``): the first of the best.

        Blocks are converted to float64 one at a time (no float64 copy of the whole
        data) and shared out to threads with single-threaded BLAS (the products have
        few rows, which threaded BLAS runs poorly).
        """
        step = 4096  # columns per task: a 256 x 4096 float64 block of distances is 8 MiB
        Xr = self._rows64(rows)
        sq_r, codes_r = _pairwise.sq_norms64(Xr), self.codes[rows]

        def block(task):
            r0, c0 = task
            r, c = rows[r0 : r0 + 256], cols[c0 : c0 + step]
            Xc = self._rows64(c)
            D2 = _pairwise.sq_distance_block64(Xr[r0 : r0 + 256], sq_r[r0 : r0 + 256], Xc,
                                               _pairwise.sq_norms64(Xc))
            if self.zero_rows is not None:  # cosine 1 (squared distance 2) from a zero row to any other
                D2[self.zero_rows[r]] = 2.0
                D2[:, self.zero_rows[c]] = 2.0
                D2[r[:, None] == c[None, :]] = 0.0
            value, i, j = _pairwise.pick_extreme(D2, codes_r[r0 : r0 + 256], self.codes[c],
                                                 same_cluster=same_cluster)
            return value, (r0 + i, c0 + j)

        tasks = [(r0, c0) for r0 in range(0, len(rows), 256) for c0 in range(0, len(cols), step)]
        with _pairwise.Workers() as pool:
            found = pool.map(block, tasks)
        # The first of the best, in task order: the same pair whatever the number of threads.
        values = np.array([v for v, _ in found])
        best = int(np.argmax(values) if same_cluster else np.argmin(values))
        return values[best], found[best][1]


class _Precomputed(_Clusters):
    """A given n x n distance matrix (metric="precomputed"), read in blocks of rows: exact."""

    def __init__(self, D, labels, *, min_clusters: int, max_clusters_rel: int | None):
        D = check_distance_matrix(D, min_samples=2)
        self._set_labels(labels, D.shape[0], min_clusters=min_clusters, max_clusters_rel=max_clusters_rel)
        self._D = D

    def stats(self, *, sums: bool, extremes: bool, progress: bool, tile: int) -> _pairwise.PairStats:
        n = len(self.codes)
        with _progress_bar(n * n, progress) as update:
            return _pairwise.precomputed_stats(self._D, self.order, self.codes, self.k, sums=sums,
                                               extremes=extremes, tile=tile, progress=update)

    def dunn_parts(self, stats: _pairwise.PairStats) -> tuple[float, float]:
        """(smallest inter-cluster distance, largest cluster diameter), as given in the matrix."""
        return float(stats.min_inter_sq.min()), float(stats.max_intra_sq.max())


def _prepare(X, labels, metric, *, min_clusters: int, max_clusters_rel: int | None) -> _Clusters:
    """One call's data, checked and sorted by cluster, for its metric."""
    metric = check_metric(metric)
    if metric == "precomputed":
        return _Precomputed(X, labels, min_clusters=min_clusters, max_clusters_rel=max_clusters_rel)
    return _Sorted(X, labels, min_clusters=min_clusters, max_clusters_rel=max_clusters_rel, metric=metric)


def _row_norms64(X: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, accumulated in float64 (in row chunks: no float64 copy of ``X``)."""
    out = np.empty(X.shape[0], dtype=np.float64)
    for start in range(0, X.shape[0], _CHUNK_ROWS):
        rows = X[start : start + _CHUNK_ROWS]
        out[start : start + len(rows)] = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    return np.sqrt(out, out=out)


def check_cluster_count(k: int, n_samples: int, *, min_clusters: int = 2,
                        max_clusters_rel: int | None = None) -> int:
    """Return ``k``, the number of distinct labels, or raise if the metrics cannot use it.

    Parameters
    ----------
    k, n_samples : int
    min_clusters : int, default=2
    max_clusters_rel : int or None, default=None
        The largest ``k`` allowed, relative to ``n_samples``: -1 for the
        silhouette (at most n_samples - 1 clusters), None for no limit.

    Raises
    ------
    InvalidInputError
    """
    if k < min_clusters:
        raise InvalidInputError(f"labels name {k} cluster(s); these metrics need at least {min_clusters}")
    if max_clusters_rel is not None and k > n_samples + max_clusters_rel:
        raise InvalidInputError(
            f"labels name {k} clusters for {n_samples} samples; the silhouette needs "
            f"between 2 and n_samples - 1 clusters"
        )
    return k


def silhouette_from_sums(sums: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Silhouette of each row from its distance sums per cluster.

    Parameters
    ----------
    sums : ndarray of shape (n_rows, n_clusters), float64
        Sum of the distances from each row to the points of each cluster.
    codes : ndarray of shape (n_rows,)
        Each row's cluster, 0..n_clusters-1.
    counts : ndarray of shape (n_clusters,)
        Points per cluster, over all the data (not only these rows).

    Returns
    -------
    ndarray of shape (n_rows,), float64
        In the rows' order; 0 for a row alone in its cluster. The in-memory pass
        gives all rows at once, a Dask task the rows of one chunk.
    """
    rows = np.arange(len(codes))
    own = counts[codes]
    a = sums[rows, codes] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[rows, codes] = np.inf
    b = mean_other.min(axis=1)
    denom = np.maximum(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(denom > 0, (b - a) / denom, 0.0)
    s[own == 1] = 0.0  # a sample alone in its cluster scores 0, by definition
    return s


def dunn_cuts(min_inter_sq: float, max_intra_sq: float, n_features: int,
              largest_sq_norm: float) -> tuple[float, float]:
    """Where Dunn's extremes may lie, given the float32 pass.

    ``min_inter_sq`` and ``max_intra_sq`` are the float32 smallest inter-cluster
    and largest intra-cluster squared distances; ``largest_sq_norm`` the largest
    squared norm of the (centred) float32 rows. Any point whose own float32
    extreme is within twice the proven error bound of these
    (:func:`aeclust._pairwise.sq_distance_error_bound`) may own the exact extreme.

    Returns
    -------
    (lo_cut, hi_cut) : tuple of float
        Points with a smallest other-cluster squared distance ``<= lo_cut``, and
        those with a largest same-cluster squared distance ``>= hi_cut``, are
        measured again in float64.
    """
    tol = 2.0 * _pairwise.sq_distance_error_bound(n_features, largest_sq_norm)
    return min_inter_sq + tol, max_intra_sq - tol


def near_extremes(min_inter_sq: np.ndarray, max_intra_sq: np.ndarray,
                  cuts: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the rows that may own Dunn's smallest and largest distance (see :func:`dunn_cuts`)."""
    return np.flatnonzero(min_inter_sq <= cuts[0]), np.flatnonzero(max_intra_sq >= cuts[1])


def _duplicate_ids(X: np.ndarray) -> np.ndarray | None:
    """An id per row of ``X``, shared only by identical rows; None when all rows differ.

    Rows are hashed first (cheap, and equal rows hash equal); only rows whose hash
    another row shares are compared in full, so a hash collision cannot merge two
    different rows.
    """
    n = X.shape[0]
    hashes = np.empty(n, dtype=np.uint64)
    # Each row's bytes as 64-bit words, multiplied by fixed odd numbers and added, wrapping
    # around: equal rows give equal hashes, and numpy does it without a loop over the rows.
    row_bytes = X.dtype.itemsize * X.shape[1]
    weights = (np.random.default_rng(0).integers(0, 2**63, row_bytes // 8, dtype=np.uint64) * 2 + 1
               if row_bytes % 8 == 0 else None)
    for start in range(0, n, _CHUNK_ROWS):
        # + 0.0 turns -0.0 into 0.0, which it equals
        chunk = np.ascontiguousarray(X[start : start + _CHUNK_ROWS] + 0.0)
        if weights is not None:
            np.sum(chunk.view(np.uint64) * weights, axis=1, out=hashes[start : start + len(chunk)])
        else:
            hashes[start : start + len(chunk)] = [hash(row.tobytes()) & (2**64 - 1) for row in chunk]
    _, group, sizes = np.unique(hashes, return_inverse=True, return_counts=True)
    if sizes.max() == 1:
        return None
    shared = np.flatnonzero(sizes[group.reshape(-1)] > 1)  # the rows whose hash another row has
    rows = np.ascontiguousarray(X[shared] + 0.0)
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    uniques, first, same = np.unique(keys, return_index=True, return_inverse=True)
    if len(uniques) == len(keys):
        return None
    ids = np.arange(n)
    ids[shared] = shared[first[same.reshape(-1)]]  # each row takes the id of the first of its equals
    return ids


_DATA_PARAMETERS = """X : array-like of shape (n_samples, n_features), or (n_samples, n_samples) if metric="precomputed"
        Feature vectors (lists and any real numbers: float32 and float64 are kept,
        other types read as float64), or the distances between all pairs of
        samples. Sparse and complex input are refused with an error that says so.
    labels : array-like of shape (n_samples,)
        Any labels numpy can sort, as scikit-learn's ``LabelEncoder`` takes them:
        integers of any sign and not necessarily contiguous, floats, strings,
        booleans. A column vector is taken, with scikit-learn's warning.
    metric : {"euclidean", "sqeuclidean", "cosine", "precomputed"}, default="euclidean"
        The distance between two samples, as ``sklearn.metrics.pairwise_distances``
        defines it: Euclidean (alias "l2"), squared Euclidean, cosine
        (``1 - u.v / (|u| |v|)``; a zero vector is at distance 1 from every other
        sample, as in scikit-learn), or "precomputed": ``X`` is the distance matrix,
        which must be square, non-negative and zero on its diagonal (scikit-learn's
        checks and messages). Any other metric raises an error; compute its distance
        matrix and pass that as "precomputed"."""

_PASS_PARAMETERS = """tile : int, default=1024
        Rows per block of the pairwise pass; memory grows as ``tile**2``. The
        result is the same bits for any thread count, but another ``tile``
        groups the float32 partial sums differently (about 1e-7 relative). With
        "precomputed": the most rows read at once; the result does not depend on it.
    progress : bool, default=False
        Show a progress bar over the pairs."""

_ERRORS = """InvalidInputError (a ValueError)
        Fewer than 2 samples or clusters, labels of the wrong length or shape, NaN
        or infinite values, an unsupported metric, sparse or complex input, or a
        precomputed matrix that is not square, has negative values or a non-zero
        diagonal."""


def _shared_doc(fn):
    """Fill in the ``{data}``, ``{pass}`` and ``{errors}`` that the public functions' docstrings share."""
    fn.__doc__ = (fn.__doc__.replace("{data}", _DATA_PARAMETERS).replace("{pass}", _PASS_PARAMETERS)
                  .replace("{errors}", _ERRORS))
    return fn


@_shared_doc
def silhouette_samples(X, labels, *, metric: str = "euclidean", tile: int = _pairwise.DEFAULT_TILE,
                       progress: bool = False) -> np.ndarray:
    """Silhouette coefficient of each sample, exact: a drop-in for ``sklearn.metrics.silhouette_samples``.

    ``s = (b - a) / max(a, b)``, where ``a`` is the mean distance to the other
    points of the sample's own cluster and ``b`` the smallest mean distance to
    the points of another cluster; 0 for a sample alone in its cluster.

    The pairs are walked in tiles, never as an n x n matrix: float32 products and
    float64 sums, within about 1e-6 of a float64 computation; with "precomputed",
    float64 sums of the given values (which include the diagonal, as
    scikit-learn's do). The float32 products give each squared distance an error
    of about ``eps * |x|^2`` (``x`` centred, ``eps`` = 1.2e-7), so a sample whose
    silhouette rests on a few distances far below the data's spread (two points
    1e-3 apart in data of unit spread) can be off by 1e-5 or more; where such
    distances matter, pass their float64 matrix as "precomputed".

    Parameters
    ----------
    {data}
    {pass}

    Returns
    -------
    ndarray of shape (n_samples,), float64

    Raises
    ------
    {errors}
        Also n_samples clusters (the silhouette needs fewer).
    """
    data = _prepare(X, labels, metric, min_clusters=2, max_clusters_rel=-1)
    stats = data.stats(sums=True, extremes=False, progress=progress, tile=tile)
    return data.silhouette_samples(stats.sums)


@_shared_doc
def silhouette_score(X, labels, *, metric: str = "euclidean", sample_size: int | None = None,
                     random_state=None, tile: int = _pairwise.DEFAULT_TILE, progress: bool = False) -> float:
    """Mean silhouette coefficient over all samples: a drop-in for ``sklearn.metrics.silhouette_score``.

    Exact by default, and equal to scikit-learn's to about 1e-6 (see
    :func:`silhouette_samples` for the definition). With ``sample_size`` it is
    scikit-learn's estimate instead: the exact silhouette of a random subset.

    Parameters
    ----------
    {data}
    sample_size : int or None, default=None
        None: the exact mean over all samples. An int: an estimate, as in
        scikit-learn: ``sample_size`` samples drawn without replacement (all of
        them, if there are fewer), and the silhouette of that subset on its own
        (each sample judged by the sampled points only). The draw is
        scikit-learn's (``check_random_state(random_state).permutation(n)[:sample_size]``),
        so the same ``random_state`` gives the same subset and the same value to
        about 1e-6. :func:`aeclust.distributed.sampled_silhouette` gives an
        estimate with a confidence interval instead.
    random_state : int, numpy.random.RandomState instance or None, default=None
        The draw of ``sample_size``; unused without it. None takes numpy's
        global random state, as scikit-learn does.
    {pass}

    Returns
    -------
    float

    Raises
    ------
    {errors}
        Also n_samples clusters (in the sample, with ``sample_size``), or a
        ``sample_size`` that is not a whole number of at least 1.
    """
    metric = check_metric(metric)
    if sample_size is not None:
        X, labels = _sample(X, labels, metric, sample_size, random_state)
    return float(np.mean(silhouette_samples(X, labels, metric=metric, tile=tile, progress=progress)))


def _sample(X, labels, metric: str, sample_size, random_state):
    """scikit-learn's subset for the sampled silhouette: rows (and, for a precomputed
    matrix, the same columns) ``check_random_state(random_state).permutation(n)[:sample_size]``."""
    from sklearn.utils import check_random_state

    sample_size = check_sample_size(sample_size)
    precomputed = metric == "precomputed"
    X = check_distance_matrix(X, min_samples=1) if precomputed else check_features(X, min_samples=1)
    labels = check_cluster_labels(labels, X.shape[0])
    rows = check_random_state(random_state).permutation(X.shape[0])[:sample_size]
    return (X[np.ix_(rows, rows)] if precomputed else X[rows]), labels[rows]


@_shared_doc
def dunn_index(X, labels, *, metric: str = "euclidean", tile: int = _pairwise.DEFAULT_TILE,
               progress: bool = False) -> float:
    """Dunn's index: the smallest distance between two points of different clusters
    divided by the largest distance between two points of the same cluster.

    Exact in every metric: the result equals a brute-force float64 computation to
    rounding. The tiled float32 pass finds the few points that may own either
    extreme pair (within a proven bound on its error), and those are measured again
    in float64, by direct differences: of the points (Euclidean, squared
    Euclidean), or of the points scaled to unit length (cosine, as
    ``|u - v|^2 / 2``, which keeps the small distances that ``1 - u.v`` loses to
    cancellation). With "precomputed" the extremes are read from the matrix, its
    diagonal left out.

    Parameters
    ----------
    {data}
    {pass}

    Returns
    -------
    float

    Raises
    ------
    {errors}
        Also every cluster of zero diameter (the index is undefined).
    """
    data = _prepare(X, labels, metric, min_clusters=2, max_clusters_rel=None)
    stats = data.stats(sums=False, extremes=True, progress=progress, tile=tile)
    return dunn_from_parts(*data.dunn_parts(stats))


def dunn_from_parts(d_min: float, d_max: float) -> float:
    """Dunn's index from the smallest inter-cluster distance and the largest cluster diameter.

    Raises
    ------
    InvalidInputError
        When every cluster has diameter 0.
    """
    if d_max == 0.0:
        raise InvalidInputError(
            "Dunn's index is undefined: every cluster has diameter 0 "
            "(all clusters are single points or identical points)"
        )
    return d_min / d_max




@_shared_doc
def cluster_quality(X, labels, *, metric: str = "euclidean", tile: int = _pairwise.DEFAULT_TILE,
                    progress: bool = False, return_samples: bool = False):
    """Silhouette and Dunn's index in one pass over the pairwise distances.

    The same definitions as :func:`silhouette_score` (exact, without sampling) and
    :func:`dunn_index`, at little more than the cost of the silhouette alone.

    Parameters
    ----------
    {data}
    {pass}
    return_samples : bool, default=False
        Also return the per-sample silhouettes of the same pass (float64, in the
        input's order), whose mean is the quality's silhouette.

    Returns
    -------
    ClusterQuality, or (ClusterQuality, ndarray of shape (n_samples,)) with ``return_samples``
        Its distances (``min_intercluster_distance``, ``max_cluster_diameter``) are
        in ``metric``'s units.

    Raises
    ------
    {errors}
        Also n_samples clusters, or every cluster of zero diameter.
    """
    data = _prepare(X, labels, metric, min_clusters=2, max_clusters_rel=-1)
    stats = data.stats(sums=True, extremes=True, progress=progress, tile=tile)
    samples = data.silhouette_samples(stats.sums)
    d_min, d_max = data.dunn_parts(stats)
    quality = ClusterQuality.from_parts(float(np.mean(samples)), d_min, d_max, len(data.codes), data.k)
    return (quality, samples) if return_samples else quality
