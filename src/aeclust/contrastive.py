"""Contrastive features (SimCLR) that a small convnet learns from unlabeled images.

Two random views of every image in a batch go through the same encoder and a
projection head; the NT-Xent loss pulls each pair together and pushes it away
from the other 2n - 2 views (Chen et al., 2020). A cluster head beside it
(Contrastive Clustering, Li et al., 2021) turns each view into probabilities
over ``n_clusters`` clusters, and a second NT-Xent loss does the same for the
clusters: each cluster's column of probabilities over the batch should match
between the two views and differ from the other clusters'. Only the images are
used, never the labels.

Cheap enough for one CPU core because the views are small: each random crop
is resampled to ``config.resolution`` pixels (16x16 by default) by one
``grid_sample`` call, which also does the horizontal flip. Colour jitter and
random grayscale are tensor operations on the whole batch. At encoding time
each image's features are averaged over fixed views of it at the same
resolution: the whole image downsampled, crops of a 3x3 grid of positions at
two sizes, and the mirror images of all of these (:func:`encoding_views`).

Reading order: config, model, augmentation, checkpoints, :func:`train_contrastive`,
:func:`encode`. What this model shares with the autoencoder (device, threads,
reproducibility, the model-file envelope, the training and encoding loops)
lives in :mod:`aeclust._torch`.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _torch
from ._io import write_json
from ._torch import DictConfig, TrainResult, images_to_tensor, reproducible, resolve_device
from .errors import InvalidInputError

CHECKPOINT_FORMAT = "aeclust.contrastive"
CHECKPOINT_VERSION = 4
# Version 3 models predate solarisation: they were trained without it.
_VERSION_3_CONFIG = {"p_solarize": 0.0}
# Version 2 models predate the encoding crops: they were encoded from the whole image alone.
_VERSION_2_CONFIG = {"encode_crops": (), **_VERSION_3_CONFIG}
# Version 1 models predate the cluster head and the output choice too: they were read as these settings.
_VERSION_1_CONFIG = {"n_clusters": 0, "cluster_temperature": 1.0, "output": "encoder", "mirror": False,
                     **_VERSION_2_CONFIG}
OUTPUTS = ("encoder", "projection", "clusters")
PRECISIONS = ("auto", "float32", "bfloat16")

# -----------------------------------------------------------------------------
# config


@dataclass(frozen=True)
class ContrastiveConfig(DictConfig):
    kind: ClassVar[str] = "contrastive"

    widths: tuple[int, ...] = (32, 64, 128, 256)  # conv widths; a 2x2 max-pool between stages
    proj_dim: int = 64  # output of the projection head (the loss sees this; output="projection" gives it to k-means)
    resolution: int = 16  # side of the views and of the images at encoding time
    crop_scale: tuple[float, float] = (0.2, 1.0)  # area of a random crop, as a fraction of the image
    jitter: float = 0.4  # strength of brightness, contrast and saturation jitter
    p_jitter: float = 0.8
    p_gray: float = 0.2
    # Solarisation (BYOL): with this probability a view's values above 0.5 become 1 - value, which flips
    # the brightness order of a light object against its background. Without it the clusters split classes
    # by that order (dark object on light ground or the reverse). 60 epochs, 3 seeds of `aeclust run`:
    # ACC 0.441 -> 0.459, NMI 0.354 -> 0.373.
    p_solarize: float = 0.2
    temperature: float = 0.5  # 10 epochs, 3 seeds: ACC 0.313, NMI 0.206; 0.2 gave 0.300, 0.198
    # Seed 0, encoder output: 10 epochs ACC 0.322, 40 epochs 0.361. 60 bfloat16 epochs and the encoding
    # took 13.7-15.0 minutes a run on this project's 2-core CPU, whose epochs vary from 11 to 17 s
    # (docs/features.md).
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3  # Adam, cosine decay to 0 with one warm-up epoch
    weight_decay: float = 1e-5
    # A cluster head beside the projection head (Contrastive Clustering, Li et al., 2021): a softmax over
    # n_clusters whose columns are contrasted between the two views, plus an entropy term that keeps the
    # clusters in use. 0 leaves it out.
    n_clusters: int = 10  # seed 0, 40 epochs, projection output: ACC 0.381 without, 0.398 with
    cluster_temperature: float = 1.0
    # What k-means gets: "encoder" (the pooled conv features), "projection" (the projection head's
    # output, which the loss sees) or "clusters" (the cluster head's probabilities; needs n_clusters).
    # 3 seeds, 40 epochs: ACC 0.416 / NMI 0.312 on the clusters, 0.392 / 0.298 on the projection. The
    # probabilities are tied to n_clusters: for another k, "projection" is the feature to take.
    output: str = "clusters"
    # Encoding averages over views of each image (test-time augmentation): the whole image and, for each
    # side fraction f in encode_crops, nine crops of f x f of the image (corners, edge midpoints, centre),
    # each view also mirrored with `mirror`. 3 seeds of the 48-epoch model, argmax of the cluster probabilities:
    # ACC 0.419 -> 0.432, NMI 0.317 -> 0.341 with (0.85, 0.7) and mirror (38 views), against the whole image alone.
    encode_crops: tuple[float, ...] = (0.85, 0.7)
    mirror: bool = True
    # The training's arithmetic: "bfloat16" runs the network's forward and backward under autocast
    # (on this project's CPU, which has avx512_bf16: 14-15 s an epoch against 17-19 s in float32);
    # the losses, the weights and the encoding stay float32. "auto" takes bfloat16 where the device
    # computes it natively (see resolve_precision) and float32 elsewhere; the saved config says which.
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "crop_scale", tuple(float(s) for s in self.crop_scale))
        object.__setattr__(self, "encode_crops", tuple(float(f) for f in self.encode_crops))
        problems = []
        if not self.widths or min(self.widths) < 1:
            problems.append(f"widths must be positive integers, got {self.widths}")
        if self.resolution < 2 ** (len(self.widths) - 1):
            problems.append(f"resolution {self.resolution} is too small for {len(self.widths)} stages")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            problems.append(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        probabilities = {"p_jitter": self.p_jitter, "p_gray": self.p_gray, "p_solarize": self.p_solarize}
        if not all(0 <= p <= 1 for p in probabilities.values()):
            problems.append(f"p_jitter, p_gray and p_solarize must be probabilities in [0, 1], got {probabilities}")
        if self.n_clusters < 0 or self.n_clusters == 1 or not self.cluster_temperature > 0:
            problems.append(f"n_clusters must be 0 or >= 2 and cluster_temperature > 0, got "
                            f"n_clusters={self.n_clusters}, cluster_temperature={self.cluster_temperature}")
        if self.output not in OUTPUTS or (self.output == "clusters" and not self.n_clusters):
            problems.append(f"output must be one of {', '.join(OUTPUTS)} (clusters needs n_clusters), got {self.output!r}")
        if self.epochs < 0 or self.batch_size < 2 or not self.lr > 0 or not self.temperature > 0:
            problems.append("epochs must be >= 0, batch_size >= 2, lr > 0 and temperature > 0, got "
                            f"epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}, "
                            f"temperature={self.temperature}")
        if not all(0 < f <= 1 for f in self.encode_crops):
            problems.append(f"encode_crops must be side fractions in (0, 1], got {self.encode_crops}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if problems:
            raise InvalidInputError("invalid ContrastiveConfig: " + "; ".join(problems))

    @property
    def feature_dim(self) -> int:
        """Columns of :func:`encode`'s output."""
        return {"encoder": self.widths[-1], "projection": self.proj_dim, "clusters": self.n_clusters}[self.output]


