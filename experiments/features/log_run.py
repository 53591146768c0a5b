"""Add the `simclr` rows of an ``aeclust run`` to experiments/results/features.jsonl.

Usage (from the repository root; it runs from any folder):

    aeclust run --feature-sets pixels,simclr --seeds 0..2 --jobs 1 --out DIR
    python experiments/features/log_run.py DIR [--load-avg BEFORE AFTER]

One row per seed folder (DIR/seed-N, or DIR itself for a single-seed run): the
run's ACC, NMI and ARI (from the run's own k-means, whose start the row records), the
training's wall-clock seconds (the sum of its epochs), the run's total seconds,
and the config the model was saved with. A run does not record CPU time or the
machine's load; ``--load-avg`` gives the 5-minute load average measured before
and after it by hand, else the rows carry the load average at the time they are
logged (just after the run) as the "after" one.
"""
import argparse, json, os
from pathlib import Path

from common import log  # beside this script, which Python puts first on the path

ap = argparse.ArgumentParser()
ap.add_argument("run_dir", type=Path)
ap.add_argument("--load-avg", nargs=2, type=float, metavar=("BEFORE", "AFTER"))
ap.add_argument("--threads", type=int, default=os.cpu_count(),
                help="torch threads the run used (default: one per core, as aeclust takes)")
a = ap.parse_args()
folders = sorted(a.run_dir.glob("seed-*")) or [a.run_dir]
for folder in folders:
    results = json.loads((folder / "results.json").read_text())
    fs = results["feature_sets"]["simclr"]
    model = folder / "simclr" / "model"
    config = json.loads((model / "features.json").read_text())["config"]
    history = json.loads((model / "history.json").read_text())
    ext = fs["external"]
    load = ([[None, a.load_avg[0], None], [None, a.load_avg[1], None]] if a.load_avg
            else [None, [round(x, 2) for x in os.getloadavg()]])
    log({"variant": "simclr", "features": "simclr", "via": "aeclust run", "config": config,
         "kmeans": [fs["kmeans"]["init"], fs["kmeans"]["n_init"]],
         "seed": results["config"]["seed"], "acc": ext["acc"], "nmi": ext["nmi"], "ari": ext["ari"],
         "dim": fs["n_features"], "train_seconds": round(sum(r["seconds"] for r in history), 1),
         "train_cpu_seconds": None, "run_seconds": round(results["timings"]["total"], 1),
         "threads": a.threads, "load_avg_before": load[0], "load_avg_after": load[1],
         "train_data": "CIFAR-10 train (50,000, no labels)", "eval_data": "CIFAR-10 test (10,000)"})
