"""The report on its own: figures and the HTML page from small hand-made results.

The results dictionaries here have the shape that :func:`aeclust.pipeline.run`
and :func:`aeclust.seeds.run_seeds` give, filled with made-up numbers, so that
the page and its figures are checked in seconds, without training anything.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from aeclust import report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_IMAGES = 40
K = 3
CLASS_NAMES = ["zero", "one", "two"]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, after checking its signature and header chunk."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0 and height > 0
    assert data.rstrip(b"\0")[-8:-4] == b"IEND", f"{path} is cut short"
    return width, height


def fake_images(n: int = N_IMAGES, seed: int = 0) -> np.ndarray:
    """Digits-sized uint8 grayscale images (n, 8, 8): 8 is a multiple of 4, as the autoencoder wants."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8), dtype=np.uint8)


def collapse_record(collapsed: bool) -> dict:
    return {"rule": "collapsed when most code features are constant", "collapsed": collapsed,
            "constant_code_features": 12 if collapsed else 0, "n_code_features": 12, "n_images": N_IMAGES,
            "reconstruction_mse": 0.06125, "mean_image_mse": 0.0625, "mse_ratio": 0.98 if collapsed else 0.41}


def feature_set(description: str, silhouette, dunn, *, study=None, external=None, meaningful=True,
                warnings=()) -> dict:
    fs = {"description": description, "n_features": 64,
          "kmeans": {"n_clusters": K, "n_iter": 7, "inertia": 12345.678, "converged": True},
          "metrics": {"silhouette": silhouette, "dunn": dunn, "n_samples": N_IMAGES, "n_clusters": K},
          "study": study, "meaningful": meaningful, "warnings": list(warnings), "timings": {}}
    if external is not None:
        fs["external"] = external
    return fs


def run_results(*, dataset: str = "digits", external: bool = True, autoencoder: bool = True) -> dict:
    """A results dictionary shaped as ``aeclust.pipeline.run`` returns it."""
    ext = {"acc": 0.4321, "nmi": 0.2468, "ari": 0.1357, "purity": 0.5555} if external else None
    results = {
        "job": "run",
        "title": f"{dataset} ({N_IMAGES} samples), k = {K}, seed 0",
        "config": {"dataset": dataset, "k": K, "seed": 0, "n_train": 100, "n_test": N_IMAGES,
                   "class_names": CLASS_NAMES},
        "feature_sets": {
            "pixels": feature_set("grayscale pixels", 0.0612, 0.0833,
                                  study={"silhouette": 0.054, "dunn": 0.0899}, external=ext),
            "codes": feature_set("autoencoder codes (gray input, 3x2x2)", 0.1177, 0.0219,
                                 study={"silhouette": 0.104, "dunn": 0.02}, external=ext),
        },
        "autoencoders": {},
        "timings": {"total": 1.5},
        "versions": {"aeclust": "test"},
    }
    if autoencoder:
        results["autoencoders"]["autoencoder"] = {
            "history": [{"epoch": e, "train_loss": 0.08 / e, "test_loss": 0.09 / e} for e in (1, 2, 3)],
            "seconds": 1.0, "parameters": 100, "folder": "autoencoder",
            "config": {"color": "gray", "seed": 0, "init": "keras"}, "collapse": collapse_record(False)}
    return results


def write_labels(run_dir: Path, results: dict, seed: int = 0, *, extras: bool = True) -> None:
    """What the pipeline leaves in ``<run>/<feature set>/``: the cluster labels and, with
    ``extras``, the per-sample silhouettes and a map of 30 of the samples."""
    rng = np.random.default_rng(seed)
    for name in results["feature_sets"]:
        folder = run_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        labels = np.arange(N_IMAGES) % K
        np.save(folder / "labels.npy", rng.permutation(labels))
        if extras:
            np.save(folder / "silhouette.npy", rng.uniform(-0.2, 0.6, N_IMAGES).astype(np.float32))
            np.save(folder / "map_rows.npy", np.sort(rng.choice(N_IMAGES, 30, replace=False)).astype(np.int64))
            np.save(folder / "map.npy", rng.normal(size=(30, 2)).astype(np.float32))


def true_classes() -> np.ndarray:
    return np.arange(N_IMAGES) % len(CLASS_NAMES)


