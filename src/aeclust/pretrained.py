"""Frozen pretrained backbones as feature sets: ``timm:MODEL`` and ``open_clip:ARCH.TAG``.

A pretrained image model, its weights left as they are, turns every image into
one embedding; k-means clusters the embeddings like any other feature set::

    aeclust run --feature-sets pixels,timm:vit_small_patch14_dinov2.lvd142m
    aeclust run --feature-sets pixels,timm:resnet50.a1_in1k --weights resnet50.safetensors

or from Python::

    X = embeddings("timm:resnet50.a1_in1k", images, out_dir="runs/emb")   # float32 (n, d)

Names
    ``timm:MODEL`` is any model of timm, with or without its pretrained tag
    (``timm.list_models(pretrained=True)``); the embedding is its pooled
    features before the classifier. ``open_clip:ARCH.TAG`` is an OpenCLIP
    model and the tag of its weights (``open_clip.list_pretrained()``); the
    embedding is its image embedding (``encode_image``). With a local weights
    file, ``open_clip:ARCH`` alone is enough.

Weights
    By default the library downloads them on first use (timm and OpenCLIP keep
    them in the Hugging Face cache). ``weights=FILE`` (``--weights FILE``)
    reads a local copy instead: a safetensors file or a torch checkpoint of the
    same architecture. Without network and without a file, the error
    (:class:`WeightsUnavailableError`) names the file to download and where to
    put it.

Images
    Resized whole to the model's input size with its interpolation, scaled to
    [0, 1] and normalised with its mean and std (timm's data config, OpenCLIP's
    preprocess config). There is no centre crop: on images as small as
    CIFAR-10's 32x32 the crop would cut away a good part of each picture.
    Grayscale images are repeated into three channels. The embeddings are
    computed in batches under a progress bar.

Cache
    With ``out_dir``, ``embeddings.npy`` and ``embeddings.json`` are written
    there; the JSON records the model, the SHA-256 of the weights (over their
    tensors, so the same weights match from any file or download), the
    preprocessing, the library's version and the SHA-256 of the images. A
    later call reuses the embeddings when all of these match, and computes
    them again otherwise.

Installing
    ``pip install 'aeclust[pretrained]'`` adds timm, OpenCLIP and the
    torchvision built for torch 2.13.0. PyPI's torchvision wheels are built
    against PyPI's (CUDA) torch; with the CPU build of torch, install the
    matching torchvision from PyTorch's CPU index first (docs/features.md).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import save_array, write_json
from .errors import AeclustError, InvalidInputError

#: The libraries whose backbones can be named, as ``LIBRARY:MODEL`` (aeclust.features.PRETRAINED_PREFIXES).
LIBRARIES = ("timm", "open_clip")
#: Images per forward pass.
BATCH_SIZE = 64
#: The version of embeddings.json's layout; a cache of another layout is computed again.
CACHE_FORMAT = 1
#: What installs the libraries.
EXTRA = "pip install 'aeclust[pretrained]'"
#: The interpolations torch can do on a batch; other names fall back to the nearest kin.
_INTERPOLATIONS = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest-exact"}


class ExtraNotInstalledError(AeclustError, ImportError):
    """The library behind a pretrained feature set is not installed, or does not import."""


class WeightsUnavailableError(AeclustError):
    """The weights could not be downloaded, and no local file was given."""


class WeightsMismatchError(AeclustError, ValueError):
    """A weights file that cannot be read, or does not fit the model."""


# -----------------------------------------------------------------------------
# names


def parse_name(name: str) -> tuple[str, str]:
    """Split ``"timm:resnet50.a1_in1k"`` into the library and the model.

    Raises
    ------
    InvalidInputError
        For another prefix, an empty model, or characters that cannot be part of a
        folder name (the run directory keeps each feature set in a folder of its name).
    """
    library, sep, model = name.partition(":")
    if not sep or library not in LIBRARIES:
        raise InvalidInputError(f"{name!r} is not a pretrained feature set; write timm:MODEL or open_clip:ARCH.TAG")
    if not model:
        example = "timm:resnet50.a1_in1k" if library == "timm" else "open_clip:ViT-B-32.openai"
        raise InvalidInputError(f"{name!r} names no model; for example {example}")
    bad = sorted({c for c in model if c in "/\\:" or c.isspace()})
    if bad:
        raise InvalidInputError(f"{name!r}: a model name without {' '.join(repr(c) for c in bad)} (hub paths are "
                                f"not supported; download the file and give it with --weights)")
    return library, model


def _import(library: str):
    """The library's module, or an error that says how to install it."""
    try:
        return importlib.import_module(library)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] != library:
            raise _broken(library, exc) from exc
        raise ExtraNotInstalledError(f"the {library}: feature sets need {library}: {EXTRA}") from exc
    except Exception as exc:  # a torchvision built for another torch fails here with a RuntimeError
        raise _broken(library, exc) from exc


