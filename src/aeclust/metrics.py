"""Internal cluster-quality metrics, exact and from scratch: silhouette and Dunn's index.

Both read the same n^2 pairwise distances, so :func:`cluster_quality` computes
them in one fused pass (the CLI uses it); :func:`silhouette_score` and
:func:`dunn_index` are that pass with half of the work switched off. Memory is
O(tile x n_clusters + n x n_clusters): never an n x n matrix.

Exactness. Distances come from float32 matrix products, and sums are kept in
float64, which puts the silhouette within about 1e-6 of a float64 computation.
Dunn's index depends on just two pairs of points, so it is made exact: the
float32 pass finds every point that could own the closest different-cluster
pair or the farthest same-cluster pair (within a proven bound on the float32
error), and those few points are measured again in float64.

Determinism. The results are the same bits for any number of threads and any
thread schedule (partial sums are added in a fixed order, BLAS runs on one
thread); they depend on ``tile``, which groups the float32 partial sums, by
about 1e-7 relative in the silhouette.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import _pairwise
from ._validation import check_array, check_labels
from .errors import InvalidInputError

#: Rows per chunk where the whole data is read once in pieces (centring, hashing).
_CHUNK_ROWS = 512

__all__ = ["silhouette_score", "silhouette_samples", "dunn_index", "cluster_quality", "ClusterQuality",
           "SilhouetteEstimate"]


class _Record:
    """A frozen record of results; :meth:`to_dict` gives its fields, in order, ready for JSON."""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClusterQuality(_Record):
    """Silhouette and Dunn's index of one clustering, with the parts Dunn is made of."""

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