def seeds_results(*, with_study: bool = True, collapsed_seed: int | None = 1) -> dict:
    """A results dictionary shaped as ``aeclust.seeds.run_seeds`` returns it (three seeds)."""
    from aeclust.seeds import summarize

    per_seed = {}
    for seed in (0, 1, 2):
        res = run_results(dataset="cifar10")
        res["feature_sets"]["pixels"]["metrics"].update(silhouette=0.06 + seed / 1000, dunn=0.08 + seed / 1000)
        if seed == collapsed_seed:
            res["feature_sets"]["codes"]["meaningful"] = False
            res["feature_sets"]["codes"]["metrics"].update(silhouette=None, dunn=None)
            res["autoencoders"]["autoencoder"]["collapse"] = collapse_record(True)
        else:
            res["feature_sets"]["codes"]["metrics"].update(silhouette=0.11 + seed / 1000, dunn=0.02)
        per_seed[seed] = res
    rows, summary = summarize(per_seed)
    return {"job": "run-seeds", "title": "CIFAR-10 test set, seeds 0..2", "config": {"dataset": "cifar10"},
            "seeds": [0, 1, 2], "per_seed": rows, "summary": summary,
            "study": {"pixels": {"silhouette": 0.054, "dunn": 0.0899}} if with_study else {},
            "folders": {str(s): f"seed-{s}" for s in (0, 1, 2)}, "timings": {"total": 3.0},
            "versions": {"aeclust": "test"}}


