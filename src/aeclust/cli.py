"""The ``aeclust`` command line.

Errors caused by input or environment print one line on stderr and exit with
code 2 (``--debug`` shows the traceback); an interrupt exits with 130. Every
numeric option is checked against its range while the arguments are read,
before any data is loaded.
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import traceback
from pathlib import Path

from . import __version__
from ._validation import SEED_MAX
from .errors import AeclustError, InvalidInputError
from .features import ALL_FEATURE_SETS, DEFAULT_FEATURE_SETS, FEATURE_SETS, STUDY_START, feature_set_names
from .pipeline import CLUSTER_FEATURE_SETS

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

#: Limits that stop a typing slip from running for days or filling the memory.
K_MAX = 10_000  # clusters; the metrics need fewer clusters than samples
N_INIT_MAX = 1_000  # k-means restarts
EPOCHS_MAX = 10_000
BATCH_SIZE_MAX = 65_536
KERNEL_SIZE_MAX = 31  # the images are 32 pixels wide
ROWS_MAX = 1_000_000_000  # image counts and rows per chunk
WORKERS_MAX = 256  # worker processes of --scheduler local:N
LR_MAX = 10.0

_WHOLE = re.compile(r"[+-]?[0-9]+")


def _cut(text: str) -> str:
    """``text`` for an error message, cut short when it is very long."""
    return text if len(text) <= 40 else text[:37] + "..."


def _shown(text: str) -> str:
    """``text`` quoted for an error message, cut short when it is very long."""
    return repr(_cut(text))


def _int_in(lo: int, hi: int):
    """An argparse ``type`` that accepts the whole numbers from ``lo`` to ``hi``.

    Parameters
    ----------
    lo, hi : int
        The smallest and the largest value accepted, both included.

    Returns
    -------
    callable
        ``parse(text) -> int``; it raises :class:`argparse.ArgumentTypeError`
        with a one-line message naming the value and the bound it breaks, which
        argparse prefixes with the option's name.
    """

    def parse(text: str) -> int:
        stripped = text.strip()
        if not _WHOLE.fullmatch(stripped):
            raise argparse.ArgumentTypeError(f"must be a whole number from {lo} to {hi}, got {_shown(text)}")
        # int() refuses text of more than 4300 digits; anything longer than the
        # bounds is out of range, so it is judged by its sign alone.
        if len(stripped.lstrip("+-").lstrip("0")) > len(str(max(abs(lo), abs(hi)))) + 1:
            shown, value = _cut(stripped), (-math.inf if stripped.startswith("-") else math.inf)
        else:
            value = int(stripped)
            shown = str(value)
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {shown}")
        if value > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {shown}")
        return value

    parse.__name__ = f"whole number from {lo} to {hi}"
    return parse


def _float_in(lo: float, hi: float, *, lo_included: bool = True):
    """An argparse ``type`` that accepts the finite numbers from ``lo`` to ``hi``.

    Parameters
    ----------
    lo, hi : float
        The bounds; ``hi`` is included.
    lo_included : bool, default=True
        Whether ``lo`` itself is accepted (False for a learning rate, which
        must be above 0).

    Returns
    -------
    callable
        ``parse(text) -> float``, raising :class:`argparse.ArgumentTypeError`
        with a one-line message for text that is not a number, NaN, an
        infinity, or a value out of range.
    """
    low = f"at least {lo:g}" if lo_included else f"greater than {lo:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a number {low} and at most {hi:g}, got {_shown(text)}")
        if value < lo or (value == lo and not lo_included):
            raise argparse.ArgumentTypeError(f"must be {low}, got {text.strip()}")
        if value > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi:g}, got {text.strip()}")
        return value

    parse.__name__ = f"number {low} and at most {hi:g}"
    return parse


_seed = _int_in(0, SEED_MAX)


def _seed_list(text: str) -> list[int]:
    """``--seeds``: 0..4, 0,3,7 or a mix, each seed from 0 to SEED_MAX."""
    from .seeds import parse_seeds

    try:
        return parse_seeds(text)
    except AeclustError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
_k = _int_in(1, K_MAX)  # k = 1 is refused by pipeline.check_k, which says why before any work
_n_init = _int_in(1, N_INIT_MAX)
_rows = _int_in(1, ROWS_MAX)
_lr = _float_in(0.0, LR_MAX, lo_included=False)


def _k_values(text: str) -> list[int]:
    """``aeclust sweep --k``: the values of k, as :func:`aeclust.sweep.parse_k_range` reads them.

    Every number is checked against :data:`K_MAX` first, so that a range such
    as ``2..99999999999`` is refused instead of being expanded.
    """
    from .sweep import parse_k_range

    for number in re.findall(r"[0-9]+", text):
        if len(number.lstrip("0")) > len(str(K_MAX)) or int(number) > K_MAX:
            raise argparse.ArgumentTypeError(f"k must be at most {K_MAX}, got {_cut(number)} in {_shown(text)}")
    try:
        return parse_k_range(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _scheduler(text: str) -> str:
    """``--scheduler``: 'local:N' with N from 1 to :data:`WORKERS_MAX`, or 'tcp://host:port'.

    The numbers are checked here because dask reports a missing or bad port
    with a bare ValueError, long after the data is loaded. Addresses of other
    schemes pass unchanged, for dask to judge.
    """
    if text == "local" or text.startswith("local:"):
        count = text.partition(":")[2]
        if count:
            try:
                _int_in(1, WORKERS_MAX)(count)
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    f"'local:N' needs N from 1 to {WORKERS_MAX} worker processes, got {_shown(text)}") from None
        return text
    scheme, sep, where = text.partition("://")
    if sep and scheme in ("tcp", "tls"):
        host, colon, port = where.rpartition(":")
        try:
            if not (host and colon):
                raise argparse.ArgumentTypeError("no port")
            _int_in(1, 65535)(port)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"a {scheme}:// address needs a host and a port from 1 to 65535, such as "
                f"'{scheme}://host:8786', got {_shown(text)}") from None
    return text


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr, exit code 2.

    argparse prints the whole usage block before the message; here the message
    alone is printed, like every other input error of aeclust (``--help``
    still shows the usage).
    """

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {' '.join(message.split())}\n")


