"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

A reader never sees a half-written file under its final name, whatever
interrupts the writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from . import _fault

#: Keys of results.json and sweep.json whose values record how long a step took or
#: what produced it (versions, platform, thread counts), with every key ending in
#: ``_seconds``. They differ from run to run; everything else is the same bits for
#: the same command (docs/reproducibility.md).
VOLATILE_KEYS = frozenset({"timings", "seconds", "versions"})


def is_volatile(key: str) -> bool:
    """Whether a results key records time or provenance (see :data:`VOLATILE_KEYS`)."""
    return key in VOLATILE_KEYS or key.endswith("_seconds")


def without_volatile(obj: Any) -> Any:
    """``obj`` (parsed JSON) without its volatile keys (:func:`is_volatile`), at any depth."""
    if isinstance(obj, dict):
        return {k: without_volatile(v) for k, v in obj.items() if not is_volatile(k)}
    if isinstance(obj, list):
        return [without_volatile(v) for v in obj]
    return obj


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open supports only 'w' and 'wb'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have.
        with contextlib.suppress(OSError, AttributeError):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _fault.point(f"rename-{path.name}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        # Reading the umask means setting it; done once, at the first write.
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays, paths: the types results dictionaries tend to hold.
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def save_array(path: str | os.PathLike, array) -> None:
    """Write a numpy array as ``.npy`` to ``path`` atomically."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        np.save(f, array)


def check_writable(out: str | os.PathLike) -> None:
    """Fail before any work when the output directory ``out`` cannot be created or written.

    Raises
    ------
    AeclustError
        Naming the directory and the reason (permission denied, a file in the way, ...).
    """
    from .errors import AeclustError

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AeclustError(f"cannot write to output directory {out}: {exc.strerror or exc}; "
                           f"choose another output directory") from None


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left in ``run_dir``.

    A process killed outright (SIGKILL, power loss) cannot remove the temporary
    file it was writing; it never has a final name, so nothing reads it, but it
    would stay forever. Returns the removed paths.
    """
    removed = []
    for tmp in Path(run_dir).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
