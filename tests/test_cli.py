import json
import subprocess
import sys
from pathlib import Path

import pytest

from aeclust.cli import main


def test_help_of_every_command_stands_alone(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "cluster" in out and "silhouette" in out
    with pytest.raises(SystemExit):
        main(["cluster", "--help"])
    out = capsys.readouterr().out
    for flag in ("--k", "--seed", "--data-dir", "--out"):
        assert flag in out


def test_no_data_and_no_network_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AECLUST_DATA", str(tmp_path / "empty"))
    code = main(["cluster", "--no-download", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "cifar-10-python.tar.gz" in err and "AECLUST_DATA" in err
    assert "Traceback" not in err


def test_no_data_as_a_real_process_exits_2_without_traceback(tmp_path):
    env = {"AECLUST_DATA": str(tmp_path / "none"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "aeclust", "cluster", "--no-download"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("aeclust: error: CIFAR-10 not found")


def test_bad_k_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cluster", "--k", "0"])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_unwritable_output_directory(tmp_path, cifar_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["cluster", "--data-dir", str(cifar_dir), "--out", str(blocker / "sub"), "--quiet"])
    assert code == 2
    assert "cannot write to output directory" in capsys.readouterr().err


@pytest.mark.realdata
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_part1_reproduces_the_study(seed, cifar_dir, tmp_path, capsys):
    out = tmp_path / f"r{seed}"
    assert main(["cluster", "--seed", str(seed), "--data-dir", str(cifar_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    m = results["metrics"]
    assert 0.048 <= m["silhouette"] <= 0.060
    assert 0.080 <= m["dunn"] <= 0.100
    assert results["kmeans"]["converged"]
    assert f"{m['silhouette']:.4f}" in printed and f"{m['dunn']:.4f}" in printed
    assert results["config"]["n_samples"] == 10000 and results["config"]["n_features"] == 1024
    assert set(results["timings"]) >= {"load", "preprocess", "kmeans", "metrics"}
    assert "numpy" in results["versions"]
    assert (out / "labels.npy").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