def _broken(library: str, exc: BaseException) -> ExtraNotInstalledError:
    why = f"{library} is installed but does not import ({type(exc).__name__}: {_first_line(exc)})"
    if "torchvision" not in str(exc) and getattr(exc, "name", None) != "torchvision":
        return ExtraNotInstalledError(f"{why}; reinstall it: {EXTRA}")
    # PyPI's torchvision wheels are linked against PyPI's (CUDA) torch and fail beside the CPU build.
    return ExtraNotInstalledError(
        f"{why}; its torchvision must be built for this torch ({torch.__version__}): with the CPU build of "
        f"torch 2.13.0, pip install torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cpu")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join((str(exc) or type(exc).__name__).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_weights_dir() -> Path:
    """Where the offline error suggests putting downloaded weights: ``<user cache>/aeclust/weights``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("aeclust", appauthor=False)) / "weights"


# -----------------------------------------------------------------------------
# the libraries


@dataclass(frozen=True)
class Preprocessing:
    """How images become a backbone's input.

    Attributes
    ----------
    size : tuple of int
        (height, width) the whole image is resized to.
    mean, std : tuple of float
        Per channel (RGB), applied to values in [0, 1].
    interpolation : str
        "bicubic", "bilinear" or "nearest".
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str

    @classmethod
    def from_config(cls, size, mean, std, interpolation) -> Preprocessing:
        """Normalise a library's config: an int size, one-value mean/std, PIL's names of filters."""
        size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)[-2:]
        mean, std = (tuple(float(v) for v in np.broadcast_to(np.asarray(a, float), 3)) for a in (mean, std))
        # torch resizes batches with these three; lanczos, hamming and box are closest to bicubic.
        interpolation = interpolation if interpolation in _INTERPOLATIONS else "bicubic"
        return cls(size, mean, std, interpolation)