def assert_self_contained(page: str, run_dir: Path) -> None:
    """Every image is a data URI of a PNG file in ``figures/``, and nothing else is fetched."""
    sources = re.findall(r"src='([^']*)'", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "<script" not in page and "url(" not in page
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    on_disk = {p.read_bytes() for p in (run_dir / "figures").glob("*.png")}
    assert embedded == on_disk


# -- aeclust run's page ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model():
    torch = pytest.importorskip("torch")
    from aeclust.autoencoder import AutoencoderConfig, ConvAutoencoder

    torch.manual_seed(0)
    return ConvAutoencoder(AutoencoderConfig(color="gray"))


def test_run_report_is_one_page_with_every_figure(tmp_path, tiny_model):
    results = run_results()
    write_labels(tmp_path, results)
    (tmp_path / "codes").mkdir(exist_ok=True)
    # A learned feature set's training history, beside its weights, gets its own loss curve.
    results["feature_sets"]["simclr"] = feature_set("SimCLR features", 0.2, 0.03, external=None)
    write_labels(tmp_path, {"feature_sets": {"simclr": None}})
    (tmp_path / "simclr" / "model").mkdir()
    (tmp_path / "simclr" / "model" / "history.json").write_text(
        json.dumps([{"epoch": 1, "loss": 5.0}, {"epoch": 2, "loss": 4.0}]))

    path = report.build_run_report(tmp_path, results, models={"gray": tiny_model}, images=fake_images(),
                                   labels=true_classes())

    assert path == tmp_path / "report.html"
    page = path.read_text()
    expected = {"loss_curve", "reconstructions", "codes", "loss_curve_simclr",
                *(f"{kind}_{n}" for n in results["feature_sets"]
                  for kind in ("clusters", "confusion", "silhouette", "map"))}
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == expected
    for name in expected:
        png_size(tmp_path / "figures" / f"{name}.png")
    assert_self_contained(page, tmp_path)
    for fig_id in ("loss_curve", "reconstructions", "codes", "loss-simclr", "clusters-pixels", "confusion-codes",
                   "silhouette-pixels", "silhouette-simclr", "map-codes"):
        assert f"id='fig-{fig_id}'" in page
    assert "fit it best (highest silhouette)" in page and "No map of" not in page
    # This run's numbers beside the study's, and the scores against the true classes.
    for number in ("0.0612", "0.0833", "0.1177", "0.0219", "0.0540", "0.0899", "0.1040", "0.0200",
                   "0.4321", "0.2468", "0.1357", "0.5555", "12345.7"):
        assert number in page
    assert "<table id='metrics'>" in page and "<table id='external'>" in page
    assert "data-collapsed='false'" in page
    # The literature's CIFAR-10 rows belong on a CIFAR-10 page only.
    assert "(literature)" not in page


def test_figures_keep_their_size(tmp_path):
    """A figure's pixel size follows its figsize at 110 dpi (cropped to its drawing, so at most that)."""
    history = [{"epoch": e, "train_loss": 1.0 / e} for e in (1, 2, 3)]
    width, height = png_size(report.plot_loss_curve(history, tmp_path / "loss.png"))
    assert 0.8 * 6 * 110 < width <= 6 * 110 + 2 and 0.8 * 3.6 * 110 < height <= 3.6 * 110 + 2


def test_collapsed_and_missing_metrics(tmp_path):
    results = run_results(dataset="cifar10")
    codes = results["feature_sets"]["codes"]
    codes["meaningful"] = False
    codes["metrics"].update(silhouette=None, dunn=None)
    codes["warnings"] = ["the autoencoder collapsed"]
    results["autoencoders"]["autoencoder"]["collapse"] = collapse_record(True)
    # A feature set recorded without any metrics at all still gets its row.
    results["feature_sets"]["pca"] = feature_set("PCA of grayscale pixels", None, None)
    results["feature_sets"]["pca"]["metrics"] = None
    write_labels(tmp_path, results)

    page = report.build_run_report(tmp_path, results, models={}, images=fake_images(),
                                   labels=true_classes()).read_text()

    row = re.search(r"<tr data-feature-set='codes'[^>]*>.*?</tr>", page).group(0)
    assert "not-meaningful" in row and "—" in row and "not meaningful" in row
    assert "class='alert'" in page and "WARNING" in page and "data-collapsed='true'" in page
    pca_row = re.search(r"<tr data-feature-set='pca'>.*?</tr>", page).group(0)
    assert pca_row.count("—") >= 4
    assert "(literature)" in page  # a CIFAR-10 run compares with the published scores
    rows = report.metrics_rows(results)
    assert [r["silhouette"] for r in rows] == [0.0612, None, None]


def test_no_true_classes(tmp_path):
    results = run_results(external=False)
    write_labels(tmp_path, results)

    page = report.build_run_report(tmp_path, results, models={}, images=fake_images(), labels=None).read_text()

    assert not list((tmp_path / "figures").glob("confusion_*"))
    assert {p.stem for p in (tmp_path / "figures").glob("clusters_*")} == {"clusters_pixels", "clusters_codes"}
    assert "<table id='external'>" not in page and "<table id='metrics'>" in page
    assert report.external_rows(results) == []
    assert_self_contained(page, tmp_path)


def test_no_images(tmp_path):
    """A feature matrix has no images: no image figures, still the tables and the loss curve."""
    results = run_results()
    write_labels(tmp_path, results)

    page = report.build_run_report(tmp_path, results, models={}, images=None, labels=true_classes()).read_text()

    stems = {p.stem for p in (tmp_path / "figures").glob("*.png")}
    assert stems == {"loss_curve", "confusion_pixels", "confusion_codes", "silhouette_pixels", "silhouette_codes",
                     "map_pixels", "map_codes"}  # maps without thumbnails
    assert "0.0612" in page and "0.4321" in page
    assert_self_contained(page, tmp_path)


def test_nothing_to_draw(tmp_path):
    """No autoencoder, no images, no classes: a page of tables and no figures."""
    results = run_results(external=False, autoencoder=False)
    write_labels(tmp_path, results, extras=False)  # a run from before silhouettes and maps were saved

    page = report.build_run_report(tmp_path, results, models={}, images=None, labels=None).read_text()

    assert "<figure" not in page and "src=" not in page
    assert not (tmp_path / "figures").exists() or not list((tmp_path / "figures").iterdir())
    assert "0.0612" in page and page.rstrip().endswith("</html>")
    assert "No map of pixels, codes: the run holds no map.npy" in page  # said, not silently left out


def test_html_escapes_names(tmp_path):
    results = run_results(external=False, autoencoder=False)
    results["title"] = "<script>alert(1)</script>"
    results["feature_sets"]["pixels"]["description"] = "a <b>bold</b> & odd name"
    write_labels(tmp_path, results)

    page = report.build_run_report(tmp_path, results, models={}, images=None, labels=None).read_text()

    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; odd name" in page


# -- aeclust run --seeds's page -----------------------------------------------------------------

def test_seeds_report(tmp_path):
    results = seeds_results()

    path = report.build_seeds_report(tmp_path, results)

    page = path.read_text()
    png_size(tmp_path / "figures" / "seeds.png")
    assert_self_contained(page, tmp_path)
    assert "<table id='seed-summary'>" in page and "<table id='per-seed'>" in page
    assert "0.0610 ± 0.0010" in page  # pixels' silhouette over the three seeds
    assert "<td>3 (1 left out)</td>" in page  # the collapsed seed's codes are counted, not averaged
    assert "0.0540" in page and "dashed orange" in page
    assert "seed 1 collapsed" in page and "red crosses" in page
    for seed in (0, 1, 2):
        assert f"<a href='seed-{seed}/report.html'>" in page


def test_seeds_report_without_study_or_collapse(tmp_path):
    page = report.build_seeds_report(tmp_path, seeds_results(with_study=False, collapsed_seed=None)).read_text()

    png_size(tmp_path / "figures" / "seeds.png")
    assert "dashed orange" not in page and "red crosses" not in page and "WARNING" not in page


# -- no global matplotlib state ------------------------------------------------------------------

def test_drawing_leaves_matplotlib_alone(tmp_path):
    """Drawing every kind of figure neither imports pyplot nor changes the caller's backend.

    In a fresh interpreter, since this test session may have imported pyplot already.
    """
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path

        import matplotlib
        matplotlib.use("svg")  # a caller's own choice, which drawing must not override
        import aeclust
        from aeclust import report, sweep

        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_report as t

        out = Path({str(tmp_path)!r})
        results = t.run_results()
        t.write_labels(out / "run", results)
        report.build_run_report(out / "run", results, models={{}}, images=t.fake_images(), labels=t.true_classes())
        report.build_seeds_report(out / "seeds", t.seeds_results())
        rows = [{{"k": k, "inertia": 10.0 / k, "silhouette": 0.1 * k, "dunn": 0.01, "n_iter": 3,
                  "seconds": 0.1}} for k in (2, 3, 4)]
        sweep.plot_sweep(rows, out / "sweep.png")
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        print(len(list(out.rglob("*.png"))))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # loss, clusters, confusion, silhouette, map, seeds, sweep
    assert int(done.stdout.split()[-1]) == 1 + 2 + 2 + 2 + 2 + 1 + 1


# -- silhouettes, best- and worst-fitting members, maps ------------------------------------------

def captured_figures(monkeypatch) -> list:
    """Patch the report's PNG writer to keep each figure it writes, for its texts to be read."""
    kept = []
    save = report._save

    def keep(fig, path, **kwargs):
        kept.append(fig)
        return save(fig, path, **kwargs)

    monkeypatch.setattr(report, "_save", keep)
    return kept


def texts(fig) -> list[str]:
    """Every piece of text a figure shows: titles, tick labels, legends, annotations."""
    from matplotlib.text import Text

    fig.canvas.draw()  # ticks get their labels when drawn
    return [t.get_text() for t in fig.findobj(Text) if t.get_text() and t.get_visible()]


def test_members_that_fit_best_and_worst():
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 0])
    s = np.array([0.5, 0.1, -0.3, 0.2, 0.9, -0.1, 0.5, 0.0, 0.1, -0.3])

    members = report.cluster_members(labels, s, per_cluster=3)

    assert list(members[0]) == ["fits best", "random members", "fits worst"]
    # Highest first, lowest first; equal silhouettes in row order (rows 0 and 6; rows 2 and 9).
    assert members[0]["fits best"].tolist() == [4, 0, 6]
    assert members[0]["fits worst"].tolist() == [2, 9, 8]
    assert members[1]["fits best"].tolist() == [3, 1, 7]
    assert members[1]["fits worst"].tolist() == [5, 7, 1]
    for c in (0, 1):
        picked = members[c]["random members"]
        assert len(set(picked)) == 3 and set(labels[picked]) == {c}
    # The random members are the ones the grid showed before it had silhouettes.
    alone = report.cluster_members(labels, None, per_cluster=3)
    assert list(alone[0]) == ["random members"]
    assert all(np.array_equal(alone[c]["random members"], members[c]["random members"]) for c in (0, 1))


