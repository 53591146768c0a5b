"""Choosing k: k-means over a range of k, judged by five criteria, and their consensus.

Each k is clustered with the from-scratch :class:`~aeclust.kmeans.KMeans`
seeded with the same seed, so the row for a given k does not depend on which
other values of k are in the sweep. The criteria then each name a k:

* the elbow of the inertia curve, by the maximum-distance-to-chord rule
  (the "kneedle" idea): after scaling k and inertia to [0, 1], the k whose
  point lies farthest below the straight line from the first point to the last;
* the k with the highest silhouette (the study's metric, exact, from scratch);
* the k with the highest Dunn's index (the study's metric, exact, from scratch);
* the k with the highest Calinski–Harabasz index (scikit-learn's: between- over
  within-cluster dispersion, each divided by its degrees of freedom);
* the k with the lowest Davies–Bouldin index (scikit-learn's: the mean over
  clusters of the worst ratio of summed spreads to centre distance).

The consensus is the k that most criteria name; a tie goes to the smaller k,
the simpler clustering.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

from ._io import write_json, write_text
from ._validation import check_array
from .errors import InvalidInputError
from .kmeans import KMeans
from .metrics import cluster_quality

__all__ = ["parse_k_range", "sweep", "preferred_k", "elbow_k", "plot_sweep", "sweep_markdown", "sweep_csv",
           "write_sweep", "CRITERIA"]

#: The criteria, as ``(key in preferred_k's result, row key, label, best is the highest)``;
#: the elbow reads the inertia curve's shape instead.
CRITERIA = (
    ("elbow", "inertia", "inertia (sum of squares)", None),
    ("silhouette", "silhouette", "silhouette", True),
    ("dunn", "dunn", "Dunn's index", True),
    ("calinski_harabasz", "calinski_harabasz", "Calinski–Harabasz", True),
    ("davies_bouldin", "davies_bouldin", "Davies–Bouldin (lower is better)", False),
)

_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")


def parse_k_range(text: str) -> list[int]:
    """Read the values of k from a string.

    Parameters
    ----------
    text : str
        ``"2..20"`` (both ends included), ``"2,4,8"``, ``"5"``, or a comma
        list mixing both, such as ``"2..6,8,10"``. Spaces are ignored.

    Returns
    -------
    list of int
        Sorted, without repeats.

    Raises
    ------
    InvalidInputError
        Anything else, a range whose end is below its start, or a k below 2
        (the silhouette and Dunn need at least two clusters).
    """
    hint = 'write k as "2..20" (a range, both ends included), "2,4,8" or "5"'
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"no values of k given; {hint}")
    ks: set[int] = set()
    for part in text.replace(" ", "").split(","):
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise InvalidInputError(f"k range {part!r} ends below its start; {hint}")
            ks.update(range(lo, hi + 1))
        elif part.isdigit():
            ks.add(int(part))
        else:
            raise InvalidInputError(f"cannot read {part!r} in k={text!r}; {hint}")
    if min(ks) < 2:
        raise InvalidInputError(
            f"k={min(ks)} is too small: the silhouette and Dunn's index need at least 2 clusters"
        )
    return sorted(ks)


def sweep(X, ks, *, seed: int | None, init="random", n_init: int = 1, progress: bool = True) -> list[dict]:
    """K-means for each k, with the inertia, silhouette and Dunn's index of each.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    ks : iterable of int
        Values of k; each must lie in 2 .. n_samples - 1. Run in increasing order.
    seed : int or None
        ``random_state`` of every k-means run; one seed for all k, so that each
        row can be reproduced on its own.
    init : {"random", "k-means++"}, default="random"
    n_init : int, default=1
    progress : bool, default=True
        Show a progress bar over k.

    Returns
    -------
    list of dict
        One per k, in increasing k: ``k``, ``inertia``, ``silhouette``,
        ``dunn``, ``calinski_harabasz``, ``davies_bouldin``, ``n_iter``,
        ``converged``, ``kmeans_seconds``, ``metrics_seconds`` and
        ``seconds`` (their sum).

    Raises
    ------
    InvalidInputError
        No k given, a k outside 2 .. n_samples - 1, or bad ``X``.
    """
    X = check_array(X, min_samples=3)
    ks = sorted({int(k) for k in ks})
    if not ks:
        raise InvalidInputError("no values of k to sweep")
    n = X.shape[0]
    bad = [k for k in ks if not 2 <= k <= n - 1]
    if bad:
        raise InvalidInputError(
            f"k={bad[0]} is out of range for {n} samples: the silhouette needs 2 <= k <= {n - 1}"
        )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ks), desc="k sweep", unit="k")
    rows = []
    try:
        for k in ks:
            if bar is not None:
                bar.set_postfix(k=k)
            t0 = time.perf_counter()
            km = KMeans(n_clusters=k, init=init, n_init=n_init, random_state=seed).fit(X)
            t1 = time.perf_counter()
            quality = cluster_quality(X, km.labels_)
            ch, db = _sklearn_indices(X, km.labels_)
            t2 = time.perf_counter()
            rows.append({
                "k": k,
                "inertia": float(km.inertia_),
                "silhouette": quality.silhouette,
                "dunn": quality.dunn,
                "calinski_harabasz": ch,
                "davies_bouldin": db,
                "n_iter": int(km.n_iter_),
                "converged": bool(km.converged_),
                "kmeans_seconds": round(t1 - t0, 4),
                "metrics_seconds": round(t2 - t1, 4),
                "seconds": round(t2 - t0, 4),
            })
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return rows


def _sklearn_indices(X: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """scikit-learn's Calinski–Harabasz and Davies–Bouldin indices of one clustering."""
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    from ._pairwise import single_threaded_blas

    # One BLAS thread: Davies-Bouldin's distances are matrix products, whose last bits
    # change with the thread count; the sweep gives the same bits on any machine size.
    with single_threaded_blas():
        return float(calinski_harabasz_score(X, labels)), float(davies_bouldin_score(X, labels))


