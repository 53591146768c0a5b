"""Smoke test of an installed aeclust: what a wheel must do outside the checkout.

tests/test_wheel.py builds the wheel, installs it into a fresh virtual environment and runs a
copy of this script there, from an empty folder, with the environment's site-packages read-only.
The script checks that

- ``aeclust`` is imported from this interpreter's own site-packages, never from a source tree;
- ``KMeans.fit`` runs the compiled numba kernels and recovers three separated blobs;
- ``silhouette_score``, ``dunn_index`` and ``cluster_quality`` agree with scikit-learn's
  silhouette and a brute-force float64 Dunn index;
- the console script ``aeclust --help`` runs;
- numba caches the kernels outside site-packages (``--expect-cache miss``: every kernel compiled
  and written to the cache; ``--expect-cache hit``: every kernel loaded from it, none compiled;
  ``--expect-cache none``: no folder is writable, so aeclust warns and compiles in memory).

It prints one JSON line (where aeclust and the cache lie, the seconds the first and the second
fit took, the kernels' cache hits and misses) and exits with 1 and a message on the first failed
check. Only the standard library, numpy, scipy, scikit-learn, numba and aeclust are used: the
installed package's own dependencies.

    python smoke_wheel.py [--expect-cache {miss,hit,none}]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
import warnings
from pathlib import Path


class SmokeFailure(Exception):
    """A check of the installed package failed."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`SmokeFailure` with ``message`` unless ``condition`` (an ``assert`` that
    ``python -O`` keeps)."""
    if not condition:
        raise SmokeFailure(message)


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` lies in ``folder`` (both resolved, links followed)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def check_installed(site_packages: Path) -> dict:
    """aeclust comes from this virtual environment's site-packages."""
    import aeclust

    check(sys.prefix != sys.base_prefix, f"not run in a virtual environment (sys.prefix {sys.prefix})")
    check(inside(aeclust.__file__, site_packages),
          f"aeclust was imported from {aeclust.__file__}, not from this environment's {site_packages}")
    return {"aeclust_file": aeclust.__file__, "aeclust_version": aeclust.__version__}


def blobs() -> tuple:
    """Three well-separated Gaussian blobs of 100 points in 4 dimensions (float32), and their labels."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [12, 0, 0, 0], [0, 12, 0, 12]], dtype=np.float64)
    truth = np.repeat(np.arange(3), 100)
    X = (centres[truth] + rng.standard_normal((300, 4))).astype(np.float32)
    order = rng.permutation(300)
    return X[order], truth[order]


def check_kmeans(X, truth) -> dict:
    """KMeans recovers the blobs; returns its labels and the first and second fit's seconds
    (the first includes compiling or loading the kernels)."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    from aeclust import KMeans

    seconds = []
    for _ in range(2):
        t = time.perf_counter()
        km = KMeans(n_clusters=3, init="k-means++", random_state=0).fit(X)
        seconds.append(time.perf_counter() - t)
    check(km.converged_, "KMeans did not converge on three separated blobs")
    ari = adjusted_rand_score(truth, km.labels_)
    check(ari == 1.0, f"KMeans did not recover the three blobs: adjusted Rand index {ari}")
    X64 = X.astype(np.float64)
    inertia = float(((X64 - km.cluster_centers_.astype(np.float64)[km.labels_]) ** 2).sum())
    check(abs(km.inertia_ - inertia) <= 1e-5 * inertia,
          f"KMeans.inertia_ {km.inertia_} differs from the recomputed {inertia}")
    return {"labels": km.labels_, "fit_seconds": seconds}


def check_metrics(X, labels) -> dict:
    """The metrics against scikit-learn's silhouette and a brute-force float64 Dunn index."""
    import numpy as np
    from scipy.spatial.distance import cdist
    from sklearn.metrics import silhouette_score as sk_silhouette

    from aeclust import cluster_quality, dunn_index, silhouette_score

    X64 = X.astype(np.float64)
    silhouette = silhouette_score(X, labels)
    expected = float(sk_silhouette(X64, labels))
    check(abs(silhouette - expected) <= 1e-5, f"silhouette_score {silhouette} != scikit-learn's {expected}")

    distances = cdist(X64, X64)
    same = labels[:, None] == labels[None, :]
    brute_dunn = float(distances[~same].min() / distances[same].max())
    dunn = dunn_index(X, labels)
    check(abs(dunn - brute_dunn) <= 1e-9 * brute_dunn, f"dunn_index {dunn} != brute force {brute_dunn}")

    quality = cluster_quality(X, labels)
    check(abs(quality.silhouette - silhouette) <= 1e-6,
          f"cluster_quality's silhouette {quality.silhouette} != silhouette_score's {silhouette}")
    check(quality.dunn == dunn, f"cluster_quality's Dunn index {quality.dunn} != dunn_index's {dunn}")
    check((quality.n_samples, quality.n_clusters) == (300, 3),
          f"cluster_quality counted {quality.n_samples} samples in {quality.n_clusters} clusters, not 300 in 3")
    return {"silhouette": silhouette, "dunn": dunn}


