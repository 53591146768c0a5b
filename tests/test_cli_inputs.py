"""One command per input: digits, a folder of PNGs, an .npz file; the k sweep; and
every numeric option refused at the command line when out of range."""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aeclust import cli
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
    assert main(["sweep", "--dataset", "digits", "--feature-set", "codes", "--out", str(tmp_path)]) == 2
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


# -- numeric options: one line, exit 2, before any data is loaded ----------------------------

BAD_NUMBERS = [
    ("cluster", "--seed", "-5", "must be at least 0, got -5"),
    ("cluster", "--seed", "1.5", "whole number from 0 to 4294967295, got '1.5'"),
    ("cluster", "--seed", "99999999999999999999", "must be at most 4294967295, got 99999999999999999999"),
    ("cluster", "--seed", "4294967296", "must be at most 4294967295"),
    ("cluster", "--seed", "abc", "whole number from 0 to 4294967295, got 'abc'"),
    ("cluster", "--seed", "1e3", "got '1e3'"),
    ("cluster", "--seed", "9" * 5000, "must be at most 4294967295"),  # past int()'s 4300-digit limit
    ("cluster", "--n-init", "0", "must be at least 1, got 0"),
    ("cluster", "--n-init", "1001", "must be at most 1000"),
    ("cluster", "--k", "10001", "must be at most 10000"),
    ("cluster", "--chunk-rows", "0", "must be at least 1"),
    ("cluster", "--scheduler", "local:0", "from 1 to 256"),
    ("cluster", "--scheduler", "local:100000", "from 1 to 256"),
    ("cluster", "--scheduler", "tcp://nowhere", "port from 1 to 65535"),
    ("run", "--epochs", "1e9", "whole number from 1 to 10000, got '1e9'"),
    ("run", "--epochs", "0", "must be at least 1, got 0"),
    ("run", "--seed", "-1", "must be at least 0"),
    ("run", "--batch-size", "0", "must be at least 1"),
    ("run", "--batch-size", "1000000", "must be at most 65536"),
    ("run", "--kernel-size", "99", "must be at most 31"),
    ("run", "--lr", "nan", "got 'nan'"),
    ("run", "--lr", "inf", "got 'inf'"),
    ("run", "--lr", "0", "greater than 0, got 0"),
    ("run", "--lr", "100", "at most 10"),
    ("run", "--test-limit", "0", "must be at least 1"),
    ("train", "--epochs", "1000000000", "must be at most 10000, got 1000000000"),
    ("train", "--seed", "-5", "must be at least 0"),
    ("train", "--lr", "-1", "greater than 0"),
    ("train", "--train-limit", "-3", "must be at least 1"),
    ("sweep", "--k", "1..3", "need at least 2 clusters"),
    ("sweep", "--k", "2..99999999999", "at most 10000"),  # refused, not expanded into a list
    ("sweep", "--k", "two", "cannot read 'two'"),
    ("sweep", "--seed", "-5", "must be at least 0"),
    ("sweep", "--n-init", "0", "must be at least 1"),
    ("encode", "--limit", "0", "must be at least 1"),
]


@pytest.mark.parametrize("command, option, value, says", BAD_NUMBERS,
                         ids=[f"{c} {o} {v[:12]}" for c, o, v, _ in BAD_NUMBERS])
def test_a_bad_number_is_one_line_and_exit_2(command, option, value, says, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AECLUST_DATA", raising=False)
    out = tmp_path / "out"
    argv = [command, option, value, "--data-dir", str(tmp_path / "none"), "--no-download", "--quiet"]
    argv += ["--model", str(tmp_path / "m.pt"), "--out", str(out / "x.npy")] if command == "encode" else [
        "--out", str(out)]
    with pytest.raises(SystemExit) as exc:  # argparse stops before any command runs
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"aeclust {command}: error: argument {option}: ")
    assert says in lines[0]
    assert len(lines[0]) < 300  # a 5000-digit value is cut short
    assert not out.exists()


