"""Every data set through one door: :func:`load_dataset` gives an :class:`ImageSet`.

Sources: CIFAR-10 (its files, download and checksums live in
:mod:`aeclust.cifar10`), scikit-learn's digits, a folder of images, a numpy
``.npy``/``.npz`` array. Every loader returns an :class:`ImageSet`: uint8
images (or, for a ``.npy`` feature matrix, the matrix itself), optional class
labels, a name, and the split it is, for sources that have splits.
:func:`load_dataset` picks the loader from a name or a path, as the CLI's
``--dataset`` does.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import AeclustError, DataNotFoundError, InvalidInputError

__all__ = [
    "ImageSet",
    "load_cifar10",
    "load_image_folder",
    "load_array",
    "load_digits_set",
    "load_dataset",
    "DATASET_NAMES",
    "IMAGE_EXTENSIONS",
]

#: Named data sets that :func:`load_dataset` knows, besides paths.
DATASET_NAMES = ("cifar10", "digits")

#: File name endings read as images in a folder; other files are skipped.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_IMAGE_KEYS = ("images", "X", "x", "data")
_LABEL_KEYS = ("labels", "y")
_SHAPES = "images (n, h, w) or (n, h, w, 3), or a feature matrix (n, d)"


@dataclass(frozen=True)
class ImageSet:
    """A data set ready for clustering.

    Attributes
    ----------
    images : ndarray or None
        uint8 images, (n, h, w, 3) RGB or (n, h, w) grayscale, on the 0..255
        scale. None when the set is a feature matrix (see ``features``).
    labels : ndarray of shape (n,), int64, or None
        True class of each sample, 0..C-1 when ``class_names`` is given; None
        when the classes are unknown.
    class_names : tuple of str or None
        Name of each class id.
    name : str
        Short name for reports: "cifar10-test", "digits", a folder or file name.
    features : ndarray of shape (n, d), float32, or None
        A ready-made feature matrix (a 2-D ``.npy``), clustered as it is; such
        a set has no images, so it cannot feed the autoencoder.
    split : {"train", "test"} or None
        Which split of a source with splits (CIFAR-10) this is; None for a
        source that is one set (it is trained on and clustered both).
    """

    images: np.ndarray | None
    labels: np.ndarray | None
    class_names: tuple[str, ...] | None
    name: str
    features: np.ndarray | None = None
    split: str | None = None

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.features)

    @property
    def is_rgb(self) -> bool:
        """Whether the set holds RGB images."""
        return self.images is not None and self.images.ndim == 4

    def head(self, n: int | None) -> "ImageSet":
        """The first ``n`` samples (all of them for None), for quick runs."""
        if n is None or n >= len(self):
            return self

        def cut(a):
            return None if a is None else a[:n]

        return replace(self, images=cut(self.images), labels=cut(self.labels), features=cut(self.features))

    @property
    def has_images(self) -> bool:
        """Whether the set holds images (and so can be shown or fed to the autoencoder)."""
        return self.images is not None

    def to_matrix(self, color: str = "gray") -> np.ndarray:
        """The float32 matrix that k-means clusters: one row per sample.

        Images go through :func:`aeclust.preprocess.preprocess` (``color``
        "gray" or "rgb"; grayscale images stay as they are); a feature matrix
        is returned as it is and ``color`` is ignored.
        """
        if self.images is None:
            return self.features
        from .preprocess import preprocess

        return preprocess(self.images, color)


# -- image folders --------------------------------------------------------------------------


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        raise AeclustError("reading image folders needs Pillow: pip install Pillow") from None
    return Image


def _visible(entries):
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _image_files(folder: Path) -> list[Path]:
    return [p for p in _visible(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


def load_image_folder(path: str | os.PathLike) -> ImageSet:
    """Read a folder of images, all of one size, as RGB.

    Two layouts are understood:

    * class sub-folders (``path/cat/001.png``, ``path/dog/002.jpg``): the
      sub-folder names, sorted, are the classes, and each image's label is its
      sub-folder's index;
    * a flat folder of images: no labels.

    Only one level of sub-folders is read. Files whose names do not end in one
    of :data:`IMAGE_EXTENSIONS`, hidden files and empty sub-folders are skipped;
    images are read in name order. Grayscale, palette and RGBA images are
    converted to RGB (alpha is dropped); of an animated GIF the first frame is used.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ImageSet
        uint8 images of shape (n, h, w, 3).

    Raises
    ------
    DataNotFoundError
        ``path`` does not exist.
    InvalidInputError
        ``path`` is not a folder, holds no images, mixes loose images with
        class sub-folders, or holds an unreadable image or images of different sizes.
    """
    Image = _pil()
    root = Path(path).expanduser()
    if not root.exists():
        raise DataNotFoundError(f"image folder {root} does not exist; check the path")
    if not root.is_dir():
        raise InvalidInputError(
            f"{root} is a file, not a folder; give a folder of images (or a .npy/.npz file for arrays)"
        )
    exts = ", ".join(IMAGE_EXTENSIONS)
    loose = _image_files(root)
    classes = []
    for sub in _visible(root.iterdir()):
        if sub.is_dir():
            files = _image_files(sub)
            if files:
                classes.append((sub.name, files))
    if classes and loose:
        raise InvalidInputError(
            f"{root} holds both images ({loose[0].name}, ...) and class sub-folders "
            f"({classes[0][0]}, ...); move the {len(loose)} loose image(s) into a class folder, or "
            f"the class folders out"
        )
    if not classes and not loose:
        raise InvalidInputError(
            f"no images ({exts}) in {root} or its sub-folders; put the images there, "
            f"or one sub-folder of images per class"
        )
    if classes:
        files = [f for _, fs in classes for f in fs]
        labels = np.concatenate([np.full(len(fs), i, dtype=np.int64) for i, (_, fs) in enumerate(classes)])
        class_names = tuple(name for name, _ in classes)
    else:
        files, labels, class_names = loose, None, None

    images = None
    first = None
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                size = im.size  # read from the header: a wrong size fails before decoding
                if first is None:
                    first = (f, size)
                    images = np.empty((len(files), size[1], size[0], 3), dtype=np.uint8)
                elif size != first[1]:
                    raise _SizeMismatch(size)
                images[i] = np.asarray(im.convert("RGB"))
        except _SizeMismatch as exc:
            (w0, h0), (w1, h1) = first[1], exc.size
            raise InvalidInputError(
                f"images differ in size: {first[0]} is {w0}x{h0} but {f} is {w1}x{h1}; "
                f"resize them all to one size first (for example with Pillow's Image.resize)"
            ) from None
        except Exception as exc:  # Pillow raises several types for bad files
            raise InvalidInputError(
                f"cannot read image {f}: {exc}; replace or remove that file"
            ) from None
    return ImageSet(images=images, labels=labels, class_names=class_names, name=root.resolve().name)


class _SizeMismatch(Exception):
    def __init__(self, size):
        super().__init__(size)
        self.size = size


# -- numpy arrays ---------------------------------------------------------------------------


def _as_samples(arr: np.ndarray, source: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An array from a file as (uint8 images, None) or (None, float32 features)."""
    if arr.dtype.kind not in "iuf":
        raise InvalidInputError(
            f"{source} has dtype {arr.dtype}; expected numbers: {_SHAPES}, "
            f"images as uint8 0..255 or floats in [0, 1]"
        )
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 4 and arr.shape[-1] != 3:
        hint = ""
        if arr.shape[1] in (1, 3):
            hint = "; it looks channels-first: save np.transpose(a, (0, 2, 3, 1)) instead"
        raise InvalidInputError(f"{source} has shape {arr.shape}; expected {_SHAPES}{hint}")
    if arr.ndim not in (2, 3, 4):
        raise InvalidInputError(f"{source} has shape {arr.shape}; expected {_SHAPES}")
    if arr.shape[0] == 0 or 0 in arr.shape[1:]:
        raise InvalidInputError(f"{source} is empty (shape {arr.shape}); expected {_SHAPES}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidInputError(f"{source} contains NaN or infinite values; remove or impute them first")
    if arr.ndim == 2:
        return None, np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr), None
    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            raise InvalidInputError(
                f"{source} holds integer images with values {lo:g}..{hi:g}; expected 0..255"
            )
        return arr.astype(np.uint8), None
    # Floats: [0, 1] is the usual scale; 0..255 floats are accepted as well.
    if lo < 0 or hi > 255:
        raise InvalidInputError(
            f"{source} holds float images with values {lo:g}..{hi:g}; expected floats in [0, 1] "
            f"(or 0..255), or uint8"
        )
    scale = 255.0 if hi <= 1.0 else 1.0
    return np.round(arr.astype(np.float64) * scale).astype(np.uint8), None


