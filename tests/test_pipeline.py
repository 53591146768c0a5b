"""`aeclust run` end to end on a small subset of the real data, plus the other commands."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from aeclust.cli import main

pytestmark = pytest.mark.realdata

SMALL = ["--train-limit", "600", "--test-limit", "300", "--epochs", "2", "--quiet"]


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.cells, self._cell = [], {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "tr" and "data-feature-set" in attrs:
            self._row = attrs["data-feature-set"]
        if tag == "td" and attrs.get("class") in ("silhouette", "dunn", "acc"):
            self._cell = attrs["class"]

    def handle_data(self, data):
        if self._cell:
            self.cells[(self._row, self._cell)] = data
            self._cell = None


@pytest.fixture(scope="module")
def small_run(cifar_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "study"
    assert main(["run", "--out", str(out), "--data-dir", str(cifar_dir), *SMALL, "--map"]) == 0
    return out


def test_run_writes_every_artefact(small_run):
    for rel in ["results.json", "report.html", "pixels/labels.npy", "codes/labels.npy", "codes/codes.npy",
                "autoencoder/model.pt", "autoencoder/checkpoint.pt", "autoencoder/history.json",
                "figures/loss_curve.png", "figures/reconstructions.png", "figures/codes.png",
                "figures/clusters_pixels.png", "figures/clusters_codes.png",
                "figures/confusion_pixels.png", "figures/confusion_codes.png",
                "pixels/silhouette.npy", "pixels/map.npy", "codes/silhouette.npy", "codes/map.npy",
                "figures/silhouette_pixels.png", "figures/silhouette_codes.png",
                "figures/map_pixels.png", "figures/map_codes.png",
                "codes-train/labels.npy", "codes-train/codes.npy", "codes-train/silhouette.npy",
                "figures/clusters_codes-train.png", "figures/confusion_codes-train.png",
                "figures/silhouette_codes-train.png", "figures/map_codes-train.png"]:
        assert (small_run / rel).is_file(), rel
    assert np.load(small_run / "codes" / "codes.npy").shape == (300, 192)
    assert np.load(small_run / "codes-train" / "codes.npy").shape == (600, 192)
    leftovers = [p for p in small_run.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_results_hold_both_feature_sets_configs_timings_versions(small_run):
    r = json.loads((small_run / "results.json").read_text())
    assert list(r["feature_sets"]) == ["pixels", "codes", "codes-train"]
    for name, fs in r["feature_sets"].items():
        assert -1 <= fs["metrics"]["silhouette"] <= 1 and fs["metrics"]["dunn"] > 0
        assert fs["metrics"]["n_samples"] == fs["n_samples"] == (600 if name == "codes-train" else 300)
    assert r["feature_sets"]["codes"]["n_features"] == 192
    assert r["config"]["autoencoder"]["epochs"] == 2 and r["config"]["autoencoder"]["batch_size"] == 32
    assert len(r["autoencoders"]["autoencoder"]["history"]) == 2
    assert r["config"]["ae_init"] == "keras" and r["config"]["autoencoder"]["init"] == "keras"
    collapse = r["autoencoders"]["autoencoder"]["collapse"]
    assert set(collapse) == {"constant_code_features", "n_code_features", "reconstruction_mse", "mean_image_mse",
                             "mse_ratio", "collapsed", "rule", "n_images"}
    assert collapse["n_code_features"] == 192 and collapse["n_images"] == 300
    codes = np.load(small_run / "codes" / "codes.npy")  # measured on the codes that were clustered
    assert collapse["constant_code_features"] == int(np.sum(codes.max(0) == codes.min(0)))
    assert r["feature_sets"]["codes"]["meaningful"] is (not collapse["collapsed"])
    assert {"load", "autoencoder_train", "report", "total"} <= set(r["timings"])
    for fs in r["feature_sets"].values():  # CIFAR-10 has labels: external scores for every feature set
        assert set(fs["external"]) == {"acc", "nmi", "ari", "purity"}
        assert 0.1 <= fs["external"]["acc"] <= 1
    assert "torch" in r["versions"]


def test_both_readings_of_part_2_come_from_one_model_with_the_study_beside_its_own(small_run, cifar_dir):
    from aeclust.autoencoder import encode, load_checkpoint
    from aeclust.datasets import load_cifar10
    from aeclust.external import external_scores

    r = json.loads((small_run / "results.json").read_text())
    test, train = r["feature_sets"]["codes"], r["feature_sets"]["codes-train"]
    assert (test["split"], train["split"]) == ("test", "train")
    assert test["description"].endswith("300 test images")
    assert train["description"].endswith("600 training images (the study's reading)")
    # The study's part-2 numbers stand beside the training-set reading, part 1's beside the pixels.
    assert train["study"] == {"silhouette": 0.1040, "dunn": 0.02} and test["study"] is None
    assert r["feature_sets"]["pixels"]["study"] == {"silhouette": 0.054, "dunn": 0.0899}
    model = load_checkpoint(small_run / "autoencoder" / "model.pt").model
    images = load_cifar10(cifar_dir, split="train", progress=False).head(600)
    np.testing.assert_array_equal(np.load(small_run / "codes-train" / "codes.npy"), encode(model, images.images))
    # Scored against the training images' classes.
    assert train["external"] == external_scores(images.labels, np.load(small_run / "codes-train" / "labels.npy"))
    assert len(r["autoencoders"]) == 1  # one model, two readings


def test_the_map_is_drawn_only_when_asked_for(cifar_dir, tmp_path):
    out = tmp_path / "nomap"
    assert main(["run", "--out", str(out), "--data-dir", str(cifar_dir), "--feature-sets", "pixels",
                 "--test-limit", "200", "--quiet"]) == 0
    assert not (out / "pixels" / "map.npy").exists() and not (out / "figures" / "map_pixels.png").exists()
    assert "aeclust run --map" in (out / "report.html").read_text()
    assert json.loads((out / "results.json").read_text())["config"]["map"] is False


def test_silhouettes_saved_are_those_of_the_fused_pass(small_run):
    from aeclust.metrics import silhouette_samples

    r = json.loads((small_run / "results.json").read_text())
    for name in ("pixels", "codes"):
        saved = np.load(small_run / name / "silhouette.npy")
        labels = np.load(small_run / name / "labels.npy")
        assert saved.shape == labels.shape and saved.dtype == np.float32
        # Their mean is the reported silhouette (to float32 rounding).
        assert abs(float(saved.astype(np.float64).mean()) - r["feature_sets"][name]["metrics"]["silhouette"]) < 1e-6
    X = np.load(small_run / "codes" / "codes.npy")
    np.testing.assert_allclose(np.load(small_run / "codes" / "silhouette.npy"),
                               silhouette_samples(X, np.load(small_run / "codes" / "labels.npy")), atol=1e-6)


def test_report_embeds_every_figure_and_shows_the_numbers_of_results_json(small_run):
    page = (small_run / "report.html").read_text()
    parser = _Page()
    parser.feed(page)
    assert len(parser.images) == len(list((small_run / "figures").glob("*.png"))) == 15
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    r = json.loads((small_run / "results.json").read_text())
    for name, fs in r["feature_sets"].items():
        assert parser.cells[(name, "silhouette")] == f"{fs['metrics']['silhouette']:.4f}"
        assert parser.cells[(name, "dunn")] == f"{fs['metrics']['dunn']:.4f}"
    assert "0.1040" in page and "0.0899" in page  # the study's numbers beside ours
    for name, fs in r["feature_sets"].items():
        assert parser.cells[(name, "acc")] == f"{fs['external']['acc']:.4f}"
    assert "0.314" in page  # the literature's AE + k-means row
    collapse = r["autoencoders"]["autoencoder"]["collapse"]
    assert (f"{collapse['constant_code_features']} of 192 code features constant" in page
            and "id='collapse'" in page and collapse["rule"] in page)
    assert not re.search(r"src=['\"]https?:", page)  # self-contained


def test_resume_skips_finished_stages_and_gives_the_same_results(small_run, cifar_dir):
    before = json.loads((small_run / "results.json").read_text())
    stamp = (small_run / "pixels" / "labels.npy").stat().st_mtime_ns
    assert main(["run", "--out", str(small_run), "--data-dir", str(cifar_dir), *SMALL, "--resume"]) == 0
    after = json.loads((small_run / "results.json").read_text())
    assert (small_run / "pixels" / "labels.npy").stat().st_mtime_ns == stamp
    assert after["feature_sets"] == before["feature_sets"]


def test_resume_with_another_config_is_refused(small_run, cifar_dir, capsys):
    args = ["run", "--out", str(small_run), "--data-dir", str(cifar_dir), *SMALL, "--resume", "--k", "5"]
    assert main(args) == 2
    assert "holds a finished 'aeclust run' of another configuration (k 10 there, 5 here)" in capsys.readouterr().err


def test_report_command_rebuilds_the_page(small_run, cifar_dir):
    (small_run / "report.html").unlink()
    assert main(["report", str(small_run), "--data-dir", str(cifar_dir), "--quiet"]) == 0
    assert (small_run / "report.html").stat().st_size > 10_000


def test_train_then_encode_commands(cifar_dir, tmp_path):
    out = tmp_path / "ae"
    assert main(["train", "--out", str(out), "--data-dir", str(cifar_dir), "--train-limit", "256",
                 "--epochs", "1", "--quiet"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and history[0]["test_loss"] > 0
    codes = tmp_path / "codes.npy"
    assert main(["encode", "--model", str(out / "model.pt"), "--out", str(codes), "--limit", "50",
                 "--data-dir", str(cifar_dir), "--quiet"]) == 0
    assert np.load(codes).shape == (50, 192)


def test_report_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_run_with_a_learned_feature_set(cifar_dir, tmp_path):
    out = tmp_path / "learned"
    assert main(["run", "--out", str(out), "--data-dir", str(cifar_dir), "--feature-sets", "pixels,simclr",
                 "--train-limit", "256", "--test-limit", "120", "--quiet"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert list(r["feature_sets"]) == ["pixels", "simclr"]
    # The cluster head learns the run's k clusters, and its probabilities are what k-means gets.
    assert r["feature_sets"]["simclr"]["n_features"] == r["config"]["k"] == 10
    # The study's one random start on the pixels; k-means++, best of 10, on the learned clustering feature.
    km = {name: (fs["kmeans"]["init"], fs["kmeans"]["n_init"]) for name, fs in r["feature_sets"].items()}
    assert km == {"pixels": ("random", 1), "simclr": ("k-means++", 10)}
    meta = json.loads((out / "simclr" / "model" / "features.json").read_text())
    assert meta["config"]["n_clusters"] == 10 and meta["config"]["output"] == "clusters"
    assert meta["config"]["precision"] in ("float32", "bfloat16")  # "auto", resolved for this machine
    assert (out / "figures" / "clusters_simclr.png").is_file()
    assert (out / "figures" / "loss_curve_simclr.png").is_file()  # the training loss, shown in the report
    assert "id='fig-loss-simclr'" in (out / "report.html").read_text()


def test_a_collapsed_autoencoder_is_flagged():
    from aeclust.autoencoder import collapse_verdict
    from aeclust.pipeline import RunConfig, _feature_warnings

    rng = np.random.default_rng(0)
    dead = np.zeros((50, 192), dtype=np.float32)
    dead[:, :3] = rng.random((50, 3))
    collapse = collapse_verdict(dead, 0.057, 0.056)
    warnings = _feature_warnings("codes", dead, RunConfig(seed=2, ae_init="torch"), collapse)
    assert len(warnings) == 1
    assert "seed 2" in warnings[0] and "189 of its 192 code features are constant" in warnings[0]
    assert "not meaningful" in warnings[0] and "Keras' initialisation" in warnings[0]
    # Mostly constant, but the decoder reconstructs well: not collapsed, the constant features still named.
    alive = collapse_verdict(dead, 0.007, 0.056)
    assert _feature_warnings("codes", dead, RunConfig(seed=2), alive) == [
        "189 of the 192 code features are constant"]
    assert _feature_warnings("codes", rng.random((50, 192)).astype(np.float32), RunConfig()) == []