class _Timm:
    """``timm:MODEL``: ``timm.create_model(MODEL, pretrained=True, num_classes=0)``, its pooled features."""

    name = "timm"

    def check(self, lib, model: str, weights) -> None:
        if not lib.is_model(model):
            raise InvalidInputError(f"timm has no model {model!r}; timm.list_models(pretrained=True) lists them")
        cfg = self._cfg(lib, model)
        if weights is None and not (cfg is not None and (_get(cfg, "hf_hub_id") or _get(cfg, "url"))):
            raise InvalidInputError(f"timm publishes no weights for {model!r}; give a weights file (--weights FILE) "
                                    f"or choose a model from timm.list_models(pretrained=True)")

    @staticmethod
    def _cfg(lib, model: str):
        try:
            return lib.models.get_pretrained_cfg(model)
        except RuntimeError as exc:  # a tag the architecture does not have
            raise InvalidInputError(f"timm: {_first_line(exc)} timm.list_models({model.split('.')[0]!r}, "
                                    f"pretrained=True) lists its tags") from None

    def create(self, lib, model: str, weights):
        overlay = None if weights is None else {"file": str(weights)}
        # pretrained=True with a file: timm's own loader reads it, with the model's key conversions,
        # and drops the classifier that num_classes=0 leaves out.
        net = lib.create_model(model, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        cfg = lib.data.resolve_model_data_config(net)
        channels = cfg["input_size"][0]
        if channels != 3:
            raise InvalidInputError(f"timm:{model} reads {channels}-channel images; aeclust gives it RGB")
        return net, Preprocessing.from_config(cfg["input_size"], cfg["mean"], cfg["std"], cfg["interpolation"])

    def download(self, lib, model: str) -> tuple[str, str]:
        """The URL of the weights timm would download, and the model's full name (with its default tag)."""
        cfg = self._cfg(lib, model)
        full = f"{_get(cfg, 'architecture')}.{_get(cfg, 'tag')}" if _get(cfg, "tag") else model
        if _get(cfg, "hf_hub_id"):
            # timm reads model.safetensors from its own repositories, or the file the config names.
            filename = _get(cfg, "hf_hub_filename") or "model.safetensors"
            return f"https://huggingface.co/{_get(cfg, 'hf_hub_id')}/resolve/main/{filename}", full
        return _get(cfg, "url") or "", full


class _OpenClip:
    """``open_clip:ARCH.TAG``: ``open_clip.create_model(ARCH, pretrained=TAG)``, its ``encode_image``."""

    name = "open_clip"

    @staticmethod
    def _split(model: str) -> tuple[str, str | None]:
        arch, _, tag = model.partition(".")
        return arch, tag or None

    def check(self, lib, model: str, weights) -> None:
        arch, tag = self._split(model)
        if arch not in lib.list_models():
            raise InvalidInputError(f"open_clip has no model {arch!r}; open_clip.list_models() lists them")
        tags = list(lib.list_pretrained_tags_by_model(arch))
        if tag is not None and tag not in tags:
            raise InvalidInputError(f"open_clip has no weights {tag!r} for {arch}; "
                                    f"its tags: {', '.join(tags) or 'none'}")
        if tag is None and weights is None:
            raise InvalidInputError(
                f"open_clip:{arch} needs the tag of the weights to download, open_clip:{arch}.TAG with TAG one of "
                f"{', '.join(tags) or '(none published)'}; or give a weights file (--weights FILE)")

    def create(self, lib, model: str, weights):
        arch, tag = self._split(model)
        tag_cfg = dict(lib.get_pretrained_cfg(arch, tag) or {}) if tag else {}
        kwargs: dict[str, Any] = {}
        # The tag says how its weights were trained (activation, normalisation), also when they come from a file.
        if tag_cfg.get("quick_gelu"):
            kwargs["force_quick_gelu"] = True
        if weights is not None:
            preprocess = {k: tag_cfg[k] for k in ("mean", "std", "interpolation") if k in tag_cfg}
            if preprocess:
                kwargs["force_preprocess_cfg"] = preprocess
        net = lib.create_model(arch, pretrained=str(weights) if weights is not None else tag, **kwargs)
        cfg = lib.get_model_preprocess_cfg(net)
        return _ImageTower(net), Preprocessing.from_config(cfg["size"], cfg["mean"], cfg["std"],
                                                           cfg.get("interpolation", "bicubic"))

    def download(self, lib, model: str) -> tuple[str, str]:
        """The URL of the weights OpenCLIP would download, and the model's name."""
        arch, tag = self._split(model)
        cfg = dict(lib.get_pretrained_cfg(arch, tag) or {})
        if cfg.get("hf_hub"):
            # OpenCLIP's convention: "org/repo/" for its default file name, or "org/repo/file".
            repo, filename = posixpath.split(cfg["hf_hub"])
            return f"https://huggingface.co/{repo}/resolve/main/{filename or 'open_clip_pytorch_model.bin'}", model
        return cfg.get("url", ""), model


def _get(cfg, key: str):
    """A field of a timm pretrained config (a dataclass in timm 0.9 and later, a dict before)."""
    return cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)


class _ImageTower(torch.nn.Module):
    """A CLIP model seen as an image encoder: forward is ``encode_image``."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, x):
        return self.clip.encode_image(x)


_ADAPTERS = {"timm": _Timm(), "open_clip": _OpenClip()}


# -----------------------------------------------------------------------------
# backbones


@dataclass
class Backbone:
    """A frozen pretrained image model, ready to embed images.

    Attributes
    ----------
    name : str
        The feature set's name, e.g. ``"timm:resnet50.a1_in1k"``.
    model : torch.nn.Module
        Normalised (n, 3, H, W) float32 images in, (n, d) embeddings out; in eval mode.
    preprocessing : Preprocessing
    source : str
        Where the weights came from: the file, or the library's download.
    library_version : str
    """

    name: str
    model: Any
    preprocessing: Preprocessing
    source: str
    library_version: str
    _sha256: str | None = None

    @property
    def weights_sha256(self) -> str:
        """SHA-256 over the model's tensors (names, dtypes, shapes and bytes, in name order)."""
        if self._sha256 is None:
            self._sha256 = state_sha256(self.model)
        return self._sha256