def _as_labels(y: np.ndarray, n: int, source: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Labels from a file as int64 class ids, with class names when they were strings."""
    if y.ndim != 1 or len(y) != n:
        raise InvalidInputError(
            f"{source} has shape {y.shape}; expected one label per sample, shape ({n},)"
        )
    if y.dtype.kind in "US":
        names, codes = np.unique(y, return_inverse=True)
        return codes.astype(np.int64).ravel(), tuple(str(s) for s in names)
    if y.dtype.kind in "iu":
        return y.astype(np.int64), None
    if y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)):
        return y.astype(np.int64), None
    raise InvalidInputError(
        f"{source} has dtype {y.dtype}; expected integer class ids or strings"
    )


def load_array(path: str | os.PathLike) -> ImageSet:
    """Read images or a feature matrix from a ``.npy`` or ``.npz`` file.

    A ``.npy`` file holds one array; a ``.npz`` file holds the samples under
    ``images``, ``X``, ``x`` or ``data`` (the first found), and optionally the
    classes under ``labels`` or ``y`` and their names under ``class_names``.

    The samples may be images, (n, h, w) grayscale or (n, h, w, 3) RGB, as
    uint8 or as floats in [0, 1] (converted to uint8); or a feature matrix
    (n, d) of any real numbers, clustered as it is. Files are read without
    pickle, so they cannot run code.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ImageSet

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    InvalidInputError
        The file cannot be read, holds no usable array, or has the wrong shape or dtype.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"array file {path} does not exist; check the path")
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file; give a .npy or .npz file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InvalidInputError(f"{path} is not a .npy or .npz file; save arrays with np.save or np.savez")
    labels = class_names = None
    # Check the magic bytes first: np.load would try any other file as a pickle
    # and report a misleading "pickled data" error.
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive, as np.savez writes
        kind = ".npz"
    elif head == b"\x93NUMPY":
        kind = ".npy"
    else:
        raise InvalidInputError(
            f"cannot read {path}: it is not a numpy {suffix} file; save arrays with np.save or np.savez"
        )
    if kind != suffix:
        raise InvalidInputError(f"{path} is a {kind} file, not {suffix}; rename it to end in {kind}")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
            source = str(path)
        else:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.files)
                key = next((k for k in _IMAGE_KEYS if k in keys), None)
                if key is None:
                    found = ", ".join(keys) if keys else "nothing"
                    raise InvalidInputError(
                        f"{path} has no array named {', '.join(_IMAGE_KEYS[:-1])} or {_IMAGE_KEYS[-1]} "
                        f"(it holds: {found}); save the samples under one of these names, "
                        f"e.g. np.savez(path, images=images, labels=labels)"
                    )
                arr = z[key]
                source = f"{path}[{key!r}]"
                label_key = next((k for k in _LABEL_KEYS if k in keys), None)
                if label_key is not None:
                    labels = (z[label_key], f"{path}[{label_key!r}]")
                if "class_names" in keys:
                    class_names = z["class_names"]
    except AeclustError:
        raise
    except ValueError as exc:
        if "object" in str(exc).lower():
            raise InvalidInputError(
                f"{path} holds Python objects, which are not loaded (they could run code); "
                f"save plain numeric arrays"
            ) from None
        raise InvalidInputError(f"cannot read {path}: {exc}; the file looks damaged: save it again") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}; the file looks damaged: save it again") from None

    images, features = _as_samples(arr, source)
    n = len(images) if images is not None else len(features)
    y = names = None
    if labels is not None:
        y, names = _as_labels(labels[0], n, labels[1])
    # String labels name their classes themselves; class_names then has nothing to add.
    if class_names is not None and names is None:
        if class_names.ndim != 1 or class_names.dtype.kind not in "US":
            raise InvalidInputError(f"{path}['class_names'] must be a 1-D array of strings")
        names = tuple(str(s) for s in class_names)
        if y is not None and len(y) and (y.min() < 0 or y.max() >= len(names)):
            raise InvalidInputError(
                f"{path} has labels {y.min()}..{y.max()} but {len(names)} class names; "
                f"labels must be 0..{len(names) - 1}"
            )
    return ImageSet(images=images, labels=y, class_names=names if y is not None else None,
                    name=path.stem, features=features)


