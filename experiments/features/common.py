"""Shared helpers for the feature experiments: data, evaluation, result logging.

ACC, NMI and ARI are aeclust's own (:mod:`aeclust.external`), the scores that
``aeclust run`` reports, so that a row here and a run's report agree.

The scripts import this module by name: those in this folder find it beside
them, the archived ones (``experiments/archive/``) put this folder on their path.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from aeclust.external import ari, nmi
from aeclust.external import clustering_accuracy as acc
from aeclust.kmeans import KMeans

__all__ = ["ROOT", "RESULTS", "load", "acc", "judge", "scores", "patch_pca", "machine", "log"]

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "features.jsonl"


def load(data_dir: str | os.PathLike | None = None) -> SimpleNamespace:
    """Both splits of CIFAR-10, from where aeclust looks for it (AECLUST_DATA, else its cache), downloaded if missing.

    Returns
    -------
    types.SimpleNamespace
        ``train_images`` (50,000 uint8 RGB images; their labels are never
        needed, the features learn without them), ``test_images`` and
        ``test_labels`` (10,000).
    """
    from aeclust.datasets import load_dataset

    train, test = (load_dataset("cifar10", data_dir, split=split, progress=False) for split in ("train", "test"))
    return SimpleNamespace(train_images=train.images, test_images=test.images, test_labels=test.labels)


def judge(features: np.ndarray, labels: np.ndarray, *, seed: int, n_init: int = 5) -> dict:
    """k-means (k=10, k-means++, aeclust's own) on the features, scored against the labels."""
    t0 = time.perf_counter()
    c = KMeans(10, init="k-means++", n_init=n_init, random_state=seed).fit(features).labels_
    return {**scores(labels, c), "kmeans_seconds": round(time.perf_counter() - t0, 2)}


def scores(labels: np.ndarray, clusters: np.ndarray) -> dict:
    """ACC, NMI and ARI of the clusters against the labels."""
    return {"acc": acc(labels, clusters), "nmi": nmi(labels, clusters), "ari": ari(labels, clusters)}


def patch_pca(folder: str | os.PathLike, k: int = 256, dims: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Patch features saved by ``experiments/archive/coates_screen.py``, projected for neighbour mining.

    Parameters
    ----------
    folder : str or path-like
        The folder given to ``coates_screen.py``, which holds
        ``coates_K{k}_tr.npy`` (10,000 training images) and ``coates_K{k}_te.npy``
        (the 10,000 test images).
    k : int
        The dictionary size the features were made with.
    dims : int
        Whitened principal components to keep.

    Returns
    -------
    train, test : numpy.ndarray
        Standardised, projected on ``dims`` whitened principal components of the
        training part, each row L2-normalised.
    """
    folder = Path(folder)
    ftr, fte = np.load(folder / f"coates_K{k}_tr.npy"), np.load(folder / f"coates_K{k}_te.npy")
    m, s = ftr.mean(0), ftr.std(0) + 1e-6
    _, S, Vt = np.linalg.svd((ftr - m) / s, full_matrices=False)
    P = Vt[:dims].T / (S[:dims] / np.sqrt(len(ftr)))
    tr, te = ((ftr - m) / s) @ P, ((fte - m) / s) @ P
    return (tr / np.linalg.norm(tr, axis=1, keepdims=True), te / np.linalg.norm(te, axis=1, keepdims=True))


def machine() -> dict:
    """How busy the machine was, for comparing timings across rows."""
    return {"host_cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform()}


def log(row: dict, path: Path = RESULTS) -> None:
    """Append ``row`` (with the time and :func:`machine`) to the results file and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **row, "machine": machine()}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
