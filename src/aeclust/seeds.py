"""The whole study over many seeds in one run directory: ``aeclust run --seeds 0..4``.

One seed's run is :func:`aeclust.pipeline.run` into ``<out>/seed-<s>/``, with its
own ``results.json`` and report; the seed sets the k-means start and the
autoencoder's weights and shuffling. The seeds run side by side in separate
processes, each training on one torch thread: by default all of them at once
(up to :data:`MAX_JOBS`, or one per CPU where there are more), so that the
operating system keeps every CPU busy until the last seed ends, where rounds
of one seed per CPU would leave CPUs idle in the last round. Every seed is
resumable on its own: with ``resume`` a seed whose ``results.json`` is
written is read back, and an unfinished one continues from its stage records
and last finished epoch. ``<out>/results.json`` then holds a row per seed and
each feature set's mean and standard deviation over the seeds whose numbers are
meaningful (a collapsed autoencoder's codes are left out and counted), and
``<out>/report.html`` a per-seed table and a strip plot with the study's numbers.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import time
from dataclasses import asdict
from multiprocessing.connection import wait
from pathlib import Path

from ._io import write_json
from ._validation import SEED_MAX
from .errors import AeclustError, InvalidInputError
from .pipeline import STUDY, RunConfig, run, run_claim, versions
from .rundir import Claim, claimed, judge

__all__ = ["parse_seeds", "run_seeds", "seed_folder", "summarize", "MAX_SEEDS", "MAX_JOBS"]

#: A bound on the number of seeds of one command (each is a whole study).
MAX_SEEDS = 1000
#: Seeds run at the same time by default, where there are fewer CPUs: each process
#: holds the data and a model (about 0.7 GB for CIFAR-10).
MAX_JOBS = 8
#: The numbers summarised over the seeds, as ``(key in the summary, path in a feature set's results)``.
METRICS = (("silhouette", ("metrics", "silhouette")), ("dunn", ("metrics", "dunn")),
           ("acc", ("external", "acc")), ("nmi", ("external", "nmi")))


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0..4"`` (a range, both ends included), ``"0,3,7"`` or a mix such as ``"0..2,9"``.

    Raises
    ------
    InvalidInputError
        A part that is not a whole number or range, a seed outside 0 .. 2**32 - 1, a
        range that runs backwards, a seed named twice, or more than :data:`MAX_SEEDS` seeds.
    """
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        lo, sep, hi = part.partition("..")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise InvalidInputError(
                f"seeds must be whole numbers or ranges such as 0..4 or 0,3,7; got {part!r}") from None
        for value in (first, last):
            if not 0 <= value <= SEED_MAX:
                raise InvalidInputError(f"seeds must be from 0 to {SEED_MAX}; got {value}")
        if last < first:
            raise InvalidInputError(f"the range {part!r} runs backwards; write {last}..{first}")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise InvalidInputError(f"at most {MAX_SEEDS} seeds in one run; {text!r} names more")
        seeds.extend(range(first, last + 1))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise InvalidInputError(f"seed {repeated[0]} is named twice in {text!r}")
    return seeds


def seed_folder(seed: int) -> str:
    """The sub-folder of one seed's run."""
    return f"seed-{seed}"


def _seed_config(config: RunConfig, seed: int) -> RunConfig:
    return RunConfig(**{**asdict(config), "seed": seed, "out": str(Path(config.out) / seed_folder(seed)),
                        "progress": False})


