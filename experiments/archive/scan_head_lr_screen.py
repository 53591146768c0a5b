"""Screen the SCAN-style head's learning rate and entropy weight on k-means patch features (argmax clusters).

Usage: scan_head_lr_screen.py FEATURE_DIR   (the folder given to coates_screen.py)
"""
import sys
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import load, acc, patch_pca
from scan_head import scan_head
from sklearn.metrics import normalized_mutual_info_score as nmi
torch.set_num_threads(1)
tr, te = patch_pca(sys.argv[1])
y = load().test_labels
for lr, ew in ((1e-2, 5.0), (1e-2, 2.0), (3e-2, 2.0)):
    h = scan_head(tr.astype(np.float32), seed=0, k=20, epochs=30, n_mine=10000, lr=lr, entropy_w=ew)
    with torch.no_grad(): p = F.softmax(h(torch.from_numpy(te.astype(np.float32))), 1).numpy()
    c = p.argmax(1)
    print(lr, ew, "argmax acc", round(acc(y, c), 4), "nmi", round(nmi(y, c), 4), "maxp", p.max(1).mean().round(3), np.bincount(c, minlength=10), flush=True)
