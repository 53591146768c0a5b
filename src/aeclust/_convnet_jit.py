"""The compiled training step of the study's convolutional autoencoder, in numba.

The model (:class:`aeclust.autoencoder.ConvAutoencoder`) is five "same"-padded
k x k convolutions with 1 to 8 channels on 32 x 32 images. PyTorch's CPU
kernels (oneDNN) are built for wide layers; on these narrow ones most of a
step goes to their set-up and to ``convolution_backward``, and a step of 32
images takes about 4.4 ms on one core for about 20 MFLOP. This module runs the
same step -- forward pass, backward pass and Adam -- in a handful of compiled
loops outside PyTorch's dispatcher, with no allocation per step.

Layout. Every feature map is kept as a *padded plane*: a flat float32 array of
``(H + k - 1) * (W + k - 1)`` values whose border of ``p = (k - 1) // 2`` rows
and columns on the top and left (``k - 1 - p`` on the bottom and right, as
PyTorch's ``padding="same"``) is zero. With the rows of a plane laid end to
end, the tap ``(dy, dx)`` of every output pixel is one fixed offset
``dy * Wp + dx`` away, so a convolution is ``k * k`` passes of one long
contiguous multiply-add per channel pair (the "flattened padded" form of
direct convolution), which the compiler vectorises. The passes also compute
the ``k - 1`` columns between rows, which fall on the output plane's border;
the kernels that read a plane read its interior only, and the gradients of a
plane are zero on the border, so those values never reach a result.

Kernels, named as in the literature (Goodfellow, Bengio and Courville, *Deep
Learning*, ch. 9; Dumoulin and Visin, *A guide to convolution arithmetic*):

- :func:`conv_forward`: cross-correlation plus bias, as ``nn.Conv2d``;
- :func:`conv_input_grad`: the gradient to the input, the transposed
  convolution of the output gradient (scattered tap by tap);
- :func:`conv_weight_grad`: the gradients to the kernel and the bias, one dot
  product per tap between the output gradient and the shifted input;
- :func:`act_maxpool_forward` and :func:`maxpool_act_backward`: the activation
  followed by a 2 x 2 max-pool, fused (the activated plane is never stored; the
  winner of each window is, as PyTorch's first maximum in row-major order);
- :func:`act_upsample_forward` and :func:`upsample_act_backward`: the
  activation followed by nearest-neighbour up-sampling by 2, fused;
- :func:`sigmoid_mse`: the output's sigmoid, the mean squared error against the
  input and its gradient;
- :func:`adam_update`: Adam (Kingma and Ba, 2015) in PyTorch's form
  (``torch.optim.Adam`` with its defaults, no weight decay, no AMSGrad), on one
  flat vector of all the parameters.

:func:`forward_backward` chains them for the whole model; :class:`FusedTrainer`
holds the parameters, Adam's moments and the work planes of one model and
trains it batch by batch.

Same bits for any thread count: every kernel runs on one thread, in a fixed
order. Measured on this project's 2-core machine, the step of 32 images is too
short to share out: a ``prange`` fork and join costs more than most of the
kernels it would split, and the second core is where training's test loss is
measured. Sums that feed a result (the weight gradients, the loss) are added in
a fixed order: float32 lanes where ``fastmath`` allows reassociation, the same
order in every run of the same compiled code.

The kernels are compiled on first use and cached on disk (``cache=True``), or
in memory where numba finds no writable folder (see :func:`_disk_cache`);
:func:`warm_up` compiles or loads them all and returns the seconds it took.
"""

from __future__ import annotations

import math
import time
import warnings

import numba
import numpy as np
from numba import njit

__all__ = [
    "ACTIVATION_IDS", "FusedTrainer", "conv_forward", "conv_input_grad", "conv_weight_grad",
    "act_maxpool_forward", "maxpool_act_backward", "act_upsample_forward", "upsample_act_backward",
    "sigmoid_mse", "adam_update", "forward_backward", "padded", "unpadded", "warm_up",
]


def _disk_cache() -> bool:
    """Whether numba can cache the kernels on disk (``cache=True``).

    As :func:`aeclust._lloyd_jit._disk_cache`: where an installed package lies in
    a read-only site-packages and the user's cache folder is not writable either,
    ``cache=True`` would stop with numba's "no locator available" when the first
    kernel below is defined; the kernels are then compiled in memory, in every process.
    """
    try:
        numba.njit(cache=True)(_probe)  # finds (or creates) the cache folder; compiles nothing
    except RuntimeError:
        warnings.warn("numba finds no writable folder to cache aeclust's autoencoder kernels in: they are "
                      "compiled again in every process (10-20 s); set NUMBA_CACHE_DIR to a writable folder "
                      "to keep them", RuntimeWarning, stacklevel=3)
        return False
    return True