def check_numba_cache(site_packages: Path, expect: str | None, caught: list) -> dict:
    """Every kernel is cached outside site-packages, and was compiled (``miss``) or loaded
    (``hit``) as expected; or (``none``) no kernel is cached and aeclust said why in a warning
    (one of ``caught``, the warnings of the fits)."""
    from numba.core.dispatcher import Dispatcher

    from aeclust import _lloyd_jit

    kernels = {name: obj for name, obj in vars(_lloyd_jit).items() if isinstance(obj, Dispatcher)}
    check(bool(kernels), "aeclust._lloyd_jit holds no numba dispatcher after KMeans.fit: "
                         "the compiled kernels were not used")
    used = {name: kernel for name, kernel in kernels.items() if kernel.signatures}
    check(bool(used), "no numba kernel was compiled or loaded by KMeans.fit")
    said = [str(w.message) for w in caught if "NUMBA_CACHE_DIR" in str(w.message)]
    if expect == "none":
        cached = [name for name, kernel in kernels.items() if kernel._cache.cache_path is not None]
        check(not cached, f"kernels {cached} are cached although no cache folder is writable")
        check(len(said) == 1, f"expected one warning naming NUMBA_CACHE_DIR, got {said}")
        return {"kernels_used": len(used), "warning": said[0]}
    check(not said, f"a cache folder is writable, yet aeclust warned: {said}")
    folders = {}
    for name, kernel in kernels.items():
        folder = getattr(kernel._cache, "cache_path", None)
        check(folder is not None, f"kernel {name} is not cached on disk (compiled without cache=True)")
        check(not inside(folder, site_packages),
              f"kernel {name} is cached in {folder}, inside site-packages ({site_packages})")
        folders[name] = folder
    hits = sum(sum(k.stats.cache_hits.values()) for k in used.values())
    misses = sum(sum(k.stats.cache_misses.values()) for k in used.values())
    for name in used:
        index = list(Path(folders[name]).glob(f"_lloyd_jit.{name}-*.nbi"))
        check(bool(index), f"kernel {name} has no index file in its cache folder {folders[name]}")
    if expect == "miss":
        check(hits == 0 and misses > 0, f"a fresh cache should give only misses: {hits} hits, {misses} misses")
    elif expect == "hit":
        check(misses == 0 and hits > 0,
              f"a filled cache should give only hits: {hits} hits, {misses} misses (kernels compiled again)")
    return {"numba_cache_dirs": sorted(set(folders.values())), "kernels_used": len(used),
            "cache_hits": hits, "cache_misses": misses}


def check_console_script() -> dict:
    """``aeclust --help``, the console script installed beside this interpreter, runs."""
    script = Path(sysconfig.get_path("scripts")) / ("aeclust.exe" if os.name == "nt" else "aeclust")
    check(script.is_file(), f"the console script {script} is missing")
    t = time.perf_counter()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t
    check(done.returncode == 0, f"aeclust --help exited with {done.returncode}: {done.stderr[-2000:]}")
    check(done.stdout.startswith("usage: aeclust"), f"aeclust --help printed no usage line: {done.stdout[:500]!r}")
    return {"help_seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-cache", choices=("miss", "hit", "none"),
                        help="miss: a fresh numba cache (every kernel compiled); hit: a filled one; "
                             "none: no writable cache folder (a warning, kernels compiled in memory)")
    args = parser.parse_args(argv)
    site_packages = Path(sysconfig.get_path("purelib"))
    report = {"python": sys.executable, "site_packages": str(site_packages)}
    try:
        report.update(check_installed(site_packages))
        X, truth = blobs()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fitted = check_kmeans(X, truth)
        report["fit_seconds"] = fitted["fit_seconds"]
        report.update(check_numba_cache(site_packages, args.expect_cache, caught))
        report.update(check_metrics(X, fitted["labels"]))
        report.update(check_console_script())
    except SmokeFailure as failure:
        print(f"smoke test failed: {failure}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