def test_member_rows_are_labelled_plainly(tmp_path, monkeypatch):
    kept = captured_figures(monkeypatch)
    labels = np.arange(N_IMAGES) % K
    s = np.linspace(-0.5, 0.5, N_IMAGES)

    path = report.plot_cluster_grid(fake_images(), labels, tmp_path / "grid.png", silhouettes=s, title="t")

    words = texts(kept[-1])
    for kind in ("fits best", "random members", "fits worst"):
        assert words.count(kind) == K
    sizes = np.bincount(labels)
    assert [w for w in words if w.startswith("cluster")] == [f"cluster {c}\n(n={sizes[c]})" for c in range(K)]
    width, height = png_size(path)
    # Each 8 x 8 image drawn as whole squares of screen pixels: 8 per row, 3 rows per cluster.
    zoom = round(68 / 10)
    assert width == (8 * 10 + 2) * zoom + 120 + 80
    assert height == (K * (3 * 10 + 2) + (K - 1) * 6) * zoom + 40 + 6


def test_silhouette_plot(tmp_path, monkeypatch):
    kept = captured_figures(monkeypatch)
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    s = np.random.default_rng(0).uniform(-0.3, 0.8, 100)

    path = report.plot_silhouette(s, labels, tmp_path / "silhouette.png", title="title")

    png_size(path)
    assert Path(path).read_bytes()[25] == 3  # colour type 3: a palette PNG
    words = texts(kept[-1])
    for c, n in ((0, 50), (1, 30), (2, 20)):
        mean = s[labels == c].mean()
        assert f"cluster {c}  (n={n}, mean {mean:.3f})" in words
    assert f"mean silhouette {s.mean():.4f}" in words
    ax = kept[-1].axes[0]
    assert len(ax.collections) == 3  # a band per cluster