def _probe() -> int:
    return 0


_CACHE = _disk_cache()
# Multiply-adds may fuse into one FMA instruction (fewer roundings, never more).
_FMA = {"contract"}
# Sums may be reordered into vector lanes; the order is fixed by the compiled code.
_LANES = {"contract", "reassoc"}

# -----------------------------------------------------------------------------
# activations

#: The activations of :data:`aeclust.autoencoder.ACTIVATIONS` the kernels compute, by number.
ACTIVATION_IDS = {"linear": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "leaky_relu": 4, "elu": 5, "gelu": 6, "selu": 7}

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_LEAKY = np.float32(0.01)  # nn.LeakyReLU's negative_slope
_SELU_SCALE = np.float32(1.0507009873554804934193349852946)  # nn.SELU's constants (Klambauer et al., 2017)
_SELU_ALPHA = np.float32(1.6732632423543772848170429916717)
_SQRT1_2 = np.float32(math.sqrt(0.5))
_INV_SQRT_2PI = np.float32(1.0 / math.sqrt(2.0 * math.pi))


@njit(cache=_CACHE, nogil=True)
def _act(z, kind):
    """The activation ``kind`` (:data:`ACTIVATION_IDS`) of one float32 value, as PyTorch defines it."""
    if kind == 1:
        return z if z > _ZERO else _ZERO
    if kind == 0:
        return z
    if kind == 2:
        return np.float32(math.tanh(z))
    if kind == 3:
        return _ONE / (_ONE + np.float32(math.exp(-z)))
    if kind == 4:
        return z if z > _ZERO else z * _LEAKY
    if kind == 5:
        return z if z > _ZERO else np.float32(math.expm1(z))
    if kind == 6:  # exact GELU (approximate="none"): z * Phi(z)
        return _HALF * z * (_ONE + np.float32(math.erf(z * _SQRT1_2)))
    return _SELU_SCALE * z if z > _ZERO else _SELU_SCALE * _SELU_ALPHA * np.float32(math.expm1(z))


@njit(cache=_CACHE, nogil=True)
def _act_grad(z, kind):
    """d act(z) / dz at the pre-activation ``z``, with PyTorch's value at the kinks (0 for ReLU at 0)."""
    if kind == 1:
        return _ONE if z > _ZERO else _ZERO
    if kind == 0:
        return _ONE
    if kind == 2:
        a = np.float32(math.tanh(z))
        return _ONE - a * a
    if kind == 3:
        a = _ONE / (_ONE + np.float32(math.exp(-z)))
        return a * (_ONE - a)
    if kind == 4:
        return _ONE if z > _ZERO else _LEAKY
    if kind == 5:
        return _ONE if z > _ZERO else np.float32(math.exp(z))
    if kind == 6:
        cdf = _HALF * (_ONE + np.float32(math.erf(z * _SQRT1_2)))
        return cdf + z * _INV_SQRT_2PI * np.float32(math.exp(-_HALF * z * z))
    return _SELU_SCALE if z > _ZERO else _SELU_SCALE * _SELU_ALPHA * np.float32(math.exp(z))


# -----------------------------------------------------------------------------
# padded planes


def padded(x: np.ndarray, k: int) -> np.ndarray:
    """(n, C, H, W) -> (n, C, (H + k - 1) * (W + k - 1)) float32 padded planes, zero border."""
    n, c, h, w = x.shape
    p = (k - 1) // 2
    out = np.zeros((n, c, h + k - 1, w + k - 1), dtype=np.float32)
    out[:, :, p : p + h, p : p + w] = x
    return out.reshape(n, c, -1)


def unpadded(planes: np.ndarray, h: int, w: int, k: int) -> np.ndarray:
    """The interiors of padded planes: (n, C, P) -> (n, C, h, w)."""
    p = (k - 1) // 2
    n, c = planes.shape[:2]
    return planes.reshape(n, c, h + k - 1, w + k - 1)[:, :, p : p + h, p : p + w].copy()


# -----------------------------------------------------------------------------
# convolution


