"""Screen what k-means sees of a trained SimCLR model: projection head, whitened PCA, SCAN head with fewer neighbours.

Usage: simclr_post_screen.py MODEL_DIR SEED
"""
import sys
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import judge, load, log
from aeclust.contrastive import encode, load_model
from scan_head import scan_head
torch.set_num_threads(1)
model_dir, seed = sys.argv[1], int(sys.argv[2])
d = load(); m = load_model(f"{model_dir}/model.pt")
te_head = encode(m, d.test_images, output="projection")
log({"variant": "simclr projection-head output, k-means", "seed": seed, **judge(te_head, d.test_labels, seed=seed, n_init=10), "screen": True, "note": model_dir})
tr, te = encode(m, d.train_images[:20000], output="encoder"), encode(m, d.test_images, output="encoder")
mu = tr.mean(0); _, S, Vt = np.linalg.svd(tr - mu, full_matrices=False)
for dims in (32, 64):
    P = Vt[:dims].T / (S[:dims] / np.sqrt(len(tr)))
    log({"variant": f"simclr backbone, whitened PCA {dims}, k-means", "seed": seed,
         **judge(((te - mu) @ P).astype(np.float32), d.test_labels, seed=seed, n_init=10), "screen": True, "note": model_dir})
for k in (5, 10):
    h = scan_head(tr, seed=seed, k=k, entropy_w=2.0, n_mine=20000)
    with torch.no_grad():
        p = F.softmax(h(torch.from_numpy(te)), 1).numpy()
    log({"variant": f"simclr + scan head k={k} ew=2.0", "seed": seed, **judge(p, d.test_labels, seed=seed, n_init=10), "screen": True, "note": model_dir})
