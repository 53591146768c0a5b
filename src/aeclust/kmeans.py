"""K-means clustering written from scratch, in the style of a scikit-learn estimator.

The default follows the study: centres start at randomly chosen data points;
each point is assigned to its nearest centre; each centre moves to the mean of
its points; this repeats until no assignment changes. ``max_iter`` is only a
safety cap, and a :class:`ConvergenceWarning` says when it was reached.

Empty clusters. When a cluster loses all its points, its centre is moved to the
point that lies farthest from its own centre (taken from a cluster with more
than one point), which is the move that lowers the inertia most; several empty
clusters take the next-farthest points. ``n_empty_clusters_`` counts these events.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from . import _lloyd
from ._pairwise import blas_single_threaded, row_sq_norms, sq_distances_to
from ._validation import check_array
from .errors import InvalidInputError

__all__ = ["KMeans", "ConvergenceWarning"]

INITS = ("random", "k-means++")


class ConvergenceWarning(UserWarning):
    """K-means stopped at ``max_iter`` before the assignments stopped changing."""


class KMeans:
    """K-means clustering (Lloyd's algorithm run to a fixed point).

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters, k.
    init : {"random", "k-means++"} or array of shape (n_clusters, n_features), default="random"
        ``"random"``: k distinct data points chosen uniformly at random (the study).
        ``"k-means++"``: D^2 seeding with greedy local trials (Arthur & Vassilvitskii, 2007).
        An array: these centres, used as given.
    n_init : int, default=1
        Runs from different initialisations; the one with the lowest inertia is kept.
        Must be 1 when ``init`` is an array.
    max_iter : int, default=1000
        Safety cap on the number of iterations of one run.
    random_state : int, numpy Generator or None, default=None
        Seed for the initialisation; a given seed gives the same result every time.
    verbose : bool, default=False
        Print one line per run.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
    labels_ : ndarray of shape (n_samples,), int
    inertia_ : float
        Sum of squared distances of the samples to their centres (float64).
    n_iter_ : int
        Iterations of the kept run; the last changed no assignment when ``converged_``.
    converged_ : bool
    n_empty_clusters_ : int
        How many times a cluster became empty and was re-seeded in the kept run.
    init_centers_ : ndarray of shape (n_clusters, n_features)
        The initial centres of the kept run.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from aeclust import KMeans
    >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.bincount(km.labels_).tolist())
    [2, 2]
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init="random",
        n_init: int = 1,
        max_iter: int = 1000,
        random_state=None,
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.verbose = verbose

    # -- validation -------------------------------------------------------------------
    def _check_params(self, X: np.ndarray) -> np.ndarray | None:
        n, d = X.shape
        k = self.n_clusters
        if not isinstance(k, numbers.Integral) or isinstance(k, bool):
            raise InvalidInputError(f"n_clusters must be an integer, got {k!r}")
        if k < 1:
            raise InvalidInputError(f"n_clusters must be at least 1, got {k}")
        if k > n:
            raise InvalidInputError(f"n_clusters={k} is larger than the number of samples ({n})")
        for name in ("n_init", "max_iter"):
            v = getattr(self, name)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.init, str):
            if self.init not in INITS:
                raise InvalidInputError(f"init must be one of {INITS} or an array, got {self.init!r}")
            return None
        centers = check_array(self.init, name="init")
        if centers.shape != (k, d):
            raise InvalidInputError(
                f"init has shape {centers.shape}; it must be (n_clusters, n_features) = ({k}, {d})"
            )
        if self.n_init != 1:
            raise InvalidInputError("n_init must be 1 when init is an array of centres")
        return centers

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X, y=None) -> "KMeans":
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Converted to float32; NaN and infinite values are rejected. A dask
            array is clustered on the active Dask scheduler by
            :func:`aeclust.distributed.fit_kmeans`; ``labels_`` is then a dask array.
        y : ignored

        Returns
        -------
        self
        """
        from .distributed import is_dask_array

        if is_dask_array(X):
            from .distributed import fit_kmeans

            return fit_kmeans(self, X)
        X = check_array(X)
        given = self._check_params(X)
        rng = np.random.default_rng(self.random_state)
        best = None
        for run in range(self.n_init):
            if given is not None:
                centers0 = given.copy()
            elif self.init == "random":
                centers0 = _init_random(X, self.n_clusters, rng)
            else:
                centers0 = _init_kmeans_plus_plus(X, self.n_clusters, rng)
            labels, centers, n_iter, converged, n_empty = _lloyd.lloyd(X, centers0, self.max_iter)
            inertia = _lloyd.inertia(X, labels, centers)
            if self.verbose:
                print(f"k-means run {run + 1}/{self.n_init}: {n_iter} iterations, inertia {inertia:.6g}")
            if best is None or inertia < best[0]:
                best = (inertia, labels, centers, n_iter, converged, n_empty, centers0)
        (self.inertia_, self.labels_, self.cluster_centers_, self.n_iter_,
         self.converged_, self.n_empty_clusters_, self.init_centers_) = best
        self.n_features_in_ = X.shape[1]
        if not self.converged_:
            warnings.warn(
                f"k-means stopped at max_iter={self.max_iter} with assignments still changing; "
                f"raise max_iter to run it to convergence",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Cluster ``X`` and return the label of each sample."""
        return self.fit(X).labels_

    def predict(self, X) -> np.ndarray:
        """Index of the nearest learned centre for each row of ``X``."""
        if not hasattr(self, "cluster_centers_"):
            raise InvalidInputError("this KMeans is not fitted yet; call fit(X) first")
        X = check_array(X)
        if X.shape[1] != self.n_features_in_:
            raise InvalidInputError(
                f"X has {X.shape[1]} features, but KMeans was fitted with {self.n_features_in_}"
            )
        return _lloyd.assign(X, self.cluster_centers_)[0]

    def __repr__(self) -> str:
        init = self.init if isinstance(self.init, str) else "array"
        return (f"KMeans(n_clusters={self.n_clusters}, init={init!r}, n_init={self.n_init}, "
                f"max_iter={self.max_iter}, random_state={self.random_state!r})")


def _init_random(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct rows of X, chosen uniformly at random."""
    idx = rng.choice(X.shape[0], size=k, replace=False)
    return X[idx].copy()


@blas_single_threaded  # the same bits for any number of CPUs (see _pairwise)
def _init_kmeans_plus_plus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++: each new centre is the best of 2 + log(k) D^2-sampled candidates."""
    n = X.shape[0]
    n_trials = 2 + int(math.log(k))
    x_sq = row_sq_norms(X)
    centers = np.empty((k, X.shape[1]), dtype=X.dtype)
    centers[0] = X[rng.integers(n)]
    closest = np.maximum(sq_distances_to(X, centers[:1], row_sq_norms(centers[:1]))[:, 0] + x_sq, 0).astype(np.float64)
    for c in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than clusters: any point will do
            candidates = rng.integers(n, size=n_trials)
        else:
            candidates = np.searchsorted(np.cumsum(closest), rng.random(n_trials) * total)
            candidates = np.minimum(candidates, n - 1)
        d = np.maximum(sq_distances_to(X, X[candidates], x_sq[candidates]) + x_sq[:, None], 0)
        trial = np.minimum(closest[:, None], d)
        pick = int(np.argmin(trial.sum(axis=0)))
        centers[c] = X[candidates[pick]]
        closest = trial[:, pick].astype(np.float64)
    return centers
