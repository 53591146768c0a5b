"""Turn uint8 images into the float feature matrices that k-means clusters.

The study's preprocessing: RGB to grayscale, flatten each 32x32 image to 1024
values, divide by 255. Grayscale is ITU-R BT.601 luma,
``Y = 0.299 R + 0.587 G + 0.114 B`` (the weights of PIL's ``convert("L")`` and
OpenCV's ``COLOR_RGB2GRAY``), computed in float and not rounded back to integers.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError

#: ITU-R BT.601 luma weights for R, G and B.
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)

COLORS = ("gray", "rgb")


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """Convert RGB images to BT.601 luma on the same 0..255 scale.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, 3)
        RGB images, any numeric dtype (usually uint8).

    Returns
    -------
    gray : ndarray of shape (n, h, w), float32
        Luma values, not rounded.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidInputError(
            f"to_grayscale expects RGB images of shape (n, h, w, 3), got shape {images.shape}"
        )
    # One weighted sum per channel in float32: about 1e-7 relative to an exact float64 sum.
    w = BT601.astype(np.float32)
    gray = images[..., 0] * w[0]
    gray += images[..., 1] * w[1]
    gray += images[..., 2] * w[2]
    return gray.astype(np.float32, copy=False)


def preprocess(images: np.ndarray, color: str = "gray") -> np.ndarray:
    """Images to a float32 matrix with one flattened, [0, 1]-scaled image per row.

    Parameters
    ----------
    images : ndarray of shape (n, h, w, 3) or (n, h, w)
        uint8 images on the 0..255 scale.
    color : {"gray", "rgb"}, default="gray"
        ``"gray"`` converts RGB to BT.601 luma first (the study: 1024 features for
        32x32); ``"rgb"`` keeps the channels, flattened in height-width-channel order.

    Returns
    -------
    X : ndarray of shape (n, h*w) or (n, h*w*3), float32
    """
    if color not in COLORS:
        raise InvalidInputError(f"unknown color {color!r}; choose one of {', '.join(COLORS)}")
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise InvalidInputError(
            f"expected images of shape (n, h, w) or (n, h, w, c), got shape {images.shape}"
        )
    if color == "gray" and images.ndim == 4:
        images = to_grayscale(images)
    X = images.reshape(len(images), -1).astype(np.float32)
    X /= np.float32(255.0)
    return X


#: Principal components kept by the "pca" feature set.
PCA_COMPONENTS = 50


def pca(X: np.ndarray, n_components: int) -> np.ndarray:
    """Project the centred rows of ``X`` on their first principal axes.

    The axes are the leading eigenvectors of the d x d scatter matrix, in
    float64: the same subspace as an SVD of ``X``, cheaper when n >> d. BLAS
    runs on one thread, so the projection is the same bits on any machine size
    (see :mod:`aeclust._pairwise`).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    n_components : int
        At most ``min(n, d)``.

    Returns
    -------
    ndarray of shape (n, n_components), float32
    """
    from ._pairwise import single_threaded_blas

    with single_threaded_blas():
        X64 = X.astype(np.float64)
        X64 -= X64.mean(axis=0)
        eigvals, eigvecs = np.linalg.eigh(X64.T @ X64)
        axes = eigvecs[:, ::-1][:, :n_components]
        return (X64 @ axes).astype(np.float32)
