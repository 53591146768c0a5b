"""External scores: how well clusters agree with known class labels.

Silhouette and Dunn judge a clustering by its geometry alone. When the true
classes are known (CIFAR-10, the digits), these scores say how far the clusters
recover them, and they are the numbers that the image-clustering literature
reports, so a run can be set beside published results:

* clustering accuracy (ACC): the best one-to-one matching of clusters to
  classes, found with the Hungarian method;
* normalised mutual information (NMI, arithmetic mean normalisation, as
  scikit-learn computes it by default);
* adjusted Rand index (ARI);
* purity: each cluster counted as its majority class.

Labels may be any values (ints, strings); they need not be contiguous, and the
number of clusters need not equal the number of classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

__all__ = [
    "clustering_accuracy",
    "nmi",
    "ari",
    "purity",
    "confusion",
    "match_clusters",
    "external_scores",
    "LITERATURE",
    "literature_table",
    "plot_confusion",
]

#: Published scores on CIFAR-10 (all 60,000 RGB images, 10 clusters), as
#: collected in Chang et al., "Deep Adaptive Image Clustering", ICCV 2017,
#: Table 2. ``None``: not given here.
LITERATURE: tuple[dict, ...] = (
    {"method": "k-means", "acc": 0.229, "nmi": 0.087, "ari": 0.049},
    {"method": "AE + k-means", "acc": 0.314, "nmi": 0.239, "ari": None},
    {"method": "DEC", "acc": 0.301, "nmi": 0.257, "ari": None},
)
LITERATURE_DATASET = "CIFAR-10, all 60,000 RGB images (train + test), k = 10"


def _encode(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check both label vectors and map their values to 0..C-1 and 0..K-1."""
    arrays = []
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        y = np.asarray(y)
        if y.ndim != 1:
            raise InvalidInputError(f"{name} must be 1-D (one label per sample), got shape {y.shape}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise InvalidInputError(f"{name} contains NaN or infinite values")
        arrays.append(y)
    y_true, y_pred = arrays
    if len(y_true) != len(y_pred):
        raise InvalidInputError(
            f"y_true has {len(y_true)} labels and y_pred {len(y_pred)}; they must match"
        )
    if len(y_true) == 0:
        raise InvalidInputError("y_true and y_pred are empty; at least one sample is needed")
    classes, t = np.unique(y_true, return_inverse=True)
    clusters, p = np.unique(y_pred, return_inverse=True)
    return t.ravel(), p.ravel(), classes, clusters


def _counts(t: np.ndarray, p: np.ndarray, n_classes: int, n_clusters: int) -> np.ndarray:
    """Cluster x class contingency table of encoded labels."""
    table = np.zeros((n_clusters, n_classes), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return table


def confusion(y_true, y_pred, *, n_classes: int | None = None, n_clusters: int | None = None) -> np.ndarray:
    """Cluster x class count matrix.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True class of each sample.
    y_pred : array-like of shape (n_samples,)
        Cluster of each sample.
    n_classes, n_clusters : int, optional
        Minimum number of columns and rows. Used only when both label vectors
        hold non-negative integers, which then index the matrix directly, so
        that a class absent from ``y_true`` still gets its (empty) column.

    Returns
    -------
    ndarray of shape (n_clusters, n_classes), int64
        ``M[i, j]`` is the number of samples of class ``j`` put in cluster ``i``.
        With non-negative integer labels, row ``i`` is cluster ``i`` and column
        ``j`` is class ``j``; otherwise rows and columns follow the sorted
        distinct label values.
    """
    t, p, classes, clusters = _encode(y_true, y_pred)
    if classes.dtype.kind in "iu" and clusters.dtype.kind in "iu" and classes.min() >= 0 and clusters.min() >= 0:
        rows = max(int(clusters.max()) + 1, n_clusters or 0)
        cols = max(int(classes.max()) + 1, n_classes or 0)
        return _counts(classes[t], clusters[p], cols, rows)
    return _counts(t, p, len(classes), len(clusters))


def match_clusters(matrix) -> np.ndarray:
    """The one-to-one matching of clusters to classes that maximises the agreement.

    Parameters
    ----------
    matrix : array-like of shape (n_clusters, n_classes)
        A count matrix from :func:`confusion`.

    Returns
    -------
    ndarray of shape (n_clusters,), int
        The class matched to each cluster, or -1 for a cluster left unmatched
        (there are more clusters than classes).
    """
    from scipy.optimize import linear_sum_assignment

    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise InvalidInputError(f"matrix must be 2-D (clusters x classes), got shape {matrix.shape}")
    # The rectangular assignment leaves surplus clusters (or classes) unmatched:
    # the same optimum as padding the matrix with zeros to a square.
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    match = np.full(matrix.shape[0], -1, dtype=np.intp)
    match[rows] = cols
    return match


def clustering_accuracy(y_true, y_pred) -> float:
    """Clustering accuracy: the fraction of samples right under the best one-to-one
    matching of clusters to classes (Hungarian method).

    With more clusters than classes the surplus clusters match no class and all
    their samples count as wrong; with fewer, some classes go unmatched. So ACC
    cannot be raised by splitting clusters, unlike :func:`purity`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_pred : array-like of shape (n_samples,)

    Returns
    -------
    float in [0, 1]
        1.0 when the clusters are the classes up to renaming.
    """
    t, p, classes, clusters = _encode(y_true, y_pred)
    table = _counts(t, p, len(classes), len(clusters))
    match = match_clusters(table)
    matched = match >= 0
    return float(table[np.flatnonzero(matched), match[matched]].sum() / len(t))


def purity(y_true, y_pred) -> float:
    """Purity: each cluster is credited with the samples of its majority class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_pred : array-like of shape (n_samples,)

    Returns
    -------
    float in (0, 1]
        Note that one cluster per sample gives 1.0: compare purities only at
        equal numbers of clusters.
    """
    t, p, classes, clusters = _encode(y_true, y_pred)
    table = _counts(t, p, len(classes), len(clusters))
    return float(table.max(axis=1).sum() / len(t))


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information (scikit-learn's, arithmetic normalisation).

    Returns
    -------
    float in [0, 1]
    """
    from sklearn.metrics import normalized_mutual_info_score

    t, p, _, _ = _encode(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def ari(y_true, y_pred) -> float:
    """Adjusted Rand index (scikit-learn's): 0 for chance agreement, 1 for identical partitions.

    Returns
    -------
    float in [-0.5, 1]
    """
    from sklearn.metrics import adjusted_rand_score

    t, p, _, _ = _encode(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def external_scores(y_true, y_pred) -> dict:
    """All four external scores at once.

    Returns
    -------
    dict
        ``{"acc": float, "nmi": float, "ari": float, "purity": float}``.
    """
    return {
        "acc": clustering_accuracy(y_true, y_pred),
        "nmi": nmi(y_true, y_pred),
        "ari": ari(y_true, y_pred),
        "purity": purity(y_true, y_pred),
    }


def literature_table(ours: dict | None = None, *, label: str = "this run") -> str:
    """The published CIFAR-10 scores as a markdown table, optionally with a row of ours.

    Parameters
    ----------
    ours : dict, optional
        Scores from :func:`external_scores`; added as the last row.
    label : str
        Name of that row.

    Returns
    -------
    str
        Markdown; missing values are shown as "n/a".
    """
    rows = [dict(r) for r in LITERATURE]
    if ours is not None:
        rows.append({"method": label, **{m: ours.get(m) for m in ("acc", "nmi", "ari")}})

    def cell(v):
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["| method | ACC | NMI | ARI |", "|---|---:|---:|---:|"]
    lines += [f"| {r['method']} | {cell(r['acc'])} | {cell(r['nmi'])} | {cell(r['ari'])} |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_confusion(matrix, class_names, path: str | os.PathLike, title: str = "Clusters against classes",
                   *, reorder: bool = True) -> Path:
    """Heatmap of a cluster x class count matrix, written atomically as PNG.

    Parameters
    ----------
    matrix : array-like of shape (n_clusters, n_classes)
        Counts, as from :func:`confusion`.
    class_names : sequence of str or None
        One name per column; None numbers the columns.
    path : str or path-like
        Where the PNG goes; parent folders are created.
    title : str
    reorder : bool, default=True
        Put each cluster on the row of the class it is matched to (Hungarian),
        so that agreement shows as a bright diagonal; rows keep their cluster
        numbers as tick labels.

    Returns
    -------
    Path
    """
    from ._plotting import save_png, subplots

    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.size == 0:
        raise InvalidInputError(f"matrix must be a non-empty 2-D count matrix, got shape {matrix.shape}")
    n_clusters, n_classes = matrix.shape
    if class_names is None:
        class_names = [str(j) for j in range(n_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != n_classes:
        raise InvalidInputError(
            f"{len(class_names)} class names for a matrix with {n_classes} class columns; they must match"
        )
    order = np.arange(n_clusters)
    if reorder:
        match = match_clusters(matrix)
        # Matched clusters in class order, then the unmatched ones by size.
        key = np.where(match >= 0, match, n_classes + np.argsort(np.argsort(-matrix.sum(axis=1))))
        order = np.argsort(key, kind="stable")
    shown = matrix[order]

    fig, ax = subplots(figsize=(0.55 * n_classes + 2.5, 0.45 * n_clusters + 1.8))
    im = ax.imshow(shown, cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="images")
    ax.set_xticks(range(n_classes))
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticks(range(n_clusters))
    ax.set_yticklabels([str(i) for i in order])
    ax.set_xlabel("true class")
    ax.set_ylabel("cluster")
    ax.set_title(title)
    if n_clusters * n_classes <= 400:  # numbers stay legible up to about 20 x 20
        threshold = shown.max() / 2 if shown.max() > 0 else 1
        for i in range(n_clusters):
            for j in range(n_classes):
                v = shown[i, j]
                text = str(v) if shown.dtype.kind in "iub" else f"{v:.2g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if v > threshold else "white")
    return save_png(fig, path)
