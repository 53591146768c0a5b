"""Experiments: a configuration in, stages run in order, one run directory out.

A run directory holds ``results.json`` (configuration, metrics, timings,
versions) and whatever the stages write beside it. Every file is written
atomically, so an interrupted run never leaves a half-written result.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import __version__
from ._io import atomic_open, write_json
from .errors import AeclustError
from .kmeans import KMeans
from .metrics import cluster_quality

#: The numbers the study reports for k = 10 on the CIFAR-10 test set.
STUDY = {
    "pixels": {"silhouette": 0.054, "dunn": 0.0899},
    "codes": {"silhouette": 0.1040, "dunn": 0.02},
}


def versions() -> dict:
    """Versions of what produced a result, for results.json."""
    out = {"aeclust": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
           "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out


class Timings(dict):
    """Seconds per named stage, filled by ``with timings("stage"): ...``."""

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = round(time.perf_counter() - start, 4)


def cluster_and_judge(X: np.ndarray, *, k: int, seed: int | None, init: str = "random",
                      n_init: int = 1, timings: Timings | None = None, progress: bool = False) -> dict:
    """K-means on ``X``, then silhouette and Dunn in one fused pass.

    Returns a dictionary with the labels (``"labels"``, a numpy array) and the
    JSON-ready parts: ``"kmeans"`` and ``"metrics"``.
    """
    timings = timings if timings is not None else Timings()
    with timings("kmeans"):
        km = KMeans(n_clusters=k, init=init, n_init=n_init, random_state=seed).fit(X)
    with timings("metrics"):
        quality = cluster_quality(X, km.labels_, progress=progress)
    return {
        "labels": km.labels_,
        "kmeans": {
            "n_clusters": k,
            "init": init,
            "n_init": n_init,
            "seed": seed,
            "n_iter": int(km.n_iter_),
            "converged": bool(km.converged_),
            "inertia": float(km.inertia_),
            "empty_cluster_reseeds": int(km.n_empty_clusters_),
            "cluster_sizes": np.bincount(km.labels_, minlength=k).tolist(),
        },
        "metrics": quality.to_dict(),
    }


def run_cluster(*, data_dir=None, out=None, k: int = 10, seed: int | None = 0, color: str = "gray",
                init: str = "random", n_init: int = 1, download: bool = True,
                progress: bool = True) -> dict:
    """Part 1 of the study: k-means on the preprocessed pixels of the CIFAR-10 test set.

    Writes ``results.json`` to ``out`` when it is given, and returns the same dictionary.
    """
    from .datasets import load_cifar10
    from .preprocess import preprocess

    timings = Timings()
    if out is not None:
        out = Path(out)
        _check_writable(out)
    with timings("load"):
        data = load_cifar10(data_dir, split="test", download=download, progress=progress)
    with timings("preprocess"):
        X = preprocess(data.test_images, color)
    result = cluster_and_judge(X, k=k, seed=seed, init=init, n_init=n_init,
                               timings=timings, progress=progress)
    labels = result.pop("labels")
    results = {
        "job": "cluster",
        "config": {"dataset": "cifar10", "split": "test", "features": f"pixels-{color}",
                   "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                   "k": k, "seed": seed, "init": init, "n_init": n_init},
        **result,
        "study": STUDY["pixels"] if color == "gray" else None,
        "timings": dict(timings),
        "versions": versions(),
    }
    if out is not None:
        save_labels(out / "labels.npy", labels)
        write_json(out / "results.json", results)
    return results


def save_labels(path: Path, labels: np.ndarray) -> None:
    """Write cluster labels as ``.npy``, atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, labels)


def _check_writable(out: Path) -> None:
    """Fail before any work when the output directory cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AeclustError(f"cannot write to output directory {out}: {exc.strerror or exc}; "
                           f"choose another with --out") from None
