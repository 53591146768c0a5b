"""Learned features for k-means, behind one interface.

Every entry of :data:`FEATURES` learns from unlabeled uint8 RGB images and
returns an extractor::

    ext = fit_features("simclr", train_images, seed=0, out_dir="runs/f")
    X = ext.transform(test_images)          # float32 (n, d)
    ext = load_features("runs/f")           # the same extractor, from its files

``out_dir`` receives ``features.json`` (the name and config) and the learned
weights, each written atomically. Config fields can be overridden by keyword:
``fit_features("simclr", x, epochs=5)``.

Entries:

``ae``
    The study's convolutional autoencoder (:mod:`aeclust.autoencoder`), with its
    defaults; its 192 code values per image. The baseline.
``simclr``
    A small convnet trained for 40 epochs on augmented 16x16 views with two
    contrastive losses, one between images (SimCLR) and one between clusters
    (Contrastive Clustering) (:mod:`aeclust.contrastive`); the projection
    head's 64 L2-normalised values. The best measured here (docs/features.md).
``kmeans-patches``
    Single-layer k-means patch features (:mod:`aeclust.patchfeatures`), a
    classical baseline; 50 whitened principal components.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._io import write_json
from .errors import AeclustError, InvalidInputError

DEFAULT = "ae"


class Extractor(Protocol):
    name: str
    config: Any

    def transform(self, images: np.ndarray) -> np.ndarray: ...


# -----------------------------------------------------------------------------
# the study's autoencoder


class AutoencoderFeatures:
    name = "ae"

    def __init__(self, model, device="cpu"):
        self.model, self.config, self.device = model, model.config, device

    @classmethod
    def fit(cls, images, *, seed, device, out_dir, progress, **overrides):
        from .autoencoder import AutoencoderConfig, train_autoencoder

        config = AutoencoderConfig(**{"seed": seed, **overrides})
        if out_dir is None:  # train_autoencoder always writes its checkpoints somewhere
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                res = train_autoencoder(config, images, None, tmp, device=device, progress=progress)
        else:
            res = train_autoencoder(config, images, None, out_dir, device=device, progress=progress)
        return cls(res.model, device)

    @classmethod
    def load(cls, out_dir, device="cpu"):
        from .autoencoder import load_checkpoint

        return cls(load_checkpoint(Path(out_dir) / "model.pt", device=device).model, device)

    def transform(self, images):
        from .autoencoder import encode

        return encode(self.model, images, device=self.device)


# -----------------------------------------------------------------------------
# contrastive


class ContrastiveFeatures:
    name = "simclr"

    def __init__(self, model, device="cpu"):
        self.model, self.config, self.device = model, model.config, device

    @classmethod
    def fit(cls, images, *, seed, device, out_dir, progress, **overrides):
        from .contrastive import ContrastiveConfig, train_contrastive

        config = ContrastiveConfig(**{"seed": seed, **overrides})
        # All of torch's threads (one per core): the result repeats exactly for a given thread count.
        res = train_contrastive(config, images, out_dir, device=device, progress=progress, num_threads=None)
        return cls(res.model, device)

    @classmethod
    def load(cls, out_dir, device="cpu"):
        from .contrastive import load_model

        return cls(load_model(Path(out_dir) / "model.pt", device=device), device)

    def transform(self, images):
        from .contrastive import encode

        return encode(self.model, images, device=self.device)


# -----------------------------------------------------------------------------
# k-means patch features


class _Patches:
    name = "kmeans-patches"

    @staticmethod
    def fit(images, *, seed, device, out_dir, progress, **overrides):
        from .patchfeatures import PatchConfig, PatchFeatures

        ext = PatchFeatures.fit(PatchConfig(**{"seed": seed, **overrides}), images)
        if out_dir is not None:
            ext.save(Path(out_dir) / "patches.npz")
        return ext

    @staticmethod
    def load(out_dir, device="cpu"):
        from .patchfeatures import PatchFeatures

        return PatchFeatures.load(Path(out_dir) / "patches.npz")


#: name -> a class with ``fit(images, *, seed, device, out_dir, progress, **config)`` and ``load(out_dir)``.
FEATURES: dict[str, Any] = {
    "ae": AutoencoderFeatures,
    "simclr": ContrastiveFeatures,
    "kmeans-patches": _Patches,
}


def _entry(name: str):
    if name not in FEATURES:
        raise InvalidInputError(f"unknown features {name!r}; choose one of {', '.join(FEATURES)}")
    return FEATURES[name]


def fit_features(
    name: str,
    train_images: np.ndarray,
    *,
    seed: int = 0,
    device: str = "auto",
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
    **config: Any,
) -> Extractor:
    """Learn the features ``name`` from uint8 RGB images (n, 32, 32, 3); the labels are never seen.

    With ``out_dir``, the learned state and ``features.json`` are written
    there, so :func:`load_features` gives the extractor back.
    """
    entry = _entry(name)
    train_images = np.asarray(train_images)
    if train_images.dtype != np.uint8 or train_images.ndim != 4 or train_images.shape[-1] != 3:
        raise InvalidInputError(
            f"train_images must be uint8 RGB images (n, h, w, 3), got {train_images.dtype} {train_images.shape}"
        )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    ext = entry.fit(train_images, seed=seed, device=device, out_dir=out_dir, progress=progress, **config)
    if out_dir is not None:
        write_json(Path(out_dir) / "features.json", {"name": name, "config": ext.config.to_dict()})
    return ext


def load_features(out_dir: str | os.PathLike, *, device: str = "cpu") -> Extractor:
    """The extractor that :func:`fit_features` wrote to ``out_dir``."""
    meta_path = Path(out_dir) / "features.json"
    if not meta_path.is_file():
        raise AeclustError(f"no features.json in {out_dir}")
    meta = json.loads(meta_path.read_text())
    return _entry(meta["name"]).load(out_dir, device=device)
