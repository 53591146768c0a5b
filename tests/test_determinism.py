"""Same input, same bits: the metrics and k-means do not depend on the thread count or schedule.

The data here are chosen so that the order of the float64 additions matters: a
cloud of points within 1e-8 of the origin and points a thousand units out, so
that one point's distance sums mix terms 11 orders of magnitude apart and
adding the blocks' partial sums in another order changes the last bits. A
reduction that adds partial results in the order the threads finish fails
these tests; so does a product whose bits change with the number of BLAS threads.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from aeclust import KMeans, _pairwise, cluster_quality, dunn_index
from aeclust.metrics import silhouette_samples
from aeclust.errors import InvalidInputError


def wide_range_data(seed: int, n: int = 512, d: int = 4, k: int = 3):
    """Points within 1e-8 of the origin, and 10% of them far out in opposite pairs (mean ~0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=1e-8, size=(n, d))
    far = rng.choice(n, size=n // 10, replace=False)
    half = len(far) // 2
    v = rng.normal(scale=1e3, size=(half, d))
    X[far[:half]] = v
    X[far[half : 2 * half]] = -v
    return X.astype(np.float32), rng.integers(0, k, n)


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture
def schedule(monkeypatch):
    """``schedule(threads, delays)``: the worker-thread count, and random sleeps before each task."""

    def set_schedule(threads: int, delays: bool, seed: int = 0):
        monkeypatch.setenv(_pairwise.THREADS_ENV, str(threads))
        if delays:
            rng = random.Random(seed)
            lock = __import__("threading").Lock()

            def hook():
                with lock:
                    pause = rng.random() * 0.002
                time.sleep(pause)

            monkeypatch.setattr(_pairwise, "_task_hook", hook)
        else:
            monkeypatch.setattr(_pairwise, "_task_hook", None)

    return set_schedule


SCHEDULES = [(1, False), (2, False), (4, False), (2, True), (4, True), (7, True)]


def test_metrics_are_the_same_bits_for_any_threads_and_schedule(schedule):
    X, y = wide_range_data(0)
    seen = {}
    for threads, delays in SCHEDULES:
        for rep in range(3 if delays else 1):
            schedule(threads, delays, seed=rep)
            s = silhouette_samples(X, y, tile=16)
            q = cluster_quality(X, y, tile=16)
            seen[(threads, delays, rep)] = _digest(s, np.array([q.silhouette, q.dunn,
                                                                q.min_intercluster_distance,
                                                                q.max_cluster_diameter]))
    assert len(set(seen.values())) == 1, seen


def test_the_data_make_the_summation_order_matter():
    """The check above can fail: on these data, another order of the partial sums gives other bits."""
    from aeclust.metrics import _Sorted

    X, y = wide_range_data(0)
    data = _Sorted(X, y, min_clusters=2, max_clusters_rel=-1)
    tile = 16
    blocks = np.arange(0, len(y), tile)
    # Each row block's distance sums, added block by block in two different orders.
    D = np.sqrt(np.maximum(((data.X32[:, None, :].astype(np.float64) - data.X32[None, :, :]) ** 2).sum(-1), 0))
    D = D.astype(np.float32)
    member = np.eye(data.k, dtype=np.float32)[data.codes]
    parts = [(D[:, b : b + tile] @ member[b : b + tile]).astype(np.float64) for b in blocks]
    forward = np.zeros_like(parts[0])
    backward = np.zeros_like(parts[0])
    for p in parts:
        forward += p
    for p in reversed(parts):
        backward += p
    assert not np.array_equal(forward, backward)


def test_dunn_index_is_the_same_bits_for_any_threads(schedule):
    X, y = wide_range_data(1)
    values = set()
    for threads, delays in SCHEDULES:
        schedule(threads, delays)
        values.add(dunn_index(X, y, tile=16).hex())
    assert len(values) == 1


@pytest.mark.parametrize("init", ["random", "k-means++"])
def test_kmeans_is_the_same_bits_for_any_threads_and_schedule(schedule, init):
    # Float data whose float64 cluster sums are not exact, in chunks of 1024 rows with a
    # ragged last chunk: the shapes where OpenBLAS's threaded products change the last bits.
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(2500, 512)) * rng.lognormal(sigma=2.0, size=(2500, 1))).astype(np.float32)
    seen = {}
    for threads, delays in SCHEDULES:
        schedule(threads, delays)
        km = KMeans(6, init=init, n_init=2, random_state=0).fit(X)
        seen[(threads, delays)] = (_digest(km.labels_, km.cluster_centers_, km.init_centers_),
                                   km.inertia_.hex(), km.n_iter_)
    assert len(set(seen.values())) == 1, seen


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv(_pairwise.THREADS_ENV, "3")
    assert _pairwise.cpu_count() == 3
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(_pairwise.THREADS_ENV, bad)
        with pytest.raises(InvalidInputError, match=_pairwise.THREADS_ENV):
            _pairwise.cpu_count()


def test_blas_limit_is_shared_by_threads_and_restored():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    with _pairwise.single_threaded_blas():
        with _pairwise.single_threaded_blas():
            assert all(t == 1 for t in blas_threads())
        assert all(t == 1 for t in blas_threads())  # still held by the outer user
    assert blas_threads() == before