class _Deprecated(argparse.Action):
    """An old spelling that works for one more release: it names the new one on stderr, then acts as it.

    ``convert`` maps the old value to the new option's; with ``append`` the value
    is added to the list in ``dest`` instead of replacing it.
    """

    def __init__(self, option_strings, dest, *, new: str, convert=None, append: bool = False, **kwargs):
        kwargs.setdefault("help", f"deprecated: use {new}")
        super().__init__(option_strings, dest, **kwargs)
        self.new, self.convert, self.append = new, convert, append

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"aeclust: {option_string} is deprecated and goes in the next release; use {self.new}",
              file=sys.stderr)
        value = self.convert(values) if self.convert else values
        if self.append:
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), value])
        else:
            setattr(namespace, self.dest, value)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz "
                        "(default: $AECLUST_DATA, else ~/.cache/aeclust; downloaded if missing)")
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading when the data is missing")


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run that --out holds, if it is of another command or configuration (without "
                        "it such a run is refused, and so is an unfinished one that is not resumed; rerunning the "
                        "same configuration needs no flag)")


#: How the command line words the ways on from a run directory that holds another run.
_TAKEN_WORDS = {"out": "choose another --out", "resume": "add --resume to continue it",
                "overwrite": "add --overwrite to replace it"}


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aeclust",
        description="Cluster images with k-means written from scratch, on raw pixels and on "
                    "autoencoder codes, and judge the clusters with the exact average silhouette "
                    "and Dunn's index.",
        epilog="Run 'aeclust COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"aeclust {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "cluster",
        help="k-means on the pixels of the CIFAR-10 test set; print silhouette and Dunn",
        description="Part 1 of the study: grayscale CIFAR-10 test images (BT.601 luma, flattened "
                    "to 1024 values, divided by 255), k-means from random data points until no "
                    "assignment changes, then the exact average silhouette and Dunn's index. "
                    "Writes results.json (and labels.npy) to --out.",
    )
    p.add_argument("--k", type=_k, default=10, help=f"number of clusters, 2 to {K_MAX} (default: 10)")
    p.add_argument("--seed", type=_seed, default=0,
                   help=f"random seed for the initial centres, 0 to {SEED_MAX} (default: 0)")
    p.add_argument("--init", choices=["random", "k-means++"], default="random",
                   help="initialisation (default: random data points, as in the study)")
    p.add_argument("--n-init", type=_n_init, default=1,
                   help=f"restarts, 1 to {N_INIT_MAX}; the run with the lowest inertia is kept (default: 1)")
    p.add_argument("--feature-set", choices=CLUSTER_FEATURE_SETS, default="pixels",
                   help="what to cluster: grayscale pixels (1024 for CIFAR-10, the study; default), RGB pixels "
                        "(3072) or their PCA (50 components)")
    p.add_argument("--color", choices=["gray", "rgb"], dest="feature_set", action=_Deprecated,
                   new="--feature-set pixels or --feature-set pixels-rgb",
                   convert=lambda c: "pixels-rgb" if c == "rgb" else "pixels")
    p.add_argument("--out", metavar="DIR", help="run directory for results.json and labels.npy")
    _add_overwrite(p)
    p.add_argument("--dataset", default="cifar10", metavar="NAME|PATH",
                   help="cifar10 (default: the 10,000 test images), digits, a folder of images or a .npy/.npz file")
    p.add_argument("--scheduler", metavar="ADDRESS", type=_scheduler,
                   help=f"run k-means and the metrics on Dask: 'local:N' (N worker processes on this machine, "
                        f"1 to {WORKERS_MAX}) "
                        "or 'tcp://host:8786' (needs: pip install 'aeclust[dask]')")
    p.add_argument("--chunk-rows", type=_rows, metavar="N",
                   help="rows per k-means chunk with --scheduler, at least 1 (default: 16384)")
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_cluster)

    p = sub.add_parser(
        "run",
        help="the whole study: pixels and autoencoder codes, clustered and judged, with an HTML report",
        description="The study end to end, into one run directory: k-means on the grayscale pixels "
                    "of the CIFAR-10 test set; a convolutional autoencoder trained on the 50,000 "
                    "training images; k-means on the 8x8x3 codes of the test images and of the training "
                    "images (the study's reading); silhouette and Dunn for each; results.json, figures/*.png "
                    "and a self-contained report.html. "
                    "Interrupted runs continue with --resume.",
    )
    p.add_argument("--out", metavar="DIR", default="runs/study", help="run directory (default: runs/study)")
    _add_overwrite(p)
    p.add_argument("--dataset", default="cifar10", metavar="NAME|PATH",
                   help="cifar10 (default: train on the 50,000 training images, cluster the 10,000 test "
                        "images), digits (scikit-learn's 8x8 digits, offline), a folder of images (class "
                        "sub-folders give labels) or a .npy/.npz file")
    p.add_argument("--feature-sets", default=",".join(DEFAULT_FEATURE_SETS), metavar="LIST",
                   help=f"comma-separated feature sets to compare: {', '.join(FEATURE_SETS)}, or 'all' "
                        f"({', '.join(ALL_FEATURE_SETS)}); simclr is the strongest learned one here (13 "
                        f"to 14 minutes of training on 2 CPU cores, see docs/features.md); also frozen pretrained "
                        f"backbones, timm:MODEL or open_clip:ARCH.TAG (pip install 'aeclust[pretrained]'). "
                        f"k-means starts from random data points, once, on the study's sets ("
                        f"{', '.join(n for n, f in FEATURE_SETS.items() if f.kmeans == STUDY_START)}) and takes "
                        f"the best of 10 k-means++ starts on the others "
                        f"(default: {','.join(DEFAULT_FEATURE_SETS)} — the study: the test images' pixels, "
                        f"and the autoencoder's codes of the test images, comparable with the pixels, and of the "
                        f"50,000 training images, which the study clustered; 'pixels,codes' leaves the "
                        f"training images out)")
    p.add_argument("--map", action="store_true",
                   help="add a 2-D t-SNE map of each feature set to the report (2,000 points, about 5 s a "
                        "feature set on 2 cores)")
    p.add_argument("--weights", metavar="FILE",
                   help="a local copy of the weights of the timm:/open_clip: feature set (safetensors or a torch "
                        "checkpoint), for machines that cannot download them (default: the library downloads "
                        "them on first use)")
    p.add_argument("--features", metavar="NAME", dest="extra_feature_sets", default=[], action=_Deprecated,
                   new="--feature-sets pixels,codes,NAME", append=True)
    p.add_argument("--k", type=_k, default=10, help=f"number of clusters, 2 to {K_MAX} (default: 10)")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=_seed, default=0,
                      help=f"seed for k-means and the autoencoder, 0 to {SEED_MAX} (default: 0)")
    seed.add_argument("--seeds", type=_seed_list, metavar="LIST",
                      help="run the whole study once per seed, e.g. 0..4 or 0,3,7: a sub-folder per seed, "
                           "mean and sd over the seeds in results.json and report.html")
    p.add_argument("--jobs", type=_int_in(1, 256), metavar="N",
                   help="with --seeds: seeds run at the same time, each in its own process "
                        "(default: all of them, up to 8 or one per CPU)")
    _add_autoencoder_args(p)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: skip finished stages, resume training from the last epoch "
                        "(with --seeds: every seed where it stopped)")
    p.add_argument("--train-limit", type=_rows, metavar="N",
                   help="train on the first N training images only, N at least 1 (quick runs)")
    p.add_argument("--test-limit", type=_rows, metavar="N",
                   help="cluster the first N test images only, N at least 1 (quick runs)")
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "train",
        help="train the autoencoder on the CIFAR-10 training images",
        description="Train the study's convolutional autoencoder on the 50,000 CIFAR-10 training "
                    "images. Writes history.json, checkpoint.pt (every epoch) and model.pt to --out.",
    )
    p.add_argument("--out", metavar="DIR", default="runs/autoencoder", help="output folder (default: runs/autoencoder)")
    _add_overwrite(p)
    p.add_argument("--seed", type=_seed, default=0,
                   help=f"seed for the weights and the shuffling, 0 to {SEED_MAX} (default: 0)")
    _add_autoencoder_args(p)
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--train-limit", type=_rows, metavar="N",
                   help="use the first N training images only, N at least 1")
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "encode",
        help="encode CIFAR-10 images with a trained autoencoder",
        description="Encode a CIFAR-10 split with the encoder of a trained model.pt and save the "
                    "codes, flattened to (n, 192), as a .npy file.",
    )
    p.add_argument("--model", metavar="PATH", required=True, help="model.pt or checkpoint.pt written by 'aeclust train'")
    p.add_argument("--out", metavar="FILE", required=True, help="where to write the codes (.npy)")
    p.add_argument("--split", choices=["test", "train"], default="test", help="which split (default: test)")
    p.add_argument("--limit", type=_rows, metavar="N", help="encode the first N images only, N at least 1")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="device (default: cpu)")
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser(
        "sweep",
        help="k-means for a range of k: inertia (elbow), silhouette, Dunn, Calinski-Harabasz and "
             "Davies-Bouldin against k, and the k they agree on",
        description="Cluster one feature set for every k in a range and plot inertia (the elbow), "
                    "silhouette, Dunn's index, Calinski-Harabasz and Davies-Bouldin (scikit-learn's) "
                    "against k, with the k each criterion prefers and their consensus. "
                    "Writes sweep.json, sweep.md, sweep.csv and sweep.png to --out.",
    )
    p.add_argument("--k", type=_k_values, default="2..20", metavar="RANGE",
                   help=f"k values from 2 to {K_MAX}: '2..20', '2,4,8' or '5' (default: 2..20)")
    p.add_argument("--dataset", default="cifar10", metavar="NAME|PATH",
                   help="cifar10 (the test images), digits, a folder of images or a .npy/.npz file")
    p.add_argument("--feature-set", choices=[*CLUSTER_FEATURE_SETS, "codes"], default="pixels",
                   help="what to cluster: grayscale pixels (default), RGB pixels, PCA of grayscale pixels, "
                        "or autoencoder codes (with --model)")
    p.add_argument("--features", choices=[*CLUSTER_FEATURE_SETS, "codes"], dest="feature_set",
                   action=_Deprecated, new="--feature-set")
    p.add_argument("--model", metavar="PATH", help="model.pt of a trained autoencoder, for --feature-set codes")
    p.add_argument("--seed", type=_seed, default=0, help=f"random seed, 0 to {SEED_MAX} (default: 0)")
    p.add_argument("--init", choices=["random", "k-means++"], default="random", help="initialisation (default: random)")
    p.add_argument("--n-init", type=_n_init, default=1,
                   help=f"restarts per k, 1 to {N_INIT_MAX}; the run with the lowest inertia is kept "
                        f"(default: 1)")
    p.add_argument("--out", metavar="DIR", default="runs/sweep", help="output folder (default: runs/sweep)")
    _add_overwrite(p)
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser(
        "report",
        help="rebuild the figures and report.html of a finished run",
        description="Rebuild figures/*.png and report.html from a run directory written by 'aeclust run'.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory holding results.json")
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_report)
    return parser


