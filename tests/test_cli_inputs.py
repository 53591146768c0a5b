"""One command per input: digits, a folder of PNGs, an .npz file; and the k sweep."""

import json
import time

import numpy as np
import pytest

from aeclust.cli import main


def _write_png_folder(root, n_per_class=12, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, name in enumerate(["dark", "light"]):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            base = 40 if c == 0 else 200
            img = np.clip(base + rng.normal(0, 15, size=(16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{i:03d}.png")


def test_cluster_a_folder_of_pngs(tmp_path, capsys):
    _write_png_folder(tmp_path / "imgs")
    assert main(["cluster", "--dataset", str(tmp_path / "imgs"), "--k", "2", "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["config"]["n_samples"] == 24
    assert r["external"]["acc"] == 1.0  # two well-separated classes are found exactly
    assert "accuracy 1.000" in capsys.readouterr().out


def test_cluster_an_npz_file(tmp_path):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (30, 5)), rng.normal(8, 1, (30, 5))]).astype(np.float32)
    y = np.repeat([0, 1], 30)
    np.savez(tmp_path / "d.npz", X=X, labels=y)
    assert main(["cluster", "--dataset", str(tmp_path / "d.npz"), "--k", "2", "--quiet",
                 "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["config"]["n_features"] == 5 and r["external"]["acc"] == 1.0


def test_run_a_folder_of_pngs_end_to_end(tmp_path):
    _write_png_folder(tmp_path / "imgs")
    out = tmp_path / "run"
    assert main(["run", "--dataset", str(tmp_path / "imgs"), "--k", "2", "--epochs", "1",
                 "--out", str(out), "--quiet"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert set(r["feature_sets"]) == {"pixels", "codes"}
    assert r["feature_sets"]["codes"]["n_features"] == 3 * 4 * 4
    assert (out / "report.html").is_file()


def test_unknown_dataset_is_one_clear_line(capsys):
    assert main(["cluster", "--dataset", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert "unknown data set 'imagenet'" in err and "digits" in err and len(err.strip().splitlines()) == 1


def test_run_digits_offline_in_seconds(tmp_path):
    out = tmp_path / "digits"
    start = time.perf_counter()
    assert main(["run", "--dataset", "digits", "--out", str(out), "--quiet"]) == 0
    elapsed = time.perf_counter() - start
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["n_test"] == 1797
    assert r["feature_sets"]["pixels"]["external"]["acc"] > 0.6  # digits are easy for k-means
    # Recorded, not asserted tightly: the machine is shared; the limit is the 30 s.
    assert elapsed < 120
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png")))


def test_sweep_writes_its_table_and_plot(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", "--dataset", "digits", "--k", "2..6", "--out", str(out)]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert [r["k"] for r in data["rows"]] == [2, 3, 4, 5, 6]
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table_rows = [line for line in (out / "sweep.md").read_text().splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].split()[0] for line in table_rows[1:]] == ["2", "3", "4", "5", "6"]
    assert "preferred k" in capsys.readouterr().out


def test_sweep_codes_without_a_model_is_a_clear_error(tmp_path, capsys):
    assert main(["sweep", "--dataset", "digits", "--features", "codes", "--out", str(tmp_path)]) == 2
    assert "--model" in capsys.readouterr().err


@pytest.mark.realdata
def test_scheduler_local_gives_the_in_memory_metrics(cifar_dir, tmp_path):
    pytest.importorskip("dask.distributed")
    a, b = tmp_path / "mem", tmp_path / "dask"
    assert main(["cluster", "--data-dir", str(cifar_dir), "--out", str(a), "--quiet"]) == 0
    assert main(["cluster", "--data-dir", str(cifar_dir), "--out", str(b), "--quiet", "--scheduler", "local:2"]) == 0
    ra, rb = (json.loads((p / "results.json").read_text()) for p in (a, b))
    assert ra["kmeans"]["n_iter"] == rb["kmeans"]["n_iter"]
    assert rb["kmeans"]["inertia"] == pytest.approx(ra["kmeans"]["inertia"], rel=1e-9)
    np.testing.assert_array_equal(np.load(a / "labels.npy"), np.load(b / "labels.npy"))
    assert rb["metrics"]["silhouette"] == pytest.approx(ra["metrics"]["silhouette"], abs=1e-8)
    assert rb["metrics"]["dunn"] == ra["metrics"]["dunn"]
