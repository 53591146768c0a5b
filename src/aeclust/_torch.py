"""What aeclust's torch models share: device, threads, reproducibility, tensors, model files.

Both learned feature extractors, the autoencoder (:mod:`aeclust.autoencoder`)
and the contrastive net (:mod:`aeclust.contrastive`), go through this module
for:

- :func:`resolve_device`: "auto", "cpu" or "cuda" to a ``torch.device``, with
  a clear error where no GPU is present;
- :func:`threads` and :func:`reproducible`: torch's thread count and
  deterministic kernels for the duration of a block, the caller's settings
  after; :func:`rng_states` and :func:`set_rng_states` save and restore every
  generator a resumed run depends on;
- :func:`images_to_tensor`: uint8 images to a float32 (n, C, H, W) tensor in [0, 1];
- :func:`run_epoch`: one shuffled pass of a training loop, with its progress bar;
- :func:`encode_batches`: a trained model's features for many images, batch by batch;
- :class:`TrainResult`: what a training function returns;
- :class:`ModelFile`: the envelope of a model file (format tag, version,
  config, weights, library versions), written atomically and read with
  errors that name the file and what is wrong with it.

Nothing here knows either model; the models import this module, never the
other way round.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._io import atomic_open
from .errors import AeclustError, InvalidInputError
from .preprocess import to_grayscale

# -----------------------------------------------------------------------------
# device, threads, reproducibility


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` a model runs on.

    Parameters
    ----------
    device : str or torch.device
        "auto" (cuda when a GPU is present, else cpu), "cpu", "cuda" or "cuda:N".

    Raises
    ------
    AeclustError
        For an unknown or unsupported device, or "cuda" without a GPU.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise AeclustError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AeclustError(
            f"device {str(device)!r} asked for, but this PyTorch build "
            f"({torch.__version__}) sees no CUDA GPU; use device='cpu' or 'auto'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise AeclustError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda'")
    return dev


@contextlib.contextmanager
def threads(num_threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count for the duration (None: leave it); the caller's after."""
    if num_threads is not None and num_threads < 1:
        raise InvalidInputError(f"num_threads must be >= 1 or None, got {num_threads}")
    saved = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def reproducible(num_threads: int | None) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count for the duration; the caller's settings after."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    # warn_only: an op without a deterministic kernel on some device warns instead of failing the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        with threads(num_threads):
            yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def rng_states(shuffle: torch.Generator) -> dict[str, Any]:
    """The states of ``shuffle`` and of torch's, numpy's and Python's global generators.

    Plain types and tensors only, so that a checkpoint holding them loads
    with ``torch.load(weights_only=True)``.
    """
    np_state = np.random.get_state()
    states = {
        "shuffle": shuffle.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_py, np_state[2:])),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def set_rng_states(states: dict[str, Any], shuffle: torch.Generator) -> None:
    """Restore what :func:`rng_states` saved: ``shuffle`` and the global generators."""
    # A checkpoint loaded with map_location="cuda" brings every tensor to the GPU; the
    # generators want their states as CPU byte tensors.
    shuffle.set_state(states["shuffle"].cpu())
    torch.set_rng_state(states["torch"].cpu())
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), *rest))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


# -----------------------------------------------------------------------------
# images in, features out

COLORS = {"gray": 1, "rgb": 3}


