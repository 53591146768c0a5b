"""aeclust's metrics as drop-ins for sklearn.metrics: the same arguments, inputs and values.

scikit-learn's ``silhouette_score`` / ``silhouette_samples`` are the oracles of the
silhouette in every metric (given float64 data, so that the oracle itself is
float64: scikit-learn computes float32 input's cosine and precomputed sums in
float32); a brute-force float64 ``cdist`` is the oracle of Dunn's index.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from decimal import Decimal, getcontext

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import silhouette_samples as sk_samples
from sklearn.metrics import silhouette_score as sk_score

from aeclust import _pairwise, cluster_quality, dunn_index, silhouette_score
from aeclust.errors import InvalidInputError
from aeclust.metrics import METRICS, silhouette_samples

FEATURE_METRICS = ["euclidean", "sqeuclidean", "cosine"]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def brute_force_distances(X, metric: str) -> np.ndarray:
    """All pairwise distances in float64 by scipy's cdist. Cosine as half the squared distance of the
    unit rows (scipy's ``1 - u.v`` loses small distances to cancellation); a zero row at distance 1
    from every other row, as in scikit-learn."""
    X = np.asarray(X, dtype=np.float64)
    if metric != "cosine":
        return cdist(X, X, metric)
    norms = np.linalg.norm(X, axis=1)
    D = 0.5 * cdist(*(2 * [X / np.where(norms > 0, norms, 1.0)[:, None]]), "sqeuclidean")
    D[(norms == 0)[:, None] | (norms == 0)[None, :]] = 1.0
    np.fill_diagonal(D, 0.0)
    return D


def brute_force_dunn(D, labels) -> float:
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    return D[~same].min() / D[same & ~np.eye(len(labels), dtype=bool)].max()


# -- random cases ---------------------------------------------------------------------------


@st.composite
def cases(draw, metrics=tuple(METRICS)):
    """(X as passed, X in float64, labels as passed, metric): the containers and label types
    scikit-learn takes.

    The data are where the float32 products hold 1e-6 per sample. Each squared distance
    carries an error of about eps * |x|^2, so a distance far below the data's spread (two
    Gaussian points 1e-3 apart, two directions 1e-3 radians apart) can move a sample's
    silhouette by 1e-5 (the mean over many samples much less). So: integer grids, whose
    distinct points are never much closer than the spread, and which bring duplicates and
    ties; in [-2, 2] for the Euclidean metrics, and in {-1, 0, 1} for cosine, where no two
    distinct rows are parallel (as (1, 2) and (2, 4) are: distance 0, and any oracle then
    measures its own rounding) and zero rows occur; continuous data too for "precomputed",
    which is read exactly.
    """
    metric = draw(st.sampled_from(metrics))
    n, d = draw(st.integers(4, 40)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = metric != "precomputed" or draw(st.booleans())
    top = 1 if metric == "cosine" else 2
    X = rng.integers(-top, top + 1, size=(n, d)).astype(np.float64) if grid else rng.normal(size=(n, d))
    if metric == "cosine":
        X[rng.choice(n, size=draw(st.integers(0, 2)), replace=False)] = 0.0
    k = draw(st.integers(2, min(6, n - 1)))
    codes = rng.integers(0, k, size=n)
    assume(1 < len(np.unique(codes)) < n)
    values = rng.choice(np.arange(-1000, 1000), size=k, replace=False)
    kind = draw(st.sampled_from(["negative ints", "strings", "floats", "list"]))
    labels = {"negative ints": values[codes], "strings": np.array([f"c{v}" for v in values])[codes],
              "floats": values[codes] + 0.5, "list": [str(v) for v in values[codes]]}[kind]
    if metric == "precomputed":
        X = cdist(X, X)
    form = draw(st.sampled_from(["float64", "float32", "list"] + (["int"] if metric != "precomputed" else [])))
    given_X = {"float64": X, "float32": X.astype(np.float32), "list": X.tolist(), "int": X.astype(np.int64)}[form]
    X64 = np.asarray(given_X, dtype=np.float64)
    return given_X, X64, labels, metric


@PROPERTY
@given(cases())
def test_silhouette_equals_sklearn_for_every_metric_and_input(case):
    X, X64, labels, metric = case
    assert silhouette_score(X, labels, metric=metric) == pytest.approx(
        sk_score(X64, labels, metric=metric), abs=1e-6)
    np.testing.assert_allclose(silhouette_samples(X, labels, metric=metric, tile=16),
                               sk_samples(X64, labels, metric=metric), rtol=0, atol=1e-6)


@PROPERTY
@given(cases())
def test_dunn_equals_brute_force_for_every_metric(case):
    X, X64, labels, metric = case
    D = X64 if metric == "precomputed" else brute_force_distances(X64, metric)
    same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
    assume(D[same & ~np.eye(len(D), dtype=bool)].max() > 0)  # otherwise Dunn's index is undefined
    expected = brute_force_dunn(D, labels)
    assert dunn_index(X, labels, metric=metric, tile=16) == pytest.approx(expected, rel=1e-12, abs=0)
    q = cluster_quality(X, labels, metric=metric, tile=16)
    assert q.dunn == pytest.approx(expected, rel=1e-12, abs=0)
    assert q.min_intercluster_distance == pytest.approx(D[~same].min(), rel=1e-12, abs=0)


def test_the_cosine_oracle_is_scipys_cosine():
    # The brute force above is scipy's "cosine" up to its 1 - u.v rounding (about 1e-16).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    X[7] = 0.0
    with np.errstate(invalid="ignore"):
        scipy_cosine = np.nan_to_num(cdist(X, X, "cosine"), nan=1.0)
    np.fill_diagonal(scipy_cosine, 0.0)
    np.testing.assert_allclose(brute_force_distances(X, "cosine"), scipy_cosine, rtol=0, atol=1e-15)


@pytest.mark.parametrize("metric", FEATURE_METRICS)
def test_larger_data_over_several_tiles_agree_with_the_oracles(metric):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(700, 20)) + rng.normal(size=(1, 20)) * 3).astype(np.float32)
    X[5] = 0.0
    y = rng.integers(-3, 4, size=700)
    X64 = X.astype(np.float64)
    q, samples = cluster_quality(X, y, metric=metric, tile=128, return_samples=True)
    np.testing.assert_allclose(samples, sk_samples(X64, y, metric=metric), rtol=0, atol=1e-6)
    assert q.silhouette == pytest.approx(sk_score(X64, y, metric=metric), abs=1e-6)
    assert q.dunn == pytest.approx(brute_force_dunn(brute_force_distances(X64, metric), y), rel=1e-12, abs=0)


def test_cosine_dunn_keeps_distances_that_one_minus_cos_loses():
    # Two clusters whose closest pair is 1e-7 radians apart: cosine distance 5e-15, which
    # 1 - u.v / (|u| |v|) in float64 (scipy's cosine) gets wrong by 2 %. The exact value of the
    # float64 rows, to 50 digits, is the oracle.
    t = np.arctan2(1.0, 3.0) + 1e-7
    X = np.array([[3.0, 1.0], [7 * np.cos(t), 7 * np.sin(t)], [-1.0, 0.1], [0.2, -1.0]])
    y = np.array([0, 1, 0, 1])
    getcontext().prec = 50
    a, b = [[Decimal(float(v)) for v in row] for row in X[:2]]
    exact_min = float(1 - (a[0] * b[0] + a[1] * b[1]) / ((a[0] ** 2 + a[1] ** 2) * (b[0] ** 2 + b[1] ** 2)).sqrt())
    q = cluster_quality(X, y, metric="cosine")
    assert q.min_intercluster_distance == pytest.approx(exact_min, rel=1e-9, abs=0)
    assert abs(cdist(X[:1], X[1:2], "cosine")[0, 0] / exact_min - 1) > 1e-2  # what 1 - cos gives


def test_zero_rows_follow_sklearns_cosine_convention():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(silhouette_samples(X, y, metric="cosine"), sk_samples(X, y, metric="cosine"),
                               atol=1e-7)
    # The two zero rows are 1 apart (their cluster's diameter), and 1 from everything else.
    q = cluster_quality(X, y, metric="cosine")
    assert q.max_cluster_diameter == 1.0
    assert q.dunn == pytest.approx(brute_force_dunn(brute_force_distances(X, "cosine"), y), rel=1e-12, abs=0)


def test_l2_is_euclidean_and_precomputed_matches_the_features():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(80, 4)), rng.integers(0, 3, 80)
    assert silhouette_score(X, y, metric="l2") == silhouette_score(X, y)
    D = cdist(X, X)
    assert silhouette_score(D, y, metric="precomputed") == pytest.approx(silhouette_score(X, y), abs=1e-6)
    assert dunn_index(D, y, metric="precomputed") == pytest.approx(dunn_index(X, y), rel=1e-12, abs=0)
    # sklearn's tolerance on the diagonal: 100 eps of the matrix's float type
    D[3, 3] = 1e-14
    assert silhouette_score(D, y, metric="precomputed") == pytest.approx(sk_score(D, y, metric="precomputed"),
                                                                         abs=1e-12)
    # Integer distances are read as given.
    Di = np.abs(np.subtract.outer(np.arange(10), np.arange(10)))
    yi = np.arange(10) // 5
    assert silhouette_score(Di, yi, metric="precomputed") == pytest.approx(sk_score(Di, yi, metric="precomputed"))


def test_column_vector_labels_are_taken_with_sklearns_warning():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(30, 3)), rng.integers(0, 3, 30)
    with pytest.warns(DataConversionWarning, match="column-vector"):
        got = silhouette_score(X, y[:, None])
    assert got == silhouette_score(X, y)


# -- sample_size ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_sample_size_draws_the_same_sample_as_sklearn(metric):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 6))
    X = cdist(X, X) if metric == "precomputed" else X
    y = rng.integers(0, 5, 300).astype(str)
    for random_state in (0, 7, 12345):
        ours = silhouette_score(X, y, metric=metric, sample_size=60, random_state=random_state)
        theirs = sk_score(X, y, metric=metric, sample_size=60, random_state=random_state)
        assert ours == pytest.approx(theirs, abs=1e-6)
    # A RandomState instance is drawn from as scikit-learn draws from it.
    ours = silhouette_score(X, y, metric=metric, sample_size=60, random_state=np.random.RandomState(3))
    assert ours == pytest.approx(sk_score(X, y, metric=metric, sample_size=60,
                                          random_state=np.random.RandomState(3)), abs=1e-6)
    # None: numpy's global state, as in scikit-learn.
    np.random.seed(11)
    ours = silhouette_score(X, y, metric=metric, sample_size=60)
    np.random.seed(11)
    assert ours == pytest.approx(sk_score(X, y, metric=metric, sample_size=60), abs=1e-6)


def test_sample_size_is_an_estimate_and_all_points_give_the_exact_value():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(200, 3)) + np.repeat(np.eye(3) * 2, [70, 70, 60], axis=0), np.repeat([0, 1, 2], [70, 70, 60])
    exact = silhouette_score(X, y)
    estimates = {silhouette_score(X, y, sample_size=40, random_state=s) for s in range(5)}
    assert len(estimates) > 1 and exact not in estimates
    assert silhouette_score(X, y, sample_size=500, random_state=0) == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_sample_size_must_be_a_whole_number_of_at_least_one(bad):
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    with pytest.raises(InvalidInputError, match="sample_size"):
        silhouette_score(X, y, sample_size=bad)


# -- errors ---------------------------------------------------------------------------------


X_OK, Y_OK = np.random.default_rng(6).normal(size=(12, 3)), np.arange(12) % 3


@pytest.mark.parametrize("fn", [silhouette_score, silhouette_samples, dunn_index, cluster_quality])
@pytest.mark.parametrize("metric", ["manhattan", "cityblock", "EUCLIDEAN", None, lambda a, b: 0.0])
def test_an_unsupported_metric_names_the_supported_ones(fn, metric):
    with pytest.raises(InvalidInputError, match="'euclidean'.*'sqeuclidean', 'cosine' and 'precomputed'"):
        fn(X_OK, Y_OK, metric=metric)


@pytest.mark.parametrize("fn", [silhouette_score, silhouette_samples, dunn_index, cluster_quality])
@pytest.mark.parametrize("metric", METRICS)
def test_complex_and_sparse_input_are_refused_clearly(fn, metric):
    X = cdist(X_OK, X_OK) if metric == "precomputed" else X_OK
    with pytest.raises(InvalidInputError, match="Complex data not supported"):
        fn(X + 0j, Y_OK, metric=metric)
    with pytest.raises(InvalidInputError, match=r"sparse.*toarray\(\)"):
        fn(sp.csr_matrix(X), Y_OK, metric=metric)


def _precomputed(change):
    D = cdist(X_OK, X_OK)
    change(D)
    return D


@pytest.mark.parametrize("fn", [silhouette_score, silhouette_samples, dunn_index, cluster_quality])
@pytest.mark.parametrize(
    "D, match",
    [
        (cdist(X_OK, X_OK)[:, :10], r"Precomputed metric requires shape \(n_queries, n_indexed\). Got \(12, 10\)"),
        (_precomputed(lambda D: D.__setitem__((2, 5), -1.0)), "Negative values in data passed to"),
        (_precomputed(lambda D: D.__setitem__((4, 4), 1e-3)), "non-zero elements on the diagonal"),
        (_precomputed(lambda D: D.__setitem__((4, 5), np.nan)), "NaN or infinite"),
        (np.ones((12, 12), dtype=int), "non-zero elements on the diagonal"),
        (cdist(X_OK, X_OK)[None], "2-D"),
    ],
)
def test_a_bad_precomputed_matrix_gets_sklearns_message(fn, D, match):
    with pytest.raises(InvalidInputError, match=match):
        fn(D, Y_OK, metric="precomputed")


def test_labels_that_cannot_be_sorted_together_are_refused():
    labels = np.array([1, "a"] * 6, dtype=object)
    with pytest.raises(InvalidInputError, match="cannot be sorted"):
        silhouette_score(X_OK, labels)


def test_the_dask_labels_check_still_refuses_column_vectors():
    # check_labels keeps its behaviour for its other callers (the Dask metrics).
    from aeclust._validation import check_labels

    with pytest.raises(InvalidInputError, match="1-D"):
        check_labels(np.zeros((5, 1)), 5)


# -- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine", "precomputed"])
def test_new_metrics_are_the_same_bits_for_any_threads_and_schedule(monkeypatch, metric):
    # Points near the origin and far out: the order of the float64 additions changes the bits.
    rng = np.random.default_rng(8)
    X = rng.normal(scale=1e-3, size=(300, 4))
    X[::10] = rng.normal(scale=1e3, size=(30, 4))
    X = cdist(X, X) if metric == "precomputed" else X.astype(np.float32)
    y = rng.integers(0, 3, 300)
    seen = set()
    for threads, delays in [(1, False), (2, False), (4, True), (7, True)]:
        monkeypatch.setenv(_pairwise.THREADS_ENV, str(threads))
        pause = random.Random(threads)
        lock = threading.Lock()

        def hook():
            with lock:
                wait = pause.random() * 0.002
            time.sleep(wait)

        monkeypatch.setattr(_pairwise, "_task_hook", hook if delays else None)
        q, s = cluster_quality(X, y, metric=metric, tile=32, return_samples=True)
        seen.add((s.tobytes(), q.silhouette, q.dunn, dunn_index(X, y, metric=metric, tile=32)))
    assert len(seen) == 1


def test_no_warning_for_ordinary_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for metric in FEATURE_METRICS:
            cluster_quality(X_OK.tolist(), [f"c{v}" for v in Y_OK], metric=metric)


def test_precomputed_dunn_leaves_the_diagonal_out():
    # sklearn lets a diagonal of up to 100 eps through; a point and itself are no pair, so
    # clusters of single points still have no diameter.
    D = cdist(X_OK, X_OK)
    np.fill_diagonal(D, 1e-14)
    with pytest.raises(InvalidInputError, match="undefined"):
        dunn_index(D, np.arange(12), metric="precomputed")
    assert dunn_index(D, Y_OK, metric="precomputed") == pytest.approx(
        brute_force_dunn(cdist(X_OK, X_OK), Y_OK), rel=1e-12, abs=0)
