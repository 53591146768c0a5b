"""A small convolutional autoencoder whose 8x8x3 code k-means clusters.

The study's model, for 32x32 images::

    encoder  conv(3) -> maxpool 2 -> conv(3) -> maxpool 2       -> code (3, 8, 8) = 192 features
    decoder  conv(3) -> upsample 2 -> conv(3) -> upsample 2 -> conv(C) -> sigmoid

Every conv has "same" padding, kernel 3 and ReLU by default; the upsampling is
nearest-neighbour. The model learns to reproduce its [0, 1]-scaled input under
mean squared error. The weights start as Keras starts them (Glorot-uniform
kernels, zero biases), the library the study used; ``init="torch"`` keeps
PyTorch's own defaults, with which some seeds' ReLU code units die early in
training (see :func:`assess_collapse`).

Everything a run needs is in :class:`AutoencoderConfig`, and every file written
carries that config, so a checkpoint rebuilds its own model. Reading order:
config, model, data, checkpoints, :func:`train_autoencoder`, :func:`encode`,
:func:`assess_collapse`. What this model shares with the contrastive one
(device, threads, reproducibility, the model-file envelope, the batched
encoding loop) lives in :mod:`aeclust._torch`.

Training is deterministic on the CPU for a given seed: the weights come from
``torch.manual_seed(seed)`` and each epoch's shuffle from an explicit
``torch.Generator`` whose state goes into every checkpoint, so a run resumed
from epoch k ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from . import _fault, _torch
from ._io import write_json
from ._torch import COLORS, DictConfig, TrainResult, reproducible, resolve_device, rng_states, set_rng_states, threads
from .errors import AeclustError, InvalidInputError

# -----------------------------------------------------------------------------
# config

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "selu": nn.SELU,
}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adadelta")
#: How the weights start: "keras" (Glorot-uniform kernels, zero biases: Keras' defaults
#: for Conv2D) or "torch" (PyTorch's defaults for nn.Conv2d).
INITS = ("keras", "torch")
#: Which code trains the model: "compiled" (aeclust._convnet_jit: one fused forward, backward and
#: Adam step in numba, on the CPU, for Adam), "torch" (PyTorch's autograd and optimizers, any device),
#: or "auto": compiled where it applies, torch elsewhere (see :func:`resolve_engine`).
ENGINES = ("auto", "compiled", "torch")

#: Fields that fix the network's shape and function; a checkpoint's weights fit
#: a model only if these match.
ARCH_FIELDS = ("color", "channels", "kernel_size", "activation", "code_activation")

CHECKPOINT_FORMAT = "aeclust.autoencoder"
CHECKPOINT_VERSION = 3
# Version 1 files predate the init field; every model then started from PyTorch's defaults.
# Versions 1 and 2 predate the engine field; every model then trained with PyTorch.
_VERSION_1_CONFIG = {"init": "torch", "engine": "torch"}
_VERSION_2_CONFIG = {"engine": "torch"}


@dataclass(frozen=True)
class AutoencoderConfig(DictConfig):
    kind: ClassVar[str] = "autoencoder"

    color: str = "gray"  # "gray" (1 channel, BT.601 luma) or "rgb" (3 channels)
    channels: tuple[int, int] = (3, 3)  # filters of the two encoder convs; the code has channels[1]
    kernel_size: int = 3
    activation: str = "relu"  # any key of ACTIVATIONS
    code_activation: str | None = None  # None: same as activation; "linear": none on the code
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"  # one of OPTIMIZERS
    seed: int = 0
    init: str = "keras"  # one of INITS: how the weights start
    engine: str = "auto"  # one of ENGINES: which code trains the model (compiled on the CPU for Adam)

    def __post_init__(self) -> None:
        # Lists come back from JSON; store the tuple so configs compare equal.
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        problems = []
        if self.color not in COLORS:
            problems.append(f"color {self.color!r} is not one of {', '.join(COLORS)}")
        if len(self.channels) != 2 or min(self.channels) < 1:
            problems.append(f"channels must be two positive integers, got {self.channels}")
        if self.kernel_size < 1:
            problems.append(f"kernel_size must be positive, got {self.kernel_size}")
        for name in ("activation", "code_activation"):
            value = getattr(self, name)
            if value is not None and value not in ACTIVATIONS:
                problems.append(f"{name} {value!r} is not one of {', '.join(ACTIVATIONS)}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            problems.append(f"init {self.init!r} is not one of {', '.join(INITS)}")
        if self.engine not in ENGINES:
            problems.append(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            problems.append(
                "epochs must be >= 0, batch_size >= 1 and lr > 0, got "
                f"epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}"
            )
        if problems:
            raise InvalidInputError("invalid AutoencoderConfig: " + "; ".join(problems))

    @property
    def in_channels(self) -> int:
        return COLORS[self.color]

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """Shape of one image's code for 32x32 input."""
        return (self.channels[1], 8, 8)