# -- bundled and named sets -----------------------------------------------------------------


def load_digits_set() -> ImageSet:
    """scikit-learn's bundled handwritten digits: 1,797 grayscale 8x8 images, classes 0..9.

    No download is needed. The 0..16 intensities are scaled to 0..255.

    Returns
    -------
    ImageSet
        uint8 images of shape (1797, 8, 8), labels 0..9, class names "0".."9".
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise AeclustError("the digits set comes with scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return ImageSet(images=images, labels=digits.target.astype(np.int64),
                    class_names=tuple(str(i) for i in range(10)), name="digits")


def load_cifar10(data_dir: str | os.PathLike | None = None, *, split: str = "test", download: bool = True,
                 progress: bool = True) -> ImageSet:
    """One split of CIFAR-10: the 10,000 test images or the 50,000 training images, RGB 32x32.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Where CIFAR-10 lives (see :func:`aeclust.cifar10.resolve_data_dir`).
    split : {"test", "train"}
    download, progress : bool
        Download the official archive when it is not on disk; show a progress bar while doing so.

    Returns
    -------
    ImageSet
        Named "cifar10-test" or "cifar10-train", with labels 0..9 and the class names.
    """
    from .cifar10 import read_cifar10

    images, labels, class_names = read_cifar10(data_dir, split=split, download=download, progress=progress)
    return ImageSet(images=images, labels=labels, class_names=class_names, name=f"cifar10-{split}", split=split)


def load_dataset(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None, *,
                 split: str = "test", download: bool = True, progress: bool = True) -> ImageSet:
    """Load a data set by name or path.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"cifar10"``: :func:`load_cifar10`; ``"digits"``: :func:`load_digits_set`;
        a folder: :func:`load_image_folder`; a ``.npy`` or ``.npz`` file: :func:`load_array`.
    data_dir : str or path-like, optional
        Where CIFAR-10 lives (see :func:`aeclust.cifar10.resolve_data_dir`);
        used only for ``"cifar10"``.
    split : {"test", "train"}
        Which split of a source that has them (CIFAR-10); a source that is
        one set gives all of it for either split (``split`` None in the result).
    download, progress : bool
        Passed to :func:`load_cifar10`.

    Returns
    -------
    ImageSet

    Raises
    ------
    InvalidInputError
        An unknown name (the message lists the choices), a bad split, or a bad file.
    DataNotFoundError
        A path that looks like a file or folder but does not exist, or CIFAR-10 not found.
    """
    if split not in ("test", "train"):
        raise InvalidInputError(f"split must be 'test' or 'train', got {split!r}")
    text = os.fspath(name_or_path)
    key = text.strip().lower()
    if key in ("cifar10", "cifar-10"):
        return load_cifar10(data_dir, split=split, download=download, progress=progress)
    if key == "digits":
        return load_digits_set()
    path = Path(text).expanduser()
    if path.is_dir():
        return load_image_folder(path)
    if path.is_file():
        if path.suffix.lower() in (".npy", ".npz"):
            return load_array(path)
        raise InvalidInputError(
            f"{path} is neither a folder of images nor a .npy/.npz file; "
            f"choose {', '.join(DATASET_NAMES)}, a folder of images, or a .npy/.npz file"
        )
    if path.suffix.lower() in (".npy", ".npz") or os.sep in text or (os.altsep and os.altsep in text):
        raise DataNotFoundError(f"{path} does not exist; check the path")
    raise InvalidInputError(
        f"unknown data set {text!r}: choose {', '.join(DATASET_NAMES)}, "
        f"a folder of images, or a .npy/.npz file"
    )