@njit(cache=_CACHE, nogil=True, fastmath=_FMA)
def _corr3(src, w, co, ci, flip, dst, span, wp):
    """``dst[o] += sum_{dy, dx} w[co, ci, dy, dx] src[o + dy wp + dx]`` for o < span, 3 x 3 taps.

    All nine taps in one pass (register blocking over the kernel): each output
    value is loaded and stored once per input plane instead of nine times.
    ``flip`` takes the kernel rotated by 180 degrees (the transposed convolution).
    The three rows are views indexed from 0, so that the compiler sees every
    index in range and vectorises the loop.
    """
    if flip:
        a0, a1, a2 = w[co, ci, 2, 2], w[co, ci, 2, 1], w[co, ci, 2, 0]
        a3, a4, a5 = w[co, ci, 1, 2], w[co, ci, 1, 1], w[co, ci, 1, 0]
        a6, a7, a8 = w[co, ci, 0, 2], w[co, ci, 0, 1], w[co, ci, 0, 0]
    else:
        a0, a1, a2 = w[co, ci, 0, 0], w[co, ci, 0, 1], w[co, ci, 0, 2]
        a3, a4, a5 = w[co, ci, 1, 0], w[co, ci, 1, 1], w[co, ci, 1, 2]
        a6, a7, a8 = w[co, ci, 2, 0], w[co, ci, 2, 1], w[co, ci, 2, 2]
    r0 = src[0 : span + 2]
    r1 = src[wp : wp + span + 2]
    r2 = src[2 * wp : 2 * wp + span + 2]
    for o in range(span):
        dst[o] += ((a0 * r0[o] + a1 * r0[o + 1] + a2 * r0[o + 2])
                   + (a3 * r1[o] + a4 * r1[o + 1] + a5 * r1[o + 2])
                   + (a6 * r2[o] + a7 * r2[o + 1] + a8 * r2[o + 2]))


@njit(cache=_CACHE, nogil=True, fastmath=_FMA)
def conv_forward(x, w, b, z, h, wd, nb):
    """``z = conv(x, w) + b`` for the first ``nb`` images ("same" padding, stride 1).

    x : (n, Ci, P) padded input planes; w : (Co, Ci, k, k); b : (Co,);
    z : (n, Co, P) padded output planes, written on the interior and the
    columns between rows (not on the rest of the border). ``h``, ``wd``: the
    planes' height and width.
    """
    co_n, ci_n, k = w.shape[0], w.shape[1], w.shape[2]
    p = (k - 1) // 2
    wp = wd + k - 1
    span = (h - 1) * wp + wd  # output pixels from the first interior one to the last, row gaps included
    base = p * wp + p
    for n in range(nb):
        for co in range(co_n):
            dst = z[n, co, base : base + span]
            bias = b[co]
            for o in range(span):
                dst[o] = bias
            for ci in range(ci_n):
                if k == 3:
                    _corr3(x[n, ci], w, co, ci, False, dst, span, wp)
                    continue
                for dy in range(k):
                    for dx in range(k):
                        wv = w[co, ci, dy, dx]
                        off = dy * wp + dx
                        # Views indexed from 0 by the loop counter: the compiler then knows every
                        # index is in range and positive, and vectorises the loop.
                        src = x[n, ci, off : off + span]
                        for o in range(span):
                            dst[o] += wv * src[o]


@njit(cache=_CACHE, nogil=True, fastmath=_FMA)
def conv_input_grad(gz, w, gx, h, wd, nb):
    """``gx = d loss / d x`` from ``gz = d loss / d z`` (the transposed convolution).

    gz : (n, Co, P) with a zero border; gx : (n, Ci, P), overwritten: its
    interior holds the gradient, the rest of it what the computation leaves
    there. For 3 x 3 kernels each input pixel gathers from the 9 outputs that
    read it (a correlation with the rotated kernel over gz's zero border);
    otherwise each output pixel's gradient is scattered to the k x k inputs it read.
    """
    co_n, ci_n, k = w.shape[0], w.shape[1], w.shape[2]
    p = (k - 1) // 2
    wp = wd + k - 1
    span = (h - 1) * wp + wd
    base = p * wp + p
    for n in range(nb):
        for ci in range(ci_n):
            if k == 3:
                dst = gx[n, ci, base : base + span]
                dst[:] = _ZERO
                for co in range(co_n):
                    _corr3(gz[n, co], w, co, ci, True, dst, span, wp)
                continue
            dst = gx[n, ci]
            dst[:] = _ZERO
            for co in range(co_n):
                src = gz[n, co, base : base + span]
                for dy in range(k):
                    for dx in range(k):
                        wv = w[co, ci, dy, dx]
                        off = dy * wp + dx
                        d = dst[off : off + span]
                        for o in range(span):
                            d[o] += wv * src[o]


