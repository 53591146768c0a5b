"""K-means and the metrics on a real dask.distributed LocalCluster (worker processes on 127.0.0.1).

One cluster of 2 Nanny-managed worker processes serves the whole module; the
worker-kill tests SIGKILL one worker process and wait for its Nanny to bring it back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("dask.distributed")

import dask.array as da  # noqa: E402

from aeclust import KMeans, cluster_quality  # noqa: E402
from aeclust import distributed as dd  # noqa: E402
from aeclust import metrics, pipeline  # noqa: E402
from aeclust.errors import InvalidInputError  # noqa: E402
from aeclust.kmeans import ConvergenceWarning  # noqa: E402

from helpers.data import make_blobs  # noqa: E402


@pytest.fixture(scope="module")
def client():
    c = dd.connect("local:2")
    try:
        c.wait_for_workers(2, timeout=60)
        yield c
    finally:
        dd.close(c)


def _flat_keys(arr) -> list:
    def walk(keys):
        for key in keys:
            if isinstance(key, list):
                yield from walk(key)
            else:
                yield key
    return list(walk(arr.__dask_keys__()))


def _kill_a_worker(client, holding=None) -> str:
    """SIGKILL one worker process (one that holds a key named in ``holding``, if given)."""
    pids = client.run(os.getpid)
    addresses = sorted(pids)
    if holding is not None:
        has = client.has_what()
        addresses = [a for a in addresses if any(str(k) in holding for k in has.get(a, ()))]
        assert addresses, "no worker holds the keys to be lost"
    os.kill(pids[addresses[0]], signal.SIGKILL)
    return addresses[0]


def _blobs(n=6000, d=24, k=6, spread=2.0, seed=0):
    X, _ = make_blobs(n=n, d=d, k=k, spread=spread, seed=seed)
    init = X[np.random.default_rng(seed).choice(len(X), k, replace=False)]
    return X, init


def test_import_aeclust_does_not_import_dask():
    code = "import sys, aeclust, aeclust.kmeans, aeclust.distributed; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("bad", ["", "local:0", "local:x", "host:8786", "8786"])
def test_connect_rejects_bad_scheduler_strings(bad):
    with pytest.raises(InvalidInputError):
        dd.connect(bad)


def test_connect_reports_an_unreachable_scheduler():
    from aeclust.errors import AeclustError

    with pytest.raises(AeclustError, match="cannot reach"):
        dd.connect("tcp://127.0.0.1:9", timeout="1s")


def test_local_cluster_is_on_loopback_with_process_workers(client):
    info = client.scheduler_info()
    assert client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert len(info["workers"]) == 2
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in info["workers"])
    pids = client.run(os.getpid)
    assert os.getpid() not in pids.values() and len(set(pids.values())) == 2


@pytest.mark.parametrize("chunks", [1000, 1750])
def test_kmeans_equals_in_memory_from_the_same_centres(client, chunks):
    X, init = _blobs()
    mem = KMeans(6, init=init).fit(X)
    dist = KMeans(6, init=init).fit(da.from_array(X, chunks=(chunks, -1)))
    assert isinstance(dist.labels_, da.Array)
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    assert dist.inertia_ == pytest.approx(mem.inertia_, rel=1e-6)
    assert dist.n_iter_ == mem.n_iter_ and dist.converged_
    np.testing.assert_allclose(dist.cluster_centers_, mem.cluster_centers_, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(dist.init_centers_, init)


def test_random_init_draws_the_in_memory_rows(client):
    X, _ = _blobs(seed=1)
    mem = KMeans(6, random_state=7, n_init=2).fit(X)
    dist = KMeans(6, random_state=7, n_init=2).fit(da.from_array(X, chunks=(1500, -1)))
    np.testing.assert_array_equal(dist.init_centers_, mem.init_centers_)
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    assert dist.inertia_ == pytest.approx(mem.inertia_, rel=1e-6)


def test_empty_clusters_are_reseeded_as_in_memory(client):
    X, init = _blobs(n=3000, k=5, seed=2)
    init = init.copy()
    init[3] = 1e3  # far from everything: empty after the first assignment
    init[4] = -1e3
    mem = KMeans(5, init=init).fit(X)
    dist = KMeans(5, init=init).fit(da.from_array(X, chunks=(700, -1)))
    assert mem.n_empty_clusters_ >= 2
    assert dist.n_empty_clusters_ == mem.n_empty_clusters_
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    assert dist.inertia_ == pytest.approx(mem.inertia_, rel=1e-6)


def test_max_iter_cap_matches_in_memory_and_warns(client):
    X, init = _blobs(n=3000, spread=4.0, seed=3)
    with pytest.warns(ConvergenceWarning):
        mem = KMeans(6, init=init, max_iter=2).fit(X)
    with pytest.warns(ConvergenceWarning):
        dist = KMeans(6, init=init, max_iter=2).fit(da.from_array(X, chunks=(800, -1)))
    assert not dist.converged_ and dist.n_iter_ == 2
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    np.testing.assert_allclose(dist.cluster_centers_, mem.cluster_centers_, atol=1e-4)
    assert dist.inertia_ == pytest.approx(mem.inertia_, rel=1e-6)


def test_kmeans_parallel_init_is_as_good_as_kmeans_plus_plus(client):
    X, _ = make_blobs(n=6000, d=16, k=8, spread=0.5, seed=4)
    Xd = da.from_array(X, chunks=(1000, -1))
    centers = dd.kmeans_parallel_init(Xd, 8, random_state=0)
    assert centers.shape == (8, 16) and centers.dtype == np.float32
    assert len({tuple(c) for c in centers}) == 8
    par = KMeans(8, init="k-means||", random_state=0).fit(Xd)
    pp = KMeans(8, init="k-means++", random_state=0).fit(X)
    # Well separated blobs: both seedings find the eight blobs.
    assert par.inertia_ == pytest.approx(pp.inertia_, rel=1e-3)
    again = KMeans(8, init="k-means||", random_state=0).fit(Xd)
    np.testing.assert_array_equal(again.init_centers_, par.init_centers_)


def test_dask_rows_given_to_fit_and_to_kmeans_parallel(client):
    X, init = _blobs(n=3000, seed=11)
    rows = dd.DaskRows(da.from_array(X, chunks=(1000, -1)), chunk_rows=700, persist=False)
    assert rows.shape == X.shape and rows.sizes == [700] * 4 + [200]
    via_rows = KMeans(6, init=init).fit(rows)
    via_function = dd.fit_kmeans(KMeans(6, init=init), X, chunk_rows=700)
    np.testing.assert_array_equal(via_rows.labels_.compute(), via_function.labels_.compute())
    assert via_rows.inertia_ == via_function.inertia_
    # k-means|| draws per chunk: the same chunks, the same centres.
    centers = dd.kmeans_parallel_init(rows, 6, random_state=3)
    np.testing.assert_array_equal(centers, dd.kmeans_parallel_init(da.from_array(X, chunks=(700, -1)), 6,
                                                                   random_state=3))
    assert dd.SilhouetteEstimate is metrics.SilhouetteEstimate


def _grid_weights(n=3000, d=6, seed=20):
    """Data on a grid of eighths and integer weights: every float64 sum is exact, so the
    chunks' fresh sums and the in-memory running sums are the same numbers."""
    rng = np.random.default_rng(seed)
    X = (rng.integers(-40, 40, size=(n, d)) / 8).astype(np.float32)
    w = rng.integers(0, 4, size=n).astype(np.float64)
    return X, w