# -----------------------------------------------------------------------------
# model


class _Conv3x3(nn.Conv2d):
    """A 3x3 convolution with padding 1 that, on a 2x2 input, is one matrix product.

    On 2x2 maps (the last stage at the default resolution) 5 of the 9 taps of
    every output fall on the padding. Written out as a (4 c_in, 4 c_out) matrix
    whose blocks are the taps that link each input position to each output
    position, the same sums take 4/9 of the multiplications, and the forward
    and backward passes are plain matrix products: 5.9 against 9.3 ms for that
    layer's forward and backward pass over 256 views on this project's CPU.
    Any other input size takes the ordinary convolution.
    """

    # Column (input position, output position), both (y, x) in row-major order, has a 1 in the row of the tap
    # that links them. Picking the taps by a product with it (not by indexing) keeps the backward pass a
    # product too: an indexed gather's backward, a scatter-add, cost as much as the product saved.
    _TAPS_2X2 = F.one_hot(torch.tensor([(iy - oy + 1) * 3 + (ix - ox + 1) for iy in (0, 1) for ix in (0, 1)
                                        for oy in (0, 1) for ox in (0, 1)]), 9).T.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain = (self.kernel_size, self.padding, self.stride, self.dilation, self.groups, self.bias) != \
            ((3, 3), (1, 1), (1, 1), (1, 1), 1, None)
        if plain or x.shape[-2:] != (2, 2):  # the product below is written for this layer as _stage builds it
            return super().forward(x)
        n, c_in, c_out = len(x), self.in_channels, self.out_channels
        w = (self.weight.flatten(2) @ self._TAPS_2X2.to(x.device)).view(c_out, c_in, 4, 4)
        w = w.permute(2, 1, 3, 0).reshape(4 * c_in, 4 * c_out)  # rows (input position, c_in), columns (output position, c_out)
        x = x.permute(0, 2, 3, 1).reshape(n, 4 * c_in)
        y = x @ (w if torch.is_autocast_enabled(x.device.type) else w.to(x.dtype))
        return y.view(n, 2, 2, c_out).permute(0, 3, 1, 2)  # channels_last, as the convolution gives it