def elbow_k(ks, inertias) -> int | None:
    """The elbow of a decreasing inertia curve, by the maximum distance to its chord.

    Both axes are scaled to [0, 1] so that the units of k and of the inertia do
    not matter; the chord joins the first and last points. The elbow is the
    point farthest below the chord.

    Parameters
    ----------
    ks : sequence of int
        Increasing values of k.
    inertias : sequence of float

    Returns
    -------
    int or None
        None with fewer than 3 values of k, when the curve does not fall from
        its first point to its last, or when no point lies below the chord
        (the curve does not bend towards the origin, so it has no elbow).
    """
    k = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    if len(k) < 3 or np.ptp(k) == 0 or np.ptp(y) == 0:
        return None
    kn = (k - k[0]) / (k[-1] - k[0])
    yn = (y - y.min()) / np.ptp(y)
    # Signed distance below the chord; the chord's length is the same for every
    # point, so the distance up to that constant is enough to rank them.
    chord_y = yn[0] + (yn[-1] - yn[0]) * kn
    below = chord_y - yn
    if yn[-1] >= yn[0]:  # not a falling curve: no elbow to speak of
        return None
    i = int(np.argmax(below))
    if below[i] <= 1e-12:
        return None
    return int(ks[i])


def _best_k(rows: list[dict], key: str, highest: bool = True) -> int | None:
    sign = 1.0 if highest else -1.0
    values = [(sign * r[key], -r["k"]) for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    if not values:
        return None
    # Ties go to the smaller k: the simpler clustering.
    return -max(values)[1]


def consensus_k(preferred: dict) -> int | None:
    """The k that most criteria prefer; a tie goes to the smaller k. None when none prefers any."""
    votes = [k for name, k in preferred.items() if name != "consensus" and k is not None]
    if not votes:
        return None
    return min(set(votes), key=lambda k: (-votes.count(k), k))


def preferred_k(rows: list[dict]) -> dict:
    """The k that each criterion prefers.

    Parameters
    ----------
    rows : list of dict
        The output of :func:`sweep` (needs ``k``, ``inertia``, ``silhouette``, ``dunn``).

    Returns
    -------
    dict
        ``{"elbow": k or None, "silhouette": k, "dunn": k, "calinski_harabasz": k,
        "davies_bouldin": k, "consensus": k}``; ties go to the smaller k. A
        criterion whose values the rows lack (a sweep from an older aeclust) names None.
    """
    if not rows:
        raise InvalidInputError("no sweep rows to choose k from")
    rows = sorted(rows, key=lambda r: r["k"])
    best = {"elbow": elbow_k([r["k"] for r in rows], [r["inertia"] for r in rows])}
    for name, key, _, highest in CRITERIA[1:]:
        best[name] = _best_k(rows, key, highest)
    best["consensus"] = consensus_k(best)
    return best


def plot_sweep(rows: list[dict], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Inertia, silhouette and Dunn's index against k, in three stacked panels.

    Each panel marks the k that its criterion prefers with a dashed line.

    Parameters
    ----------
    rows : list of dict
        The output of :func:`sweep`.
    path : str or path-like
        Where the PNG goes, written atomically.
    title : str, optional

    Returns
    -------
    Path
    """
    from ._plotting import save_png, subplots

    if not rows:
        raise InvalidInputError("no sweep rows to plot")
    rows = sorted(rows, key=lambda r: r["k"])
    best = preferred_k(rows)
    ks = [r["k"] for r in rows]
    panels = [c for c in CRITERIA if any(r.get(c[1]) is not None for r in rows)]
    fig, axes = subplots(len(panels), 1, figsize=(6.5, 1.9 * len(panels) + 1.2), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for i, (ax, (criterion, key, ylabel, _)) in enumerate(zip(axes, panels)):
        ax.plot(ks, [r.get(key) for r in rows], "o-", color=f"C{i}", markersize=4)
        if best["consensus"] is not None:
            ax.axvline(best["consensus"], color="seagreen", linewidth=2, alpha=0.35,
                       label=f"consensus: k = {best['consensus']}" if i == 0 else None)
        chosen = best[criterion]
        if chosen is not None:
            value = next(r[key] for r in rows if r["k"] == chosen)
            ax.axvline(chosen, color="0.4", linestyle="--", linewidth=1)
            ax.plot([chosen], [value], "*", color="crimson", markersize=13,
                    label=f"{criterion if criterion == 'elbow' else 'best'}: k = {chosen}")
        ax.legend(loc="best", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("k (number of clusters)")
    if len(ks) <= 25:
        axes[-1].set_xticks(ks)
    fig.suptitle(title or "Choosing k")
    fig.tight_layout()
    return save_png(fig, path)


_NAMES = {"elbow": "elbow of the inertia (maximum distance to the chord)", "silhouette": "highest silhouette",
          "dunn": "highest Dunn's index", "calinski_harabasz": "highest Calinski–Harabasz (scikit-learn)",
          "davies_bouldin": "lowest Davies–Bouldin (scikit-learn)",
          "consensus": "consensus (the k most criteria name; ties to the smaller k)"}


def _num(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def sweep_markdown(rows: list[dict], config: dict | None = None) -> str:
    """The sweep as a markdown document: configuration, one table row per k, preferred k.

    Returns
    -------
    str
    """
    rows = sorted(rows, key=lambda r: r["k"])
    best = preferred_k(rows)
    lines = ["# k sweep", ""]
    if config:
        lines += [f"- {key}: {value}" for key, value in config.items()] + [""]
    lines += [
        "| k | inertia | silhouette | Dunn | Calinski–Harabasz | Davies–Bouldin | iterations | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        marks = [name for name, k in best.items() if k == r["k"]]
        k_cell = f"{r['k']} ({', '.join(marks)})" if marks else str(r["k"])
        lines.append(
            f"| {k_cell} | {r['inertia']:.6g} | {r['silhouette']:.4f} | {r['dunn']:.4f} | "
            f"{_num(r.get('calinski_harabasz'), '.1f')} | {_num(r.get('davies_bouldin'), '.4f')} | "
            f"{r['n_iter']}{'' if r.get('converged', True) else ' (cap)'} | {r['seconds']:.2f} |"
        )
    lines += ["", "Preferred k:", ""]
    lines += [f"- {_NAMES[name]}: {k if k is not None else 'none found'}" for name, k in best.items()]
    lines += ["", "Calinski–Harabasz and Davies–Bouldin are scikit-learn's; the study judges by the silhouette "
                  "and Dunn's index."]
    return "\n".join(lines) + "\n"


def sweep_csv(rows: list[dict]) -> str:
    """The sweep as CSV: one line per k, and a column per criterion saying whether it prefers that k."""
    import csv
    import io

    rows = sorted(rows, key=lambda r: r["k"])
    best = preferred_k(rows)
    keys = ["k", "inertia", "silhouette", "dunn", "calinski_harabasz", "davies_bouldin", "n_iter", "converged",
            "seconds"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys + [f"preferred_by_{name}" for name in best])
    for r in rows:
        writer.writerow([r.get(key) for key in keys] + [int(k == r["k"]) for k in best.values()])
    return buf.getvalue()


def write_sweep(out_dir: str | os.PathLike, rows: list[dict], config: dict | None = None) -> dict:
    """Write ``sweep.json``, ``sweep.md``, ``sweep.csv`` and ``sweep.png`` into ``out_dir``, each atomically.

    Parameters
    ----------
    out_dir : str or path-like
        Created if missing.
    rows : list of dict
        The output of :func:`sweep`.
    config : dict, optional
        What produced the rows (data, features, seed, init, n_init ...); JSON-ready.

    Returns
    -------
    dict
        ``{"json": Path, "markdown": Path, "csv": Path, "plot": Path, "preferred": dict}``.
    """
    out = Path(out_dir)
    rows = sorted(rows, key=lambda r: r["k"])
    best = preferred_k(rows)
    paths = {"json": out / "sweep.json", "markdown": out / "sweep.md", "csv": out / "sweep.csv",
             "plot": out / "sweep.png"}
    write_json(paths["json"], {"config": config or {}, "rows": rows, "preferred": best})
    write_text(paths["markdown"], sweep_markdown(rows, config))
    write_text(paths["csv"], sweep_csv(rows))
    plot_sweep(rows, paths["plot"])
    return {**paths, "preferred": best}