def _config_diff(a: AutoencoderConfig, b: AutoencoderConfig, names) -> list[str]:
    return [f"{n}: {getattr(a, n)!r} != {getattr(b, n)!r}" for n in names if getattr(a, n) != getattr(b, n)]


# -----------------------------------------------------------------------------
# model


class ConvAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = config = config or AutoencoderConfig()
        c_in, (c1, c2), k = config.in_channels, config.channels, config.kernel_size
        act = ACTIVATIONS[config.activation]
        code_act = ACTIVATIONS[config.code_activation or config.activation]
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, c1, k, padding="same"), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, k, padding="same"), code_act(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(c2, c2, k, padding="same"), act(), nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c2, c1, k, padding="same"), act(), nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c1, c_in, k, padding="same"), nn.Sigmoid(),
        )  # fmt: skip
        if config.init == "keras":
            self._keras_init()

    @torch.no_grad()
    def _keras_init(self) -> None:
        """Glorot-uniform kernels and zero biases, as Keras' Conv2D starts.

        A kernel of shape (out, in, kh, kw) is drawn from U(-a, a) with
        a = sqrt(6 / (fan_in + fan_out)), fan_in = in*kh*kw and
        fan_out = out*kh*kw. The draws come from torch's global generator, so
        the seed that fixes PyTorch's defaults fixes these too.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) in [0, 1] -> code (n, channels[1], H/4, W/4)."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) in [0, 1] -> reconstruction of the same shape, in (0, 1)."""
        return self.decoder(self.encoder(x))


# -----------------------------------------------------------------------------
# data


def images_to_tensor(images: np.ndarray, color: str = "gray") -> torch.Tensor:
    """uint8 images (n, H, W, 3), or (n, H, W) gray, -> float32 tensor (n, C, H, W) in [0, 1].

    ``color="gray"`` converts RGB to BT.601 luma (:func:`aeclust.preprocess.to_grayscale`);
    ``"rgb"`` keeps the three channels. H and W must be multiples of 4: the
    encoder halves them twice and the decoder doubles them back.
    """
    return _torch.images_to_tensor(images, color, multiple=4)


# -----------------------------------------------------------------------------
# checkpoints


class Checkpoint(NamedTuple):
    model: ConvAutoencoder
    config: AutoencoderConfig
    state: dict[str, Any]  # everything else in the file: epoch, history, optimizer, rng, ...


_FILE = _torch.ModelFile(CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "autoencoder checkpoint",
                         {1: _VERSION_1_CONFIG, 2: _VERSION_2_CONFIG})


def save_checkpoint(path: str | os.PathLike, model: ConvAutoencoder, **extra: Any) -> None:
    """Write the model's weights and config, plus ``extra`` entries, to ``path`` atomically."""
    _FILE.save(path, model, **extra)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    config: AutoencoderConfig | None = None,
    device: str | torch.device = "cpu",
) -> Checkpoint:
    """Read a file written by :func:`save_checkpoint` (``checkpoint.pt`` or ``model.pt``).

    The model is rebuilt from the config the file carries. When ``config`` is
    given, its architecture must match the file's, or an :class:`AeclustError`
    names the fields that differ.
    """
    state = _FILE.read(path, device=device)
    saved = AutoencoderConfig.from_dict(state["config"])
    if config is not None:
        diff = _config_diff(saved, config, ARCH_FIELDS)
        if diff:
            raise AeclustError(f"checkpoint {path} holds a different architecture ({'; '.join(diff)})")
    model = _FILE.rebuild(ConvAutoencoder, saved, state["model"], path, device=device)
    rest = {k: v for k, v in state.items() if k not in ("config", "model")}
    return Checkpoint(model, saved, rest)


# -----------------------------------------------------------------------------
# training