def _child(config: dict, conn) -> None:
    """One seed's run in a separate process; sends back None, or the error in one line."""
    try:
        run(RunConfig(**config))
        conn.send(None)
    except KeyboardInterrupt:
        conn.send("interrupted")
    except AeclustError as exc:
        conn.send(str(exc))
    except BaseException as exc:  # a bug: the parent names it, the traceback is in the child's stderr
        conn.send(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        conn.close()


def _finished(config: RunConfig) -> dict | None:
    """A seed's results when its run finished with the same settings (for ``resume``), else None."""
    path = Path(config.out) / "results.json"
    if not (config.resume and path.is_file()):
        return None
    try:
        results = json.loads(path.read_text())
    except ValueError:
        return None
    recorded = results.get("config", {})
    same = all(recorded.get(k) == v for k, v in config.recorded().items())
    return results if same else None


def _run_all(config: RunConfig, seeds: list[int], jobs: int, say) -> dict[int, dict]:
    """Every seed's results, running up to ``jobs`` seeds at a time."""
    done: dict[int, dict] = {}
    todo = []
    for seed in seeds:
        finished = _finished(_seed_config(config, seed))
        if finished is not None:
            done[seed] = finished
            say(f"seed {seed}: finished before, read back")
        else:
            todo.append(seed)
    if jobs <= 1:
        for seed in todo:
            t0 = time.perf_counter()
            done[seed] = run(_seed_config(config, seed))
            say(f"seed {seed}: done in {time.perf_counter() - t0:.0f}s")
        return done
    # Separate processes, started fresh ("spawn"): torch's thread pools do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    running: dict[int, tuple] = {}
    try:
        while todo or running:
            while todo and len(running) < jobs:
                seed = todo.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(asdict(_seed_config(config, seed)), send),
                                      name=f"aeclust-seed-{seed}")
                process.start()
                send.close()
                running[seed] = (process, receive, time.perf_counter())
            ready = wait([p.sentinel for p, _, _ in running.values()])
            for seed in [s for s, (p, _, _) in running.items() if p.sentinel in ready]:
                process, receive, t0 = running.pop(seed)
                process.join()
                try:
                    message = receive.recv()
                except EOFError:  # the process died before it could say why
                    message = f"its process ended with code {process.exitcode}"
                receive.close()
                if message is not None:
                    raise AeclustError(f"seed {seed} failed: {message}; the other seeds' runs are kept, "
                                       f"and the same command with resume continues")
                done[seed] = json.loads((Path(config.out) / seed_folder(seed) / "results.json").read_text())
                say(f"seed {seed}: done in {time.perf_counter() - t0:.0f}s")
    finally:
        for process, receive, _ in running.values():  # interrupted, or another seed failed
            process.terminate()
            process.join()
            receive.close()
    return done


