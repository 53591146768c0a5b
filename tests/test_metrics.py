import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import silhouette_samples as sk_silhouette_samples
from sklearn.metrics import silhouette_score as sk_silhouette

from aeclust import _pairwise, cluster_quality, dunn_index, metrics, silhouette_score
from aeclust.errors import InvalidInputError
from aeclust.metrics import silhouette_samples

from helpers.data import make_blobs


def brute_force_dunn(X, labels):
    X = np.asarray(X, dtype=np.float64)
    D = cdist(X, X)
    same = labels[:, None] == labels[None, :]
    return D[~same].min() / D[same].max()


def datasets():
    rng = np.random.default_rng(42)
    X1, y1 = make_blobs(n=300, d=5, k=4, seed=0)
    X2 = rng.normal(size=(257, 33)).astype(np.float32)
    y2 = rng.integers(0, 6, size=257) * 7 - 3  # non-contiguous, negative label values
    X3, y3 = make_blobs(n=120, d=3, k=5, spread=2.0, seed=3, dtype=np.float64)
    y3 = y3.copy()
    y3[:3] = [100, 101, 102]  # three singleton clusters
    X4 = (rng.random((400, 64)) * 255).astype(np.float32)  # pixel-like, large norms, uncentred
    y4 = rng.integers(0, 10, size=400)
    return [(X1, y1), (X2, y2), (X3, y3), (X4, y4)]


@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("tile", [16, 100, 1024])
def test_silhouette_equals_sklearn(i, tile):
    X, y = datasets()[i]
    assert silhouette_score(X, y, tile=tile) == pytest.approx(sk_silhouette(X, y), abs=1e-5)
    np.testing.assert_allclose(silhouette_samples(X, y, tile=tile), sk_silhouette_samples(X, y), atol=1e-5)


@pytest.mark.parametrize("i", range(4))
@pytest.mark.parametrize("tile", [16, 100, 1024])
def test_dunn_equals_brute_force(i, tile):
    X, y = datasets()[i]
    assert dunn_index(X, y, tile=tile) == pytest.approx(brute_force_dunn(X, y), rel=1e-6)


@pytest.mark.parametrize("i", range(4))
def test_fused_pass_equals_the_separate_metrics(i):
    X, y = datasets()[i]
    q = cluster_quality(X, y, tile=64)
    assert q.silhouette == pytest.approx(silhouette_score(X, y, tile=64), abs=1e-12)
    assert q.dunn == pytest.approx(dunn_index(X, y, tile=64), rel=1e-12)
    assert q.dunn == pytest.approx(q.min_intercluster_distance / q.max_cluster_diameter)
    assert q.n_clusters == len(np.unique(y))
    assert set(q.to_dict()) >= {"silhouette", "dunn"}


def test_hand_computed_case():
    # Two clusters on a line: {0, 1} and {4}. Distances: 0-1: 1, 0-4: 4, 1-4: 3.
    X = np.array([[0.0], [1.0], [4.0]])
    y = np.array([0, 0, 1])
    # s(0) = (4 - 1)/4, s(1) = (3 - 1)/3, s(2) = 0 (singleton)
    assert silhouette_score(X, y) == pytest.approx((0.75 + 2 / 3 + 0) / 3)
    # Dunn = closest different-cluster pair (3) / widest cluster (1)
    assert dunn_index(X, y) == pytest.approx(3.0)


def test_near_duplicate_points_across_clusters_are_measured_exactly():
    # Float32 cancellation would turn a 1e-3 gap at norm ~1e3 into noise; the re-measurement must not.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 50)) + 1000.0
    X[1] = X[0] + 1e-3
    y = np.arange(200) % 4
    y[0], y[1] = 0, 1
    assert dunn_index(X, y) == pytest.approx(brute_force_dunn(X, y), rel=1e-6)


@pytest.mark.parametrize("fn", [silhouette_score, dunn_index, cluster_quality])
@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.ones((5, 2)), np.zeros(5), "at least 2"),
        (np.ones((5, 2)), np.zeros(4), "length 4"),
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), np.array([0, 1, 1]), "NaN"),
        (np.array([[0.0, np.inf], [1, 1], [2, 2]]), np.array([0, 1, 1]), "NaN or infinite"),
        (np.ones((1, 2)), np.zeros(1), "at least 2"),
        (np.ones(5), np.zeros(5), "2-D"),
    ],
)
def test_bad_input_raises_value_error(fn, X, y, match):
    with pytest.raises(ValueError, match=match):
        fn(X, y)


def test_silhouette_needs_fewer_clusters_than_samples():
    with pytest.raises(InvalidInputError, match="n_samples - 1"):
        silhouette_score(np.arange(8.0).reshape(4, 2), np.arange(4))


def test_dunn_undefined_when_every_cluster_is_a_point():
    with pytest.raises(InvalidInputError, match="undefined"):
        dunn_index(np.arange(8.0).reshape(4, 2), np.arange(4))


@pytest.mark.realdata
def test_cifar_subset_against_the_oracles(cifar_test_gray):
    X = cifar_test_gray[:3000]
    y = np.random.default_rng(0).integers(0, 10, size=len(X))
    q = cluster_quality(X, y)
    assert q.silhouette == pytest.approx(sk_silhouette(X, y), abs=1e-5)
    assert q.dunn == pytest.approx(brute_force_dunn(X, y), rel=1e-6)