@njit(cache=_CACHE, nogil=True, fastmath=_LANES)
def _weight_grad3(g, src, gw, co, ci, span, wp):
    """The nine taps' dot products of ``g`` with the shifted ``src`` in one pass, added to gw[co, ci]."""
    r0 = src[0 : span + 2]
    r1 = src[wp : wp + span + 2]
    r2 = src[2 * wp : 2 * wp + span + 2]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = _ZERO
    for o in range(span):
        go = g[o]
        a0 += go * r0[o]
        a1 += go * r0[o + 1]
        a2 += go * r0[o + 2]
        a3 += go * r1[o]
        a4 += go * r1[o + 1]
        a5 += go * r1[o + 2]
        a6 += go * r2[o]
        a7 += go * r2[o + 1]
        a8 += go * r2[o + 2]
    gw[co, ci, 0, 0] += a0
    gw[co, ci, 0, 1] += a1
    gw[co, ci, 0, 2] += a2
    gw[co, ci, 1, 0] += a3
    gw[co, ci, 1, 1] += a4
    gw[co, ci, 1, 2] += a5
    gw[co, ci, 2, 0] += a6
    gw[co, ci, 2, 1] += a7
    gw[co, ci, 2, 2] += a8


@njit(cache=_CACHE, nogil=True, fastmath=_LANES)
def conv_weight_grad(gz, x, gw, gb, h, wd, nb):
    """``gw = d loss / d w`` and ``gb = d loss / d b`` from ``gz`` (zero border) and the input ``x``.

    One dot product per (output channel, input channel, tap), over the images
    in order and each plane's pixels in vector lanes.
    """
    co_n, ci_n, k = gw.shape[0], gw.shape[1], gw.shape[2]
    p = (k - 1) // 2
    wp = wd + k - 1
    span = (h - 1) * wp + wd
    base = p * wp + p
    gw[:] = _ZERO
    gb[:] = _ZERO
    for n in range(nb):
        for co in range(co_n):
            g = gz[n, co, base : base + span]
            acc = _ZERO
            for o in range(span):
                acc += g[o]
            gb[co] += acc
            for ci in range(ci_n):
                if k == 3:
                    _weight_grad3(g, x[n, ci], gw, co, ci, span, wp)
                    continue
                for dy in range(k):
                    for dx in range(k):
                        off = dy * wp + dx
                        src = x[n, ci, off : off + span]
                        acc = _ZERO
                        for o in range(span):
                            acc += g[o] * src[o]
                        gw[co, ci, dy, dx] += acc


# -----------------------------------------------------------------------------
# activation + max-pool, activation + up-sampling


@njit(cache=_CACHE, nogil=True)
def act_maxpool_forward(z, kind, h, wd, k, out, arg, nb):
    """``out = maxpool2(act(z))`` on the interiors; ``arg`` keeps each window's winner (0-3).

    z : (n, C, P) padded planes of h x wd; out : (n, C, P') padded planes of
    h/2 x wd/2 (border left as it is: zero); arg : (n, C, h/2 * wd/2) int8.
    The winner is the first maximum in row-major order, as PyTorch's max-pool
    picks it (a NaN wins, as there). The comparisons are written as selects,
    not branches: on real data a branch on which of four values is largest is
    mispredicted about half the time.
    """
    p = (k - 1) // 2
    wp = wd + k - 1
    ho, wo = h // 2, wd // 2
    wpo = wo + k - 1
    for n in range(nb):
        for c in range(z.shape[1]):
            src = z[n, c]
            dst = out[n, c]
            win = arg[n, c]
            for y in range(ho):
                for x in range(wo):
                    i = (2 * y + p) * wp + 2 * x + p
                    best = _act(src[i], kind)
                    v1 = _act(src[i + 1], kind)
                    v2 = _act(src[i + wp], kind)
                    v3 = _act(src[i + wp + 1], kind)
                    t1 = v1 > best or v1 != v1
                    j = np.int8(1) if t1 else np.int8(0)
                    best = v1 if t1 else best
                    t2 = v2 > best or v2 != v2
                    j = np.int8(2) if t2 else j
                    best = v2 if t2 else best
                    t3 = v3 > best or v3 != v3
                    j = np.int8(3) if t3 else j
                    best = v3 if t3 else best
                    dst[(y + p) * wpo + x + p] = best
                    win[y * wo + x] = j


