"""Screen how a trained SimCLR model's test images are encoded: the image as it is, averaged with its mirror
image, and at a larger side than the training views.

Usage: simclr_tta_screen.py MODEL_DIR SEED
"""
import sys, warnings
import numpy as np, torch
import torch.nn.functional as F
from common import judge, load, log
from aeclust.contrastive import _resize_for_encoding, images_to_tensor, load_model
warnings.filterwarnings("ignore")
model_dir, seed = sys.argv[1], int(sys.argv[2])
d = load(); m = load_model(f"{model_dir}/model.pt")
x = images_to_tensor(d.test_images)


@torch.no_grad()
def feats(side, flip):
    out = []
    for i in range(0, len(x), 500):
        v = _resize_for_encoding(x[i:i + 500], side)
        h = m.encoder(v)
        if flip:
            h = h + m.encoder(v.flip(3))
        out.append(F.normalize(h, dim=1))
    return torch.cat(out).numpy()


for side in (16, 20, 24):
    for flip in (False, True):
        log({"variant": f"simclr encoded at {side}px{' + mirror' if flip else ''}", "seed": seed,
             **judge(feats(side, flip), d.test_labels, seed=seed, n_init=10), "screen": True, "note": model_dir})
