"""aeclust.KMeans as a scikit-learn estimator: the estimator checks, what users do with it,
and sample weights against oracles (repeated rows, scikit-learn's weighted Lloyd, a float64
weighted inertia). The Dask path's weights are tested in test_dask.py.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans as SKKMeans
from sklearn.exceptions import NotFittedError
from sklearn.metrics import euclidean_distances
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

import aeclust
from aeclust import KMeans
from aeclust.errors import InvalidInputError

from helpers.data import make_blobs

# scikit-learn declares the same for its own KMeans: with any random initialisation,
# fitting with weights and fitting the repeated rows draw from different arrays (here 15
# weighted rows, shuffled, against 30-odd repeated ones), so the runs start elsewhere.
# From the same initial centres the two are the same (test_integer_weights_equal_repeated_rows).
EXPECTED_FAILED = {
    "check_sample_weight_equivalence_on_dense_data": (
        "a random start draws from the weighted rows or from the repeated rows: different "
        "draws, so different clusterings (also expected of sklearn.cluster.KMeans)"
    ),
}


@parametrize_with_checks([KMeans(), KMeans(init="k-means++")], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------------------
# What a user does with it


def _blobs(n=400, d=6, k=4, spread=0.5, seed=0):
    return make_blobs(n=n, d=d, k=k, spread=spread, seed=seed)


def test_clone_copies_the_parameters_not_the_fit():
    X, _ = _blobs()
    km = KMeans(4, init="k-means++", n_init=2, random_state=3).fit(X)
    twin = clone(km)
    assert twin.get_params() == km.get_params()
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)
    np.testing.assert_array_equal(twin.fit(X).labels_, km.labels_)
    given = clone(KMeans(4, init=X[:4]))
    np.testing.assert_array_equal(given.init, X[:4])


def test_pipeline_with_a_scaler():
    X, _ = _blobs(seed=1)
    X = X * np.array([1, 10, 100, 1, 1, 1000], dtype=np.float32)
    pipe = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(4, random_state=0))]).fit(X)
    alone = KMeans(4, random_state=0).fit(StandardScaler().fit_transform(X))
    np.testing.assert_array_equal(pipe.predict(X), alone.labels_)
    np.testing.assert_array_equal(pipe.transform(X), alone.transform(StandardScaler().fit_transform(X)))
    # sample_weight travels to the step that takes it.
    w = np.random.default_rng(1).integers(1, 4, len(X)).astype(float)
    pipe.fit(X, kmeans__sample_weight=w)
    weighted = KMeans(4, random_state=0).fit(StandardScaler().fit_transform(X), sample_weight=w)
    np.testing.assert_array_equal(pipe[-1].cluster_centers_, weighted.cluster_centers_)


def test_grid_search_over_n_clusters_with_a_silhouette_scorer():
    X, _ = _blobs(n=600, d=4, k=4, spread=0.4, seed=4)  # silhouette 0.89 at k=4, at most 0.75 elsewhere

    def silhouette(estimator, X, y=None):
        return aeclust.silhouette_score(X, estimator.predict(X))

    search = GridSearchCV(KMeans(init="k-means++", n_init=3, random_state=0), {"n_clusters": [2, 3, 4, 5, 6]},
                          scoring=silhouette, cv=KFold(3, shuffle=True, random_state=0)).fit(X)
    assert search.best_params_ == {"n_clusters": 4}
    scores = search.cv_results_["mean_test_score"]
    assert scores[2] == scores.max() and scores[2] > 0.7
    assert search.best_estimator_.cluster_centers_.shape == (4, 4)


def test_pickle_round_trip():
    X, _ = _blobs(seed=3)
    km = KMeans(4, random_state=0).fit(X)
    back = pickle.loads(pickle.dumps(km))
    np.testing.assert_array_equal(back.predict(X), km.predict(X))
    np.testing.assert_array_equal(back.transform(X), km.transform(X))
    assert back.get_params() == km.get_params() and back.inertia_ == km.inertia_


def test_set_output_pandas_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, _ = _blobs(d=3, seed=4)
    df = pd.DataFrame(X, columns=["red", "green", "blue"], index=np.arange(len(X)) + 1000)
    km = KMeans(4, random_state=0).set_output(transform="pandas")
    out = km.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["kmeans0", "kmeans1", "kmeans2", "kmeans3"]
    np.testing.assert_array_equal(out.index, df.index)
    np.testing.assert_array_equal(out.to_numpy(), KMeans(4, random_state=0).fit(X).transform(X))
    np.testing.assert_array_equal(km.feature_names_in_, ["red", "green", "blue"])
    assert km.n_features_in_ == 3
    np.testing.assert_array_equal(km.predict(df), km.labels_)
    with pytest.raises(InvalidInputError, match="feature names should match"):
        km.predict(df[["blue", "green", "red"]])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        km.predict(X)
    km.fit(X)  # a refit on an array forgets the names
    assert not hasattr(km, "feature_names_in_")


def test_transform_is_the_distance_to_each_centre():
    X, _ = _blobs(n=500, d=9, seed=5)
    km = KMeans(4, random_state=0)
    D = km.fit_transform(X)
    assert D.dtype == np.float32 and D.shape == (500, 4)
    np.testing.assert_array_equal(D, km.transform(X))
    np.testing.assert_array_equal(km.transform(X.astype(np.float64)), D)  # float32 whatever the input
    want = euclidean_distances(X.astype(np.float64), km.cluster_centers_.astype(np.float64))
    np.testing.assert_allclose(D, want, rtol=1e-6)
    np.testing.assert_array_equal(D.argmin(axis=1), km.predict(X))  # separated blobs: no ties
    np.testing.assert_array_equal(km.predict(X), km.labels_)


def test_score_is_minus_the_inertia():
    X, _ = _blobs(n=500, seed=6)
    km = KMeans(4, random_state=0).fit(X)
    assert km.score(X) == -km.inertia_  # the same terms, summed exactly
    new = X[:50] + 0.25
    labels = km.predict(new)
    want = ((new.astype(np.float64) - km.cluster_centers_[labels]) ** 2).sum()
    assert km.score(new) == pytest.approx(-want, rel=1e-6)
    w = np.random.default_rng(6).exponential(size=len(X))
    weighted = KMeans(4, random_state=0).fit(X, sample_weight=w)
    assert weighted.score(X, sample_weight=w) == -weighted.inertia_


# ------------------------------------------------------------------------------------------
# Sample weights


@pytest.mark.parametrize("init", ["random", "k-means++"])
def test_unit_weights_take_the_unweighted_path(init):
    X = np.random.default_rng(7).standard_normal((700, 11)).astype(np.float32)
    for seed in range(3):
        plain = KMeans(6, init=init, random_state=seed).fit(X)
        ones = KMeans(6, init=init, random_state=seed).fit(X, sample_weight=np.ones(700, dtype=np.float32))
        np.testing.assert_array_equal(ones.init_centers_, plain.init_centers_)
        np.testing.assert_array_equal(ones.labels_, plain.labels_)
        np.testing.assert_array_equal(ones.cluster_centers_, plain.cluster_centers_)
        assert (ones.inertia_, ones.n_iter_) == (plain.inertia_, plain.n_iter_)


def test_constant_weights_scale_the_inertia_only():
    # Weights of 2 go through the weighted code; doubling is exact, so the same bits.
    X, _ = _blobs(n=500, seed=8)
    init = X[:4].copy()
    plain = KMeans(4, init=init).fit(X)
    twice = KMeans(4, init=init).fit(X, sample_weight=np.full(500, 2.0))
    np.testing.assert_array_equal(twice.labels_, plain.labels_)
    np.testing.assert_array_equal(twice.cluster_centers_, plain.cluster_centers_)
    assert twice.inertia_ == 2 * plain.inertia_ and twice.n_iter_ == plain.n_iter_


def test_integer_weights_equal_repeated_rows():
    # Data on a grid of eighths: every float64 sum is exact, so weight w and w copies of a
    # row are the same arithmetic (the order of the additions aside).
    X = (np.random.default_rng(9).integers(-40, 40, size=(400, 5)) / 8).astype(np.float32)
    w = np.random.default_rng(9).integers(1, 5, size=400)
    init = X[:6].copy()
    weighted = KMeans(6, init=init).fit(X, sample_weight=w)
    repeated = KMeans(6, init=init).fit(np.repeat(X, w, axis=0))
    np.testing.assert_array_equal(np.repeat(weighted.labels_, w), repeated.labels_)
    np.testing.assert_array_equal(weighted.cluster_centers_, repeated.cluster_centers_)
    assert weighted.n_iter_ == repeated.n_iter_
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-12)  # w x term rounds once


def test_zero_weights_equal_removed_rows():
    X, _ = _blobs(n=600, d=5, k=5, spread=1.5, seed=10)
    w = np.random.default_rng(10).exponential(size=600)
    w[::4] = 0.0
    keep = w > 0
    init = X[np.flatnonzero(keep)[:5]].copy()
    weighted = KMeans(5, init=init).fit(X, sample_weight=w)
    removed = KMeans(5, init=init).fit(X[keep], sample_weight=w[keep])
    np.testing.assert_array_equal(weighted.labels_[keep], removed.labels_)
    np.testing.assert_array_equal(weighted.cluster_centers_, removed.cluster_centers_)
    np.testing.assert_array_equal(weighted.labels_[~keep], weighted.predict(X[~keep]))
    assert weighted.inertia_ == removed.inertia_  # the weightless terms add exact zeros
    # The starts never pick a point of weight 0.
    rows = {tuple(r) for r in X[~keep]}
    for init in ("random", "k-means++"):
        for seed in range(5):
            km = KMeans(5, init=init, random_state=seed).fit(X, sample_weight=w)
            assert not rows & {tuple(c) for c in km.init_centers_}


def test_weighted_random_start_draws_as_scikit_learn_does():
    X, _ = _blobs(n=300, seed=11)
    w = np.random.default_rng(11).exponential(size=300)
    km = KMeans(4, random_state=5).fit(X, sample_weight=w)
    rows = np.random.default_rng(5).choice(300, size=4, replace=False, p=w / w.sum())
    np.testing.assert_array_equal(km.init_centers_, X[rows])


@pytest.mark.parametrize("seed", range(3))
def test_weighted_fit_matches_sklearn_lloyd_from_the_same_centres(seed):
    X, _ = make_blobs(n=2000, d=12, k=6, spread=2.0, seed=seed)
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=2000)
    w[rng.random(2000) < 0.1] = 0.0
    init = X[rng.choice(2000, 6, replace=False)]
    ours = KMeans(6, init=init).fit(X, sample_weight=w)
    ref = SKKMeans(6, init=init, n_init=1, tol=0, algorithm="lloyd", max_iter=1000).fit(X, sample_weight=w)
    assert np.mean(ours.labels_ == ref.labels_) >= 0.999
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=0, atol=1e-4)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)


def test_weighted_inertia_is_the_weighted_sum_of_squared_distances():
    X, _ = _blobs(n=800, d=7, seed=12)
    w = np.random.default_rng(12).uniform(0, 3, size=800)
    km = KMeans(4, init="k-means++", random_state=0).fit(X, sample_weight=w)
    diff = X.astype(np.float64) - km.cluster_centers_[km.labels_].astype(np.float64)
    assert km.inertia_ == pytest.approx(float(w @ (diff**2).sum(axis=1)), rel=1e-6)
    # Each centre is the weighted mean of its points.
    for c in range(4):
        m = km.labels_ == c
        want = (w[m, None] * X[m]).sum(axis=0) / w[m].sum()
        np.testing.assert_allclose(km.cluster_centers_[c], want, rtol=1e-5, atol=1e-5)


def test_weights_are_not_modified_and_lists_are_taken():
    X, _ = _blobs(n=200, seed=13)
    w = np.linspace(0.5, 2.0, 200)
    before = w.copy()
    a = KMeans(4, random_state=0).fit(X, sample_weight=w)
    b = KMeans(4, random_state=0).fit(X, sample_weight=w.tolist())
    np.testing.assert_array_equal(w, before)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_fit_predict_and_fit_transform_take_weights():
    X, _ = _blobs(n=300, seed=14)
    w = np.random.default_rng(14).exponential(size=300)
    km = KMeans(4, random_state=1).fit(X, sample_weight=w)
    np.testing.assert_array_equal(KMeans(4, random_state=1).fit_predict(X, sample_weight=w), km.labels_)
    np.testing.assert_array_equal(KMeans(4, random_state=1).fit_transform(X, sample_weight=w), km.transform(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km.score(X, sample_weight=w)
