"""External scores against hand-computed cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from aeclust.errors import InvalidInputError
from aeclust.external import (
    LITERATURE,
    ari,
    clustering_accuracy,
    confusion,
    external_scores,
    literature_table,
    match_clusters,
    nmi,
    plot_confusion,
    purity,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _random_labels(seed=0, n=500, classes=10, clusters=10):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    # Clusters that partly follow the classes, so the scores are neither 0 nor 1.
    p = np.where(rng.random(n) < 0.6, y % clusters, rng.integers(0, clusters, n))
    return y, p


def test_perfect_clustering_scores_one():
    y = np.repeat(np.arange(5), 20)
    scores = external_scores(y, y)
    assert scores == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0, "purity": 1.0})


def test_accuracy_unchanged_by_relabelling():
    y, p = _random_labels()
    perm = np.random.default_rng(1).permutation(10)
    assert clustering_accuracy(y, perm[p]) == clustering_accuracy(y, p)
    # Renaming to non-contiguous values or strings changes nothing either.
    assert clustering_accuracy(y, p * 7 + 100) == clustering_accuracy(y, p)
    assert clustering_accuracy(y, np.array(list("abcdefghij"))[p]) == clustering_accuracy(y, p)
    # A perfect clustering under other names is still perfect.
    assert clustering_accuracy(y, perm[y]) == 1.0


def test_accuracy_hand_computed():
    # Classes 0,0,0,1,1,2; clusters 1,1,0,0,0,2.
    # Table (cluster x class): c0: [1,2,0], c1: [2,0,0], c2: [0,0,1].
    # Best matching: c1->0 (2), c0->1 (2), c2->2 (1): 5 of 6.
    y = [0, 0, 0, 1, 1, 2]
    p = [1, 1, 0, 0, 0, 2]
    assert clustering_accuracy(y, p) == pytest.approx(5 / 6)
    np.testing.assert_array_equal(confusion(y, p), [[1, 2, 0], [2, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(match_clusters(confusion(y, p)), [1, 0, 2])


def test_accuracy_beats_greedy_majority():
    # Both clusters have class 0 as their majority; the one-to-one matching
    # must give one of them class 1, which purity does not.
    y = [0, 0, 0, 1, 0, 0, 1, 1]
    p = [0, 0, 0, 0, 1, 1, 1, 1]
    # c0: [3,1], c1: [2,2] -> c0->0 (3) + c1->1 (2) = 5/8
    assert clustering_accuracy(y, p) == pytest.approx(5 / 8)
    assert purity(y, p) == pytest.approx((3 + 2) / 8)


def test_purity_hand_computed():
    y = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    p = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # c0: two 0s and one 1 -> 2; c1: two 1s and one 2 -> 2; c2: three 2s -> 3.
    assert purity(y, p) == pytest.approx(7 / 9)


def test_more_clusters_than_classes():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # each class split in two
    # Only two clusters can be matched: 4 of 8 right; purity is still perfect.
    assert clustering_accuracy(y, p) == pytest.approx(0.5)
    assert purity(y, p) == 1.0
    assert (match_clusters(confusion(y, p)) == -1).sum() == 2


def test_fewer_clusters_than_classes():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 0, 0, 1, 1])
    # c0 -> class 0 (2) and c1 -> class 2 (2): 4 of 6.
    assert clustering_accuracy(y, p) == pytest.approx(4 / 6)
    assert purity(y, p) == pytest.approx(4 / 6)
    assert confusion(y, p).shape == (2, 3)


@pytest.mark.parametrize("seed,clusters", [(0, 10), (1, 7), (2, 13)])
def test_nmi_and_ari_equal_sklearn(seed, clusters):
    y, p = _random_labels(seed, clusters=clusters)
    assert nmi(y, p) == pytest.approx(normalized_mutual_info_score(y, p), abs=1e-12)
    assert ari(y, p) == pytest.approx(adjusted_rand_score(y, p), abs=1e-12)


def test_accuracy_matches_brute_force_on_small_cases():
    from itertools import permutations

    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 4, 30)
        p = rng.integers(0, 4, 30)
        table = confusion(y, p, n_classes=4, n_clusters=4)
        best = max(sum(table[i, perm[i]] for i in range(4)) for perm in permutations(range(4)))
        assert clustering_accuracy(y, p) == pytest.approx(best / 30)


def test_confusion_fixed_size_for_integer_labels():
    m = confusion([0, 2, 2], [1, 1, 0], n_classes=4, n_clusters=3)
    np.testing.assert_array_equal(m, [[0, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    assert m.sum() == 3


@pytest.mark.parametrize(
    "y,p,match",
    [
        ([0, 1], [0, 1, 1], "must match"),
        ([[0, 1]], [0, 1], "1-D"),
        ([], [], "empty"),
        ([0.0, np.nan], [0, 1], "NaN"),
    ],
)
def test_bad_inputs(y, p, match):
    with pytest.raises(InvalidInputError, match=match):
        external_scores(y, p)


def test_literature_rows_and_table():
    methods = [r["method"] for r in LITERATURE]
    assert methods == ["k-means", "AE + k-means", "DEC"]
    assert LITERATURE[0] == {"method": "k-means", "acc": 0.229, "nmi": 0.087, "ari": 0.049}
    text = literature_table({"acc": 0.2, "nmi": 0.1, "ari": 0.05, "purity": 0.25}, label="ours")
    assert "| ours | 0.200 | 0.100 | 0.050 |" in text
    assert "| DEC | 0.301 | 0.257 | n/a |" in text


def test_plot_confusion_writes_png(tmp_path):
    y, p = _random_labels(clusters=12)
    path = plot_confusion(confusion(y, p), [f"class {i}" for i in range(10)], tmp_path / "sub" / "c.png", "test")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [f.name for f in path.parent.iterdir()] == ["c.png"]  # no temporary file left
    with pytest.raises(InvalidInputError, match="class names"):
        plot_confusion(confusion(y, p), ["a", "b"], tmp_path / "d.png")
