"""docs/training.md is the logged comparison of the two training engines, rendered again.

experiments/compare_engines.py trains seeds 0-9 of the study's model with the torch and the
compiled engine and logs one row per training and one agreement row per seed to
experiments/engines.jsonl; the doc's tables and verdict are rendered from that log alone. No
training here: the log is read, checked and rendered.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "compare_engines.py"


@pytest.fixture(scope="module")
def ce():
    spec = importlib.util.spec_from_file_location("compare_engines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(ce):
    return ce.load_log(ce.LOG)


def test_doc_is_the_rendered_log(ce, rows):
    assert ce.DOC.read_text() == ce.render(rows), "run: python experiments/compare_engines.py --render-only"


def test_log_holds_ten_seeds_of_each_engine_with_the_study_config(ce, rows):
    from aeclust.autoencoder import AutoencoderConfig

    trainings = [r for r in rows if r["kind"] == "training"]
    for engine in ce.ENGINES:
        assert sorted(r["seed"] for r in trainings if r["engine"] == engine) == list(range(10)), engine
    for r in trainings:
        assert set(ce.ROW_FIELDS) <= set(r), sorted(set(ce.ROW_FIELDS) - set(r))
        # only the engine and the seed differ from the study's defaults
        assert r["config"] == AutoencoderConfig(seed=r["seed"], engine=r["engine"]).to_dict()
        assert [h["epoch"] for h in r["history"]] == list(range(1, 11))
        assert r["test_mse"] == r["history"][-1]["test_loss"] and 0 < r["test_mse"] < 0.06
        assert -1 <= r["silhouette"] <= 1 and r["dunn"] > 0 and 0.1 <= r["acc"] <= 1 and 0 <= r["nmi"] <= 1
        assert r["epoch_seconds"] <= r["train_seconds"]
    agreements = [r for r in rows if r["kind"] == "agreement"]
    assert sorted(r["seed"] for r in agreements) == list(range(10))
    for r in agreements:
        assert set(ce.AGREEMENT_FIELDS) <= set(r)
        assert [h["steps"] for h in r["horizons"]] == list(ce.HORIZONS)
        assert r["baseline"]["other_seed"] != r["seed"]


def test_verdict_reports_a_shift_it_is_shown(ce, rows):
    # The same log with each compiled silhouette set to its torch pair's plus 0.02 to 0.029 (three to five
    # between-seed sd): every test must reject, and the verdict must say so instead of "indistinguishable".
    shifted = copy.deepcopy(rows)
    torch_sil = {r["seed"]: r["silhouette"] for r in rows if r["kind"] == "training" and r["engine"] == "torch"}
    for r in shifted:
        if r["kind"] == "training" and r["engine"] == "compiled":
            r["silhouette"] = torch_sil[r["seed"]] + 0.02 + 0.001 * r["seed"]
    doc = ce.render(shifted)
    assert "**A difference is found.**" in doc and "Indistinguishable" not in doc
    for test in ("welch", "mannwhitney", "paired_t", "wilcoxon"):
        assert f"silhouette ({test})" in doc


def test_compare_on_known_samples(ce):
    from scipy import stats

    t = [0.10, 0.12, 0.11, 0.13, 0.09, 0.115, 0.105, 0.125, 0.095, 0.12]
    c = [x + 0.002 * (-1) ** i for i, x in enumerate(t)]
    r = ce.compare(t, c)
    assert r["diff_mean"] == pytest.approx(0.0, abs=1e-15)
    lo, hi = r["diff_ci"]
    half = stats.t.ppf(0.975, 9) * 0.002 * (10 / 9) ** 0.5 / 10**0.5  # sd of ten ±0.002 steps, over sqrt(n)
    assert lo == pytest.approx(-half) and hi == pytest.approx(half)
    assert r["paired_t"] == pytest.approx(1.0) and r["welch"] > 0.9


def test_detectable_effect_matches_the_power_tables(ce):
    # Cohen's tables: two groups of 10, alpha 0.05 two-sided, power 0.8 -> d about 1.32.
    assert ce.detectable_effect(10) == pytest.approx(1.325, abs=0.01)
    assert ce.detectable_effect(64) == pytest.approx(0.50, abs=0.01)