def state_sha256(model) -> str:
    """SHA-256 of a torch module's state: what decides its outputs, whichever file it came from."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def check_names(names, weights: str | os.PathLike | None = None) -> None:
    """Fail before any work on pretrained feature sets that cannot be built.

    Parameters
    ----------
    names : iterable of str
        The pretrained feature sets of a run (``timm:...``, ``open_clip:...``).
    weights : path-like, optional
        The local weights file; it belongs to exactly one of ``names``.

    Raises
    ------
    InvalidInputError
        A malformed or unknown name, a tag the library does not publish, a weights
        file that does not exist or that goes with no pretrained feature set or with several.
    ExtraNotInstalledError
        The library is not installed (or does not import).
    """
    names = list(names)
    if weights is not None:
        if not names:
            raise InvalidInputError("--weights is the weights file of a timm:MODEL or open_clip:ARCH feature set, "
                                    "and none was given")
        if len(names) > 1:
            raise InvalidInputError(f"--weights is the file of one pretrained feature set; {len(names)} were given "
                                    f"({', '.join(names)}): run them one at a time")
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InvalidInputError(f"weights file {path} does not exist" if not path.exists()
                                    else f"weights file {path} is not a file")
    for name in names:
        library, model = parse_name(name)
        _ADAPTERS[library].check(_import(library), model, weights)


def load_backbone(name: str, *, weights: str | os.PathLike | None = None) -> Backbone:
    """The frozen backbone ``name``, with the library's weights or those of a local file.

    Parameters
    ----------
    name : str
        ``"timm:MODEL"`` or ``"open_clip:ARCH.TAG"``.
    weights : path-like, optional
        A local copy of the weights (safetensors or a torch checkpoint); without
        it, the library downloads them on first use.

    Raises
    ------
    WeightsUnavailableError
        The download failed (no network) and no file was given; the message names
        the file to download and where to put it.
    WeightsMismatchError
        The file cannot be read, or does not fit the architecture.
    """
    check_names([name], weights)
    library, model = parse_name(name)
    lib, adapter = _import(library), _ADAPTERS[library]
    path = None if weights is None else Path(weights).expanduser()
    try:
        net, preprocessing = adapter.create(lib, model, path)
    except AeclustError:
        raise
    except Exception as exc:
        if path is not None:
            # torch's load_state_dict says "Error(s) in loading state_dict" for keys or shapes that differ;
            # anything else failed earlier, reading the file.
            unreadable = "Error(s) in loading state_dict" not in str(exc)
            what = "cannot be read as the weights of" if unreadable else "does not fit"
            raise WeightsMismatchError(f"the weights file {path} {what} {name} "
                                       f"({type(exc).__name__}: {_first_line(exc, 300)})") from exc
        if not _is_network_error(exc):
            raise
        raise _unavailable(name, adapter, lib, model, exc) from exc
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    source = str(path) if path is not None else f"downloaded by {library}"
    return Backbone(name, net, preprocessing, source, str(getattr(lib, "__version__", "?")))


def _is_network_error(exc: BaseException) -> bool:
    """Whether a download failed for want of a connection (or a file the hub would not give).

    huggingface_hub raises an OSError offline (LocalEntryNotFoundError), urllib a URLError
    (an OSError too); OpenCLIP wraps either in a RuntimeError, so the whole chain is searched.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        module = type(exc).__module__.split(".")[0]
        if isinstance(exc, OSError) or module in ("huggingface_hub", "httpx", "httpx2", "httpcore", "requests",
                                                  "urllib3"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _unavailable(name: str, adapter, lib, model: str, exc: BaseException) -> WeightsUnavailableError:
    url, full = adapter.download(lib, model)
    cause = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    target = default_weights_dir() / adapter.name / f"{full}{_suffix(url)}"
    what = f"download {url}" if url else f"download the weights of {name} (the library names no file)"
    return WeightsUnavailableError(
        f"cannot download the weights of {name} ({_first_line(cause, 120)}): {what} on a machine with network, "
        f"save it as {target} and rerun with --weights {target}")


def _suffix(url: str) -> str:
    tail = url.rsplit("/", 1)[-1]
    return "." + tail.rsplit(".", 1)[-1] if "." in tail else ".bin"


# -----------------------------------------------------------------------------
# embeddings


def preprocess(images: np.ndarray, p: Preprocessing):
    """uint8 images (n, h, w, 3) or (n, h, w) to the backbone's normalised float32 (n, 3, H, W) tensor."""
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:  # grayscale: the same value in all three channels
        x = x.unsqueeze(-1).expand(*x.shape, 3)
    x = x.permute(0, 3, 1, 2).float().div_(255)
    if tuple(x.shape[-2:]) != p.size:
        mode = _INTERPOLATIONS[p.interpolation]
        smooth = mode in ("bilinear", "bicubic")
        x = F.interpolate(x, size=p.size, mode=mode, align_corners=False if smooth else None, antialias=smooth)
        x = x.clamp_(0, 1)  # bicubic overshoots at edges; PIL's resize clamps the same way
    mean = torch.tensor(p.mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(p.std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def embed(backbone: Backbone, images: np.ndarray, *, batch_size: int = BATCH_SIZE, device: str = "auto",
          progress: bool = False) -> np.ndarray:
    """The backbone's embeddings of uint8 images, batch by batch: float32 (n, d)."""
    from tqdm.auto import tqdm

    from .autoencoder import resolve_device

    dev = resolve_device(device)
    model = backbone.model.to(dev).eval()
    out = []
    with torch.inference_mode(), tqdm(total=len(images), unit="img", desc=f"{backbone.name} embeddings",
                                      disable=not progress, leave=False) as bar:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            y = model(preprocess(batch, backbone.preprocessing).to(dev))
            if isinstance(y, (tuple, list)):  # a model that returns (embedding, extras)
                y = y[0]
            out.append(y.float().reshape(len(batch), -1).cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(out).astype(np.float32, copy=False)


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise InvalidInputError(f"images must be uint8, (n, h, w, 3) or (n, h, w); got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise InvalidInputError("no images to embed")
    return images


def _images_sha256(images: np.ndarray) -> str:
    h = hashlib.sha256(f"{images.dtype}|{images.shape}\n".encode())
    h.update(np.ascontiguousarray(images).reshape(-1).view(np.uint8))
    return h.hexdigest()


def embeddings(name: str, images: np.ndarray, *, weights: str | os.PathLike | None = None,
               out_dir: str | os.PathLike | None = None, device: str = "auto", batch_size: int = BATCH_SIZE,
               progress: bool = False) -> np.ndarray:
    """Embeddings of ``images`` by the frozen backbone ``name``, cached in ``out_dir``.

    Parameters
    ----------
    name : str
        ``"timm:MODEL"`` or ``"open_clip:ARCH.TAG"``.
    images : ndarray
        uint8, (n, h, w, 3) or (n, h, w).
    weights : path-like, optional
        A local weights file; without it the library downloads the weights.
    out_dir : path-like, optional
        Where ``embeddings.npy`` and ``embeddings.json`` are kept; they are reused
        when the weights, preprocessing, library version and images all match.
    device : str
        "auto", "cpu" or "cuda".
    batch_size : int
    progress : bool
        A progress bar over the images.

    Returns
    -------
    ndarray
        float32 (n, d).
    """
    images = _check_images(images)
    backbone = load_backbone(name, weights=weights)
    record = {
        "format": CACHE_FORMAT,
        "name": name,
        "library_version": backbone.library_version,
        "weights_sha256": backbone.weights_sha256,
        "preprocessing": asdict(backbone.preprocessing),
        "images": {"shape": list(images.shape), "sha256": _images_sha256(images)},
    }
    record = json.loads(json.dumps(record))  # tuples as lists, as they come back from the file
    if out_dir is not None:
        cached = read_cache(out_dir, record)
        if cached is not None:
            return cached
    X = embed(backbone, images, batch_size=batch_size, device=device, progress=progress)
    if out_dir is not None:
        out_dir = Path(out_dir)
        # The array first: embeddings.json beside it means the array is whole and belongs to it.
        save_array(out_dir / "embeddings.npy", X)
        write_json(out_dir / "embeddings.json", {**record, "weights_source": backbone.source,
                                                 "n_features": int(X.shape[1])})
    return X


def read_cache(out_dir: str | os.PathLike, record: dict) -> np.ndarray | None:
    """The cached embeddings in ``out_dir`` if their record matches ``record``, else None."""
    out_dir = Path(out_dir)
    try:
        saved = json.loads((out_dir / "embeddings.json").read_text())
        if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in record.items()):
            return None
        X = np.load(out_dir / "embeddings.npy", allow_pickle=False)
    except (OSError, ValueError):  # none yet, or a damaged one: computed again
        return None
    if X.dtype != np.float32 or X.shape != (record["images"]["shape"][0], saved.get("n_features")):
        return None
    return X
