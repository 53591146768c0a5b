"""Experiments: a configuration in, stages run in order, one run directory out.

``aeclust run`` is the whole study in stages, each of which leaves its result
in the run directory before the next begins::

    pixels       k-means + silhouette/Dunn on the grayscale test pixels   pixels/
    autoencoder  train the autoencoder on the 50,000 training images      autoencoder/
    codes        encode the test set, k-means + silhouette/Dunn on codes  codes/
    report       figures, report.html and results.json                    figures/, report.html

Every file is written atomically (temporary name, fsync, rename), so an
interrupted run leaves only finished files, and ``resume=True`` starts again
from the first stage without a result (and the autoencoder from its last
finished epoch). A process killed outright may leave the temporary file it was
writing; the next run removes it.
"""

from __future__ import annotations

import numbers
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from . import __version__, _fault
from ._io import atomic_open, write_json
from .errors import AeclustError, InvalidInputError
from .kmeans import KMeans
from .metrics import cluster_quality

#: The numbers the study reports for k = 10 on the CIFAR-10 test set.
STUDY = {
    "pixels": {"silhouette": 0.054, "dunn": 0.0899},
    "codes": {"silhouette": 0.1040, "dunn": 0.02},
}


def versions() -> dict:
    """Versions of what produced a result, for results.json."""
    out = {"aeclust": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
           "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
    return out


class Timings(dict):
    """Seconds per named stage, filled by ``with timings("stage"): ...``."""

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = round(time.perf_counter() - start, 4)


def cluster_and_judge(X: np.ndarray, *, k: int, seed: int | None, init: str = "random",
                      n_init: int = 1, timings: Timings | None = None, progress: bool = False,
                      prefix: str = "") -> dict:
    """K-means on ``X``, then silhouette and Dunn in one fused pass.

    Returns a dictionary with the labels (``"labels"``, a numpy array) and the
    JSON-ready parts: ``"kmeans"`` and ``"metrics"``. Timings go under
    ``prefix + "kmeans"`` and ``prefix + "metrics"``.
    """
    timings = timings if timings is not None else Timings()
    with timings(prefix + "kmeans"):
        km = KMeans(n_clusters=k, init=init, n_init=n_init, random_state=seed).fit(X)
    with timings(prefix + "metrics"):
        quality = cluster_quality(X, km.labels_, progress=progress)
    return {
        "labels": km.labels_,
        "kmeans": {
            "n_clusters": k,
            "init": init,
            "n_init": n_init,
            "seed": seed,
            "n_iter": int(km.n_iter_),
            "converged": bool(km.converged_),
            "inertia": float(km.inertia_),
            "empty_cluster_reseeds": int(km.n_empty_clusters_),
            "cluster_sizes": np.bincount(km.labels_, minlength=k).tolist(),
        },
        "metrics": quality.to_dict(),
    }


def save_array(path: Path, array: np.ndarray) -> None:
    """Write an array as ``.npy``, atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, array)


def check_writable(out: Path) -> None:
    """Fail before any work when the output directory cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AeclustError(f"cannot write to output directory {out}: {exc.strerror or exc}; "
                           f"choose another with --out") from None


def check_k(k: int, n_samples: int | None = None) -> None:
    """Fail before any work when silhouette and Dunn cannot be computed for ``k`` clusters."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise InvalidInputError(f"k={k!r}: silhouette and Dunn's index need at least 2 clusters")
    if n_samples is not None and k >= n_samples:
        raise InvalidInputError(
            f"k={k} clusters for {n_samples} images: the silhouette needs fewer clusters than images; "
            f"lower --k or use more images")


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left in ``run_dir``.

    A process killed outright (SIGKILL, power loss) cannot remove the temporary
    file it was writing; it never has a final name, so nothing reads it, but it
    would stay forever. Returns the removed paths.
    """
    removed = []
    for tmp in run_dir.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


# -- part 1 alone: aeclust cluster ---------------------------------------------------------

def run_cluster(*, data_dir=None, out=None, k: int = 10, seed: int | None = 0, color: str = "gray",
                init: str = "random", n_init: int = 1, download: bool = True,
                progress: bool = True) -> dict:
    """Part 1 of the study: k-means on the preprocessed pixels of the CIFAR-10 test set.

    Writes ``results.json`` and ``labels.npy`` to ``out`` when it is given, and
    returns the results dictionary.
    """
    from .datasets import load_cifar10
    from .preprocess import preprocess

    timings = Timings()
    check_k(k)
    if out is not None:
        out = Path(out)
        check_writable(out)
    with timings("load"):
        data = load_cifar10(data_dir, split="test", download=download, progress=progress)
    check_k(k, len(data.test_images))
    with timings("preprocess"):
        X = preprocess(data.test_images, color)
    result = cluster_and_judge(X, k=k, seed=seed, init=init, n_init=n_init,
                               timings=timings, progress=progress)
    labels = result.pop("labels")
    results = {
        "job": "cluster",
        "config": {"dataset": "cifar10", "split": "test", "features": f"pixels-{color}",
                   "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                   "k": k, "seed": seed, "init": init, "n_init": n_init},
        **result,
        "study": STUDY["pixels"] if color == "gray" else None,
        "timings": dict(timings),
        "versions": versions(),
    }
    if out is not None:
        save_array(out / "labels.npy", labels)
        write_json(out / "results.json", results)
    return results


# -- the whole study: aeclust run ----------------------------------------------------------

@dataclass
class RunConfig:
    """Everything ``aeclust run`` needs; recorded in results.json.

    ``train_limit`` and ``test_limit`` take the first images of each split,
    for quick runs; ``None`` uses them all.
    """

    out: str = "runs/study"
    data_dir: str | None = None
    k: int = 10
    seed: int = 0
    color: str = "gray"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    kernel_size: int = 3
    activation: str = "relu"
    code_activation: str | None = None
    device: str = "auto"
    train_limit: int | None = None
    test_limit: int | None = None
    download: bool = True
    progress: bool = True
    resume: bool = False

    def autoencoder_config(self):
        from .autoencoder import AutoencoderConfig

        return AutoencoderConfig(color=self.color, kernel_size=self.kernel_size, activation=self.activation,
                                 code_activation=self.code_activation, epochs=self.epochs,
                                 batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
                                 seed=self.seed)

    def recorded(self) -> dict:
        """The fields that decide the result (not where it goes or how it is shown)."""
        skip = {"out", "data_dir", "download", "progress", "resume", "device"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


class _Stage:
    """A stage's record in ``<run>/stages/<name>.json``: its config and result."""

    def __init__(self, run_dir: Path, name: str, config: dict):
        self.path = run_dir / "stages" / f"{name}.json"
        self.name, self.config = name, config

    def load(self) -> dict | None:
        import json

        if not self.path.is_file():
            return None
        try:
            record = json.loads(self.path.read_text())
            if not isinstance(record, dict) or "result" not in record:
                raise ValueError("not a stage record")
        except ValueError as exc:
            raise AeclustError(
                f"{self.path} is damaged ({exc}); delete it to redo stage '{self.name}', "
                f"or run without --resume to start over") from None
        if record.get("config") != self.config:
            raise AeclustError(
                f"{self.path.parent.parent} holds a run with a different configuration "
                f"(stage '{self.name}'); choose another --out, or run without --resume to start over")
        return record["result"]

    def save(self, result: dict) -> None:
        write_json(self.path, {"config": self.config, "result": result})
        _fault.point(f"stage-{self.name}")


def run(config: RunConfig | None = None, **overrides) -> dict:
    """The whole study, one run directory: pixels, autoencoder, codes, report.

    Parameters
    ----------
    config : RunConfig, optional
        Defaults follow the study; keyword arguments override single fields.

    Returns
    -------
    dict
        The results, as written to ``<out>/results.json``.
    """
    config = RunConfig(**{**(asdict(config) if config else {}), **overrides})
    from . import autoencoder as ae
    from .datasets import load_cifar10
    from .preprocess import preprocess

    run_dir = Path(config.out)
    # Options that cannot work fail now, not after the first stages have run.
    check_k(config.k)
    ae_config = config.autoencoder_config()
    ae.resolve_device(config.device)
    check_writable(run_dir)
    remove_stale_temp_files(run_dir)
    if not config.resume:
        # A fresh run must not pick up an older run's stage records, nor leave an older
        # run's results.json standing beside its own unfinished stages.
        for old in [*(run_dir / "stages").glob("*.json"), run_dir / "results.json"]:
            old.unlink(missing_ok=True)
    started = time.perf_counter()
    timings = Timings()
    recorded = config.recorded()
    say = print if config.progress else (lambda *a, **k: None)

    with timings("load"):
        data = load_cifar10(config.data_dir, split="both", download=config.download, progress=config.progress)
    train_images = data.train_images[: config.train_limit]
    test_images, test_labels = data.test_images[: config.test_limit], data.test_labels[: config.test_limit]
    check_k(config.k, len(test_images))

    # 1. Pixels: the study's part 1.
    stage = _Stage(run_dir, "pixels", {k: recorded[k] for k in ("k", "seed", "test_limit")})
    pixels = stage.load() if config.resume else None
    if pixels is None:
        say("[1/4] k-means on grayscale pixels")
        X = preprocess(test_images, "gray")
        t = Timings()
        out = cluster_and_judge(X, k=config.k, seed=config.seed, timings=t, progress=config.progress)
        save_array(run_dir / "pixels" / "labels.npy", out.pop("labels"))
        pixels = {**out, "n_features": int(X.shape[1]), "timings": dict(t)}
        stage.save(pixels)
    timings.update({f"pixels_{k}": v for k, v in pixels["timings"].items()})

    # 2. The autoencoder, trained on the training split.
    ae_dir = run_dir / "autoencoder"
    stage = _Stage(run_dir, "autoencoder", {**ae_config.to_dict(), "train_limit": config.train_limit,
                                             "test_limit": config.test_limit})
    trained = stage.load() if config.resume else None
    if trained is None:
        say(f"[2/4] training the autoencoder on {len(train_images)} images, {ae_config.epochs} epochs")
        with timings("autoencoder_train"):
            result = ae.train_autoencoder(ae_config, train_images, test_images, ae_dir,
                                          device=config.device, resume=config.resume,
                                          progress=config.progress)
        history = result.history
        trained = {"history": history, "seconds": timings["autoencoder_train"],
                   "parameters": int(sum(p.numel() for p in result.model.parameters()))}
        stage.save(trained)
    timings["autoencoder_train"] = trained["seconds"]
    model = ae.load_checkpoint(ae_dir / "model.pt", config=ae_config).model

    # 3. Codes of the test set, clustered and judged the same way.
    stage = _Stage(run_dir, "codes", {**ae_config.to_dict(), "k": config.k, "test_limit": config.test_limit,
                                       "train_limit": config.train_limit})
    codes_result = stage.load() if config.resume else None
    if codes_result is None:
        say("[3/4] k-means on the autoencoder's codes")
        t = Timings()
        with t("encode"):
            codes = ae.encode(model, test_images)
        save_array(run_dir / "codes" / "codes.npy", codes)
        out = cluster_and_judge(codes, k=config.k, seed=config.seed, timings=t, progress=config.progress)
        save_array(run_dir / "codes" / "labels.npy", out.pop("labels"))
        codes_result = {**out, "n_features": int(codes.shape[1]), "timings": dict(t)}
        stage.save(codes_result)
    timings.update({f"codes_{k}": v for k, v in codes_result["timings"].items()})

    results = {
        "job": "run",
        "title": f"CIFAR-10 test set ({len(test_images)} images), k = {config.k}, seed {config.seed}",
        "config": {**recorded, "dataset": "cifar10", "n_train": int(len(train_images)),
                   "n_test": int(len(test_images)), "autoencoder": ae_config.to_dict()},
        "feature_sets": {
            "pixels": {"description": "grayscale pixels (BT.601), /255", "n_features": pixels["n_features"],
                       "kmeans": pixels["kmeans"], "metrics": pixels["metrics"], "study": STUDY["pixels"]},
            "codes": {"description": f"autoencoder codes ({ae_config.color} input, 3x8x8)",
                      "n_features": codes_result["n_features"], "kmeans": codes_result["kmeans"],
                      "metrics": codes_result["metrics"], "study": STUDY["codes"]},
        },
        "autoencoder": {"history": trained["history"], "parameters": trained["parameters"],
                        "train_seconds": trained["seconds"]},
        "timings": dict(timings),
        "versions": versions(),
    }

    # 4. Report: figures, report.html, results.json (last, so its presence means "finished").
    say("[4/4] writing the report")
    with timings("report"):
        from .report import build_run_report

        build_run_report(run_dir, results, model=model, test_images=test_images)
    results["timings"] = dict(timings)
    results["timings"]["total"] = round(time.perf_counter() - started, 4)
    write_json(run_dir / "results.json", results)
    return results
