"""Do the two training engines give the same study? Seeds 0-9 through torch and compiled.

aeclust trains the study's autoencoder with one of two engines
(``AutoencoderConfig.engine``): ``"torch"`` (PyTorch eager, autograd and
``torch.optim.Adam``) and ``"compiled"`` (:mod:`aeclust._convnet_jit`: numba
kernels and a fused Adam step). Both compute the same model, loss and update in
float32; their weights differ in the last bits after one step, and training
carries the difference on. Issue #29 asks that the two be statistically
indistinguishable in what the study measures.

For each seed and engine the script trains the study's model (the
:class:`AutoencoderConfig` defaults: gray input, 10 epochs, batch 32, Adam 1e-3,
Keras' initialisation; only ``engine`` and ``seed`` vary) on the 50,000 training
images, encodes the 10,000 test images, runs :class:`aeclust.KMeans`
(k = 10, one random start, ``random_state=seed``: the study's k-means, as
``aeclust run`` has it) and the exact metrics (:func:`aeclust.cluster_quality`)
on the codes, and logs one JSON line per (seed, engine) to
``experiments/engines.jsonl``: test MSE, train time, silhouette, Dunn, ACC/NMI
and the per-epoch losses. Then, per seed, one ``agreement`` line: how far
apart the two engines' weights are after 1, 10, 100 and 1000 steps from the
same start and after the whole run, and how alike their clusterings are.
``docs/training.md`` is rendered from the log alone (``--render-only``; the
test ``tests/test_compare_engines.py`` renders it again and compares).

Rows already in the log are skipped, so an interrupted job resumes by starting
it again; a training cut short resumes from its last epoch's checkpoint under
``--model-dir``. ``--jobs 2`` trains two models at a time, each in its own
process on one thread (the parent alone writes the log).

Usage::

    python experiments/compare_engines.py --seeds 0..9 --jobs 2
    python experiments/compare_engines.py --render-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "experiments" / "engines.jsonl"
#: The reproduction's log: its ``gray_test`` rows are the same config trained by an earlier torch path.
REPRODUCTION = ROOT / "experiments" / "results" / "reproduction.jsonl"
DOC = ROOT / "docs" / "training.md"
MODEL_DIR = ROOT / "runs" / "compare_engines"
ENGINES = ("torch", "compiled")
K = 10
#: Steps of the short runs that measure how fast the two engines drift apart from the same start.
HORIZONS = (1, 10, 100, 1000)
#: (field, name in the doc, digits): the metrics compared between the engines, the issue's three first.
METRICS = (
    ("test_mse", "test MSE", 6),
    ("silhouette", "silhouette", 4),
    ("dunn", "Dunn", 4),
    ("acc", "ACC", 4),
    ("nmi", "NMI", 4),
)
PRIMARY = ("test_mse", "silhouette", "dunn")
ALPHA = 0.05
ROW_FIELDS = ("kind", "seed", "engine", "config", "test_mse", "train_mse", "history", "silhouette", "dunn",
              "acc", "nmi", "ari", "purity", "train_seconds", "epoch_seconds", "compile_seconds",
              "ms_per_step", "weights_sha256", "collapse", "kmeans", "loadavg", "versions")
AGREEMENT_FIELDS = ("kind", "seed", "horizons", "final", "labels_ari", "baseline")

# -----------------------------------------------------------------------------
# the log


def load_log(path: Path = LOG) -> list[dict]:
    """The log's rows; a later line for the same (kind, seed, engine) wins, a cut-short line is skipped."""
    if not path.exists():
        return []
    latest: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:  # a line cut short by an interruption
            continue
        if row is not None:
            latest[(row["kind"], row["seed"], row.get("engine"))] = row
    return list(latest.values())


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


# -----------------------------------------------------------------------------
# one training, and the agreement of a seed's two trainings (in worker processes)

_DATA: dict = {}


def _data(data_dir: str | None):
    """The CIFAR-10 splits, read once per process."""
    if not _DATA:
        from aeclust.datasets import load_cifar10

        for split in ("train", "test"):
            _DATA[split] = load_cifar10(data_dir, split=split, download=False, progress=False)
    return _DATA["train"], _DATA["test"]