def _make_optimizer(config: AutoencoderConfig, params) -> torch.optim.Optimizer:
    # Library defaults for everything but the learning rate, as in the study.
    cls = {
        "adam": torch.optim.Adam,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
        "adadelta": torch.optim.Adadelta,
    }[config.optimizer]
    return cls(params, lr=config.lr)


def resolve_engine(config: AutoencoderConfig, device: str | torch.device = "auto") -> str:
    """The code that trains ``config`` on ``device``: "compiled" or "torch".

    ``config.engine`` "torch" and "compiled" are taken as they are; "auto" is
    "compiled" on the CPU with Adam, the one optimizer the compiled step
    implements, and "torch" elsewhere (a GPU, another optimizer).

    Raises
    ------
    AeclustError
        For ``engine="compiled"`` where it does not apply, with the reason.
    """
    dev = resolve_device(device)
    why = None
    if dev.type != "cpu":
        why = f"it runs on the CPU, and the device is {dev}"
    elif config.optimizer != "adam":
        why = f"it implements Adam only, and the optimizer is {config.optimizer}"
    if config.engine == "compiled" and why:
        raise AeclustError(f"engine 'compiled' cannot train this autoencoder: {why}; use engine 'torch' or 'auto'")
    if config.engine == "torch" or why:
        return "torch"
    return "compiled"


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256) -> float:
    """Mean squared error of ``model(x)`` against ``x``, over every pixel."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros((), dtype=torch.float64, device=device)
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device, non_blocking=True)
        total += (model(xb) - xb).square().sum(dtype=torch.float64)
    model.train(was_training)
    return total.item() / max(x.numel(), 1)


def train_autoencoder(
    config: AutoencoderConfig,
    train_images: np.ndarray,
    test_images: np.ndarray | None,
    out_dir: str | os.PathLike,
    *,
    device: str | torch.device = "auto",
    resume: bool = False,
    progress: bool = True,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train a :class:`ConvAutoencoder` on uint8 images; write history and checkpoints to ``out_dir``.

    Files in ``out_dir``: ``history.json`` (one row per finished epoch:
    ``epoch``, ``train_loss``, ``test_loss`` (None without test images),
    ``seconds``; also the result's history), ``checkpoint.pt`` (after every epoch: everything needed to resume) and
    ``model.pt`` (the final weights and config). All are written atomically.

    With ``resume=True`` and a ``checkpoint.pt`` in ``out_dir``, training goes on
    from the checkpoint's last finished epoch up to ``config.epochs`` and ends
    with the same weights an uninterrupted run would have. Every config field
    but ``epochs`` must match the checkpoint's. Without a checkpoint it starts
    from scratch.

    ``num_threads`` is torch's intra-op thread count while training (restored
    afterwards; None leaves it alone). One thread is the default: a batch of 32
    tiny images is too small to share out, and on a busy machine a second
    thread that waits for a core makes every step several times slower. The
    thread count can change the last bits of the weights, so resume with the
    one a run started with.

    ``config.engine`` picks the code that trains (:func:`resolve_engine`). The
    compiled engine (:mod:`aeclust._convnet_jit`) computes the same model, loss
    and Adam step in float32, about three times faster on one core, and gives the
    same bits for any thread count; its weights differ from PyTorch's in the
    last bits, which training then carries on. The engine that trained a
    checkpoint is recorded in it (``engine``), and a run resumes with that
    engine only. ``model.pt`` also records ``compile_seconds``: the time to
    compile the kernels, or load them from numba's disk cache, kept out of the
    epochs' seconds.
    """
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    x_train = images_to_tensor(train_images, config.color)
    x_test = images_to_tensor(test_images, config.color) if test_images is not None else None
    if len(x_train) == 0:
        raise InvalidInputError("train_images is empty")
    if dev.type == "cuda":  # small enough to live on the GPU whole; no host-device copies per batch
        x_train = x_train.to(dev)

    engine = resolve_engine(config, dev)
    # Model, optimizer and shuffling generator: fresh from the seed, or from the checkpoint.
    ckpt_path = out_dir / "checkpoint.pt"
    shuffle = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = ConvAutoencoder(config)
    if engine == "torch":
        # channels_last (NHWC) makes oneDNN's convolutions on the CPU about twice as fast for these few channels.
        model = model.to(dev, memory_format=torch.channels_last)
    optimizer = _make_optimizer(config, model.parameters())
    start_epoch, history = 0, []
    if resume and ckpt_path.exists():
        start_epoch, history = _resume(ckpt_path, config, model, optimizer, shuffle, engine)

    if start_epoch < config.epochs:  # a model.pt left from an earlier run must not pass for this one's result
        (out_dir / "model.pt").unlink(missing_ok=True)

    if engine == "compiled":
        step, sync, compile_seconds = _compiled_step(config, model, optimizer, x_train)
    else:
        step, sync, compile_seconds = _torch_step(model, optimizer, x_train, dev), (lambda: None), 0.0

    n = len(x_train)
    # The test loss of each epoch is measured on a copy of the weights by a second
    # thread while the next epoch trains (training keeps one core busy; the other is
    # free), and lands in the history at the end of that next epoch.
    measuring = None
    with reproducible(num_threads), ThreadPoolExecutor(max_workers=1) as tester:
        if history and x_test is not None and history[-1]["test_loss"] is None:
            # Resumed from a checkpoint written while its epoch's test loss was still being
            # measured: measure it again, from the same weights.
            history[-1]["test_loss"] = evaluate(model, x_test)
        model.train()
        for epoch in range(start_epoch + 1, config.epochs + 1):
            t0 = time.perf_counter()
            loss_sum = _torch.run_epoch(step, n, config.batch_size, shuffle, dev, desc=f"epoch {epoch}/{config.epochs}",
                                        progress=progress, every=50, per_image=True)
            seconds = round(time.perf_counter() - t0, 3)
            _record_test_loss(history, measuring)
            history.append({"epoch": epoch, "train_loss": loss_sum / n, "test_loss": None, "seconds": seconds})
            if x_test is not None:
                measuring = tester.submit(_test_loss, copy.deepcopy(model), x_test, torch.get_num_threads())
            sync()
            save_checkpoint(
                ckpt_path, model, epoch=epoch, history=history,
                optimizer=optimizer.state_dict(), rng=rng_states(shuffle), engine=engine,
            )  # fmt: skip
            write_json(out_dir / "history.json", history)
            _fault.point(f"epoch-{epoch}")
        _record_test_loss(history, measuring)

    # Back to the default layout: the returned model then computes bit for bit what model.pt loads as.
    model = model.to(memory_format=torch.contiguous_format).eval()
    for p in model.parameters():  # the compiled engine's parameters are views of its vectors: own them
        p.data = p.data.clone()
    save_checkpoint(out_dir / "model.pt", model, epoch=config.epochs, history=history, engine=engine,
                    compile_seconds=round(compile_seconds, 3))
    write_json(out_dir / "history.json", history)
    return TrainResult(model, history)


