"""CIFAR-10's files: where they are published, their checksums, the download, the safe unpacking.

:func:`aeclust.datasets.load_cifar10` (and ``load_dataset("cifar10")``) is the
way in; this module holds what is particular to CIFAR-10's files.

The loader reads the official "CIFAR-10 python version": the folder
``cifar-10-batches-py/`` that ``cifar-10-python.tar.gz`` unpacks to. Every file
is checked against its published md5 before it is read, so a truncated copy
fails with a clear message instead of a pickle traceback, and only the official
bytes are ever unpickled.

Where the data is looked for, first match wins:

1. the ``data_dir`` argument (the CLI's ``--data-dir``);
2. the environment variable ``AECLUST_DATA``;
3. the per-user cache folder of the platform (``platformdirs.user_cache_dir("aeclust")``):
   ``~/.cache/aeclust`` (or ``$XDG_CACHE_HOME/aeclust``) on Linux,
   ``~/Library/Caches/aeclust`` on macOS, ``%LOCALAPPDATA%\\aeclust\\Cache`` on Windows.

That directory may hold the ``cifar-10-batches-py/`` folder, or only the
archive (verified and unpacked on first use), or it may be the
``cifar-10-batches-py/`` folder itself.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path, PurePosixPath
from urllib.request import urlopen

import numpy as np
from tqdm import tqdm

from . import _fault
from ._io import atomic_open
from .errors import (
    AeclustError,
    ChecksumError,
    DataNotFoundError,
    InvalidInputError,
    UnsafeArchiveError,
)

__all__ = [
    "read_cifar10",
    "download_cifar10",
    "resolve_data_dir",
    "URL",
    "ARCHIVE_NAME",
    "BASE_FOLDER",
    "TRAIN_FILES",
    "TEST_FILES",
    "META_FILE",
    "MD5",
    "ENV_VAR",
]

#: Where the official archive is published.
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: File name of the archive.
ARCHIVE_NAME = "cifar-10-python.tar.gz"
#: The folder the archive unpacks to.
BASE_FOLDER = "cifar-10-batches-py"
#: Training batches, in the official order.
TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
#: Test batch.
TEST_FILES = ("test_batch",)
#: Metadata file holding the class names.
META_FILE = "batches.meta"
#: Published md5 of the archive and of each file in it (the values torchvision checks).
MD5 = {
    ARCHIVE_NAME: "c58f30108f718f92721af3b95e74349a",
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
#: Environment variable naming the data directory.
ENV_VAR = "AECLUST_DATA"

SPLITS = ("train", "test")
_CHUNK = 1 << 20


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the directory where CIFAR-10 is looked for.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit choice (the CLI's ``--data-dir``); wins over everything else.

    Returns
    -------
    Path
        ``data_dir`` if given, else ``$AECLUST_DATA`` if set and non-empty, else
        the platform's per-user cache folder for aeclust (``platformdirs``).
        ``~`` is expanded and the result made absolute, so messages show a
        full path. The directory need not exist.
    """
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir)
    elif os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("aeclust", appauthor=False))
    return Path(os.path.abspath(path.expanduser()))


