"""Screen how a trained SimCLR model's test images are encoded: the image as it is, averaged with its mirror
image, and at a larger side than the training views.

Usage: simclr_tta_screen.py MODEL_DIR SEED                 encoder output at 16, 20 and 24 px, with and without mirror
       simclr_tta_screen.py MODEL_DIR SEED --mirror TAG    encoder and projection output at the training side,
                                                           averaged with the mirror image (rows "TAG + mirror",
                                                           "TAG-head + mirror")
"""
import sys
from pathlib import Path
import torch
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))  # common.py, shared with the kept scripts
from common import judge, load, log
from aeclust.contrastive import _resize_for_encoding, images_to_tensor, load_model
model_dir, seed = sys.argv[1], int(sys.argv[2])
mirror_tag = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--mirror" else None
d = load(); m = load_model(f"{model_dir}/model.pt")
x = images_to_tensor(d.test_images)


@torch.no_grad()
def feats(side, flip, head=False):
    f = (lambda v: m.head(m.encoder(v))) if head else m.encoder
    out = []
    for i in range(0, len(x), 500):
        v = _resize_for_encoding(x[i:i + 500], side)
        h = f(v)
        if flip:
            h = h + f(v.flip(3))
        out.append(F.normalize(h, dim=1))
    return torch.cat(out).numpy()


if mirror_tag:
    for head in (False, True):
        log({"variant": f"{mirror_tag}{'-head' if head else ''} + mirror", "seed": seed,
             **judge(feats(m.config.resolution, True, head), d.test_labels, seed=seed, n_init=10), "screen": True,
             "note": model_dir})
else:
    for side in (16, 20, 24):
        for flip in (False, True):
            log({"variant": f"simclr encoded at {side}px{' + mirror' if flip else ''}", "seed": seed,
                 **judge(feats(side, flip), d.test_labels, seed=seed, n_init=10), "screen": True, "note": model_dir})