def _add_autoencoder_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("autoencoder")
    g.add_argument("--ae-color", choices=["gray", "rgb"], default="gray",
                   help="autoencoder input: grayscale (the study; default) or RGB")
    g.add_argument("--color", choices=["gray", "rgb"], dest="ae_color", action=_Deprecated, new="--ae-color")
    g.add_argument("--epochs", type=_int_in(1, EPOCHS_MAX), default=10,
                   help=f"training epochs, 1 to {EPOCHS_MAX} (default: 10)")
    g.add_argument("--batch-size", type=_int_in(1, BATCH_SIZE_MAX), default=32,
                   help=f"batch size, 1 to {BATCH_SIZE_MAX} (default: 32)")
    g.add_argument("--lr", type=_lr, default=1e-3,
                   help=f"learning rate, above 0 and at most {LR_MAX:g} (default: 1e-3)")
    g.add_argument("--optimizer", choices=["adam", "sgd", "rmsprop", "adadelta"], default="adam",
                   help="optimizer (default: adam)")
    g.add_argument("--kernel-size", type=_int_in(1, KERNEL_SIZE_MAX), default=3,
                   help=f"convolution kernel size, 1 to {KERNEL_SIZE_MAX} (default: 3)")
    g.add_argument("--activation", default="relu", help="activation after each conv (default: relu)")
    g.add_argument("--code-activation", default=None,
                   help="activation of the code layer (default: same as --activation; 'linear' for none)")
    g.add_argument("--ae-init", choices=["keras", "torch"], default="keras",
                   help="how the autoencoder's weights start: keras (Glorot-uniform kernels, zero biases, as "
                        "in the study's Keras; default) or torch (PyTorch's defaults, with which some seeds "
                        "collapse)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train: auto picks cuda when a GPU is present (default: auto)")
    g.add_argument("--engine", choices=["auto", "compiled", "torch"], default="auto",
                   help="the code that trains the autoencoder: compiled (aeclust's numba kernels: the same model, "
                        "loss and Adam, for the CPU and Adam only), torch (PyTorch), or auto (compiled where it "
                        "applies, torch elsewhere) (default: auto)")