def _get(result: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def summarize(per_seed: dict[int, dict]) -> tuple[list[dict], dict]:
    """Per-seed rows and, per feature set, mean ± sd over the seeds with meaningful numbers."""
    rows = []
    names: list[str] = []
    for seed in sorted(per_seed):
        results = per_seed[seed]
        row = {"seed": seed, "feature_sets": {}, "collapsed": {}}
        for name, fs in results.get("feature_sets", {}).items():
            names += [name] if name not in names else []
            row["feature_sets"][name] = {key: _get(fs, path) for key, path in METRICS}
            row["feature_sets"][name]["meaningful"] = bool(fs.get("meaningful", True))
        for folder, trained in results.get("autoencoders", {}).items():
            collapse = trained.get("collapse") or {}
            row["collapsed"][folder] = {"collapsed": bool(collapse.get("collapsed", False)),
                                        "constant_code_features": collapse.get("constant_code_features")}
        rows.append(row)
    summary = {}
    for name in names:
        cells = [r["feature_sets"][name] for r in rows if name in r["feature_sets"]]
        kept = [c for c in cells if c["meaningful"]]
        summary[name] = {key: _stats([c[key] for c in kept if c[key] is not None]) for key, _ in METRICS}
        summary[name]["n_seeds"] = len(cells)
        summary[name]["n_not_meaningful"] = len(cells) - len(kept)
    return rows, summary


def run_seeds(config: RunConfig | None = None, seeds=(0, 1, 2, 3, 4), *, jobs: int | None = None,
              say=None, **overrides) -> dict:
    """The whole study once per seed, into ``<out>/seed-<s>/``, and a summary over the seeds.

    Parameters
    ----------
    config : RunConfig, optional
        As for :func:`aeclust.pipeline.run`; its ``seed`` is replaced by each of ``seeds``.
    seeds : sequence of int
        Distinct seeds from 0 to 2**32 - 1.
    jobs : int, optional
        Seeds run at the same time, each in its own process (default: every seed,
        up to ``max(MAX_JOBS, CPUs)``). 1 runs them one after the other in this process.
    say : callable, optional
        Receives one line per finished seed (default: printed to stderr when ``config.progress``).

    Returns
    -------
    dict
        What ``<out>/results.json`` holds: ``seeds``, ``per_seed`` rows, ``summary``
        (per feature set: mean, sd, min, max and n of silhouette, Dunn, ACC and NMI
        over the meaningful seeds, and how many were not), ``study``, ``config``.
    """
    from ._pairwise import cpu_count

    config = RunConfig(**{**(asdict(config) if config else {}), **overrides})
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise InvalidInputError("seeds is empty; name at least one")
    parse_seeds(",".join(map(str, seeds)))  # the same checks as the command line's
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise InvalidInputError(f"jobs must be a positive whole number, got {jobs!r}")
    jobs = min(len(seeds), jobs or max(MAX_JOBS, cpu_count()))
    if say is None:  # progress, on stderr beside the bars: the seeds finish in any order
        say = (lambda line: print(line, file=sys.stderr, flush=True)) if config.progress else (lambda *a, **k: None)
    def check_seed_folders():  # a seed's folder that holds another run fails now, not after the others ran
        for seed in seeds:
            seed_config = _seed_config(config, seed)
            judge(seed_config.out, run_claim(seed_config), resume=config.resume, overwrite=config.overwrite)

    with claimed(config.out, seeds_claim(config, seeds), resume=config.resume, overwrite=config.overwrite,
                 precheck=check_seed_folders) as run_dir:
        if not config.resume:
            (run_dir / "results.json").unlink(missing_ok=True)
        results = _run_and_summarize(config, seeds, jobs, say)
        from .report import build_seeds_report

        build_seeds_report(run_dir, results)
        write_json(run_dir / "results.json", results)
    return results


def seeds_claim(config: RunConfig, seeds: list[int]) -> Claim:
    """What ``aeclust run --seeds`` writes into the parent directory (:mod:`aeclust.rundir`): the
    configuration shared by the seeds (more seeds later may join the same directory), and its files."""
    shared = {k: v for k, v in config.recorded().items() if k != "seed"}
    return Claim("run --seeds", shared, "results.json",
                 ("results.json", "report.html", "figures", *(seed_folder(s) for s in seeds)), resumable=True,
                 ignore=("map",))


def _run_and_summarize(config: RunConfig, seeds: list[int], jobs: int, say) -> dict:
    """Every seed's run, and what ``<out>/results.json`` holds."""
    started = time.perf_counter()
    per_seed = _run_all(config, seeds, jobs, say)
    rows, summary = summarize(per_seed)
    first = per_seed[seeds[0]]
    recorded = {k: v for k, v in first.get("config", {}).items() if k != "seed"}
    study = {name: STUDY[name] for name in summary if name in STUDY} if recorded.get("dataset") == "cifar10" else {}
    return {
        "job": "run-seeds",
        "title": first.get("title", "").rsplit(", seed", 1)[0] + f", seeds {_seeds_text(seeds)}",
        "config": {**recorded, "seeds": seeds},
        "seeds": seeds,
        "per_seed": rows,
        "summary": summary,
        "study": study,
        "folders": {str(s): seed_folder(s) for s in seeds},
        "timings": {"total": round(time.perf_counter() - started, 4)},
        "versions": versions(),
    }


def _seeds_text(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ",".join(map(str, seeds))
