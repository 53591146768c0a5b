"""Tests for aeclust.cifar10, through aeclust.datasets.load_cifar10.

Most tests run on tiny batch files written here in the official format (20
images per batch), with the module's md5 table swapped for theirs. The tests
marked ``realdata`` read the real CIFAR-10 from ``$AECLUST_DATA``. No test
touches the network: ``urlopen`` is replaced in every test.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import shutil
import tarfile
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from aeclust import cifar10
from aeclust.cifar10 import ARCHIVE_NAME, BASE_FOLDER, URL, resolve_data_dir
from aeclust.datasets import load_cifar10
from aeclust.errors import (
    AeclustError,
    ChecksumError,
    DataNotFoundError,
    InvalidInputError,
    UnsafeArchiveError,
)

N = 20  # images per fake batch
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FILES = (*cifar10.TRAIN_FILES, *cifar10.TEST_FILES, cifar10.META_FILE)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _hwc(data: np.ndarray) -> np.ndarray:
    # Independent of the loader's reshape/transpose: pixel (r, c) of channel ch
    # sits at ch*1024 + r*32 + c in a row.
    r = np.arange(32)[:, None, None]
    c = np.arange(32)[None, :, None]
    ch = np.arange(3)[None, None, :]
    return data[:, ch * 1024 + r * 32 + c]


def _write_folder(folder: Path, seed: int = 0) -> dict:
    """Write fake batch files in the official layout; return the expected arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    arrays = {}
    for i, name in enumerate((*cifar10.TRAIN_FILES, *cifar10.TEST_FILES)):
        data = rng.integers(0, 256, size=(N, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=N).tolist()
        batch = {
            "batch_label": f"fake batch {i}",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{i}_{j}.png" for j in range(N)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        arrays[name] = (_hwc(data), np.array(labels))
    meta = {"num_cases_per_batch": N, "label_names": NAMES, "num_vis": 3072}
    (folder / cifar10.META_FILE).write_bytes(pickle.dumps(meta, protocol=2))
    return arrays


def _tar_bytes(add) -> bytes:
    """A .tar.gz built by ``add(tar)``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        add(tar)
    return buf.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


class _Response(io.BytesIO):
    """What urlopen returns, serving ``payload``; raises ``exc`` after ``fail_after`` bytes."""

    def __init__(self, payload: bytes, fail_after: int | None = None, exc: Exception | None = None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after, self.exc = fail_after, exc

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is None:
            return super().read(n)
        left = self.fail_after - self.tell()
        if left <= 0:
            raise self.exc
        return super().read(left if n < 0 else min(n, left))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Make any download attempt fail as if offline, unless a test installs a fake server."""

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar10, "urlopen", offline)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Fake CIFAR-10 folder and archive under tmp_path/src, with their md5s installed."""
    src = tmp_path / "src"
    arrays = _write_folder(src / BASE_FOLDER)
    archive = _tar_bytes(lambda tar: tar.add(src / BASE_FOLDER, arcname=BASE_FOLDER))
    md5 = {name: _md5((src / BASE_FOLDER / name).read_bytes()) for name in FILES}
    md5[ARCHIVE_NAME] = _md5(archive)
    monkeypatch.setattr(cifar10, "MD5", md5)
    train = [arrays[n] for n in cifar10.TRAIN_FILES]
    return SimpleNamespace(
        folder=src / BASE_FOLDER,
        archive=archive,
        md5=md5,
        train_images=np.concatenate([a[0] for a in train]),
        train_labels=np.concatenate([a[1] for a in train]),
        test_images=arrays["test_batch"][0],
        test_labels=arrays["test_batch"][1],
    )


def load_both(root=None, **kwargs) -> SimpleNamespace:
    """Both splits, as the pipeline loads them: the training split first."""
    train = load_cifar10(root, split="train", **kwargs)
    test = load_cifar10(root, split="test", **kwargs)
    assert (train.name, train.split, test.name, test.split) == ("cifar10-train", "train", "cifar10-test", "test")
    assert train.class_names == test.class_names
    return SimpleNamespace(train_images=train.images, train_labels=train.labels, test_images=test.images,
                           test_labels=test.labels, class_names=test.class_names)


def _check_both(data: SimpleNamespace, fake) -> None:
    assert data.train_images.shape == (5 * N, 32, 32, 3) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (N, 32, 32, 3) and data.test_images.dtype == np.uint8
    assert data.train_labels.dtype == np.int64 and data.test_labels.dtype == np.int64
    assert data.train_images.flags["C_CONTIGUOUS"] and data.test_images.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(data.train_images, fake.train_images)
    np.testing.assert_array_equal(data.train_labels, fake.train_labels)
    np.testing.assert_array_equal(data.test_images, fake.test_images)
    np.testing.assert_array_equal(data.test_labels, fake.test_labels)
    assert data.class_names == tuple(NAMES)


# --- the official constants ------------------------------------------------


def test_official_constants():
    assert URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert (ARCHIVE_NAME, BASE_FOLDER) == ("cifar-10-python.tar.gz", "cifar-10-batches-py")
    assert cifar10.MD5 == {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    }


# --- where the data is looked for ------------------------------------------


def test_resolution_order_flag_env_xdg_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("AECLUST_DATA", raising=False)
    # The platform's per-user cache folder (platformdirs): ~/.cache on Linux.
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "aeclust"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "aeclust"
    monkeypatch.setenv("AECLUST_DATA", "")  # empty means unset
    assert resolve_data_dir() == tmp_path / "xdg" / "aeclust"
    monkeypatch.setenv("AECLUST_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("rel") == tmp_path / "rel"  # made absolute for clear messages
    assert resolve_data_dir("~/x") == tmp_path / "home" / "x"


def test_load_uses_env_var_when_no_flag(fake, tmp_path, monkeypatch):
    shutil.copytree(fake.folder, tmp_path / "env" / BASE_FOLDER)
    monkeypatch.setenv("AECLUST_DATA", str(tmp_path / "env"))
    np.testing.assert_array_equal(load_cifar10(split="test").labels, fake.test_labels)


# --- loading from disk -----------------------------------------------------


def test_tarball_only_is_verified_unpacked_and_loaded(fake, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / ARCHIVE_NAME).write_bytes(fake.archive)
    _check_both(load_both(root), fake)
    # Unpacked in place, archive kept, no temporary leftovers.
    assert sorted(os.listdir(root)) == [BASE_FOLDER, ARCHIVE_NAME]
    assert sorted(os.listdir(root / BASE_FOLDER)) == sorted(FILES)
    # Second load reads the folder.
    (root / ARCHIVE_NAME).unlink()
    _check_both(load_both(root, download=False), fake)


def test_folder_in_dir_and_pointing_at_folder(fake, tmp_path):
    shutil.copytree(fake.folder, tmp_path / "data" / BASE_FOLDER)
    _check_both(load_both(tmp_path / "data", download=False), fake)
    _check_both(load_both(tmp_path / "data" / BASE_FOLDER, download=False), fake)
    # A copy of the folder under another name is recognised by its batches.meta.
    shutil.copytree(fake.folder, tmp_path / "renamed")
    _check_both(load_both(tmp_path / "renamed", download=False), fake)


def test_splits(fake, tmp_path):
    shutil.copytree(fake.folder, tmp_path / BASE_FOLDER)
    test = load_cifar10(tmp_path, split="test", download=False)
    np.testing.assert_array_equal(test.images, fake.test_images)
    np.testing.assert_array_equal(test.labels, fake.test_labels)
    train = load_cifar10(tmp_path, split="train", download=False)
    np.testing.assert_array_equal(train.labels, fake.train_labels)
    assert train.class_names == tuple(NAMES)
    with pytest.raises(InvalidInputError, match="split"):
        load_cifar10(tmp_path, split="both")
    with pytest.raises(InvalidInputError, match="split"):
        load_cifar10(tmp_path, split="val")


def test_only_files_of_requested_split_are_needed(fake, tmp_path):
    folder = tmp_path / BASE_FOLDER
    shutil.copytree(fake.folder, folder)
    (folder / "data_batch_3").write_bytes(b"garbage")
    (folder / "data_batch_5").unlink()
    assert load_cifar10(tmp_path, split="test", download=False).images.shape == (N, 32, 32, 3)


def test_missing_files_are_named(fake, tmp_path):
    folder = tmp_path / BASE_FOLDER
    shutil.copytree(fake.folder, folder)
    (folder / "data_batch_2").unlink()
    (folder / "data_batch_4").unlink()
    (folder / "test_batch").unlink()
    with pytest.raises(DataNotFoundError) as err:
        load_cifar10(tmp_path, split="train", download=False)
    msg = str(err.value)
    assert "data_batch_2, data_batch_4" in msg and str(folder) in msg
    assert "data_batch_1" not in msg and "test_batch" not in msg
    with pytest.raises(DataNotFoundError, match="lacks test_batch"):
        load_cifar10(tmp_path, split="test", download=False)


# --- corrupt files ---------------------------------------------------------


def test_wrong_md5_names_file_and_both_checksums(fake, tmp_path):
    folder = tmp_path / BASE_FOLDER
    shutil.copytree(fake.folder, folder)
    path = folder / "data_batch_2"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError) as err:
        load_both(tmp_path, download=False)
    msg = str(err.value)
    assert str(path) in msg and fake.md5["data_batch_2"] in msg and _md5(bytes(raw)) in msg
    assert "Delete" in msg


def test_truncated_batch_is_a_checksum_error(fake, tmp_path):
    folder = tmp_path / BASE_FOLDER
    shutil.copytree(fake.folder, folder)
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ChecksumError, match="test_batch"):
        load_cifar10(tmp_path, split="test", download=False)


def test_unreadable_batch_with_matching_md5_is_a_clear_error(fake, tmp_path, monkeypatch):
    # Only reachable with a doctored checksum table, but must still not be a bare traceback.
    folder = tmp_path / BASE_FOLDER
    shutil.copytree(fake.folder, folder)
    cut = (folder / "test_batch").read_bytes()[:1000]
    (folder / "test_batch").write_bytes(cut)
    monkeypatch.setitem(cifar10.MD5, "test_batch", _md5(cut))
    with pytest.raises(AeclustError, match="cannot read .*test_batch"):
        load_cifar10(tmp_path, split="test", download=False)


def test_truncated_archive_is_a_checksum_error(fake, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / ARCHIVE_NAME).write_bytes(fake.archive[: len(fake.archive) // 2])
    with pytest.raises(ChecksumError) as err:
        load_both(root, download=False)
    assert str(root / ARCHIVE_NAME) in str(err.value) and fake.md5[ARCHIVE_NAME] in str(err.value)
    assert os.listdir(root) == [ARCHIVE_NAME]


def test_damaged_archive_with_matching_md5_leaves_nothing(fake, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    cut = fake.archive[: len(fake.archive) // 2]
    (root / ARCHIVE_NAME).write_bytes(cut)
    monkeypatch.setitem(cifar10.MD5, ARCHIVE_NAME, _md5(cut))
    with pytest.raises(AeclustError, match="cannot unpack"):
        load_both(root, download=False)
    assert os.listdir(root) == [ARCHIVE_NAME]  # no half-unpacked folder, no temp dir


# --- unsafe archives -------------------------------------------------------


def _evil_members(outside: Path):
    """Name -> function adding, after one legit member, a member that tries to escape."""

    def legit(tar):
        _add_bytes(tar, f"{BASE_FOLDER}/batches.meta", b"x")

    def symlink(target):
        def add(tar):
            info = tarfile.TarInfo(f"{BASE_FOLDER}/link")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
            _add_bytes(tar, f"{BASE_FOLDER}/link/evil", b"pwned")

        return add

    def hardlink(tar):
        info = tarfile.TarInfo(f"{BASE_FOLDER}/hard")
        info.type, info.linkname = tarfile.LNKTYPE, str(outside / "sentinel")
        tar.addfile(info)

    def device(tar):
        info = tarfile.TarInfo(f"{BASE_FOLDER}/null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(info)

    cases = {
        "dotdot": lambda tar: _add_bytes(tar, "../../evil", b"pwned"),
        "dotdot-inside": lambda tar: _add_bytes(tar, f"{BASE_FOLDER}/../../../evil", b"pwned"),
        "absolute": lambda tar: _add_bytes(tar, str(outside / "evil"), b"pwned"),
        "symlink-absolute": symlink(str(outside)),
        "symlink-relative": symlink("../../../outside"),
        "hardlink": hardlink,
        "device": device,
    }
    return {k: (lambda add: lambda tar: (legit(tar), add(tar)))(v) for k, v in cases.items()}


UNSAFE_CASES = [
    "dotdot",
    "dotdot-inside",
    "absolute",
    "symlink-absolute",
    "symlink-relative",
    "hardlink",
    "device",
]


@pytest.mark.parametrize("case", UNSAFE_CASES)
def test_unsafe_archive_is_refused_and_writes_nothing(case, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_text("keep")
    root = tmp_path / "data"
    root.mkdir()
    archive = _tar_bytes(_evil_members(outside)[case])
    (root / ARCHIVE_NAME).write_bytes(archive)
    # Past the md5 gate, so the member checks themselves are tested.
    monkeypatch.setattr(cifar10, "MD5", {**cifar10.MD5, ARCHIVE_NAME: _md5(archive)})
    before = _tree(tmp_path)
    with pytest.raises(UnsafeArchiveError, match="refusing to unpack"):
        load_both(root, download=False)
    assert _tree(tmp_path) == before
    assert (outside / "sentinel").read_text() == "keep"


# --- downloading -----------------------------------------------------------


def test_download_then_load(fake, tmp_path, monkeypatch):
    urls = []

    def server(url, *args, **kwargs):
        urls.append(url)
        return _Response(fake.archive)

    monkeypatch.setattr(cifar10, "urlopen", server)
    root = tmp_path / "new" / "cache"  # created on demand
    _check_both(load_both(root, progress=True), fake)
    assert urls == [URL]
    assert sorted(os.listdir(root)) == [BASE_FOLDER, ARCHIVE_NAME]
    assert (root / ARCHIVE_NAME).read_bytes() == fake.archive
    # Already there: no second download.
    _check_both(load_both(root), fake)
    assert urls == [URL]


@pytest.mark.parametrize(
    "exc",
    [ConnectionResetError(104, "Connection reset by peer"), http.client.IncompleteRead(b"", 1000)],
    ids=["reset", "incomplete-read"],
)
def test_interrupted_download_leaves_nothing_and_retry_succeeds(exc, fake, tmp_path, monkeypatch):
    root = tmp_path / "data"
    tries = []

    def flaky(url, *args, **kwargs):
        tries.append(url)
        if len(tries) == 1:
            return _Response(fake.archive, fail_after=len(fake.archive) // 2, exc=exc)
        return _Response(fake.archive)

    monkeypatch.setattr(cifar10, "urlopen", flaky)
    with pytest.raises(DataNotFoundError, match="download failed"):
        load_both(root, progress=False)
    assert os.listdir(root) == []  # nothing under the final name, temp file gone
    # A process killed outright cannot clean up; its leftover must not matter.
    (root / f".{ARCHIVE_NAME}.dead1234.tmp").write_bytes(fake.archive[:100])
    _check_both(load_both(root, progress=False), fake)
    assert len(tries) == 2
    assert (root / ARCHIVE_NAME).read_bytes() == fake.archive


def test_download_with_wrong_md5_keeps_nothing(fake, tmp_path, monkeypatch):
    bad = bytearray(fake.archive)
    bad[-5] ^= 0xFF
    monkeypatch.setattr(cifar10, "urlopen", lambda *a, **k: _Response(bytes(bad)))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as err:
        cifar10.download_cifar10(root, progress=False)
    assert URL in str(err.value) and fake.md5[ARCHIVE_NAME] in str(err.value)
    assert os.listdir(root) == []


def _check_not_found_message(msg: str, root: Path) -> None:
    assert "CIFAR-10 not found" in msg
    assert URL in msg and str(root) in msg
    assert "AECLUST_DATA" in msg and "--data-dir" in msg
    assert "\n" not in msg


def test_no_data_and_no_network(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError) as err:
        load_both(root, progress=False)
    _check_not_found_message(str(err.value), root)
    assert "Temporary failure in name resolution" in str(err.value)
    assert os.listdir(root) == []


def test_no_data_and_download_off(tmp_path, monkeypatch):
    def must_not_download(*args, **kwargs):
        raise AssertionError("download attempted with download=False")

    monkeypatch.setattr(cifar10, "urlopen", must_not_download)
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError) as err:
        load_both(root, download=False)
    _check_not_found_message(str(err.value), root)
    assert not root.exists()


# --- the real data ---------------------------------------------------------


@pytest.fixture
def real_dir() -> Path:
    value = os.environ.get("AECLUST_DATA")
    if not value or not Path(value).exists():
        pytest.skip("set AECLUST_DATA to a directory holding CIFAR-10")
    return Path(value)


@pytest.mark.realdata
def test_real_test_split(real_dir):
    data = load_cifar10(real_dir, split="test", download=False)
    assert data.images.shape == (10000, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (10000,) and data.labels.dtype == np.int64
    assert data.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(data.labels).tolist() == [1000] * 10
    assert data.class_names == tuple(NAMES)
    assert data.images[0, 0, :9, 0].tolist() == [158, 159, 165, 166, 160, 156, 162, 159, 158]


@pytest.mark.realdata
def test_real_train_split(real_dir):
    data = load_cifar10(real_dir, split="train", download=False)
    assert data.images.shape == (50000, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert data.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(data.labels).tolist() == [5000] * 10
    assert data.images.flags["C_CONTIGUOUS"]
