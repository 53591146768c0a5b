"""The one chunked distance kernel that k-means and the metrics share.

Squared Euclidean distances are computed as ``|x|^2 - 2 x.y + |y|^2``: the
cross term is a float32 matrix product (the fast path on every BLAS), and the
squared norms are computed in float64 and rounded once. The metrics never hold
more than a ``tile x tile`` block of distances.
"""

from __future__ import annotations

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


def sq_distance_error_bound(X: np.ndarray, sq_norms: np.ndarray) -> float:
    """An upper bound on the absolute error of a float32 squared distance from this kernel.

    The dot product of two d-vectors in float32 errs by at most about
    ``d * eps * |x| |y|`` (the classic bound; blocked BLAS sums do better), and
    the norms and the two additions add a few ``eps * (|x|^2 + |y|^2)`` more.
    Bounding ``|x| |y|`` by the largest squared norm gives one number for all pairs.
    """
    n_features = X.shape[1]
    largest = float(sq_norms.max(initial=0.0))
    return (n_features + 8) * _EPS32 * 2.0 * largest


def sq_distances_to(X: np.ndarray, centers: np.ndarray, center_sq: np.ndarray) -> np.ndarray:
    """``|c|^2 - 2 x.c`` for every row of ``X`` and every centre: the squared distance
    less ``|x|^2``, which does not change which centre is nearest."""
    D = X @ centers.T
    D *= -2.0
    D += center_sq
    return D


@dataclass
class PairStats:
    """Per-point results of one pass over all pairs (in the caller's sorted order).

    Attributes
    ----------
    sums : ndarray of shape (n, k), float64, or None
        Sum of the Euclidean distances from each point to the points of each cluster.
    min_inter_sq : ndarray of shape (n,), float32, or None
        Smallest squared distance from each point to a point of another cluster (float32 estimate).
    max_intra_sq : ndarray of shape (n,), float32, or None
        Largest squared distance from each point to a point of its own cluster (float32 estimate).
    """

    sums: np.ndarray | None
    min_inter_sq: np.ndarray | None
    max_intra_sq: np.ndarray | None


def _segments(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and cluster codes of the runs in a sorted code vector."""
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return starts, codes[starts]


def pair_stats(
    X: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    *,
    sums: bool = True,
    extremes: bool = True,
    tile: int = DEFAULT_TILE,
    progress=None,
    duplicates: np.ndarray | None = None,
) -> PairStats:
    """Visit every unordered pair of points once and collect per-point statistics.

    ``X`` must be float32, C-contiguous and sorted by ``codes`` (cluster codes
    0..k-1), so that each cluster is one contiguous run of rows: then the
    same-cluster part of a block is a handful of rectangles on its diagonal.
    Each block ``(i, j)`` with ``j >= i`` serves both its rows and its columns,
    which halves the matrix products.

    ``progress`` is an optional callable that receives the number of pairs done.

    ``duplicates`` (optional) gives each row an id shared only by identical rows.
    Their distance is then exactly 0; the expansion would leave a residue of
    about ``eps * |x|^2``, whose square root is far from 0 next to small distances.
    """
    n = X.shape[0]
    sq = row_sq_norms(X)
    X_m2 = X * np.float32(-2.0)  # folds the -2 of the expansion into the product
    onehot = np.zeros((n, n_clusters), dtype=np.float32)
    onehot[np.arange(n), codes] = 1.0
    S = np.zeros((n, n_clusters), dtype=np.float64) if sums else None
    min_inter = np.full(n, np.inf, dtype=np.float32) if extremes else None
    max_intra = np.zeros(n, dtype=np.float32) if extremes else None

    for i0 in range(0, n, tile):
        i1 = min(i0 + tile, n)
        row_starts, row_codes = _segments(codes[i0:i1])
        row_ends = np.r_[row_starts[1:], i1 - i0]
        for j0 in range(i0, n, tile):
            j1 = min(j0 + tile, n)
            diagonal = i0 == j0
            D2 = X_m2[i0:i1] @ X[j0:j1].T
            D2 += sq[i0:i1, None]
            D2 += sq[None, j0:j1]
            np.maximum(D2, 0.0, out=D2)
            if duplicates is not None:
                D2[duplicates[i0:i1, None] == duplicates[None, j0:j1]] = 0.0
            if diagonal:
                np.fill_diagonal(D2, 0.0)  # a point's distance to itself is exactly 0

            if extremes:
                # The same-cluster rectangles: rows of cluster c against columns of cluster c.
                col_codes = codes[j0:j1]
                rects = []
                for rs, re, c in zip(row_starts, row_ends, row_codes):
                    cs = np.searchsorted(col_codes, c, side="left")
                    ce = np.searchsorted(col_codes, c, side="right")
                    if ce > cs:
                        rects.append((rs, re, cs, ce))
                saved = []
                for rs, re, cs, ce in rects:
                    block = D2[rs:re, cs:ce]
                    np.maximum(max_intra[i0 + rs : i0 + re], block.max(axis=1), out=max_intra[i0 + rs : i0 + re])
                    if not diagonal:
                        np.maximum(max_intra[j0 + cs : j0 + ce], block.max(axis=0), out=max_intra[j0 + cs : j0 + ce])
                    saved.append(block.copy())
                    block.fill(np.inf)  # hide same-cluster pairs from the minimum below
                np.minimum(min_inter[i0:i1], D2.min(axis=1), out=min_inter[i0:i1])
                if not diagonal:
                    np.minimum(min_inter[j0:j1], D2.min(axis=0), out=min_inter[j0:j1])
                for (rs, re, cs, ce), block in zip(rects, saved):
                    D2[rs:re, cs:ce] = block

            if sums:
                D = np.sqrt(D2, out=D2)
                S[i0:i1] += D @ onehot[j0:j1]
                if not diagonal:
                    S[j0:j1] += (onehot[i0:i1].T @ D).T
            if progress is not None:
                progress((i1 - i0) * (j1 - j0) if not diagonal else (i1 - i0) * (i1 - i0 + 1) // 2)

    return PairStats(S, min_inter, max_intra)