def _one_thread() -> None:
    # Two trainings share two cores: one thread each (torch's is train_autoencoder's num_threads=1).
    import numba

    numba.set_num_threads(1)


def _model_dir(model_dir: Path, engine: str, seed: int) -> Path:
    return model_dir / f"{engine}-seed{seed}"


def _weights(model):
    import numpy as np

    return np.concatenate([p.detach().cpu().numpy().ravel() for p in model.parameters()]).astype(np.float64)


def run_one(seed: int, engine: str, data_dir: str | None, model_dir: str) -> dict:
    """Train (or resume) one model, cluster its test codes and measure them; the log row."""
    import hashlib

    import numpy as np
    import torch

    import aeclust
    from aeclust.autoencoder import AutoencoderConfig, assess_collapse, encode, train_autoencoder
    from aeclust.external import external_scores

    _one_thread()
    train, test = _data(data_dir)
    config = AutoencoderConfig(seed=seed, engine=engine)
    out = _model_dir(Path(model_dir), engine, seed)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    result = train_autoencoder(config, train.images, test.images, out, device="cpu", resume=True,
                               progress=False, num_threads=1)
    train_seconds = time.perf_counter() - t0
    model, history = result.model, result.history
    saved = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    codes = encode(model, test.images)
    km = aeclust.KMeans(n_clusters=K, random_state=seed).fit(codes)
    quality = aeclust.cluster_quality(codes, km.labels_)
    np.save(out / "labels.npy", np.asarray(km.labels_))
    collapse = assess_collapse(model, test.images)
    steps = len(history) * math.ceil(len(train.images) / config.batch_size)
    epoch_seconds = sum(h["seconds"] for h in history)
    return {
        "kind": "training", "seed": seed, "engine": engine, "config": config.to_dict(),
        "test_mse": history[-1]["test_loss"], "train_mse": history[-1]["train_loss"], "history": history,
        "silhouette": quality.silhouette, "dunn": quality.dunn,
        **external_scores(test.labels, km.labels_),
        # train_seconds: the whole train_autoencoder call (kernels loaded or compiled, test losses
        # waited for; all epochs unless resumed); epoch_seconds: the epochs' own clocks.
        "train_seconds": round(train_seconds, 2), "epoch_seconds": round(epoch_seconds, 2),
        "compile_seconds": saved.get("compile_seconds", 0.0),
        "ms_per_step": round(1000 * epoch_seconds / steps, 4),
        "weights_sha256": hashlib.sha256(_weights(model).astype(np.float32).tobytes()).hexdigest(),
        "collapse": {k: collapse[k] for k in ("constant_code_features", "mse_ratio", "collapsed")},
        "kmeans": {"n_iter": int(km.n_iter_), "inertia": float(km.inertia_)},
        "loadavg": [round(load, 2), round(os.getloadavg()[0], 2)],
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
                     "cpu_count": os.cpu_count()},
    }


def _drift(a, b) -> dict:
    import numpy as np

    d = a - b
    return {"rel_l2": float(np.linalg.norm(d) / np.linalg.norm(a)), "max_abs": float(np.abs(d).max())}