@njit(cache=_CACHE, nogil=True)
def maxpool_act_backward(gout, z, kind, arg, h, wd, k, gz, nb):
    """``gz = d loss / d z`` through :func:`act_maxpool_forward`.

    gout : (n, C, P') gradient to the pooled planes (interior read); gz : (n, C, P)
    written on the interior: each window's winner gets ``gout * act'(z)``, the
    other three 0. Its border is never written and stays zero.
    """
    p = (k - 1) // 2
    wp = wd + k - 1
    ho, wo = h // 2, wd // 2
    wpo = wo + k - 1
    for n in range(nb):
        for c in range(z.shape[1]):
            src = z[n, c]
            g = gout[n, c]
            dst = gz[n, c]
            win = arg[n, c]
            for y in range(ho):
                for x in range(wo):
                    i = (2 * y + p) * wp + 2 * x + p
                    j = win[y * wo + x]
                    gi = g[(y + p) * wpo + x + p]
                    dst[i] = _ZERO
                    dst[i + 1] = _ZERO
                    dst[i + wp] = _ZERO
                    dst[i + wp + 1] = _ZERO
                    t = i + (j & 1) + (j >> 1) * wp
                    dst[t] = gi * _act_grad(src[t], kind)


@njit(cache=_CACHE, nogil=True)
def act_upsample_forward(z, kind, h, wd, k, out, nb):
    """``out = upsample2(act(z))``, nearest neighbour: each pixel fills a 2 x 2 block of
    ``out`` (n, C, P'), padded planes of 2h x 2wd (border left as it is)."""
    p = (k - 1) // 2
    wp = wd + k - 1
    wpo = 2 * wd + k - 1
    for n in range(nb):
        for c in range(z.shape[1]):
            for y in range(h):
                src = z[n, c, (y + p) * wp + p : (y + p) * wp + p + wd]
                top = out[n, c, (2 * y + p) * wpo + p : (2 * y + p) * wpo + p + 2 * wd]
                bottom = out[n, c, (2 * y + 1 + p) * wpo + p : (2 * y + 1 + p) * wpo + p + 2 * wd]
                for x in range(wd):
                    a = _act(src[x], kind)
                    top[2 * x] = a
                    top[2 * x + 1] = a
                    bottom[2 * x] = a
                    bottom[2 * x + 1] = a


@njit(cache=_CACHE, nogil=True)
def upsample_act_backward(gout, z, kind, h, wd, k, gz, nb):
    """``gz = d loss / d z`` through :func:`act_upsample_forward`: each pixel's
    gradient is the sum of its 2 x 2 block's, times ``act'(z)``; gz's border stays zero."""
    p = (k - 1) // 2
    wp = wd + k - 1
    wpo = 2 * wd + k - 1
    for n in range(nb):
        for c in range(z.shape[1]):
            for y in range(h):
                src = z[n, c, (y + p) * wp + p : (y + p) * wp + p + wd]
                dst = gz[n, c, (y + p) * wp + p : (y + p) * wp + p + wd]
                top = gout[n, c, (2 * y + p) * wpo + p : (2 * y + p) * wpo + p + 2 * wd]
                bottom = gout[n, c, (2 * y + 1 + p) * wpo + p : (2 * y + 1 + p) * wpo + p + 2 * wd]
                for x in range(wd):
                    s = (top[2 * x] + top[2 * x + 1]) + (bottom[2 * x] + bottom[2 * x + 1])
                    dst[x] = s * _act_grad(src[x], kind)


# -----------------------------------------------------------------------------
# output and loss

_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(math.log(2.0))
#: 2^n for n = -127 ... 127, looked up by the vectorised exp below.
_POW2 = np.array([2.0**n for n in range(-127, 128)], dtype=np.float32)
_E2 = np.float32(math.log(2.0) ** 2 / 2)
_E3 = np.float32(math.log(2.0) ** 3 / 6)
_E4 = np.float32(math.log(2.0) ** 4 / 24)
_E5 = np.float32(math.log(2.0) ** 5 / 120)
_E6 = np.float32(math.log(2.0) ** 6 / 720)
_E7 = np.float32(math.log(2.0) ** 7 / 5040)
_T_MIN = np.float32(-126.0)
_T_MAX = np.float32(126.0)
_ROUNDER = np.float32(1.5 * 2.0**23)


@njit(cache=_CACHE, nogil=True, inline="always")
def _exp32(x):
    """exp(x) for float32 ``x``, within about 2 ulp, in operations the compiler vectorises
    (the C library's expf is a call per value). 2^(x log2 e) = 2^n 2^f with n the nearest
    integer and |f| <= 1/2; 2^f by its Taylor series to degree 7 (error below 1e-8)."""
    t = x * _LOG2E
    t = t if t > _T_MIN else _T_MIN  # selects, not min/max calls: they keep the loop vectorisable
    t = t if t < _T_MAX else _T_MAX
    nf = (t + _ROUNDER) - _ROUNDER  # round to nearest: adding 1.5 * 2^23 drops the fraction's bits
    f = t - nf
    poly = _ONE + f * (_LN2 + f * (_E2 + f * (_E3 + f * (_E4 + f * (_E5 + f * (_E6 + f * _E7))))))
    return poly * _POW2[np.uint64(nf + np.float32(127.0))]  # unsigned: no wrap-around test


