"""Experiments: a configuration in, stages run in order, one run directory out.

``aeclust run`` is the whole study in stages, each of which leaves its result
in the run directory before the next begins::

    pixels       k-means + silhouette/Dunn on the grayscale test pixels   pixels/
    autoencoder  train the autoencoder on the 50,000 training images,     autoencoder/
                 then judge whether it collapsed (on the test images)
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
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import __version__, _fault
from ._io import atomic_open, write_json
from ._pairwise import blas_single_threaded
from .errors import AeclustError, InvalidInputError
from .kmeans import KMeans
from .metrics import cluster_quality

#: The numbers the study reports for k = 10 on the CIFAR-10 test set.
STUDY = {
    "pixels": {"silhouette": 0.054, "dunn": 0.0899},
    "codes": {"silhouette": 0.1040, "dunn": 0.02},
}


def versions() -> dict:
    """Versions of what produced a result, for results.json, and the thread counts it ran with
    (k-means and the metrics give the same bits on any count; torch training is repeatable
    for the same count)."""
    from ._pairwise import cpu_count

    out = {"aeclust": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
           "platform": platform.platform(), "threads": cpu_count()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
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
                      scheduler: str | None = None, chunk_rows: int | None = None,
                      one_cluster_ok: bool = False) -> dict:
    """K-means on ``X``, then silhouette and Dunn in one fused pass.

    With ``scheduler`` ("local:N" or "tcp://host:port") both run on Dask.
    Returns a dictionary with the labels (``"labels"``, a numpy array) and the
    JSON-ready parts: ``"kmeans"`` and ``"metrics"``. With ``one_cluster_ok``,
    rows that k-means puts into a single cluster (all rows equal: the code of a
    fully collapsed autoencoder) give metrics of None instead of an error.
    """
    timings = timings if timings is not None else Timings()
    if scheduler is not None:
        from .distributed import cluster_on_scheduler

        km, quality = cluster_on_scheduler(X, k, seed, scheduler, chunk_rows, init=init, n_init=n_init,
                                           timings=timings)
    else:
        with timings("kmeans"):
            km = KMeans(n_clusters=k, init=init, n_init=n_init, random_state=seed).fit(X)
        with timings("metrics"):
            if one_cluster_ok and len(np.unique(km.labels_)) < 2:
                quality = None
            else:
                quality = cluster_quality(X, km.labels_, progress=progress)
    labels = np.asarray(km.labels_)
    return {
        "labels": labels,
        "kmeans": {
            "n_clusters": k,
            "init": init,
            "n_init": n_init,
            "seed": seed,
            "n_iter": int(km.n_iter_),
            "converged": bool(km.converged_),
            "inertia": float(km.inertia_),
            "empty_cluster_reseeds": int(km.n_empty_clusters_),
            "cluster_sizes": np.bincount(labels, minlength=k).tolist(),
        },
        "metrics": quality.to_dict() if quality is not None else {
            "silhouette": None, "dunn": None, "min_intercluster_distance": None, "max_cluster_diameter": None,
            "n_samples": int(len(labels)), "n_clusters": 1},
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

def run_cluster(*, data_dir=None, out=None, dataset: str = "cifar10", k: int = 10, seed: int | None = 0,
                color: str = "gray", init: str = "random", n_init: int = 1, download: bool = True,
                progress: bool = True, scheduler: str | None = None, chunk_rows: int | None = None) -> dict:
    """Part 1 of the study: k-means on the preprocessed pixels of the CIFAR-10 test set.

    ``dataset`` may also be "digits", a folder of images or a ``.npy``/``.npz``
    file (see :func:`aeclust.inputs.load_dataset`). Writes ``results.json``
    and ``labels.npy`` to ``out`` when it is given, and returns the results.
    """
    from .inputs import load_dataset

    timings = Timings()
    check_k(k)
    if out is not None:
        out = Path(out)
        check_writable(out)
    with timings("load"):
        data = load_dataset(dataset, data_dir, download=download, progress=progress)
    check_k(k, len(data))
    with timings("preprocess"):
        if color == "rgb" and data.images is not None and data.images.ndim != 4:
            raise InvalidInputError(f"--color rgb needs RGB images, but {data.name} is grayscale")
        X = data.to_matrix(color)
    result = cluster_and_judge(X, k=k, seed=seed, init=init, n_init=n_init, timings=timings,
                               progress=progress, scheduler=scheduler, chunk_rows=chunk_rows)
    labels = result.pop("labels")
    if data.labels is not None:
        from .external import external_scores

        result["external"] = external_scores(data.labels, labels)
    is_study = data.name == "cifar10-test" and color == "gray"
    results = {
        "job": "cluster",
        "config": {"dataset": data.name, "features": f"pixels-{color}" if data.images is not None else "matrix",
                   "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                   "k": k, "seed": seed, "init": init, "n_init": n_init, "scheduler": scheduler},
        **result,
        "study": STUDY["pixels"] if is_study else None,
        "timings": dict(timings),
        "versions": versions(),
    }
    if out is not None:
        save_array(out / "labels.npy", labels)
        write_json(out / "results.json", results)
    return results


# -- the whole study: aeclust run ----------------------------------------------------------

#: Feature sets ``aeclust run`` can compare; the study is ("pixels", "codes").
FEATURE_SETS = {
    "pixels": "grayscale pixels (BT.601), /255",
    "pixels-rgb": "RGB pixels, /255",
    "pca": "PCA of grayscale pixels",
    "codes": "autoencoder codes",
    "codes-rgb": "autoencoder codes (RGB input)",
    # Learned features beside the study's autoencoder (aeclust.features), from RGB images.
    "simclr": "contrastive features (SimCLR with a cluster head)",
    "kmeans-patches": "k-means patch features (Coates & Ng)",
}
LEARNED = ("simclr", "kmeans-patches")
DEFAULT_FEATURE_SETS = ("pixels", "codes")
PCA_COMPONENTS = 50


@dataclass
class RunConfig:
    """Everything ``aeclust run`` needs; recorded in results.json.

    ``dataset`` is "cifar10" (train the autoencoder on the 50,000 training
    images, cluster the 10,000 test images), "digits", a folder of images or a
    ``.npy``/``.npz`` file (train on and cluster the same images).
    ``train_limit`` and ``test_limit`` take the first images of each split,
    for quick runs; ``None`` uses them all.
    """

    out: str = "runs/study"
    data_dir: str | None = None
    dataset: str = "cifar10"
    feature_sets: tuple[str, ...] = DEFAULT_FEATURE_SETS
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
    ae_init: str = "keras"  # the autoencoder's initialisation (AutoencoderConfig.init); not k-means'
    device: str = "auto"
    train_limit: int | None = None
    test_limit: int | None = None
    download: bool = True
    progress: bool = True
    resume: bool = False

    def autoencoder_config(self, color: str | None = None):
        from .autoencoder import AutoencoderConfig

        return AutoencoderConfig(color=color or self.color, kernel_size=self.kernel_size,
                                 activation=self.activation, code_activation=self.code_activation,
                                 epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                 optimizer=self.optimizer, seed=self.seed, init=self.ae_init)

    def autoencoder_folder(self, color: str) -> str:
        """The run directory's sub-folder of the autoencoder for one input colour."""
        return "autoencoder" if color == self.color else f"autoencoder-{color}"

    def recorded(self) -> dict:
        """The fields that decide the result (not where it goes or how it is shown)."""
        skip = {"out", "data_dir", "download", "progress", "resume", "device"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out["feature_sets"] = list(self.feature_sets)
        return out


class _Stage:
    """A stage's record in ``<run>/stages/<name>.json``: its config and result."""

    def __init__(self, run_dir: Path, name: str, config: dict, resume: bool):
        self.path = run_dir / "stages" / f"{name}.json"
        self.name, self.config, self.resume = name, config, resume

    def load(self) -> dict | None:
        """The finished result when resuming, else None."""
        import json

        if not self.resume or not self.path.is_file():
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


@dataclass
class _Data:
    """What a run trains on and what it clusters."""

    name: str
    train_images: np.ndarray | None
    held_out: np.ndarray | None  # images the autoencoder's test loss is measured on
    images: np.ndarray | None  # the images that are clustered (None for a feature matrix)
    features: np.ndarray | None
    labels: np.ndarray | None
    class_names: tuple[str, ...] | None

    @property
    def is_rgb(self) -> bool:
        return self.images is not None and self.images.ndim == 4


def _load(config: RunConfig) -> _Data:
    if config.dataset.strip().lower() in ("cifar10", "cifar-10"):
        from .datasets import load_cifar10

        d = load_cifar10(config.data_dir, split="both", download=config.download, progress=config.progress)
        test = d.test_images[: config.test_limit]
        return _Data("cifar10", d.train_images[: config.train_limit], test, test, None,
                     d.test_labels[: config.test_limit], d.class_names)
    from .inputs import load_dataset

    s = load_dataset(config.dataset, config.data_dir, download=config.download, progress=config.progress)
    if s.images is None:
        return _Data(s.name, None, None, None, s.features[: config.test_limit],
                     None if s.labels is None else s.labels[: config.test_limit], s.class_names)
    images = s.images[: config.test_limit]
    return _Data(s.name, images[: config.train_limit], None, images, None,
                 None if s.labels is None else s.labels[: config.test_limit], s.class_names)


def _check_feature_sets(config: RunConfig, data: _Data) -> tuple[str, ...]:
    wanted = tuple(config.feature_sets)
    unknown = [f for f in wanted if f not in FEATURE_SETS]
    if unknown:
        raise InvalidInputError(f"unknown feature set(s) {', '.join(unknown)}; choose from "
                                f"{', '.join(FEATURE_SETS)} or 'all'")
    if data.images is None:
        return ("features",)  # a ready-made matrix is clustered as it is
    if not data.is_rgb:
        rgb = [f for f in wanted if f.endswith("-rgb") or f in LEARNED] + (["codes"] if config.color == "rgb" and "codes" in wanted else [])
        if rgb:
            raise InvalidInputError(f"feature set(s) {', '.join(rgb)} need RGB images, but {data.name} is "
                                    f"grayscale; drop them or use --color gray")
    return wanted


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

    run_dir = Path(config.out)
    # Options that cannot work fail now, not after the first stages have run.
    check_k(config.k)
    config.autoencoder_config()  # raises on invalid autoencoder options
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
        data = _load(config)
    check_k(config.k, len(data.images) if data.images is not None else len(data.features))
    names = _check_feature_sets(config, data)
    limits = {"dataset": config.dataset, "train_limit": config.train_limit, "test_limit": config.test_limit}

    models: dict[str, object] = {}
    autoencoders: dict[str, dict] = {}

    def autoencoder(color: str):
        """Train (or, when resuming, reuse) the autoencoder for one input colour."""
        if color in models:
            return models[color]
        ae_config = config.autoencoder_config(color)
        folder = config.autoencoder_folder(color)
        stage = _Stage(run_dir, folder, {**ae_config.to_dict(), **limits}, config.resume)
        trained = stage.load()
        if trained is None:
            say(f"training the autoencoder ({color} input) on {len(data.train_images)} images, "
                f"{ae_config.epochs} epochs")
            t0 = time.perf_counter()
            result = ae.train_autoencoder(ae_config, data.train_images, data.held_out, run_dir / folder,
                                          device=config.device, resume=config.resume,
                                          progress=config.progress)
            seconds = round(time.perf_counter() - t0, 4)
            # Judged on the images whose codes are clustered, so the verdict speaks of those codes.
            collapse = ae.assess_collapse(result.model, data.images)
            trained = {"history": result.history, "seconds": seconds,
                       "parameters": int(sum(p.numel() for p in result.model.parameters())),
                       "config": ae_config.to_dict(), "folder": folder, "collapse": collapse}
            stage.save(trained)
            say(f"  {collapse_line(trained)}")
        timings[f"{folder}_train"] = trained["seconds"]
        autoencoders[folder] = trained
        models[color] = ae.load_checkpoint(run_dir / folder / "model.pt", config=ae_config).model
        return models[color]

    def features(name: str) -> tuple[np.ndarray, str]:
        from .preprocess import preprocess

        if name == "features":
            return data.features, "the given feature matrix"
        if name == "pixels":
            return preprocess(data.images, "gray"), FEATURE_SETS[name]
        if name == "pixels-rgb":
            return preprocess(data.images, "rgb"), FEATURE_SETS[name]
        if name == "pca":
            X = preprocess(data.images, "gray")
            n = min(PCA_COMPONENTS, *X.shape)
            return pca(X, n), f"PCA of grayscale pixels ({n} components)"
        if name in LEARNED:
            from .features import fit_features

            say(f"learning {name} features from {len(data.train_images)} images")
            # simclr's cluster head learns as many clusters as k-means will look for (check_k made k >= 2).
            feature_config = {"n_clusters": config.k} if name == "simclr" else {}
            extractor = fit_features(name, data.train_images, seed=config.seed, device=config.device,
                                     out_dir=run_dir / name / "model", progress=config.progress,
                                     **feature_config)
            X = extractor.transform(data.images)
            return X, f"{FEATURE_SETS[name]}, {X.shape[1]}-d"
        from .autoencoder import encode

        color = "rgb" if name == "codes-rgb" else config.color
        model = autoencoder(color)
        shape = "x".join(str(s) for s in (model.config.channels[1], *(d // 4 for d in data.images.shape[1:3])))
        return encode(model, data.images), f"autoencoder codes ({color} input, {shape})"

    feature_sets = {}
    for i, name in enumerate(names, 1):
        stage_config = {"k": config.k, "seed": config.seed, **limits}
        if name.startswith("codes"):
            stage_config["autoencoder"] = config.autoencoder_config(
                "rgb" if name == "codes-rgb" else config.color).to_dict()
        stage = _Stage(run_dir, name, stage_config, config.resume)
        result = stage.load()
        if result is None:
            say(f"[{i}/{len(names)}] k-means on {name}")
            t = Timings()
            with t("features"):
                X, description = features(name)
            collapse = None
            if name.startswith("codes"):
                save_array(run_dir / name / "codes.npy", X)
                color = "rgb" if name == "codes-rgb" else config.color
                collapse = autoencoders[config.autoencoder_folder(color)].get("collapse")
            out = cluster_and_judge(X, k=config.k, seed=config.seed, timings=t, progress=config.progress,
                                    one_cluster_ok=bool(collapse and collapse["collapsed"]))
            labels = out.pop("labels")
            save_array(run_dir / name / "labels.npy", labels)
            if data.labels is not None:
                from .external import external_scores

                out["external"] = external_scores(data.labels, labels)
            study = STUDY.get(name) if data.name == "cifar10" and name in ("pixels", "codes") else None
            result = {"description": description, "n_features": int(X.shape[1]), **out,
                      "study": study, "timings": dict(t),
                      # A collapsed autoencoder's codes give numbers about the collapse, not the images.
                      "meaningful": not (collapse and collapse["collapsed"]),
                      "warnings": _feature_warnings(name, X, config, collapse)}
            for warning in result["warnings"]:
                say(f"{'WARNING' if not result['meaningful'] else 'warning'}: {warning}")
            stage.save(result)
        elif name.startswith("codes"):
            autoencoder("rgb" if name == "codes-rgb" else config.color)  # the report shows it
        feature_sets[name] = result
        timings.update({f"{name}_{k}": v for k, v in result["timings"].items()})

    n_clustered = len(data.images) if data.images is not None else len(data.features)
    title = (f"CIFAR-10 test set ({n_clustered} images)" if data.name == "cifar10"
             else f"{data.name} ({n_clustered} samples)") + f", k = {config.k}, seed {config.seed}"
    results = {
        "job": "run",
        "title": title,
        "config": {**recorded, "n_train": None if data.train_images is None else int(len(data.train_images)),
                   "n_test": int(n_clustered), "class_names": data.class_names,
                   "autoencoder": config.autoencoder_config().to_dict()},
        "feature_sets": feature_sets,
        "autoencoders": autoencoders,
        "timings": dict(timings),
        "versions": versions(),
    }

    # Report last, then results.json: its presence means the run finished.
    say("writing the report")
    with timings("report"):
        from .report import build_run_report

        build_run_report(run_dir, results, models=models, images=data.images, labels=data.labels,
                         main_color=config.color)
    results["timings"] = dict(timings)
    results["timings"]["total"] = round(time.perf_counter() - started, 4)
    write_json(run_dir / "results.json", results)
    return results


def collapse_line(trained: dict) -> str:
    """One line on an autoencoder's code: constant features, reconstruction, verdict.

    Parameters
    ----------
    trained : dict
        A record of ``results["autoencoders"]``; one written before collapse
        was measured has no ``"collapse"`` entry and gets a line that says so.

    Returns
    -------
    str
        For example ``"code (gray): 12 of 192 features constant, reconstruction MSE 0.13 x
        the mean image's; not collapsed"``.
    """
    color = trained.get("config", {}).get("color", "?")
    c = trained.get("collapse")
    if not c:
        return f"code ({color}): collapse not measured (a run from an older aeclust)"
    ratio = "—" if c["mse_ratio"] is None else f"{c['mse_ratio']:.2f}"
    verdict = "COLLAPSED" if c["collapsed"] else "not collapsed"
    return (f"code ({color}): {c['constant_code_features']} of {c['n_code_features']} features constant, "
            f"reconstruction MSE {ratio} x the mean image's; {verdict}")


def _feature_warnings(name: str, X: np.ndarray, config: RunConfig, collapse: dict | None = None) -> list[str]:
    """What a person should know before trusting the numbers of one feature set.

    ``collapse`` is the verdict of :func:`aeclust.autoencoder.assess_collapse`
    on the autoencoder whose codes ``X`` are (None for other feature sets).
    """
    constant = int(np.count_nonzero(X.max(axis=0) == X.min(axis=0)))
    if collapse and collapse["collapsed"]:
        # Seen with the study's ReLU autoencoder under PyTorch's initialisation on some seeds:
        # the code units die early in training, the decoder learns the mean image, and k-means
        # on the near-constant codes splits off a few outliers.
        how = (f"{collapse['constant_code_features']} of its {collapse['n_code_features']} code features are "
               f"constant and its reconstruction MSE is {collapse['mse_ratio']:.2f} x the mean image's (its decoder "
               f"hardly uses the input)")
        color = "rgb" if name == "codes-rgb" else config.color
        hint = "try --ae-init keras or another --seed" if config.ae_init == "torch" else "try another --seed"
        return [f"the autoencoder ({color} input, seed {config.seed}) collapsed: {how}. "
                f"The silhouette and Dunn of its codes are not meaningful; {hint}"]
    if constant:
        what = "code features" if name.startswith("codes") else f"features of {name}"
        return [f"{constant} of the {X.shape[1]} {what} are constant"]
    return []


@blas_single_threaded  # the same bits for any number of CPUs (see _pairwise)
def pca(X: np.ndarray, n_components: int) -> np.ndarray:
    """Project the centred rows of ``X`` on their first principal axes.

    The axes are the leading eigenvectors of the d x d scatter matrix, in
    float64: the same subspace as an SVD of ``X``, cheaper when n >> d.
    """
    X64 = X.astype(np.float64)
    X64 -= X64.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(X64.T @ X64)
    axes = eigvecs[:, ::-1][:, :n_components]
    return (X64 @ axes).astype(np.float32)


def rebuild_report(run_dir, *, data_dir=None, download: bool = True, progress: bool = False) -> Path:
    """Redraw the figures and ``report.html`` of a finished run from its directory."""
    import json

    from .autoencoder import load_checkpoint
    from .report import build_run_report

    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise AeclustError(f"{run_dir} holds no results.json; run 'aeclust run --out {run_dir}' first")
    try:
        results = json.loads(results_path.read_text())
    except ValueError as exc:
        raise AeclustError(f"{results_path} is not valid JSON ({exc}); rerun the 'aeclust run' that "
                           f"wrote it, with --resume, to write it again") from None
    recorded = {k: v for k, v in results["config"].items() if k in {f.name for f in fields(RunConfig)}}
    config = RunConfig(**{**recorded, "feature_sets": tuple(recorded.get("feature_sets", DEFAULT_FEATURE_SETS)),
                          "out": str(run_dir), "data_dir": data_dir, "download": download, "progress": progress})
    data = _load(config)
    models = {t["config"]["color"]: load_checkpoint(run_dir / t["folder"] / "model.pt").model
              for t in results.get("autoencoders", {}).values()}
    return build_run_report(run_dir, results, models=models, images=data.images, labels=data.labels,
                            main_color=config.color)
