"""Bad input at the command line: one line on stderr, exit code 2, no traceback (unless --debug).

Most cases call ``main`` in this process, on the tiny fake CIFAR-10 of conftest.py;
two run a real process to show what a shell sees. The API's own exceptions are
tested in test_kmeans.py, test_metrics.py, test_datasets.py and test_autoencoder.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from aeclust import cifar10
from aeclust.cli import main

SRC = Path(__file__).parents[1] / "src"
QUICK = ["--epochs", "1", "--device", "cpu", "--quiet"]


def _error(capsys, argv: list[str]) -> str:
    """Run the CLI; check exit code 2 and one line on stderr; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aeclust: error: ")
    return lines[0]


def _copy_data(fake_cifar: Path, dest: Path) -> Path:
    shutil.copytree(fake_cifar / cifar10.BASE_FOLDER, dest / cifar10.BASE_FOLDER)
    return dest / cifar10.BASE_FOLDER


def _archive(fake_cifar: Path, extra=None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if extra:
            extra(tar)
        tar.add(fake_cifar / cifar10.BASE_FOLDER, arcname=cifar10.BASE_FOLDER)
    return buf.getvalue()


# -- k ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["cluster", "run"])
def test_k_of_one_is_refused_before_any_work(command, tmp_path, capsys):
    out = tmp_path / "out"
    line = _error(capsys, [command, "--k", "1", "--out", str(out), "--data-dir", str(tmp_path / "none"),
                           "--quiet"])
    assert "need at least 2 clusters" in line
    assert not out.exists()


@pytest.mark.parametrize("k", ["150", "151"])
def test_k_not_below_the_number_of_images(k, fake_cifar, tmp_path, capsys):
    line = _error(capsys, ["run", "--k", k, "--out", str(tmp_path / "out"), *QUICK])
    assert f"k={k} clusters for 150 images" in line
    assert not (tmp_path / "out" / "stages").exists()  # nothing ran


def test_k_below_one_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--k", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("must be at least 1, got 0")


# -- the data -----------------------------------------------------------------------------


def test_data_directory_without_the_data(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    line = _error(capsys, ["cluster", "--data-dir", str(tmp_path / "data"), "--no-download", "--quiet"])
    assert "CIFAR-10 not found in" in line and "cifar-10-python.tar.gz" in line


def test_data_directory_that_lacks_files(fake_cifar, tmp_path, capsys):
    folder = _copy_data(fake_cifar, tmp_path)
    (folder / "test_batch").unlink()
    line = _error(capsys, ["cluster", "--data-dir", str(tmp_path), "--no-download", "--quiet"])
    assert f"{folder} lacks test_batch" in line


def test_data_file_with_the_wrong_md5(fake_cifar, tmp_path, capsys):
    folder = _copy_data(fake_cifar, tmp_path)
    raw = bytearray((folder / "test_batch").read_bytes())
    raw[-100] ^= 0xFF
    (folder / "test_batch").write_bytes(bytes(raw))
    line = _error(capsys, ["cluster", "--data-dir", str(tmp_path), "--quiet"])
    assert "test_batch is corrupt or incomplete: md5" in line


def test_tarball_with_the_wrong_md5(fake_cifar, tmp_path, monkeypatch, capsys):
    archive = _archive(fake_cifar)
    monkeypatch.setitem(cifar10.MD5, cifar10.ARCHIVE_NAME, "0" * 32)
    (tmp_path / cifar10.ARCHIVE_NAME).write_bytes(archive)
    line = _error(capsys, ["cluster", "--data-dir", str(tmp_path), "--quiet"])
    assert "cifar-10-python.tar.gz is corrupt or incomplete" in line and "0" * 32 in line
    assert os.listdir(tmp_path) == [cifar10.ARCHIVE_NAME]


def test_truncated_tarball(fake_cifar, tmp_path, monkeypatch, capsys):
    archive = _archive(fake_cifar)
    cut = archive[: len(archive) // 2]
    (tmp_path / cifar10.ARCHIVE_NAME).write_bytes(cut)
    # With its true checksum it is caught by the md5; here it even passes that, as a
    # doctored checksum table would let it, and unpacking must still fail cleanly.
    monkeypatch.setitem(cifar10.MD5, cifar10.ARCHIVE_NAME, hashlib.md5(cut).hexdigest())
    line = _error(capsys, ["cluster", "--data-dir", str(tmp_path), "--quiet"])
    assert "cannot unpack" in line
    assert os.listdir(tmp_path) == [cifar10.ARCHIVE_NAME]  # no partial folder


def test_tarball_whose_member_escapes(fake_cifar, tmp_path, monkeypatch, capsys):
    def evil(tar):
        info = tarfile.TarInfo("../../escaped")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"pwned"))

    root = tmp_path / "data"
    root.mkdir()
    archive = _archive(fake_cifar, extra=evil)
    (root / cifar10.ARCHIVE_NAME).write_bytes(archive)
    monkeypatch.setitem(cifar10.MD5, cifar10.ARCHIVE_NAME, hashlib.md5(archive).hexdigest())
    line = _error(capsys, ["cluster", "--data-dir", str(root), "--quiet"])
    assert "refusing to unpack" in line and "climbs out with '..'" in line
    assert os.listdir(root) == [cifar10.ARCHIVE_NAME]
    assert not list(tmp_path.rglob("escaped"))


# -- checkpoints and runs -----------------------------------------------------------------


def test_resume_with_another_architecture(fake_cifar, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setenv("AECLUST_FAULT", "TERM:epoch-1")
    assert main(["run", "--out", str(out), *QUICK, "--epochs", "2"]) == 130
    monkeypatch.delenv("AECLUST_FAULT")
    capsys.readouterr()
    args = ["run", "--out", str(out), *QUICK, "--epochs", "2", "--kernel-size", "5", "--resume"]
    line = _error(capsys, args)
    assert "holds an unfinished 'aeclust run' of another configuration (kernel_size 3 there, 5 here)" in line
    (out / "run.json").unlink()  # a run of an older aeclust: the checkpoint's own check says it
    line = _error(capsys, args)
    assert "cannot resume from" in line and "kernel_size: 3 != 5" in line


def test_resume_of_a_run_with_another_k(fake_cifar, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setenv("AECLUST_FAULT", "TERM:stage-pixels")
    assert main(["run", "--out", str(out), *QUICK]) == 130
    monkeypatch.delenv("AECLUST_FAULT")
    capsys.readouterr()
    args = ["run", "--out", str(out), *QUICK, "--k", "5", "--resume"]
    assert "holds an unfinished 'aeclust run' of another configuration (k 10 there, 5 here)" in _error(capsys, args)
    (out / "run.json").unlink()  # a run of an older aeclust: the stage records' own check says it
    assert "different configuration (stage 'pixels')" in _error(capsys, args)


def test_damaged_stage_record_on_resume(fake_cifar, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "stages").mkdir(parents=True)
    (out / "stages" / "pixels.json").write_text('{"config": ')
    line = _error(capsys, ["run", "--out", str(out), *QUICK, "--resume"])
    assert "pixels.json is damaged" in line


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    from aeclust.autoencoder import AutoencoderConfig, ConvAutoencoder, save_checkpoint

    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, ConvAutoencoder(AutoencoderConfig()), epoch=0, history=[])
    return path


def test_checkpoint_whose_weights_are_of_another_architecture(model_pt, tmp_path, capsys):
    state = torch.load(model_pt, weights_only=True)
    state["config"]["kernel_size"] = 5  # the weights are 3x3
    torch.save(state, tmp_path / "other.pt")
    line = _error(capsys, ["encode", "--model", str(tmp_path / "other.pt"), "--out", str(tmp_path / "c.npy"),
                           "--quiet"])
    assert "do not fit the architecture" in line


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_checkpoint_that_is_not_one(content, tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(content)
    line = _error(capsys, ["encode", "--model", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "c.npy"),
                           "--quiet"])
    assert "cannot read autoencoder checkpoint" in line


def test_report_of_a_damaged_results_json(model_pt, tmp_path, capsys):
    (tmp_path / "results.json").write_text('{"job": "run", ')
    line = _error(capsys, ["report", str(tmp_path), "--quiet"])
    assert "results.json is not valid JSON" in line


# Out-of-range numbers (--epochs -1, --lr 0) are refused while the arguments are read:
# tests/test_cli_inputs.py covers them.
@pytest.mark.parametrize("option, match", [
    (["--activation", "swishy"], "activation 'swishy' is not one of"),
])
def test_invalid_autoencoder_option_fails_before_any_work(option, match, tmp_path, capsys):
    out = tmp_path / "run"
    line = _error(capsys, ["run", "--out", str(out), "--data-dir", str(tmp_path / "none"), "--quiet", *option])
    assert match in line and not out.exists()


def test_cuda_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "run"
    line = _error(capsys, ["run", "--out", str(out), "--device", "cuda", "--quiet"])
    assert "sees no CUDA GPU" in line and not out.exists()


# -- where results go ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "cluster", "train"])
def test_output_directory_below_a_file(command, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    line = _error(capsys, [command, "--out", str(tmp_path / "file" / "out"), "--data-dir", str(tmp_path),
                           "--quiet"])
    assert "cannot write to output directory" in line


def test_encode_output_below_a_file(model_pt, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    line = _error(capsys, ["encode", "--model", str(model_pt), "--out", str(tmp_path / "file" / "codes.npy"),
                           "--quiet"])
    assert "cannot write to output directory" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_read_only_output_directory(tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        line = _error(capsys, ["cluster", "--out", str(out), "--data-dir", str(tmp_path), "--quiet"])
    finally:
        out.chmod(0o755)
    assert "cannot write to output directory" in line and "Permission denied" in line


def test_file_in_the_way_of_a_stage_folder(fake_cifar, tmp_path, capsys):
    # The run folder is writable, but a file sits where the pixel stage writes its folder:
    # the OSError from deep inside is still one line.
    out = tmp_path / "run"
    out.mkdir()
    (out / "pixels").write_text("x")
    line = _error(capsys, ["run", "--out", str(out), *QUICK])
    assert "File exists" in line and str(out / "pixels") in line


# -- what a shell sees --------------------------------------------------------------------


def _process(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
           "AECLUST_DATA": str(tmp_path / "none")}
    env.pop("AECLUST_FAULT", None)
    return subprocess.run([sys.executable, "-m", "aeclust", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_real_process_exits_2_with_one_line_and_debug_shows_the_traceback(tmp_path):
    proc = _process(["cluster", "--k", "1", "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "aeclust: error: k=1: silhouette and Dunn's index need at least 2 clusters\n"
    proc = _process(["cluster", "--k", "1", "--out", str(tmp_path / "out"), "--debug"], tmp_path)
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr and "InvalidInputError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("aeclust: error: k=1")
