"""Synthetic data for the tests: Gaussian blobs, and a tiny CIFAR-10 in the official format."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_blobs(n=300, d=5, k=4, spread=0.6, seed=0, dtype=np.float32):
    """Gaussian blobs around random centres; returns (X, true_labels)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(scale=spread, size=(n, d))
    return X.astype(dtype), y


# -- a tiny CIFAR-10 in the official format, for end-to-end tests without the real files -----

FAKE_TRAIN_PER_BATCH = 40  # 5 batches: 200 training images
FAKE_TEST = 150


def write_fake_cifar(root: Path, seed: int = 0) -> dict[str, str]:
    """Write ``root/cifar-10-batches-py/`` with random images in the official pickle format.

    Returns the md5 of each file, to stand in for ``aeclust.cifar10.MD5``. The
    images are blends of a few smooth patterns, so the autoencoder has something
    to learn and k-means something to find.
    """
    import hashlib
    import pickle

    from aeclust import cifar10

    rng = np.random.default_rng(seed)
    folder = root / cifar10.BASE_FOLDER
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    bases = np.stack([xx, yy, xx * yy, np.sin(3 * xx) * np.cos(2 * yy)])
    md5 = {}

    def write(name: str, obj) -> None:
        raw = pickle.dumps(obj, protocol=2)
        (folder / name).write_bytes(raw)
        md5[name] = hashlib.md5(raw).hexdigest()

    for name in (*cifar10.TRAIN_FILES, *cifar10.TEST_FILES):
        n = FAKE_TEST if name in cifar10.TEST_FILES else FAKE_TRAIN_PER_BATCH
        w = rng.uniform(0, 1, size=(n, 3, 4))
        img = np.einsum("ncb,bhw->nchw", w, bases) / 2.0 + rng.normal(0, 0.03, size=(n, 3, 32, 32))
        data = (np.clip(img, 0, 1) * 255).astype(np.uint8).reshape(n, 3072)  # CHW rows, as in the files
        write(name, {"batch_label": name, "labels": rng.integers(0, 10, size=n).tolist(), "data": data,
                     "filenames": [f"{name}_{i}.png" for i in range(n)]})
    write(cifar10.META_FILE, {"num_cases_per_batch": FAKE_TRAIN_PER_BATCH, "num_vis": 3072,
                               "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                               "frog", "horse", "ship", "truck"]})
    return md5
