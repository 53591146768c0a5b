"""K-means clustering written from scratch, as a scikit-learn estimator.

The default follows the study: centres start at randomly chosen data points;
each point is assigned to its nearest centre; each centre moves to the mean of
its points; this repeats until no assignment changes. ``max_iter`` is only a
safety cap, and a :class:`ConvergenceWarning` says when it was reached.

Empty clusters. When a cluster loses all its points, its centre is moved to the
point that lies farthest from its own centre (taken from a cluster with more
than one point), which is the move that lowers the inertia most; several empty
clusters take the next-farthest points. ``n_empty_clusters_`` counts these events.

scikit-learn. :class:`KMeans` is a scikit-learn estimator (``BaseEstimator``,
``ClusterMixin``, ``TransformerMixin``): ``clone``, pipelines, grid searches,
``set_output`` and pickling work as for scikit-learn's own, its input checks
are scikit-learn's (:mod:`aeclust._kmeans_input`), and
``sklearn.utils.estimator_checks`` passes (tests/test_sklearn_estimator.py).
The algorithm stays aeclust's: the compiled Lloyd loop of
:mod:`aeclust._lloyd_jit`, in float32 with exact float64 decisions.
"""

from __future__ import annotations

import numbers
import sys
import warnings

import numpy as np
from sklearn.base import (BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin,
                          _fit_context)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _lloyd
from ._kmeans_input import InvalidParameterError, check_sample_weight, check_X
from ._validation import check_array
from .errors import ConvergenceWarning, InvalidInputError

__all__ = ["KMeans", "ConvergenceWarning"]

INITS = _lloyd.Rows.inits


class KMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering (Lloyd's algorithm run to a fixed point).

    A scikit-learn estimator: ``fit``, ``predict``, ``fit_predict``, ``transform``
    (the distances to the centres), ``fit_transform`` and ``score`` (the negative
    inertia) behave as those of :class:`sklearn.cluster.KMeans`, with the study's
    defaults (one random start, run until no assignment changes).

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters, k.
    init : {"random", "k-means++"} or array of shape (n_clusters, n_features), default="random"
        ``"random"``: k distinct data points chosen uniformly at random (the study),
        or with probability proportional to ``sample_weight`` when it is given (as
        scikit-learn draws them).
        ``"k-means++"``: D^2 seeding with greedy local trials (Arthur & Vassilvitskii, 2007);
        with weights, the draws are proportional to weight x D^2, as in scikit-learn.
        An array: these centres, used as given.
        On a dask array, ``"k-means++"`` (or ``"k-means||"``) means k-means||.
    n_init : int, default=1
        Runs from different initialisations; the one with the lowest inertia is kept.
        Must be 1 when ``init`` is an array.
    max_iter : int, default=1000
        Safety cap on the number of iterations of one run.
    random_state : int, numpy Generator or None, default=None
        Seed for the initialisation (numpy's ``default_rng``); a given seed gives the
        same result every time, on any number of threads.
    verbose : bool, default=False
        Print one line per run.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features), float32
        The (weighted) mean of each cluster's points.
    labels_ : ndarray of shape (n_samples,), int
        The cluster of each training point (a dask array when ``X`` was one).
    inertia_ : float
        Sum of the (weighted) squared distances of the samples to their centres (float64).
    n_iter_ : int
        Iterations of the kept run; the last changed no assignment when ``converged_``.
    converged_ : bool
    n_empty_clusters_ : int
        How many times a cluster became empty and was re-seeded in the kept run.
    init_centers_ : ndarray of shape (n_clusters, n_features)
        The initial centres of the kept run.
    n_features_in_ : int
        The number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        The column names, when ``X`` in ``fit`` was a DataFrame with string column names.

    Notes
    -----
    Computation. ``X`` is converted to float32 (a float32 C-contiguous array is
    used in place); distances and decisions are exact in float64, sums are
    float64 (:mod:`aeclust._lloyd_jit`). ``transform`` returns float32 whatever
    the input's dtype.

    Sample weights. ``fit(X, sample_weight=w)`` minimises the weighted inertia:
    each centre is the weighted mean of its points, and the initialisation draws
    points in proportion to their weights. Weights must be finite and
    non-negative, and at least ``n_clusters`` points need a positive weight. A
    point of weight 0 is assigned a cluster but does not move it; a cluster
    whose points all weigh 0 has no weight and is treated as empty (re-seeded by
    the farthest point of positive weight whose cluster can spare one).
    ``sample_weight=None`` and weights that are all exactly 1 run the unweighted
    code: the same bits. Integer weights give the same clustering as repeating
    the rows (from the same initial centres), up to the rounding of the float64
    sums.

    Errors. Bad input raises :class:`aeclust.errors.InvalidInputError` (a
    ``ValueError``) with scikit-learn's message where it has one; a sparse
    matrix, or values that are not numbers, also raise a ``TypeError``, and a bad
    hyper-parameter scikit-learn's ``InvalidParameterError``. ``predict``,
    ``transform`` and ``score`` before ``fit`` raise scikit-learn's
    ``NotFittedError``.

    Examples
    --------
    >>> import numpy as np
    >>> from aeclust import KMeans
    >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(np.bincount(km.labels_).tolist())
    [2, 2]
    >>> km.transform([[0, 0.5]]).round(2).min()
    0.0
    """

    _parameter_constraints: dict = {
        "n_clusters": [Interval(numbers.Integral, 1, None, closed="left")],
        "init": [StrOptions({"random", "k-means++", "k-means||"}), "array-like"],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": [None, Interval(numbers.Integral, 0, None, closed="left"), np.random.Generator],
        "verbose": ["verbose"],
    }

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The computation is float32 (transform returns float32 for any input).
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.input_tags.sparse = False
        return tags

    @property
    def _n_features_out(self) -> int:
        """The number of columns of ``transform``'s output (for ``get_feature_names_out``)."""
        return self.cluster_centers_.shape[0]

    # -- validation -------------------------------------------------------------------
    def _validate_params(self) -> None:
        """scikit-learn's check of the hyper-parameters, raising aeclust's error class."""
        try:
            super()._validate_params()
        except InvalidInputError:
            raise
        except ValueError as exc:  # scikit-learn's InvalidParameterError
            raise InvalidParameterError(str(exc)) from None

    def _check_params(self, data: _lloyd.Rows) -> np.ndarray | None:
        """Check the parameters against the data; return the given centres, if any."""
        (n, d), k = data.shape, self.n_clusters
        if k > n:
            raise InvalidInputError(f"n_clusters={k} is larger than the number of samples ({n})")
        if data.weights is not None:
            n_positive = int(np.count_nonzero(data.weights > 0))
            if n_positive < k:
                raise InvalidInputError(
                    f"sample_weight gives {n_positive} sample(s) a positive weight, fewer than "
                    f"n_clusters={k}: every cluster needs a point of positive weight"
                )
        if isinstance(self.init, str):
            if self.init not in data.inits:
                raise InvalidInputError(f"init must be one of {data.inits} or an array, got {self.init!r}")
            return None
        centers = check_array(self.init, name="init")
        if centers.shape != (k, d):
            raise InvalidInputError(
                f"init has shape {centers.shape}; it must be (n_clusters, n_features) = ({k}, {d})"
            )
        if self.n_init != 1:
            raise InvalidInputError("n_init must be 1 when init is an array of centres")
        return centers

    def _data(self, X, sample_weight) -> _lloyd.Rows:
        """``X`` (and its weights) as :meth:`fit` reads them: a :class:`aeclust._lloyd.Rows`
        given as it is, row chunks on Dask for a dask array (not computed here), else a
        checked float32 numpy array; ``n_features_in_`` and ``feature_names_in_`` are set."""
        dask_array = sys.modules.get("dask.array")  # loaded only if X can be a dask array
        if isinstance(X, _lloyd.Rows) or (dask_array is not None and isinstance(X, dask_array.Array)):
            if isinstance(X, _lloyd.Rows):
                if sample_weight is not None:
                    raise InvalidInputError(
                        "give sample_weight to the rows object (DaskRows(X, sample_weight=...)), not to fit"
                    )
                data = X
            else:
                from .distributed import DaskRows

                data = DaskRows(X, sample_weight=sample_weight)
            self.n_features_in_ = data.shape[1]
            if hasattr(self, "feature_names_in_"):  # from an earlier fit on a DataFrame
                del self.feature_names_in_
            return data
        X = check_X(self, X, reset=True)
        return _ArrayRows(X, check_sample_weight(sample_weight, X.shape[0]))

    def _test_data(self, X) -> np.ndarray:
        """``X`` of predict, transform and score: checked against what ``fit`` saw."""
        check_is_fitted(self)
        return check_X(self, X, reset=False)

    # -- fitting ------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, sample_weight=None) -> "KMeans":
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Converted to float32; NaN and infinite values are rejected. A DataFrame's
            string column names are kept as ``feature_names_in_``. A dask array is
            clustered on the active Dask scheduler, in row chunks, without being
            computed on the client (:class:`aeclust.distributed.DaskRows`;
            :func:`aeclust.distributed.fit_kmeans` sets the chunking); ``labels_``
            is then a dask array, and ``init="k-means++"`` (or ``"k-means||"``) means
            k-means||.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples (see the class notes); None for all 1.
            With a dask ``X``, the weights are read into the client's memory (8 bytes
            a row).

        Returns
        -------
        self
        """
        data = self._data(X, sample_weight)
        given = self._check_params(data)
        data.check_values()
        rng = np.random.default_rng(self.random_state)
        best = None
        for run in range(self.n_init):
            if given is not None:
                centers0 = given.copy()
            elif self.init == "random":
                # k distinct rows: the same draw in memory and on Dask.
                centers0 = data.random_rows(self.n_clusters, rng)
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
        if not self.converged_:
            warnings.warn(
                f"k-means stopped at max_iter={self.max_iter} with assignments still changing; "
                f"raise max_iter to run it to convergence",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Cluster ``X`` and return the label of each sample (``labels_``)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Cluster ``X`` and return its distances to the centres (see :meth:`transform`)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def predict(self, X) -> np.ndarray:
        """Index of the nearest learned centre for each row of ``X``.

        The nearest by the exact float64 distance, ties to the lowest index: the
        labels the fit assigns (``predict`` of the training data is ``labels_``
        once the fit converged).
        """
        return _lloyd.assign(self._test_data(X), self.cluster_centers_)[0]

    def transform(self, X) -> np.ndarray:
        """The Euclidean distance of each row of ``X`` to each centre.

        Returns
        -------
        ndarray of shape (n_samples, n_clusters), float32
            Each distance is the square root of the exact float64 squared distance
            between the float32 row and centre, rounded once to float32.
        """
        X = self._test_data(X)
        return np.sqrt(_lloyd.sq_distances(X, self.cluster_centers_)).astype(np.float32)

    def score(self, X, y=None, sample_weight=None) -> float:
        """The opposite of the (weighted) inertia of ``X`` about the learned centres.

        Each point counts with its nearest centre (:meth:`predict`), and the terms
        are those of ``inertia_`` (float64, summed exactly): ``score`` of the
        training data is ``-inertia_`` once the fit converged.
        """
        X = self._test_data(X)
        weights = check_sample_weight(sample_weight, X.shape[0])
        labels = _lloyd.assign(X, self.cluster_centers_)[0]
        return -_lloyd.inertia(X, labels, self.cluster_centers_, weights)


class _ArrayRows(_lloyd.Rows):
    """A checked float32 numpy array (and its checked weights), clustered in this process."""

    def __init__(self, X: np.ndarray, weights: np.ndarray | None = None):
        self.X, self.weights = X, weights
        self.shape = X.shape

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.X[rows].copy()

    def kmeans_plus_plus(self, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
        from . import _lloyd_jit  # compiled on first use, not at import

        return _lloyd_jit.kmeans_plus_plus(self.X, n_clusters, rng, self.weights)

    def lloyd(self, centers: np.ndarray, max_iter: int) -> _lloyd.Run:
        from . import _lloyd_jit

        labels, centers, n_iter, converged, n_empty = _lloyd_jit.lloyd(self.X, centers, max_iter,
                                                                       weights=self.weights)
        inertia = _lloyd.inertia(self.X, labels, centers, self.weights)
        return _lloyd.Run(labels, centers, n_iter, converged, n_empty, inertia)
