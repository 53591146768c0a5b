"""The autoencoder's training step: PyTorch's loop against the compiled engine, and the FLOP floor.

    python benchmarks/training_step.py                 # 7 interleaved repeats of 200 steps each
    python benchmarks/training_step.py --repeats 3 --steps 100

One step is what ``train_autoencoder`` does per batch of 32 grayscale 32 x 32
images with the study's model (5 convolutions 3x3, channels 1-3-3-3-3-1), on one
thread:

- ``torch``: today's loop of the torch engine (channels_last, ``F.mse_loss``,
  ``backward``, ``torch.optim.Adam``);
- ``autograd.Function``: the compiled convolution kernels behind
  ``torch.autograd.Function``s, PyTorch's autograd, pooling, activations and
  Adam around them (the other shape the compiled path could have had);
- ``compiled``: the engine ``compiled`` (``aeclust._convnet_jit.FusedTrainer.step``:
  one fused forward, backward and Adam step outside PyTorch);
- the FLOP floor: the step's multiply-adds of the convolutions (forward, input
  gradient except the first layer's, weight gradient) at the speed of a large
  single-threaded float32 matrix product on this machine (``torch.mm``, 1 thread).

The contestants run interleaved (A, B, C, A, B, C, ...) in one process, and the
table gives medians, so that load from other work falls on all alike. The
per-layer split times each kernel of the compiled step on its own. The kernels'
compile (or disk-cache load) time is reported on its own line.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from aeclust import _convnet_jit as J
from aeclust.autoencoder import AutoencoderConfig, ConvAutoencoder

B, H, W, K = 32, 32, 32, 3
# (in, out, side) of the five convolutions of the study's model
LAYERS = [(1, 3, 32), (3, 3, 16), (3, 3, 8), (3, 3, 16), (3, 1, 32)]


def conv_flops() -> int:
    """FLOPs (2 per multiply-add) of one step's convolutions: forward, input gradient (not the first
    layer's, which no one needs) and weight gradient."""
    total = 0
    for i, (ci, co, side) in enumerate(LAYERS):
        macs = B * ci * co * K * K * side * side
        total += 2 * macs * (3 if i else 2)
    return total


def peak_gflops() -> float:
    """Single-thread float32 matrix product speed: the machine's practical arithmetic ceiling."""
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * 1024**3 / best / 1e9


class _Conv(torch.autograd.Function):
    """A 'same' convolution by the compiled kernels, in PyTorch's autograd (NCHW tensors in and out)."""

    @staticmethod
    def forward(ctx, x, w, b):
        n, _, h, wd = x.shape
        xp = J.padded(x.detach().numpy(), K)
        z = np.zeros((n, w.shape[0], xp.shape[2]), np.float32)
        J.conv_forward(xp, w.detach().numpy(), b.detach().numpy(), z, h, wd, n)
        ctx.save_for_backward(w)
        ctx.xp, ctx.hw = xp, (h, wd)
        return torch.from_numpy(J.unpadded(z, h, wd, K))

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        h, wd = ctx.hw
        n = g.shape[0]
        gp = J.padded(g.contiguous().numpy(), K)
        gx = np.empty_like(ctx.xp)
        J.conv_input_grad(gp, w.detach().numpy(), gx, h, wd, n)
        gw, gb = np.empty(tuple(w.shape), np.float32), np.empty(w.shape[0], np.float32)
        J.conv_weight_grad(gp, ctx.xp, gw, gb, h, wd, n)
        return torch.from_numpy(J.unpadded(gx, h, wd, K)), torch.from_numpy(gw), torch.from_numpy(gb)