def test_weighted_kmeans_equals_in_memory_to_the_bit(client):
    X, w = _grid_weights()
    init = X[np.flatnonzero(w)[:6]].copy()
    mem = KMeans(6, init=init).fit(X, sample_weight=w)
    dist = KMeans(6, init=init).fit(da.from_array(X, chunks=(700, -1)), sample_weight=w)
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    np.testing.assert_array_equal(dist.cluster_centers_, mem.cluster_centers_)
    assert (dist.inertia_, dist.n_iter_, dist.converged_) == (mem.inertia_, mem.n_iter_, mem.converged_)
    # The same draw of initial rows, with the weights (also a dask array of weights).
    mem = KMeans(6, random_state=4, n_init=2).fit(X, sample_weight=w)
    dist = dd.fit_kmeans(KMeans(6, random_state=4, n_init=2), X, chunk_rows=900,
                         sample_weight=da.from_array(w, chunks=500))
    np.testing.assert_array_equal(dist.init_centers_, mem.init_centers_)
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    assert dist.inertia_ == mem.inertia_


def test_weighted_empty_clusters_are_reseeded_as_in_memory(client):
    X, init = _blobs(n=3000, k=5, seed=21)
    w = np.random.default_rng(21).exponential(size=3000)
    w[np.argsort(-np.abs(X).sum(axis=1))[:40]] = 0.0  # the outermost points weigh nothing
    init = init.copy()
    init[3], init[4] = 1e3, -1e3  # empty after the first assignment
    mem = KMeans(5, init=init).fit(X, sample_weight=w)
    dist = KMeans(5, init=init).fit(da.from_array(X, chunks=(700, -1)), sample_weight=w)
    assert mem.n_empty_clusters_ >= 2 and dist.n_empty_clusters_ == mem.n_empty_clusters_
    np.testing.assert_array_equal(dist.labels_.compute(), mem.labels_)
    np.testing.assert_allclose(dist.cluster_centers_, mem.cluster_centers_, rtol=0, atol=1e-4)
    assert dist.inertia_ == pytest.approx(mem.inertia_, rel=1e-6)


