"""Screen the SCAN-style head on k-means patch features (from coates_screen.py's saved arrays).

Raw features of 10,000 training and the 10,000 test images, standardised and
projected on 50 whitened principal components learned on the training part,
then L2-normalised for neighbour mining.

Usage: coates_scan_screen.py FEATURE_DIR   (the folder given to coates_screen.py)
"""
import sys
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import judge, load, log, patch_pca
from scan_head import scan_head
torch.set_num_threads(1)
tr, te = patch_pca(sys.argv[1])
d = load()
r = judge(te.astype(np.float32), d.test_labels, seed=0, n_init=10)
log({"variant": "coates-K256-pca50-white-l2", "seed": 0, **r, "screen": True})
for k in (10, 20):
    head = scan_head(tr.astype(np.float32), seed=0, k=k, epochs=30, n_mine=10000, lr=1e-3)
    with torch.no_grad():
        p = F.softmax(head(torch.from_numpy(te.astype(np.float32))), 1).numpy()
    r = judge(p, d.test_labels, seed=0, n_init=10)
    log({"variant": f"coates-K256-pca50 + scan head k={k}", "seed": 0, **r, "screen": True})
