"""Screen SCAN's self-labelling step (Van Gansbeke et al., 2020) on a trained `simclr` model.

Usage: selflabel_screen.py MODEL_PT [--epochs 4 --frac 0.5 --lr 1e-4 ...]

Each epoch the cluster head labels the 50,000 training images; the most
confident ``frac`` of each cluster become pseudo-labels, and the whole network
fine-tunes on two augmented views of them with class-balanced cross-entropy
(plus the SimCLR loss, weight ``--simclr``). Prints the test set's ACC/NMI/ARI
(argmax of the head) after each epoch, and the precision of the pseudo-labels;
labels are used for scoring only. Row: `simclr 40 epochs, bfloat16 + self-labelling`.
"""
import argparse, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
import torch, torch.nn.functional as F
from common import scores
from aeclust.datasets import load_dataset
from aeclust.contrastive import load_model, augment, nt_xent, cluster_loss, encode, _resize_for_encoding
from aeclust._torch import images_to_tensor

ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--lr", type=float, default=1e-4); ap.add_argument("--frac", type=float, default=0.5)
ap.add_argument("--thr", type=float, default=0.0)
ap.add_argument("--simclr", type=float, default=1.0, help="weight of the NT-Xent loss kept beside")
ap.add_argument("--cc", type=float, default=0.0, help="weight of the cluster loss kept beside")
ap.add_argument("--relabel", type=int, default=1)
ap.add_argument("--subset", type=int, default=1, help="train only on the selected images")
ap.add_argument("--bs", type=int, default=256)
ap.add_argument("--bf16", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(2)
tr = load_dataset("cifar10", None, split="train", progress=False)
te = load_dataset("cifar10", None, split="test", progress=False)
model = load_model(a.model)
cfg = model.config
x = images_to_tensor(tr.images)

def probs(m, xs):
    m.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(xs), 1000):
            v = _resize_for_encoding(xs[i:i + 1000], cfg.resolution)
            out.append(m.cluster_head(m.encoder(v)).softmax(1))
    return torch.cat(out)

def report(tag):
    p = encode(model, te.images, output="clusters")
    s = scores(te.labels, p.argmax(1))
    print(f"{tag}: test argmax ACC {s['acc']:.4f} NMI {s['nmi']:.4f} ARI {s['ari']:.4f}", flush=True)
    return s

report("before")
gen = torch.Generator().manual_seed(a.seed + 7)
shuffle = torch.Generator().manual_seed(a.seed + 8)
opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=cfg.weight_decay)
k = cfg.n_clusters
ytr = torch.as_tensor(tr.labels)
for ep in range(1, a.epochs + 1):
    t0 = time.perf_counter()
    if ep == 1 or a.relabel:
        p = probs(model, x)
        conf, lab = p.max(1)
        sel = torch.zeros(len(x), dtype=torch.bool)
        for c in range(k):
            idx = (lab == c).nonzero().squeeze(1)
            if len(idx) == 0:
                continue
            m = max(1, int(a.frac * len(idx)))
            top = idx[conf[idx].argsort(descending=True)[:m]]
            sel[top] = True
        if a.thr:
            sel &= conf > a.thr
        counts = torch.bincount(lab[sel], minlength=k).float()
        w = (counts.sum() / (k * counts.clamp_min(1)))
        # precision of the pseudo-labels (labels used only here, to score)
        pl = lab.numpy(); s_all = scores(tr.labels, pl); s_sel = scores(tr.labels[sel.numpy()], pl[sel.numpy()])
        print(f"ep {ep}: selected {int(sel.sum())} conf-mean {conf.mean():.3f}; train ACC all {s_all['acc']:.3f} "
              f"selected {s_sel['acc']:.3f}; counts {counts.int().tolist()}", flush=True)
    pool = sel.nonzero().squeeze(1) if a.subset else torch.arange(len(x))
    model.train()
    perm = pool[torch.randperm(len(pool), generator=shuffle)]
    nb = len(perm) // a.bs
    tot = 0.0
    for b in range(nb):
        idx = perm[b * a.bs:(b + 1) * a.bs]
        xb = x[idx]
        v1 = augment(xb, cfg, gen).contiguous(memory_format=torch.channels_last)
        v2 = augment(xb, cfg, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.bf16)):
            (z1, c1), (z2, c2) = model(v1), model(v2)
        z1, z2, c1, c2 = z1.float(), z2.float(), c1.float(), c2.float()
        m = sel[idx]
        y = lab[idx]
        loss = 0.0
        if m.any():
            wt = w[y[m]]
            ce = (F.cross_entropy(c1[m], y[m], reduction="none") * wt).sum() / wt.sum()
            ce = ce + (F.cross_entropy(c2[m], y[m], reduction="none") * wt).sum() / wt.sum()
            loss = loss + ce / 2
        if a.simclr:
            loss = loss + a.simclr * nt_xent(z1, z2, cfg.temperature)
        if a.cc:
            loss = loss + a.cc * cluster_loss(c1, c2, cfg.cluster_temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tot += float(loss.detach())
    print(f"ep {ep}: loss {tot / max(nb, 1):.4f}, {time.perf_counter() - t0:.1f} s", flush=True)
    report(f"ep {ep}")