def test_weighted_kmeans_parallel_leaves_weightless_points_alone(client):
    X, y = make_blobs(n=6000, d=16, k=8, spread=0.5, seed=22)
    w = np.where(y == 0, 0.0, 1.0 + np.random.default_rng(22).random(6000))  # blob 0 weighs nothing
    Xd = da.from_array(X, chunks=(1000, -1))
    par = KMeans(7, init="k-means||", random_state=0).fit(Xd, sample_weight=w)
    pp = KMeans(7, init="k-means++", random_state=0).fit(X, sample_weight=w)
    assert par.inertia_ == pytest.approx(pp.inertia_, rel=1e-3)  # the seven weighted blobs, both ways
    blob0 = X[y == 0].mean(axis=0)
    nearest = np.sqrt(((par.init_centers_ - blob0) ** 2).sum(axis=1)).min()
    assert nearest > 5.0  # no initial centre near the weightless blob
    again = KMeans(7, init="k-means||", random_state=0).fit(Xd, sample_weight=w)
    np.testing.assert_array_equal(again.init_centers_, par.init_centers_)
    with pytest.raises(InvalidInputError, match="give sample_weight to the rows object"):
        KMeans(7).fit(dd.DaskRows(Xd), sample_weight=w)
    with pytest.raises(InvalidInputError, match="Negative values"):
        KMeans(7).fit(Xd, sample_weight=-w)


def test_exact_metrics_equal_in_memory(client):
    X, _ = _blobs(n=2500, d=12, k=5, seed=5)
    y = np.random.default_rng(0).integers(0, 5, size=len(X)) * 3 + 10  # arbitrary label values
    y[:1200] = KMeans(5, random_state=0).fit(X).labels_[:1200]
    mem = cluster_quality(X, y)
    for labels in (y, da.from_array(y, chunks=700)):
        got = dd.cluster_quality(da.from_array(X, chunks=(900, -1)), labels, chunk_rows=600)
        assert got.silhouette == pytest.approx(mem.silhouette, abs=1e-6)
        assert got.dunn == pytest.approx(mem.dunn, rel=1e-9)
        assert got.min_intercluster_distance == pytest.approx(mem.min_intercluster_distance, rel=1e-9)
        assert got.max_cluster_diameter == pytest.approx(mem.max_cluster_diameter, rel=1e-9)
        assert (got.n_samples, got.n_clusters) == (mem.n_samples, mem.n_clusters)
    assert dd.silhouette_score(X, y, chunk_rows=500) == pytest.approx(mem.silhouette, abs=1e-6)
    assert dd.dunn_index(X, y, chunk_rows=500) == pytest.approx(mem.dunn, rel=1e-9)