def _torch_step(model: ConvAutoencoder, optimizer: torch.optim.Optimizer, x_train: torch.Tensor,
                dev: torch.device):
    """PyTorch's training step on the batch of images ``x_train[idx]``: autograd, then the optimizer."""

    def step(idx: torch.Tensor) -> torch.Tensor:
        xb = x_train[idx].to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        loss = nn.functional.mse_loss(model(xb), xb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _fault.point("train-step")
        return loss.detach() * len(idx)  # batch losses weighted by batch size, as Keras reports them

    return step


def _compiled_step(config: AutoencoderConfig, model: ConvAutoencoder, optimizer: torch.optim.Optimizer,
                   x_train: torch.Tensor):
    """The compiled engine's training step, the function that copies its Adam state into
    ``optimizer`` (for the checkpoint), and the seconds the kernels took to compile or load.

    The model's parameters become views of the compiled state's flat vector, so
    the model always holds the current weights; Adam's moments and step count
    start from ``optimizer``'s state (empty, or loaded from a checkpoint).
    """
    from . import _convnet_jit

    compile_seconds = _convnet_jit.warm_up()
    group = optimizer.param_groups[0]
    if group["weight_decay"] or group["amsgrad"] or group["maximize"]:
        raise AeclustError("the compiled engine implements Adam without weight decay, AMSGrad or maximize")
    _, c, h, w = x_train.shape
    trainer = _convnet_jit.FusedTrainer(c, config.channels, config.kernel_size, config.activation,
                                        config.code_activation or config.activation, h, w, config.batch_size,
                                        lr=group["lr"], betas=group["betas"], eps=group["eps"])
    params = list(model.parameters())
    vectors = (trainer.params, trainer.exp_avg, trainer.exp_avg_sq)
    views = [[v for i in range(5) for v in trainer.layer(i, vector)] for vector in vectors]
    for i, p in enumerate(params):
        views[0][i][...] = p.detach().cpu().numpy()
        p.data = torch.from_numpy(views[0][i])
        state = optimizer.state.get(p)
        if state:  # resumed: Adam's moments and steps from the checkpoint
            views[1][i][...] = state["exp_avg"].cpu().numpy()
            views[2][i][...] = state["exp_avg_sq"].cpu().numpy()
            trainer.steps = int(state["step"])
    images = x_train.numpy()

    def step(idx: torch.Tensor) -> float:
        loss = trainer.step(images, idx.numpy())
        _fault.point("train-step")
        return loss * len(idx)  # batch losses weighted by batch size, as Keras reports them

    def sync() -> None:
        if trainer.steps == 0:
            return
        for i, p in enumerate(params):  # in torch.optim.Adam's own format: its state_dict() reads it
            optimizer.state[p] = {"step": torch.tensor(float(trainer.steps)),
                                  "exp_avg": torch.from_numpy(views[1][i]),
                                  "exp_avg_sq": torch.from_numpy(views[2][i])}

    return step, sync, compile_seconds


def _test_loss(model: nn.Module, x_test: torch.Tensor, num_threads: int) -> float:
    """:func:`evaluate` on a second thread, with the training's thread count (the sum's
    bits depend on it)."""
    with threads(num_threads):
        return evaluate(model, x_test)


def _record_test_loss(history: list[dict[str, Any]], measuring) -> None:
    """Put the background measurement of the last epoch's test loss into its history row."""
    if measuring is not None and history and history[-1]["test_loss"] is None:
        history[-1]["test_loss"] = measuring.result()


def _resume(
    ckpt_path: Path, config: AutoencoderConfig, model: ConvAutoencoder, optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator, engine: str,
) -> tuple[int, list[dict[str, Any]]]:
    """Load the weights, optimizer and generators of ``ckpt_path`` into the run's; its epoch and history."""
    saved = load_checkpoint(ckpt_path, device=next(model.parameters()).device)
    # engine is compared as resolved ("auto" and "compiled" may be the same code), below
    diff = _config_diff(saved.config, config, [f.name for f in fields(config) if f.name not in ("epochs", "engine")])
    if diff:
        raise AeclustError(f"cannot resume from {ckpt_path}: its config differs ({'; '.join(diff)})")
    trained_by = saved.state.get("engine", "torch")  # files before the engine field: PyTorch's
    if trained_by != engine:
        raise AeclustError(
            f"cannot resume from {ckpt_path}: it was trained by the {trained_by} engine and this run would "
            f"go on with the {engine} engine, whose weights differ in the last bits; resume with "
            f"engine={trained_by!r} (--engine {trained_by}), or start again without --resume"
        )
    model.load_state_dict(saved.model.state_dict())
    optimizer.load_state_dict(saved.state["optimizer"])
    set_rng_states(saved.state["rng"], shuffle)
    start_epoch = saved.state["epoch"]
    if start_epoch > config.epochs:
        raise AeclustError(
            f"cannot resume from {ckpt_path}: it has {start_epoch} epochs, more than epochs={config.epochs}"
        )
    return start_epoch, list(saved.state["history"])


# -----------------------------------------------------------------------------
# codes


def encode(model: ConvAutoencoder, images: np.ndarray, *, batch_size: int = 256,
           device: str | torch.device = "cpu", num_threads: int | None = 1) -> np.ndarray:
    """uint8 images -> codes as a float32 matrix (n, 192), each code flattened in (C, H, W) order.

    Images are converted with the model's own ``config.color``. The model is
    moved to ``device``. Batches of 256 fit the CPU's caches better than larger
    ones; ``num_threads`` works as in :func:`train_autoencoder`.
    """
    x = images_to_tensor(images, model.config.color)
    width = int(np.prod(model.config.code_shape))
    return _torch.encode_batches(model, x, lambda xb: model.encode(xb).flatten(1), width,
                                 batch_size=batch_size, device=device, num_threads=num_threads)


# -----------------------------------------------------------------------------
# collapse

#: An autoencoder has collapsed when at least this share of its code features is constant ...
COLLAPSE_CONSTANT_SHARE = 0.5
#: ... and its reconstruction error is at least this share of the mean image's.
COLLAPSE_MSE_RATIO = 0.5
COLLAPSE_RULE = (
    f"collapsed when at least {COLLAPSE_CONSTANT_SHARE:.0%} of the code features are constant on the "
    f"encoded images (max == min) and the reconstruction MSE is at least {COLLAPSE_MSE_RATIO:g} times "
    f"the MSE of the mean image (the pixel variance)"
)


def collapse_verdict(codes: np.ndarray, reconstruction_mse: float, mean_image_mse: float) -> dict[str, Any]:
    """Whether an autoencoder collapsed, judged from its codes and its reconstruction error.

    The rule (:data:`COLLAPSE_RULE`): collapsed when **at least half of the
    code features are constant** (one value on every encoded image) **and the
    reconstruction MSE is at least half the MSE of the mean image** (the best
    answer that ignores the input; it equals the pixel variance). These are
    the two signs of the failure of the study's ReLU autoencoder: its code
    units die early in training, so no gradient reaches them again, and the
    decoder settles on the mean image. Then k-means on the near-constant
    codes splits off a few outliers and reports a silhouette near 1 (0.9985
    with 187 of 192 features constant), a number about the collapse, not the
    images.

    Either sign alone also occurs without a collapse, so the rule asks for
    both. A trained model may lose a whole 8x8 code channel and still
    reconstruct well (64 of 192 features constant, a third); a model that has
    trained for a few dozen steps only, or a code too small for its images,
    still answers close to the mean image while every code feature varies
    with the input. A collapsed model sits far past both bounds (on the
    grayscale CIFAR-10 test set: 128 to 187 of 192 features constant, test
    MSE 0.057 against the mean image's 0.056); a trained healthy one
    reaches 0.007-0.009, 0.12-0.16 times the mean image's. A code
    forced constant is always judged collapsed: its decoder's output is then
    one image, and no single image does better than the mean image.

    Parameters
    ----------
    codes : ndarray of shape (n_images, n_code_features)
        The flattened codes of the images the verdict is about.
    reconstruction_mse : float
        Mean squared error of the model's reconstructions of those images.
    mean_image_mse : float
        Mean squared error of the per-pixel mean image on the same images.

    Returns
    -------
    dict
        ``constant_code_features``, ``n_code_features``, ``reconstruction_mse``,
        ``mean_image_mse``, ``mse_ratio`` (None when the images do not vary,
        which is then not counted as a collapse), ``collapsed`` (bool) and the
        ``rule`` in words; JSON-ready.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) == 0:
        raise InvalidInputError(f"codes must be a non-empty (n_images, n_features) matrix, got {codes.shape}")
    n_features = int(codes.shape[1])
    constant = int(np.count_nonzero(codes.max(axis=0) == codes.min(axis=0)))
    ratio = reconstruction_mse / mean_image_mse if mean_image_mse > 0 else None
    collapsed = constant >= COLLAPSE_CONSTANT_SHARE * n_features and ratio is not None and ratio >= COLLAPSE_MSE_RATIO
    return {
        "constant_code_features": constant,
        "n_code_features": n_features,
        "reconstruction_mse": float(reconstruction_mse),
        "mean_image_mse": float(mean_image_mse),
        "mse_ratio": None if ratio is None else float(ratio),
        "collapsed": bool(collapsed),
        "rule": COLLAPSE_RULE,
    }


@torch.no_grad()
def assess_collapse(
    model: ConvAutoencoder,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    num_threads: int | None = 1,
) -> dict[str, Any]:
    """Encode and reconstruct uint8 ``images`` and judge whether ``model`` collapsed.

    Measure it on the images whose codes are clustered (the CIFAR-10 test
    set in ``aeclust run``): the verdict then speaks of those codes. See
    :func:`collapse_verdict` for the rule and the fields returned; ``n_images``
    is added. ``device`` and ``num_threads`` work as in :func:`encode`.
    """
    codes = encode(model, images, batch_size=batch_size, device=device, num_threads=num_threads)
    x = images_to_tensor(images, model.config.color)
    with threads(num_threads):
        mse = evaluate(model, x, batch_size=batch_size)
    # The mean image's MSE is the per-pixel variance, averaged: two passes in float64, in chunks,
    # so a large image set is never copied whole.
    chunks = range(0, len(x), 4096)
    mean = sum(x[i : i + 4096].sum(dim=0, dtype=torch.float64) for i in chunks) / len(x)
    baseline = sum((x[i : i + 4096] - mean).square().sum().item() for i in chunks) / max(x.numel(), 1)
    return {**collapse_verdict(codes, mse, baseline), "n_images": int(len(images))}
