"""``aeclust run --seeds``: the whole study once per seed, a summary over the seeds, per-seed resume.

The runs use scikit-learn's digits (offline, 8x8 images), a few hundred of them
and one epoch, so that a whole multi-seed run takes seconds.
"""

from __future__ import annotations

import json
import statistics

import pytest

from aeclust import seeds as seeds_module
from aeclust._io import without_volatile
from aeclust.cli import main
from aeclust.errors import InvalidInputError
from aeclust.seeds import parse_seeds, run_seeds, summarize

QUICK = {"dataset": "digits", "epochs": 1, "test_limit": 400, "progress": False}


@pytest.mark.parametrize("text, expected", [
    ("0..4", [0, 1, 2, 3, 4]),
    ("0,3,7", [0, 3, 7]),
    ("2..2", [2]),
    ("0..2,9", [0, 1, 2, 9]),
    (" 5 , 6 ", [5, 6]),
    ("4294967295", [4294967295]),
])
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text, match", [
    ("4..1", "runs backwards"),
    ("1,1", "named twice"),
    ("0..3,2", "named twice"),
    ("-1", "from 0 to 4294967295; got -1"),
    ("a", "whole numbers or ranges"),
    ("1.5", "whole numbers or ranges"),
    ("4294967296", "from 0 to 4294967295"),
    ("0..100000", "at most 1000 seeds"),
    ("", "whole numbers or ranges"),
])
def test_parse_seeds_rejects(text, match):
    with pytest.raises(InvalidInputError, match=match):
        parse_seeds(text)


