"""The command outputs quoted in README.md and docs/*.md are what the commands print now.

``tools/quote_outputs.py`` finds the quoted blocks, runs their commands and
compares; these tests import it by path and use its functions. The first tests
check the comparison itself on made-up output (no data needed); the ``realdata``
ones run the quoted commands on the real CIFAR-10 files: the ``aeclust
cluster`` quotes in seconds, the ``aeclust run`` quote in about two minutes of
training, in a test of its own so it can be selected or left out
(``-k "not study_run"``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("quote_outputs", ROOT / "tools" / "quote_outputs.py")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


quote = _load_tool()

CLUSTER_OUTPUT = """\
aeclust cluster: cifar10-test, 10000 samples x 1024 features (pixels), k=10, seed=0
  k-means     75 iterations, converged, inertia 355379
  time        load 0.21s, preprocess 0.30s, kmeans 0.58s, metrics 1.56s
  wrote       runs/r0/results.json
"""

MARKDOWN = """\
# Title

<!-- quoted: aeclust cluster --seed 0 --out runs/r0 -->
```
$ aeclust cluster --seed 0 --out runs/r0
old output
```
<!-- /quoted -->

Text after.
"""


def _run(stdout: str) -> dict:
    command = "aeclust cluster --seed 0 --out runs/r0"
    return {command: quote.Run(command, stdout)}


def test_the_markers_in_readme_and_docs_parse():
    blocks = quote.collect()
    names = {(b.kind, b.name) for b in blocks}
    assert ("command", "aeclust cluster --seed 0 --out runs/r0") in names
    assert ("command", "aeclust run --out runs/study") in names
    assert ("table", "part1-seeds") in names
    assert all(b.body for b in blocks)
    # --only keeps a block only when every command it needs matches.
    fast = quote.collect(only=["aeclust cluster"])
    assert fast and all(c.startswith("aeclust cluster") for b in fast for c in b.commands)
    assert ("table", "better-features") not in {(b.kind, b.name) for b in fast}


def test_durations_are_ignored_and_numbers_are_not(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(MARKDOWN)
    [block] = quote.find_blocks(path)
    quote.rewrite([block], _run(CLUSTER_OUTPUT))
    [block] = quote.find_blocks(path)
    assert block.body[1] == "$ aeclust cluster --seed 0 --out runs/r0"
    assert list(block.body[2:-1]) == CLUSTER_OUTPUT.splitlines()

    slower = CLUSTER_OUTPUT.replace("0.21s", "12.5s").replace("1.56s", "2.01s")
    assert quote.stale([block], _run(slower)) == []

    changed = CLUSTER_OUTPUT.replace("75 iterations", "64 iterations").replace("355379", "355381")
    [(stale_block, lines)] = quote.stale([block], _run(changed))
    assert stale_block is block
    assert "-   k-means     75 iterations, converged, inertia 355379" in lines
    assert "+   k-means     64 iterations, converged, inertia 355381" in lines
    # The time line differs only in its durations, so it is context, not a change.
    assert not [x for x in lines if x[0] in "+-" and "time" in x]
    assert "64 iterations" in quote.format_report(quote.stale([block], _run(changed)))


def test_rewrite_touches_only_the_block(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(MARKDOWN)
    blocks = quote.find_blocks(path)
    assert quote.rewrite(blocks, _run("new output\n")) == [path]
    text = path.read_text()
    assert text == MARKDOWN.replace("old output", "new output")
    # Nothing left behind by the atomic write, and no rewrite when nothing changed.
    assert [p.name for p in tmp_path.iterdir()] == ["doc.md"]
    assert quote.rewrite(quote.find_blocks(path), _run("new output\n")) == []


@pytest.mark.parametrize("text, problem", [
    ("<!-- quoted: aeclust cluster -->\n```\n```\n", "never closed"),
    ("<!-- /quoted -->\n", "without an opening marker"),
    ("<!-- quoted: ls -l -->\n<!-- /quoted -->\n", "must start with 'aeclust'"),
    ("<!-- quoted: aeclust cluster --quiet -->\n<!-- /quoted -->\n", "--quiet"),
    ("<!-- quoted-table: nope -->\n<!-- /quoted -->\n", "unknown quoted table"),
], ids=["unclosed", "close-without-open", "not-aeclust", "quiet", "unknown-table"])
def test_bad_markers_are_named(tmp_path, text, problem):
    path = tmp_path / "doc.md"
    path.write_text(text)
    with pytest.raises(quote.QuoteError, match=problem):
        quote.find_blocks(path)


def _check(only: list[str], cifar_dir: Path, workdir: Path) -> None:
    blocks, found = quote.check(only=only, data_dir=cifar_dir, workdir=workdir, timeout=1200)
    assert blocks, f"no quoted block runs only {only}"
    assert not found, ("quoted output differs from the command's; run `make docs` to regenerate it\n"
                       + quote.format_report(found))


@pytest.mark.realdata
@pytest.mark.slow
def test_quoted_cluster_outputs_match_the_commands(cifar_dir, tmp_path):
    # aeclust cluster --seed 0/1/2: the part-1 block and the seeds table, seconds each.
    _check(["aeclust cluster"], cifar_dir, tmp_path)


@pytest.mark.realdata
@pytest.mark.slow
def test_quoted_study_run_output_matches_the_command(cifar_dir, tmp_path):
    # aeclust run: the part-2 block and the baseline rows of the features table; about two minutes.
    _check(["aeclust run --out runs/study"], cifar_dir, tmp_path)


@pytest.mark.realdata
@pytest.mark.docs
def test_quoted_many_seed_run_output_matches_the_command(cifar_dir, tmp_path):
    # aeclust run --seeds 0..4: five trainings, about five minutes on 2 CPUs; `make docs-check` runs it.
    _check(["aeclust run --seeds"], cifar_dir, tmp_path)


def test_readme_speed_table_is_the_benchmark_run_in_docs():
    # The README's speed table quotes the headline ratios of docs/benchmarks.md (one run of
    # benchmarks/run.py), row by row, in order.
    import re

    headline_keys = {
        "k-means per iteration, pixels": ["k-means pixels per iteration / sklearn lloyd",
                                          "k-means pixels per iteration / sklearn elkan",
                                          "k-means pixels per iteration / faiss"],
        "k-means per iteration, 192 principal": ["k-means codes per iteration / sklearn lloyd",
                                                 "k-means codes per iteration / sklearn elkan",
                                                 "k-means codes per iteration / faiss"],
        "whole `fit`": ["k-means++ n_init=10 fit pixels / sklearn lloyd tol=0",
                        "k-means++ n_init=10 fit codes / sklearn lloyd tol=0"],
        "Dask k-means": ["Dask k-means per Lloyd step / dask-ml"],
        "exact silhouette": ["silhouette pixels / sklearn", "silhouette codes / sklearn"],
        "silhouette + Dunn in one pass": ["fused pixels / sklearn silhouette", "fused codes / sklearn silhouette"],
        "exact Dunn": ["dunn pixels / textbook (scipy)", "dunn codes / textbook (scipy)"],
        "peak memory": ["peak RSS of aeclust metrics at 50,000 points (GiB)"],
    }
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    headline = dict(re.findall(r"^\| (.+?) \| (\d+\.\d+) \|$", doc, flags=re.M))
    readme = (ROOT / "README.md").read_text()
    speed = readme[readme.index("## Speed"):readme.index("## Reliability")]
    rows = [line for line in speed.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    assert len(rows) == len(headline_keys)
    for line in rows:
        (start, keys), = [(k, v) for k, v in headline_keys.items() if line.startswith("| " + k)]
        assert re.findall(r"(\d+\.\d+)(?:×| GiB)", line) == [headline[k] for k in keys], line


def test_features_doc_tables_are_the_logged_runs():
    # docs/features.md's two tables are rendered from experiments/results/features.jsonl, the rows
    # the experiment scripts logged; render_table.py --check fails when they differ.
    import subprocess

    script = ROOT / "experiments" / "features" / "render_table.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_readme_simclr_rows_are_the_features_doc_rows():
    # The README's "Better features" table quotes docs/features.md's rows for simclr (mean ± sd over
    # three seeds): ACC and NMI are the same strings.
    readme_to_doc = {  # a README row's first cell starts with the key, the doc row's with the value
        "`simclr`, the default": "`simclr`: 60 epochs, temperature 0.5, clusters output, cluster head (10), "
                                 "encoded over 38 views, bfloat16, solarised (0.2), `aeclust run`, k-means++ best "
                                 "of 10 (**the default**)",
        "`simclr`, without solarisation": "`simclr`: 60 epochs, temperature 0.5, clusters output, cluster head "
                                          "(10), encoded over 38 views, bfloat16, `aeclust run`, k-means++ best of 10",
        '`simclr`, `output="projection"`': "`simclr`: 40 epochs, temperature 0.5, projection output",
    }
    doc = _table_rows((ROOT / "docs" / "features.md").read_text(), "<!-- table:begin -->", "<!-- table:end -->")
    readme = _table_rows((ROOT / "README.md").read_text(), "<!-- quoted-table: better-features -->",
                         "<!-- /quoted -->")
    simclr = [cells for cells in readme if cells[0].startswith("`simclr`")]
    assert len(simclr) == len(readme_to_doc)
    for cells in simclr:
        (doc_start,) = [v for k, v in readme_to_doc.items() if cells[0].startswith(k)]
        (row,) = [r for r in doc if r[0].startswith(doc_start)]
        assert [c.replace("*", "") for c in cells[1:3]] == row[2:4], (cells, row)


def _table_rows(text: str, begin: str, end: str) -> list[list[str]]:
    body = text[text.index(begin) + len(begin):text.index(end, text.index(begin))]
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in body.splitlines() if line.startswith("| ") and not line.startswith("|---")][1:]