def _feature_sets(text: str, extra: list[str] = ()) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*feature_set_names(text), *extra]))


def _autoencoder_kwargs(args) -> dict:
    """The autoencoder options as :class:`aeclust.autoencoder.AutoencoderConfig` fields."""
    return {"color": args.ae_color, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "optimizer": args.optimizer, "kernel_size": args.kernel_size, "activation": args.activation,
            "code_activation": args.code_activation, "init": args.ae_init, "engine": args.engine}


def _print_cluster_summary(results: dict) -> None:
    cfg, km, m, t = results["config"], results["kmeans"], results["metrics"], results["timings"]
    study = results.get("study") or {}
    print(f"aeclust cluster: {cfg['dataset']}, {cfg['n_samples']} samples x {cfg['n_features']} features "
          f"({cfg['features']}), k={cfg['k']}, seed={cfg['seed']}"
          + (f", on {cfg['scheduler']}" if cfg.get("scheduler") else ""))
    print(f"  k-means     {km['n_iter']} iterations, {'converged' if km['converged'] else 'NOT converged'}, "
          f"inertia {km['inertia']:.6g}")
    print(f"  {'metric':<12}{'aeclust':>10}{'study':>10}")
    print(f"  {'silhouette':<12}{m['silhouette']:>10.4f}{_num(study.get('silhouette')):>10}")
    print(f"  {'Dunn':<12}{m['dunn']:>10.4f}{_num(study.get('dunn')):>10}")
    ext = results.get("external")
    if ext:
        print(f"  against the true classes: accuracy {ext['acc']:.3f}, NMI {ext['nmi']:.3f}, "
              f"ARI {ext['ari']:.3f}, purity {ext['purity']:.3f}")
    print("  time        " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()))


