import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans as SKKMeans

from aeclust import KMeans, _lloyd, errors
from aeclust.errors import InvalidInputError
from aeclust.kmeans import ConvergenceWarning

from helpers.data import make_blobs


def test_separated_blobs_are_recovered():
    X, y = make_blobs(n=400, k=4, spread=0.3, seed=1)
    km = KMeans(4, init="k-means++", random_state=0).fit(X)
    # Every true blob maps to exactly one cluster.
    pairs = {(int(a), int(b)) for a, b in zip(y, km.labels_)}
    assert len(pairs) == 4
    assert km.converged_
    assert km.labels_.shape == (400,)
    assert km.cluster_centers_.shape == (4, 5)


def test_fit_predict_predict_and_attributes_agree():
    X, _ = make_blobs(n=200, seed=2)
    km = KMeans(3, random_state=5)
    labels = km.fit_predict(X)
    np.testing.assert_array_equal(labels, km.labels_)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    # Centres are the means of their points.
    for c in range(3):
        np.testing.assert_allclose(km.cluster_centers_[c], X[labels == c].mean(axis=0), rtol=1e-5, atol=1e-5)
    expected = sum(((X[labels == c] - km.cluster_centers_[c]) ** 2).sum() for c in range(3))
    assert km.inertia_ == pytest.approx(float(expected), rel=1e-5)


def test_deterministic_for_a_seed_and_different_across_seeds():
    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    a = KMeans(6, random_state=3).fit(X)
    b = KMeans(6, random_state=3).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    c = KMeans(6, random_state=4).fit(X)
    assert not np.array_equal(a.init_centers_, c.init_centers_)


def test_random_init_uses_distinct_data_points():
    X = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    km = KMeans(7, random_state=0).fit(X)
    rows = {tuple(r) for r in km.init_centers_}
    assert len(rows) == 7
    data_rows = {tuple(r) for r in X}
    assert rows <= data_rows


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn_lloyd_from_the_same_centres(seed):
    X, _ = make_blobs(n=2000, d=16, k=8, spread=2.5, seed=seed)
    init = X[np.random.default_rng(seed).choice(len(X), 8, replace=False)]
    ours = KMeans(8, init=init).fit(X)
    ref = SKKMeans(8, init=init, n_init=1, tol=0, algorithm="lloyd", max_iter=1000).fit(X)
    assert np.mean(ours.labels_ == ref.labels_) >= 0.999
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)


def test_n_init_keeps_the_lowest_inertia():
    X = np.random.default_rng(7).normal(size=(300, 4)).astype(np.float32)
    single = [KMeans(5, random_state=s).fit(X).inertia_ for s in range(3)]
    best = KMeans(5, n_init=5, random_state=0).fit(X)
    assert best.inertia_ <= max(single)
    runs = [KMeans(5, init=best.init_centers_).fit(X).inertia_]
    assert best.inertia_ == pytest.approx(runs[0])


def test_empty_cluster_is_reseeded_with_the_farthest_point():
    # Two tight groups and a far outlier; one initial centre sits where no point is nearest.
    X = np.array([[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10], [30, 30]], dtype=np.float32)
    init = np.array([[0, 0], [10, 10], [100, 100]], dtype=np.float32)
    km = KMeans(3, init=init).fit(X)
    assert km.n_empty_clusters_ >= 1
    assert sorted(np.bincount(km.labels_, minlength=3).tolist()) == [1, 3, 3]
    assert km.labels_[6] not in (km.labels_[0], km.labels_[3])


def test_k_equals_n_and_duplicate_points():
    X = np.array([[0, 0], [0, 0], [1, 1], [1, 1]], dtype=np.float32)
    km = KMeans(4, random_state=0).fit(X)
    assert km.inertia_ == pytest.approx(0.0)
    km = KMeans(2, random_state=0).fit(X)
    assert km.inertia_ == pytest.approx(0.0)


def test_max_iter_cap_warns():
    X = np.random.default_rng(0).normal(size=(500, 10)).astype(np.float32)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        km = KMeans(8, max_iter=1, random_state=0).fit(X)
    assert not km.converged_
    assert km.n_iter_ == 1