def _function_model(model):
    enc, dec = model.encoder, model.decoder

    def forward(x):
        x = F.max_pool2d(F.relu(_Conv.apply(x, enc[0].weight, enc[0].bias)), 2)
        x = F.max_pool2d(F.relu(_Conv.apply(x, enc[3].weight, enc[3].bias)), 2)
        x = F.interpolate(F.relu(_Conv.apply(x, dec[0].weight, dec[0].bias)), scale_factor=2, mode="nearest")
        x = F.interpolate(F.relu(_Conv.apply(x, dec[3].weight, dec[3].bias)), scale_factor=2, mode="nearest")
        return torch.sigmoid(_Conv.apply(x, dec[6].weight, dec[6].bias))

    return forward


def contestants(images: torch.Tensor):
    """name -> function(batch indices) for one training step each; fresh models from seed 0."""
    torch.manual_seed(0)
    eager = ConvAutoencoder(AutoencoderConfig()).to(memory_format=torch.channels_last)
    eager_opt = torch.optim.Adam(eager.parameters(), lr=1e-3)

    def torch_step(idx):
        xb = images[idx].contiguous(memory_format=torch.channels_last)
        loss = F.mse_loss(eager(xb), xb)
        eager_opt.zero_grad(set_to_none=True)
        loss.backward()
        eager_opt.step()

    torch.manual_seed(0)
    fn_model = ConvAutoencoder(AutoencoderConfig())
    fn_forward, fn_opt = _function_model(fn_model), torch.optim.Adam(fn_model.parameters(), lr=1e-3)

    def function_step(idx):
        xb = images[idx]
        loss = F.mse_loss(fn_forward(xb), xb)
        fn_opt.zero_grad(set_to_none=True)
        loss.backward()
        fn_opt.step()

    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig())
    trainer = J.FusedTrainer(1, (3, 3), K, "relu", "relu", H, W, B)
    trainer.params[:] = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    array = images.numpy()

    def compiled_step(idx):
        trainer.step(array, idx.numpy())

    return {"torch": torch_step, "autograd.Function": function_step, "compiled": compiled_step}


