"""The report as a person sees it: opened in headless Chromium, every image decodes and nothing errs.

A copy of each page gets a small checker script at the end of its ``<head>``
(the report itself has no script): it records ``console.error`` calls, script
errors and resources that fail to load, and when the page has loaded writes a
verdict (images, the ones that did not decode, the errors) into a
``<pre id='verdict'>``, which ``chromium --dump-dom`` prints. Chromium's own log
of console messages (``--enable-logging=stderr``) is checked as well.

Where no Chromium can be found, the browser tests are skipped with a reason
that says what to install; set ``AECLUST_CHROMIUM`` to a browser binary to use
another one.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aeclust import report

sys.path.insert(0, str(Path(__file__).parent))
import test_report as hand_made  # noqa: E402 - the hand-made results of the report's own tests

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

CHECKER = """<script>
(function () {
  var errors = [];
  var original = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
  window.addEventListener("error", function (event) {
    var t = event.target;
    errors.push(t && t.tagName ? "failed to load <" + t.tagName.toLowerCase() + "> " + (t.alt || "")
                               : "script error: " + event.message);
  }, true);
  window.addEventListener("load", function () {
    var images = Array.prototype.slice.call(document.images);
    var undecoded = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                          .map(function (i) { return i.alt || i.src.slice(0, 60); });
    var verdict = document.createElement("pre");
    verdict.id = "verdict";
    verdict.textContent = JSON.stringify({images: images.length, undecoded: undecoded, errors: errors,
      widths: images.map(function (i) { return i.naturalWidth; })});
    document.body.appendChild(verdict);
  });
})();
</script>"""


def find_chromium() -> str | None:
    """The browser binary: ``AECLUST_CHROMIUM`` where set, else the first of :data:`BROWSERS` on the PATH."""
    chosen = os.environ.get("AECLUST_CHROMIUM")
    if chosen:
        return chosen
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium to open report.html in: install it (Debian/Ubuntu: apt-get install -y chromium) "
                    "or set AECLUST_CHROMIUM to a Chromium or Chrome binary")
    return path


def open_in_browser(chromium: str, page: Path, tmp_path: Path) -> dict:
    """Open a copy of ``page`` with the checker in headless Chromium; the checker's verdict,
    with Chromium's logged console messages of the page under ``"console"``."""
    text = page.read_text(encoding="utf-8")
    assert "</head>" in text and "<script" not in text
    copy = tmp_path / f"checked-{page.parent.name}-{page.name}"
    copy.write_text(text.replace("</head>", CHECKER + "</head>", 1), encoding="utf-8")
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--log-level=0",
         "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="verdict">(.*?)</pre>', done.stdout, re.S)
    assert found, f"Chromium gave no verdict (exit {done.returncode}):\n{done.stderr[-3000:]}"
    verdict = json.loads(html.unescape(found.group(1)))
    verdict["console"] = [line for line in done.stderr.splitlines()
                          if ":CONSOLE" in line and copy.as_uri() in line]
    return verdict


def assert_shows_cleanly(verdict: dict, page: Path) -> None:
    expected = len(re.findall(r"<img ", page.read_text(encoding="utf-8")))
    assert verdict["images"] == expected > 0
    assert verdict["undecoded"] == [], f"images that did not decode: {verdict['undecoded']}"
    assert all(w > 0 for w in verdict["widths"])
    assert verdict["errors"] == [], verdict["errors"]
    assert verdict["console"] == [], verdict["console"]


# -- the pages ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hand_made_run(tmp_path_factory) -> Path:
    """A run directory with every kind of figure, from the report tests' hand-made results."""
    torch = pytest.importorskip("torch")
    from aeclust.autoencoder import AutoencoderConfig, ConvAutoencoder

    out = tmp_path_factory.mktemp("hand-made")
    results = hand_made.run_results()
    hand_made.write_labels(out, results)
    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig(color="gray"))
    report.build_run_report(out, results, models={"gray": model}, images=hand_made.fake_images(),
                            labels=hand_made.true_classes())
    return out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """``aeclust run`` on 300 of scikit-learn's digits, one epoch: a real run in seconds."""
    from aeclust.cli import main

    out = tmp_path_factory.mktemp("digits") / "run"
    assert main(["run", "--dataset", "digits", "--map", "--epochs", "1", "--train-limit", "300", "--test-limit", "300",
                 "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    return out


def test_a_real_run_leaves_silhouettes_and_maps_for_its_report(digits_run):
    results = json.loads((digits_run / "results.json").read_text())
    page = (digits_run / "report.html").read_text()
    for name, fs in results["feature_sets"].items():
        labels = np.load(digits_run / name / "labels.npy")
        s = np.load(digits_run / name / "silhouette.npy")
        assert s.dtype == np.float32 and s.shape == labels.shape
        assert abs(float(s.astype(np.float64).mean()) - fs["metrics"]["silhouette"]) < 1e-5
        rows, xy = np.load(digits_run / name / "map_rows.npy"), np.load(digits_run / name / "map.npy")
        assert rows.tolist() == list(range(300)) and xy.shape == (300, 2) and xy.dtype == np.float32
        assert "map" in fs["timings"]  # the silhouettes come from the metrics pass itself
        for kind in ("silhouette", "clusters", "map"):
            assert (digits_run / "figures" / f"{kind}_{name}.png").is_file()
            assert f"id='fig-{kind}-{name}'" in page
    assert "fit it best (highest silhouette)" in page


def test_run_report_in_a_browser(chromium, digits_run, tmp_path):
    page = digits_run / "report.html"
    assert_shows_cleanly(open_in_browser(chromium, page, tmp_path), page)


def test_every_kind_of_figure_in_a_browser(chromium, hand_made_run, tmp_path):
    page = hand_made_run / "report.html"
    verdict = open_in_browser(chromium, page, tmp_path)
    assert_shows_cleanly(verdict, page)
    assert verdict["images"] == len(list((hand_made_run / "figures").glob("*.png")))


def test_seeds_report_in_a_browser(chromium, tmp_path):
    page = report.build_seeds_report(tmp_path / "seeds", hand_made.seeds_results())
    assert_shows_cleanly(open_in_browser(chromium, page, tmp_path), page)


def test_the_checker_sees_a_broken_page(chromium, tmp_path):
    """The checker itself: a truncated image and a missing one are seen, and so is an error."""
    page = tmp_path / "broken" / "report.html"
    page.parent.mkdir()
    page.write_text("<!DOCTYPE html><html><head><title>broken</title></head><body>"
                    "<img alt='cut' src='data:image/png;base64,iVBORw0KGgo='>"
                    "<img alt='missing' src='nowhere.png'></body></html>")
    verdict = open_in_browser(chromium, page, tmp_path)
    assert sorted(verdict["undecoded"]) == ["cut", "missing"]
    assert any("failed to load <img>" in e for e in verdict["errors"])