def test_a_bad_seed_in_a_real_process(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "aeclust", "cluster", "--seed", "-5", "--no-download",
                           "--data-dir", str(tmp_path / "none")],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "aeclust cluster: error: argument --seed: must be at least 0, got -5\n"
    assert proc.stdout == ""


@pytest.mark.parametrize("argv, name, value", [
    (["cluster", "--seed", "0"], "seed", 0),
    (["cluster", "--seed", "4294967295"], "seed", 2**32 - 1),
    (["cluster", "--seed", " 7 "], "seed", 7),
    (["cluster", "--k", "10000"], "k", 10000),
    (["cluster", "--n-init", "1000"], "n_init", 1000),
    (["cluster", "--scheduler", "local:4"], "scheduler", "local:4"),
    (["cluster", "--scheduler", "tcp://10.0.0.1:8786"], "scheduler", "tcp://10.0.0.1:8786"),
    (["run", "--epochs", "10000"], "epochs", 10000),
    (["run", "--lr", "1e-3"], "lr", 1e-3),
    (["run", "--lr", "10"], "lr", 10.0),
    (["train", "--batch-size", "65536"], "batch_size", 65536),
    (["sweep"], "k", list(range(2, 21))),
    (["sweep", "--k", "2..6,8"], "k", [2, 3, 4, 5, 6, 8]),
])
def test_the_edges_of_each_range_are_accepted(argv, name, value):
    assert getattr(cli.build_parser().parse_args(argv), name) == value


def _numeric_actions():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in commands.choices.items():
        for action in sub._actions:
            yield command, action


def test_no_option_is_read_with_a_bare_int_or_float():
    bare = [f"{command} {action.option_strings}" for command, action in _numeric_actions()
            if action.type in (int, float)]
    assert bare == []


@pytest.mark.parametrize("command", ["cluster", "run", "train", "sweep"])
def test_help_states_the_seed_range(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "0 to 4294967295" in " ".join(capsys.readouterr().out.split())


# -- the autoencoder's initialisation ---------------------------------------------------------


def test_ae_init_is_its_own_option_beside_the_kmeans_init(capsys):
    parser = cli.build_parser()
    for command in ("run", "train"):
        assert parser.parse_args([command]).ae_init == "keras"
        assert parser.parse_args([command, "--ae-init", "torch"]).ae_init == "torch"
        assert not hasattr(parser.parse_args([command]), "init")  # --init is k-means' (cluster, sweep)
    with pytest.raises(SystemExit) as exc:
        main(["run", "--ae-init", "he"])
    assert exc.value.code == 2
    assert "argument --ae-init: invalid choice: 'he'" in capsys.readouterr().err


@pytest.mark.parametrize("init", ["keras", "torch"])
def test_ae_init_reaches_results_json_and_the_checkpoint(init, fake_cifar, tmp_path, capsys):
    from aeclust.autoencoder import load_checkpoint

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--epochs", "1", "--device", "cpu", "--ae-init", init, "--quiet"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["config"]["ae_init"] == init and r["config"]["autoencoder"]["init"] == init
    assert r["autoencoders"]["autoencoder"]["config"]["init"] == init
    assert load_checkpoint(out / "autoencoder" / "model.pt").config.init == init
    capsys.readouterr()
    assert main(["train", "--out", str(tmp_path / "ae"), "--epochs", "1", "--device", "cpu", "--ae-init", init]) == 0
    assert load_checkpoint(tmp_path / "ae" / "model.pt").config.init == init
    # 'aeclust train' reports the collapse check too, on the test images.
    assert re.search(r"^code \(gray\): \d+ of 192 features constant, reconstruction MSE [0-9.]+ x the mean "
                     r"image's; (not collapsed|COLLAPSED) \(on the test images\)$", capsys.readouterr().out, re.M)