def _cmd_cluster(args) -> int:
    from .pipeline import run_cluster

    results = run_cluster(data_dir=args.data_dir, out=args.out, dataset=args.dataset, k=args.k,
                          seed=args.seed, feature_set=args.feature_set, init=args.init, n_init=args.n_init,
                          download=not args.no_download, progress=not args.quiet,
                          scheduler=args.scheduler, chunk_rows=args.chunk_rows, overwrite=args.overwrite)
    if not args.quiet:
        _print_cluster_summary(results)
        if args.out:
            print(f"  wrote       {args.out}/results.json")
    return 0


def _print_run_summary(results: dict, out: str) -> None:
    from .pipeline import collapse_line

    print(f"aeclust run: {results['title']}")
    width = max(len(fs["description"]) for fs in results["feature_sets"].values()) + 2
    print(f"  {'features':<{width}}{'silhouette':>11}{'study':>8}{'Dunn':>9}{'study':>8}"
          + (f"{'ACC':>8}{'NMI':>8}" if any(fs.get("external") for fs in results["feature_sets"].values()) else ""))
    for fs in results["feature_sets"].values():
        m, st, ext = fs["metrics"], fs.get("study") or {}, fs.get("external")
        line = (f"  {fs['description']:<{width}}{_num(m['silhouette']):>11}{_num(st.get('silhouette')):>8}"
                f"{_num(m['dunn']):>9}{_num(st.get('dunn')):>8}")
        if ext:
            line += f"{ext['acc']:>8.3f}{ext['nmi']:>8.3f}"
        if not fs.get("meaningful", True):
            line += "  NOT MEANINGFUL (collapsed autoencoder)"
        print(line)
    for fs in results["feature_sets"].values():
        loud = not fs.get("meaningful", True)
        for warning in fs.get("warnings", []):
            print(f"  {'WARNING' if loud else 'warning'}: {warning}")
    for trained in results.get("autoencoders", {}).values():
        hist = trained["history"]
        if hist:
            test = hist[-1].get("test_loss")
            print(f"  autoencoder ({trained['config']['color']}): {len(hist)} epochs in {trained['seconds']:.0f}s, "
                  f"final train loss {hist[-1]['train_loss']:.5f}" + (f", test loss {test:.5f}" if test else ""))
        print(f"  {collapse_line(trained)}")
    print(f"  total time {results['timings']['total']:.1f}s")
    print(f"  wrote {out}/results.json and {out}/report.html")


