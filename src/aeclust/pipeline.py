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
import platform
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import __version__, _fault
from ._io import remove_stale_temp_files, save_array, write_json
from .errors import AeclustError, InvalidInputError
from .features import (DEFAULT_FEATURE_SETS, FEATURE_SETS, STUDY_START, FeatureInputs, check_feature_sets,
                       feature_set)
from .metrics import cluster_quality
from .rundir import Claim, claimed, locked

#: The numbers the study reports for k = 10, by the feature set they belong to: part 1 on the pixels of
#: the CIFAR-10 test set, part 2 on the codes of the training set ("representations of the training set").
STUDY = {
    "pixels": {"silhouette": 0.054, "dunn": 0.0899},
    "codes-train": {"silhouette": 0.1040, "dunn": 0.02},
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
    Returns a dictionary with the labels (``"labels"``, a numpy array), the
    per-sample silhouettes of the fused pass (``"silhouette_samples"``, None on
    Dask or without metrics) and the JSON-ready parts: ``"kmeans"`` and ``"metrics"``. With ``one_cluster_ok``,
    rows that k-means puts into a single cluster (all rows equal: the code of a
    fully collapsed autoencoder) give metrics of None instead of an error.
    """
    from .kmeans import KMeans  # scikit-learn loads here, not with the command line

    timings = timings if timings is not None else Timings()
    samples = None
    if scheduler is not None:
        km, quality = cluster_on_scheduler(X, k, seed, scheduler, chunk_rows, init=init, n_init=n_init,
                                           timings=timings)
    else:
        with timings("kmeans"):
            km = KMeans(n_clusters=k, init=init, n_init=n_init, random_state=seed).fit(X)
        with timings("metrics"):
            if one_cluster_ok and len(np.unique(km.labels_)) < 2:
                quality = None
            else:
                quality, samples = cluster_quality(X, km.labels_, progress=progress, return_samples=True)
    labels = np.asarray(km.labels_)
    return {
        "labels": labels,
        "silhouette_samples": samples,
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


def cluster_on_scheduler(X, n_clusters: int, seed, scheduler: str, chunk_rows: int | None = None, *,
                         init: str = "random", n_init: int = 1, max_iter: int = 1000,
                         metrics: str = "exact", n_sampled: int = 10000,
                         metrics_chunk_rows: int | None = None, timings=None):
    """K-means and the metrics of ``X`` on a Dask scheduler: what ``aeclust cluster --scheduler`` runs.

    Parameters
    ----------
    X : numpy or dask array of shape (n_samples, n_features)
    n_clusters, seed, init, n_init, max_iter
        As for :class:`aeclust.KMeans` (``seed`` is its ``random_state``).
    scheduler : str
        ``"local:N"`` or ``"tcp://host:port"`` (see :func:`aeclust.distributed.connect`).
    chunk_rows : int, optional
        Rows per k-means chunk (default: the dask array's own chunks, or 16384 rows).
    metrics_chunk_rows : int, optional
        Rows per chunk of the pairwise metrics (default 2048: 16 MiB blocks).
    timings : callable, optional
        ``timings(name)`` returns a context manager; the k-means and metrics
        steps run inside ``timings("kmeans")`` and ``timings("metrics")``.
    metrics : {"exact", "sampled"}
        ``"exact"``: :func:`aeclust.distributed.cluster_quality` (O(n^2) work). ``"sampled"``:
        :func:`aeclust.distributed.sampled_silhouette` over ``n_sampled`` points, and no Dunn index.

    Returns
    -------
    (KMeans, ClusterQuality) for ``metrics="exact"``, or (KMeans, SilhouetteEstimate)
    for ``"sampled"``. The estimator's ``labels_`` is a numpy array here (the
    client is closed on return).
    """
    from . import distributed as dd  # Dask is imported only when a scheduler is asked for
    from .kmeans import KMeans

    if metrics not in ("exact", "sampled"):
        raise InvalidInputError(f"metrics must be 'exact' or 'sampled', got {metrics!r}")
    with dd.session(scheduler):
        X = dd.persist_on_cluster(X, chunk_rows)
        step = timings if timings is not None else (lambda name: nullcontext())
        km = KMeans(n_clusters, init=init, n_init=n_init, max_iter=max_iter, random_state=seed)
        with step("kmeans"):
            dd.fit_kmeans(km, X, chunk_rows=chunk_rows)
        labels = km.labels_
        with step("metrics"):
            if metrics == "exact":
                quality = dd.cluster_quality(X, labels, chunk_rows=metrics_chunk_rows)
            else:
                quality = dd.sampled_silhouette(X, labels, n_sampled=n_sampled, random_state=seed,
                                                chunk_rows=metrics_chunk_rows)
        km.labels_ = np.asarray(labels.compute())
    return km, quality


def check_k(k: int, n_samples: int | None = None) -> None:
    """Fail before any work when silhouette and Dunn cannot be computed for ``k`` clusters."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise InvalidInputError(f"k={k!r}: silhouette and Dunn's index need at least 2 clusters")
    if n_samples is not None and k >= n_samples:
        raise InvalidInputError(
            f"k={k} clusters for {n_samples} images: the silhouette needs fewer clusters than images; "
            f"lower k or use more images")


# -- part 1 alone: aeclust cluster ---------------------------------------------------------

def feature_matrix(data, name: str, *, model=None) -> np.ndarray:
    """The matrix of one feature set that trains nothing, for ``aeclust cluster`` and ``sweep``.

    Parameters
    ----------
    data : aeclust.datasets.ImageSet
        A set of images, or a ready-made feature matrix (clustered as it is, for any name but "codes").
    name : str
        One of :data:`CLUSTER_FEATURE_SETS`, or "codes" with ``model``.
    model : str or path-like, optional
        A trained autoencoder's ``model.pt``, for "codes".
    """
    check_feature_sets([name], rgb_images=True, allowed=[*CLUSTER_FEATURE_SETS, "codes"])
    if data.images is None:
        if name == "codes":
            raise InvalidInputError(f"{data.name} is a feature matrix; the autoencoder needs images")
        return data.features
    autoencoder = None
    if model is not None:
        from .autoencoder import load_checkpoint

        loaded = load_checkpoint(model).model
        autoencoder = lambda color: loaded  # noqa: E731 - the one model, whatever colour it reads
    ae_color = loaded.config.color if model is not None else "gray"
    check_feature_sets([name], rgb_images=data.images.ndim == 4, ae_color=ae_color)
    X, _ = FEATURE_SETS[name].build(FeatureInputs(images=data.images, autoencoder=autoencoder, ae_color=ae_color))
    return X


def run_cluster(*, data_dir=None, out=None, dataset: str = "cifar10", k: int = 10, seed: int | None = 0,
                feature_set: str = "pixels", init: str = "random", n_init: int = 1, download: bool = True,
                progress: bool = True, scheduler: str | None = None, chunk_rows: int | None = None,
                color: str | None = None, overwrite: bool = False) -> dict:
    """Part 1 of the study: k-means on the preprocessed pixels of the CIFAR-10 test set.

    ``dataset`` may also be "digits", a folder of images or a ``.npy``/``.npz``
    file (see :func:`aeclust.datasets.load_dataset`). ``feature_set`` is one of
    :data:`CLUSTER_FEATURE_SETS` (a feature matrix is clustered as it is).
    Writes ``results.json`` and ``labels.npy`` to ``out`` when it is given, and
    returns the results. ``color`` ("gray"/"rgb") is the deprecated spelling of
    ``feature_set`` "pixels"/"pixels-rgb".
    """
    from .datasets import load_dataset

    if color is not None:
        warnings.warn("run_cluster(color=...) is deprecated; use feature_set='pixels' or 'pixels-rgb'",
                      DeprecationWarning, stacklevel=2)
        feature_set = "pixels-rgb" if color == "rgb" else "pixels"
    timings = Timings()
    check_k(k)
    check_feature_sets([feature_set], rgb_images=True, allowed=CLUSTER_FEATURE_SETS)
    claim = Claim("cluster", {"dataset": str(dataset), "features": feature_set, "k": k, "seed": seed,
                              "init": init, "n_init": n_init}, "results.json", ("results.json", "labels.npy"))
    if out is not None:
        out = Path(out)
    with claimed(out, claim, overwrite=overwrite) if out is not None else nullcontext():
        with timings("load"):
            data = load_dataset(dataset, data_dir, download=download, progress=progress)
        check_k(k, len(data))
        with timings("preprocess"):
            X = feature_matrix(data, feature_set)
        if data.images is None:
            feature_set = "matrix"
        result = cluster_and_judge(X, k=k, seed=seed, init=init, n_init=n_init, timings=timings,
                                   progress=progress, scheduler=scheduler, chunk_rows=chunk_rows)
        labels = result.pop("labels")
        result.pop("silhouette_samples")
        if data.labels is not None:
            from .external import external_scores

            result["external"] = external_scores(data.labels, labels)
        is_study = data.name == "cifar10-test" and feature_set == "pixels"
        results = {
            "job": "cluster",
            "config": {"dataset": data.name, "features": feature_set,
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

#: The feature sets ``aeclust cluster`` and ``aeclust sweep`` build without training anything.
CLUSTER_FEATURE_SETS = ("pixels", "pixels-rgb", "pca")


@dataclass
class RunConfig:
    """Everything ``aeclust run`` needs; recorded in results.json.

    ``dataset`` is "cifar10" (train the autoencoder on the 50,000 training
    images, cluster the 10,000 test images), "digits", a folder of images or a
    ``.npy``/``.npz`` file (train on and cluster the same images).
    ``train_limit`` and ``test_limit`` take the first images of each split,
    for quick runs; ``None`` uses them all. ``weights`` is a local weights file
    for the one pretrained feature set (``timm:...``, ``open_clip:...``); without
    it the library downloads its weights.
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
    ae_engine: str = "auto"  # the code that trains the autoencoder (AutoencoderConfig.engine)
    device: str = "auto"
    train_limit: int | None = None
    test_limit: int | None = None
    download: bool = True
    progress: bool = True
    resume: bool = False
    overwrite: bool = False  # replace what another run left in ``out`` (see aeclust.rundir)
    weights: str | None = None
    map: bool = False  # a 2-D t-SNE map of each feature set in the report

    def autoencoder_config(self, color: str | None = None):
        from .autoencoder import AutoencoderConfig

        return AutoencoderConfig(color=color or self.color, kernel_size=self.kernel_size,
                                 activation=self.activation, code_activation=self.code_activation,
                                 epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                 optimizer=self.optimizer, seed=self.seed, init=self.ae_init,
                                 engine=self.ae_engine)

    def autoencoder_folder(self, color: str) -> str:
        """The run directory's sub-folder of the autoencoder for one input colour."""
        return "autoencoder" if color == self.color else f"autoencoder-{color}"

    def limits(self) -> dict:
        """Which images a run uses: part of every stage's configuration."""
        return {"dataset": self.dataset, "train_limit": self.train_limit, "test_limit": self.test_limit}

    def recorded(self) -> dict:
        """The fields that decide the result (not where it goes or how it is shown)."""
        skip = {"out", "data_dir", "download", "progress", "resume", "overwrite", "device"}
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
                f"or start the run over instead of resuming it") from None
        if record.get("config") != self.config:
            raise AeclustError(
                f"{self.path.parent.parent} holds a run with a different configuration "
                f"(stage '{self.name}'); choose another output directory, or start the run over "
                f"instead of resuming it")
        return record["result"]

    def save(self, result: dict) -> None:
        write_json(self.path, {"config": self.config, "result": result})
        _fault.point(f"stage-{self.name}")


def _load(config: RunConfig):
    """What a run clusters and what it learns from: two :class:`~aeclust.datasets.ImageSet`.

    For CIFAR-10, the test split and the training split; for a source that is
    one set, the same images (the first ``test_limit`` clustered, the first
    ``train_limit`` of those learned from); for a feature matrix, no training set.
    """
    from .datasets import load_dataset

    def load(split: str):
        return load_dataset(config.dataset, config.data_dir, split=split, download=config.download,
                            progress=config.progress)

    data = load("test").head(config.test_limit)
    if data.images is None:
        return data, None
    train = load("train") if data.split == "test" else data
    return data, train.head(config.train_limit)


def _check_feature_sets(config: RunConfig, data, train) -> tuple[str, ...]:
    check_k(config.k, len(data))
    names = check_feature_sets(config.feature_sets, rgb_images=data.is_rgb or data.images is None,
                               ae_color=config.color, weights=config.weights)
    if data.images is None:
        return ("features",)  # a ready-made matrix is clustered as it is
    if data.split != "test" and "codes" in names:
        # A source that is one set learns from the images it clusters: codes-train would repeat codes.
        names = tuple(n for n in names if n != "codes-train")
    if "codes-train" in names:
        check_k(config.k, len(train))
    return names


def _check_options(config: RunConfig) -> None:
    """Check every option that could fail later, before the run directory is touched."""
    from .autoencoder import resolve_device

    check_k(config.k)
    config.autoencoder_config()  # raises on invalid autoencoder options
    resolve_device(config.device)


def run_claim(config: RunConfig) -> Claim:
    """What ``aeclust run`` writes into its directory (:mod:`aeclust.rundir`): its configuration and
    the names of its files and folders."""
    folders = [*config.feature_sets, "features", "autoencoder", "autoencoder-gray", "autoencoder-rgb"]
    return Claim("run", config.recorded(), "results.json",
                 ("results.json", "stages", "report.html", "figures", *dict.fromkeys(folders)), resumable=True,
                 ignore=("map",),  # the report's t-SNE map may be added or left out when resuming
                 judged_on_resume=("weights",))  # each pretrained stage records the weights it used


def _start(config: RunConfig, run_dir: Path) -> None:
    """Clear what a fresh run must not pick up (with the run directory claimed)."""
    remove_stale_temp_files(run_dir)
    if not config.resume:
        # A fresh run must not pick up an older run's stage records, nor leave an older
        # run's results.json standing beside its own unfinished stages.
        for old in [*(run_dir / "stages").glob("*.json"), run_dir / "results.json"]:
            old.unlink(missing_ok=True)


def _codes_color(name: str, config: RunConfig) -> str | None:
    """The autoencoder input colour behind a codes feature set; None for the others."""
    if name in ("codes", "codes-train"):
        return config.color
    return "rgb" if name == "codes-rgb" else None


class _Run:
    """One run directory's work: its autoencoders (one per input colour, trained on first use or
    reused when resuming) and its feature-set stages.

    ``data`` is the :class:`~aeclust.datasets.ImageSet` that is clustered, ``train``
    the one learned from (None for a feature matrix). ``models`` (colour -> model)
    and ``autoencoders`` (folder -> what results.json says of it) fill in the
    order the feature sets ask for them.
    """

    def __init__(self, config: RunConfig, run_dir: Path, data, train, timings: Timings, say):
        self.config, self.run_dir, self.data, self.train = config, run_dir, data, train
        self.timings, self.say = timings, say
        self.models: dict[str, object] = {}
        self.autoencoders: dict[str, dict] = {}

    def autoencoder(self, color: str):
        """The trained autoencoder for input ``color``."""
        from .autoencoder import load_checkpoint

        if color in self.models:
            return self.models[color]
        ae_config = self.config.autoencoder_config(color)
        folder = self.config.autoencoder_folder(color)
        stage = _Stage(self.run_dir, folder, {**ae_config.to_dict(), **self.config.limits()}, self.config.resume)
        trained = stage.load()
        if trained is None:
            trained = self._train_autoencoder(ae_config, folder)
            stage.save(trained)
            self.say(f"  {collapse_line(trained)}")
        self.timings[f"{folder}_train"] = trained["seconds"]
        self.autoencoders[folder] = trained
        self.models[color] = load_checkpoint(self.run_dir / folder / "model.pt", config=ae_config).model
        return self.models[color]

    def _train_autoencoder(self, ae_config, folder: str) -> dict:
        from .autoencoder import assess_collapse, train_autoencoder

        train = self.train.images
        self.say(f"training the autoencoder ({ae_config.color} input) on {len(train)} images, "
                 f"{ae_config.epochs} epochs")
        held_out = self.data.images if self.data.split == "test" else None  # the test loss, where there is one
        t0 = time.perf_counter()
        result = train_autoencoder(ae_config, train, held_out, self.run_dir / folder, device=self.config.device,
                                   resume=self.config.resume, progress=self.config.progress)
        seconds = round(time.perf_counter() - t0, 4)
        # Judged on the images whose codes are clustered, so the verdict speaks of those codes.
        collapse = assess_collapse(result.model, self.data.images)
        return {"history": result.history, "seconds": seconds,
                "parameters": int(sum(p.numel() for p in result.model.parameters())),
                "config": ae_config.to_dict(), "folder": folder, "collapse": collapse}

    def _features(self, name: str) -> tuple[np.ndarray, str]:
        config = self.config
        if name == "features":
            return self.data.features, "the given feature matrix"
        if feature_set(name).learned and _codes_color(name, config) is None:
            self.say(f"learning {name} features from {len(self.train)} images")
        clustered = self.clustered(name)
        inputs = FeatureInputs(images=clustered.images, train_images=self.train.images, k=config.k,
                               seed=config.seed, autoencoder=self.autoencoder, ae_color=config.color,
                               out_dir=self.run_dir / name / "model", device=config.device,
                               progress=config.progress, weights=config.weights)
        X, description = feature_set(name).build(inputs)
        if _codes_color(name, config) and self.data.split == "test":  # say which images: the two readings
            which = "training images (the study's reading)" if clustered is self.train else "test images"
            description += f", {len(clustered):,} {which}"
        return X, description

    def clustered(self, name: str):
        """The :class:`~aeclust.datasets.ImageSet` that feature set ``name`` clusters: the training images for
        a set of split "train" (``codes-train``), else the run's images."""
        if name != "features" and feature_set(name).split == "train":
            return self.train
        return self.data

    def feature_set(self, name: str, counter: str) -> dict:
        """One feature set: build it, cluster it, judge it; or its finished record when resuming."""
        config, run_dir = self.config, self.run_dir
        color = _codes_color(name, config)
        stage_config = {"k": config.k, "seed": config.seed, **config.limits()}
        if color is not None:
            stage_config["autoencoder"] = config.autoencoder_config(color).to_dict()
        if config.weights is not None and name not in FEATURE_SETS:  # other weights, another result
            stage_config["weights"] = config.weights
        init, n_init = feature_set(name).kmeans if name != "features" else STUDY_START
        if (init, n_init) != STUDY_START:  # recorded only where it differs, so older runs still resume
            stage_config.update(init=init, n_init=n_init)
        stage = _Stage(run_dir, name, stage_config, config.resume)
        result = stage.load()
        if result is not None:
            if color is not None:
                self.autoencoder(color)  # the report shows it
            return result
        self.say(f"{counter} k-means on {name}")
        t = Timings()
        with t("features"):
            X, description = self._features(name)
        collapse = None
        if color is not None:
            save_array(run_dir / name / "codes.npy", X)
            collapse = self.autoencoders[config.autoencoder_folder(color)].get("collapse")
        # A collapsed autoencoder's codes give numbers about the collapse, not the images.
        collapsed = bool(collapse and collapse["collapsed"])
        out = cluster_and_judge(X, k=config.k, seed=config.seed, init=init, n_init=n_init, timings=t,
                                progress=config.progress, one_cluster_ok=collapsed)
        labels = out.pop("labels")
        save_array(run_dir / name / "labels.npy", labels)
        samples = out.pop("silhouette_samples")
        if samples is not None:  # None: codes that fell into one cluster
            # For the report's silhouette plot and its best and worst members.
            save_array(run_dir / name / "silhouette.npy", samples.astype(np.float32))
        if config.map:  # a t-SNE of 2,000 points: about 5 s a feature set on 2 cores
            with t("map"):
                from .report import save_feature_map

                save_feature_map(run_dir / name, X)
        clustered = self.clustered(name)
        if clustered.labels is not None:
            from .external import external_scores

            out["external"] = external_scores(clustered.labels, labels)
        study = STUDY.get(name) if self.data.name == "cifar10-test" else None
        result = {"description": description, "split": "train" if clustered is self.train else "test",
                  "n_samples": len(clustered), "n_features": int(X.shape[1]), **out, "study": study,
                  "timings": dict(t), "meaningful": not collapsed,
                  "warnings": _feature_warnings(name, X, config, collapse)}
        for warning in result["warnings"]:
            self.say(f"{'WARNING' if collapsed else 'warning'}: {warning}")
        stage.save(result)
        return result

    def results(self, feature_sets: dict) -> dict:
        """results.json's content, but for the report's time and the total."""
        config, n = self.config, len(self.data)
        title = (f"CIFAR-10 test set ({n} images)" if self.data.name == "cifar10-test"
                 else f"{self.data.name} ({n} samples)") + f", k = {config.k}, seed {config.seed}"
        return {
            "job": "run",
            "title": title,
            "config": {**config.recorded(), "n_train": None if self.train is None else len(self.train),
                       "n_test": n, "class_names": self.data.class_names,
                       "autoencoder": config.autoencoder_config().to_dict()},
            "feature_sets": feature_sets,
            "autoencoders": self.autoencoders,
            "timings": dict(self.timings),
            "versions": versions(),
        }


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
    from .report import build_run_report

    config = RunConfig(**{**(asdict(config) if config else {}), **overrides})
    _check_options(config)  # options that cannot work fail now, not after the first stages
    with claimed(config.out, run_claim(config), resume=config.resume, overwrite=config.overwrite) as run_dir:
        _start(config, run_dir)
        started, timings = time.perf_counter(), Timings()
        say = print if config.progress else _silent
        with timings("load"):
            data, train = _load(config)
        names = _check_feature_sets(config, data, train)
        work = _Run(config, run_dir, data, train, timings, say)
        feature_sets = {}
        for i, name in enumerate(names, 1):
            feature_sets[name] = result = work.feature_set(name, f"[{i}/{len(names)}]")
            timings.update({f"{name}_{k}": v for k, v in result["timings"].items()})
        results = work.results(feature_sets)
        # Report last, then results.json: its presence means the run finished.
        say("writing the report")
        with timings("report"):
            build_run_report(run_dir, results, models=work.models, images=data.images, labels=data.labels,
                             main_color=config.color, train=train)
        results["timings"] = {**timings, "total": round(time.perf_counter() - started, 4)}
        write_json(run_dir / "results.json", results)
    return results


def _silent(*args, **kwargs) -> None:
    pass


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
        hint = ("try Keras' initialisation (ae_init 'keras') or another seed" if config.ae_init == "torch"
                else "try another seed")
        return [f"the autoencoder ({color} input, seed {config.seed}) collapsed: {how}. "
                f"The silhouette and Dunn of its codes are not meaningful; {hint}"]
    if constant:
        what = "code features" if name.startswith("codes") else f"features of {name}"
        return [f"{constant} of the {X.shape[1]} {what} are constant"]
    return []


def rebuild_report(run_dir, *, data_dir=None, download: bool = True, progress: bool = False) -> Path:
    """Redraw the figures and ``report.html`` of a finished run from its directory."""
    import json

    from .autoencoder import load_checkpoint
    from .report import build_run_report

    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise AeclustError(f"{run_dir} holds no results.json: it is not the directory of a finished run")
    with locked(run_dir, "report"):  # not while a run writes it
        try:
            results = json.loads(results_path.read_text())
        except ValueError as exc:
            raise AeclustError(f"{results_path} is not valid JSON ({exc}); rerun the 'aeclust run' that "
                               f"wrote it, resuming it, to write it again") from None
        recorded = {k: v for k, v in results["config"].items() if k in {f.name for f in fields(RunConfig)}}
        config = RunConfig(**{**recorded,
                              "feature_sets": tuple(recorded.get("feature_sets", DEFAULT_FEATURE_SETS)),
                              "out": str(run_dir), "data_dir": data_dir, "download": download,
                              "progress": progress})
        data, train = _load(config)
        models = {t["config"]["color"]: load_checkpoint(run_dir / t["folder"] / "model.pt").model
                  for t in results.get("autoencoders", {}).values()}
        return build_run_report(run_dir, results, models=models, images=data.images, labels=data.labels,
                                main_color=config.color, train=train)
