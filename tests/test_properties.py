"""Property-based tests (hypothesis) of the metrics and of k-means.

Points are small integer grids (coordinates in [-20, 20]): hypothesis then
explores duplicates, ties and degenerate clusters, while every squared
distance stays exact in float32, so the properties hold to rounding and a
failure is a bug, not float32 noise. The oracle tests of k-means use continuous
Gaussian data from a seed hypothesis picks, where ties have probability zero.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans as SKKMeans
from sklearn.metrics import silhouette_score as sk_silhouette

from aeclust import KMeans, cluster_quality, dunn_index, silhouette_score
from aeclust import _lloyd, _lloyd_jit, _pairwise

pytestmark = pytest.mark.property

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clustered(draw, min_clusters: int = 2):
    """(X, labels): n points on an integer grid in d dimensions, with at least two cluster labels."""
    n = draw(st.integers(3, 40))
    d = draw(st.integers(1, 5))
    X = draw(arrays(np.float64, (n, d), elements=st.integers(-20, 20).map(float)))
    k = draw(st.integers(min_clusters, min(6, n - 1)))
    labels = draw(arrays(np.int64, n, elements=st.integers(0, k - 1)))
    assume(len(np.unique(labels)) >= min_clusters)
    return X, labels


def _relabel(labels: np.ndarray, data) -> np.ndarray:
    """The same partition under other label values (any injective map, not only permutations)."""
    uniques = np.unique(labels)
    values = data.draw(st.lists(st.integers(-1000, 1000), min_size=len(uniques), max_size=len(uniques),
                                unique=True))
    return np.asarray(values)[np.searchsorted(uniques, labels)]


def _dunn_defined(X, labels) -> bool:
    return any(len(np.unique(X[labels == c], axis=0)) > 1 for c in np.unique(labels))


def brute_force_dunn(X, labels) -> float:
    D = cdist(X, X)
    same = labels[:, None] == labels[None, :]
    return D[~same].min() / D[same].max()


# -- silhouette ---------------------------------------------------------------------------


@PROPERTY
@given(clustered())
def test_silhouette_lies_in_minus_one_one_and_equals_sklearn(case):
    X, labels = case
    s = silhouette_score(X, labels)
    assert -1.0 <= s <= 1.0
    assert s == pytest.approx(sk_silhouette(X, labels), abs=1e-6)


@PROPERTY
@given(clustered(), st.data())
def test_silhouette_is_unchanged_by_relabelling(case, data):
    X, labels = case
    assert silhouette_score(X, _relabel(labels, data)) == pytest.approx(silhouette_score(X, labels), abs=1e-7)


@PROPERTY
@given(clustered(), st.data())
def test_silhouette_is_unchanged_by_translation(case, data):
    X, labels = case
    shift = data.draw(arrays(np.float64, X.shape[1], elements=st.integers(-10**4, 10**4).map(float)))
    assert silhouette_score(X + shift, labels) == pytest.approx(silhouette_score(X, labels), abs=1e-6)


@PROPERTY
@given(clustered(), st.floats(1e-3, 1e3))
def test_silhouette_is_unchanged_by_uniform_scaling(case, scale):
    X, labels = case
    assert silhouette_score(X * scale, labels) == pytest.approx(silhouette_score(X, labels), abs=1e-6)


# -- Dunn ---------------------------------------------------------------------------------


@PROPERTY
@given(clustered(), st.data())
def test_dunn_equals_brute_force_and_is_unchanged_by_relabelling(case, data):
    X, labels = case
    assume(_dunn_defined(X, labels))
    d = dunn_index(X, labels)
    assert d >= 0.0
    assert d == pytest.approx(brute_force_dunn(X, labels), rel=1e-9)
    assert dunn_index(X, _relabel(labels, data)) == d


@PROPERTY
@given(clustered(), st.floats(1e-3, 1e3))
def test_dunn_is_unchanged_by_uniform_scaling(case, scale):
    X, labels = case
    assume(_dunn_defined(X, labels))
    assert dunn_index(X * scale, labels) == pytest.approx(dunn_index(X, labels), rel=1e-9)


@PROPERTY
@given(clustered())
def test_fused_pass_agrees_with_the_separate_metrics(case):
    X, labels = case
    assume(_dunn_defined(X, labels))
    q = cluster_quality(X, labels)
    assert q.silhouette == pytest.approx(silhouette_score(X, labels), abs=1e-12)
    assert q.dunn == pytest.approx(dunn_index(X, labels), rel=1e-12)


# -- k-means ------------------------------------------------------------------------------


@st.composite
def points_and_k(draw):
    n = draw(st.integers(2, 60))
    d = draw(st.integers(1, 6))
    X = draw(arrays(np.float32, (n, d), elements=st.integers(-20, 20).map(float)))
    k = draw(st.integers(1, min(8, n)))
    return X, k


@PROPERTY
@given(points_and_k(), st.integers(0, 2**32 - 1))
def test_inertia_never_increases_from_one_iteration_to_the_next(case, seed):
    X, k = case
    centers0 = X[np.random.default_rng(seed).choice(len(X), k, replace=False)]
    inertias = [_lloyd.inertia(X, _lloyd.assign(X, centers0)[0], centers0)]
    # The callback sees each iteration's centres and the assignment to them.
    _lloyd_jit.lloyd(X, centers0.copy(), 300,
                 callback=lambda it, labels, centers: inertias.append(_lloyd.inertia(X, labels, centers)))
    final = KMeans(k, init=centers0).fit(X).inertia_
    inertias.append(final)
    for before, after in zip(inertias, inertias[1:]):
        assert after <= before * (1 + 1e-6) + 1e-9


@PROPERTY
@given(points_and_k(), st.integers(0, 2**32 - 1), st.sampled_from(["random", "k-means++"]))
def test_fit_is_deterministic_for_a_seed(case, seed, init):
    X, k = case
    a = KMeans(k, init=init, n_init=2, random_state=seed).fit(X)
    b = KMeans(k, init=init, n_init=2, random_state=seed).fit(X)
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_


@PROPERTY
@given(st.integers(0, 2**32 - 1), st.integers(20, 300), st.integers(1, 8), st.integers(2, 6))
def test_kmeans_equals_the_sklearn_oracle(seed, n, d, k):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32) + rng.normal(scale=3.0, size=(k, d)).astype(np.float32)[
        rng.integers(0, k, size=n)]
    init = X[rng.choice(n, k, replace=False)]
    ours = KMeans(k, init=init).fit(X)
    ref = SKKMeans(k, init=init, n_init=1, tol=0, algorithm="lloyd", max_iter=1000).fit(X)
    assert np.array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-4, atol=1e-5)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)


@PROPERTY
@given(points_and_k(), st.integers(0, 2**32 - 1))
def test_greedy_seeding_with_unit_weights_is_the_unweighted_seeding(case, seed):
    """k-means|| reduces its candidates with the weighted form of the estimator's k-means++."""
    X, k = case
    X64 = X.astype(np.float64)

    def sq_distances(rows):
        return cdist(X64, X64[rows], "sqeuclidean")

    closest = sq_distances([0])[:, 0]
    plain = _lloyd.greedy_seeding(closest, sq_distances, k, np.random.default_rng(seed))
    weighted = _lloyd.greedy_seeding(closest, sq_distances, k, np.random.default_rng(seed),
                                     weights=np.ones(len(X)))
    assert plain == weighted and len(plain) == k - 1


@st.composite
def two_blocks(draw):
    """Two float32 blocks of rows with the same number of features (no values so small that
    their squares underflow: the bound is relative to the norms, and an underflow is not)."""
    d = draw(st.integers(1, 40))
    values = st.floats(-1e3, 1e3, width=32).filter(lambda v: v == 0 or abs(v) > 1e-6)
    return tuple(draw(arrays(np.float32, (draw(st.integers(1, 30)), d), elements=values)) for _ in range(2))


@PROPERTY
@given(two_blocks())
def test_distance_blocks_are_within_the_proven_error_bound(blocks):
    """The block kernel of the in-memory pass and of the Dask tasks, against float64."""
    a, b = blocks
    sq_a, sq_b = _pairwise.row_sq_norms(a), _pairwise.row_sq_norms(b)
    D2 = _pairwise.sq_distance_block(a * np.float32(-2.0), sq_a, b, sq_b)
    exact = cdist(a.astype(np.float64), b.astype(np.float64), "sqeuclidean")
    largest = max(sq_a.max(), sq_b.max())
    assert D2.dtype == np.float32 and (D2 >= 0).all()
    assert np.abs(D2 - exact).max() <= _pairwise.sq_distance_error_bound(a.shape[1], largest)