class _MaxPoolReLU(nn.MaxPool2d):
    """A 2x2 max-pool, then the ReLU of the stage before it: max and ReLU commute, so the values and
    gradients are those of ReLU-then-pool, computed on a quarter of the elements."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


def _stage(c_in: int, c_out: int, *, relu: bool) -> nn.Sequential:
    """conv-BN, and its ReLU unless a :class:`_MaxPoolReLU` follows (the layers keep the names of saved models)."""
    layers = [_Conv3x3(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class ContrastiveNet(nn.Module):
    """conv-BN-ReLU stages with 2x2 max-pools between them, global average pool; an MLP head."""

    def __init__(self, config: ContrastiveConfig | None = None):
        super().__init__()
        self.config = config = config or ContrastiveConfig()
        layers, c = [], 3
        for i, w in enumerate(config.widths):
            if i:
                layers.append(_MaxPoolReLU(2))
            layers.append(_stage(c, w, relu=i + 1 == len(config.widths)))
            c = w
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c, c), nn.BatchNorm1d(c), nn.ReLU(inplace=True), nn.Linear(c, config.proj_dim))
        self.cluster_head = (
            nn.Sequential(nn.Linear(c, c), nn.BatchNorm1d(c), nn.ReLU(inplace=True), nn.Linear(c, config.n_clusters))
            if config.n_clusters else None
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(n, 3, r, r) normalised views -> projections (n, proj_dim), cluster logits (n, n_clusters) or None."""
        h = self.encoder(x)
        return self.head(h), (self.cluster_head(h) if self.cluster_head is not None else None)


# -----------------------------------------------------------------------------
# data and augmentation

# Per-channel mean and sd of the CIFAR-10 training images, on the [0, 1] scale.
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _normalise(v: torch.Tensor) -> torch.Tensor:
    return (v - MEAN.to(v.device)) / STD.to(v.device)


