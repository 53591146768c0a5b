"""One writer per run directory (aeclust.rundir): the lock, and what a directory already holds.

The concurrency tests start real ``aeclust`` processes on scikit-learn's digits
(offline, a few seconds a run). They do not race against the clock: a writer is
paused while it holds the directory (``AECLUST_FAULT=STOP:stage-pixels`` stops
the process right after its first stage), the other writer is tried, and the
paused one is then let go. The refusals are tested in this process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aeclust._io import without_volatile
from aeclust.cli import main
from aeclust.rundir import (LOCK_FILE, RECORD_FILE, Claim, RunDirectoryInUse, RunDirectoryTaken, claimed,
                            held_run, judge, locked)

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"
DIGITS = ["--dataset", "digits", "--epochs", "1", "--device", "cpu", "--quiet"]
posix_only = pytest.mark.skipif(not hasattr(signal, "SIGSTOP") or not Path("/proc/self/stat").exists(),
                                reason="needs SIGSTOP and /proc (Linux)")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "AECLUST_FAULT"}
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def _start(args, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aeclust", *args], env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stopped(process: subprocess.Popen) -> bool:
    """Whether the process is paused by SIGSTOP (state T in /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _results(run_dir: Path) -> dict:
    return without_volatile(json.loads((run_dir / "results.json").read_text()))


@pytest.fixture(scope="module")
def lone_run(tmp_path_factory) -> Path:
    """The digits run made alone: what the survivor of two writers must equal."""
    out = tmp_path_factory.mktemp("lone") / "run"
    done = subprocess.run([sys.executable, "-m", "aeclust", "run", *DIGITS, "--out", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return out


# -- two writers, real processes ----------------------------------------------------------------

@posix_only
def test_two_runs_started_together_one_exits_2_the_other_equals_a_lone_run(tmp_path, lone_run):
    out = tmp_path / "X"
    args = ["run", *DIGITS, "--out", str(out)]
    # Both start at once; whichever claims the directory first pauses after its first stage,
    # holding it, so the other meets the lock whenever it gets there.
    both = [_start(args, AECLUST_FAULT="STOP:stage-pixels") for _ in range(2)]
    try:
        _wait_for(lambda: sum(p.poll() is not None for p in both) == 1 and any(_stopped(p) for p in both),
                  "one writer to give up and the other to hold the directory")
        loser = next(p for p in both if p.poll() is not None)
        winner = next(p for p in both if p is not loser)
        stderr = loser.stderr.read()
        assert loser.returncode == 2, stderr
        assert stderr.count("\n") == 1 and "Traceback" not in stderr
        assert f"is in use by process {winner.pid} ('aeclust run') since " in stderr
        assert str(out) in stderr
        os.kill(winner.pid, signal.SIGCONT)
        assert winner.wait(timeout=600) == 0, winner.stderr.read()
    finally:
        for p in both:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
            p.wait()
    assert _results(out) == _results(lone_run)
    assert (out / "labels.npy").exists() is False  # nothing of another command's
    assert (out / "pixels" / "labels.npy").read_bytes() == (lone_run / "pixels" / "labels.npy").read_bytes()


@posix_only
def test_a_second_run_with_another_seed_waits_for_nobody_and_changes_nothing(tmp_path):
    out = tmp_path / "X"
    first = _start(["run", *DIGITS, "--out", str(out), "--feature-sets", "pixels"], AECLUST_FAULT="STOP:stage-pixels")
    try:
        _wait_for(lambda: _stopped(first) or first.poll() is not None, "the first run to pause")
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        second = subprocess.run([sys.executable, "-m", "aeclust", "run", *DIGITS, "--out", str(out), "--seed", "1",
                                 "--overwrite"], env=_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and f"in use by process {first.pid}" in second.stderr
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # even --overwrite waits
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()
    assert json.loads((out / "results.json").read_text())["config"]["seed"] == 0


def test_a_lock_left_by_a_killed_process_does_not_block_the_next_run(tmp_path, lone_run):
    out = tmp_path / "X"
    killed = subprocess.run([sys.executable, "-m", "aeclust", "run", *DIGITS, "--out", str(out)],
                            env=_env(AECLUST_FAULT="KILL:stage-pixels"), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert (out / LOCK_FILE).is_file()  # the file stays; the lock on it went with the process
    assert json.loads((out / LOCK_FILE).read_text())["pid"] != os.getpid()
    resumed = subprocess.run([sys.executable, "-m", "aeclust", "run", *DIGITS, "--out", str(out), "--resume"],
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _results(out) == _results(lone_run)


def test_the_lock_names_its_holder_and_is_released_when_the_holder_ends(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from aeclust.rundir import locked\n"
                               "with locked(sys.argv[1], 'sweep'):\n    print('held', flush=True); sys.stdin.read()",
         str(tmp_path)], env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryInUse, match=rf"in use by process {holder.pid} \('aeclust sweep'\) since "
                                                    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d; wait for it"):
            with locked(tmp_path, "run"):
                pass
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not (tmp_path / LOCK_FILE).exists()  # removed by the holder as it let go
    with locked(tmp_path, "run"):  # free again
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


# -- what a directory holds -------------------------------------------------------------------------

@pytest.fixture
def finished_seed_0(tmp_path, capsys) -> Path:
    out = tmp_path / "X"
    assert main(["run", *DIGITS, "--feature-sets", "pixels", "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_another_seed_is_refused_until_overwrite(finished_seed_0, capsys):
    out = finished_seed_0
    before = (out / "results.json").read_bytes()
    assert main(["run", *DIGITS, "--feature-sets", "pixels", "--out", str(out), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (f"aeclust: error: {out} holds a finished 'aeclust run' of another configuration (seed 0 there, "
                   f"1 here); choose another --out or add --overwrite to replace it\n")
    assert (out / "results.json").read_bytes() == before
    assert main(["run", *DIGITS, "--feature-sets", "pixels", "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["config"]["seed"] == 1
    assert json.loads((out / RECORD_FILE).read_text())["config"]["seed"] == 1


def test_the_same_configuration_may_run_again(finished_seed_0, capsys):
    out = finished_seed_0
    before = _results(out)
    assert main(["run", *DIGITS, "--feature-sets", "pixels", "--out", str(out)]) == 0
    assert _results(out) == before


def test_another_command_is_refused(finished_seed_0, capsys):
    out = finished_seed_0
    assert main(["cluster", "--dataset", "digits", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"aeclust: error: {out} holds a finished 'aeclust run', and this is 'aeclust cluster'; choose another --out "
        f"or add --overwrite to replace it\n")
    assert main(["cluster", "--dataset", "digits", "--out", str(out), "--quiet", "--overwrite"]) == 0
    # What the run wrote is gone; the cluster's files are there.
    assert sorted(p.name for p in out.iterdir()) == ["labels.npy", "results.json", RECORD_FILE]
    assert held_run(out).command == "cluster" and held_run(out).finished


def test_an_unfinished_run_is_refused_unless_resumed_or_overwritten(tmp_path, monkeypatch, capsys):
    out = tmp_path / "X"
    args = ["run", *DIGITS, "--out", str(out)]
    monkeypatch.setenv("AECLUST_FAULT", "INT:stage-pixels")
    assert main(args) == 130
    monkeypatch.delenv("AECLUST_FAULT")
    capsys.readouterr()
    assert not held_run(out).finished
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"aeclust: error: {out} holds an unfinished 'aeclust run' of this configuration; add --resume to continue "
        f"it, add --overwrite to replace it or choose another --out\n")
    assert (out / "stages" / "pixels.json").is_file()  # the finished stage is still there
    assert main([*args, "--resume"]) == 0
    assert held_run(out).finished


def test_overwrite_starts_an_unfinished_run_over(tmp_path, monkeypatch, capsys):
    out = tmp_path / "X"
    args = ["run", *DIGITS, "--out", str(out), "--feature-sets", "pixels"]
    monkeypatch.setenv("AECLUST_FAULT", "INT:stage-pixels")
    assert main(args) == 130
    monkeypatch.delenv("AECLUST_FAULT")
    stage = out / "stages" / "pixels.json"
    os.utime(stage, (0, 0))
    assert main([*args, "--overwrite"]) == 0
    assert stage.stat().st_mtime > 0  # written again, not read back


def test_sweep_and_train_are_guarded_too(tmp_path, capsys):
    out = tmp_path / "S"
    assert main(["sweep", "--dataset", "digits", "--k", "2,3", "--out", str(out), "--quiet"]) == 0
    assert main(["sweep", "--dataset", "digits", "--k", "2,4", "--out", str(out), "--quiet"]) == 2
    assert "holds a finished 'aeclust sweep' of another configuration (k [2, 3] there, [2, 4] here)" in \
        capsys.readouterr().err
    assert main(["train", "--out", str(out), "--quiet", "--epochs", "1"]) == 2
    assert "holds a finished 'aeclust sweep', and this is 'aeclust train'" in capsys.readouterr().err


def test_a_run_written_before_run_json_is_judged_by_its_results(tmp_path, finished_seed_0):
    out = finished_seed_0
    (out / RECORD_FILE).unlink()  # as an older aeclust left it
    recorded = json.loads((out / "results.json").read_text())["config"]
    claim_of = lambda seed: Claim("run", {**recorded, "seed": seed}, resumable=True)  # noqa: E731
    assert judge(out, claim_of(0)).command == "run"
    with pytest.raises(RunDirectoryTaken, match="seed 0 there, 3 here"):
        judge(out, claim_of(3))
    (out / "results.json").unlink()  # an older unfinished run: its stages only
    with pytest.raises(RunDirectoryTaken, match="whose configuration was not recorded"):
        judge(out, claim_of(0))
    assert judge(out, claim_of(0), resume=True) is not None  # the stages' own checks judge it


def test_overwrite_removes_only_what_the_older_run_listed(tmp_path):
    out = tmp_path / "X"
    (out / "mine").mkdir(parents=True)
    (out / "notes.txt").write_text("a person's file")
    (out / RECORD_FILE).write_text(json.dumps({"command": "sweep", "config": {}, "finished": "sweep.json",
                                               "outputs": ["sweep.json", "mine"]}))
    (out / "sweep.json").write_text("{}")
    with claimed(out, Claim("cluster", {"k": 2}), overwrite=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", RECORD_FILE]
    # A run.json that names something outside the directory is not obeyed: it counts as damaged.
    (out / RECORD_FILE).write_text(json.dumps({"command": "sweep", "config": {}, "finished": "x",
                                               "outputs": ["../../etc"]}))
    with pytest.raises(RunDirectoryTaken, match="whose run.json is damaged"):
        judge(out, Claim("cluster", {"k": 2}))
    with claimed(out, Claim("cluster", {"k": 2}), overwrite=True):
        pass
    assert (out / "notes.txt").is_file()


def test_seeds_check_every_seed_folder_before_any_work(tmp_path, capsys):
    out = tmp_path / "S"
    base = ["run", *DIGITS, "--feature-sets", "pixels"]
    assert main([*base, "--out", str(out / "seed-1"), "--seed", "1", "--k", "5"]) == 0
    capsys.readouterr()
    base += ["--jobs", "1"]
    assert main([*base, "--out", str(out), "--seeds", "0..1"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'seed-1'} holds a finished 'aeclust run' of another configuration (k 5 there, 10 here" in err
    assert not (out / "seed-0").exists()  # refused before seed 0 ran
    assert main([*base, "--out", str(out), "--seeds", "0..1", "--overwrite"]) == 0
    assert json.loads((out / "seed-1" / "results.json").read_text())["config"]["k"] == 10
    # Another run over the parent's seeds is a run of another command.
    assert main(["run", *DIGITS, "--feature-sets", "pixels", "--out", str(out)]) == 2
    assert "holds a finished 'aeclust run --seeds', and this is 'aeclust run'" in capsys.readouterr().err