def test_dunn_is_exact_for_near_duplicates_across_chunks(client):
    # A 1e-3 gap at norm ~1e3 is noise in float32; the float64 re-measurement must recover it.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(900, 20)) + 1000.0
    X[850] = X[3] + 1e-3  # the closest pair sits in two different chunks
    y = np.arange(900) % 4
    y[3], y[850] = 0, 1
    expected = metrics.dunn_index(X, y)
    assert dd.dunn_index(X, y, chunk_rows=256) == pytest.approx(expected, rel=1e-9)
    assert dd.cluster_quality(X, y, chunk_rows=256).min_intercluster_distance == pytest.approx(
        np.sqrt(np.sum((X[3] - X[850]) ** 2)), rel=1e-9)


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.ones((5, 2)), np.zeros(5), "at least 2"),
        (np.ones((5, 2)), np.zeros(4), "length 4"),
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), np.array([0, 1, 1]), "NaN"),
        (np.ones(5), np.zeros(5), "2-D"),
        (np.arange(8.0).reshape(4, 2), np.arange(4), "n_samples - 1"),
    ],
)
def test_metric_input_errors(client, X, y, match):
    with pytest.raises(ValueError, match=match):
        dd.cluster_quality(X, y)


def test_dask_labels_are_checked_as_in_memory_without_being_computed(client):
    X = np.ones((5, 2))
    with pytest.raises(ValueError, match="1-D") as on_dask:
        dd.cluster_quality(X, da.zeros((5, 2), chunks=2))
    with pytest.raises(ValueError, match="1-D") as in_memory:
        cluster_quality(X, np.zeros((5, 2)))
    assert str(on_dask.value) == str(in_memory.value)
    with pytest.raises(ValueError, match="length 4"):
        dd.cluster_quality(X, da.zeros(4, chunks=2))
    with pytest.raises(ValueError, match="labels contains NaN"):
        dd.cluster_quality(np.arange(10.0).reshape(5, 2), da.from_array(np.array([0, 1, np.nan, 0, 1]), chunks=2))


def test_sampled_silhouette(client):
    X, _ = _blobs(n=3000, d=12, k=5, spread=4.0, seed=6)
    y = KMeans(5, random_state=0).fit(X).labels_
    exact = metrics.silhouette_score(X, y)
    full = dd.sampled_silhouette(X, y, n_sampled=len(X), chunk_rows=800)
    assert full.estimate == pytest.approx(exact, abs=1e-6)
    assert full.low == full.high == full.estimate and full.std_error == 0.0
    est = dd.sampled_silhouette(X, y, n_sampled=400, random_state=1, chunk_rows=800)
    assert est.n_sampled == 400 and est.low < est.estimate < est.high
    assert est.low <= exact <= est.high
    assert abs(est.estimate - exact) < 4 * est.std_error


def test_worker_killed_mid_kmeans_does_not_change_the_result(client):
    X, _ = make_blobs(n=6000, d=16, k=8, spread=4.0, seed=7)
    init = X[np.random.default_rng(7).choice(len(X), 8, replace=False)]
    Xd = da.from_array(X, chunks=(1000, -1))
    calm = KMeans(8, init=init).fit(Xd)
    assert calm.n_iter_ >= 5
    killed = []

    chunk_keys = {str(key) for key in _flat_keys(Xd)}

    def kill_at_second_iteration(it, centers):
        if it == 2 and not killed:
            # A worker that holds persisted chunks of X: they are lost and must be rebuilt.
            killed.append(_kill_a_worker(client, chunk_keys))

    hit = KMeans(8, init=init)
    dd.fit_kmeans(hit, Xd, callback=kill_at_second_iteration)
    assert killed
    np.testing.assert_array_equal(hit.labels_.compute(), calm.labels_.compute())
    np.testing.assert_array_equal(hit.cluster_centers_, calm.cluster_centers_)
    assert hit.inertia_ == calm.inertia_ and hit.n_iter_ == calm.n_iter_
    client.wait_for_workers(2, timeout=60)


