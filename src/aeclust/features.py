"""Feature sets: what k-means clusters, by name, in one registry.

:data:`FEATURE_SETS` maps every name that ``aeclust run``, ``cluster`` and
``sweep`` accept to a :class:`FeatureSet`: a description, whether it needs RGB
images, whether it learns from the training images, and the function that
builds the matrix from a :class:`FeatureInputs`. The CLI's choices, the
pipeline's checks and its stages all read this one table.

The learned feature sets also stand alone, as extractors that learn from
unlabeled uint8 RGB images::

    ext = fit_features("simclr", train_images, seed=0, out_dir="runs/f")
    X = ext.transform(test_images)          # float32 (n, d)
    ext = load_features("runs/f")           # the same extractor, from its files

``out_dir`` receives ``features.json`` (the name and config) and the learned
weights, each written atomically. Config fields can be overridden by keyword:
``fit_features("simclr", x, epochs=5)``.

Learned extractors (:data:`EXTRACTORS`):

``codes``
    The study's convolutional autoencoder (:mod:`aeclust.autoencoder`), with its
    defaults; its 192 code values per image. The baseline.
``simclr``
    A small convnet trained for 60 epochs on augmented (cropped, flipped,
    colour-jittered, sometimes gray or solarised) 16x16 views with two
    contrastive losses, one between images (SimCLR) and one between clusters
    (Contrastive Clustering) (:mod:`aeclust.contrastive`); its cluster head's
    probabilities over ``n_clusters`` clusters, averaged over 38 views of each
    image (the whole image, 18 crops, their mirror images) (``output="projection"``: the
    projection head's 64 L2-normalised values, a feature for any k). The best
    measured here (docs/features.md).
``kmeans-patches``
    Single-layer k-means patch features (:mod:`aeclust.patchfeatures`), a
    classical baseline; 50 whitened principal components.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ._io import write_json
from .errors import AeclustError, InvalidInputError

DEFAULT = "codes"


class Extractor(Protocol):
    name: str
    config: Any

    def transform(self, images: np.ndarray) -> np.ndarray: ...


# -----------------------------------------------------------------------------
# the study's autoencoder


class AutoencoderFeatures:
    name = "codes"

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

        # All of torch's threads, as the training: 38 views of every image are most of the encoding's work.
        return encode(self.model, images, device=self.device, num_threads=None)


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
EXTRACTORS: dict[str, Any] = {
    "codes": AutoencoderFeatures,
    "simclr": ContrastiveFeatures,
    "kmeans-patches": _Patches,
}


def _entry(name: str):
    if name not in EXTRACTORS:
        raise InvalidInputError(f"unknown features {name!r}; choose one of {', '.join(EXTRACTORS)}")
    return EXTRACTORS[name]


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


# -----------------------------------------------------------------------------
# the registry of feature sets


@dataclass
class FeatureInputs:
    """What a feature set is built from.

    Attributes
    ----------
    images : ndarray
        The uint8 images to cluster, (n, h, w, 3) or (n, h, w).
    train_images : ndarray or None
        The images learned feature sets learn from (None where none learn).
    k : int
        The number of clusters k-means will look for (simclr's cluster head learns as many).
    seed : int
    autoencoder : callable, optional
        ``autoencoder(color)`` gives the trained autoencoder for an input colour
        ("gray" or "rgb"); the pipeline trains it, or loads it when resuming.
    ae_color : str
        The autoencoder input colour of the "codes" feature set.
    out_dir : Path or None
        Where a learned feature set keeps its model.
    device : str
    progress : bool
    weights : str or None
        A local weights file for a pretrained feature set (``timm:...``,
        ``open_clip:...``); None lets the library download its weights.
    """

    images: np.ndarray
    train_images: np.ndarray | None = None
    k: int = 10
    seed: int = 0
    autoencoder: Callable[[str], Any] | None = None
    ae_color: str = "gray"
    out_dir: Path | None = None
    device: str = "auto"
    progress: bool = False
    weights: str | None = None


#: k-means' start as the study made it (FeatureSet.kmeans): random data points, one run.
STUDY_START = ("random", 1)


@dataclass(frozen=True)
class FeatureSet:
    """One entry of :data:`FEATURE_SETS`.

    ``build(inputs)`` returns the float32 matrix (one row per image) and a
    description of it for tables and reports (with sizes only known then).
    """

    name: str
    description: str
    rgb: bool
    learned: bool
    build: Callable[[FeatureInputs], tuple[np.ndarray, str]]
    # How `aeclust run` starts k-means on this set: (init, n_init). The study's sets keep the study's one
    # random start. A learned clustering feature gets k-means++, best of 10, as the literature's rows do:
    # simclr's cluster probabilities form k tight groups, and one random start can put two centres in one
    # group and merge two others (seed 1 of the 52-epoch model, the default then: ACC 0.393 that way, 0.441 best of 10).
    kmeans: tuple[str, int] = STUDY_START
    # Which images the set clusters: "test", the images every other set clusters (CIFAR-10's test split), or
    # "train", the images the learned sets learn from. The study's part 2 clusters the training images' codes.
    split: str = "test"

    def needs_rgb(self, ae_color: str = "gray") -> bool:
        """Whether the set needs RGB images (the "codes" sets do when their autoencoder reads RGB)."""
        return self.rgb or (self.name in ("codes", "codes-train") and ae_color == "rgb")


def _pixels(color: str):
    def build(inp: FeatureInputs) -> tuple[np.ndarray, str]:
        from .preprocess import preprocess

        return preprocess(inp.images, color), FEATURE_SETS["pixels" if color == "gray" else "pixels-rgb"].description

    return build


def _pca(inp: FeatureInputs) -> tuple[np.ndarray, str]:
    from .preprocess import PCA_COMPONENTS, pca, preprocess

    X = preprocess(inp.images, "gray")
    n = min(PCA_COMPONENTS, *X.shape)
    return pca(X, n), f"PCA of grayscale pixels ({n} components)"


def _codes(force_color: str | None):
    def build(inp: FeatureInputs) -> tuple[np.ndarray, str]:
        from .autoencoder import encode

        if inp.autoencoder is None:
            raise InvalidInputError("the codes feature set needs a trained autoencoder (a model.pt)")
        color = force_color or inp.ae_color
        model = inp.autoencoder(color)
        grid = "x".join(str(s) for s in (model.config.channels[1], *(d // 4 for d in inp.images.shape[1:3])))
        return encode(model, inp.images), f"autoencoder codes ({color} input, {grid})"

    return build


def _learned(name: str):
    def build(inp: FeatureInputs) -> tuple[np.ndarray, str]:
        if inp.train_images is None:
            raise InvalidInputError(f"the {name} feature set learns from training images; none were given")
        # simclr's cluster head learns as many clusters as k-means will look for, so that its probabilities
        # (the default output) are the features for this k.
        config = {"n_clusters": inp.k} if name == "simclr" else {}
        extractor = fit_features(name, inp.train_images, seed=inp.seed, device=inp.device,
                                 out_dir=inp.out_dir, progress=inp.progress, **config)
        X = extractor.transform(inp.images)
        return X, f"{FEATURE_SETS[name].description}, {X.shape[1]}-d"

    return build


#: k-means' start on the feature sets beyond the study's (FeatureSet.kmeans): k-means++, best of 10 runs.
BEST_OF_10 = ("k-means++", 10)

#: Every feature set by name; the study compares ("pixels", "codes").
FEATURE_SETS: dict[str, FeatureSet] = {f.name: f for f in (
    FeatureSet("pixels", "grayscale pixels (BT.601), /255", rgb=False, learned=False, build=_pixels("gray")),
    FeatureSet("pixels-rgb", "RGB pixels, /255", rgb=True, learned=False, build=_pixels("rgb")),
    FeatureSet("pca", "PCA of grayscale pixels", rgb=False, learned=False, build=_pca),
    FeatureSet("codes", "autoencoder codes", rgb=False, learned=True, build=_codes(None)),
    FeatureSet("codes-train", "autoencoder codes of the training images (the study's reading)", rgb=False,
               learned=True, build=_codes(None), split="train"),
    FeatureSet("codes-rgb", "autoencoder codes (RGB input)", rgb=True, learned=True, build=_codes("rgb")),
    FeatureSet("simclr", "contrastive features (SimCLR with a cluster head)", rgb=True, learned=True,
               build=_learned("simclr"), kmeans=BEST_OF_10),
    FeatureSet("kmeans-patches", "k-means patch features (Coates & Ng)", rgb=True, learned=True,
               build=_learned("kmeans-patches"), kmeans=BEST_OF_10),
)}
#: What the study compares: the test images' pixels (part 1); the autoencoder's codes (part 2) of the training
#: images, as the study says it clustered them, and of the test images, comparable with part 1.
DEFAULT_FEATURE_SETS = ("pixels", "codes", "codes-train")
#: What 'all' means: every feature set that trains nothing beyond the study's autoencoder
#: (the other learned ones train for minutes, so only on request).
ALL_FEATURE_SETS = tuple(n for n, f in FEATURE_SETS.items() if not f.learned or n.startswith("codes"))


#: The prefixes of open-ended names: frozen pretrained backbones (:mod:`aeclust.pretrained`),
#: e.g. "timm:resnet50.a1_in1k" or "open_clip:ViT-B-32.openai", made on demand by :func:`feature_set`.
PRETRAINED_PREFIXES = ("timm:", "open_clip:")


def _pretrained(name: str) -> FeatureSet:
    """The feature set of a frozen backbone, ``timm:...`` or ``open_clip:...`` (:mod:`aeclust.pretrained`)."""
    from .pretrained import embeddings, parse_name

    library, model = parse_name(name)
    description = f"frozen {'OpenCLIP' if library == 'open_clip' else 'timm'} {model} embeddings"

    def build(inp: FeatureInputs) -> tuple[np.ndarray, str]:
        X = embeddings(name, inp.images, weights=inp.weights, out_dir=inp.out_dir, device=inp.device,
                       progress=inp.progress)
        return X, f"{description}, {X.shape[1]}-d"

    # Not "learned": nothing is trained on the run's images.
    return FeatureSet(name, description, rgb=False, learned=False, build=build, kmeans=BEST_OF_10)


def feature_set(name: str) -> FeatureSet:
    """The feature set called ``name``: an entry of :data:`FEATURE_SETS`, or a pretrained backbone's.

    Parameters
    ----------
    name : str
        A key of :data:`FEATURE_SETS`, or ``timm:MODEL`` / ``open_clip:ARCH.TAG``.

    Raises
    ------
    InvalidInputError
        For an unknown name.
    """
    if name in FEATURE_SETS:
        return FEATURE_SETS[name]
    if isinstance(name, str) and name.startswith(PRETRAINED_PREFIXES):
        return _pretrained(name)
    raise InvalidInputError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SETS)}, "
                            f"timm:MODEL or open_clip:ARCH.TAG")


def feature_set_names(text: str) -> tuple[str, ...]:
    """Read a comma-separated list of feature-set names ("all" for :data:`ALL_FEATURE_SETS`)."""
    if text.strip() == "all":
        return ALL_FEATURE_SETS
    return tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def check_feature_sets(names, *, rgb_images: bool, ae_color: str = "gray", allowed=None,
                       weights=None) -> tuple[str, ...]:
    """Fail before any work when a feature set is unknown, or needs RGB images that are grayscale.

    Parameters
    ----------
    names : iterable of str
    rgb_images : bool
        Whether the images to cluster are RGB.
    ae_color : str
        The autoencoder input colour of the "codes" set.
    allowed : iterable of str, optional
        The names this job can build (default: all of :data:`FEATURE_SETS`, and the
        pretrained backbones, ``timm:MODEL`` and ``open_clip:ARCH.TAG``).
    weights : path-like, optional
        A local weights file for the one pretrained feature set among ``names``.

    Returns
    -------
    tuple of str
        The names, without repeats.

    Raises
    ------
    InvalidInputError
        Also for a pretrained name that its library does not know, and a weights
        file that is missing or goes with no pretrained feature set.
    aeclust.pretrained.ExtraNotInstalledError
        A pretrained name without its library: ``pip install 'aeclust[pretrained]'``.
    """
    names = tuple(dict.fromkeys(names))
    open_ended = allowed is None  # pretrained backbones only where any feature set is welcome
    allowed = tuple(FEATURE_SETS if allowed is None else allowed)
    choices = ", ".join(allowed) + (", timm:MODEL, open_clip:ARCH.TAG" if open_ended else "")
    if not names:
        raise InvalidInputError(f"no feature set given; choose from {choices}")
    pretrained = [n for n in names if open_ended and n not in FEATURE_SETS and n.startswith(PRETRAINED_PREFIXES)]
    unknown = [n for n in names if n not in allowed and n not in pretrained]
    if unknown:
        raise InvalidInputError(f"unknown feature set(s) {', '.join(unknown)}; choose from {choices}")
    if pretrained or weights is not None:
        from .pretrained import check_names

        check_names(pretrained, weights)
    if not rgb_images:
        rgb = [n for n in names if n not in pretrained and FEATURE_SETS[n].needs_rgb(ae_color)]
        if rgb:
            raise InvalidInputError(f"feature set(s) {', '.join(rgb)} need RGB images, but these images are "
                                    f"grayscale; drop them, or give the autoencoder grayscale input")
    return names