@njit(cache=_CACHE, nogil=True, fastmath=_LANES)
def _sum64(v):
    """The float64 sum of a float32 vector, in vector lanes (a fixed order for a given build)."""
    total = 0.0
    for i in range(v.shape[0]):
        total += float(v[i])
    return total


@njit(cache=_CACHE, nogil=True, fastmath=_FMA)  # no reassociation: _exp32 rounds by adding and subtracting
def sigmoid_mse(z, target, h, wd, k, gz, nb):
    """The mean squared error of ``sigmoid(z)`` against ``target``; ``gz`` its gradient to ``z``.

    z, target : (n, C, P) padded planes (interiors read); gz : (n, C, P)
    written on the interior (border stays zero). The mean is over the ``nb``
    images' pixels, as ``F.mse_loss``; the squared errors are float32, summed in
    float64; the gradient ``2 (s - t) / N * s (1 - s)`` is float32.
    """
    p = (k - 1) // 2
    wp = wd + k - 1
    count = nb * z.shape[1] * h * wd
    scale = np.float32(2.0 / count)
    squares = np.empty(wd, dtype=np.float32)
    total = 0.0
    for n in range(nb):
        for c in range(z.shape[1]):
            for y in range(h):
                start = (y + p) * wp + p
                src = z[n, c, start : start + wd]
                tgt = target[n, c, start : start + wd]
                dst = gz[n, c, start : start + wd]
                for x in range(wd):
                    s = _ONE / (_ONE + _exp32(-src[x]))
                    d = s - tgt[x]
                    squares[x] = d * d
                    dst[x] = scale * d * (s * (_ONE - s))
                total += _sum64(squares)
    return total / count


@njit(cache=_CACHE, nogil=True)
def sigmoid_output(z, h, wd, k, nb):
    """``sigmoid(z)`` on the interiors of the first ``nb`` planes: (nb, C, h, wd) float32."""
    p = (k - 1) // 2
    wp = wd + k - 1
    out = np.empty((nb, z.shape[1], h, wd), dtype=np.float32)
    for n in range(nb):
        for c in range(z.shape[1]):
            for y in range(h):
                for x in range(wd):
                    out[n, c, y, x] = _ONE / (_ONE + _exp32(-z[n, c, (y + p) * wp + x + p]))
    return out


# -----------------------------------------------------------------------------
# Adam


@njit(cache=_CACHE, nogil=True)
def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step):
    """One step of Adam on flat float32 vectors, in the arithmetic of PyTorch's single-tensor Adam.

    ``m = m + (1 - beta1) (g - m)``; ``v = beta2 v + (1 - beta2) g^2``;
    ``param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``,
    with the bias corrections in float64 (Python floats there) and the rest in float32.
    """
    bc1 = 1.0 - beta1**step
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    step_size = np.float32(lr / bc1)
    w1 = np.float32(1.0 - beta1)
    b2 = np.float32(beta2)
    w2 = np.float32(1.0 - beta2)
    c2 = np.float32(bc2_sqrt)
    e = np.float32(eps)
    for i in range(param.shape[0]):
        g = grad[i]
        mi = m[i] + w1 * (g - m[i])
        vi = v[i] * b2 + w2 * (g * g)
        m[i] = mi
        v[i] = vi
        param[i] = param[i] - step_size * (mi / (np.float32(math.sqrt(vi)) / c2 + e))


# -----------------------------------------------------------------------------
# the whole model


@njit(cache=_CACHE, nogil=True)
def _gather(images, idx, k, x0):
    """Batch images ``images[idx]`` (N, C, H, W) into the interiors of the padded planes ``x0``."""
    p = (k - 1) // 2
    h, wd = images.shape[2], images.shape[3]
    wp = wd + k - 1
    for n in range(idx.shape[0]):
        src = images[idx[n]]
        for c in range(images.shape[1]):
            dst = x0[n, c]
            for y in range(h):
                for x in range(wd):
                    dst[(y + p) * wp + x + p] = src[c, y, x]


@njit(cache=_CACHE, nogil=True)
def _offsets(shapes):
    """Where each layer's weight and bias start in the flat vector (nn.Module.parameters() order)."""
    offs = np.zeros(10, dtype=np.int64)
    off = 0
    for i in range(5):
        co, ci, k = shapes[i, 0], shapes[i, 1], shapes[i, 2]
        offs[2 * i] = off
        off += co * ci * k * k
        offs[2 * i + 1] = off
        off += co
    return offs