@pytest.mark.parametrize("args, match", [
    (["--seeds", "5..1"], "argument --seeds: the range '5..1' runs backwards"),
    (["--seeds", "0..2", "--seed", "1"], "not allowed with argument"),
    (["--seeds", "0,0"], "named twice"),
    (["--seeds", "0..1", "--jobs", "0"], "argument --jobs"),
])
def test_cli_rejects_bad_seed_lists(args, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--out", str(tmp_path / "r"), "--dataset", "digits", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_jobs_without_seeds_is_an_error(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "r"), "--dataset", "digits", "--jobs", "2"]) == 2
    assert "--jobs goes with --seeds" in capsys.readouterr().err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted two-seed run, one seed after the other in this process."""
    out = tmp_path_factory.mktemp("seeds") / "run"
    return out, run_seeds(out=str(out), seeds=[0, 2], jobs=1, **QUICK)


def _stable(path):
    return without_volatile(json.loads(path.read_text()))


def test_a_folder_per_seed_and_a_summary_over_them(reference):
    out, results = reference
    assert results["seeds"] == [0, 2] and results["config"]["seeds"] == [0, 2]
    assert "seed" not in results["config"]
    for seed in (0, 2):
        seed_results = json.loads((out / f"seed-{seed}" / "results.json").read_text())
        assert seed_results["config"]["seed"] == seed
        assert (out / f"seed-{seed}" / "report.html").is_file()
    rows = {r["seed"]: r for r in results["per_seed"]}
    assert sorted(rows) == [0, 2]
    for name in ("pixels", "codes"):
        sil = [rows[s]["feature_sets"][name]["silhouette"] for s in (0, 2)]
        stats = results["summary"][name]["silhouette"]
        assert stats["mean"] == pytest.approx(statistics.fmean(sil))
        assert stats["sd"] == pytest.approx(statistics.stdev(sil))
        assert stats["n"] == 2 and results["summary"][name]["n_not_meaningful"] == 0
    # The two seeds start k-means differently, so they are two different runs.
    assert rows[0]["feature_sets"]["pixels"] != rows[2]["feature_sets"]["pixels"]
    assert _stable(out / "results.json") == without_volatile(json.loads(json.dumps(results)))


def test_the_report_shows_the_per_seed_table_and_plot(reference):
    out, _ = reference
    page = (out / "report.html").read_text()
    assert "id='per-seed'" in page and "id='seed-summary'" in page
    assert "id='fig-seeds'" in page and "data:image/png;base64," in page
    assert "seed-0/report.html" in page and "seed-2/report.html" in page
    assert (out / "figures" / "seeds.png").stat().st_size > 1000


def test_seeds_in_separate_processes_give_the_same_results(reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "run"
    run_seeds(out=str(out), seeds=[0, 2], jobs=2, **QUICK)
    assert _stable(out / "results.json") == _stable(ref_out / "results.json")
    for seed in (0, 2):
        assert (_stable(out / f"seed-{seed}" / "results.json")
                == _stable(ref_out / f"seed-{seed}" / "results.json"))


def test_interrupted_after_the_first_seed_resumes_to_the_same_results(reference, tmp_path, monkeypatch):
    ref_out, _ = reference
    out = tmp_path / "run"
    real_run = seeds_module.run
    calls = []

    def interrupted_at_seed_2(config):
        calls.append(config.seed)
        if config.seed == 2:
            raise KeyboardInterrupt
        return real_run(config)

    monkeypatch.setattr(seeds_module, "run", interrupted_at_seed_2)
    with pytest.raises(KeyboardInterrupt):
        run_seeds(out=str(out), seeds=[0, 2], jobs=1, **QUICK)
    assert (out / "seed-0" / "results.json").is_file() and not (out / "results.json").exists()

    calls.clear()
    monkeypatch.setattr(seeds_module, "run", lambda config: (calls.append(config.seed), real_run(config))[1])
    said = []
    run_seeds(out=str(out), seeds=[0, 2], jobs=1, resume=True, say=said.append, **QUICK)
    assert calls == [2]  # seed 0 is read back, not run again
    assert any("seed 0: finished before" in line for line in said)
    assert _stable(out / "results.json") == _stable(ref_out / "results.json")


def test_cli_run_with_seeds(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--seeds", "0,1", "--jobs", "1", "--out", str(out), "--dataset", "digits",
                 "--epochs", "1", "--test-limit", "300"]) == 0
    printed = capsys.readouterr().out
    assert "seeds 0,1" in printed and "silhouette (mean ± sd)" in printed
    assert json.loads((out / "results.json").read_text())["seeds"] == [0, 1]


def test_a_collapsed_seed_is_left_out_of_the_means_and_counted():
    def seed_results(sil, meaningful, collapsed):
        return {"feature_sets": {"codes": {"metrics": {"silhouette": sil, "dunn": 0.1},
                                           "external": {"acc": 0.2, "nmi": 0.1}, "meaningful": meaningful}},
                "autoencoders": {"autoencoder": {"collapse": {"collapsed": collapsed,
                                                              "constant_code_features": 187 if collapsed else 3}}}}

    rows, summary = summarize({0: seed_results(0.06, True, False), 1: seed_results(0.9985, False, True),
                               2: seed_results(0.08, True, False)})
    assert summary["codes"]["silhouette"]["mean"] == pytest.approx(0.07)
    assert summary["codes"]["silhouette"]["n"] == 2
    assert summary["codes"]["n_seeds"] == 3 and summary["codes"]["n_not_meaningful"] == 1
    assert rows[1]["collapsed"]["autoencoder"]["collapsed"] is True


def test_both_readings_of_part_2_are_aggregated_with_the_study_beside_its_own(fake_cifar, tmp_path):
    results = run_seeds(out=str(tmp_path / "run"), seeds=[0, 1], jobs=1, epochs=1, device="cpu", progress=False)
    assert list(results["summary"]) == ["pixels", "codes", "codes-train"]
    for row in results["per_seed"]:
        seed_results = json.loads((tmp_path / "run" / f"seed-{row['seed']}" / "results.json").read_text())
        for name in ("codes", "codes-train"):
            assert row["feature_sets"][name]["silhouette"] == seed_results["feature_sets"][name]["metrics"]["silhouette"]
        assert seed_results["feature_sets"]["codes-train"]["n_samples"] == 200  # the fake set's training images
    # Each reading summarised on its own, over its seeds whose autoencoder did not collapse.
    for name in ("codes", "codes-train"):
        kept = [r["feature_sets"][name]["silhouette"] for r in results["per_seed"] if r["feature_sets"][name]["meaningful"]]
        summary = results["summary"][name]
        assert summary["n_seeds"] == 2 and summary["n_not_meaningful"] == 2 - len(kept)
        if kept:
            assert summary["silhouette"]["n"] == len(kept)
            assert summary["silhouette"]["mean"] == pytest.approx(statistics.fmean(kept))
    # The study's part-2 numbers mark the training-set reading, not the test-set one.
    assert results["study"] == {"pixels": {"silhouette": 0.054, "dunn": 0.0899},
                                "codes-train": {"silhouette": 0.1040, "dunn": 0.02}}
