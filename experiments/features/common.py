"""Shared helpers for the feature experiments: data, evaluation, result logging.

ACC is the best one-to-one match of clusters to classes (Hungarian algorithm on
the confusion matrix); NMI and ARI come from scikit-learn.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from aeclust.kmeans import KMeans

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "features.jsonl"


def load():
    """CIFAR-10 from where aeclust looks for it (AECLUST_DATA, else its cache), downloaded if missing."""
    from aeclust.datasets import load_cifar10

    return load_cifar10(None, split="both", progress=False)


def acc(y, c) -> float:
    k = max(y.max(), c.max()) + 1
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (c, y), 1)
    r, col = linear_sum_assignment(-m)
    return float(m[r, col].sum() / len(y))


def judge(features: np.ndarray, labels: np.ndarray, *, seed: int, n_init: int = 5) -> dict:
    """k-means (k=10, k-means++, aeclust's own) on the features, scored against the labels."""
    t0 = time.perf_counter()
    c = KMeans(10, init="k-means++", n_init=n_init, random_state=seed).fit(features).labels_
    return {**scores(labels, c), "kmeans_seconds": round(time.perf_counter() - t0, 2)}


def scores(labels: np.ndarray, clusters: np.ndarray) -> dict:
    """ACC, NMI and ARI of the clusters against the labels."""
    return {
        "acc": acc(labels, clusters),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def patch_pca(k: int = 256, dims: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """coates_screen.py's saved patch features (10,000 training, 10,000 test images), standardised and
    projected on ``dims`` whitened principal components of the training part, each row L2-normalised."""
    ftr, fte = np.load(f"/tmp/feat/coates_K{k}_tr.npy"), np.load(f"/tmp/feat/coates_K{k}_te.npy")
    m, s = ftr.mean(0), ftr.std(0) + 1e-6
    _, S, Vt = np.linalg.svd((ftr - m) / s, full_matrices=False)
    P = Vt[:dims].T / (S[:dims] / np.sqrt(len(ftr)))
    tr, te = ((ftr - m) / s) @ P, ((fte - m) / s) @ P
    return (tr / np.linalg.norm(tr, axis=1, keepdims=True), te / np.linalg.norm(te, axis=1, keepdims=True))


def machine() -> dict:
    return {"host_cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform()}


def log(row: dict, path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **row, "machine": machine()}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