@njit(cache=_CACHE, nogil=True)
def forward_backward(params, grads, shapes, acts, h, wd, nb, planes, args, idx, images):
    """One batch through the model and back: the loss; ``grads`` holds d loss / d params after.

    params, grads : flat float32 vectors, the five convolutions' weights and
    biases in ``ConvAutoencoder.parameters()`` order; shapes : (5, 3) int64
    (out channels, in channels, k); acts : (activation, code activation) ids;
    planes : the work planes (see :class:`FusedTrainer`); args : the two
    max-pools' winners; idx : the batch's image numbers in ``images``.
    """
    k = shapes[0, 2]
    x0, z1, p1, z2, p2, z3, u3, z4, u4, z5, g5, gu4, gz4, gu3, gz3, gp2, gz2, gp1, gz1 = planes
    offs = _offsets(shapes)
    w = []
    b = []
    gw = []
    gb = []
    for i in range(5):
        co, ci = shapes[i, 0], shapes[i, 1]
        w.append(params[offs[2 * i] : offs[2 * i + 1]].reshape((co, ci, k, k)))
        b.append(params[offs[2 * i + 1] : offs[2 * i + 1] + co])
        gw.append(grads[offs[2 * i] : offs[2 * i + 1]].reshape((co, ci, k, k)))
        gb.append(grads[offs[2 * i + 1] : offs[2 * i + 1] + co])
    act, code = acts[0], acts[1]
    h2, w2, h4, w4 = h // 2, wd // 2, h // 4, wd // 4
    _gather(images, idx, k, x0)
    # forward: conv, act, pool; conv, code act, pool; conv, act, up; conv, act, up; conv, sigmoid
    conv_forward(x0, w[0], b[0], z1, h, wd, nb)
    act_maxpool_forward(z1, act, h, wd, k, p1, args[0], nb)
    conv_forward(p1, w[1], b[1], z2, h2, w2, nb)
    act_maxpool_forward(z2, code, h2, w2, k, p2, args[1], nb)
    conv_forward(p2, w[2], b[2], z3, h4, w4, nb)
    act_upsample_forward(z3, act, h4, w4, k, u3, nb)
    conv_forward(u3, w[3], b[3], z4, h2, w2, nb)
    act_upsample_forward(z4, act, h2, w2, k, u4, nb)
    conv_forward(u4, w[4], b[4], z5, h, wd, nb)
    loss = sigmoid_mse(z5, x0, h, wd, k, g5, nb)
    # backward, layer by layer from the output
    conv_weight_grad(g5, u4, gw[4], gb[4], h, wd, nb)
    conv_input_grad(g5, w[4], gu4, h, wd, nb)
    upsample_act_backward(gu4, z4, act, h2, w2, k, gz4, nb)
    conv_weight_grad(gz4, u3, gw[3], gb[3], h2, w2, nb)
    conv_input_grad(gz4, w[3], gu3, h2, w2, nb)
    upsample_act_backward(gu3, z3, act, h4, w4, k, gz3, nb)
    conv_weight_grad(gz3, p2, gw[2], gb[2], h4, w4, nb)
    conv_input_grad(gz3, w[2], gp2, h4, w4, nb)
    maxpool_act_backward(gp2, z2, code, args[1], h2, w2, k, gz2, nb)
    conv_weight_grad(gz2, p1, gw[1], gb[1], h2, w2, nb)
    conv_input_grad(gz2, w[1], gp1, h2, w2, nb)
    maxpool_act_backward(gp1, z1, act, args[0], h, wd, k, gz1, nb)
    conv_weight_grad(gz1, x0, gw[0], gb[0], h, wd, nb)
    return loss


# -----------------------------------------------------------------------------
# the trainer


