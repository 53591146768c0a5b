"""Train one registered feature on the 50,000 CIFAR-10 training images and judge it on the 10,000 test images.

Usage (from the repository root; it runs from any folder):

    python experiments/features/run_variant.py NAME SEED [key=value ...] [--tag TAG] [--out DIR]

The feature learns from the training images only (no labels); k-means
(aeclust's own, k=10, k-means++, 10 runs) clusters the test images' features,
and ACC, NMI and ARI compare the clusters with the test labels. One row goes to
experiments/results/features.jsonl with the wall-clock and CPU seconds of the
training and the load average of the machine before and after.
"""
import argparse, json, os, time

import numpy as np
import torch
from common import judge, load, log  # beside this script, which Python puts first on the path

from aeclust.features import fit_features

ap = argparse.ArgumentParser()
ap.add_argument("name"); ap.add_argument("seed", type=int); ap.add_argument("config", nargs="*")
ap.add_argument("--tag", default=None); ap.add_argument("--device", default="cpu")
ap.add_argument("--out", default=None, help="keep the trained model in this folder (relative to where you run)")
ap.add_argument("--also-output", action="append", default=[],
                help="simclr: judge this output of the same model too (a row of its own)")
ap.add_argument("--with-test", action="store_true",
                help="train on the test images too (60,000 images, no labels), as the literature's rows do")
ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: one per core)")
a = ap.parse_args()
config = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.config)}
torch.set_num_threads(a.threads)
d = load()
load_before = [round(x, 2) for x in os.getloadavg()]
c0, t0 = time.process_time(), time.perf_counter()
train = np.concatenate([d.train_images, d.test_images]) if a.with_test else d.train_images
ext = fit_features(a.name, train, seed=a.seed, device=a.device, out_dir=a.out, progress=False, **config)
t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
load_after = [round(x, 2) for x in os.getloadavg()]
t1 = time.perf_counter()
X = ext.transform(d.test_images)
t_enc = time.perf_counter() - t1
for output in [None, *a.also_output]:
    if output is not None:
        from aeclust.contrastive import encode

        t1 = time.perf_counter()
        X = encode(ext.model, d.test_images, output=output, device=a.device)
        t_enc = time.perf_counter() - t1
    r = judge(X, d.test_labels, seed=a.seed, n_init=10)
    cfg = ext.config.to_dict() if output is None else {**ext.config.to_dict(), "output": output}
    log({"variant": a.tag or a.name, "features": a.name, "config": cfg, "seed": a.seed, **r,
         "dim": int(X.shape[1]), "train_seconds": round(t_train, 1), "train_cpu_seconds": round(c_train, 1),
         "encode_seconds": round(t_enc, 1), "device": a.device, "threads": a.threads,
         "load_avg_before": load_before, "load_avg_after": load_after,
         "train_data": "CIFAR-10 train and test (60,000, no labels)" if a.with_test else "CIFAR-10 train (50,000, no labels)", "eval_data": "CIFAR-10 test (10,000)"})
