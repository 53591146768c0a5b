"""One writer per run directory: a lock the operating system releases, and a record of what it holds.

Every command that writes a run directory (``aeclust run``, each ``--seeds``
sub-folder and its parent, ``cluster``, ``sweep``, ``train`` and ``report``)
first claims it with :func:`claimed`:

1. **The lock.** ``.aeclust.lock`` in the directory, locked with ``flock``
   (exclusive, non-blocking), and removed when the command ends. The operating
   system drops the lock when the process ends, however it ends (SIGKILL
   included), so a killed run leaves the file but no stale lock. The file also says who holds it (process, command, start time),
   for the one line a second writer gets: :class:`RunDirectoryInUse`.
2. **What it holds.** ``run.json`` records the command and the configuration
   that decide the result. A directory that holds another command's run,
   another configuration, or an unfinished run that is not being resumed is
   refused with :class:`RunDirectoryTaken`, which names both configurations and
   the ways on: another directory, resuming, or overwriting. An identical
   configuration whose run finished may run again: it writes the same bits.
   ``overwrite`` removes what the older run wrote (the names its ``run.json``
   lists, nothing else) before the new one starts.

Reading a finished run (its ``results.json``) takes no lock: every file is
written atomically, so a reader sees a whole file or none.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ._io import check_writable, write_json
from .errors import AeclustError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["Claim", "RunDirectoryInUse", "RunDirectoryTaken", "claimed", "locked", "held_run", "LOCK_FILE",
           "RECORD_FILE"]

LOCK_FILE = ".aeclust.lock"
RECORD_FILE = "run.json"
#: Version of run.json's layout.
RECORD_VERSION = 1
#: What an older aeclust (before run.json) left, per command: the file that means its run finished,
#: and the names it wrote. ``results.json``'s "job" names the command.
_LEGACY_JOBS = {"run": "run", "cluster": "cluster", "run-seeds": "run --seeds"}
_LEGACY_OUTPUTS = {
    "run": ("results.json", "stages", "report.html", "figures"),
    "run --seeds": ("results.json", "report.html", "figures"),
    "cluster": ("results.json", "labels.npy"),
    "sweep": ("sweep.json", "sweep.md", "sweep.csv", "sweep.png"),
    "train": ("model.pt", "checkpoint.pt", "history.json"),
}


class RunDirectoryInUse(AeclustError):
    """Another process is writing the run directory right now."""


class RunDirectoryTaken(AeclustError):
    """The run directory holds a run that this command would overwrite or mix with.

    ``reason`` says what the directory holds and how it differs; ``ways`` names
    the ways on, among ``"out"`` (another directory), ``"resume"`` and
    ``"overwrite"``. The command line words them with its own option names.
    """

    WORDS = {"out": "choose another output directory", "resume": "resume it (resume=True)",
             "overwrite": "replace it (overwrite=True)"}

    def __init__(self, reason: str, ways: tuple[str, ...]):
        self.reason, self.ways = reason, tuple(ways)
        super().__init__(self.worded(self.WORDS))

    def worded(self, words: dict[str, str]) -> str:
        """The message with the ways on worded by ``words`` (way -> phrase)."""
        phrases = [words[w] for w in self.ways]
        ways = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]
        return f"{self.reason}; {ways}"


@dataclass(frozen=True)
class Claim:
    """What a command is about to write into a run directory.

    Parameters
    ----------
    command : str
        The command, as a person would type it after ``aeclust`` ("run", "run --seeds", "cluster", ...).
    config : dict
        The settings that decide the result (JSON-ready); where it goes or how it is shown stays out.
    finished : str
        The file whose presence means the run finished (written last).
    outputs : tuple of str
        The names, directly in the run directory, that the command writes; ``overwrite`` of a later
        command removes exactly these.
    resumable : bool
        Whether the command can resume an unfinished run (then a fresh one over it is refused, since it
        would throw away finished work); an unfinished run of a command that cannot resume is redone.
    """

    command: str
    config: dict
    finished: str = "results.json"
    outputs: tuple[str, ...] = ()
    resumable: bool = False
    # Keys of ``config`` left out of the comparison (their value may change between compatible runs).
    ignore: tuple[str, ...] = field(default=())
    # Keys left out when resuming an unfinished run, because the command's own records judge them stage by
    # stage (a weights file given to finish a stage that could not start without it).
    judged_on_resume: tuple[str, ...] = field(default=())

    def record(self) -> dict:
        return {"version": RECORD_VERSION, "command": self.command, "config": self.config,
                "finished": self.finished, "outputs": list(self.outputs)}


@dataclass(frozen=True)
class HeldRun:
    """What a run directory holds: the command, its configuration (None when unknown), whether it finished;
    ``legacy`` for a directory written before run.json, read from its results."""

    command: str
    config: dict | None
    finished: bool
    outputs: tuple[str, ...]
    legacy: bool = False

    def what(self) -> str:
        if self.command == "?":
            return f"a run whose {RECORD_FILE} is damaged"
        state = "a finished" if self.finished else "an unfinished"
        return f"{state} 'aeclust {self.command}'"


# -- the lock ----------------------------------------------------------------------------------

@contextlib.contextmanager
def locked(run_dir: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` (created if missing) for the duration of the block.

    Raises
    ------
    RunDirectoryInUse
        Another process holds it; the message names that process and when it started.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = _open_locked(path, run_dir)
    try:
        # Who holds it, for the message of a second writer; written in place (the lock is on this file).
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode(), 0)
        yield run_dir
    finally:
        # Removed while still locked, so a finished run leaves a clean directory; a writer that opened
        # the file just before finds, once it gets the lock, that it no longer has that name, and retries.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def _open_locked(path: Path, run_dir: Path) -> int:
    """Open and lock ``path``: the file that has that name once the lock is held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirectoryInUse(f"{run_dir} is in use by {holder}; wait for it to finish, or choose "
                                    f"another output directory")
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed it as we opened it: take the new one


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows: the first byte locked, released when the handle closes

    try:  # pragma: no cover
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def _read_holder(fd: int) -> str:
    """Who holds the lock, in words; the holder may be writing the file at this moment."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"process {int(info['pid'])} ('aeclust {info['command']}') since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


# -- what a directory holds --------------------------------------------------------------------

def held_run(run_dir: str | os.PathLike) -> HeldRun | None:
    """What ``run_dir`` holds: the run recorded in its ``run.json`` (or, for a directory written before
    run.json existed, read from its results), or None when it holds no run."""
    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_FILE
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
            outputs = tuple(_plain_names(record.get("outputs", ())))
            return HeldRun(str(record["command"]), record.get("config"),
                           (run_dir / _plain_name(record["finished"])).is_file(), outputs)
        except (ValueError, KeyError, TypeError, AttributeError):
            return HeldRun("?", None, False, ())
    return _legacy_run(run_dir)


def _legacy_run(run_dir: Path) -> HeldRun | None:
    results = run_dir / "results.json"
    if results.is_file():
        try:
            old = json.loads(results.read_text())
            command = _LEGACY_JOBS[old["job"]]
            config = old["config"] if isinstance(old["config"], dict) else None
        except (ValueError, KeyError, TypeError):
            command, config = "run", None
        return HeldRun(command, config, True, _LEGACY_OUTPUTS[command], legacy=True)
    if any((run_dir / "stages").glob("*.json")):
        return HeldRun("run", None, False, _LEGACY_OUTPUTS["run"], legacy=True)
    for command in ("sweep", "train"):
        if (run_dir / _LEGACY_OUTPUTS[command][0]).is_file() or (
                command == "train" and (run_dir / "checkpoint.pt").is_file()):
            finished = (run_dir / _LEGACY_OUTPUTS[command][0]).is_file()
            return HeldRun(command, None, finished, _LEGACY_OUTPUTS[command], legacy=True)
    return None


def _plain_name(name) -> str:
    """A name directly inside the run directory; anything that could reach outside it is refused."""
    name = str(name)
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"not a plain name: {name!r}")
    return name


def _plain_names(names) -> list[str]:
    return [_plain_name(n) for n in names]


def differences(held: dict, wanted: dict, ignore=()) -> list[str]:
    """``"key X there, Y here"`` for each setting that differs (keys on one side only count)."""
    out = []
    for key in dict.fromkeys([*held, *wanted]):
        if key in ignore:
            continue
        there, here = held.get(key, "unset"), wanted.get(key, "unset")
        if there != here:
            out.append(f"{key} {_shown(there)} there, {_shown(here)} here")
    return out


def _shown(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    # Cut in the middle: a path's end (its file name) says the most.
    return text if len(text) <= 40 else text[:16] + "..." + text[-21:]


def judge(run_dir: str | os.PathLike, claim: Claim, *, resume: bool = False, overwrite: bool = False
          ) -> HeldRun | None:
    """Refuse, with :class:`RunDirectoryTaken`, a claim that would overwrite or mix with what ``run_dir``
    holds; return what it holds (None for nothing).

    Proceeds for: nothing held; ``overwrite``; the same command and configuration, finished, or
    unfinished and resumed (or of a command that cannot resume, whose work is simply redone).
    """
    held = held_run(run_dir)
    if held is None or overwrite:
        return held
    if held.command != claim.command:
        raise RunDirectoryTaken(f"{run_dir} holds {held.what()}, and this is 'aeclust {claim.command}'",
                                ("out", "overwrite"))
    if held.config is None:
        if resume:  # an older run: the command's own checks compare it stage by stage
            return held
        raise RunDirectoryTaken(f"{run_dir} holds {held.what()} whose configuration was not recorded",
                                ("out", "resume", "overwrite") if claim.resumable else ("out", "overwrite"))
    # An older results.json records more than the claim compares (sizes, class names): compare the claim's keys.
    config = {k: v for k, v in held.config.items() if k in claim.config} if held.legacy else held.config
    # Resuming an unfinished run, the command's stage records judge some keys themselves.
    diff = differences(config, claim.config,
                       claim.ignore + (claim.judged_on_resume if resume and not held.finished else ()))
    if diff:
        shown = "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")
        raise RunDirectoryTaken(f"{run_dir} holds {held.what()} of another configuration ({shown})",
                                ("out", "overwrite"))
    if not held.finished and claim.resumable and not resume:
        raise RunDirectoryTaken(f"{run_dir} holds {held.what()} of this configuration",
                                ("resume", "overwrite", "out"))
    return held


@contextlib.contextmanager
def claimed(run_dir: str | os.PathLike, claim: Claim, *, resume: bool = False, overwrite: bool = False,
            precheck: Callable[[], None] | None = None) -> Iterator[Path]:
    """Lock ``run_dir``, check that ``claim`` may write it, record the claim, and hold the lock until the
    block ends.

    ``precheck``, if given, runs once the directory is locked and judged, before anything in it
    changes: a refusal it raises leaves the directory as it was.

    Raises
    ------
    RunDirectoryInUse
        Another process writes it.
    RunDirectoryTaken
        It holds another run (see :func:`judge`); nothing is changed.
    AeclustError
        It cannot be created or written.
    """
    run_dir = Path(run_dir)
    check_writable(run_dir)
    with locked(run_dir, claim.command):
        held = judge(run_dir, claim, resume=resume, overwrite=overwrite)
        if precheck is not None:
            precheck()
        if overwrite and held is not None:
            _remove(run_dir, [*held.outputs, RECORD_FILE])
        write_json(run_dir / RECORD_FILE, claim.record())
        yield run_dir


def _remove(run_dir: Path, names) -> None:
    """Delete the named files and folders directly inside ``run_dir`` (a link is removed, not followed)."""
    for name in names:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