def images_to_tensor(images: np.ndarray, color: str = "rgb", *, multiple: int = 1) -> torch.Tensor:
    """uint8 images (n, H, W, 3), or (n, H, W) gray, -> float32 tensor (n, C, H, W) in [0, 1].

    Parameters
    ----------
    images : array_like of shape (n, H, W, 3), or (n, H, W) for ``color="gray"``
        Pixel values on the 0..255 scale.
    color : {"rgb", "gray"}
        "rgb" keeps the three channels; "gray" converts RGB to BT.601 luma
        (:func:`aeclust.preprocess.to_grayscale`) and takes (n, H, W) as it is.
    multiple : int
        H and W must be multiples of this (a model that halves them twice needs 4).

    Raises
    ------
    InvalidInputError
        For an unknown color, images of another shape, or a side that is not a multiple.
    """
    if color not in COLORS:
        raise InvalidInputError(f"unknown color {color!r}; choose one of {', '.join(COLORS)}")
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 3:
        if color == "gray":
            # In chunks: the same numbers, with to_grayscale's temporaries the size of a chunk, not of the set.
            x = np.concatenate([to_grayscale(images[i : i + 2048]) for i in range(0, max(len(images), 1), 2048)])
            x = x[:, None]
        else:
            x = images.transpose(0, 3, 1, 2)
    elif images.ndim == 3 and color == "gray":
        x = images[:, None]
    else:
        want = "(n, h, w, 3) or (n, h, w)" if color == "gray" else "(n, h, w, 3)"
        raise InvalidInputError(f"color={color!r} needs images of shape {want}, got {images.shape}")
    if x.shape[2] % multiple or x.shape[3] % multiple:
        raise InvalidInputError(f"image height and width must be multiples of {multiple}, got {x.shape[2:]}")
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return x.div_(255.0)


