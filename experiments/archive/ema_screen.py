"""Screen: does an exponential moving average (EMA) of the weights encode better than the final weights?

One training run of the default ``simclr`` feature (seed from the command
line) keeps EMAs of its parameters at several decays beside the weights the
optimiser moves; the test images are then encoded by each (the default 38
views, cluster probabilities) and clustered by aeclust's k-means (k-means++,
best of 10), and by the argmax of the probabilities. Same trajectory, so the
comparison is paired. One row per model goes to experiments/results/features.jsonl.

    python experiments/archive/ema_screen.py SEED [key=value ...]
"""
import copy, json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts

import numpy as np
import torch
from common import judge, load, log, scores

from aeclust.contrastive import ContrastiveConfig, augment, encode, train_contrastive

seed = int(sys.argv[1])
overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in sys.argv[2:])}
DECAYS = (0.999, 0.9995, 0.9998)
torch.set_num_threads(os.cpu_count())


class EmaAdam(torch.optim.Adam):
    """Adam that also keeps EMAs of its parameters after every step."""

    def __init__(self, params, **kw):
        params = list(params)
        super().__init__(params, **kw)
        self.ps = params
        self.emas = {d: [p.detach().clone() for p in params] for d in DECAYS}
        self.t = 0

    @torch.no_grad()
    def step(self, closure=None):
        out = super().step(closure)
        self.t += 1
        for d, ema in self.emas.items():
            torch._foreach_lerp_(ema, [p.detach() for p in self.ps], 1 - d)
        return out


opts = []
real_adam = torch.optim.Adam
torch.optim.Adam = lambda params, **kw: opts.append(EmaAdam(params, **kw)) or opts[-1]
d = load()
if os.environ.get("SMOKE"):  # a quick check of the script itself: few images, nothing logged
    d.train_images, d.test_images, d.test_labels = d.train_images[:1024], d.test_images[:500], d.test_labels[:500]
    log = lambda row: None
load_before = [round(x, 2) for x in os.getloadavg()]
config = ContrastiveConfig(seed=seed, **overrides)
t0 = time.perf_counter()
res = train_contrastive(config, d.train_images, progress=False, num_threads=None)
t_train = time.perf_counter() - t0
torch.optim.Adam = real_adam
load_after = [round(x, 2) for x in os.getloadavg()]
opt = opts[0]
raw = res.model


def recompute_bn(model):
    """BN running statistics of ``model`` from augmented training views (as the training saw them), 40 batches."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.from_numpy(d.train_images[:10240]).permute(0, 3, 1, 2).float() / 255
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats(); m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 256):
            model(augment(x[i:i + 256], model.config, gen))
    return model.eval()


models = {"final weights": raw}
for dcy, ema in opt.emas.items():
    m = copy.deepcopy(raw)
    with torch.no_grad():
        for p, e in zip(m.parameters(), ema):
            p.copy_(e)
    models[f"EMA {dcy}"] = m
    models[f"EMA {dcy} + BN recomputed"] = recompute_bn(copy.deepcopy(m))
for name, m in models.items():
    X = encode(m, d.test_images, num_threads=None)
    r = judge(X, d.test_labels, seed=seed, n_init=10)
    am = scores(d.test_labels, X.argmax(1))
    print(f"{name:32s} kmeans++ ACC {r['acc']:.4f} NMI {r['nmi']:.4f} | argmax ACC {am['acc']:.4f} NMI {am['nmi']:.4f}", flush=True)
    log({"variant": f"simclr {config.epochs} epochs, {name}", "features": "simclr", "config": config.to_dict(),
         "seed": seed, **r, "train_seconds": round(t_train, 1), "screen": True,
         "load_avg_before": load_before, "load_avg_after": load_after,
         "note": f"ema_screen.py: one training run, EMAs of the weights at decays {DECAYS} kept beside it; "
                 f"38-view encoding, k-means++ best of 10; argmax {am['acc']:.4f} / {am['nmi']:.4f}"})
