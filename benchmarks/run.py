"""Benchmark aeclust against the tools a user would pick instead, on real CIFAR-10 data.

    python benchmarks/run.py                      # the full run; prints the markdown table
    python benchmarks/run.py --out docs/benchmarks.md
    python benchmarks/run.py --quick              # small sizes: a smoke run
    python benchmarks/run.py --only silhouette --only dunn --repeats 5
    python benchmarks/run.py --quick --only dask-ml --dask-rows 50000

Every case runs its contestants interleaved (contestant A, B, C, then A, B, C
again, ...) on the same data in the same process, and reports medians, so
that load from other work on the machine falls on all of them alike. Ratios
are aeclust time / anchor time: below 1 means aeclust is faster. A contestant
whose first run takes longer than ``--slow`` seconds is not repeated (its
``runs`` column says 1).

The data: the CIFAR-10 test images as gray pixels (10,000 x 1024), and
code-like data, the first 192 principal components of the 50,000 gray train
images (``--codes FILE`` puts real autoencoder codes in their place). The
compiled k-means kernel is compiled (or loaded from numba's disk cache) before
any k-means timing, and that first-call time is reported on its own line,
never inside a ratio.

The "onedal" case sets aeclust beside Intel's oneDAL (``sklearnex.cluster.KMeans``
from scikit-learn-intelex) on the same number of threads: the first 20 iterations
and the run to convergence from the same centres, the whole k-means++ fit, and
where aeclust's 20-iteration fit spends its time.

Needs the ``bench`` extra (scikit-learn, scipy, faiss-cpu, psutil, threadpoolctl,
dask-ml, dask.distributed, scikit-learn-intelex), optionally validclust, and
matplotlib for the growth plot. CIFAR-10 is found as by ``aeclust.load_cifar10``
(``--data`` or ``AECLUST_DATA``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

import aeclust  # noqa: E402
from aeclust import KMeans, cluster_quality, dunn_index, silhouette_score  # noqa: E402
from aeclust import _lloyd  # noqa: E402

CASES = ("compile", "gemm", "kmeans-pixels", "kmeans-codes", "kmeans-fit", "onedal", "dask-ml", "silhouette",
         "dunn", "fused", "memory", "growth")
#: Cases that time the compiled k-means kernel: the "compile" case runs first when any of them does.
KMEANS_CASES = {"kmeans-pixels", "kmeans-codes", "kmeans-fit", "onedal", "dask-ml"}
GIB = 2.0**30
#: Seconds of rest before each run in the "onedal" case (see ``interleaved``).
SETTLE = 0.2


# --------------------------------------------------------------------------- helpers
def load_pixels(data: str | None, n: int | None) -> np.ndarray:
    from aeclust.datasets import load_cifar10
    from aeclust.preprocess import preprocess

    X = preprocess(load_cifar10(data, split="test", download=False, progress=False).images)
    return X if n is None else np.ascontiguousarray(X[:n])


def make_codes(n: int, d: int, codes_file: str | None, data: str | None) -> tuple[np.ndarray, str]:
    """Code-like data: ``--codes FILE`` if given, else the first ``d`` principal components of the
    first ``n`` gray CIFAR-10 train images (the PCA fitted on those ``n`` images)."""
    if codes_file:
        X = np.load(codes_file).astype(np.float32)
        return np.ascontiguousarray(X[:n]), f"autoencoder codes from `{codes_file}`"
    from aeclust.datasets import load_cifar10
    from aeclust.preprocess import pca, preprocess

    images = load_cifar10(data, split="train", download=False, progress=False).images[:n]
    X = pca(preprocess(images, "gray"), d)
    return np.ascontiguousarray(X), f"the first {d} principal components of {len(X):,} gray CIFAR-10 train images"


def initial_centres(X: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    return X[np.random.default_rng(seed).choice(len(X), k, replace=False)].copy()


def _tiled_chunk(base: np.ndarray, scale: np.ndarray, offset: int, rows: int, index: int) -> np.ndarray:
    """Rows ``offset .. offset + rows`` of ``base`` tiled without end, plus Gaussian jitter of
    ``scale`` per feature, seeded by the chunk's index (the Dask scale case's data)."""
    picked = base[(offset + np.arange(rows)) % len(base)]
    noise = np.random.default_rng([2024, index]).standard_normal(picked.shape, dtype=np.float32)
    return picked + noise * scale


def _compare_chunk(x: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> tuple:
    """One chunk's inertia terms about two centre sets (each point to its nearest), and how many
    of its points the two sets label alike."""
    la, _ = _lloyd.assign(x, ca)
    lb, _ = _lloyd.assign(x, cb)
    return (_lloyd.inertia(x, la, ca), _lloyd.inertia(x, lb, cb), int(np.count_nonzero(la == lb)))


def interleaved(contestants: dict, repeats: int, slow: float, settle: float = 0.0) -> dict:
    """Run each contestant ``repeats`` times, interleaved; returns name -> {times, result}.

    ``settle``: seconds of rest before each run, so that the thread pools of the run before
    (OpenBLAS's and OpenMP's threads spin for a while after a call) are asleep when it starts."""
    out = {name: {"times": [], "result": None} for name in contestants}
    for r in range(repeats):
        for name, fn in contestants.items():
            rec = out[name]
            if rec.get("skip") or (r > 0 and rec["times"] and rec["times"][0] > slow):
                continue
            if settle:
                time.sleep(settle)
            t = time.perf_counter()
            try:
                rec["result"] = fn()
            except MemoryError as e:
                rec["skip"] = f"MemoryError: {e}"
                continue
            rec["times"].append(time.perf_counter() - t)
            print(f"    {name}: {rec['times'][-1]:.3f} s", file=sys.stderr, flush=True)
    for rec in out.values():
        rec["median"] = float(np.median(rec["times"])) if rec["times"] else float("nan")
    return out


def fmt_s(t: float) -> str:
    if not np.isfinite(t):
        return "n/a"
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_ratio(r: float) -> str:
    return "n/a" if not np.isfinite(r) else f"**{r:.2f}**"


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_info() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def _kernel_dots_all():
    """``dots_all(X, C, x_sq, threads)``: only the k-means kernel's float32 dot products of
    every row (and the rows' squared norms), block by block as its first assignment pass
    takes them, on the same threads and the same way of sharing blocks out
    (``_lloyd_jit._run_blocks``): the arithmetic of that pass without its decisions and
    bounds (the "onedal" case's profile)."""
    import numba

    from aeclust import _lloyd_jit as J

    J._kernels()
    block = J.ROW_BLOCK
    dots_rows, atomic_add = J._dots_rows, J._atomic_add

    @numba.njit(nogil=True)
    def dots_blocks(claim, X, C, x_sq):
        n, k = X.shape[0], C.shape[0]
        rows = np.empty(block, dtype=np.intp)
        dots = np.empty((block, k), dtype=np.float32)
        while True:
            b = atomic_add(claim, 0, 1)
            if b * block >= n:
                return
            m = min(n, b * block + block) - b * block
            for r in range(m):
                rows[r] = b * block + r
            dots_rows(X, rows, m, C, dots, x_sq)
            atomic_add(claim, 1, 1)

    def dots_all(X, C, x_sq, threads):
        J._run_blocks(dots_blocks, (len(X) + block - 1) // block, threads, (X, C, x_sq))

    return dots_all


# --------------------------------------------------------------------------- textbook anchors
def textbook_dunn(X: np.ndarray, labels: np.ndarray) -> float:
    """Dunn's index as the textbook has it: per-cluster scipy pdist (diameters) and cdist (separations)."""
    from scipy.spatial.distance import cdist, pdist

    X = np.asarray(X, dtype=np.float64)
    groups = [X[labels == c] for c in np.unique(labels)]
    diameter = max((pdist(g).max() for g in groups if len(g) > 1), default=0.0)
    separation = min(cdist(a, b).min() for i, a in enumerate(groups) for b in groups[i + 1 :])
    return separation / diameter


def validclust_dunn(X: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import pairwise_distances
    from validclust import dunn

    return float(dunn(pairwise_distances(X), labels))


def have_validclust() -> bool:
    try:
        import validclust  # noqa: F401
    except Exception:
        return False
    return True


def full_matrix_bytes(n: int) -> float:
    """A full n x n float64 distance matrix, the least validclust.dunn holds."""
    return 8.0 * n * n


def available_bytes() -> float:
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


# --------------------------------------------------------------------------- cases
class Bench:
    def __init__(self, args):
        self.args = args
        q = args.quick
        self.n_pixels = 2000 if q else None
        self.n_codes = 5000 if q else 50_000
        self.d_codes = 192
        self.k = 10
        self.codes_max_iter = 1000  # real structure: run to convergence, as on the pixels
        self.dask_rows = args.dask_rows or (50_000 if q else 1_000_000)
        self.dask_iters = args.dask_iters
        self.growth_ns = [500, 1000, 2000, 5000] if q else [2500, 5000, 10_000, 20_000, 50_000]
        self.sections: list[str] = []
        self.targets: list[list] = []
        self.headline: dict[str, float] = {}
        self.notes: list[str] = []
        self._pixels = self._codes = None
        self.gemm_rate = None
        self.compile_lines: list[str] = []
        self.measured: dict[tuple[str, int], float] = {}  # (growth series, n) -> median, codes data

    # data, computed once and shared by the cases
    def pixels(self):
        if self._pixels is None:
            X = load_pixels(self.args.data, self.n_pixels)
            km = KMeans(self.k, init=initial_centres(X, self.k)).fit(X)
            self._pixels = (X, km.labels_)
        return self._pixels

    def codes(self):
        if self._codes is None:
            X, what = make_codes(self.n_codes, self.d_codes, self.args.codes, self.args.data)
            km = KMeans(self.k, init=initial_centres(X, self.k), max_iter=self.codes_max_iter)
            with _quiet():
                km.fit(X)
            self._codes = (X, km.labels_, what)
        return self._codes

    def run(self, cases):
        for case in CASES:
            if case in cases:
                print(f"== {case}  (load {load_info()})", file=sys.stderr, flush=True)
                getattr(self, "case_" + case.replace("-", "_"))()

    def target(self, what: str, value: float, goal: str, ok: bool, fmt: str = "{:.2f}") -> None:
        """One row of the targets table: what, the measured value, the target, met or missed."""
        finite = value is not None and np.isfinite(value)
        self.targets.append([what, fmt.format(value) if finite else "n/a", goal, _met(ok) if finite else "n/a"])

    # ---- first-call time of the compiled k-means kernel, on its own
    def case_compile(self):
        try:
            from aeclust._lloyd_jit import warm_up
        except (ImportError, AttributeError) as e:
            self.compile_lines.append(f"Compiled k-means kernel: not available ({type(e).__name__}: {e}).")
            return
        code = ("import json, time; t = time.perf_counter(); from aeclust._lloyd_jit import warm_up; "
                "s = warm_up(); print(json.dumps({'warm_up': s, 'total': time.perf_counter() - t}))")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                       os.environ.get("PYTHONPATH")])))

        def fresh_process(extra_env: dict) -> str:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=dict(env, **extra_env))
            if out.returncode != 0:
                tail = (out.stderr.strip().splitlines() or ["?"])[-1][:120]
                return f"failed ({tail})"
            m = json.loads(out.stdout.strip().splitlines()[-1])
            return f"**{m['warm_up']:.2f} s** (`warm_up()`; {m['total']:.2f} s with the import of aeclust)"

        with tempfile.TemporaryDirectory(prefix="numba-cache-") as empty:
            cold = fresh_process({"NUMBA_CACHE_DIR": empty})
        here = warm_up()  # this process: compiles, or loads numba's disk cache
        cached = fresh_process({})  # the default cache is filled now
        self.compile_lines += [
            f"Compiled k-means kernel, first call in a fresh process with an empty numba cache "
            f"(`NUMBA_CACHE_DIR` an empty folder): {cold}.",
            f"From numba's disk cache, in a fresh process: {cached}.",
            f"In this process, before any k-means timing: {here:.2f} s. None of these is inside any ratio.",
        ]
        print("    " + "\n    ".join(self.compile_lines), file=sys.stderr, flush=True)

    # ---- matrix-multiply rate of this machine
    def _measure_gemm(self, runs: int) -> tuple[float, float]:
        """float32 ``(4096 x 1024) @ (1024 x 4096)`` with numpy's BLAS on all cores: (median, best) FLOP/s."""
        rng = np.random.default_rng(0)
        A = rng.random((4096, 1024), dtype=np.float32)
        B = rng.random((1024, 4096), dtype=np.float32)
        A @ B
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            A @ B
            times.append(time.perf_counter() - t)
        flops = 2.0 * 4096 * 4096 * 1024
        return flops / float(np.median(times)), flops / min(times)

    def case_gemm(self):
        runs = max(9, self.args.repeats)
        self.gemm_rate, self.gemm_peak = self._measure_gemm(runs)
        self.sections.append(
            "### Matrix-multiply rate\n\n"
            f"float32 `(4096 x 1024) @ (1024 x 4096)` with numpy's BLAS, all cores: "
            f"median **{self.gemm_rate / 1e9:.1f} GFLOP/s**, best {self.gemm_peak / 1e9:.1f} GFLOP/s "
            f"over {runs} runs. Measured again just before each share of this rate is taken; the share "
            f"uses the higher of the two medians."
        )

    # ---- k-means, per iteration, from the same initial centres
    def _kmeans_case(self, title, X, max_iter, key, data_name):
        from sklearn.cluster import KMeans as SKKMeans

        try:
            import faiss
        except ImportError:
            faiss = None
        k = self.k
        init = initial_centres(X, k, seed=1)
        n_iter = {}

        def ours():
            km = KMeans(k, init=init, max_iter=max_iter)
            with _quiet():
                km.fit(X)
            n_iter["aeclust"] = km.n_iter_
            return km.cluster_centers_, km.n_iter_, np.asarray(km.labels_)

        def sk(algorithm):
            def fit():
                km = SKKMeans(k, init=init, n_init=1, tol=0, max_iter=max_iter, algorithm=algorithm)
                with _quiet():
                    km.fit(X)
                return km.cluster_centers_.astype(np.float32), km.n_iter_, km.labels_

            return fit

        def fa():
            # As many iterations as aeclust took; faiss has no convergence test.
            iters = n_iter.get("aeclust") or ours()[1]
            km = faiss.Kmeans(X.shape[1], k, niter=iters, max_points_per_centroid=len(X) + 1,
                              min_points_per_centroid=1, seed=1, verbose=False)
            km.train(X, init_centroids=init)
            return km.centroids.copy(), iters, None

        ours()  # warm-up, and the iteration count faiss is given
        contestants = {"aeclust": ours, "sklearn lloyd": sk("lloyd"), "sklearn elkan": sk("elkan")}
        if faiss is not None:
            contestants["faiss"] = fa
        res = interleaved(contestants, self.args.repeats, self.args.slow)
        # Every contestant's final centres, every point assigned to its nearest, measured the same way.
        for rec in res.values():
            centres, iters, labels = rec["result"]
            own, _ = _lloyd.assign(X, centres)
            rec["labels"] = own if labels is None else np.asarray(labels)
            rec["inertia"] = _lloyd.inertia(X, own, centres)
            rec["per_it"] = rec["median"] / iters
        base, ref = res["aeclust"], res["sklearn lloyd"]
        rows = []
        for name, rec in res.items():
            iters = rec["result"][1]
            rows.append([
                name, len(rec["times"]), fmt_s(rec["median"]), iters, f"{rec['per_it'] * 1e3:.2f} ms",
                "" if name == "aeclust" else fmt_ratio(base["per_it"] / rec["per_it"]),
                "" if name == "aeclust" else fmt_ratio(base["median"] / rec["median"]),
                f"{rec['inertia']:.7g}", f"{(rec['inertia'] - ref['inertia']) / ref['inertia']:+.1e}",
                f"{100 * np.mean(rec['labels'] == ref['labels']):.3f} %",
            ])
        self.sections.append(
            f"### {title}\n\n"
            f"`{X.shape[0]} x {X.shape[1]}`, k = {k}, the same initial centres for every contestant "
            f"(`init=array`, `n_init=1`); aeclust and scikit-learn run until no assignment changes "
            f"(scikit-learn with `tol=0`) or {max_iter} iterations, "
            + ("faiss runs as many iterations as aeclust took. " if faiss is not None
               else "faiss is not installed here. ")
            + "Per iteration: total fit time / iterations. Inertia: of each contestant's final centres, "
            "every point assigned to its nearest, measured the same way for all; labels: each "
            "contestant's own final labels (faiss: those of its final centres), compared point by point "
            "with scikit-learn Lloyd's. aeclust's `n_iter_` counts centre updates: run to convergence it "
            "makes `n_iter_ + 1` assignment passes, the last of which changes nothing, where scikit-learn "
            "counts that last pass as an iteration; on the same trajectory aeclust's count is one lower "
            f"(here {base['result'][1]} against {ref['result'][1]}), so its time per iteration is overstated "
            "by one part in `n_iter_`. The total ratio has no such offset.\n\n"
            + table(["contestant", "runs", "total (median)", "iterations", "per iteration",
                     "aeclust / this, per iteration", "aeclust / this, total", "final inertia",
                     "inertia vs sklearn lloyd", "labels = sklearn lloyd"], rows)
        )
        for anchor in res:
            if anchor != "aeclust":
                self.headline[f"{key} per iteration / {anchor}"] = base["per_it"] / res[anchor]["per_it"]
        self.headline[f"{key} total / sklearn lloyd"] = base["median"] / ref["median"]
        same = float(np.mean(base["labels"] == ref["labels"]))
        rel = (base["inertia"] - ref["inertia"]) / ref["inertia"]
        r = self.headline[f"{key} per iteration / sklearn lloyd"]
        self.target(f"k-means per iteration vs sklearn Lloyd ({data_name})", r, "≤ 0.5×", r <= 0.5)
        r = self.headline[f"{key} per iteration / sklearn elkan"]
        self.target(f"k-means per iteration vs sklearn Elkan ({data_name})", r, "≤ 0.7×", r <= 0.7)
        if faiss is not None:
            r = self.headline[f"{key} per iteration / faiss"]
            self.target(f"k-means per iteration vs faiss ({data_name})", r, "≤ 1.0×", r <= 1.0)
        self.target(f"k-means labels identical to sklearn Lloyd, same init ({data_name})", 100 * same,
                    "≥ 99.5 %", same >= 0.995, "{:.3f} %")
        self.target(f"k-means inertia vs sklearn Lloyd, same init, relative ({data_name})", rel,
                    "within 1e-4", abs(rel) <= 1e-4, "{:+.1e}")
        return res

    def case_kmeans_pixels(self):
        X, _ = self.pixels()
        self._kmeans_case("K-means on pixels, per iteration", X, 1000, "k-means pixels", "pixels")

    def case_kmeans_codes(self):
        X, _, what = self.codes()
        self._kmeans_case(f"K-means on code-like data, per iteration ({what})", X, self.codes_max_iter,
                          "k-means codes", "codes")

    # ---- k-means, the whole fit: k-means++ and n_init=10
    def case_kmeans_fit(self):
        from sklearn.cluster import KMeans as SKKMeans

        k = self.k
        rows = []
        for data_name, X in (("pixels", self.pixels()[0]), ("codes", self.codes()[0])):
            def ours():
                km = KMeans(k, init="k-means++", n_init=10, random_state=0)
                with _quiet():
                    return km.fit(X)

            def sk(**kw):
                def fit():
                    km = SKKMeans(k, init="k-means++", n_init=10, random_state=0, algorithm="lloyd", **kw)
                    with _quiet():
                        return km.fit(X)

                return fit

            res = interleaved({"aeclust": ours,
                               "sklearn lloyd, tol=0, max_iter=1000": sk(tol=0, max_iter=1000),
                               "sklearn lloyd, defaults (tol=1e-4, max_iter=300)": sk()},
                              self.args.repeats, self.args.slow)
            base = res["aeclust"]
            for name, rec in res.items():
                km = rec["result"]
                centres = np.asarray(km.cluster_centers_, dtype=np.float32)
                labels, _ = _lloyd.assign(X, centres)
                inertia = _lloyd.inertia(X, labels, centres)
                ratio = base["median"] / rec["median"]
                rows.append([f"`{X.shape[0]} x {X.shape[1]}`", name, len(rec["times"]), fmt_s(rec["median"]),
                             km.n_iter_, f"{inertia:.7g}", "" if name == "aeclust" else fmt_ratio(ratio)])
                if name != "aeclust":
                    short = "tol=0" if "tol=0" in name else "defaults"
                    self.headline[f"k-means++ n_init=10 fit {data_name} / sklearn lloyd {short}"] = ratio
                    self.target(f"whole fit, k-means++, n_init=10, vs sklearn Lloyd {short} ({data_name})",
                                ratio, "≤ 0.5×", ratio <= 0.5)
        self.sections.append(
            "### K-means, the whole fit (k-means++, n_init = 10)\n\n"
            "`aeclust.KMeans(10, init=\"k-means++\", n_init=10, random_state=0)` vs "
            "`sklearn.cluster.KMeans(10, init=\"k-means++\", n_init=10, random_state=0, algorithm=\"lloyd\")`, "
            "total `fit` time: seeding, ten Lloyd runs, keeping the best. aeclust runs each to no "
            "assignment change (cap 1000); scikit-learn once with the same stopping rule (`tol=0`, "
            "`max_iter=1000`) and once with its defaults (`tol=1e-4` on the centre shift, `max_iter=300`), "
            "which may stop earlier. The seedings differ (each library's own k-means++ draw), so the "
            "kept runs differ; iterations are those of the kept run; inertia of the kept centres, "
            "measured the same way for all.\n\n"
            + table(["shape", "contestant", "runs", "total (median)", "iterations (kept run)", "inertia",
                     "aeclust / this"], rows)
        )

    # ---- Intel's oneDAL (scikit-learn-intelex) KMeans beside aeclust's
    def case_onedal(self):
        try:
            import daal4py
            from sklearnex.cluster import KMeans as OneDALKMeans
        except ImportError as e:
            self.sections.append("### K-means vs Intel oneDAL (scikit-learn-intelex)\n\n"
                                 f"scikit-learn-intelex is not installed here ({type(e).__name__}: {e}).")
            return
        from threadpoolctl import threadpool_limits

        from aeclust._pairwise import cpu_count

        threads = cpu_count()
        daal4py.daalinit(threads)  # oneDAL's TBB threads: as many as aeclust's
        self.same_start_repeats = max(11, 2 * self.args.repeats + 1)  # short runs: more of them
        self.onedal_threads = (threads, daal4py.num_threads())
        same, fits, profiles = [], [], []
        with threadpool_limits(threads):  # scikit-learn's OpenMP threads, and BLAS's
            for data_name, X in (("pixels", self.pixels()[0]), ("codes", self.codes()[0])):
                init = initial_centres(X, self.k, seed=1)
                for max_iter in (20, 1000):
                    same += self._onedal_same_start(data_name, X, init, max_iter, OneDALKMeans)
                fits += self._onedal_fit(data_name, X, OneDALKMeans)
                profiles.append(self._onedal_profile(data_name, X, init, OneDALKMeans))
        self._onedal_report(same, fits, profiles, threads)

    def _onedal_same_start(self, data_name, X, init, max_iter, OneDALKMeans):
        """aeclust, oneDAL and scikit-learn Lloyd from the same centres for ``max_iter`` iterations
        (20: the first ones; 1000: to convergence); table rows, headlines and targets."""
        from sklearn.cluster import KMeans as SKKMeans

        k = self.k
        contestants = {
            "aeclust": lambda: KMeans(k, init=init, max_iter=max_iter).fit(X),
            "onedal": lambda: OneDALKMeans(k, init=init, n_init=1, max_iter=max_iter, tol=0).fit(X),
            "sklearn lloyd": lambda: SKKMeans(k, init=init, n_init=1, max_iter=max_iter, tol=0,
                                              algorithm="lloyd").fit(X),
        }
        with _quiet():
            for fn in contestants.values():
                fn()  # warm-up (oneDAL loads its kernels on the first call)
            res = interleaved(contestants, self.same_start_repeats, self.args.slow, settle=SETTLE)
        base = res["aeclust"]
        what = "first 20 iterations" if max_iter == 20 else "to convergence"
        rows = []
        for name, rec in res.items():
            km = rec["result"]
            centres = np.asarray(km.cluster_centers_, dtype=np.float32)
            inertia = _lloyd.inertia(X, _lloyd.assign(X, centres)[0], centres)
            rec["per_it"] = rec["median"] / km.n_iter_
            rec["best_it"] = min(rec["times"]) / km.n_iter_
            ratio = base["per_it"] / rec["per_it"]
            best = base["best_it"] / rec["best_it"]
            rows.append([f"`{X.shape[0]} x {X.shape[1]}`", what, name, len(rec["times"]), fmt_s(rec["median"]),
                         km.n_iter_, f"{rec['per_it'] * 1e3:.2f} ms", "" if name == "aeclust" else fmt_ratio(ratio),
                         f"{rec['best_it'] * 1e3:.2f}-{max(rec['times']) * 1e3 / km.n_iter_:.2f} ms",
                         "" if name == "aeclust" else f"{best:.2f}",
                         f"{inertia:.7g}", f"{100 * np.mean(np.asarray(km.labels_) == base['result'].labels_):.3f} %"])
            if name != "aeclust":
                self.headline[f"k-means {data_name} {what} per iteration / {name}"] = ratio
        r = self.headline[f"k-means {data_name} {what} per iteration / onedal"]
        self.target(f"k-means per iteration vs oneDAL, {what} ({data_name})", r, "≤ 1.0×", r <= 1.0)
        return rows

    def _onedal_fit(self, data_name, X, OneDALKMeans):
        """The whole k-means++ fit, n_init=10: aeclust vs oneDAL with tol=0 and with its defaults."""
        k = self.k
        contestants = {
            "aeclust": lambda: KMeans(k, init="k-means++", n_init=10, random_state=0).fit(X),
            "onedal, tol=0, max_iter=1000": lambda: OneDALKMeans(k, init="k-means++", n_init=10, random_state=0,
                                                                 tol=0, max_iter=1000).fit(X),
            "onedal, defaults (tol=1e-4, max_iter=300)": lambda: OneDALKMeans(k, init="k-means++", n_init=10,
                                                                              random_state=0).fit(X),
        }
        with _quiet():
            res = interleaved(contestants, self.args.repeats, self.args.slow, settle=SETTLE)
        base = res["aeclust"]
        rows = []
        for name, rec in res.items():
            km = rec["result"]
            centres = np.asarray(km.cluster_centers_, dtype=np.float32)
            inertia = _lloyd.inertia(X, _lloyd.assign(X, centres)[0], centres)
            ratio = base["median"] / rec["median"]
            rows.append([f"`{X.shape[0]} x {X.shape[1]}`", name, len(rec["times"]), fmt_s(rec["median"]),
                         km.n_iter_, f"{inertia:.7g}", "" if name == "aeclust" else fmt_ratio(ratio)])
            if name != "aeclust":
                short = "tol=0" if "tol=0" in name else "defaults"
                self.headline[f"k-means++ n_init=10 fit {data_name} / onedal {short}"] = ratio
                self.target(f"whole fit, k-means++, n_init=10, vs oneDAL {short} ({data_name})", ratio,
                            "≤ 1.0×", ratio <= 1.0)
        return rows

    def _onedal_profile(self, data_name, X, init, OneDALKMeans):
        """Where aeclust's 20-iteration fit goes, beside oneDAL's whole fit and the parts of it:
        each ``KMeans.fit(max_iter=20)`` is split, within the same run, into ``lloyd`` (timed
        around ``_lloyd_jit.lloyd``), its assignment passes (around ``_assign_rows``), the
        centre updates (the rest of ``lloyd``), ``_lloyd.inertia``, and the rest of ``fit``
        (input checks, the estimator); beside it, interleaved, the BLAS product ``X @ C.T``
        alone and the kernel's own float32 dot products of every row (what its first pass
        computes before deciding). Medians over the runs, seconds."""
        from aeclust import _lloyd_jit as J

        dots_all = _kernel_dots_all()
        x_sq = np.full(len(X), -1.0)
        C = np.ascontiguousarray(init)
        runs, saved = [], (J.lloyd, J._assign_rows, _lloyd.inertia)

        def timing(fn, key):
            def timed(*a, **kw):
                t = time.perf_counter()
                out = fn(*a, **kw)
                if runs:
                    runs[-1].setdefault(key, []).append(time.perf_counter() - t)
                return out
            return timed

        def fit():
            runs.append({})
            t = time.perf_counter()
            KMeans(self.k, init=init, max_iter=20).fit(X)
            runs[-1]["fit"] = [time.perf_counter() - t]

        def dots():
            x_sq[:] = -1.0  # the norms too, as the first pass computes them
            with J._threads() as threads:
                dots_all(X, C, x_sq, threads)

        J.lloyd, J._assign_rows, _lloyd.inertia = (timing(J.lloyd, "lloyd"), timing(J._assign_rows, "passes"),
                                                   timing(_lloyd.inertia, "inertia"))
        try:
            with _quiet():
                fit()
                runs.clear()
                res = interleaved({"aeclust fit": fit, "blas": lambda: X @ C.T, "dots": dots,
                                   "onedal": lambda: OneDALKMeans(self.k, init=init, n_init=1, max_iter=20,
                                                                  tol=0).fit(X)},
                                  self.same_start_repeats, self.args.slow, settle=SETTLE)
        finally:
            J.lloyd, J._assign_rows, _lloyd.inertia = saved
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # the product's own cost, without BLAS's threads
            blas1 = interleaved({"blas1": lambda: X @ C.T}, self.same_start_repeats, self.args.slow,
                                settle=SETTLE)["blas1"]
        med = lambda f: float(np.median([f(r) for r in runs]))  # noqa: E731
        return {"data": data_name, "shape": X.shape, "runs": len(runs),
                "fit": med(lambda r: r["fit"][0]), "lloyd": med(lambda r: r["lloyd"][0]),
                "pass0": med(lambda r: r["passes"][0]), "passes": med(lambda r: sum(r["passes"][1:])),
                "n_passes": len(runs[0]["passes"]), "late": med(lambda r: r["passes"][-1]),
                "updates": med(lambda r: r["lloyd"][0] - sum(r["passes"])),
                "inertia": med(lambda r: sum(r.get("inertia", [0.0]))),
                "around": med(lambda r: r["fit"][0] - r["lloyd"][0] - sum(r.get("inertia", [0.0]))),
                "blas": res["blas"]["median"], "blas1": blas1["median"], "dots": res["dots"]["median"],
                "onedal20": res["onedal"]["median"]}

    def _onedal_report(self, same, fits, profiles, threads):
        from importlib.metadata import version

        ms = lambda v: f"{v * 1e3:.1f}"  # noqa: E731
        prof_rows = [
            ["oneDAL `fit`, max_iter=20", *(ms(q["onedal20"]) for q in profiles)],
            ["aeclust `KMeans.fit`, max_iter=20", *(ms(q["fit"]) for q in profiles)],
            ["... `_lloyd_jit.lloyd`", *(ms(q["lloyd"]) for q in profiles)],
            ["... ... the first assignment pass (no bounds yet: every row, every centre)",
             *(ms(q["pass0"]) for q in profiles)],
            ["... ... the other 20 assignment passes", *(ms(q["passes"]) for q in profiles)],
            ["... ... ... the last of them", *(ms(q["late"]) for q in profiles)],
            ["... ... the centre updates (float64 sums, drifts, centre distances)",
             *(ms(q["updates"]) for q in profiles)],
            ["... `_lloyd.inertia` (float64, of the final centres)", *(ms(q["inertia"]) for q in profiles)],
            ["... the rest of `fit` (input checks, the estimator)", *(ms(q["around"]) for q in profiles)],
            ["BLAS `X @ C.T` alone (float32, the same threads)", *(ms(q["blas"]) for q in profiles)],
            ["... on one thread", *(ms(q["blas1"]) for q in profiles)],
            ["the kernel's float32 dot products of every row, and the rows' norms",
             *(ms(q["dots"]) for q in profiles)],
            ["the first pass less those: the float64-safe decisions and the fresh bounds",
             *(ms(q["pass0"] - q["dots"]) for q in profiles)],
            ["aeclust `fit` / oneDAL `fit`, in these runs", *(f"{q['fit'] / q['onedal20']:.2f}" for q in profiles)],
        ]
        shapes = [f"`{q['shape'][0]} x {q['shape'][1]}` (ms)" for q in profiles]
        n_threads, dal_threads = self.onedal_threads
        self.sections.append(
            "### K-means vs Intel oneDAL (scikit-learn-intelex)\n\n"
            f"`sklearnex.cluster.KMeans` (scikit-learn-intelex {version('scikit-learn-intelex')}, oneDAL "
            f"{version('daal')}) beside `aeclust.KMeans`, k = {self.k}, on the same {n_threads} threads: aeclust's "
            f"threads (`AECLUST_NUM_THREADS`, else the CPUs), oneDAL's TBB threads set with "
            f"`daal4py.daalinit({n_threads})` (it reports {dal_threads}), scikit-learn's OpenMP and BLAS threads "
            f"limited with threadpoolctl. From the same initial centres (`init=array`, `n_init=1`; the ten rows "
            f"of the other k-means cases): the first 20 iterations (`max_iter=20`, oneDAL and scikit-learn with "
            f"`tol=0`), and to convergence (`max_iter=1000`; aeclust stops when no assignment changes, oneDAL "
            f"and scikit-learn with `tol=0`). Per iteration: total `fit` time / `n_iter_`, all `fit` costs "
            f"included (input checks, the final labels and inertia); aeclust counts one iteration fewer than "
            f"the others on the same trajectory run to convergence (its last, unchanged assignment is not "
            f"an iteration), which overstates its time per iteration by one part in `n_iter_`. Medians of "
            f"{self.same_start_repeats} interleaved runs, each after {SETTLE} s of rest (OpenBLAS's and "
            f"OpenMP's threads spin for a while after a call, and slowed whichever library ran next); "
            f"beside them the fastest and the slowest run per "
            f"iteration, and the ratio of the fastest runs (the least disturbed by other work on the machine). "
            f"Inertia: of each contestant's final centres, every point assigned to its "
            f"nearest, measured the same way for all; labels: each contestant's own `labels_` against "
            f"aeclust's.\n\n"
            + table(["shape", "run", "contestant", "runs", "total (median)", "n_iter_", "per iteration",
                     "aeclust / this, per iteration", "per iteration, fastest-slowest run",
                     "aeclust / this, fastest runs", "inertia", "labels = aeclust"], same)
            + "\n\nThe whole fit: `aeclust.KMeans(10, init=\"k-means++\", n_init=10, random_state=0)` vs "
            "`sklearnex.cluster.KMeans(10, init=\"k-means++\", n_init=10, random_state=0)`, once with `tol=0, "
            "max_iter=1000` and once with its defaults; each library's own k-means++ seeding, so the kept runs "
            "differ.\n\n"
            + table(["shape", "contestant", "runs", "total (median)", "n_iter_ (kept run)", "inertia",
                     "aeclust / this"], fits)
            + "\n\nWhere the 20-iteration fit goes: each aeclust `fit` split within the run (`lloyd`, its "
            "passes and `_lloyd.inertia` timed around the calls), interleaved with oneDAL's `fit`, the BLAS "
            f"product alone and the kernel's dot products alone, on the same {n_threads} threads; medians of "
            f"{profiles[0]['runs']} runs:\n\n"
            + table(["part", *shapes], prof_rows)
        )

    # ---- scale anchor: dask-ml's KMeans beside aeclust's Dask path
    def case_dask_ml(self):
        import dask
        import dask.array as da
        from dask.distributed import Client, LocalCluster, wait
        from dask_ml.cluster import KMeans as DaskMLKMeans

        base, _, what = self.codes()
        n, d, k, iters = self.dask_rows, base.shape[1], self.k, self.dask_iters
        chunk = self.args.dask_chunk or max(1000, min(50_000, -(-n // 8)))
        scale = (0.05 * base.std(axis=0)).astype(np.float32)
        sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
        offsets = np.cumsum([0] + sizes[:-1]).tolist()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster)
        try:
            fut = client.scatter(base, broadcast=True)
            parts = [da.from_delayed(dask.delayed(_tiled_chunk)(fut, scale, off, r, i), shape=(r, d),
                                     dtype=np.float32) for i, (off, r) in enumerate(zip(offsets, sizes))]
            Xd = da.concatenate(parts).persist()
            wait(Xd)
            idx = np.sort(np.random.default_rng(1).choice(n, k, replace=False))
            init = np.asarray(Xd[idx].compute(), dtype=np.float32)

            # aeclust's max_iter=m runs m + 1 assignment passes and m + 1 centre updates when not
            # converged (n_iter_ = m); dask-ml's max_iter=m runs m of each (n_iter_ = m). Both are given
            # the same number of Lloyd steps, so that they end on the same centres.
            def ours(max_iter=iters):
                km = KMeans(k, init=init, max_iter=max_iter)
                with _quiet():
                    km.fit(Xd)
                return np.asarray(km.cluster_centers_, dtype=np.float32), km.n_iter_, km.inertia_

            def theirs(max_iter=iters + 1):
                km = DaskMLKMeans(n_clusters=k, init=init, max_iter=max_iter, tol=0.0, random_state=0)
                with _quiet():
                    km.fit(Xd)
                return np.asarray(km.cluster_centers_, dtype=np.float32), km.n_iter_, km.inertia_

            ours(1), theirs(2)  # warm-up: numba's kernels load in each worker
            res = interleaved({"aeclust (Dask)": ours, "dask-ml": theirs}, self.args.repeats, self.args.slow)
            a, b = res["aeclust (Dask)"], res["dask-ml"]
            # Both final centre sets, every point assigned to its nearest, measured the same way, on the workers.
            ca, cb = dask.delayed(a["result"][0]), dask.delayed(b["result"][0])
            parts = dask.compute(*[dask.delayed(_compare_chunk)(blk, ca, cb) for blk in Xd.to_delayed().ravel()])
            ia, ib, equal = (sum(p[j] for p in parts) for j in range(3))
        finally:
            client.close()
            cluster.close()
        rows = []
        for name, rec, inertia in (("aeclust (Dask)", a, ia), ("dask-ml", b, ib)):
            centres, n_it, own = rec["result"]
            steps = n_it + 1 if name.startswith("aeclust") else n_it  # assignment passes in the loop
            rec["per_it"] = rec["median"] / steps
            rows.append([name, len(rec["times"]), fmt_s(rec["median"]), n_it, steps, fmt_s(rec["per_it"]),
                         f"{own:.7g}", f"{inertia:.7g}",
                         "" if name != "dask-ml" else fmt_ratio(a["per_it"] / b["per_it"])])
        r = a["per_it"] / b["per_it"]
        self.headline["Dask k-means per Lloyd step / dask-ml"] = r
        self.target(f"Dask k-means per Lloyd step vs dask-ml ({n:,} x {d}, 2 workers)", r, "≤ 1.0×", r <= 1.0)
        self.sections.append(
            f"### Scale: k-means on Dask vs dask-ml ({n:,} x {d})\n\n"
            f"`aeclust.KMeans(10, init=array, max_iter={iters}).fit(X)` on a dask array vs "
            f"`dask_ml.cluster.KMeans(10, init=array, max_iter={iters + 1}, tol=0)`, the same initial centres "
            f"(10 random rows), both on a `dask.distributed.LocalCluster(n_workers=2, threads_per_worker=1)` "
            f"on this machine, the data persisted on the workers in {len(sizes)} chunks of up to {chunk:,} rows. "
            f"The data: the {len(base):,} x {d} code-like rows ({what}) tiled to {n:,} rows, each copy "
            f"jittered by Gaussian noise of 5 % of each component's standard deviation (seeded per chunk). "
            f"aeclust's `max_iter={iters}` caps its centre updates after the first assignment: unconverged, "
            f"it makes {iters + 1} assignment passes and {iters + 1} updates and reports `n_iter_ = {iters}`; "
            f"dask-ml's `max_iter={iters + 1}` makes the same {iters + 1} of each, so both end on the same "
            f"centres (aeclust stops earlier if no assignment changes). Per iteration: total fit time "
            f"(the value check, the Lloyd steps and the final labelling pass, the same passes for both) / "
            f"Lloyd steps (assignment passes in the loop: aeclust `n_iter_ + 1`, dask-ml `n_iter_`). "
            f"Own inertia: each library's "
            f"`inertia_`; inertia of the final centres: every point assigned to its nearest, measured the "
            f"same way for both. Final labels of the two centre sets agree on "
            f"{100 * equal / n:.3f} % of the points."
            + (f" dask-ml's own `inertia_` ({b['result'][2]:.7g}) is not the sum of squared distances "
               f"({ib:.7g}): when its last centre shift exceeds 1e-7, dask-ml {_version('dask_ml')} relabels "
               f"with `pairwise_distances_argmin_min(X, centers)` without `squared=True` and sums those "
               f"(unsquared) distances." if abs(b["result"][2] / ib - 1) > 1e-3 else "")
            + "\n\n"
            + table(["contestant", "runs", "total (median)", "n_iter_", "Lloyd steps", "per step", "own inertia_",
                     "inertia of the final centres", "aeclust / dask-ml, per step"], rows)
        )

    # ---- metrics
    def _datasets(self):
        Xp, yp = self.pixels()
        Xc, yc, what = self.codes()
        return [("pixels", Xp, yp), ("codes", Xc, yc)]

    def case_silhouette(self):
        from sklearn.metrics import silhouette_score as sk_silhouette

        rows = []
        for name, X, y in self._datasets():
            res = interleaved({"aeclust": lambda: silhouette_score(X, y),
                               "sklearn": lambda: sk_silhouette(X, y)}, self.args.repeats, self.args.slow)
            a, s = res["aeclust"], res["sklearn"]
            if name == "codes":
                self.measured[("aeclust silhouette", len(X))] = a["median"]
                self.measured[("sklearn silhouette", len(X))] = s["median"]
            ratio = a["median"] / s["median"]
            self.headline[f"silhouette {name} / sklearn"] = ratio
            self._sil_sklearn = getattr(self, "_sil_sklearn", {})
            self._sil_sklearn[name] = s["median"]
            rows.append([f"`{X.shape[0]} x {X.shape[1]}`", fmt_s(a["median"]), fmt_s(s["median"]),
                         fmt_ratio(ratio), f"{abs(a['result'] - s['result']):.1e}", len(a["times"])])
            self.target(f"silhouette vs sklearn silhouette ({name})", ratio, "≤ 0.5×", ratio <= 0.5)
            if name == "pixels" and self.gemm_rate:
                self._gemm_fraction(X, a["median"], "silhouette")
        self.sections.append(
            "### Silhouette, exact\n\naeclust `silhouette_score` vs `sklearn.metrics.silhouette_score`, "
            "k-means labels (k = 10).\n\n"
            + table(["shape", "aeclust", "sklearn", "ratio", "|difference|", "runs"], rows)
        )

    def _gemm_fraction(self, X, seconds, what):
        """The matrix-multiply rate an exact pass over all pairs of ``X`` ran at, as a fraction of the
        rate measured by the "gemm" case; a headline, a target (≥ 80 %) and a note."""
        from aeclust._pairwise import DEFAULT_TILE

        # A machine that was busy (or slow) during the "gemm" case would flatter the share:
        # measure again now and take the higher median.
        self.gemm_rate = max(self.gemm_rate, self._measure_gemm(max(9, self.args.repeats))[0])
        n, d = X.shape
        starts = range(0, n, DEFAULT_TILE)
        size = [min(DEFAULT_TILE, n - s) for s in starts]
        done = sum(2.0 * size[i] * size[j] * d for i in range(len(size)) for j in range(i, len(size)))
        full = 2.0 * n * n * d
        frac = done / seconds / self.gemm_rate
        self.headline[f"{what} pixels: fraction of GEMM rate"] = frac
        self.target(f"{what} on pixels: share of the measured matrix-multiply rate", 100 * frac, "≥ 80 %",
                    frac >= 0.8, "{:.0f} %")
        self.notes.append(
            f"{what[0].upper() + what[1:]}, exact, at `{n} x {d}`: {full / 1e9:.0f} GFLOP of matrix products over all "
            f"ordered pairs; aeclust visits each unordered pair once ({done / 1e9:.0f} GFLOP, blocks on "
            f"the diagonal in full). In {seconds:.2f} s that is {done / seconds / 1e9:.1f} GFLOP/s performed, "
            f"**{100 * frac:.0f} %** of this machine's measured matrix-multiply "
            f"rate ({self.gemm_rate / 1e9:.1f} GFLOP/s), or {full / seconds / 1e9:.1f} GFLOP/s "
            f"({100 * full / seconds / self.gemm_rate:.0f} %) counted against the full {full / 1e9:.0f}-GFLOP product."
        )

    def case_dunn(self):
        rows = []
        vc = have_validclust()
        for name, X, y in self._datasets():
            contestants = {"aeclust": lambda: dunn_index(X, y), "textbook (scipy)": lambda: textbook_dunn(X, y)}
            need = full_matrix_bytes(len(X))
            if vc and need * 2.5 < available_bytes():
                contestants["validclust"] = lambda: validclust_dunn(X, y)
            res = interleaved(contestants, self.args.repeats, self.args.slow)
            a = res["aeclust"]
            if name == "codes":
                self.measured[("aeclust dunn", len(X))] = a["median"]
                self.measured[("textbook dunn", len(X))] = res["textbook (scipy)"]["median"]
            for anchor in ("textbook (scipy)", "validclust"):
                if anchor in res and res[anchor]["times"]:
                    r = res[anchor]
                    ratio = a["median"] / r["median"]
                    self.headline[f"dunn {name} / {anchor}"] = ratio
                    rows.append([f"`{X.shape[0]} x {X.shape[1]}`", anchor, fmt_s(a["median"]),
                                 fmt_s(r["median"]), fmt_ratio(ratio),
                                 f"{abs(a['result'] - r['result']) / r['result']:.1e}", len(r["times"])])
                elif anchor == "validclust":
                    why = "not installed" if not vc else (
                        f"infeasible: the n x n float64 distance matrix alone is {need / GIB:.1f} GiB "
                        f"({available_bytes() / GIB:.1f} GiB available, shared with other work)")
                    rows.append([f"`{X.shape[0]} x {X.shape[1]}`", anchor, fmt_s(a["median"]), why, "n/a", "", 0])
        self.sections.append(
            "### Dunn's index, exact\n\naeclust `dunn_index` vs the textbook computation (scipy `pdist` per "
            "cluster for the diameters, `cdist` per pair of clusters for the separations, float64) and "
            "`validclust.dunn` (given `sklearn.metrics.pairwise_distances(X)`, timed together).\n\n"
            + table(["shape", "anchor", "aeclust", "anchor time", "ratio", "relative difference", "anchor runs"], rows)
        )

    def case_fused(self):
        from sklearn.metrics import silhouette_score as sk_silhouette

        rows = []
        for name, X, y in self._datasets():
            contestants = {
                "fused": lambda: cluster_quality(X, y),
                "separate": lambda: (silhouette_score(X, y), dunn_index(X, y)),
            }
            sil = getattr(self, "_sil_sklearn", {}).get(name)
            if sil is None:
                contestants["sklearn silhouette"] = lambda: sk_silhouette(X, y)
            res = interleaved(contestants, self.args.repeats, self.args.slow)
            if sil is None:
                sil = res["sklearn silhouette"]["median"]
            f, s = res["fused"]["median"], res["separate"]["median"]
            if name == "codes":
                self.measured[("aeclust fused", len(X))] = f
            r_sep, r_sk = f / s, f / sil
            self.headline[f"fused {name} / separate"] = r_sep
            self.headline[f"fused {name} / sklearn silhouette"] = r_sk
            rows.append([f"`{X.shape[0]} x {X.shape[1]}`", fmt_s(f), fmt_s(s), fmt_ratio(r_sep),
                         fmt_s(sil), fmt_ratio(r_sk)])
            goal = 0.4 if name == "pixels" else 0.5
            self.target(f"silhouette + Dunn fused vs sklearn silhouette alone ({name})", r_sk,
                        f"≤ {goal}×", r_sk <= goal)
            if name == "pixels" and self.gemm_rate:
                self._gemm_fraction(X, f, "fused silhouette + Dunn")
                self._fused_profile(X, y, f)
        self.sections.append(
            "### Fused vs separate\n\n`cluster_quality` (silhouette and Dunn in one pass) vs "
            "`silhouette_score` then `dunn_index`, and vs scikit-learn's silhouette alone.\n\n"
            + table(["shape", "fused", "separate", "fused / separate", "sklearn silhouette",
                     "fused / sklearn silhouette"], rows)
        )

    def _fused_profile(self, X, y, fused_seconds):
        """Where the fused pass's time goes: the block products alone (the same blocks, threads and
        one-thread BLAS as the pass), the whole pass over the pairs, and the rest of the call."""
        from aeclust import _pairwise, metrics

        data = metrics._Sorted(X, y, min_clusters=2, max_clusters_rel=-1)
        X32, tile = data.X32, _pairwise.DEFAULT_TILE
        X_m2 = X32 * np.float32(-2.0)
        starts = range(0, len(X32), tile)
        tasks = [(i, j) for a, i in enumerate(starts) for j in list(starts)[a:]]

        def products():
            with _pairwise.Workers() as pool:
                pool.map(lambda t: X_m2[t[0]:t[0] + tile] @ X32[t[1]:t[1] + tile].T, tasks)

        res = interleaved({
            "block products alone": products,
            "pair pass": lambda: data.stats(sums=True, extremes=True, progress=False, tile=tile),
            "setup (sort, centre, duplicates)": lambda: metrics._Sorted(X, y, min_clusters=2, max_clusters_rel=-1),
        }, max(5, self.args.repeats), self.args.slow)
        stats = data.stats(sums=True, extremes=True, progress=False, tile=tile)
        t = time.perf_counter()
        data.dunn_parts(stats)
        dunn = time.perf_counter() - t
        prod, pair, setup = (res[k]["median"] for k in res)
        done = sum(2.0 * min(tile, len(X) - i) * min(tile, len(X) - j) * X.shape[1] for i, j in tasks)
        self.notes.append(
            f"Where the fused pass's {fused_seconds:.2f} s go (pixels, medians of {len(res['pair pass']['times'])}): "
            f"the {len(tasks)} block products alone, on the same threads with one-thread BLAS, "
            f"{prod:.2f} s ({done / prod / 1e9:.0f} GFLOP/s, {100 * done / prod / self.gemm_rate:.0f} % of the "
            f"measured rate: the ceiling for this pass); the whole pass over the pairs {pair:.2f} s ("
            + (f"the element-wise work on the blocks: {pair - prod:.2f} s" if pair > prod else
               "the element-wise work on the blocks is within the run-to-run spread of the products")
            + f"); sorting, centring and finding duplicate "
            f"rows {setup:.3f} s; Dunn's float64 re-measurement {dunn:.3f} s; the rest "
            f"{max(0.0, fused_seconds - pair - setup - dunn):.3f} s."
        )

    # ---- memory, each metric in a fresh process
    def case_memory(self):
        X, y, what = self.codes()
        n = len(X)
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "X.npy", X)
            np.save(Path(tmp) / "y.npy", y)
            rows = []
            worst = 0.0
            small = min(10_000, n // 5)
            for metric in ("aeclust silhouette", "aeclust dunn", "aeclust fused", "sklearn silhouette",
                           "textbook dunn", "validclust dunn", f"validclust dunn@{small}",
                           f"aeclust dunn@{small}"):
                if metric == "validclust dunn":
                    need = full_matrix_bytes(n)
                    if not have_validclust():
                        rows.append([metric, "not installed", "", ""])
                        continue
                    if need * 2.5 > available_bytes():
                        rows.append([metric, "infeasible", f"≥ {need / GIB:.1f} GiB (the n x n float64 matrix)",
                                     f"{available_bytes() / GIB:.1f} GiB available"])
                        continue
                if "@" in metric and not have_validclust():
                    continue
                print(f"    {metric} ...", file=sys.stderr, flush=True)
                out = subprocess.run([sys.executable, __file__, "--_child", metric, tmp],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    rows.append([metric, "failed", out.stderr.strip().splitlines()[-1][:80], ""])
                    continue
                m = json.loads(out.stdout.strip().splitlines()[-1])
                label = metric.replace("@", " at n = ")
                rows.append([label, f"{m['peak'] / GIB:.2f} GiB", f"{(m['peak'] - m['before']) / GIB:.3f} GiB",
                             f"{m['seconds']:.1f} s"])
                if metric.startswith("aeclust") and "@" not in metric:
                    worst = max(worst, m["peak"])
        self.headline[f"peak RSS of aeclust metrics at {n:,} points (GiB)"] = worst / GIB
        self.target(f"peak memory of the metrics at {n:,} points", worst / GIB, "≤ 1 GiB", worst <= GIB,
                    "{:.2f} GiB")
        self.sections.append(
            f"### Memory at {n:,} points\n\nEach metric in a fresh Python process on the `{n} x {X.shape[1]}` "
            f"data ({what}); peak resident set size (`VmHWM`) of the whole process, and its growth "
            "over the process's size just before the call (interpreter, libraries and data). "
            f"`validclust.dunn` is also shown, beside aeclust, on the first {small:,} rows, where its "
            f"n x n matrix ({full_matrix_bytes(small) / GIB:.2f} GiB) fits on any machine.\n\n"
            + table(["metric", "peak RSS", "growth during the call", "time"], rows)
        )

    # ---- growth with n
    def case_growth(self):
        from sklearn.metrics import silhouette_score as sk_silhouette

        X, y, what = self.codes()
        vc = have_validclust()
        series: dict[str, dict[int, float]] = {}
        for n in self.growth_ns:
            if n > len(X):
                continue
            Xn, yn = X[:n], y[:n]
            contestants = {
                "aeclust silhouette": lambda: silhouette_score(Xn, yn),
                "aeclust dunn": lambda: dunn_index(Xn, yn),
                "aeclust fused": lambda: cluster_quality(Xn, yn),
                "sklearn silhouette": lambda: sk_silhouette(Xn, yn),
                "textbook dunn": lambda: textbook_dunn(Xn, yn),
            }
            if vc and full_matrix_bytes(n) * 2.5 < available_bytes():
                contestants["validclust dunn"] = lambda: validclust_dunn(Xn, yn)
            for name in list(contestants):  # measured already, as medians, in the cases above
                if (name, n) in self.measured:
                    series.setdefault(name, {})[n] = self.measured[(name, n)]
                    del contestants[name]
            print(f"  n = {n}", file=sys.stderr, flush=True)
            res = interleaved(contestants, 1, self.args.slow)
            for name, rec in res.items():
                if rec["times"]:
                    series.setdefault(name, {})[n] = rec["median"]
        ns = sorted({n for s in series.values() for n in s})
        rows = [[name] + [fmt_s(s[n]) if n in s else "—" for n in ns] for name, s in series.items()]
        exps = []
        for name, s in series.items():
            pts = sorted(s.items())
            if len(pts) >= 2:
                (n0, t0), (n1, t1) = pts[-2], pts[-1]
                exps.append(f"{name} ~ n^{np.log(t1 / t0) / np.log(n1 / n0):.2f}")
        plot = self._plot(series, X.shape[1], what)
        self.sections.append(
            f"### Growth with n\n\nThe metrics on the first n rows of the `{len(X)} x {X.shape[1]}` data "
            f"({what}), one run each; at the full size, the medians of the cases above where they ran. Slope between the two largest sizes: {', '.join(exps)}."
            + (f" Plot: `{plot}`." if plot else "") + "\n\n"
            + table(["metric"] + [f"n = {n:,}" for n in ns], rows)
        )

    def _plot(self, series, d, what):
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        out = Path(self.args.out).with_name("benchmark_growth.png") if self.args.out else None
        if out is None:
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, s in series.items():
            pts = sorted(s.items())
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o",
                      linestyle="-" if name.startswith("aeclust") else "--", label=name)
        ax.set_xlabel("n (points)")
        ax.set_ylabel("seconds")
        ax.set_title(f"Exact cluster metrics, d = {d}, k = 10")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)

    # ---- the report
    def machine(self) -> str:
        model = platform.processor() or "unknown"
        try:
            lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
            for line in lscpu.splitlines():
                if line.startswith("Model name:"):
                    model = line.split(":", 1)[1].strip()
        except OSError:
            pass
        from threadpoolctl import threadpool_info

        blas = "; ".join(sorted({f"{i['internal_api']} {i.get('version')} ({i.get('architecture', '')}, "
                                 f"{i['num_threads']} threads)" for i in threadpool_info()}))
        versions = []
        for mod in ("numpy", "scipy", "sklearn", "numba", "faiss", "validclust", "dask", "distributed", "dask_ml"):
            try:
                versions.append(f"{mod} {__import__(mod).__version__}")
            except Exception:
                pass
        try:  # sklearnex's own __version__ is a placeholder; the distribution's is the release
            from importlib.metadata import version

            versions.append(f"scikit-learn-intelex {version('scikit-learn-intelex')} (oneDAL {version('daal')})")
        except Exception:
            pass
        mem = ""
        try:
            import psutil

            mem = f"{psutil.virtual_memory().total / GIB:.1f} GiB RAM, "
        except ImportError:
            pass
        return (
            f"- CPU: {model}, {os.cpu_count()} logical CPUs, {mem}{platform.system()} {platform.release()}\n"
            f"- Python {platform.python_version()}, aeclust {aeclust.__version__}; {', '.join(versions)}\n"
            f"- BLAS: {blas}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}\n"
            f"- Load average (1, 5, 15 min): {self.load_start} at the start, {load_info()} at the end\n"
            f"- Date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; "
            f"repeats: {self.args.repeats} (medians){'; --quick sizes' if self.args.quick else ''}"
        )

    def report(self, seconds: float) -> str:
        parts = ["# Benchmarks", "",
                 "Produced by `python benchmarks/run.py --out docs/benchmarks.md`; ratios are "
                 "aeclust time / anchor time (below 1: aeclust is faster), medians of interleaved runs "
                 "in one process.", "", "## Machine", "", self.machine(), ""]
        if self.targets:
            parts += ["## Targets", "", table(["ratio or measure", "measured", "target", "met"], self.targets), ""]
        if self.compile_lines:
            parts += ["## Compile time of the k-means kernel", ""] + [f"- {c}" for c in self.compile_lines] + [""]
        if self.headline:
            parts += ["## Headline ratios", "",
                      table(["ratio", "value"], [[k, f"{v:.2f}"] for k, v in self.headline.items()]), ""]
        parts += ["## Results", ""]
        for s in self.sections:
            parts += [s, ""]
        if self.notes:
            parts += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        parts.append(f"Whole run: {seconds / 60:.1f} min.")
        return "\n".join(parts) + "\n"


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:
        return "?"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


class _quiet:
    """Silence warnings (ConvergenceWarning at a capped max_iter) inside a block."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)


def _vm(field: str) -> float:
    """A memory figure of this process in bytes: VmHWM (peak RSS) or VmRSS from /proc, else ru_maxrss.

    ru_maxrss is not used on Linux: across fork and exec it starts from the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _child(metric: str, folder: str) -> None:
    """Run one metric on the saved data and print its peak memory as JSON (``--_child``)."""
    X = np.load(Path(folder) / "X.npy")
    y = np.load(Path(folder) / "y.npy")
    if "@" in metric:
        metric, n = metric.split("@")
        X, y = X[: int(n)], y[: int(n)]
    fns = {
        "aeclust silhouette": lambda: silhouette_score(X, y),
        "aeclust dunn": lambda: dunn_index(X, y),
        "aeclust fused": lambda: cluster_quality(X, y),
        "sklearn silhouette": lambda: __import__("sklearn.metrics", fromlist=["x"]).silhouette_score(X, y),
        "textbook dunn": lambda: textbook_dunn(X, y),
        "validclust dunn": lambda: validclust_dunn(X, y),
    }
    fn = fns[metric]
    if metric.startswith("sklearn"):
        import sklearn.metrics  # noqa: F401  (imported before the baseline is taken)
    if "dunn" in metric and not metric.startswith("aeclust"):
        import scipy.spatial.distance  # noqa: F401
    before = _vm("VmHWM")
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    peak = _vm("VmHWM")
    print(json.dumps({"before": before, "peak": peak, "seconds": seconds}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (a few minutes; the dask-ml case on 50,000 rows)")
    p.add_argument("--repeats", type=int, default=3, help="runs per contestant (interleaved); medians are reported")
    p.add_argument("--out", help="also write the markdown report here (and the growth plot beside it)")
    p.add_argument("--only", action="append", choices=CASES, help="run only this case (repeatable)")
    p.add_argument("--data", default=os.environ.get("AECLUST_DATA"), help="CIFAR-10 folder (default: AECLUST_DATA)")
    p.add_argument("--codes", help="a .npy file of autoencoder codes (n x 192) to use as the code-like data "
                   "(default: 192 principal components of the gray CIFAR-10 train images)")
    p.add_argument("--dask-rows", type=int, help="rows of the dask-ml case (default 1,000,000; 50,000 with --quick)")
    p.add_argument("--dask-iters", type=int, default=10, help="Lloyd iterations of the dask-ml case (fixed cap)")
    p.add_argument("--dask-chunk", type=int, help="rows per chunk in the dask-ml case (default: n/8, at most 50,000)")
    p.add_argument("--slow", type=float, default=30.0, help="do not repeat a contestant whose first run took longer")
    p.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        _child(*args._child)
        return 0
    bench = Bench(args)
    bench.load_start = load_info()
    t0 = time.perf_counter()
    cases = set(args.only or CASES)
    if cases & {"silhouette", "fused"}:
        cases.add("gemm")  # the metrics' share of the matrix-multiply rate needs it
    if cases & KMEANS_CASES:
        cases.add("compile")  # the kernel compiled (or loaded) before any k-means timing, and reported
    bench.run(cases)
    text = bench.report(time.perf_counter() - t0)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
