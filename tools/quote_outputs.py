"""Regenerate, or check, the command outputs quoted in README.md and docs/*.md.

Every quoted output in the markdown sits between two HTML comments. A command's
output is a fenced block that starts with the command line::

    <!-- quoted: aeclust cluster --seed 0 --out runs/r0 -->
    ```
    $ aeclust cluster --seed 0 --out runs/r0
    aeclust cluster: cifar10-test, 10000 samples x 1024 features ...
    ```
    <!-- /quoted -->

A table built from the ``results.json`` of one or more commands names its
generator in :data:`TABLES`::

    <!-- quoted-table: part1-seeds -->
    | k = 10, grayscale test set | silhouette | Dunn |
    ...
    <!-- /quoted -->

The script runs each command once, for real, with the ``aeclust`` console script
of the Python that runs this script, in a temporary working directory (so that
``--out runs/...`` lands there), with ``AECLUST_DATA`` passed through. The block
then holds the command's standard output exactly as printed (its stage lines
and summary); the progress bars go to standard error and are not quoted.

Durations (:data:`VOLATILE`) change from run to run: a rewrite writes them as
the run printed them, and the check masks them on both sides, so that only a
changed number, word or line fails it.

Usage::

    python tools/quote_outputs.py                            # rerun every quote, rewrite the blocks
    python tools/quote_outputs.py --check                    # rerun, print a diff, exit 1 if a quote is stale
    python tools/quote_outputs.py --check --only "aeclust cluster"   # only blocks whose commands all match

``make docs`` runs the first form; ``tests/test_quoted_outputs.py`` the check.
The tables of docs/benchmarks.md, docs/dask.md, docs/features.md and
docs/reproduction.md are written by their own scripts (``benchmarks/``,
``experiments/``) and carry no markers of this kind.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]

START = re.compile(r"^<!-- quoted(?P<table>-table)?: (?P<arg>.+?) -->\s*$")
END = re.compile(r"^<!-- /quoted -->\s*$")
PROMPT = "$ "

#: Text that differs between two runs of the same command: durations, a number
#: followed directly by the unit ``s``. In the quoted outputs these are the
#: ``time`` line of ``aeclust cluster`` (``load 0.21s, preprocess 0.30s, ...``),
#: and ``10 epochs in 95s`` and ``total time 101.8s`` of ``aeclust run``. Only
#: the durations are masked; the rest of those lines (the stage names, the
#: epoch count, the losses) is still compared.
VOLATILE: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<![\w.])\d+(?:\.\d+)?s\b"),
)
MASK = "<seconds>"


class QuoteError(Exception):
    """A marker that cannot be used, or a command that failed."""


def default_files() -> list[Path]:
    """README.md and every ``docs/*.md``: the files that may hold quoted outputs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# -- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One command's real run: what it printed, and its ``results.json`` when it wrote one."""

    command: str
    stdout: str
    results: dict | None = None
    seconds: float = 0.0


def aeclust_script() -> Path:
    """The ``aeclust`` console script installed beside the Python that runs this module.

    Taking it from ``sys.executable``'s folder (not from ``PATH``) makes the
    quotes come from the same environment that ``make docs`` and the tests use.
    """
    script = Path(sys.executable).parent / "aeclust"
    if not script.exists():
        raise QuoteError(f"no aeclust console script beside {sys.executable}; install the package "
                         "into this environment (make setup)")
    return script


def split_command(command: str) -> list[str]:
    """The argument list of a quoted command; refuses anything but a printing ``aeclust`` call."""
    argv = shlex.split(command)
    if not argv or argv[0] != "aeclust":
        raise QuoteError(f"quoted command must start with 'aeclust': {command!r}")
    if "--quiet" in argv:
        raise QuoteError(f"quoted command prints no summary with --quiet: {command!r}")
    return argv


def _out_dir(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


def run_command(command: str, workdir: Path, env: dict[str, str] | None = None,
                timeout: float | None = None) -> Run:
    """Run one quoted command in ``workdir`` and return what it printed and wrote.

    Parameters
    ----------
    command : str
        The command as quoted, starting with ``aeclust``.
    workdir : Path
        The working directory; relative ``--out`` paths land below it.
    env : dict, optional
        The environment of the command; defaults to this process's.
    timeout : float, optional
        Seconds after which the command is stopped and :class:`QuoteError` raised.

    Returns
    -------
    Run
        Standard output, and the ``results.json`` of its ``--out`` folder if there is one.

    Raises
    ------
    QuoteError
        When the command exits with a non-zero code or runs past ``timeout``.
    """
    argv = split_command(command)
    started = time.perf_counter()
    try:
        proc = subprocess.run([str(aeclust_script()), *argv[1:]], cwd=workdir, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise QuoteError(f"{command!r} ran past {timeout:.0f}s") from exc
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        # The progress bars share stderr with the error; the error is its last line.
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise QuoteError(f"{command!r} exited with {proc.returncode}:\n{tail}")
    results = None
    out = _out_dir(argv)
    if out is not None and (workdir / out / "results.json").is_file():
        results = json.loads((workdir / out / "results.json").read_text())
    return Run(command, proc.stdout, results, seconds)


def run_all(commands: Iterable[str], workdir: Path, data_dir: str | os.PathLike | None = None,
            timeout: float | None = None, log: Callable[[str], None] | None = None) -> dict[str, Run]:
    """Run each distinct command once, in order, all in the same ``workdir``.

    Parameters
    ----------
    commands : iterable of str
        Quoted commands; a command that several blocks need runs once.
    workdir : Path
        Shared working directory of the runs.
    data_dir : path, optional
        Where the CIFAR-10 files are; sets ``AECLUST_DATA`` for the commands.
        Without it, ``AECLUST_DATA`` is passed through as it is set.
    timeout : float, optional
        Per-command limit in seconds.
    log : callable, optional
        Receives one line before and after each command.

    Returns
    -------
    dict
        ``{command: Run}``.
    """
    env = dict(os.environ)
    if data_dir is not None:
        env["AECLUST_DATA"] = str(data_dir)
    if env.get("AECLUST_DATA"):
        # The commands run in ``workdir``: a relative path (the README's ../shared/data/cifar10) is made
        # absolute from here, where it was given, or it would name a folder that is not there.
        env["AECLUST_DATA"] = str(Path(env["AECLUST_DATA"]).resolve())
    runs: dict[str, Run] = {}
    for command in dict.fromkeys(commands):
        if log:
            log(f"running: {command}")
        runs[command] = run_command(command, workdir, env=env, timeout=timeout)
        if log:
            log(f"  done in {runs[command].seconds:.1f}s")
    return runs


# -- tables built from results.json -----------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A quoted table: the commands it needs and how it is drawn from their runs.

    ``render(old_lines, runs)`` returns the table's new lines; it gets the lines
    now in the markdown so that a table can own only some of its rows.
    """

    commands: tuple[str, ...]
    render: Callable[[list[str], dict[str, Run]], list[str]]


SEEDS = (0, 1, 2)
SEED_COMMANDS = tuple(f"aeclust cluster --seed {seed} --out runs/r{seed}" for seed in SEEDS)
RUN_COMMAND = "aeclust run --out runs/study"


def _results(runs: dict[str, Run], command: str) -> dict:
    results = runs[command].results
    if results is None:
        raise QuoteError(f"{command!r} wrote no results.json")
    return results


def _part1_seeds(old: list[str], runs: dict[str, Run]) -> list[str]:
    """README part 1: the study's silhouette and Dunn, then aeclust's for seeds 0, 1 and 2."""
    results = [_results(runs, command) for command in SEED_COMMANDS]
    for r in results:
        cfg = r["config"]
        if (cfg["dataset"], cfg["features"]) != ("cifar10-test", "pixels"):
            raise QuoteError(f"part1-seeds expects the grayscale test set, got {cfg['dataset']}, {cfg['features']}")
    study = results[0]["study"]
    lines = [f"| k = {results[0]['config']['k']}, grayscale test set | silhouette | Dunn |",
             "|---|---|---|",
             # The study's numbers as the study gave them (0.054, 0.0899), not padded to 4 places.
             f"| the study | {study['silhouette']:g} | {study['dunn']:g} |"]
    for seed, r in zip(SEEDS, results):
        m = r["metrics"]
        lines.append(f"| aeclust, `--seed {seed}` | {m['silhouette']:.4f} | {m['dunn']:.4f} |")
    return lines


#: Rows of README's "Better features" table that ``aeclust run`` measures, by feature set.
#: The table's other rows come from docs/features.md and the literature and are kept as they are.
BASELINE_ROWS = {"grayscale pixels": "pixels", "the study's autoencoder codes (gray)": "codes"}


def _better_features_baselines(old: list[str], runs: dict[str, Run]) -> list[str]:
    """README "Better features": ACC and NMI of the pixel and autoencoder rows from ``aeclust run``."""
    feature_sets = _results(runs, RUN_COMMAND)["feature_sets"]
    new, seen = [], set()
    for line in old:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in BASELINE_ROWS:
            if len(cells) != 3:
                raise QuoteError(f"expected the columns features | ACC | NMI, got: {line}")
            ext = feature_sets[BASELINE_ROWS[cells[0]]]["external"]
            line = f"| {cells[0]} | {ext['acc']:.3f} | {ext['nmi']:.3f} |"
            seen.add(cells[0])
        new.append(line)
    missing = set(BASELINE_ROWS) - seen
    if missing:
        raise QuoteError(f"better-features table has no row {sorted(missing)}")
    return new


#: The quoted tables by the name their marker gives.
TABLES: dict[str, Table] = {
    "part1-seeds": Table(SEED_COMMANDS, _part1_seeds),
    "better-features": Table((RUN_COMMAND,), _better_features_baselines),
}


# -- blocks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One quoted block: the lines strictly between its two markers.

    ``start`` is the index of the opening marker's line in the file and ``end``
    that of the closing marker, so ``body == lines[start + 1:end]``.
    """

    path: Path
    start: int
    end: int
    kind: str  # "command" or "table"
    name: str  # the command, or the table's name
    body: tuple[str, ...]

    @property
    def commands(self) -> tuple[str, ...]:
        """The commands whose runs this block is made from."""
        return (self.name,) if self.kind == "command" else TABLES[self.name].commands

    @property
    def where(self) -> str:
        """``path:line`` of the opening marker, for messages."""
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.start + 1}"


def find_blocks(path: Path) -> list[Block]:
    """Every quoted block of one markdown file.

    Raises
    ------
    QuoteError
        On a marker without its partner, a nested marker, an unknown table or a
        command that is not an ``aeclust`` call.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, open_at = [], None
    for i, line in enumerate(lines):
        start = START.match(line)
        if start:
            if open_at is not None:
                raise QuoteError(f"{path}:{i + 1}: quoted block opened inside the one at line {open_at[0] + 1}")
            open_at = (i, start)
        elif END.match(line):
            if open_at is None:
                raise QuoteError(f"{path}:{i + 1}: <!-- /quoted --> without an opening marker")
            j, m = open_at
            kind = "table" if m["table"] else "command"
            name = m["arg"].strip()
            if kind == "table" and name not in TABLES:
                raise QuoteError(f"{path}:{j + 1}: unknown quoted table {name!r}; known: {', '.join(TABLES)}")
            if kind == "command":
                split_command(name)
            blocks.append(Block(path, j, i, kind, name, tuple(lines[j + 1:i])))
            open_at = None
    if open_at is not None:
        raise QuoteError(f"{path}:{open_at[0] + 1}: quoted block is never closed with <!-- /quoted -->")
    return blocks


def collect(paths: Iterable[Path] | None = None, only: Sequence[str] | None = None) -> list[Block]:
    """The quoted blocks of ``paths`` (default: :func:`default_files`), optionally filtered.

    Parameters
    ----------
    paths : iterable of Path, optional
        Markdown files to read.
    only : sequence of str, optional
        Keep a block only when each command it needs contains one of these strings
        (``["aeclust cluster"]`` leaves out everything that needs ``aeclust run``).
    """
    blocks = [b for p in (paths or default_files()) for b in find_blocks(Path(p))]
    if only:
        blocks = [b for b in blocks if all(any(s in c for s in only) for c in b.commands)]
    return blocks


def render(block: Block, runs: dict[str, Run]) -> list[str]:
    """The lines the block should hold, given the runs of its commands."""
    if block.kind == "table":
        return TABLES[block.name].render(list(block.body), runs)
    return ["```", PROMPT + block.name, *runs[block.name].stdout.rstrip("\n").splitlines(), "```"]


def mask(line: str) -> str:
    """``line`` with every :data:`VOLATILE` match replaced by a placeholder."""
    for pattern in VOLATILE:
        line = pattern.sub(MASK, line)
    return line.rstrip()


def diff(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Lines of a diff between a quote and a fresh rendering, or ``[]`` when they agree.

    Lines are compared after :func:`mask`; the diff shows them as written
    (``-`` quoted now, ``+`` what the command printed), with the block's other
    lines as context.
    """
    a, b = [mask(x) for x in old], [mask(x) for x in new]
    if a == b:
        return []
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            out += ["  " + x for x in old[i1:i2]]
        else:
            out += ["- " + x for x in old[i1:i2]] + ["+ " + x for x in new[j1:j2]]
    return out


def stale(blocks: Iterable[Block], runs: dict[str, Run]) -> list[tuple[Block, list[str]]]:
    """Every block whose quote no longer matches its runs, with its :func:`diff`; empty when all match."""
    found = []
    for block in blocks:
        lines = diff(block.body, render(block, runs))
        if lines:
            found.append((block, lines))
    return found


def format_report(found: Sequence[tuple[Block, list[str]]]) -> str:
    """The diffs of :func:`stale` as text, one section per block."""
    return "\n".join(f"{block.where}: {block.kind} {block.name!r} differs (- quoted, + now):\n"
                     + "\n".join(lines) + "\n" for block, lines in found)


def rewrite(blocks: Iterable[Block], runs: dict[str, Run]) -> list[Path]:
    """Write every block's fresh rendering into its file, atomically; returns the files changed.

    A file is rewritten (temporary sibling, fsync, rename) only when its text changes.
    """
    from aeclust._io import write_text

    by_file: dict[Path, list[Block]] = {}
    for block in blocks:
        by_file.setdefault(block.path, []).append(block)
    changed = []
    for path, file_blocks in by_file.items():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        # Bottom-up, so that the line numbers of the blocks above stay valid.
        for block in sorted(file_blocks, key=lambda b: b.start, reverse=True):
            if tuple(lines[block.start + 1:block.end]) != block.body:
                raise QuoteError(f"{block.where}: the file changed while the commands ran; rerun")
            lines[block.start + 1:block.end] = render(block, runs)
        new_text = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
        if new_text != text:
            write_text(path, new_text)
            changed.append(path)
    return changed


def check(paths: Iterable[Path] | None = None, only: Sequence[str] | None = None,
          data_dir: str | os.PathLike | None = None, workdir: Path | None = None,
          timeout: float | None = None,
          log: Callable[[str], None] | None = None) -> tuple[list[Block], list[tuple[Block, list[str]]]]:
    """Run the commands of the selected blocks and compare the quotes with what they print.

    Parameters
    ----------
    paths, only
        As for :func:`collect`.
    data_dir, timeout, log
        As for :func:`run_all`.
    workdir : Path, optional
        Where the commands run; a temporary directory, removed afterwards, by default.

    Returns
    -------
    blocks : list of Block
        The blocks checked.
    found : list of (Block, list of str)
        Each stale block with its diff (:func:`stale`); empty when every quote matches.
    """
    blocks = collect(paths, only)
    commands = [c for b in blocks for c in b.commands]
    if workdir is not None:
        return blocks, stale(blocks, run_all(commands, Path(workdir), data_dir, timeout, log))
    with tempfile.TemporaryDirectory(prefix="aeclust-quotes-") as tmp:
        return blocks, stale(blocks, run_all(commands, Path(tmp), data_dir, timeout, log))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    p.add_argument("--check", action="store_true",
                   help="rewrite nothing; print a diff and exit 1 where a quote differs from the command's output")
    p.add_argument("--only", action="append", metavar="TEXT",
                   help="only blocks whose commands all contain TEXT (repeatable)")
    p.add_argument("--data-dir", help="CIFAR-10 folder for the commands (default: $AECLUST_DATA as set)")
    p.add_argument("--timeout", type=float, help="seconds allowed per command")
    args = p.parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.check:
            blocks, found = check(args.files or None, args.only, args.data_dir, timeout=args.timeout, log=log)
            if found:
                print(format_report(found))
                print(f"{len(found)} of {len(blocks)} quoted blocks are stale; `make docs` regenerates them")
                return 1
            print(f"all {len(blocks)} quoted blocks match the commands' output")
            return 0
        blocks = collect(args.files or None, args.only)
        with tempfile.TemporaryDirectory(prefix="aeclust-quotes-") as tmp:
            runs = run_all([c for b in blocks for c in b.commands], Path(tmp), args.data_dir, args.timeout, log)
            found = stale(blocks, runs)
            changed = rewrite(blocks, runs)
    except QuoteError as exc:
        print(f"quote_outputs: error: {exc}", file=sys.stderr)
        return 2
    if found:
        print(format_report(found))
    for path in changed:
        print(f"rewrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"{len(blocks)} quoted blocks, {len(found)} with changed content (durations aside), "
          f"{len(changed)} files rewritten")
    return 0

if __name__ == "__main__":
    sys.exit(main())
