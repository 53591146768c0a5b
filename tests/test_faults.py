"""Fault injection: stop `aeclust run` at a chosen point, resume, compare with an uninterrupted run.

The points are named by AECLUST_FAULT (see aeclust._fault). SIGINT and SIGTERM
are tested in this process, through the CLI's own handlers; SIGKILL, and one
SIGTERM end to end, in a separate process (tests/helpers/cli_harness.py). Every run uses
the tiny fake CIFAR-10 of conftest.py (200 training images, 150 test images, two
epochs), so the suite needs no real data. The HTML report, the one slow stage,
is replaced by a stub that writes report.html atomically all the same; the real
report is tested in test_pipeline.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from aeclust import cifar10
from aeclust._io import atomic_open, without_volatile, write_text
from aeclust.autoencoder import load_checkpoint
from aeclust.cli import main

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
pytestmark = pytest.mark.faults

ARGS = ["--epochs", "2", "--device", "cpu", "--quiet"]


def _stub_report(run_dir, results, **figure_inputs):
    return write_text(Path(run_dir) / "report.html", "<html>stub</html>\n")


@pytest.fixture(autouse=True)
def fast_report(monkeypatch):
    import aeclust.report

    monkeypatch.setattr(aeclust.report, "build_run_report", _stub_report)


@pytest.fixture(scope="module")
def reference(_fake_cifar_files, tmp_path_factory):
    """An uninterrupted run of the same configuration."""
    import aeclust.report

    root, md5 = _fake_cifar_files
    out = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cifar10, "MD5", {**cifar10.MD5, **md5})
        mp.setattr(aeclust.report, "build_run_report", _stub_report)
        mp.delenv("AECLUST_FAULT", raising=False)
        assert main(["run", "--out", str(out), "--data-dir", str(root), *ARGS]) == 0
    return out


def _run(out: Path, *extra: str) -> int:
    return main(["run", "--out", str(out), *ARGS, *extra])


def _fault(monkeypatch, spec: str) -> None:
    from aeclust import _fault

    _fault.reset()
    monkeypatch.setenv("AECLUST_FAULT", spec)


def _no_fault(monkeypatch) -> None:
    monkeypatch.delenv("AECLUST_FAULT", raising=False)


def _temp_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(".*.tmp"))


def _weights(path: Path) -> dict:
    return load_checkpoint(path).model.state_dict()


def assert_same_as(run_dir: Path, ref: Path) -> None:
    """Same numbers, labels, codes and weights as the uninterrupted run; no temporary files."""
    # The whole of results.json, less the fields that record time and versions.
    got, want = (without_volatile(json.loads((d / "results.json").read_text())) for d in (run_dir, ref))
    assert got == want
    for rel in ("pixels/labels.npy", "codes/labels.npy", "codes/codes.npy", "codes-train/labels.npy",
                "codes-train/codes.npy"):
        assert np.array_equal(np.load(run_dir / rel), np.load(ref / rel)), rel
    a, b = _weights(run_dir / "autoencoder" / "model.pt"), _weights(ref / "autoencoder" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (run_dir / "report.html").is_file()
    assert _temp_files(run_dir) == []


def _interrupt(monkeypatch, capsys, out: Path, spec: str, signame: str) -> None:
    _fault(monkeypatch, f"{signame}:{spec}")
    assert _run(out) == 130
    err = capsys.readouterr().err.strip()
    assert err == "aeclust: interrupted; rerun with --resume to continue"
    assert not (out / "results.json").exists()
    assert _temp_files(out) == []  # INT and TERM let the atomic writes clean up
    _no_fault(monkeypatch)


# -- atomic writes ----------------------------------------------------------------------


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt here even where the test runner was started with it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_atomic_write_interrupted_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, sigint_raises):
    from aeclust import _fault

    path = tmp_path / "results.json"
    write_text(path, "old\n")
    monkeypatch.setenv("AECLUST_FAULT", "INT:rename-results.json")
    _fault.reset()
    with pytest.raises(KeyboardInterrupt):
        write_text(path, "new\n")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(ValueError):
        with atomic_open(path, "w") as f:
            f.write("half")
            raise ValueError("the writer failed")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["results.json"]


def test_atomic_files_get_the_permissions_open_would_give(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    with open(tmp_path / "b.txt", "w") as f:
        f.write("x")
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777  # noqa: E731
    assert mode("a.txt") == mode("b.txt")


# -- SIGINT / SIGTERM, in this process ---------------------------------------------------


def test_term_after_an_epoch_resumes_from_that_epoch(fake_cifar, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt(monkeypatch, capsys, out, "epoch-1", "TERM")
    assert load_checkpoint(out / "autoencoder" / "checkpoint.pt").state["epoch"] == 1
    assert not (out / "autoencoder" / "model.pt").exists()
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["pixels.json"]
    pixels_written = (out / "pixels" / "labels.npy").stat().st_mtime_ns
    assert _run(out, "--resume") == 0
    assert (out / "pixels" / "labels.npy").stat().st_mtime_ns == pixels_written  # stage skipped
    history = json.loads((out / "results.json").read_text())["autoencoders"]["autoencoder"]["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert_same_as(out, reference)


def test_int_in_the_middle_of_an_epoch_repeats_only_that_epoch(fake_cifar, reference, tmp_path, monkeypatch,
                                                               capsys):
    out = tmp_path / "run"
    _interrupt(monkeypatch, capsys, out, "train-step:10", "INT")  # 7 steps per epoch: inside epoch 2
    assert load_checkpoint(out / "autoencoder" / "checkpoint.pt").state["epoch"] == 1
    assert _run(out, "--resume") == 0
    assert_same_as(out, reference)


def test_int_during_the_pixel_stage_write(fake_cifar, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt(monkeypatch, capsys, out, "rename-labels.npy", "INT")
    assert not (out / "pixels" / "labels.npy").exists() and not (out / "stages" / "pixels.json").exists()
    assert _run(out, "--resume") == 0
    assert_same_as(out, reference)


def test_term_after_the_training_stage_does_not_train_again(fake_cifar, reference, tmp_path, monkeypatch,
                                                            capsys):
    out = tmp_path / "run"
    _interrupt(monkeypatch, capsys, out, "stage-autoencoder", "TERM")
    model_written = (out / "autoencoder" / "model.pt").stat().st_mtime_ns
    assert _run(out, "--resume") == 0
    assert (out / "autoencoder" / "model.pt").stat().st_mtime_ns == model_written
    assert_same_as(out, reference)


def test_int_while_writing_the_codes(fake_cifar, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt(monkeypatch, capsys, out, "rename-codes.npy", "INT")
    assert not (out / "codes" / "codes.npy").exists()
    assert _run(out, "--resume") == 0
    assert_same_as(out, reference)


def test_term_while_writing_results_json(fake_cifar, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _interrupt(monkeypatch, capsys, out, "rename-results.json", "TERM")
    assert (out / "report.html").is_file()
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["autoencoder.json", "codes-train.json", "codes.json",
                                                                  "pixels.json"]
    assert _run(out, "--resume") == 0
    assert_same_as(out, reference)


def test_interrupted_fresh_run_leaves_no_stale_results(fake_cifar, reference, tmp_path, monkeypatch, capsys):
    # A finished run, then a new run over it without --resume, stopped early: the old
    # results.json must not stand beside the new run's unfinished stages.
    out = tmp_path / "run"
    assert _run(out) == 0
    _interrupt(monkeypatch, capsys, out, "stage-pixels", "TERM")
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["pixels.json"]
    assert _run(out, "--resume") == 0
    assert_same_as(out, reference)


# -- real processes: SIGTERM end to end, SIGKILL ------------------------------------------


def _process(args: list[str], *, fault: str | None = None, md5: dict | None = None,
             serve: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AECLUST_FAULT", "AECLUST_TEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["AECLUST_TEST_MD5"] = json.dumps(md5 or cifar10.MD5)
    if fault:
        env["AECLUST_FAULT"] = fault
    if serve:
        env["AECLUST_TEST_SERVE"] = str(serve)
    return subprocess.run([sys.executable, str(TESTS / "helpers" / "cli_harness.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_sigterm_to_a_real_process_then_resume(fake_cifar, reference, tmp_path):
    out = tmp_path / "run"
    proc = _process(["run", "--out", str(out), *ARGS], fault="TERM:epoch-1")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "aeclust: interrupted; rerun with --resume to continue"
    assert _temp_files(out) == [] and not (out / "autoencoder" / "model.pt").exists()
    assert _run(out, "--resume") == 0
    assert_same_as(out, reference)


def test_sigkill_inside_the_checkpoint_write(fake_cifar, reference, tmp_path):
    out = tmp_path / "run"
    proc = _process(["run", "--out", str(out), *ARGS], fault="KILL:rename-checkpoint.pt:2")
    assert proc.returncode == -9
    ae = out / "autoencoder"
    # Epoch 2's checkpoint exists only as a temporary file; epoch 1's is intact under the final name.
    assert [p.parent for p in _temp_files(out)] == [ae]
    assert _temp_files(out)[0].name.startswith(".checkpoint.pt.")
    assert load_checkpoint(ae / "checkpoint.pt").state["epoch"] == 1
    assert not (ae / "model.pt").exists() and not (out / "results.json").exists()
    assert _run(out, "--resume") == 0  # removes the leftover
    assert_same_as(out, reference)


def test_sigkill_in_the_middle_of_a_download_then_a_clean_restart(fake_cifar, tmp_path, monkeypatch):
    archive = tmp_path / "served.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fake_cifar / cifar10.BASE_FOLDER, arcname=cifar10.BASE_FOLDER)
    md5 = {**cifar10.MD5, cifar10.ARCHIVE_NAME: cifar10._file_md5(archive)}
    assert archive.stat().st_size > 5 * 65536  # several chunks, so chunk 3 is midway
    root = tmp_path / "data"
    proc = _process(["cluster", "--data-dir", str(root), "--quiet"], fault="KILL:download-chunk:3",
                    md5=md5, serve=archive)
    assert proc.returncode == -9
    leftovers = os.listdir(root)
    assert len(leftovers) == 1 and leftovers[0].startswith(f".{cifar10.ARCHIVE_NAME}.")
    assert 0 < (root / leftovers[0]).stat().st_size < archive.stat().st_size

    class Served(io.BytesIO):
        headers = {"Content-Length": str(archive.stat().st_size)}

    monkeypatch.setattr(cifar10, "MD5", md5)
    monkeypatch.setattr(cifar10, "urlopen", lambda *a, **k: Served(archive.read_bytes()))
    from aeclust.datasets import load_cifar10

    assert load_cifar10(root, split="test", progress=False).images.shape == (150, 32, 32, 3)
    assert (root / cifar10.ARCHIVE_NAME).read_bytes() == archive.read_bytes()