_CHILD = r"""
import hashlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_determinism import wide_range_data, _digest
from aeclust import KMeans, cluster_quality
X, y = wide_range_data(2, n=3000, d=8, k=5)
q = cluster_quality(X, y, tile=256)
rng = np.random.default_rng(3)
Z = (rng.normal(size=(3000, 40)) * rng.lognormal(sigma=2.0, size=(3000, 1))).astype(np.float32)
km = KMeans(6, init="k-means++", n_init=2, random_state=0).fit(Z)
print(_digest(np.array([q.silhouette, q.dunn]), km.labels_, km.cluster_centers_, np.array([km.inertia_])))
"""


def _child_digest(cpus: set | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != _pairwise.THREADS_ENV}

    def pin():
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    out = subprocess.run([sys.executable, "-c", _CHILD, os.path.dirname(__file__)], env=env,
                         preexec_fn=pin, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_a_process_pinned_to_one_cpu_gives_the_same_bits():
    """The failure first seen: one CPU (BLAS threads and workers both 1) against all of them."""
    assert _child_digest({sorted(os.sched_getaffinity(0))[0]}) == _child_digest(None)


@pytest.mark.realdata
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_cifar_metrics_pinned_and_unpinned(cifar_dir):
    """``cluster_quality`` on 6,000 CIFAR-10 test images: one CPU and all CPUs give the same bits."""
    code = r"""
import sys
from aeclust import KMeans, cluster_quality
from aeclust.datasets import load_cifar10
from aeclust.preprocess import preprocess
X = preprocess(load_cifar10(sys.argv[1], split="test", progress=False).images, "gray")[:6000]
km = KMeans(10, random_state=0).fit(X)
q = cluster_quality(X, km.labels_)
print(km.inertia_.hex(), q.silhouette.hex(), q.dunn.hex())
"""

    def run(cpus):
        def pin():
            if cpus is not None:
                os.sched_setaffinity(0, cpus)

        env = {k: v for k, v in os.environ.items() if k != _pairwise.THREADS_ENV}
        out = subprocess.run([sys.executable, "-c", code, str(cifar_dir)], env=env, preexec_fn=pin,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert run({sorted(os.sched_getaffinity(0))[0]}) == run(None)


# -- whole commands: the same results.json, less the volatile fields -------------------------


def _stable(path) -> dict:
    import json

    from aeclust._io import without_volatile

    return without_volatile(json.loads(path.read_text()))


def test_cluster_twice_on_different_thread_counts_gives_the_same_results(tmp_path, monkeypatch):
    from aeclust.cli import main

    for name, threads in (("a", "1"), ("b", "3")):
        monkeypatch.setenv(_pairwise.THREADS_ENV, threads)
        assert main(["cluster", "--dataset", "digits", "--seed", "4", "--out", str(tmp_path / name), "--quiet"]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert _stable(a / "results.json") == _stable(b / "results.json")
    assert (a / "labels.npy").read_bytes() == (b / "labels.npy").read_bytes()


def test_sweep_twice_gives_the_same_results(tmp_path, monkeypatch):
    from aeclust.cli import main

    for name, threads in (("a", "2"), ("b", "1")):
        monkeypatch.setenv(_pairwise.THREADS_ENV, threads)
        assert main(["sweep", "--dataset", "digits", "--k", "2..5", "--out", str(tmp_path / name), "--quiet"]) == 0
    assert _stable(tmp_path / "a" / "sweep.json") == _stable(tmp_path / "b" / "sweep.json")


def test_run_twice_gives_the_same_results(fake_cifar, tmp_path, monkeypatch):
    """``aeclust run`` end to end on the tiny CIFAR-10 (autoencoder included), with the
    schedule of the k-means and metrics threads changed between the runs."""
    from aeclust.cli import main

    for name, threads in (("a", "1"), ("b", "4")):
        monkeypatch.setenv(_pairwise.THREADS_ENV, threads)
        assert main(["run", "--out", str(tmp_path / name), "--epochs", "2", "--device", "cpu", "--map", "--quiet"]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert _stable(a / "results.json") == _stable(b / "results.json")
    for rel in ("pixels/labels.npy", "codes/labels.npy", "codes/codes.npy", "pixels/silhouette.npy",
                "codes/silhouette.npy", "pixels/map.npy", "codes/map.npy"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.realdata
@pytest.mark.slow
def test_cifar_cluster_three_times_gives_the_same_results(cifar_dir, tmp_path):
    """Three ``aeclust cluster --seed 0`` processes on the real data, on 1, 2 and 3 worker threads."""
    runs = []
    for threads in ("1", "2", "3"):
        out = tmp_path / f"t{threads}"
        env = {**os.environ, _pairwise.THREADS_ENV: threads, "AECLUST_DATA": str(cifar_dir)}
        proc = subprocess.run([sys.executable, "-m", "aeclust", "cluster", "--seed", "0", "--out", str(out),
                               "--quiet"], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append((_stable(out / "results.json"), (out / "labels.npy").read_bytes()))
    assert runs[0] == runs[1] == runs[2]
