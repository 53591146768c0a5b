"""docs/reproduction.md stays true of the code: its rows come from the committed results, and one row is
recomputed here (the `gray_epochs1` variant, seed 0: one epoch of training, about 10 s)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reproduce():
    spec = importlib.util.spec_from_file_location("reproduce_part2", ROOT / "experiments" / "reproduce_part2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_what_the_committed_rows_render_to(reproduce):
    conclusion = reproduce.CONCLUSION.read_text().strip() if reproduce.CONCLUSION.exists() else None
    assert reproduce.page(reproduce.load_results(), conclusion) == reproduce.DOC.read_text()


def test_the_tables_hold_only_rows_of_the_current_code(reproduce):
    rows = reproduce.load_results()
    summary = reproduce.summarize(rows, "keras")
    assert summary and all(reproduce.current(r) for s in summary for r in s["runs"])
    faithful = {s["variant"]: s for s in summary if s["variant"] in reproduce.FAITHFUL}
    assert len(faithful["gray_train"]["seeds"]) == len(faithful["gray_test"]["seeds"]) == 20


@pytest.mark.realdata
def test_a_committed_row_is_what_the_code_gives_today(reproduce, cifar_dir, tmp_path):
    from aeclust.datasets import load_dataset

    committed = [r for r in reproduce.load_results() if r["variant"] == "gray_epochs1" and r["seed"] == 0
                 and reproduce.current(r)]
    assert committed, "docs/reproduction.md has no gray_epochs1 row of seed 0: run experiments/reproduce_part2.py"
    train, test = (load_dataset("cifar10", cifar_dir, split=s, progress=False) for s in ("train", "test"))
    row = reproduce.run_one("gray_epochs1", 0, SimpleNamespace(train_images=train.images, test_images=test.images),
                            tmp_path)
    want = committed[-1]
    for key in ("config", "engine", "silhouette", "dunn", "metrics", "kmeans", "final_train_loss", "final_test_loss",
                "codes", "collapse", "split"):
        assert row[key] == want[key], key