def _resample(x: torch.Tensor, theta: torch.Tensor, r: int) -> torch.Tensor:
    """The r x r views of ``x`` that the affine maps ``theta`` (n, 2, 3) pick out, bilinearly: one crop (and
    flip) per image, in grid units where the image spans [-1, 1]; the training's views and the encoding's crops."""
    grid = F.affine_grid(theta, [len(x), x.shape[1], r, r], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def augment(x: torch.Tensor, config: ContrastiveConfig, gen: torch.Generator) -> torch.Tensor:
    """A random view of each image in ``x`` (n, 3, H, W) in [0, 1], of side ``config.resolution``.

    Random resized crop with flip (one affine grid per image), colour jitter
    (brightness, contrast, saturation, in random order per batch) with
    probability ``p_jitter``, grayscale with probability ``p_gray``,
    solarisation with probability ``p_solarize``.
    """
    n, dev = len(x), x.device

    def u(*shape, lo=0.0, hi=1.0):
        return torch.rand(*shape, generator=gen, device=gen.device).to(dev) * (hi - lo) + lo

    lo, hi = config.crop_scale
    area = u(n, lo=lo, hi=hi)
    log_ratio = u(n, lo=math.log(3 / 4), hi=math.log(4 / 3))
    ratio = log_ratio.exp()
    sw = (area * ratio).sqrt().clamp(max=1.0)  # half-widths in grid units are sw, sh (grid spans [-1, 1])
    sh = (area / ratio).sqrt().clamp(max=1.0)
    cx = (u(n) * 2 - 1) * (1 - sw)
    cy = (u(n) * 2 - 1) * (1 - sh)
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = sw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    v = _resample(x, theta, config.resolution)

    s = config.jitter
    do = (u(n, 1, 1, 1) < config.p_jitter).float()
    b = 1 + do * u(n, 1, 1, 1, lo=-s, hi=s)
    c = 1 + do * u(n, 1, 1, 1, lo=-s, hi=s)
    sat = 1 + do * u(n, 1, 1, 1, lo=-s, hi=s)
    order = torch.randperm(3, generator=gen, device=gen.device).tolist()
    for op in order:
        if op == 0:
            v = (v * b).clamp(0, 1)
        elif op == 1:
            m = _gray(v).mean((1, 2, 3), keepdim=True)
            v = ((v - m) * c + m).clamp(0, 1)
        else:
            g = _gray(v)
            v = ((v - g) * sat + g).clamp(0, 1)
    gray = u(n, 1, 1, 1) < config.p_gray
    v = torch.where(gray, _gray(v).expand_as(v), v)
    if config.p_solarize:  # no draw when off, so that the other draws stay where they were
        v = torch.where((u(n, 1, 1, 1) < config.p_solarize) & (v >= 0.5), 1 - v, v)
    return _normalise(v)


def _resize_for_encoding(x: torch.Tensor, r: int) -> torch.Tensor:
    if x.shape[-1] != r or x.shape[-2] != r:
        x = F.interpolate(x, size=(r, r), mode="area")
    return _normalise(x)


def encoding_views(x: torch.Tensor, config: ContrastiveConfig) -> list[torch.Tensor]:
    """The normalised views of images ``x`` (n, 3, H, W) in [0, 1] that :func:`encode` averages over.

    The whole image, area-downsampled to ``config.resolution``; for each side
    fraction f in ``config.encode_crops``, nine f x f crops (a 3x3 grid of
    positions from corner to corner) resampled bilinearly as the training
    views are; with ``config.mirror``, each of these mirrored as well. No
    randomness: the views are the same in every run and for every batch size.
    """
    r = config.resolution
    views = [_resize_for_encoding(x, r)]
    n = len(x)
    for f in config.encode_crops:
        for cy in (-1.0, 0.0, 1.0):
            for cx in (-1.0, 0.0, 1.0):
                theta = torch.tensor([[f, 0.0, cx * (1 - f)], [0.0, f, cy * (1 - f)]], device=x.device)
                views.append(_normalise(_resample(x, theta.expand(n, 2, 3), r)))
    if config.mirror:
        views += [v.flip(3) for v in views]
    return views


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The SimCLR loss for n positive pairs (z1[i], z2[i])."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def cluster_loss(logits1: torch.Tensor, logits2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive Clustering's cluster-level loss: NT-Xent between the columns of the two views'
    assignment matrices (a cluster is its column of probabilities over the batch), minus the entropy of
    each view's mean assignment, so that no cluster is left empty."""
    p1, p2 = logits1.softmax(1), logits2.softmax(1)
    k = p1.shape[1]
    entropy = sum(-(q * q.clamp_min(1e-12).log()).sum() for q in (p1.mean(0), p2.mean(0)))
    return nt_xent(p1.T, p2.T, temperature) + 2 * math.log(k) - entropy


# -----------------------------------------------------------------------------
# checkpoints


_FILE = _torch.ModelFile(CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "contrastive model",
                         {1: _VERSION_1_CONFIG, 2: _VERSION_2_CONFIG, 3: _VERSION_3_CONFIG})


def save_model(path: str | os.PathLike, model: ContrastiveNet, **extra: Any) -> None:
    """Weights and config (and ``extra`` entries) to ``path``, atomically."""
    _FILE.save(path, model, **extra)


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ContrastiveNet:
    """The model in a file written by :func:`save_model`, rebuilt from its config, in eval mode."""
    state = _FILE.read(path, device=device)
    config = ContrastiveConfig.from_dict(state["config"])
    return _FILE.rebuild(ContrastiveNet, config, state["model"], path, device=device).eval()


# -----------------------------------------------------------------------------
# training


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` made concrete for ``device``: "bfloat16" on a GPU that supports it or a CPU with
    bfloat16 instructions (AVX512-BF16 or AMX), else "float32" (elsewhere bfloat16 is emulated, and
    slower than float32); other values are returned as they are."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    # torch's own CPU checks; private, so a torch without them is taken as having no such instructions.
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    native = any(check is not None and check() for check in checks)
    return "bfloat16" if native else "float32"


def train_contrastive(
    config: ContrastiveConfig,
    train_images: np.ndarray,
    out_dir: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "auto",
    progress: bool = True,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train a :class:`ContrastiveNet` on uint8 RGB images; ``model.pt`` and ``history.json`` go to ``out_dir``.

    The weights come from ``torch.manual_seed(config.seed)``; shuffling and
    augmentation draw from explicit generators seeded from it too, so a run on
    the CPU with the same thread count repeats exactly. The history has one
    row per epoch: ``epoch``, ``loss`` (the mean over the epoch's batches),
    ``lr`` (at the epoch's end) and ``seconds``. ``precision="auto"`` is
    resolved for the device first (:func:`resolve_precision`); the returned
    model's config, and the saved one, hold the precision that was used.
    """
    dev = resolve_device(device)
    config = replace(config, precision=resolve_precision(config.precision, dev))
    x = images_to_tensor(train_images)
    n = len(x)
    if n < 2:
        raise InvalidInputError("train_images needs at least 2 images")
    bs = min(config.batch_size, n)
    n_batches = n // bs  # drop the last partial batch: BatchNorm and the loss want full batches
    x = x.to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ContrastiveNet(config)
    model = model.to(dev, memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = max(config.epochs * n_batches, 1)
    warm = min(n_batches, total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(total - warm, 1)))
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    aug_gen = torch.Generator(device=dev).manual_seed(config.seed + 1)

    def step(idx: torch.Tensor) -> torch.Tensor:
        xb = x[idx]
        v1 = augment(xb, config, aug_gen).contiguous(memory_format=torch.channels_last)
        v2 = augment(xb, config, aug_gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=config.precision == "bfloat16"):
            (z1, c1), (z2, c2) = model(v1), model(v2)
        loss = nt_xent(z1.float(), z2.float(), config.temperature)
        if c1 is not None:
            loss = loss + cluster_loss(c1.float(), c2.float(), config.cluster_temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss.detach()

    history: list[dict[str, Any]] = []
    with reproducible(num_threads):
        model.train()
        for epoch in range(1, config.epochs + 1):
            t0 = time.perf_counter()
            loss_sum = _torch.run_epoch(step, n, bs, shuffle, dev, desc=f"epoch {epoch}/{config.epochs}",
                                        progress=progress, every=20, per_image=False, drop_last=True)
            history.append({"epoch": epoch, "loss": loss_sum / n_batches,
                            "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 3)})
            if out_dir is not None:
                write_json(Path(out_dir) / "history.json", history)
    model = model.to(memory_format=torch.contiguous_format).eval()
    if out_dir is not None:
        save_model(Path(out_dir) / "model.pt", model, history=history)
    return TrainResult(model, history)


# -----------------------------------------------------------------------------
# features


def encode(model: ContrastiveNet, images: np.ndarray, *, batch_size: int = 500, device: str | torch.device = "cpu",
           num_threads: int | None = 1, output: str | None = None) -> np.ndarray:
    """uint8 RGB images -> float32 features (n, d).

    ``output`` (default: ``config.output``) picks the layer: ``"encoder"``, the
    pooled conv features (n, widths[-1]), or ``"projection"``, the projection
    head's output (n, proj_dim), both L2-normalised; or ``"clusters"``, the
    cluster head's probabilities (n, n_clusters). Each image's features are
    the mean over its views (:func:`encoding_views`): the whole image and the
    crops of ``config.encode_crops``, each mirrored too with ``config.mirror``;
    the set of views is the same for an image and its mirror image.
    """
    # The config with this output: its validation refuses an unknown output, or "clusters" without a head.
    config = model.config if output is None else replace(model.config, output=output)
    layer = {"encoder": nn.Identity(), "projection": model.head, "clusters": model.cluster_head}[config.output]

    def features(xb: torch.Tensor) -> torch.Tensor:
        views = encoding_views(xb, config)
        if config.output == "clusters":
            return sum(layer(model.encoder(u)).softmax(1) for u in views) / len(views)
        return F.normalize(sum(layer(model.encoder(u)) for u in views), dim=1)

    x = images_to_tensor(images)
    return _torch.encode_batches(model, x, features, config.feature_dim,
                                 batch_size=batch_size, device=device, num_threads=num_threads)
