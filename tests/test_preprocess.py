import numpy as np
import pytest

from aeclust.errors import InvalidInputError
from aeclust.preprocess import preprocess, to_grayscale


def test_grayscale_uses_bt601_weights():
    img = np.zeros((3, 1, 1, 3), dtype=np.uint8)
    img[0, 0, 0] = [255, 0, 0]
    img[1, 0, 0] = [0, 255, 0]
    img[2, 0, 0] = [0, 0, 255]
    np.testing.assert_allclose(to_grayscale(img)[:, 0, 0], [0.299 * 255, 0.587 * 255, 0.114 * 255], rtol=1e-6)


def test_preprocess_gray_flattens_and_scales():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    X = preprocess(imgs)
    assert X.shape == (4, 1024) and X.dtype == np.float32
    expected = (imgs.astype(np.float64) @ [0.299, 0.587, 0.114]).reshape(4, -1) / 255
    np.testing.assert_allclose(X, expected, atol=1e-6)
    assert 0.0 <= X.min() and X.max() <= 1.0


def test_preprocess_rgb_keeps_channels():
    imgs = np.full((2, 32, 32, 3), 255, dtype=np.uint8)
    X = preprocess(imgs, "rgb")
    assert X.shape == (2, 3072)
    np.testing.assert_array_equal(X, 1.0)


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="unknown color"):
        preprocess(np.zeros((1, 2, 2, 3), np.uint8), "cmyk")
    with pytest.raises(InvalidInputError, match=r"\(n, h, w, 3\)"):
        to_grayscale(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(InvalidInputError, match="shape"):
        preprocess(np.zeros(5, np.uint8))
