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

import numbers
import sys
import warnings

import numpy as np

from . import _lloyd
from ._validation import check_array
from .errors import ConvergenceWarning, InvalidInputError

__all__ = ["KMeans", "ConvergenceWarning"]

INITS = _lloyd.Rows.inits


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
    def _check_params(self, shape: tuple[int, int], inits: tuple[str, ...]) -> np.ndarray | None:
        """Check the parameters against data of ``shape``; return the given centres, if any."""
        n, d = shape
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
            if self.init not in inits:
                raise InvalidInputError(f"init must be one of {inits} or an array, got {self.init!r}")
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
            array is clustered on the active Dask scheduler, in row chunks
            (:class:`aeclust.distributed.DaskRows`; :func:`aeclust.distributed.fit_kmeans`
            sets the chunking); ``labels_`` is then a dask array, and
            ``init="k-means++"`` (or ``"k-means||"``) means k-means||.
        y : ignored

        Returns
        -------
        self
        """
        data = _rows(X)
        given = self._check_params(data.shape, data.inits)
        data.check_values()
        rng = np.random.default_rng(self.random_state)
        best = None
        for run in range(self.n_init):
            if given is not None:
                centers0 = given.copy()
            elif self.init == "random":
                # k distinct rows, uniformly: the same draw in memory and on Dask.
                centers0 = data.take(rng.choice(data.shape[0], size=self.n_clusters, replace=False))
            else:
                centers0 = data.kmeans_plus_plus(self.n_clusters, rng)
            result = data.lloyd(centers0, self.max_iter)
            if self.verbose:
                print(f"k-means run {run + 1}/{self.n_init}: {result.n_iter} iterations, "
                      f"inertia {result.inertia:.6g}")
            if best is None or result.inertia < best[0].inertia:
                best = (result, centers0)
        result, self.init_centers_ = best
        self.inertia_, self.labels_, self.cluster_centers_ = result.inertia, result.labels, result.centers
        self.n_iter_, self.converged_, self.n_empty_clusters_ = result.n_iter, result.converged, result.n_empty
        self.n_features_in_ = data.shape[1]
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


def _rows(X) -> _lloyd.Rows:
    """``X`` as the estimator reads it: as given if already a :class:`aeclust._lloyd.Rows`,
    row chunks on Dask for a dask array, else a checked float32 numpy array."""
    if isinstance(X, _lloyd.Rows):
        return X
    dask_array = sys.modules.get("dask.array")  # loaded only if X can be a dask array
    if dask_array is not None and isinstance(X, dask_array.Array):
        from .distributed import DaskRows

        return DaskRows(X)
    return _ArrayRows(check_array(X))


class _ArrayRows(_lloyd.Rows):
    """A checked float32 numpy array, clustered in this process."""

    def __init__(self, X: np.ndarray):
        self.X = X
        self.shape = X.shape

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.X[rows].copy()

    def kmeans_plus_plus(self, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
        from . import _lloyd_jit  # compiled on first use, not at import

        return _lloyd_jit.kmeans_plus_plus(self.X, n_clusters, rng)

    def lloyd(self, centers: np.ndarray, max_iter: int) -> _lloyd.Run:
        from . import _lloyd_jit

        labels, centers, n_iter, converged, n_empty = _lloyd_jit.lloyd(self.X, centers, max_iter)
        return _lloyd.Run(labels, centers, n_iter, converged, n_empty, _lloyd.inertia(self.X, labels, centers))
