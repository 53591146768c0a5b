"""Screen single-layer k-means patch features (Coates & Ng 2011) for clustering.

Dictionary and PCA are learned on training images only; k-means clusters the
10,000 test images. Prints one JSON row per post-processing choice.

Usage: coates_screen.py FEATURE_DIR [K]   (K atoms, default 256)

The patch features of 10,000 training and the 10,000 test images are saved in
FEATURE_DIR (created if missing) for coates_scan_screen.py and
scan_head_lr_screen.py.
"""
import sys, time
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import load, judge, log
from aeclust.kmeans import KMeans

torch.set_num_threads(1)
out = Path(sys.argv[1])
K = int(sys.argv[2]) if len(sys.argv) > 2 else 256
P, NP = 6, 100_000
seed = 0
d = load()
rng = np.random.default_rng(seed)
t0 = time.perf_counter()
tr = d.train_images
idx = rng.integers(0, len(tr), NP); ys = rng.integers(0, 32 - P + 1, NP); xs = rng.integers(0, 32 - P + 1, NP)
patches = np.stack([tr[i, y:y+P, x:x+P] for i, y, x in zip(idx, ys, xs)]).reshape(NP, -1).astype(np.float64)
# patches flattened as (y, x, c); we unfold images in (c, y, x) order below, so transpose to match
patches = patches.reshape(NP, P, P, 3).transpose(0, 3, 1, 2).reshape(NP, -1)
patches = (patches - patches.mean(1, keepdims=True)) / np.sqrt(patches.var(1, keepdims=True) + 10)
mu = patches.mean(0); C = np.cov(patches - mu, rowvar=False)
ev, V = np.linalg.eigh(C); W = V @ np.diag(1 / np.sqrt(ev + 0.1)) @ V.T
pw = ((patches - mu) @ W).astype(np.float32)
km = KMeans(K, init="random", max_iter=15, random_state=seed).fit(pw)
D = km.cluster_centers_.astype(np.float32)
t_dict = time.perf_counter() - t0
print("dictionary", round(t_dict, 1), "s", flush=True)

Wt, mut, Dt = torch.from_numpy(W.astype(np.float32)), torch.from_numpy(mu.astype(np.float32)), torch.from_numpy(D)
Dn = (Dt ** 2).sum(1)

@torch.no_grad()
def extract(images, bs=250):
    out = []
    for i in range(0, len(images), bs):
        x = torch.from_numpy(images[i:i+bs]).permute(0, 3, 1, 2).float()
        p = F.unfold(x, P)  # (b, 108, L)
        b, _, L = p.shape
        p = p.transpose(1, 2).reshape(-1, 3 * P * P)
        p = (p - p.mean(1, keepdim=True)) / torch.sqrt(p.var(1, unbiased=False, keepdim=True) + 10)
        z = (p - mut) @ Wt
        dist = torch.sqrt(((z ** 2).sum(1, keepdim=True) - 2 * z @ Dt.T + Dn).clamp_min(0))
        f = (dist.mean(1, keepdim=True) - dist).clamp_min(0).reshape(b, 27, 27, K)
        h = 27 // 2 + 1  # quadrants of 14/13
        q = [f[:, :h, :h].sum((1, 2)), f[:, :h, h:].sum((1, 2)), f[:, h:, :h].sum((1, 2)), f[:, h:, h:].sum((1, 2))]
        out.append(torch.cat(q, 1))
    return torch.cat(out).numpy()

t1 = time.perf_counter()
ftr = extract(tr[:10000]); fte = extract(d.test_images)
t_ext = time.perf_counter() - t1
print("extract", round(t_ext, 1), "s", flush=True)
out.mkdir(parents=True, exist_ok=True)
np.save(out / f"coates_K{K}_tr.npy", ftr); np.save(out / f"coates_K{K}_te.npy", fte)

def run(name, Xte):
    r = judge(Xte.astype(np.float32), d.test_labels, seed=0, n_init=3)
    log({"variant": f"coates-K{K}-{name}", "seed": seed, **r, "train_seconds": round(t_dict, 1),
         "extract_seconds": round(t_ext, 1), "screen": True})

m, s = ftr.mean(0), ftr.std(0) + 1e-6
for dims in (50,):  # 200 components were planned but not run: the machine was too busy
    Z = (ftr - m) / s
    U, S, Vt = np.linalg.svd(Z - 0, full_matrices=False)
    proj = Vt[:dims].T
    Yte = ((fte - m) / s) @ proj
    run(f"std-pca{dims}", Yte)
    run(f"std-pca{dims}-white", Yte / (S[:dims] / np.sqrt(len(Z))))