class _Sorted:
    """The data sorted by cluster, as the pairwise kernel wants it."""

    def __init__(self, X, labels, *, min_clusters: int, max_clusters_rel: int | None):
        X = check_array(X, min_samples=2, dtype=None)
        labels = check_labels(labels, X.shape[0])
        uniques, codes = np.unique(labels, return_inverse=True)
        self.k = check_cluster_count(len(uniques), X.shape[0], min_clusters=min_clusters,
                                     max_clusters_rel=max_clusters_rel)
        self.order = np.argsort(codes, kind="stable")
        self.codes = codes[self.order].astype(np.intp)
        self.counts = np.bincount(self.codes, minlength=self.k)
        self._X = X  # the input, in its own order and precision (for the exact re-measurement)
        # Centring costs nothing in distance and shrinks the norms, and with them
        # the cancellation error of |x|^2 - 2 x.y + |y|^2. The sorted float32 copy is
        # made in row chunks: whole-array temporaries (a float64 copy is 80 MB for the
        # CIFAR pixels) cost more in fresh memory pages than in arithmetic.
        mean = X.mean(axis=0, dtype=np.float64)
        self.X32 = np.empty(X.shape, dtype=np.float32)
        for start in range(0, X.shape[0], _CHUNK_ROWS):
            rows = X[self.order[start : start + _CHUNK_ROWS]]
            np.subtract(rows, mean, out=self.X32[start : start + len(rows)], casting="same_kind")
        # Identical points (duplicate images, codes that a ReLU sent to zero) must be at
        # distance exactly 0; ids shared by identical rows, or None when there are none.
        ids = _duplicate_ids(X)
        self.duplicates = None if ids is None else ids[self.order]

    def rows(self, which) -> np.ndarray:
        """Rows ``which`` of the sorted order, in the input's precision."""
        return self._X[self.order[which]]

    def stats(self, *, sums: bool, extremes: bool, progress: bool, tile: int):
        bar = None
        if progress:
            from tqdm.auto import tqdm

            n = len(self.codes)
            bar = tqdm(total=n * (n + 1) // 2, unit="pair", unit_scale=True, desc="pairwise", leave=False)
        try:
            return _pairwise.pair_stats(
                self.X32,
                self.codes,
                self.k,
                sums=sums,
                extremes=extremes,
                tile=tile,
                progress=bar.update if bar is not None else None,
                duplicates=self.duplicates,
            )
        finally:
            if bar is not None:
                bar.close()

    def silhouette_samples(self, sums: np.ndarray) -> np.ndarray:
        """Per-sample silhouette in the input's order, from per-cluster distance sums."""
        out = np.empty(len(self.codes), dtype=np.float64)
        out[self.order] = silhouette_from_sums(sums, self.codes, self.counts)
        return out

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
        i, j = int(rows[i]), int(cols[j])
        pair = self.rows(np.array([i, j])).astype(np.float64)
        return _pairwise.distance64(pair[0], pair[1])

    def _extreme_between(self, rows: np.ndarray, cols: np.ndarray, same_cluster: bool):
        """The extreme float64 squared distance between ``rows`` and ``cols`` (sorted row
        numbers), and its pair (positions in ``rows`` and ``cols``): the first of the best.

        Blocks are converted to float64 one at a time (no float64 copy of the whole
        data) and shared out to threads with single-threaded BLAS (the products have
        few rows, which threaded BLAS runs poorly).
        """
        step = 4096  # columns per task: a 256 x 4096 float64 block of distances is 8 MiB
        Xr = self.rows(rows).astype(np.float64)
        sq_r, codes_r = _pairwise.sq_norms64(Xr), self.codes[rows]

        def block(task):
            r0, c0 = task
            c = cols[c0 : c0 + step]
            Xc = self.rows(c).astype(np.float64)
            value, i, j = _pairwise.extreme_sq_distance64(
                Xr[r0 : r0 + 256], sq_r[r0 : r0 + 256], codes_r[r0 : r0 + 256],
                Xc, _pairwise.sq_norms64(Xc), self.codes[c], same_cluster=same_cluster)
            return value, (r0 + i, c0 + j)

        tasks = [(r0, c0) for r0 in range(0, len(rows), 256) for c0 in range(0, len(cols), step)]
        with _pairwise.Workers() as pool:
            found = pool.map(block, tasks)
        # The first of the best, in task order: the same pair whatever the number of threads.
        values = np.array([v for v, _ in found])
        best = int(np.argmax(values) if same_cluster else np.argmin(values))
        return values[best], found[best][1]


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


def silhouette_samples(X, labels, *, tile: int = _pairwise.DEFAULT_TILE, progress: bool = False) -> np.ndarray:
    """Silhouette coefficient of each sample.

    ``s = (b - a) / max(a, b)``, where ``a`` is the mean Euclidean distance to the
    other points of the sample's own cluster and ``b`` the smallest mean distance
    to the points of another cluster; 0 for a sample alone in its cluster.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
        Any hashable label values; they need not be contiguous.
    tile : int, default=1024
        Rows per block of the pairwise pass; memory grows as ``tile**2``. The
        result is the same bits for any thread count, but another ``tile``
        groups the float32 partial sums differently (about 1e-7 relative).
    progress : bool, default=False
        Show a progress bar over the pairs.

    Returns
    -------
    ndarray of shape (n_samples,), float64
    """
    data = _Sorted(X, labels, min_clusters=2, max_clusters_rel=-1)
    stats = data.stats(sums=True, extremes=False, progress=progress, tile=tile)
    return data.silhouette_samples(stats.sums)


def silhouette_score(X, labels, *, tile: int = _pairwise.DEFAULT_TILE, progress: bool = False) -> float:
    """Mean silhouette coefficient over all samples (exact, Euclidean).

    Agrees with ``sklearn.metrics.silhouette_score`` to about 1e-6. See
    :func:`silhouette_samples` for the definition and parameters.

    Raises
    ------
    InvalidInputError (a ValueError)
        Fewer than 2 samples or clusters, n_samples clusters, labels of the wrong
        length, NaN or infinite values.
    """
    return float(np.mean(silhouette_samples(X, labels, tile=tile, progress=progress)))


def dunn_index(X, labels, *, tile: int = _pairwise.DEFAULT_TILE, progress: bool = False) -> float:
    """Dunn's index: the smallest distance between two points of different clusters
    divided by the largest distance between two points of the same cluster.

    Exact: the result equals a brute-force float64 computation to rounding.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    tile : int, default=1024
    progress : bool, default=False

    Returns
    -------
    float

    Raises
    ------
    InvalidInputError (a ValueError)
        Fewer than 2 clusters or samples, labels of the wrong length, NaN or
        infinite values, or every cluster of zero diameter (the index is undefined).
    """
    data = _Sorted(X, labels, min_clusters=2, max_clusters_rel=None)
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


def cluster_quality(X, labels, *, tile: int = _pairwise.DEFAULT_TILE, progress: bool = False,
                    return_samples: bool = False):
    """Silhouette and Dunn's index in one pass over the pairwise distances.

    Same definitions, parameters and errors as :func:`silhouette_score` and
    :func:`dunn_index`, at little more than the cost of the silhouette alone.
    With ``return_samples``, returns ``(ClusterQuality, samples)``: the
    per-sample silhouettes of the same pass (float64, in the input's order),
    whose mean is the quality's silhouette.
    """
    data = _Sorted(X, labels, min_clusters=2, max_clusters_rel=-1)
    stats = data.stats(sums=True, extremes=True, progress=progress, tile=tile)
    samples = data.silhouette_samples(stats.sums)
    d_min, d_max = data.dunn_parts(stats)
    quality = ClusterQuality.from_parts(float(np.mean(samples)), d_min, d_max, len(data.codes), data.k)
    return (quality, samples) if return_samples else quality
