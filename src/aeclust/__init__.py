"""aeclust: k-means from scratch on image pixels and autoencoder codes, judged exactly.

The public API::

    from aeclust import load_cifar10, to_grayscale, KMeans
    from aeclust import silhouette_score, dunn_index, cluster_quality
    from aeclust import ConvAutoencoder, run

Names that need PyTorch (``ConvAutoencoder``, ``run``) or scikit-learn (``KMeans``, a scikit-learn
estimator) are imported on first use, so ``import aeclust`` stays fast: torch and scikit-learn,
dependencies, load only when one of them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from .datasets import load_cifar10
from .metrics import cluster_quality, dunn_index, silhouette_score
from .preprocess import preprocess, to_grayscale

_LAZY = {
    "KMeans": ".kmeans",
    "ConvAutoencoder": ".autoencoder",
    "AutoencoderConfig": ".autoencoder",
    "run": ".pipeline",
}

__all__ = [
    "load_cifar10",
    "to_grayscale",
    "preprocess",
    "silhouette_score",
    "dunn_index",
    "cluster_quality",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'aeclust' has no attribute {name!r}")