def _num(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _cmd_run(args) -> int:
    from .pipeline import RunConfig, run

    ae_options = _autoencoder_kwargs(args)
    config = RunConfig(out=args.out, data_dir=args.data_dir, dataset=args.dataset,
                       feature_sets=_feature_sets(args.feature_sets, args.extra_feature_sets), k=args.k, seed=args.seed, device=args.device,
                       train_limit=args.train_limit, test_limit=args.test_limit,
                       download=not args.no_download, progress=not args.quiet, resume=args.resume,
                       overwrite=args.overwrite, weights=args.weights, map=args.map, ae_init=ae_options.pop("init"),
                       ae_engine=ae_options.pop("engine"), **ae_options)
    if args.seeds is not None:
        from .seeds import run_seeds

        results = run_seeds(config, args.seeds, jobs=args.jobs)
        if not args.quiet:
            _print_seeds_summary(results, args.out)
        return 0
    if args.jobs is not None:
        raise AeclustError("--jobs goes with --seeds (it runs several seeds at a time)")
    results = run(config)
    if not args.quiet:
        _print_run_summary(results, args.out)
    return 0


def _print_seeds_summary(results: dict, out: str) -> None:
    study = results.get("study", {})
    print(f"aeclust run: {results['title']}")
    print(f"  {'features':<12} {'silhouette (mean ± sd)':>24} {'study':>7} {'Dunn (mean ± sd)':>20} {'study':>7}")

    def cell(stats: dict | None, width: int) -> str:
        return f"{stats['mean']:.4f} ± {stats['sd']:.4f}".rjust(width) if stats else "—".rjust(width)

    def ref(value) -> str:
        return f"{value:>7.4f}" if value is not None else f"{'—':>7}"

    for name, s in results["summary"].items():
        study_of = study.get(name, {})
        note = f"   ({s['n_not_meaningful']} collapsed seed(s) left out)" if s.get("n_not_meaningful") else ""
        print(f"  {name:<12} {cell(s.get('silhouette'), 24)} {ref(study_of.get('silhouette'))} "
              f"{cell(s.get('dunn'), 20)} {ref(study_of.get('dunn'))}{note}")
    for row in results["per_seed"]:
        for folder, c in row.get("collapsed", {}).items():
            if c.get("collapsed"):
                print(f"  WARNING: the {folder} of seed {row['seed']} collapsed; its codes' numbers are not meaningful")
    print(f"  total time {results['timings']['total']:.1f}s")
    print(f"  wrote {out}/results.json, {out}/report.html and a folder per seed")


def _cmd_train(args) -> int:
    from .autoencoder import AutoencoderConfig, train_autoencoder
    from .datasets import load_cifar10
    from .rundir import Claim, claimed

    config = AutoencoderConfig(seed=args.seed, **_autoencoder_kwargs(args))
    out = Path(args.out)
    claim = Claim("train", {**config.to_dict(), "train_limit": args.train_limit}, "model.pt",
                  ("model.pt", "checkpoint.pt", "history.json"), resumable=True)
    with claimed(out, claim, resume=args.resume, overwrite=args.overwrite):
        load = dict(download=not args.no_download, progress=not args.quiet)
        train = load_cifar10(args.data_dir, split="train", **load).head(args.train_limit)
        test = load_cifar10(args.data_dir, split="test", **load)
        result = train_autoencoder(config, train.images, test.images, out,
                                   device=args.device, resume=args.resume, progress=not args.quiet)
    if not args.quiet:
        from .autoencoder import assess_collapse
        from .pipeline import collapse_line

        last = result.history[-1] if result.history else None
        if last:
            print(f"trained {len(result.history)} epochs: train loss {last['train_loss']:.5f}, "
                  f"test loss {last['test_loss']:.5f}")
        # On the test images, whose codes 'aeclust run' would cluster.
        collapse = assess_collapse(result.model, test.images)
        print(collapse_line({"config": config.to_dict(), "collapse": collapse}) + " (on the test images)")
        if collapse["collapsed"]:
            print(f"WARNING: the autoencoder (seed {config.seed}) collapsed; k-means on its codes would give "
                  f"numbers that are not meaningful. {collapse['rule']}")
        print(f"wrote {out}/model.pt, {out}/history.json")
    return 0


def _cmd_encode(args) -> int:
    from .autoencoder import encode, load_checkpoint
    from ._io import check_writable, save_array
    from .datasets import load_cifar10

    check_writable(Path(args.out).absolute().parent)
    model = load_checkpoint(args.model).model
    data = load_cifar10(args.data_dir, split=args.split, download=not args.no_download, progress=not args.quiet)
    codes = encode(model, data.head(args.limit).images, device=args.device)
    save_array(Path(args.out), codes)
    if not args.quiet:
        print(f"encoded {len(codes)} {args.split} images to {codes.shape[1]} features: wrote {args.out}")
    return 0


def _cmd_sweep(args) -> int:
    from .datasets import load_dataset
    from .pipeline import feature_matrix
    from .rundir import Claim, claimed
    from .sweep import preferred_k, sweep, write_sweep

    ks = args.k  # read and checked by _k_values
    out = Path(args.out)
    if args.feature_set == "codes" and not args.model:
        raise AeclustError("--feature-set codes needs --model PATH (a model.pt from 'aeclust train' or 'aeclust run')")
    config = {"dataset": args.dataset, "features": args.feature_set, "model": args.model, "k": ks, "seed": args.seed,
              "init": args.init, "n_init": args.n_init}
    claim = Claim("sweep", config, "sweep.json", ("sweep.json", "sweep.md", "sweep.csv", "sweep.png"))
    with claimed(out, claim, overwrite=args.overwrite):
        data = load_dataset(args.dataset, args.data_dir, download=not args.no_download, progress=not args.quiet)
        X = feature_matrix(data, args.feature_set, model=args.model)
        if max(ks) > len(X):
            raise AeclustError(f"k up to {max(ks)} asked for, but {data.name} has only {len(X)} samples")
        rows = sweep(X, ks, seed=args.seed, init=args.init, n_init=args.n_init, progress=not args.quiet)
        config = {"dataset": data.name, "features": args.feature_set, "n_samples": int(X.shape[0]),
                  "n_features": int(X.shape[1]), "k": ks, "seed": args.seed, "init": args.init, "n_init": args.n_init}
        write_sweep(out, rows, config)
    if not args.quiet:
        best = preferred_k(rows)
        print(f"aeclust sweep: {data.name}, {args.feature_set}, k = {ks[0]}..{ks[-1]}")
        print(f"  {'k':>4}{'inertia':>14}{'silhouette':>12}{'Dunn':>9}{'Calinski-H':>12}{'Davies-B':>10}")
        for r in rows:
            print(f"  {r['k']:>4}{r['inertia']:>14.6g}{r['silhouette']:>12.4f}{r['dunn']:>9.4f}"
                  f"{r['calinski_harabasz']:>12.1f}{r['davies_bouldin']:>10.4f}")
        print(f"  preferred k: elbow {best['elbow']}, silhouette {best['silhouette']}, Dunn {best['dunn']}, "
              f"Calinski-Harabasz {best['calinski_harabasz']}, Davies-Bouldin {best['davies_bouldin']}; "
              f"consensus {best['consensus']}")
        print(f"  wrote {out}/sweep.png, {out}/sweep.md, {out}/sweep.csv, {out}/sweep.json")
    return 0


def _cmd_report(args) -> int:
    from .pipeline import rebuild_report

    path = rebuild_report(args.run_dir, data_dir=args.data_dir, download=not args.no_download,
                          progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {path}")
    return 0


def _raise_interrupt(signum, frame):
    # SIGTERM ends the run the way Ctrl-C does: finally-blocks run and temp files are removed.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    # SIGINT too: a shell that starts a job in the background makes it ignore SIGINT,
    # and an interrupt must stop a run cleanly however it was started.
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_interrupt),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        return args.func(args)
    except (AeclustError, OSError) as exc:
        # OSError: the environment refused (disk full, permission denied, a file where a
        # folder should be); as much the user's to fix as bad input.
        if args.debug:
            traceback.print_exc()
        print(f"aeclust: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        hint = "; rerun with --resume to continue" if getattr(args, "resume", None) is not None else ""
        print(f"aeclust: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _one_line(exc: BaseException) -> str:
    from .rundir import RunDirectoryTaken

    if isinstance(exc, RunDirectoryTaken):
        return exc.worded(_TAKEN_WORDS)
    if isinstance(exc, OSError) and not isinstance(exc, AeclustError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror}{where}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