def test_no_warning_when_converged():
    X, _ = make_blobs(n=100, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(4, random_state=0).fit(X)


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        # The hyper-parameters: scikit-learn's checks and wording.
        ({"n_clusters": 0}, np.ones((5, 2)), r"'n_clusters' parameter of KMeans must be an int in the range \[1, inf"),
        ({"n_clusters": 6}, np.ones((5, 2)), "larger than the number of samples"),
        ({"n_clusters": 2.5}, np.ones((5, 2)), "'n_clusters' parameter of KMeans must be an int"),
        ({"n_clusters": 2, "init": "bogus"}, np.ones((5, 2)), "'init' parameter of KMeans must be a str among"),
        ({"n_clusters": 2, "init": np.zeros((3, 2))}, np.ones((5, 2)), r"\(2, 2\)"),
        ({"n_clusters": 2, "max_iter": 0}, np.ones((5, 2)), "'max_iter' parameter"),
        ({"n_clusters": 2, "random_state": -1}, np.ones((5, 2)), "'random_state' parameter"),
        # The data: aeclust's wording where scikit-learn has none, scikit-learn's elsewhere.
        ({"n_clusters": 2}, np.array([[1.0, np.nan], [0, 0], [1, 1]]), "contains 1 NaN or infinite .*impute"),
        ({"n_clusters": 2}, np.array([[1.0, np.inf], [0, 0], [1, 1]]), "NaN or infinite"),
        ({"n_clusters": 2}, np.ones(5), r"must be 2-D .* 1-D shape \(5,\): Reshape your data"),
        ({"n_clusters": 2}, np.ones((2, 3, 4)), r"must be 2-D .* 3-D shape \(2, 3, 4\)$"),
        ({"n_clusters": 1}, np.ones((0, 3)), r"0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required"),
        ({"n_clusters": 1}, np.ones((3, 0)), r"0 feature\(s\) \(shape=\(3, 0\)\) while a minimum of 1 is required"),
        ({"n_clusters": 1}, np.array([[1 + 2j], [3 + 0j]]), "complex numbers: Complex data not supported"),
        ({"n_clusters": 1}, np.array([["1", "2"]]), "must hold numbers, got dtype <U1"),
        ({"n_clusters": 1}, np.array([[1.0, "a"]], dtype=object), "not numbers .*could not convert"),
    ],
)
def test_bad_input_raises_a_clear_value_error(kwargs, X, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        KMeans(**kwargs).fit(X)
    assert issubclass(InvalidInputError, ValueError)
    assert "\n" not in str(info.value)  # the CLI prints it as one line


def test_sparse_and_non_numeric_objects_are_type_errors_too():
    from scipy import sparse

    with pytest.raises(TypeError, match="Sparse data was passed") as info:
        KMeans(1).fit(sparse.csr_array(np.eye(3)))
    assert isinstance(info.value, InvalidInputError)
    X = np.array([[1.0, {"a": 1}]], dtype=object)
    with pytest.raises(TypeError, match="not numbers .*argument must be") as info:
        KMeans(1).fit(X)
    assert isinstance(info.value, InvalidInputError)


def test_a_bad_hyper_parameter_is_sklearns_error_and_aeclusts():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError) as info:
        KMeans(n_init=0).fit(np.ones((5, 2)))
    assert isinstance(info.value, InvalidInputError)


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.array([1.0, -1.0, 1.0, 1.0, 1.0]), "Negative values in data passed to `sample_weight`"),
        (np.zeros(5), "Sample weights must contain at least one non-zero number"),
        (np.ones(4), r"sample_weight.shape == \(4,\), expected \(5,\)"),
        (np.array([1.0, np.nan, 1.0, 1.0, 1.0]), "sample_weight contains NaN"),
        (np.array([1.0, 0.0, 0.0, 0.0, 0.0]), "gives 1 sample\\(s\\) a positive weight, fewer than n_clusters=2"),
    ],
)
def test_bad_sample_weight_raises_a_clear_value_error(weights, match):
    X = np.arange(10.0).reshape(5, 2)
    with pytest.raises(InvalidInputError, match=match):
        KMeans(2, random_state=0).fit(X, sample_weight=weights)


