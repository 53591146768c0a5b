"""Choosing k: k-means over a range of k, judged by inertia, silhouette and Dunn.

Each k is clustered with the from-scratch :class:`~aeclust.kmeans.KMeans`
seeded with the same seed, so the row for a given k does not depend on which
other values of k are in the sweep. The three criteria then each name a k:

* the elbow of the inertia curve, by the maximum-distance-to-chord rule
  (the "kneedle" idea): after scaling k and inertia to [0, 1], the k whose
  point lies farthest below the straight line from the first point to the last;
* the k with the highest silhouette;
* the k with the highest Dunn's index.
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

__all__ = ["parse_k_range", "sweep", "preferred_k", "elbow_k", "plot_sweep", "sweep_markdown", "write_sweep"]

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
        ``dunn``, ``n_iter``, ``converged``, ``kmeans_seconds``,
        ``metrics_seconds`` and ``seconds`` (their sum).

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
            t2 = time.perf_counter()
            rows.append({
                "k": k,
                "inertia": float(km.inertia_),
                "silhouette": quality.silhouette,
                "dunn": quality.dunn,
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


def _argmax_k(rows: list[dict], key: str) -> int | None:
    values = [(r[key], -r["k"]) for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    if not values:
        return None
    # Ties go to the smaller k: the simpler clustering.
    return -max(values)[1]


def preferred_k(rows: list[dict]) -> dict:
    """The k that each criterion prefers.

    Parameters
    ----------
    rows : list of dict
        The output of :func:`sweep` (needs ``k``, ``inertia``, ``silhouette``, ``dunn``).

    Returns
    -------
    dict
        ``{"elbow": k or None, "silhouette": k, "dunn": k}``; ties go to the smaller k.
    """
    if not rows:
        raise InvalidInputError("no sweep rows to choose k from")
    rows = sorted(rows, key=lambda r: r["k"])
    return {
        "elbow": elbow_k([r["k"] for r in rows], [r["inertia"] for r in rows]),
        "silhouette": _argmax_k(rows, "silhouette"),
        "dunn": _argmax_k(rows, "dunn"),
    }


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
    panels = [
        ("inertia", "inertia (sum of squares)", "elbow", "C0"),
        ("silhouette", "silhouette", "silhouette", "C1"),
        ("dunn", "Dunn's index", "dunn", "C2"),
    ]
    fig, axes = subplots(3, 1, figsize=(6.5, 7.5), sharex=True)
    for ax, (key, ylabel, criterion, color) in zip(axes, panels):
        ax.plot(ks, [r[key] for r in rows], "o-", color=color, markersize=4)
        chosen = best[criterion]
        if chosen is not None:
            value = next(r[key] for r in rows if r["k"] == chosen)
            ax.axvline(chosen, color="0.4", linestyle="--", linewidth=1)
            ax.plot([chosen], [value], "*", color="crimson", markersize=13,
                    label=f"{criterion if criterion == 'elbow' else 'best'}: k = {chosen}")
            ax.legend(loc="best", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("k (number of clusters)")
    if len(ks) <= 25:
        axes[-1].set_xticks(ks)
    fig.suptitle(title or "Choosing k")
    fig.tight_layout()
    return save_png(fig, path)


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
        "| k | inertia | silhouette | Dunn | iterations | seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        marks = [name for name, k in best.items() if k == r["k"]]
        k_cell = f"{r['k']} ({', '.join(marks)})" if marks else str(r["k"])
        lines.append(
            f"| {k_cell} | {r['inertia']:.6g} | {r['silhouette']:.4f} | {r['dunn']:.4f} | "
            f"{r['n_iter']}{'' if r.get('converged', True) else ' (cap)'} | {r['seconds']:.2f} |"
        )
    lines += ["", "Preferred k:", ""]
    lines += [
        f"- elbow of the inertia (maximum distance to the chord): {best['elbow'] if best['elbow'] is not None else 'none found'}",
        f"- highest silhouette: {best['silhouette']}",
        f"- highest Dunn's index: {best['dunn']}",
    ]
    return "\n".join(lines) + "\n"


def write_sweep(out_dir: str | os.PathLike, rows: list[dict], config: dict | None = None) -> dict:
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.png`` into ``out_dir``, each atomically.

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
        ``{"json": Path, "markdown": Path, "plot": Path, "preferred": dict}``.
    """
    out = Path(out_dir)
    rows = sorted(rows, key=lambda r: r["k"])
    best = preferred_k(rows)
    paths = {"json": out / "sweep.json", "markdown": out / "sweep.md", "plot": out / "sweep.png"}
    write_json(paths["json"], {"config": config or {}, "rows": rows, "preferred": best})
    write_text(paths["markdown"], sweep_markdown(rows, config))
    plot_sweep(rows, paths["plot"])
    return {**paths, "preferred": best}