def per_layer(images: np.ndarray, repeats: int) -> list[tuple[str, float, int]]:
    """(kernel, median microseconds, FLOPs) for each kernel call of the compiled step."""
    t = J.FusedTrainer(1, (3, 3), K, "relu", "relu", H, W, B)
    t.params[:] = 0.05
    idx = np.arange(B, dtype=np.int64)
    t.step(images, idx)
    x0, z1, p1, z2, p2, z3, u3, z4, u4, z5, g5, gu4, gz4, gu3, gz3, gp2, gz2, gp1, gz1 = t.planes
    w = [t.layer(i)[0] for i in range(5)]
    b = [t.layer(i)[1] for i in range(5)]
    gw = [t.layer(i, t.grads)[0] for i in range(5)]
    gb = [t.layer(i, t.grads)[1] for i in range(5)]
    ins, outs, gouts, gins = [x0, p1, p2, u3, u4], [z1, z2, z3, z4, z5], [gz1, gz2, gz3, gz4, g5], [None, gp1, gp2, gu3, gu4]
    calls = []
    for i, (ci, co, s) in enumerate(LAYERS):
        macs = B * ci * co * K * K * s * s
        name = f"conv{i + 1} {ci}->{co} at {s}x{s}"
        calls.append((f"{name}: forward", lambda i=i, s=s: J.conv_forward(ins[i], w[i], b[i], outs[i], s, s, B), 2 * macs))
        if i:
            calls.append((f"{name}: input gradient",
                          lambda i=i, s=s: J.conv_input_grad(gouts[i], w[i], gins[i], s, s, B), 2 * macs))
        calls.append((f"{name}: weight gradient",
                      lambda i=i, s=s: J.conv_weight_grad(gouts[i], ins[i], gw[i], gb[i], s, s, B), 2 * macs))
    calls += [
        ("relu + max-pool 1 (forward + backward)", lambda: (J.act_maxpool_forward(z1, 1, 32, 32, K, p1, t.args[0], B),
                                                          J.maxpool_act_backward(gp1, z1, 1, t.args[0], 32, 32, K, gz1, B)), 0),
        ("relu + max-pool 2 (forward + backward)", lambda: (J.act_maxpool_forward(z2, 1, 16, 16, K, p2, t.args[1], B),
                                                          J.maxpool_act_backward(gp2, z2, 1, t.args[1], 16, 16, K, gz2, B)), 0),
        ("relu + up-sample 1 (forward + backward)", lambda: (J.act_upsample_forward(z3, 1, 8, 8, K, u3, B),
                                                           J.upsample_act_backward(gu3, z3, 1, 8, 8, K, gz3, B)), 0),
        ("relu + up-sample 2 (forward + backward)", lambda: (J.act_upsample_forward(z4, 1, 16, 16, K, u4, B),
                                                           J.upsample_act_backward(gu4, z4, 1, 16, 16, K, gz4, B)), 0),
        ("sigmoid + MSE (forward + backward)", lambda: J.sigmoid_mse(z5, x0, 32, 32, K, g5, B), 0),
        ("Adam (all 184 parameters)", lambda: J.adam_update(t.params.copy(), t.grads, t.exp_avg.copy(),
                                                            t.exp_avg_sq.copy(), 1e-3, 0.9, 0.999, 1e-8, 5.0), 0),
    ]
    times = {name: [] for name, _, _ in calls}
    for _ in range(repeats):
        for name, call, _ in calls:
            start = time.perf_counter()
            for _ in range(50):
                call()
            times[name].append((time.perf_counter() - start) / 50 * 1e6)
    return [(name, statistics.median(times[name]), flops) for name, _, flops in calls]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats (default: 7)")
    parser.add_argument("--steps", type=int, default=200, help="steps per repeat (default: 200)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    start = time.perf_counter()
    J.warm_up()
    compile_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((4096, 1, H, W), dtype=np.float32))
    steps = contestants(images)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    batches = [order[(i * B) % 4064 : (i * B) % 4064 + B] for i in range(args.steps)]
    for step in steps.values():  # first calls: allocations, oneDNN's primitive caches
        for idx in batches[:10]:
            step(idx)
    times = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            t = time.perf_counter()
            for idx in batches:
                step(idx)
            times[name].append((time.perf_counter() - t) / args.steps * 1e3)
    ms = {name: statistics.median(v) for name, v in times.items()}
    flops = conv_flops()
    peak = peak_gflops()
    floor = flops / peak / 1e6

    print(f"## The autoencoder's training step ({platform.processor() or platform.machine()}, 1 thread, "
          f"torch {torch.__version__}, numba {J.numba.__version__})\n")
    print(f"Batch of {B} gray {H}x{W} images, the study's model; medians of {args.repeats} interleaved repeats "
          f"of {args.steps} steps. Kernels compiled or loaded from numba's cache in {compile_seconds:.2f} s "
          "(not in the steps).\n")
    print("| step | ms per step | vs torch | spread (min-max ms) |")
    print("|---|---:|---:|---|")
    for name in steps:
        print(f"| {name} | {ms[name]:.3f} | {ms[name] / ms['torch']:.2f}x | "
              f"{min(times[name]):.3f}-{max(times[name]):.3f} |")
    print(f"| FLOP floor: {flops / 1e6:.1f} MFLOP of convolutions at {peak:.0f} GFLOP/s (torch.mm, 1 thread) | "
          f"{floor:.3f} | {floor / ms['torch']:.2f}x | |")
    print("\nPer kernel of the compiled step (medians, µs):\n")
    print("| kernel | µs | GFLOP/s |")
    print("|---|---:|---:|")
    rows = per_layer(images.numpy(), max(3, args.repeats))
    for name, us, fl in rows:
        print(f"| {name} | {us:.1f} | {fl / us / 1e3:.1f} |" if fl else f"| {name} | {us:.1f} | |")
    print(f"| sum of the kernels | {sum(us for _, us, _ in rows):.1f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
