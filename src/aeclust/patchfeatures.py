"""Single-layer k-means patch features (Coates, Lee & Ng, 2011), a classical baseline.

Learning: random 6x6 RGB patches from the training images are brightness- and
contrast-normalised, ZCA-whitened, and clustered by aeclust's own k-means into
a dictionary of ``n_atoms`` centres. Encoding: every 6x6 patch of an image
(stride 1) gets the "triangle" activation ``max(0, mean_k(d_k) - d_k)`` against
the centres (d_k the distance to centre k), and the activations are summed over
the four quadrants of the image: ``4 * n_atoms`` numbers per image. These are
standardised and projected on their first ``pca`` principal components (learned
on the training images), each scaled to unit variance (``whiten``), for k-means.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ._io import atomic_open
from ._pairwise import single_threaded_blas
from ._torch import DictConfig, threads
from .errors import AeclustError, InvalidInputError
from .kmeans import ConvergenceWarning, KMeans

FORMAT = "aeclust.patchfeatures"


@dataclass(frozen=True)
class PatchConfig(DictConfig):
    kind: ClassVar[str] = "patch-feature"

    n_atoms: int = 256  # dictionary size; the raw feature has 4 * n_atoms dimensions
    patch: int = 6
    n_patches: int = 100_000  # random training patches the dictionary is learned from
    kmeans_iter: int = 15  # Lloyd iterations for the dictionary (a cap; a fixed point stops earlier)
    norm_eps: float = 10.0  # added to each patch's variance (0-255 scale) before dividing
    zca_eps: float = 0.1
    pca: int | None = 50  # principal components kept; None keeps all 4 * n_atoms standardised features
    pca_images: int = 10_000  # training images the standardisation and PCA are fitted on
    whiten: bool = True  # divide each component by its sd (measured: ACC 0.298 whitened, 0.259 not)
    l2: bool = False  # L2-normalise the final vectors
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_atoms < 2 or self.patch < 1 or self.n_patches < self.n_atoms or self.kmeans_iter < 1:
            raise InvalidInputError(f"invalid PatchConfig: {self}")
        if self.pca is not None and not 1 <= self.pca <= 4 * self.n_atoms:
            raise InvalidInputError(f"pca must be in [1, {4 * self.n_atoms}] or None, got {self.pca}")


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InvalidInputError(f"patch features need uint8 RGB images (n, h, w, 3), got {images.dtype} {images.shape}")
    return images


def _normalise(p: np.ndarray, eps: float) -> np.ndarray:
    """Each row (one patch) minus its mean, divided by sqrt(its variance + eps)."""
    return (p - p.mean(1, keepdims=True)) / np.sqrt(p.var(1, keepdims=True) + eps)


def _normalise_t(p: torch.Tensor, eps: float) -> torch.Tensor:
    return (p - p.mean(1, keepdim=True)) / (p.var(1, unbiased=False, keepdim=True) + eps).sqrt()


class PatchFeatures:
    """A fitted dictionary, whitening and PCA; :meth:`transform` maps images to features."""

    name = "kmeans-patches"

    def __init__(self, config: PatchConfig, arrays: dict[str, np.ndarray]):
        self.config = config
        self.arrays = arrays  # zca_mean, zca, atoms, feat_mean, feat_std, components

    # -- learning -----------------------------------------------------------------
    @classmethod
    def fit(cls, config: PatchConfig, images: np.ndarray, *, num_threads: int | None = 1) -> PatchFeatures:
        images = _check_images(images)
        n, h, w, _ = images.shape
        P = config.patch
        rng = np.random.default_rng(config.seed)
        idx = rng.integers(0, n, config.n_patches)
        ys, xs = rng.integers(0, h - P + 1, config.n_patches), rng.integers(0, w - P + 1, config.n_patches)
        # (c, y, x) order, as F.unfold lays patches out.
        p = np.stack([images[i, y : y + P, x : x + P] for i, y, x in zip(idx, ys, xs)]).transpose(0, 3, 1, 2)
        p = _normalise(p.reshape(config.n_patches, -1).astype(np.float64), config.norm_eps)
        mean = p.mean(0)
        with single_threaded_blas():  # the same bits for any number of CPUs (see _pairwise)
            ev, V = np.linalg.eigh(np.cov(p - mean, rowvar=False))
            zca = (V / np.sqrt(np.maximum(ev, 0) + config.zca_eps)) @ V.T
            white = ((p - mean) @ zca).astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(config.n_atoms, max_iter=config.kmeans_iter, random_state=config.seed)
            km.fit(white)
        self = cls(config, {"zca_mean": mean.astype(np.float32), "zca": zca.astype(np.float32),
                            "atoms": km.cluster_centers_.astype(np.float32)})  # fmt: skip
        sub = images[rng.permutation(n)[: config.pca_images]]
        raw = self._raw(sub, num_threads=num_threads).astype(np.float64)
        fm, fs = raw.mean(0), raw.std(0) + 1e-6
        self.arrays["feat_mean"], self.arrays["feat_std"] = fm.astype(np.float32), fs.astype(np.float32)
        if config.pca is not None:
            with single_threaded_blas():
                _, sv, vt = np.linalg.svd((raw - fm) / fs, full_matrices=False)
            comp = vt[: config.pca]
            if config.whiten:
                comp = comp / (sv[: config.pca, None] / np.sqrt(len(raw)))
            self.arrays["components"] = comp.astype(np.float32)
        return self

    # -- encoding -----------------------------------------------------------------
    @torch.no_grad()
    def _raw(self, images: np.ndarray, *, batch_size: int = 200, num_threads: int | None = 1) -> np.ndarray:
        c, P = self.config, self.config.patch
        zm, zca, atoms = (torch.from_numpy(self.arrays[k]) for k in ("zca_mean", "zca", "atoms"))
        a2 = atoms.square().sum(1)
        out = []
        with threads(num_threads):
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(images[i : i + batch_size]).permute(0, 3, 1, 2).float()
                b, _, h, w = x.shape
                gh, gw = h - P + 1, w - P + 1
                p = F.unfold(x, P).transpose(1, 2).reshape(-1, 3 * P * P)
                z = (_normalise_t(p, c.norm_eps) - zm) @ zca
                d = (z.square().sum(1, keepdim=True) - 2 * z @ atoms.T + a2).clamp_min(0).sqrt()
                f = (d.mean(1, keepdim=True) - d).clamp_min(0).reshape(b, gh, gw, -1)
                hh, hw = (gh + 1) // 2, (gw + 1) // 2
                q = [f[:, :hh, :hw], f[:, :hh, hw:], f[:, hh:, :hw], f[:, hh:, hw:]]
                out.append(torch.cat([t.sum((1, 2)) for t in q], 1))
        return torch.cat(out).numpy() if out else np.zeros((0, 4 * c.n_atoms), np.float32)

    def transform(self, images: np.ndarray, *, num_threads: int | None = 1) -> np.ndarray:
        """uint8 RGB images (n, h, w, 3) -> float32 features (n, pca or 4 * n_atoms)."""
        x = (self._raw(_check_images(images), num_threads=num_threads) - self.arrays["feat_mean"]) / self.arrays["feat_std"]
        if "components" in self.arrays:
            with single_threaded_blas():
                x = x @ self.arrays["components"].T
        if self.config.l2:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x.astype(np.float32)

    # -- files --------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        with atomic_open(path, "wb") as f:
            np.savez(f, format=np.array(FORMAT), config=np.array(repr(self.config.to_dict())), **self.arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PatchFeatures:
        import ast

        path = Path(path)
        if not path.is_file():
            raise AeclustError(f"no patch features at {path}")
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise AeclustError(f"{path} is not an aeclust patch-feature file")
            config = PatchConfig.from_dict(ast.literal_eval(str(z["config"])))
            arrays = {k: z[k] for k in z.files if k not in ("format", "config")}
        return cls(config, arrays)
