"""Shared fixtures: small synthetic data, and the real CIFAR-10 files when AECLUST_DATA points at them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def _real_data_dir() -> Path | None:
    value = os.environ.get("AECLUST_DATA")
    if not value:
        return None
    path = Path(value)
    if (path / "cifar-10-batches-py" / "test_batch").is_file():
        return path
    return None


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The directory holding the real CIFAR-10 files; skips the test when there is none."""
    path = _real_data_dir()
    if path is None:
        pytest.skip("real CIFAR-10 data not available: set AECLUST_DATA to the folder that holds cifar-10-batches-py/")
    return path


@pytest.fixture(scope="session")
def cifar_test_gray(cifar_dir):
    """The study's features: grayscale CIFAR-10 test set, (10000, 1024) float32 in [0, 1]."""
    from aeclust.datasets import load_cifar10
    from aeclust.preprocess import preprocess

    data = load_cifar10(cifar_dir, split="test", progress=False)
    return preprocess(data.test_images, "gray")


def make_blobs(n=300, d=5, k=4, spread=0.6, seed=0, dtype=np.float32):
    """Gaussian blobs around random centres; returns (X, true_labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(scale=spread, size=(n, d))
    return X.astype(dtype), y