def blobs(n: int = 400, d: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in ``d`` dimensions, and which blob each row is from."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, 3, n)
    centres = rng.normal(scale=8.0, size=(3, d))
    return (centres[which] + rng.normal(size=(n, d))).astype(np.float32), which


def test_feature_map_is_a_repeatable_map_of_a_sample():
    X, which = blobs()

    rows, xy = report.feature_map(X, n_points=300)
    again = report.feature_map(X, n_points=300)

    assert rows.dtype == np.int64 and xy.dtype == np.float32 and xy.shape == (300, 2)
    assert np.all(np.diff(rows) > 0) and rows[0] >= 0 and rows[-1] < len(X)
    assert np.isfinite(xy).all()
    assert rows.tobytes() == again[0].tobytes() and xy.tobytes() == again[1].tobytes()
    # Rows of one blob are nearest neighbours on the map as in the data.
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(which[rows][d.argmin(1)] == which[rows]) > 0.95
    # Fewer rows than points: every row, in order.
    all_rows, _ = report.feature_map(X[:100], n_points=300)
    assert all_rows.tolist() == list(range(100))


def test_feature_map_is_the_same_bits_for_any_thread_count(tmp_path):
    """t-SNE sums in OpenMP threads; the map holds them to one, so the thread count the
    process starts with changes nothing."""
    script = textwrap.dedent(f"""
        import hashlib, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from aeclust import report
        from test_report import blobs
        rows, xy = report.feature_map(blobs()[0], n_points=300)
        print(hashlib.sha256(rows.tobytes() + xy.tobytes()).hexdigest())
    """)
    digests = set()
    for threads in ("1", "3"):
        env = {**__import__("os").environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.split()[-1])
    assert len(digests) == 1


def test_no_map_of_features_without_spread(tmp_path):
    X = np.ones((50, 4), dtype=np.float32)
    np.save(tmp_path / "map.npy", np.zeros((5, 2), np.float32))  # an older run's map
    np.save(tmp_path / "map_rows.npy", np.arange(5))

    assert report.feature_map(X) is None
    assert report.save_feature_map(tmp_path, X) is False
    assert not (tmp_path / "map.npy").exists() and not (tmp_path / "map_rows.npy").exists()
    assert report.save_feature_map(tmp_path, blobs(60, 5)[0]) is True
    assert np.load(tmp_path / "map.npy").shape == (60, 2)


def test_silhouettes_that_do_not_belong_are_not_drawn(tmp_path, monkeypatch):
    """Codes in one cluster have no silhouettes; a file of another length belongs to another run."""
    kept = captured_figures(monkeypatch)
    results = run_results(external=False, autoencoder=False)
    results["feature_sets"]["codes"]["metrics"].update(silhouette=None, dunn=None)
    write_labels(tmp_path, results)
    np.save(tmp_path / "pixels" / "silhouette.npy", np.zeros(N_IMAGES + 1, np.float32))

    page = report.build_run_report(tmp_path, results, models={}, images=fake_images(), labels=None).read_text()

    assert not list((tmp_path / "figures").glob("silhouette_*"))
    assert "fits best" not in page and "Sample images per cluster" in page
    grids = [f for f in kept if any(w.startswith("Clusters of") for w in texts(f))]
    assert len(grids) == 2 and not any("fits best" in texts(f) for f in grids)
    assert {p.stem for p in (tmp_path / "figures").glob("map_*")} == {"map_pixels", "map_codes"}
