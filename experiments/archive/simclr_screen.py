"""Screen SimCLR features: train on the 50,000 training images, k-means on the 10,000 test images.

Usage: simclr_screen.py SEED EPOCHS [key=value ...] [out=MODEL_DIR]   (keys of ContrastiveConfig)

The model is saved in MODEL_DIR (default: a new temporary folder, printed), the
MODEL_DIR that scan_head.py, simclr_post_screen.py and simclr_tta_screen.py take.
"""
import json, os, sys, tempfile, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import load, judge, log
from aeclust.contrastive import ContrastiveConfig, train_contrastive, encode

seed, epochs = int(sys.argv[1]), int(sys.argv[2])
pairs = dict(a.split("=", 1) for a in sys.argv[3:])
out = pairs.pop("out", None)  # a path, not JSON
over = {k: json.loads(v) for k, v in pairs.items()}
device = over.pop("device", "cpu")
tag = over.pop("tag", "simclr")
n_train = over.pop("n_train", 50000)
cfg = ContrastiveConfig(epochs=epochs, seed=seed, **over)
out = out or tempfile.mkdtemp(prefix=f"{tag}-s{seed}-")
print("model folder", out, flush=True)
d = load()
t0 = time.perf_counter()
res = train_contrastive(cfg, d.train_images[:n_train], out, device=device, progress=False,
                        num_threads=int(os.environ.get("THREADS", 1)))
t_train = time.perf_counter() - t0
print("history", json.dumps(res.history[-1]), "train", round(t_train, 1), flush=True)
t1 = time.perf_counter()
for head in (False, True):
    f = encode(res.model, d.test_images, output="projection" if head else "encoder", device=device)
    t_enc = time.perf_counter() - t1
    r = judge(f, d.test_labels, seed=seed, n_init=5)
    log({"variant": f"{tag}{'-head' if head else ''}", "config": cfg.to_dict(), "seed": seed, **r,
         "train_seconds": round(t_train, 1), "encode_seconds": round(t_enc, 1), "device": device,
         "final_loss": res.history[-1]["loss"], "screen": True})
if cfg.n_clusters:  # the cluster head's probabilities, clustered by k-means, and its argmax as it is
    from common import scores
    p = encode(res.model, d.test_images, output="clusters", device=device)
    log({"variant": f"{tag}-cluster-probs", "config": cfg.to_dict(), "seed": seed,
         **judge(p, d.test_labels, seed=seed, n_init=5), "train_seconds": round(t_train, 1), "screen": True})
    c = p.argmax(1)
    log({"variant": f"{tag}-cluster-argmax", "config": cfg.to_dict(), "seed": seed, **scores(d.test_labels, c),
         "clusters_used": int(len(np.unique(c))), "train_seconds": round(t_train, 1), "screen": True})
