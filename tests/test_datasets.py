"""Loaders for image folders, numpy files, the digits, and the name-or-path dispatcher."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aeclust.errors import DataNotFoundError, InvalidInputError
from aeclust.datasets import ImageSet, load_array, load_dataset, load_digits_set, load_image_folder


def _png(path, color=(10, 20, 30), size=(6, 4), mode="RGB"):
    """A small solid image; ``size`` is (width, height) as Pillow has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, color)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return path


# -- image folders ----------------------------------------------------------------------------


def test_class_folders(tmp_path):
    _png(tmp_path / "dog" / "b.png", (200, 0, 0))
    _png(tmp_path / "dog" / "a.png", (100, 0, 0))
    _png(tmp_path / "cat" / "x.bmp", (0, 50, 0))
    _png(tmp_path / "cat" / "y.png", (0, 60, 0), mode="L")  # grayscale becomes RGB
    _png(tmp_path / "cat" / "z.gif", (0, 0, 255), mode="P")  # palette becomes RGB
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    data = load_image_folder(tmp_path)
    assert data.images.shape == (5, 4, 6, 3) and data.images.dtype == np.uint8
    assert data.class_names == ("cat", "dog")
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1])
    # Name order within a class: dog/a.png comes before dog/b.png.
    assert tuple(data.images[3, 0, 0]) == (100, 0, 0) and tuple(data.images[4, 0, 0]) == (200, 0, 0)
    assert tuple(data.images[0, 0, 0]) == (0, 50, 0)
    gray = data.images[1, 0, 0]
    assert gray[0] == gray[1] == gray[2]
    assert tuple(data.images[2, 0, 0]) == (0, 0, 255)
    assert data.name == tmp_path.name
    assert data.to_matrix("gray").shape == (5, 24)
    assert data.to_matrix("rgb").shape == (5, 72)


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.jpg", (i * 40, 0, 0))
    _png(tmp_path / "rgba.png", (1, 2, 3), mode="RGBA")
    data = load_image_folder(tmp_path)
    assert data.images.shape == (4, 4, 6, 3)
    assert data.labels is None and data.class_names is None
    assert tuple(data.images[3, 0, 0]) == (1, 2, 3)  # alpha dropped


def test_corrupt_image_is_named(tmp_path):
    _png(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(InvalidInputError, match=r"cannot read image .*broken\.png.*replace or remove"):
        load_image_folder(tmp_path)


def test_mixed_sizes_name_both_files(tmp_path):
    _png(tmp_path / "a.png", size=(6, 4))
    _png(tmp_path / "b.png", size=(8, 8))
    with pytest.raises(InvalidInputError) as info:
        load_image_folder(tmp_path)
    msg = str(info.value)
    assert "a.png is 6x4" in msg and "b.png is 8x8" in msg and "resize" in msg


def test_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="no images"):
        load_image_folder(tmp_path)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="no images"):
        load_image_folder(tmp_path)
    with pytest.raises(InvalidInputError, match="not a folder"):
        load_image_folder(tmp_path / "readme.txt")
    _png(tmp_path / "loose.png")
    _png(tmp_path / "cls" / "a.png")
    with pytest.raises(InvalidInputError, match="both images"):
        load_image_folder(tmp_path)


# -- numpy files --------------------------------------------------------------------------------


