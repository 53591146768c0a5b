"""Run the training code on a CUDA GPU and check what it gives.

Usage: ``python experiments/gpu_check.py [OUT.json]``. It needs no data set:
the images are synthetic (smooth random blobs), since the point is that
``--device cuda`` trains, checkpoints, resumes and encodes on the GPU, and how
fast. It prints one JSON document and writes it to OUT.json when given.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aeclust.autoencoder import AutoencoderConfig, encode, load_checkpoint, train_autoencoder


def synthetic_images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth colour blobs: learnable structure, unlike white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    out = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(4, 28, size=2)
        r = rng.uniform(3, 12)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        colour = rng.uniform(0, 255, size=3)
        background = rng.uniform(0, 255, size=3)
        out[i] = (blob[..., None] * colour + (1 - blob[..., None]) * background).astype(np.uint8)
    return out


def main() -> dict:
    report: dict = {"cuda_available": torch.cuda.is_available(), "torch": torch.__version__}
    if not torch.cuda.is_available():
        return report
    report["gpu"] = torch.cuda.get_device_name(0)
    train, test = synthetic_images(50_000), synthetic_images(2_000, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = AutoencoderConfig(epochs=3)
        t0 = time.perf_counter()
        full = train_autoencoder(config, train, test, tmp / "full", device="cuda", progress=False)
        report["study_autoencoder_cuda"] = {
            "epochs": 3, "images": len(train), "seconds": round(time.perf_counter() - t0, 2),
            "seconds_per_epoch": [h["seconds"] for h in full.history],
            "train_loss": [h["train_loss"] for h in full.history],
            "test_loss": [h["test_loss"] for h in full.history],
            "loss_decreased": full.history[-1]["train_loss"] < full.history[0]["train_loss"],
        }
        # Resume on the GPU: 2 epochs, then on to 3, against the uninterrupted 3.
        train_autoencoder(AutoencoderConfig(epochs=2), train, test, tmp / "part", device="cuda", progress=False)
        resumed = train_autoencoder(config, train, test, tmp / "part", device="cuda", resume=True, progress=False)
        a, b = full.model.state_dict(), resumed.model.state_dict()
        report["resume_cuda"] = {
            "max_abs_weight_difference": max(float((a[k].float().cpu() - b[k].float().cpu()).abs().max()) for k in a),
            "identical": all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a),
        }
        # The same weights encode the same codes on both devices (to float rounding).
        model = load_checkpoint(tmp / "full" / "model.pt").model
        codes_gpu = encode(model, test, device="cuda")
        codes_cpu = encode(model, test, device="cpu")
        report["encode_cpu_vs_cuda_max_abs_difference"] = float(np.abs(codes_gpu - codes_cpu).max())
        report["codes_shape"] = list(codes_gpu.shape)
        # The learned features of aeclust.features, one short training each on the GPU.
        from aeclust.features import fit_features

        report["learned_features_cuda"] = {}
        for name, overrides in (("simclr", {"epochs": 2}), ("kmeans-patches", {})):
            t0 = time.perf_counter()
            extractor = fit_features(name, train[:10_000], seed=0, device="cuda", out_dir=tmp / name,
                                     progress=False, **overrides)
            feats = extractor.transform(test[:1000])
            report["learned_features_cuda"][name] = {"train_images": 10_000, **overrides,
                                                     "seconds": round(time.perf_counter() - t0, 2),
                                                     "shape": list(feats.shape),
                                                     "finite": bool(np.isfinite(feats).all())}
    return report


if __name__ == "__main__":
    result = main()
    text = json.dumps(result, indent=2)
    print(text)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text + "\n")
