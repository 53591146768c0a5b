"""Screen a SCAN-style clustering head (Van Gansbeke et al., 2020) on frozen SimCLR features.

Usage: scan_head.py MODEL_DIR SEED

Neighbours are mined among the training images' features (cosine, k nearest);
a linear softmax head learns to give each image the same cluster as its
neighbours, with an entropy term that keeps the clusters balanced. The head's
probabilities on the test images are the features k-means clusters. Labels are
used for scoring only.
"""
import sys, time
from pathlib import Path
import torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import judge, load, log
from aeclust.contrastive import encode, load_model
torch.set_num_threads(1)

def scan_head(ftr, *, seed, k=20, n_mine=50000, epochs=30, bs=512, entropy_w=5.0, lr=1e-2):
    g = torch.Generator().manual_seed(seed)
    f = torch.from_numpy(ftr[:n_mine])
    nbr = []
    for i in range(0, len(f), 2048):
        s = f[i:i + 2048] @ f.T
        nbr.append(s.topk(k + 1, dim=1).indices[:, 1:])
    nbr = torch.cat(nbr)
    torch.manual_seed(seed)
    head = torch.nn.Linear(f.shape[1], 10)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    n = len(f)
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - bs + 1, bs):
            a = perm[i:i + bs]
            j = nbr[a, torch.randint(0, k, (len(a),), generator=g)]
            pa, pn = F.softmax(head(f[a]), 1), F.softmax(head(f[j]), 1)
            cons = -torch.log((pa * pn).sum(1).clamp_min(1e-7)).mean()
            pm = pa.mean(0)
            ent = (pm * torch.log(pm.clamp_min(1e-7))).sum()
            loss = cons + entropy_w * ent
            opt.zero_grad(); loss.backward(); opt.step()
    return head

if __name__ == "__main__":
    model_dir, seed = sys.argv[1], int(sys.argv[2])
    d = load()
    m = load_model(f"{model_dir}/model.pt")
    t0 = time.perf_counter()
    n_mine = 20000  # neighbours among the first 20,000 training images, to keep it cheap on a busy CPU
    ftr = encode(m, d.train_images[:n_mine], output="encoder"); fte = encode(m, d.test_images, output="encoder")
    t_enc = time.perf_counter() - t0
    base = judge(fte, d.test_labels, seed=seed, n_init=10)
    log({"variant": "simclr (frozen) k-means", "seed": seed, **base, "screen": True, "note": model_dir})
    for k, ew in ((20, 5.0), (20, 2.0)):
        t0 = time.perf_counter()
        head = scan_head(ftr, seed=seed, k=k, entropy_w=ew, n_mine=n_mine)
        t_head = time.perf_counter() - t0
        with torch.no_grad():
            p = F.softmax(head(torch.from_numpy(fte)), 1).numpy()
        r = judge(p, d.test_labels, seed=seed, n_init=10)
        log({"variant": f"simclr + scan head k={k} ew={ew}", "seed": seed, **r, "train_seconds": round(t_head, 1),
             "encode_seconds": round(t_enc, 1), "screen": True, "note": model_dir})