def test_worker_killed_mid_metrics_does_not_change_the_result(client):
    X, _ = _blobs(n=6000, d=32, k=6, seed=8)
    y = np.random.default_rng(1).integers(0, 6, size=len(X))
    Xd = da.from_array(X, chunks=(500, -1))
    calm = dd.cluster_quality(Xd, y, chunk_rows=500)
    box = {}
    runner = threading.Thread(target=lambda: box.update(q=dd.cluster_quality(Xd, y, chunk_rows=500)))
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        processing = client.processing()
        if any("_pair_block" in str(key) for keys in processing.values() for key in keys):
            break
        time.sleep(0.01)
    assert runner.is_alive(), "the metrics finished before a worker could be killed"
    _kill_a_worker(client)
    runner.join(timeout=120)
    assert not runner.is_alive() and "q" in box
    assert box["q"] == calm
    client.wait_for_workers(2, timeout=60)


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_cluster_on_scheduler_local(client):
    X, _ = _blobs(n=2000, d=8, k=4, seed=9)
    km, q = pipeline.cluster_on_scheduler(X, 4, 0, "local:1", chunk_rows=512)
    mem = KMeans(4, random_state=0).fit(X)
    assert isinstance(km.labels_, np.ndarray)
    np.testing.assert_array_equal(km.labels_, mem.labels_)
    ref = cluster_quality(X, mem.labels_)
    assert q.silhouette == pytest.approx(ref.silhouette, abs=1e-6)
    assert q.dunn == pytest.approx(ref.dunn, rel=1e-9)


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_same_bits_on_any_scheduler_and_worker_count(client, scheduler):
    """The partial results are combined in a fixed tree, whichever workers finish first."""
    from test_determinism import wide_range_data

    X, y = wide_range_data(0, n=900, d=4, k=3)
    Z, init = _blobs(n=3000, d=24, k=6, spread=4.0)
    on_client = dd.cluster_quality(X, y, chunk_rows=64)
    km_client = KMeans(6, init="k-means++", random_state=1).fit(da.from_array(Z, chunks=(700, -1)))
    import dask

    with dask.config.set(scheduler=scheduler, num_workers=4):
        here = dd.cluster_quality(X, y, chunk_rows=64)
        km_here = KMeans(6, init="k-means++", random_state=1).fit(da.from_array(Z, chunks=(700, -1)))
        labels_here = km_here.labels_.compute()
    assert here == on_client  # every field, to the bit
    np.testing.assert_array_equal(labels_here, km_client.labels_.compute())
    assert km_here.cluster_centers_.tobytes() == km_client.cluster_centers_.tobytes()
    assert km_here.inertia_ == km_client.inertia_


def test_metrics_on_dask_against_in_memory_within_the_stated_bound(client):
    """Not the same bits (the in-memory pass sums each cluster over rows sorted by cluster,
    the chunks over rows where they lie), but within the bound the docs state."""
    from test_determinism import wide_range_data

    X, y = wide_range_data(1, n=900, d=4, k=3)
    mem = cluster_quality(X, y)
    got = dd.cluster_quality(X, y, chunk_rows=64)
    assert abs(got.silhouette - mem.silhouette) <= 1e-6
    assert got.dunn == mem.dunn or got.dunn == pytest.approx(mem.dunn, rel=1e-12)


@pytest.mark.realdata
def test_cifar_kmeans_and_metrics_on_the_cluster(client, cifar_test_gray):
    X = cifar_test_gray
    Xd = da.from_array(X, chunks=(5000, -1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        Xd = Xd.persist()
    mem = KMeans(10, random_state=0).fit(X)
    dist = KMeans(10, random_state=0).fit(Xd)
    np.testing.assert_array_equal(dist.init_centers_, mem.init_centers_)
    labels = dist.labels_.compute()
    # Pixels scaled from integers make every float64 cluster sum exact, in memory and in
    # chunks alike, and the inertia is one correctly rounded sum: the same bits.
    np.testing.assert_array_equal(labels, mem.labels_)
    assert dist.cluster_centers_.tobytes() == mem.cluster_centers_.tobytes()
    assert dist.inertia_ == mem.inertia_ and dist.n_iter_ == mem.n_iter_
    # The metrics themselves are exact: on the same labels they agree with the in-memory pass.
    sub = slice(0, 4000)
    ref = cluster_quality(X[sub], mem.labels_[sub])
    got = dd.cluster_quality(Xd[sub], mem.labels_[sub])
    assert got.silhouette == pytest.approx(ref.silhouette, abs=1e-6)
    assert got.dunn == pytest.approx(ref.dunn, rel=1e-9)