class FusedTrainer:
    """The compiled training state of one autoencoder: flat parameters, Adam's moments, work planes.

    Parameters
    ----------
    in_channels, channels, kernel_size : int, (int, int), int
        The model's shape (:class:`aeclust.autoencoder.AutoencoderConfig`).
    activation, code_activation : str
        Keys of :data:`ACTIVATION_IDS`.
    height, width : int
        The images' size, multiples of 4.
    batch_size : int
        The largest batch; a shorter last batch uses the first rows of the planes.
    lr, betas, eps : float, (float, float), float
        Adam's hyper-parameters (PyTorch's defaults but the learning rate).

    Attributes
    ----------
    params, grads, exp_avg, exp_avg_sq : ndarray, float32
        One flat vector each, in ``ConvAutoencoder.parameters()`` order; a
        model's parameters (and an optimizer's moments) may be views of them.
    steps : int
        Adam steps taken.
    """

    def __init__(self, in_channels: int, channels: tuple[int, int], kernel_size: int, activation: str,
                 code_activation: str, height: int, width: int, batch_size: int, *, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        c0, (c1, c2), k = in_channels, channels, kernel_size
        self.shapes = np.array([[c1, c0, k], [c2, c1, k], [c2, c2, k], [c1, c2, k], [c0, c1, k]], dtype=np.int64)
        self.offsets = _offsets(self.shapes)
        size = int(sum(co * ci * k * k + co for co, ci, k in self.shapes))
        self.params = np.zeros(size, dtype=np.float32)
        self.grads = np.zeros(size, dtype=np.float32)
        self.exp_avg = np.zeros(size, dtype=np.float32)
        self.exp_avg_sq = np.zeros(size, dtype=np.float32)
        self.acts = np.array([ACTIVATION_IDS[activation], ACTIVATION_IDS[code_activation]], dtype=np.int64)
        self.h, self.w, self.k = height, width, k
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.steps = 0

        def plane(c, h, w):  # zero border, kept zero: only interiors (and row gaps of conv outputs) are written
            return np.zeros((batch_size, c, (h + k - 1) * (w + k - 1)), dtype=np.float32)

        h2, w2, h4, w4 = height // 2, width // 2, height // 4, width // 4
        self.planes = (
            plane(c0, height, width),  # x0: the batch
            plane(c1, height, width), plane(c1, h2, w2),  # z1, p1
            plane(c2, h2, w2), plane(c2, h4, w4),  # z2, p2 (the code)
            plane(c2, h4, w4), plane(c2, h2, w2),  # z3, u3
            plane(c1, h2, w2), plane(c1, height, width),  # z4, u4
            plane(c0, height, width),  # z5
            plane(c0, height, width), plane(c1, height, width), plane(c1, h2, w2),  # g5, gu4, gz4
            plane(c2, h2, w2), plane(c2, h4, w4), plane(c2, h4, w4),  # gu3, gz3, gp2
            plane(c2, h2, w2), plane(c1, h2, w2), plane(c1, height, width),  # gz2, gp1, gz1
        )
        self.args = (np.zeros((batch_size, c1, h2 * w2), dtype=np.int8),
                     np.zeros((batch_size, c2, h4 * w4), dtype=np.int8))
        self.batch_size = batch_size

    def layer(self, i: int, vector: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Views of convolution ``i``'s weight (out, in, k, k) and bias in ``vector`` (default: params)."""
        vector = self.params if vector is None else vector
        co, ci, k = (int(v) for v in self.shapes[i])
        start, bias = int(self.offsets[2 * i]), int(self.offsets[2 * i + 1])
        return vector[start:bias].reshape(co, ci, k, k), vector[bias : bias + co]

    def gradients(self, images: np.ndarray, idx: np.ndarray) -> float:
        """Loss of the batch ``images[idx]`` ((N, C, H, W) float32); fills :attr:`grads`."""
        if len(idx) > self.batch_size:
            raise ValueError(f"a batch of {len(idx)} images, more than batch_size={self.batch_size}")
        return forward_backward(self.params, self.grads, self.shapes, self.acts, self.h, self.w, len(idx),
                                self.planes, self.args, idx, images)

    def step(self, images: np.ndarray, idx: np.ndarray) -> float:
        """One training step on ``images[idx]``: gradients, then Adam; the batch's mean loss."""
        loss = self.gradients(images, idx)
        self.steps += 1
        adam_update(self.params, self.grads, self.exp_avg, self.exp_avg_sq, self.lr, self.betas[0],
                    self.betas[1], self.eps, float(self.steps))
        return loss

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """The model's output for ``images`` (n <= batch_size, C, H, W), from the last forward pass's planes.

        Runs :meth:`gradients` (which leaves the weights alone) and reads the output planes.
        """
        self.gradients(images, np.arange(len(images), dtype=np.int64))
        return sigmoid_output(self.planes[9], self.h, self.w, self.k, len(images))


def warm_up() -> float:
    """Compile (or load from the disk cache) every kernel on a tiny model; returns the seconds it took."""
    t = time.perf_counter()
    trainer = FusedTrainer(1, (2, 2), 3, "relu", "relu", 8, 8, 2)
    trainer.params[:] = 0.1
    images = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    trainer.step(images, np.arange(2, dtype=np.int64))
    sigmoid_output(trainer.planes[9], 8, 8, 3, 2)
    return time.perf_counter() - t
