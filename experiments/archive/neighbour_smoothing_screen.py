"""Screen neighbour smoothing of a `simclr` model's cluster probabilities on the test images.

Usage: neighbour_smoothing_screen.py MODEL_PT

Each test image's probabilities are averaged with those of its K nearest test
images (cosine, projection or encoder features), 1-3 rounds; or its features
with its neighbours' before k-means. Prints ACC and NMI (labels for scoring only).
"""
import sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import scores, judge
from aeclust.datasets import load_dataset
from aeclust.contrastive import load_model, encode
torch.set_num_threads(2)
te = load_dataset("cifar10", None, split="test", progress=False)
m = load_model(sys.argv[1])
P = torch.as_tensor(encode(m, te.images, output="clusters", num_threads=2))
print("argmax", {k: round(v, 4) for k, v in scores(te.labels, P.argmax(1).numpy()).items()})
for space in ("projection", "encoder"):
    X = torch.as_tensor(encode(m, te.images, output=space, num_threads=2))
    S = X @ X.T
    S.fill_diagonal_(-9)
    for K in (5, 10, 20, 50):
        nb = S.topk(K, dim=1).indices
        Q = P.clone()
        for it in range(3):
            Q = 0.5 * P + 0.5 * Q[nb].mean(1)
            s = scores(te.labels, Q.argmax(1).numpy())
            print(space, K, it, "smoothed probs", round(s['acc'], 4), round(s['nmi'], 4))
        Xs = torch.nn.functional.normalize(X + X[nb].sum(1) / K, dim=1)
        r = judge(Xs.numpy(), te.labels, seed=0, n_init=3)
        print(space, K, "smoothed features k-means", r['acc'], round(r['nmi'], 4))