def test_identical_points_are_at_distance_exactly_zero():
    # 22 copies of one point and one other point in one cluster, one more copy alone in
    # another: each copy's nearest other cluster is at distance 0, so its silhouette is -1.
    # The expansion |x|^2 - 2 x.y + |y|^2 leaves a residue for identical points; its square
    # root once made this -0.99962 at some scales.
    X = np.array([[0.0, 0.0]] * 23 + [[2.0, 6.0]])
    y = np.array([0] + [1] * 23)
    for scale in (1.0, 1e-3, 7.3, 1e3):
        assert silhouette_score(X * scale, y) == pytest.approx(-22 / 24, abs=1e-7)
        np.testing.assert_allclose(silhouette_samples(X * scale, y), sk_silhouette_samples(X * scale, y),
                                   atol=1e-6)
    X[5] = [-0.0, 0.0]  # equal to 0.0 though its bytes differ
    assert silhouette_score(X * 1e-3, y) == pytest.approx(-22 / 24, abs=1e-7)


def test_duplicate_ids_group_equal_rows_only_even_when_hashes_collide(monkeypatch):
    X = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [-0.0, 5.0], [0.0, 5.0], [3.0, 4.5]])
    ids = metrics._duplicate_ids(X)
    assert list(ids) == [0, 1, 0, 3, 3, 5]
    assert metrics._duplicate_ids(X[[0, 1, 3, 5]]) is None
    # Rows of 12 bytes are hashed one by one. Every row hashing alike must not merge
    # different rows: the full comparison decides.
    X3 = np.column_stack([X, X[:, :1]]).astype(np.float32)
    monkeypatch.setattr(metrics, "hash", lambda _: 7, raising=False)
    assert list(metrics._duplicate_ids(X3)) == [0, 1, 0, 3, 3, 5]
    assert metrics._duplicate_ids(X3[[0, 1, 3, 5]]) is None


def test_exact_extreme_reads_all_rows_when_the_candidates_hold_no_pair():
    # Candidates from one cluster only hold no other-cluster pair: the re-measure then
    # reads every row, and still returns the smallest distance from the candidates.
    X, y = datasets()[0]
    data = metrics._Sorted(X, y, min_clusters=2, max_clusters_rel=-1)
    rows = np.flatnonzero(data.codes == 0)[:5]
    got = data._exact_extreme(rows, same_cluster=False)
    D = cdist(data.rows(rows).astype(np.float64), data.rows(slice(None)).astype(np.float64))
    D[data.codes[rows][:, None] == data.codes[None, :]] = np.inf
    assert got == pytest.approx(D.min(), rel=1e-12)


# -- the kernels the in-memory pass and the Dask tasks share --------------------------------


def test_silhouette_from_sums_is_the_definition():
    X, y = datasets()[2]
    X = X.astype(np.float64)
    uniques, codes = np.unique(y, return_inverse=True)
    sums = cdist(X, X) @ np.eye(len(uniques))[codes]
    got = metrics.silhouette_from_sums(sums, codes, np.bincount(codes))
    np.testing.assert_allclose(got, sk_silhouette_samples(X, y), atol=1e-12)
    # A subset of the rows (a Dask chunk) gets the same values from its own rows of the sums.
    part = slice(40, 90)
    np.testing.assert_array_equal(metrics.silhouette_from_sums(sums[part], codes[part], np.bincount(codes)),
                                  got[part])


@pytest.mark.parametrize("same_cluster", [False, True])
def test_extreme_sq_distance64_is_the_first_extreme_pair(same_cluster):
    rng = np.random.default_rng(1)
    a, b = rng.integers(-3, 4, size=(30, 4)).astype(np.float64), rng.integers(-3, 4, size=(50, 4)).astype(np.float64)
    ca, cb = rng.integers(0, 3, size=30), rng.integers(0, 3, size=50)
    value, i, j = _pairwise.extreme_sq_distance64(a, _pairwise.sq_norms64(a), ca, b, _pairwise.sq_norms64(b), cb,
                                                 same_cluster=same_cluster)
    D2 = cdist(a, b, "sqeuclidean")
    wanted = ca[:, None] == cb[None, :] if same_cluster else ca[:, None] != cb[None, :]
    masked = np.where(wanted, D2, -np.inf if same_cluster else np.inf)
    flat = int(np.argmax(masked) if same_cluster else np.argmin(masked))  # ties: the first, row-major
    assert (i, j) == divmod(flat, 50) and value == D2[i, j]
    assert _pairwise.distance64(a[i], b[j]) == pytest.approx(np.sqrt(D2[i, j]))
    none, _, _ = _pairwise.extreme_sq_distance64(a, _pairwise.sq_norms64(a), np.zeros(30), b,
                                                _pairwise.sq_norms64(b), np.ones(50), same_cluster=True)
    assert none == -np.inf


def test_cluster_count_checks_and_dunn_parts():
    assert metrics.check_cluster_count(3, 10, max_clusters_rel=-1) == 3
    with pytest.raises(InvalidInputError, match="need at least 2"):
        metrics.check_cluster_count(1, 10)
    with pytest.raises(InvalidInputError, match="n_samples - 1"):
        metrics.check_cluster_count(10, 10, max_clusters_rel=-1)
    assert metrics.check_cluster_count(10, 10) == 10  # Dunn's index takes singletons
    q = metrics.ClusterQuality.from_parts(0.5, 3.0, 2.0, 10, 3)
    assert q.dunn == 1.5 and q.to_dict()["max_cluster_diameter"] == 2.0
    lo_cut, hi_cut = metrics.dunn_cuts(4.0, 9.0, 10, 100.0)
    assert lo_cut > 4.0 and hi_cut < 9.0
    near_min, near_max = metrics.near_extremes(np.array([4.0, 5.0, lo_cut]), np.array([9.0, 1.0, hi_cut]),
                                               (lo_cut, hi_cut))
    assert near_min.tolist() == [0, 2] and near_max.tolist() == [0, 2]