def test_npy_rgb_gray_and_features(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    data = load_array(tmp_path / "rgb.npy")
    np.testing.assert_array_equal(data.images, rgb)
    assert data.labels is None and data.name == "rgb" and data.has_images

    gray = rng.random((5, 8, 8))  # floats in [0, 1]
    np.save(tmp_path / "gray.npy", gray)
    data = load_array(tmp_path / "gray.npy")
    assert data.images.dtype == np.uint8 and data.images.shape == (5, 8, 8)
    np.testing.assert_array_equal(data.images, np.round(gray * 255).astype(np.uint8))

    feats = rng.normal(size=(7, 3))
    np.save(tmp_path / "f.npy", feats)
    data = load_array(tmp_path / "f.npy")
    assert data.images is None and not data.has_images and len(data) == 7
    np.testing.assert_allclose(data.to_matrix(), feats.astype(np.float32))
    assert data.to_matrix().dtype == np.float32

    np.save(tmp_path / "one.npy", np.zeros((3, 4, 4, 1), dtype=np.uint8))
    assert load_array(tmp_path / "one.npy").images.shape == (3, 4, 4)


def test_npz_keys_and_labels(tmp_path):
    imgs = np.zeros((4, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, labels=np.array([0, 1, 1, 2]),
             class_names=np.array(["x", "y", "z"]))
    data = load_array(tmp_path / "a.npz")
    np.testing.assert_array_equal(data.labels, [0, 1, 1, 2])
    assert data.class_names == ("x", "y", "z")

    np.savez(tmp_path / "b.npz", X=np.ones((3, 2)), y=np.array(["cat", "dog", "cat"]))
    data = load_array(tmp_path / "b.npz")
    assert data.features.shape == (3, 2)
    np.testing.assert_array_equal(data.labels, [0, 1, 0])
    assert data.class_names == ("cat", "dog")


@pytest.mark.parametrize(
    "array,match",
    [
        (np.zeros(5), r"expected images \(n, h, w\) or \(n, h, w, 3\), or a feature matrix \(n, d\)"),
        (np.zeros((2, 3, 4, 4, 1)), "expected images"),
        (np.zeros((2, 3, 8, 8), dtype=np.uint8), "channels-first"),
        (np.zeros((2, 4, 4, 5), dtype=np.uint8), "expected images"),
        (np.full((2, 4, 4), 300, dtype=np.int32), "0..255"),
        (np.full((2, 4, 4), -0.5), r"\[0, 1\]"),
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.zeros((0, 4)), "empty"),
        (np.array([["a", "b"]]), "dtype"),
        (np.zeros((2, 2), dtype=complex), "dtype"),
    ],
)
def test_npy_bad_shapes_and_dtypes(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(InvalidInputError, match=match):
        load_array(tmp_path / "bad.npy")


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "k.npz", pixels=np.zeros((2, 2)), target=np.zeros(2))
    with pytest.raises(InvalidInputError, match=r"no array named images, X, x or data \(it holds: pixels, target\)"):
        load_array(tmp_path / "k.npz")
    np.savez(tmp_path / "l.npz", images=np.zeros((3, 4, 4), dtype=np.uint8), labels=np.zeros(2))
    with pytest.raises(InvalidInputError, match=r"one label per sample, shape \(3,\)"):
        load_array(tmp_path / "l.npz")
    np.savez(tmp_path / "o.npz", images=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(InvalidInputError, match="Python objects"):
        load_array(tmp_path / "o.npz")


def test_unreadable_array_files(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(InvalidInputError, match="cannot read .*junk.npy"):
        load_array(tmp_path / "junk.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK not a zip")
    with pytest.raises(InvalidInputError, match="cannot read .*junk.npz"):
        load_array(tmp_path / "junk.npz")
    # Cut short after the header: the format is right, the data is missing.
    np.save(tmp_path / "whole.npy", np.zeros((50, 50)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "whole.npy").read_bytes()[:300])
    with pytest.raises(InvalidInputError, match="cannot read .*cut.npy"):
        load_array(tmp_path / "cut.npy")
    np.savez(tmp_path / "whole.npz", images=np.zeros((50, 50)))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:300])
    with pytest.raises(InvalidInputError, match="cannot read .*cut.npz"):
        load_array(tmp_path / "cut.npz")
    (tmp_path / "swapped.npy").write_bytes((tmp_path / "whole.npz").read_bytes())
    with pytest.raises(InvalidInputError, match="rename it"):
        load_array(tmp_path / "swapped.npy")
    (tmp_path / "t.txt").write_text("1 2 3")
    with pytest.raises(InvalidInputError, match=r"not a \.npy or \.npz"):
        load_array(tmp_path / "t.txt")
    with pytest.raises(DataNotFoundError):
        load_array(tmp_path / "missing.npy")


# -- digits and dispatch ----------------------------------------------------------------------


def test_digits():
    data = load_digits_set()
    assert isinstance(data, ImageSet)
    assert data.images.shape == (1797, 8, 8) and data.images.dtype == np.uint8
    assert data.images.max() == 255 and data.images.min() == 0
    assert data.labels.shape == (1797,) and set(data.labels.tolist()) == set(range(10))
    assert data.class_names == tuple("0123456789")
    assert data.to_matrix().shape == (1797, 64)


def test_load_dataset_dispatch(tmp_path):
    assert load_dataset("digits").name == "digits"
    assert load_dataset("Digits").name == "digits"
    _png(tmp_path / "imgs" / "c1" / "a.png")
    assert load_dataset(tmp_path / "imgs").class_names == ("c1",)
    np.save(tmp_path / "f.npy", np.ones((3, 2)))
    assert load_dataset(str(tmp_path / "f.npy")).features.shape == (3, 2)


def test_load_dataset_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown data set 'mnist': choose cifar10, digits"):
        load_dataset("mnist")
    with pytest.raises(DataNotFoundError):
        load_dataset(str(tmp_path / "nope.npz"))
    (tmp_path / "t.csv").write_text("1,2")
    with pytest.raises(InvalidInputError, match="neither a folder"):
        load_dataset(tmp_path / "t.csv")


def test_load_dataset_cifar10_reads_the_split_asked_for(monkeypatch):
    import aeclust.cifar10 as cifar10

    calls = []

    def fake(data_dir=None, *, split, download, progress):
        calls.append((data_dir, split))
        imgs = np.zeros((2, 32, 32, 3), dtype=np.uint8)
        return imgs, np.array([3, 5], dtype=np.int64), tuple(f"c{i}" for i in range(10))

    monkeypatch.setattr(cifar10, "read_cifar10", fake)
    data = load_dataset("cifar10", data_dir="/somewhere", progress=False)
    assert calls == [("/somewhere", "test")]
    assert data.name == "cifar10-test" and data.split == "test" and data.labels.dtype == np.int64 and len(data) == 2
    assert load_dataset("CIFAR-10", split="train").split == "train"
    with pytest.raises(InvalidInputError, match="split must be"):
        load_dataset("digits", split="both")


def test_a_set_without_splits_is_the_same_for_either_split_and_cuts_to_its_head():
    test, train = load_dataset("digits", split="test"), load_dataset("digits", split="train")
    assert test.split is None and train.split is None and len(test) == len(train) == 1797
    head = test.head(10)
    assert len(head) == 10 and head.labels.shape == (10,) and head.name == "digits"
    assert test.head(None) is test and test.head(5000) is test
