"""The ``aeclust`` command line.

Errors caused by input or environment print one line on stderr and exit with
code 2 (``--debug`` shows the traceback); an interrupt exits with 130.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from . import __version__
from .errors import AeclustError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz "
                        "(default: $AECLUST_DATA, else ~/.cache/aeclust; downloaded if missing)")
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of downloading when the data is missing")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    p.add_argument("--k", type=_positive_int, default=10, help="number of clusters (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the initial centres (default: 0)")
    p.add_argument("--init", choices=["random", "k-means++"], default="random",
                   help="initialisation (default: random data points, as in the study)")
    p.add_argument("--n-init", type=_positive_int, default=1,
                   help="restarts; the run with the lowest inertia is kept (default: 1)")
    p.add_argument("--color", choices=["gray", "rgb"], default="gray",
                   help="pixel features: grayscale (1024, the study) or RGB (3072)")
    p.add_argument("--out", metavar="DIR", help="run directory for results.json and labels.npy")
    _add_data_args(p)
    _add_common(p)
    p.set_defaults(func=_cmd_cluster)
    return parser


def _print_cluster_summary(results: dict) -> None:
    cfg, km, m, t = results["config"], results["kmeans"], results["metrics"], results["timings"]
    study = results.get("study") or {}
    print(f"aeclust cluster: {cfg['n_samples']} images x {cfg['n_features']} features "
          f"({cfg['features']}), k={cfg['k']}, seed={cfg['seed']}")
    print(f"  k-means     {km['n_iter']} iterations, {'converged' if km['converged'] else 'NOT converged'}, "
          f"inertia {km['inertia']:.6g}")
    print(f"  {'metric':<12}{'aeclust':>10}{'study':>10}")
    print(f"  {'silhouette':<12}{m['silhouette']:>10.4f}{study.get('silhouette', float('nan')):>10.4f}")
    print(f"  {'Dunn':<12}{m['dunn']:>10.4f}{study.get('dunn', float('nan')):>10.4f}")
    print("  time        " + ", ".join(f"{k} {v:.2f}s" for k, v in t.items()))


def _cmd_cluster(args) -> int:
    from .pipeline import run_cluster

    results = run_cluster(data_dir=args.data_dir, out=args.out, k=args.k, seed=args.seed,
                          color=args.color, init=args.init, n_init=args.n_init,
                          download=not args.no_download, progress=not args.quiet)
    if not args.quiet:
        _print_cluster_summary(results)
        if args.out:
            print(f"  wrote       {args.out}/results.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.func(args)
    except AeclustError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"aeclust: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("aeclust: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