def run_agreement(seed: int, data_dir: str | None, model_dir: str, other_seed: int) -> dict:
    """How close the two engines stay from the same seed: short runs of 1-1000 steps, the full runs' weights
    and clusterings, and, for scale, the same distances between this seed and ``other_seed`` (torch)."""
    import numpy as np

    from aeclust.autoencoder import AutoencoderConfig, load_checkpoint, train_autoencoder
    from aeclust.external import ari

    _one_thread()
    train, _ = _data(data_dir)
    horizons = []
    for steps in HORIZONS:  # one epoch over the first steps x 32 images: the same batches in both engines
        config = {e: AutoencoderConfig(seed=seed, engine=e, epochs=1) for e in ENGINES}
        runs = {}
        for e in ENGINES:
            with tempfile.TemporaryDirectory() as tmp:
                runs[e] = train_autoencoder(config[e], train.images[: steps * 32], None, tmp, device="cpu",
                                            progress=False, num_threads=1)
        w = {e: _weights(runs[e].model) for e in ENGINES}
        loss = {e: runs[e].history[-1]["train_loss"] for e in ENGINES}
        horizons.append({"steps": steps, **_drift(w["torch"], w["compiled"]),
                         "mean_loss_torch": loss["torch"], "mean_loss_compiled": loss["compiled"]})
    root = Path(model_dir)
    final = {e: _weights(load_checkpoint(_model_dir(root, e, seed) / "model.pt").model) for e in ENGINES}
    labels = {e: np.load(_model_dir(root, e, seed) / "labels.npy") for e in ENGINES}
    other = _weights(load_checkpoint(_model_dir(root, "torch", other_seed) / "model.pt").model)
    other_labels = np.load(_model_dir(root, "torch", other_seed) / "labels.npy")
    return {
        "kind": "agreement", "seed": seed, "horizons": horizons,
        "final": _drift(final["torch"], final["compiled"]),
        "labels_ari": ari(labels["torch"], labels["compiled"]),
        "baseline": {"other_seed": other_seed, **_drift(final["torch"], other),
                     "labels_ari": ari(labels["torch"], other_labels)},
    }


# -----------------------------------------------------------------------------
# the doc, from the log alone


def _by_engine(rows: list[dict]) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {e: {} for e in ENGINES}
    for r in rows:
        if r["kind"] == "training":
            out[r["engine"]][r["seed"]] = r
    return out