def read_cifar10(
    data_dir: str | os.PathLike | None = None,
    *,
    split: str = "test",
    download: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read one split of CIFAR-10, unpacking or downloading it first if needed.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Directory holding ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``,
        or the ``cifar-10-batches-py/`` folder itself. Defaults to
        :func:`resolve_data_dir`'s choice.
    split : {"test", "train"}
        Which part to read; the other part's files are neither checked nor read.
    download : bool
        Download the archive into the data directory when neither the folder
        nor the archive is there.
    progress : bool
        Show a progress bar while downloading.

    Returns
    -------
    images : ndarray of shape (n, 32, 32, 3), uint8
        RGB images, HWC: the 10,000 of ``test_batch``, or the 50,000 of
        ``data_batch_1`` to ``data_batch_5``, in the official order.
    labels : ndarray of shape (n,), int64
        Class ids 0..9.
    class_names : tuple of str
        Name of each class id, from ``batches.meta``.

    Raises
    ------
    DataNotFoundError
        The data is not on disk and cannot be downloaded, or files are missing.
    ChecksumError
        A file does not match its published md5.
    UnsafeArchiveError
        The archive holds a member that would land outside the data directory.
    InvalidInputError
        ``split`` is not "test" or "train".
    """
    if split not in SPLITS:
        choices = ", ".join(map(repr, SPLITS))
        raise InvalidInputError(f"split must be one of {choices}, got {split!r}")
    root = resolve_data_dir(data_dir)
    folder = _find_folder(root)
    if folder is None:
        archive = root / ARCHIVE_NAME
        if archive.is_file():
            remedy = f"Delete it and download it again from {URL}."
            _verify(archive, MD5[ARCHIVE_NAME], remedy=remedy)
            folder = _unpack(archive, root)
        elif download:
            folder = download_cifar10(root, progress=progress)
        else:
            raise DataNotFoundError(_not_found_message(root))

    names = (META_FILE, *(TRAIN_FILES if split == "train" else TEST_FILES))
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataNotFoundError(
            f"{folder} lacks {', '.join(missing)}. Delete that folder and run again to unpack or "
            f"download a fresh copy, or copy the missing files from the official archive {URL}."
        )
    remedy = (
        f"Delete {folder} and run again to unpack or download a fresh copy, "
        f"or copy the file again from the official archive {URL}."
    )
    for n in names:
        _verify(folder / n, MD5[n], remedy=remedy)

    class_names = tuple(str(c) for c in _unpickle(folder / META_FILE)["label_names"])
    parts = [_read_batch(folder / n) for n in names[1:]]
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return images, labels.astype(np.int64, copy=False), class_names


def download_cifar10(root: str | os.PathLike, progress: bool = True) -> Path:
    """Download the official archive into ``root``, verify it and unpack it.

    The archive is streamed to a temporary file and renamed to
    ``cifar-10-python.tar.gz`` only once its md5 matches, so an interrupted
    download leaves nothing under the final name and the next try starts
    clean. The archive is kept beside the folder: deleting the folder then
    restores a fresh copy without the network.

    Parameters
    ----------
    root : str or path-like
        Directory to put the archive and ``cifar-10-batches-py/`` in; created
        if needed.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        The ``cifar-10-batches-py`` folder.

    Raises
    ------
    DataNotFoundError
        The download failed (no network, server error, unwritable directory).
    ChecksumError
        The downloaded bytes do not match the published md5.
    """
    root = Path(root)
    archive = root / ARCHIVE_NAME
    expected = MD5[ARCHIVE_NAME]
    try:
        root.mkdir(parents=True, exist_ok=True)
        with urlopen(URL, timeout=60) as response, atomic_open(archive, "wb") as out:
            total = response.headers.get("Content-Length")
            digest = _md5()
            with tqdm(
                total=int(total) if total else None,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=ARCHIVE_NAME,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    _fault.point("download-chunk")
            actual = digest.hexdigest()
            if actual != expected:
                # Raised inside atomic_open, so the bad bytes never get the final name.
                raise ChecksumError(
                    f"the archive downloaded from {URL} has md5 {actual}, expected {expected} "
                    f"(incomplete or altered download); nothing was kept. Try again, or "
                    f"download it by hand and put it in {root}."
                )
    except (OSError, http.client.HTTPException) as e:
        # URLError is an OSError; a connection cut mid-body may surface as IncompleteRead.
        raise DataNotFoundError(_not_found_message(root, reason=f"download failed: {e}")) from e
    return _unpack(archive, root)


def _not_found_message(root: Path, reason: str | None = None) -> str:
    why = f" ({reason})" if reason else ""
    return (
        f"CIFAR-10 not found in {root}{why}. Download {URL} (md5 {MD5[ARCHIVE_NAME]}) and put "
        f"{ARCHIVE_NAME}, or the {BASE_FOLDER}/ folder it unpacks to, in {root}; or point "
        f"--data-dir or the {ENV_VAR} environment variable at a directory that holds them."
    )


def _find_folder(root: Path) -> Path | None:
    """The batches folder under ``root``, or ``root`` itself if it is one; None if absent."""
    if (root / BASE_FOLDER).is_dir():
        return root / BASE_FOLDER
    # Pointed straight at the folder, possibly under another name.
    if root.is_dir() and (root.name == BASE_FOLDER or (root / META_FILE).is_file()):
        return root
    return None


def _md5():
    # usedforsecurity=False: md5 is an integrity check here, and FIPS builds refuse it otherwise.
    return hashlib.md5(usedforsecurity=False)


def _file_md5(path: Path) -> str:
    digest = _md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, expected: str, remedy: str) -> None:
    actual = _file_md5(path)
    if actual != expected:
        raise ChecksumError(
            f"{path} is corrupt or incomplete: md5 {actual}, expected {expected}. {remedy}"
        )


def _unpack(archive: Path, root: Path) -> Path:
    """Unpack ``archive`` into ``root`` safely; return the batches folder.

    Members are extracted into a fresh temporary directory inside ``root`` and
    the folder is renamed into place only when all of them are out, so a
    crash never leaves a partial ``cifar-10-batches-py/``.
    """
    target = root / BASE_FOLDER
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".cifar-10-unpack.", dir=root))
    except OSError as e:
        raise AeclustError(
            f"cannot unpack {archive} into {root}: {e}. Unpack it there yourself, or point "
            f"--data-dir or {ENV_VAR} at a writable directory that holds the archive."
        ) from e
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for member in tar:
                    _check_member(member, archive)
                    # The "data" filter (where available) also drops setuid bits and
                    # re-checks paths after earlier members are on disk.
                    if hasattr(tarfile, "data_filter"):
                        tar.extract(member, tmp, filter="data")
                    else:  # pragma: no cover - Python before 3.10.12 / 3.11.4
                        tar.extract(member, tmp)
        except tarfile.FilterError as e:
            raise UnsafeArchiveError(f"refusing to unpack {archive}: {e}") from e
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise AeclustError(
                f"cannot unpack {archive}: {e}. Delete it and download it again from {URL}."
            ) from e
        if not (tmp / BASE_FOLDER).is_dir():
            raise DataNotFoundError(
                f"{archive} holds no {BASE_FOLDER}/ folder; "
                f"is it the CIFAR-10 python version from {URL}?"
            )
        try:
            os.rename(tmp / BASE_FOLDER, target)
        except OSError:
            # Another process unpacked it first; its copy is as good as ours.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse any member that is not a plain file or folder with a relative, inward path."""
    name = member.name
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or path.is_absolute() or name[1:2] == ":":
        why = "has an absolute path"
    elif ".." in path.parts or ".." in name.split("\\"):
        why = "climbs out with '..'"
    elif member.issym() or member.islnk():
        # The official archive has no links; any link could point outside.
        why = f"is a link to {member.linkname!r}"
    elif not (member.isfile() or member.isdir()):
        why = "is a device, FIFO or other special file"
    else:
        return
    raise UnsafeArchiveError(
        f"refusing to unpack {archive}: member {name!r} {why}. The official CIFAR-10 archive holds "
        f"only plain files and folders; download it again from {URL}."
    )


def _unpickle(path: Path) -> dict:
    # Safe only because every caller has checked the file's md5 against the official one.
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            # The batches reference numpy.core.multiarray, which some numpy 2.x releases flag.
            warnings.filterwarnings("ignore", message=r".*numpy\.core", category=DeprecationWarning)
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as e:
        raise AeclustError(
            f"cannot read {path}: {e}. Delete it and unpack or download a fresh copy."
        ) from e


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 HWC and labels (n,) int64 of one batch file."""
    batch = _unpickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8)
        # Each row holds the R, G and B planes in turn, each 32x32 row-major (CHW).
        images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, ValueError, TypeError) as e:
        raise AeclustError(f"{path} is not a CIFAR-10 batch file: {e!r}") from e
    if labels.shape != (len(images),):
        raise AeclustError(f"{path} holds {len(images)} images but {labels.size} labels")
    return images, labels
