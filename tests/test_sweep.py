"""The k sweep: parsing k, choosing k on blobs, the elbow rule, the files written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.data import make_blobs

from aeclust.errors import InvalidInputError
from aeclust.sweep import consensus_k, elbow_k, parse_k_range, preferred_k, sweep, write_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2..6", [2, 3, 4, 5, 6]),
        ("2,4,8", [2, 4, 8]),
        ("5", [5]),
        (" 8, 2 ,4,4 ", [2, 4, 8]),
        ("2..4,10", [2, 3, 4, 10]),
        ("3..3", [3]),
    ],
)
def test_parse_k_range(text, expected):
    assert parse_k_range(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "2..", "..5", "6..2", "1", "0..4", "2-5", "2.5", "-3", "2,,4"])
def test_parse_k_range_rejects(text):
    with pytest.raises(InvalidInputError):
        parse_k_range(text)


def test_parse_k_range_error_says_what_to_write():
    with pytest.raises(InvalidInputError, match=r'"2\.\.20"'):
        parse_k_range("two")


def separated_blobs(n=240, k=4, seed=0):
    """k round blobs whose centres are far apart: k is beyond doubt."""
    rng = np.random.default_rng(seed)
    centers = 10.0 * np.eye(4)[:k]
    y = np.arange(n) % k
    return (centers[y] + rng.normal(scale=0.7, size=(n, 4))).astype(np.float32)


@pytest.fixture(scope="module")
def blob_rows():
    X = separated_blobs()
    return X, sweep(X, range(2, 8), seed=0, init="k-means++", n_init=3, progress=False)


def test_sweep_finds_true_k(blob_rows):
    _, rows = blob_rows
    assert [r["k"] for r in rows] == list(range(2, 8))
    best = preferred_k(rows)
    assert best["silhouette"] == 4
    assert best["elbow"] == 4
    assert best["calinski_harabasz"] == 4 and best["davies_bouldin"] == 4 and best["consensus"] == 4
    inertias = [r["inertia"] for r in rows]
    assert inertias[2] < inertias[1] < inertias[0]
    for r in rows:
        assert set(r) >= {"k", "inertia", "silhouette", "dunn", "calinski_harabasz", "davies_bouldin", "n_iter",
                          "converged", "seconds"}
        assert -1 <= r["silhouette"] <= 1 and r["dunn"] > 0
        assert r["calinski_harabasz"] > 0 and r["davies_bouldin"] > 0


def test_sklearn_indices_are_scikit_learns(blob_rows):
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    X, rows = blob_rows
    from aeclust import KMeans

    row = next(r for r in rows if r["k"] == 3)
    labels = KMeans(3, init="k-means++", n_init=3, random_state=0).fit(X).labels_
    assert row["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(X, labels), rel=1e-12)
    assert row["davies_bouldin"] == pytest.approx(davies_bouldin_score(X, labels), rel=1e-12)


def test_consensus_is_the_most_named_k_and_ties_go_to_the_smaller():
    assert consensus_k({"elbow": 3, "silhouette": 5, "dunn": 5, "calinski_harabasz": 3, "davies_bouldin": 7}) == 3
    assert consensus_k({"elbow": None, "silhouette": 5, "dunn": 5, "calinski_harabasz": 3, "davies_bouldin": 7}) == 5
    assert consensus_k({"elbow": None, "silhouette": None}) is None


def test_preferred_k_of_rows_without_the_newer_criteria():
    rows = [{"k": k, "inertia": 10.0 / k, "silhouette": s, "dunn": 0.1} for k, s in [(2, 0.1), (3, 0.5), (4, 0.2)]]
    best = preferred_k(rows)
    assert best["calinski_harabasz"] is None and best["davies_bouldin"] is None
    # elbow 3, silhouette 3, Dunn 2 (a tie: the smaller k): consensus 3.
    assert (best["elbow"], best["silhouette"], best["dunn"], best["consensus"]) == (3, 3, 2, 3)


def test_sweep_row_does_not_depend_on_other_ks(blob_rows):
    X, rows = blob_rows
    alone = sweep(X, [5], seed=0, init="k-means++", n_init=3, progress=False)[0]
    row5 = next(r for r in rows if r["k"] == 5)
    for key in ("inertia", "silhouette", "dunn", "n_iter"):
        assert alone[key] == row5[key]


def test_sweep_rejects_bad_k():
    X, _ = make_blobs(n=10, d=2, k=2)
    with pytest.raises(InvalidInputError, match="out of range"):
        sweep(X, [2, 10], seed=0, progress=False)
    with pytest.raises(InvalidInputError, match="no values"):
        sweep(X, [], seed=0, progress=False)


def test_elbow_rule():
    ks = [1, 2, 3, 4, 5, 6]
    # A sharp bend at k=3.
    assert elbow_k(ks, [100, 60, 20, 17, 14, 11]) == 3
    # Units do not matter: the same curve scaled gives the same elbow.
    assert elbow_k(ks, [1e6 * v for v in (100, 60, 20, 17, 14, 11)]) == 3
    # A straight line has no elbow, nor do too few points or a rising curve.
    assert elbow_k(ks, [60, 50, 40, 30, 20, 10]) is None
    assert elbow_k([2, 3], [10, 5]) is None
    assert elbow_k(ks, [1, 2, 3, 5, 8, 13]) is None


def test_preferred_k_ties_go_to_smaller_k():
    rows = [{"k": k, "inertia": 10.0 / k, "silhouette": s, "dunn": d}
            for k, s, d in [(2, 0.5, 0.1), (3, 0.5, 0.3), (4, 0.2, 0.3)]]
    best = preferred_k(rows)
    assert best["silhouette"] == 2 and best["dunn"] == 3
    rows = [{**r, "calinski_harabasz": 5.0, "davies_bouldin": 1.0} for r in rows]
    best = preferred_k(rows)
    assert best["calinski_harabasz"] == 2 and best["davies_bouldin"] == 2


def test_write_sweep_files(blob_rows, tmp_path):
    _, rows = blob_rows
    config = {"data": "blobs", "seed": 0, "init": "k-means++", "n_init": np.int64(3)}
    out = write_sweep(tmp_path / "run", rows, config)
    assert out["preferred"]["silhouette"] == 4
    saved = json.loads((tmp_path / "run" / "sweep.json").read_text())
    assert saved["config"]["n_init"] == 3
    assert [r["k"] for r in saved["rows"]] == list(range(2, 8))
    assert saved["preferred"] == out["preferred"]
    md = (tmp_path / "run" / "sweep.md").read_text()
    assert "| 4 (elbow, silhouette, dunn, calinski_harabasz, davies_bouldin, consensus)" in md
    assert "Calinski–Harabasz and Davies–Bouldin are scikit-learn's" in md
    assert sum(line.startswith("|") for line in md.splitlines()) == 2 + len(rows)  # header, rule, one line per k
    assert (tmp_path / "run" / "sweep.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["sweep.csv", "sweep.json", "sweep.md",
                                                                   "sweep.png"]
    import csv

    table = list(csv.DictReader((tmp_path / "run" / "sweep.csv").read_text().splitlines()))
    assert [int(r["k"]) for r in table] == list(range(2, 8))
    assert [r["k"] for r in table if r["preferred_by_consensus"] == "1"] == ["4"]
    assert float(table[0]["davies_bouldin"]) == rows[0]["davies_bouldin"]