def _fmt(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "–"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def compare(torch_values: list[float], compiled_values: list[float]) -> dict:
    """The four tests of one metric over paired seeds (the lists in seed order), and the paired difference.

    Welch's t and Mann-Whitney U treat the engines' runs as two samples; the
    paired t and Wilcoxon's signed-rank test use the seed each pair shares.
    ``diff_ci`` is the 95 % confidence interval of the mean difference
    (compiled - torch), ``diff_sd_units`` its ends over the pooled between-seed sd.
    """
    from scipy import stats

    t, c = torch_values, compiled_values
    d = [b - a for a, b in zip(t, c)]
    n = len(d)
    mean_d, sd_d = statistics.fmean(d), statistics.stdev(d)
    half = stats.t.ppf(0.975, n - 1) * sd_d / math.sqrt(n)
    pooled = math.sqrt((statistics.variance(t) + statistics.variance(c)) / 2)
    return {
        "welch": float(stats.ttest_ind(c, t, equal_var=False).pvalue),
        "mannwhitney": float(stats.mannwhitneyu(c, t, alternative="two-sided").pvalue),
        "paired_t": float(stats.ttest_rel(c, t).pvalue),
        "wilcoxon": float(stats.wilcoxon(c, t).pvalue),
        "diff_mean": mean_d, "diff_ci": (mean_d - half, mean_d + half),
        "diff_sd_units": ((mean_d - half) / pooled, (mean_d + half) / pooled),
    }


def detectable_effect(n: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest difference of means, in sd, that a two-sided two-sample t-test on n + n runs finds
    with the given power."""
    from scipy import optimize, stats

    df, crit = 2 * n - 2, stats.t.ppf(1 - alpha / 2, 2 * n - 2)

    def shortfall(d: float) -> float:
        nc = d * math.sqrt(n / 2)
        wrong_side = stats.nct.cdf(-crit, df, nc)  # negligible, and NaN in scipy's far tail
        return stats.nct.sf(crit, df, nc) + (wrong_side if math.isfinite(wrong_side) else 0.0) - power

    if shortfall(20.0) < 0:  # a handful of runs
        return math.inf
    return float(optimize.brentq(shortfall, 0.01, 20.0))


def _seed_table(by: dict[str, dict[int, dict]], seeds: list[int]) -> list[str]:
    lines = ["| seed | engine | test MSE | silhouette | Dunn | ACC | NMI | train s | ms/step | weights (sha256) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in seeds:
        for e in ENGINES:
            r = by[e][s]
            lines.append(f"| {s} | {e} | {r['test_mse']:.6f} | {r['silhouette']:.4f} | {r['dunn']:.4f} "
                         f"| {r['acc']:.4f} | {r['nmi']:.4f} | {r['train_seconds']:.1f} | {r['ms_per_step']:.3f} "
                         f"| `{r['weights_sha256'][:12]}` |")
    return lines


def _test_table(by: dict[str, dict[int, dict]], seeds: list[int]) -> tuple[list[str], dict[str, dict]]:
    lines = ["| metric | torch mean ± sd | compiled mean ± sd | compiled − torch, mean [95 % CI] | in sd "
             "| Welch t p | Mann–Whitney U p | paired t p | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|---|"]
    tests = {}
    for field, name, digits in METRICS:
        t = [by["torch"][s][field] for s in seeds]
        c = [by["compiled"][s][field] for s in seeds]
        r = tests[field] = compare(t, c)
        lo, hi = r["diff_ci"]
        ulo, uhi = r["diff_sd_units"]
        lines.append(f"| {name} | {_fmt(t, digits)} | {_fmt(c, digits)} | {r['diff_mean']:+.{digits}f} "
                     f"[{lo:+.{digits}f}, {hi:+.{digits}f}] | [{ulo:+.2f}, {uhi:+.2f}] | {_p(r['welch'])} "
                     f"| {_p(r['mannwhitney'])} | {_p(r['paired_t'])} | {_p(r['wilcoxon'])} |")
    return lines, tests


def verdict(tests: dict[str, dict], n: int) -> list[str]:
    """The verdict in words: which tests reject at ALPHA, on the issue's three metrics and the two others."""
    keys = ("welch", "mannwhitney", "paired_t", "wilcoxon")
    names = {f: name for f, name, _ in METRICS}
    rejected = [(f, k) for f in tests for k in keys if tests[f][k] < ALPHA]
    primary = [f for f, _ in rejected if f in PRIMARY]
    total = len(tests) * len(keys)
    widest = max(max(abs(u) for u in tests[f]["diff_sd_units"]) for f in PRIMARY)
    if not primary:
        head = (f"**Indistinguishable at this sample size.** No test finds a difference between the engines in "
                f"test MSE, silhouette or Dunn (every p ≥ {ALPHA:g})")
    else:
        head = (f"**A difference is found.** At α = {ALPHA:g}, "
                + ", ".join(f"{names[f]} ({k})" for f, k in rejected if f in PRIMARY) + " reject equality")
    others = [f"{names[f]} ({k}, p = {_p(tests[f][k])})" for f, k in rejected if f not in PRIMARY]
    lines = [head + (f"; of the ACC and NMI tests, {', '.join(others)} reject" if others else
                     "; nor in ACC or NMI") + f" ({len(rejected)} of {total} tests reject; about "
             f"{ALPHA * total:.0f} would by chance alone if the engines were the same)."]
    lines += ["", f"What that rules out: with {n} seeds per engine, a two-sample test at α = {ALPHA:g} finds a "
              f"difference of means with 80 % power only from about {detectable_effect(n):.2f} between-seed sd "
              f"upwards. The paired comparison is sharper: the 95 % confidence intervals of the mean "
              f"difference (compiled − torch) of test MSE, silhouette and Dunn lie within ±{widest:.2f} sd of "
              f"the spread between seeds: a larger difference is excluded at 95 % confidence, a smaller one "
              f"is not."]
    return lines



def _range(values: list[float], fmt: str) -> str:
    values = sorted(values)
    return f"{format(statistics.median(values), fmt)} ({format(values[0], fmt)}–{format(values[-1], fmt)})"


def agreement_section(rows: list[dict], by: dict[str, dict[int, dict]], seeds: list[int]) -> list[str]:
    """How close the two engines stay from the same seed, over the seeds' agreement rows."""
    agree = sorted((r for r in rows if r["kind"] == "agreement"), key=lambda r: r["seed"])
    if not agree:
        return []
    lines = ["## Same seed, two engines", "",
             "Both engines start from the same weights and draw the same batches; they differ only in the "
             "order of float32 operations. Short runs of the first *n* × 32 training images (one epoch, so "
             "*n* steps) measure how fast that difference grows; the last rows compare the full runs above. "
             "Relative L2 is ‖w_torch − w_compiled‖ / ‖w_torch‖ over all the weights and biases; median "
             f"(min–max) over the {len(agree)} seeds.", "",
             "| steps | weights, relative L2 | weights, max abs difference | mean train loss, abs. difference |",
             "|---|---|---|---|"]
    for i, steps in enumerate(h["steps"] for h in agree[0]["horizons"]):
        hs = [r["horizons"][i] for r in agree]
        lines.append(f"| {steps} | {_range([h['rel_l2'] for h in hs], '.2e')} "
                     f"| {_range([h['max_abs'] for h in hs], '.2e')} "
                     f"| {_range([abs(h['mean_loss_torch'] - h['mean_loss_compiled']) for h in hs], '.2e')} |")
    full = [abs(by["torch"][s]["train_mse"] - by["compiled"][s]["train_mse"]) for s in seeds]
    lines.append(f"| the full runs ({len(by['torch'][seeds[0]]['history'])} epochs) "
                 f"| {_range([r['final']['rel_l2'] for r in agree], '.2e')} "
                 f"| {_range([r['final']['max_abs'] for r in agree], '.2e')} | {_range(full, '.2e')} |")
    lines.append(f"| another seed, same engine (torch) | {_range([r['baseline']['rel_l2'] for r in agree], '.2e')} "
                 f"| {_range([r['baseline']['max_abs'] for r in agree], '.2e')} | – |")
    epochs = len(by["torch"][seeds[0]]["history"])
    first = [abs(by["torch"][s]["history"][0]["train_loss"] - by["compiled"][s]["history"][0]["train_loss"])
             for s in seeds]
    identical = sum(by["torch"][s]["weights_sha256"] == by["compiled"][s]["weights_sha256"] for s in seeds)
    lines += ["", f"Over the full runs the mean train loss of epoch 1 differs by {_range(first, '.1e')} between "
              f"the engines and that of epoch {epochs} by {_range(full, '.1e')}; "
              f"{identical} of {len(seeds)} seeds end with bit-identical weights. The k-means labels of the "
              f"test codes agree between the engines of one seed with an adjusted Rand index of "
              f"{_range([r['labels_ari'] for r in agree], '.3f')}, against "
              f"{_range([r['baseline']['labels_ari'] for r in agree], '.3f')} between two seeds of one engine."]
    far = max(agree, key=lambda r: r["final"]["rel_l2"])
    t, c = by["torch"][far["seed"]], by["compiled"][far["seed"]]
    lines += ["", f"The two runs of seed {far['seed']} parted furthest (relative L2 {far['final']['rel_l2']:.3f}, "
              f"labels ARI {far['labels_ari']:.3f}): test MSE {t['test_mse']:.6f} (torch) and "
              f"{c['test_mse']:.6f} (compiled), silhouette {t['silhouette']:.4f} and {c['silhouette']:.4f}, "
              f"Dunn {t['dunn']:.4f} and {c['dunn']:.4f}. "
              f"{sum(r['final']['rel_l2'] < 0.05 for r in agree)} of {len(agree)} pairs end within a relative "
              "L2 of 0.05 of each other: the float32 differences grow over a run (the table's rows) but "
              "seldom carry the two engines to different models."]
    return lines


def earlier_torch(by: dict[str, dict[int, dict]], seeds: list[int], path: Path = REPRODUCTION) -> list[str]:
    """For scale: today's torch runs against the reproduction's ``gray_test`` runs of the same seeds and config
    logged before the engine field (rows that record an engine are that script's newer runs, left out)."""
    if not path.exists():
        return []
    earlier = {}
    for line in path.read_text().splitlines():
        r = json.loads(line) if line.strip() else None
        if (r and r["variant"] == "gray_test" and r["config"].get("init") == "keras" and "engine" not in r
                and r["seed"] in seeds):
            earlier[r["seed"]] = r  # a later line for the same run wins, as in that script
    common = sorted(earlier)
    if not common:
        return []
    now, comp = by["torch"], by["compiled"]
    same = sum(now[s]["test_mse"] == earlier[s]["final_test_loss"] for s in common)

    def gaps(field: str, other: dict, other_field: str) -> str:
        return _range([abs(now[s][field] - other[s][other_field]) for s in common], ".1e")

    return ["", f"For scale, the torch engine against an earlier aeclust: `experiments/results/reproduction.jsonl` "
            f"holds the same config's `gray_test` runs of seeds {common[0]}–{common[-1]} (its rows without an "
            f"`engine` field), trained with PyTorch and clustered by code that differs from today's in the last "
            f"bits. {same} of {len(common)} give today's test MSE to the bit; the differences "
            f"are {gaps('test_mse', earlier, 'final_test_loss')} in test MSE and "
            f"{gaps('silhouette', earlier, 'silhouette')} in silhouette, against "
            f"{gaps('test_mse', comp, 'test_mse')} and {gaps('silhouette', comp, 'silhouette')} "
            "between today's two engines."]


def timing_section(by: dict[str, dict[int, dict]], seeds: list[int]) -> list[str]:
    """Seconds per training and per step of each engine, with the load the machine was under."""
    lines = ["## Time per training", "",
             "| engine | train s, mean ± sd (min–max) | epochs' own s | ms per step "
             "| kernels compiled or loaded, s |",
             "|---|---|---|---|---|"]
    mean = {}
    for e in ENGINES:
        rs = [by[e][s] for s in seeds]
        t = [r["train_seconds"] for r in rs]
        mean[e] = statistics.fmean(r["ms_per_step"] for r in rs)
        lines.append(f"| {e} | {_fmt(t, 1)} ({min(t):.1f}–{max(t):.1f}) "
                     f"| {_fmt([r['epoch_seconds'] for r in rs], 1)} | {_fmt([r['ms_per_step'] for r in rs], 3)} "
                     f"| {_fmt([r['compile_seconds'] for r in rs], 3)} |")
    loads = [x for e in ENGINES for s in seeds for x in by[e][s]["loadavg"]]
    lines += ["", f"The compiled engine's step takes {mean['compiled'] / mean['torch']:.2f}× torch's "
              f"({mean['compiled']:.3f} against {mean['torch']:.3f} ms, the means above). Two trainings ran at "
              f"a time, one thread each, on a machine of {by['torch'][seeds[0]]['versions']['cpu_count']} cores "
              f"shared with other work (1-minute load average {min(loads):.1f}–{max(loads):.1f} at the starts "
              "and ends of the trainings), so these times are those of a busy machine; "
              "[benchmarks.md](benchmarks.md) times one step in a quiet, interleaved run. "
              "Train s is the whole `train_autoencoder` call (the test loss of each epoch measured on a "
              "second thread included)."]
    return lines


def _collapsed(by: dict[str, dict[int, dict]], seeds: list[int]) -> str:
    gone = [f"{e} seed {s}" for e in ENGINES for s in seeds if by[e][s]["collapse"]["collapsed"]]
    return (f"Collapsed models (by `aeclust.autoencoder.COLLAPSE_RULE`): {', '.join(gone) or 'none'}.")


def render(rows: list[dict]) -> str:
    """docs/training.md from the log's rows."""
    by = _by_engine(rows)
    seeds = sorted(set(by["torch"]) & set(by["compiled"]))
    if len(seeds) < 2:
        raise SystemExit(f"the log holds {len(seeds)} seeds trained by both engines; the comparison needs two")
    table, tests = _test_table(by, seeds)
    lines = ["# Training engines: torch and compiled", "",
             "aeclust trains the study's autoencoder with one of two engines (`AutoencoderConfig.engine`, "
             "`--engine`): **torch**, PyTorch eager with autograd and `torch.optim.Adam`, and **compiled**, "
             "numba kernels with one fused forward, backward and Adam step (`aeclust._convnet_jit`). They "
             "compute the same model, loss and update in float32 in a different order of operations, so their "
             "weights part in the last bits and training carries the difference on. Are the two studies "
             "the same? (Issue #29.)", "",
             f"Seeds {seeds[0]}–{seeds[-1]} ({len(seeds)} per engine) of the study's model: the "
             "`AutoencoderConfig` defaults (gray input, 10 epochs, batch 32, Adam lr 1e-3, Keras' "
             "initialisation), trained on the 50,000 CIFAR-10 training images; the 10,000 test images "
             "encoded; `aeclust.KMeans(n_clusters=10, random_state=seed)` (one random start, as `aeclust run`) "
             "and the exact silhouette and Dunn index on the codes; ACC and NMI against the true classes. "
             "Only the engine and the seed vary, and the seed sets the weights, the batches and the k-means "
             "start, so the two runs of a seed are a pair. Test MSE is the last epoch's mean squared error "
             "per pixel on the test images.",
             _collapsed(by, seeds), "",
             "```", "python experiments/compare_engines.py --seeds 0..9 --jobs 2   # the runs, logged to "
             "experiments/engines.jsonl", "python experiments/compare_engines.py --render-only           # this page",
             "```", "", "## Distributions and tests", "", *table, "",
             "*in sd*: the confidence interval's ends over the pooled between-seed sd of the metric. "
             "Welch's t and Mann–Whitney U compare the engines as two samples of runs; the paired t and "
             "Wilcoxon's signed-rank test compare each seed's two runs (scipy.stats, two-sided).", "",
             "**Verdict.**", "", *verdict(tests, len(seeds)), "",
             *agreement_section(rows, by, seeds), *earlier_torch(by, seeds), "", *timing_section(by, seeds), "",
             "## Per seed", "", *_seed_table(by, seeds), ""]
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# the command


def _plan(rows: list[dict], seeds: list[int]) -> tuple[list[tuple], list[int]]:
    """The trainings not yet logged (the slow torch ones first, so two processes end together) and the
    seeds whose agreement is not yet logged."""
    done = {(r["seed"], r.get("engine")) for r in rows if r["kind"] == "training"}
    todo = [(s, e) for e in ENGINES for s in seeds if (s, e) not in done]
    agreed = {r["seed"] for r in rows if r["kind"] == "agreement"}
    return todo, [s for s in seeds if s not in agreed]


def _pool(jobs: int) -> ProcessPoolExecutor:
    # spawn: each worker starts clean (no torch or numba thread pools inherited from a fork)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))


def run(seeds: list[int], *, jobs: int, data_dir: str | None, model_dir: Path, log: Path) -> None:
    """Every training of ``seeds`` x ENGINES not in ``log``, then the agreement of each seed."""
    todo, agree = _plan(load_log(log), seeds)
    print(f"{len(todo)} trainings and {len(agree)} agreements to do; log {log}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with _pool(jobs) as pool:
        futures = {pool.submit(run_one, s, e, data_dir, str(model_dir)): (s, e) for s, e in todo}
        for f in as_completed(futures):
            row = f.result()
            _append(log, row)
            print(f"seed {row['seed']} {row['engine']}: test MSE {row['test_mse']:.6f} silhouette "
                  f"{row['silhouette']:.4f} Dunn {row['dunn']:.4f} ACC {row['acc']:.4f} "
                  f"{row['train_seconds']:.1f} s ({row['ms_per_step']:.3f} ms/step)", flush=True)
        futures = {pool.submit(run_agreement, s, data_dir, str(model_dir), seeds[(i + 1) % len(seeds)]): s
                   for i, s in enumerate(seeds) if s in agree}
        for f in as_completed(futures):
            row = f.result()
            _append(log, row)
            print(f"seed {row['seed']} agreement: final weights rel. L2 {row['final']['rel_l2']:.3g}, "
                  f"labels ARI {row['labels_ari']:.3f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0..9", help="comma-separated seeds, or a range such as 0..9")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time, one process and one thread each")
    p.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: AECLUST_DATA, else aeclust's cache)")
    p.add_argument("--model-dir", default=str(MODEL_DIR), help="where the trained models are kept")
    p.add_argument("--log", default=str(LOG))
    p.add_argument("--doc", default=str(DOC))
    p.add_argument("--render-only", action="store_true", help="only write the doc again from the log")
    p.add_argument("--no-render", action="store_true", help="do not write the doc after the runs")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    log = Path(args.log)
    if not args.render_only:
        from aeclust.seeds import parse_seeds

        seeds = parse_seeds(args.seeds)
        if len(seeds) < 2:
            p.error("give at least two seeds: the agreement compares each seed with another")
        run(seeds, jobs=args.jobs, data_dir=args.data_dir, model_dir=Path(args.model_dir), log=log)
    if not args.no_render:
        Path(args.doc).write_text(render(load_log(log)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
