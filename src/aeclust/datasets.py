"""CIFAR-10 loading (placeholder: minimal reader of the official python files).

To be replaced by the full loader (locate, download, verify, load).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Cifar10:
    train_images: np.ndarray | None
    train_labels: np.ndarray | None
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: tuple[str, ...]


def _read(path: Path):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="latin1")
    images = d["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(d["labels"], dtype=np.int64)


def load_cifar10(data_dir=None, *, split="both", download=True, progress=True) -> Cifar10:
    root = Path(data_dir or os.environ["AECLUST_DATA"]) / "cifar-10-batches-py"
    with open(root / "batches.meta", "rb") as f:
        names = tuple(pickle.load(f, encoding="latin1")["label_names"])
    tr = te = (None, None)
    if split in ("both", "train"):
        parts = [_read(root / f"data_batch_{i}") for i in range(1, 6)]
        tr = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    if split in ("both", "test"):
        te = _read(root / "test_batch")
    return Cifar10(tr[0], tr[1], te[0], te[1], names)