@torch.no_grad()
def encode_batches(
    model: nn.Module,
    x: torch.Tensor,
    features: Callable[[torch.Tensor], torch.Tensor],
    width: int,
    *,
    batch_size: int,
    device: str | torch.device,
    num_threads: int | None,
) -> np.ndarray:
    """``features`` of ``x``, batch by batch, as one float32 matrix (n, width).

    Parameters
    ----------
    model : nn.Module
        Moved to ``device`` and put in eval mode while encoding; its own mode after.
    x : Tensor of shape (n, ...)
        The images, on any device: each batch is moved to ``device``.
    features : callable
        One batch on ``device`` -> its (batch, width) features.
    width : int
        Columns of the result, for the (0, width) answer to no images.
    batch_size, device, num_threads
        Images per batch; the device (see :func:`resolve_device`); torch's
        thread count while encoding (see :func:`threads`).

    Returns
    -------
    ndarray of shape (n, width), float32
        On the CPU, row i for image i.
    """
    dev = resolve_device(device)
    model = model.to(dev)
    was_training = model.training
    model.eval()
    try:
        with threads(num_threads):
            out = [features(x[i : i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, width), dtype=np.float32)


def run_epoch(
    step: Callable[[torch.Tensor], torch.Tensor], n: int, batch_size: int, shuffle: torch.Generator,
    device: torch.device, *, desc: str, progress: bool, every: int, per_image: bool, drop_last: bool = False,
) -> float:
    """One pass over ``n`` images in a fresh order drawn from ``shuffle``; the sum of ``step``'s losses.

    Parameters
    ----------
    step : callable
        Trains on one batch, given as the indices of its images (on ``device``),
        and returns the batch's loss as a 0-d tensor, which is added up in float64.
    n, batch_size : int
        Images, and images per batch.
    shuffle : torch.Generator
        The CPU generator the order comes from; one ``randperm`` per epoch.
    device : torch.device
        Where the indices go.
    desc, progress, every : str, bool, int
        The progress bar's label; whether to show it; how many steps between
        updates of its running loss.
    per_image : bool
        Whether ``step`` returns its loss summed over the batch's images (the
        bar then shows the mean per image) or the batch's mean (per batch).
    drop_last : bool
        Leave out the last batch when it is short of ``batch_size``.

    Returns
    -------
    float
        The sum of the batches' losses, for the caller to turn into its mean.
    """
    n_batches = n // batch_size if drop_last else (n + batch_size - 1) // batch_size
    perm = torch.randperm(n, generator=shuffle).to(device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    bar = tqdm(range(n_batches), desc=desc, unit="batch", disable=not progress, leave=True, dynamic_ncols=True)
    for i in bar:
        loss_sum += step(perm[i * batch_size : (i + 1) * batch_size])
        if progress and (i % every == 0 or i == n_batches - 1):
            # .item() would stall a GPU every step; now and then is enough for the display.
            seen = min((i + 1) * batch_size, n) if per_image else i + 1
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.5f}", refresh=False)
    bar.close()
    return loss_sum.item()


class TrainResult(NamedTuple):
    """A trained model, in eval mode and the default memory layout, and its history."""

    model: nn.Module
    history: list[dict[str, Any]]  # one row per epoch: "epoch", "seconds" and the model's losses


# -----------------------------------------------------------------------------
# configs and model files


_C = TypeVar("_C", bound="DictConfig")


class DictConfig:
    """A frozen dataclass config that travels as a JSON-ready dict.

    Model files and results.json hold a config as a dict; tuples go out as
    lists and come back as tuples in the dataclass's ``__post_init__``. A
    subclass names itself in ``kind`` for the error about unknown fields.
    """

    kind: ClassVar[str] = "config"

    def to_dict(self) -> dict[str, Any]:
        """The fields in order, tuples as lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[_C], d: dict[str, Any]) -> _C:
        """The config ``d`` describes; unknown fields are an :class:`AeclustError`."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise AeclustError(f"unknown {cls.kind} config fields: {', '.join(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class ModelFile:
    """One kind of model file: a dict saved by ``torch.save`` with a format tag and a version.

    The dict holds ``format``, ``version``, ``config`` (the model's config as
    a dict, from which the model rebuilds itself), ``model`` (its
    ``state_dict``), ``versions`` (torch, numpy and Python that wrote it), and
    whatever the writer adds (epoch, history, optimizer, ...).
    """

    format: str  # "aeclust.<model>": a file of another kind is refused before its config is read
    version: int  # the version written
    noun: str  # what the file is called in messages: "autoencoder checkpoint"
    #: For each older version still read, the config fields its files lack and the values they meant.
    upgrades: Mapping[int, Mapping[str, Any]]

    def save(self, path: str | os.PathLike, model: nn.Module, **extra: Any) -> None:
        """Write ``model``'s config and weights, plus ``extra`` entries, to ``path`` atomically."""
        state = {
            "format": self.format,
            "version": self.version,
            "config": model.config.to_dict(),
            "model": model.state_dict(),
            "versions": {"torch": str(torch.__version__), "numpy": np.__version__, "python": platform.python_version()},
            **extra,
        }
        with atomic_open(path, "wb") as f:
            torch.save(state, f)

    def read(self, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> dict[str, Any]:
        """The dict in ``path``, its tensors on ``device``, its config in this version's fields.

        Raises
        ------
        AeclustError
            When there is no file, it cannot be read (damaged, not a torch
            file), it is of another format or a version not read here, or it
            holds no config.
        """
        path = Path(path)
        if not path.is_file():
            raise AeclustError(f"no {self.noun} at {path}")
        dev = resolve_device(device)
        try:
            state = torch.load(path, map_location=dev, weights_only=True)
        except Exception as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise AeclustError(f"cannot read {self.noun} {path}: {reason}") from e
        if not isinstance(state, dict) or state.get("format") != self.format:
            raise AeclustError(f"{path} is not an aeclust {self.noun}")
        version, config = state.get("version"), state.get("config")
        readable = sorted({*self.upgrades, self.version})
        if version not in readable:
            listed = " and ".join(filter(None, [", ".join(map(str, readable[:-1])), str(readable[-1])]))
            raise AeclustError(f"{path} has {self.noun} version {version}; this aeclust reads "
                               f"version{'s' if len(readable) > 1 else ''} {listed}")
        if not isinstance(config, dict):
            raise AeclustError(f"{path} holds no model config")
        state["config"] = {**self.upgrades.get(version, {}), **config}
        return state

    def rebuild(
        self, build: Callable[[Any], nn.Module], config: Any, weights: Mapping[str, torch.Tensor],
        path: str | os.PathLike, *, device: str | torch.device = "cpu",
    ) -> nn.Module:
        """``build(config)`` with ``weights`` loaded, on ``device``; the caller's torch generator untouched.

        Raises
        ------
        AeclustError
            When the weights do not fit the model the config describes.
        """
        with torch.random.fork_rng(devices=[]):  # the weights are overwritten: leave the caller's generator alone
            model = build(config)
        try:
            model.load_state_dict(weights)
        except RuntimeError as e:
            detail = str(e).strip().splitlines()[-1].strip()
            raise AeclustError(f"the weights in {path} do not fit its config: they do not fit the architecture "
                               f"it describes ({detail})") from None
        return model.to(resolve_device(device))