def test_convergence_warning_lives_with_the_errors():
    assert ConvergenceWarning is errors.ConvergenceWarning
    assert issubclass(ConvergenceWarning, UserWarning)


def test_k_means_parallel_is_for_dask_arrays_only():
    with pytest.raises(InvalidInputError, match="init must be one of"):
        KMeans(2, init="k-means||").fit(np.ones((5, 2)))


class _ScriptedRows(_lloyd.Rows):
    """Rows whose runs are scripted: the estimator's own work is all that is tested."""

    def __init__(self, X, inertias, converged=True):
        self.X, self.shape = X, X.shape
        self.inertias, self.converged = list(inertias), converged
        self.calls = []

    def check_values(self):
        self.calls.append("check_values")

    def take(self, rows):
        self.calls.append(("take", tuple(rows)))
        return self.X[rows]

    def kmeans_plus_plus(self, n_clusters, rng):
        self.calls.append("kmeans_plus_plus")
        return self.X[:n_clusters]

    def lloyd(self, centers, max_iter):
        run = len([c for c in self.calls if isinstance(c, tuple) and c[0] == "lloyd"])
        self.calls.append(("lloyd", max_iter))
        labels = np.full(self.shape[0], run)
        return _lloyd.Run(labels, centers + run, run + 1, self.converged, run, self.inertias[run])


def test_fit_owns_validation_initialisation_the_runs_and_the_attributes():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    rows = _ScriptedRows(X, inertias=[5.0, 2.0, 2.0, 9.0])
    km = KMeans(3, n_init=4, max_iter=7, random_state=0).fit(rows)
    draws = np.random.default_rng(0)
    expected = [tuple(draws.choice(10, size=3, replace=False)) for _ in range(4)]
    assert rows.calls[0] == "check_values"
    assert [c[1] for c in rows.calls if c[0] == "take"] == expected
    assert [c for c in rows.calls if c[0] == "lloyd"] == [("lloyd", 7)] * 4
    # The first of the lowest inertias is kept, with everything that belongs to its run.
    assert km.inertia_ == 2.0 and km.n_iter_ == 2 and km.n_empty_clusters_ == 1
    np.testing.assert_array_equal(km.labels_, np.ones(10))
    np.testing.assert_array_equal(km.init_centers_, X[list(expected[1])])
    np.testing.assert_array_equal(km.cluster_centers_, X[list(expected[1])] + 1)
    assert km.n_features_in_ == 2 and km.converged_
    rows = _ScriptedRows(X, inertias=[1.0], converged=False)
    with pytest.warns(ConvergenceWarning):
        KMeans(2, init="k-means++").fit(rows)
    assert rows.calls[1] == "kmeans_plus_plus"
    with pytest.raises(InvalidInputError, match="larger than the number of samples"):
        KMeans(11).fit(_ScriptedRows(X, inertias=[1.0]))


def test_predict_before_fit_and_wrong_width():
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "transform", "score"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(KMeans(2), method)(np.ones((3, 2)))
    km = KMeans(2, random_state=0).fit(np.random.default_rng(0).normal(size=(10, 3)))
    for method in ("predict", "transform", "score"):
        with pytest.raises(InvalidInputError, match="X has 4 features, but KMeans is expecting 3 features"):
            getattr(km, method)(np.ones((2, 4)))


@pytest.mark.realdata
def test_cifar_pixels_match_sklearn_inertia_from_the_same_start(cifar_test_gray):
    X = cifar_test_gray
    km = KMeans(10, random_state=1).fit(X)
    ref = SKKMeans(10, init=km.init_centers_, n_init=1, tol=0, algorithm="lloyd", max_iter=1000).fit(X)
    assert km.converged_
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)
    assert np.mean(km.labels_ == ref.labels_) >= 0.99
