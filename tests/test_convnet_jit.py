"""The compiled training step of the autoencoder (aeclust._convnet_jit) against PyTorch's autograd and
Adam: every kernel, the whole model's gradients, a short training's loss curve; the same bits on 1 and
2 threads and after a resume; the engine's selection and its record in checkpoints."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aeclust import _convnet_jit as J
from aeclust.autoencoder import (
    ACTIVATIONS,
    AutoencoderConfig,
    ConvAutoencoder,
    load_checkpoint,
    resolve_engine,
    train_autoencoder,
)
from aeclust.errors import AeclustError, InvalidInputError

from test_autoencoder import _images

# float32 tolerance: sums of a few thousand products, each side in its own order.
RTOL, ATOL = 1e-4, 1e-6


@pytest.fixture(scope="module", autouse=True)
def compiled():
    J.warm_up()


def _close(ours, theirs, rtol=RTOL, atol=ATOL):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    scale = max(float(np.abs(theirs).max()), 1e-30)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale)


def _border_zero(planes, h, w, k):
    """Gradient planes as the kernels receive them: the interior, a zero border."""
    return J.padded(J.unpadded(planes, h, w, k), k)


@pytest.mark.parametrize("ci, co, k, h, w", [(1, 3, 3, 32, 32), (3, 3, 3, 8, 8), (3, 1, 3, 16, 12),
                                             (8, 5, 3, 4, 8), (2, 7, 5, 12, 12), (4, 3, 1, 8, 4),
                                             (3, 2, 2, 8, 8), (1, 1, 7, 16, 16)])
def test_conv_forward_and_grads_match_autograd(ci, co, k, h, w):
    rng = np.random.default_rng(ci * 100 + co * 10 + k)
    n = 3
    x = torch.tensor(rng.standard_normal((n, ci, h, w)), dtype=torch.float32, requires_grad=True)
    weight = torch.tensor(rng.standard_normal((co, ci, k, k)), dtype=torch.float32, requires_grad=True)
    bias = torch.tensor(rng.standard_normal(co), dtype=torch.float32, requires_grad=True)
    z = F.conv2d(x, weight, bias, padding="same")
    g = torch.tensor(rng.standard_normal(z.shape), dtype=torch.float32)
    z.backward(g)

    xp = J.padded(x.detach().numpy(), k)
    zp = np.zeros((n, co, xp.shape[2]), dtype=np.float32)
    J.conv_forward(xp, weight.detach().numpy(), bias.detach().numpy(), zp, h, w, n)
    _close(J.unpadded(zp, h, w, k), z)
    gp = J.padded(g.numpy(), k)
    gx = np.full_like(xp, np.nan)  # overwritten wherever the interior needs it
    J.conv_input_grad(gp, weight.detach().numpy(), gx, h, w, n)
    _close(J.unpadded(gx, h, w, k), x.grad)
    gw, gb = np.full((co, ci, k, k), np.nan, np.float32), np.full(co, np.nan, np.float32)
    J.conv_weight_grad(gp, xp, gw, gb, h, w, n)
    _close(gw, weight.grad)
    _close(gb, bias.grad)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_maxpool_and_upsample_match_autograd(act):
    rng = np.random.default_rng(len(act))
    n, c, h, w, k = 2, 3, 8, 12, 3
    kind = J.ACTIVATION_IDS[act]
    z = torch.tensor(rng.standard_normal((n, c, h, w)) * 2, dtype=torch.float32, requires_grad=True)
    zp = J.padded(z.detach().numpy(), k)

    pooled = F.max_pool2d(ACTIVATIONS[act]()(z), 2)
    g = torch.tensor(rng.standard_normal(pooled.shape), dtype=torch.float32)
    pooled.backward(g)
    out = J.padded(np.zeros((n, c, h // 2, w // 2), np.float32), k)
    arg = np.zeros((n, c, h // 2 * w // 2), np.int8)
    J.act_maxpool_forward(zp, kind, h, w, k, out, arg, n)
    _close(J.unpadded(out, h // 2, w // 2, k), pooled)
    gz = np.zeros_like(zp)
    J.maxpool_act_backward(J.padded(g.numpy(), k), zp, kind, arg, h, w, k, gz, n)
    _close(J.unpadded(gz, h, w, k), z.grad)
    np.testing.assert_array_equal(gz, _border_zero(gz, h, w, k))  # the border stays zero

    z.grad = None
    up = F.interpolate(ACTIVATIONS[act]()(z), scale_factor=2, mode="nearest")
    g = torch.tensor(rng.standard_normal(up.shape), dtype=torch.float32)
    up.backward(g)
    out = J.padded(np.zeros((n, c, 2 * h, 2 * w), np.float32), k)
    J.act_upsample_forward(zp, kind, h, w, k, out, n)
    _close(J.unpadded(out, 2 * h, 2 * w, k), up)
    gz = np.zeros_like(zp)
    J.upsample_act_backward(J.padded(g.numpy(), k), zp, kind, h, w, k, gz, n)
    _close(J.unpadded(gz, h, w, k), z.grad)
    np.testing.assert_array_equal(gz, _border_zero(gz, h, w, k))  # the border stays zero


def test_maxpool_picks_the_first_maximum_as_pytorch():
    z = torch.tensor([[[[1.0, 2.0], [2.0, 0.5]]]], requires_grad=True)  # a tie between positions 1 and 2
    F.max_pool2d(z, 2).backward(torch.ones(1, 1, 1, 1))
    k = 3
    zp = J.padded(z.detach().numpy(), k)
    out, arg, gz = J.padded(np.zeros((1, 1, 1, 1), np.float32), k), np.zeros((1, 1, 1), np.int8), np.zeros_like(zp)
    J.act_maxpool_forward(zp, 0, 2, 2, k, out, arg, 1)
    J.maxpool_act_backward(J.padded(np.ones((1, 1, 1, 1), np.float32), k), zp, 0, arg, 2, 2, k, gz, 1)
    np.testing.assert_array_equal(J.unpadded(gz, 2, 2, k), z.grad.numpy())
    assert arg[0, 0, 0] == 1


def test_sigmoid_mse_matches_autograd():
    rng = np.random.default_rng(5)
    n, c, h, w, k = 4, 3, 8, 8, 3
    z = torch.tensor(rng.standard_normal((n, c, h, w)) * 4, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(rng.random((n, c, h, w)), dtype=torch.float32)
    loss = F.mse_loss(torch.sigmoid(z), t)
    loss.backward()
    zp, gz = J.padded(z.detach().numpy(), k), np.zeros((n, c, (h + 2) * (w + 2)), np.float32)
    ours = J.sigmoid_mse(zp, J.padded(t.numpy(), k), h, w, k, gz, n)
    assert ours == pytest.approx(loss.item(), rel=1e-6)
    _close(J.unpadded(gz, h, w, k), z.grad)
    _close(J.sigmoid_output(zp, h, w, k, n), torch.sigmoid(z), rtol=1e-6)


def test_adam_matches_torch_optim_adam():
    rng = np.random.default_rng(0)
    p = torch.tensor(rng.standard_normal(50), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([p], lr=3e-3)
    ours, m, v = p.detach().numpy().copy(), np.zeros(50, np.float32), np.zeros(50, np.float32)
    for step in range(1, 30):
        g = (rng.standard_normal(50) * 10.0 ** rng.integers(-6, 1)).astype(np.float32)
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        J.adam_update(ours, g, m, v, 3e-3, 0.9, 0.999, 1e-8, float(step))
    _close(ours, p, rtol=1e-5)
    _close(m, opt.state[p]["exp_avg"], rtol=1e-5)
    _close(v, opt.state[p]["exp_avg_sq"], rtol=1e-5)


@pytest.mark.parametrize("cfg", [
    AutoencoderConfig(),
    AutoencoderConfig(color="rgb", channels=(4, 2), kernel_size=5, activation="tanh", code_activation="linear"),
    AutoencoderConfig(channels=(8, 6), kernel_size=3, activation="elu", code_activation="sigmoid", init="torch"),
])
def test_whole_model_gradients_match_autograd(cfg):
    torch.manual_seed(1)
    model = ConvAutoencoder(cfg)
    images = torch.rand(20, cfg.in_channels, 16, 24)
    idx = np.array([3, 0, 7, 19, 11], dtype=np.int64)
    xb = images[idx]
    loss = F.mse_loss(model(xb), xb)
    loss.backward()
    trainer = J.FusedTrainer(cfg.in_channels, cfg.channels, cfg.kernel_size, cfg.activation,
                             cfg.code_activation or cfg.activation, 16, 24, 8)
    trainer.params[:] = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    ours = trainer.gradients(images.numpy(), idx)
    assert ours == pytest.approx(loss.item(), rel=1e-6)
    _close(trainer.grads, np.concatenate([p.grad.numpy().ravel() for p in model.parameters()]))
    _close(trainer.reconstruct(xb.numpy()), model(xb), rtol=1e-5)


# -----------------------------------------------------------------------------
# training through train_autoencoder

SMALL = dict(epochs=4, batch_size=32, seed=3)


@pytest.fixture(scope="module")
def data():
    return _images(256, seed=0), _images(64, seed=1)


def _weights(model):
    return [p.detach().numpy().copy() for p in model.parameters()]


def test_loss_curve_follows_pytorch(data, tmp_path):
    """The two engines' per-epoch losses agree within 1e-3 relative over 32 steps (seen: 1e-6)."""
    curves = {}
    for engine in ("torch", "compiled"):
        result = train_autoencoder(AutoencoderConfig(**SMALL, engine=engine), *data, tmp_path / engine,
                                   progress=False)
        curves[engine] = np.array([[h["train_loss"], h["test_loss"]] for h in result.history])
    np.testing.assert_allclose(curves["compiled"], curves["torch"], rtol=1e-3)
    assert curves["compiled"][-1, 0] < curves["compiled"][0, 0]  # it learns


def test_same_bits_on_one_and_two_threads(data, tmp_path):
    weights = []
    for n in (1, 2):
        saved = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            result = train_autoencoder(AutoencoderConfig(**SMALL, engine="compiled"), data[0], None,
                                       tmp_path / str(n), progress=False, num_threads=n)
        finally:
            numba.set_num_threads(saved)
        weights.append(_weights(result.model))
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_resume_gives_the_weights_of_an_uninterrupted_run(data, tmp_path):
    config = AutoencoderConfig(**SMALL, engine="compiled")
    whole = train_autoencoder(config, *data, tmp_path / "whole", progress=False)
    half = AutoencoderConfig(**{**SMALL, "epochs": 2}, engine="compiled")
    train_autoencoder(half, *data, tmp_path / "resumed", progress=False)
    resumed = train_autoencoder(config, *data, tmp_path / "resumed", progress=False, resume=True)
    for a, b in zip(_weights(whole.model), _weights(resumed.model)):
        np.testing.assert_array_equal(a, b)
    losses = [[(h["epoch"], h["train_loss"], h["test_loss"]) for h in r.history] for r in (whole, resumed)]
    assert losses[0] == losses[1]
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert saved.state["engine"] == "compiled" and saved.config.engine == "compiled"
    assert int(saved.state["optimizer"]["state"][0]["step"]) == 4 * 8  # 256 images in batches of 32
    assert load_checkpoint(tmp_path / "whole" / "model.pt").state["compile_seconds"] >= 0


def test_resume_under_another_engine_is_refused(data, tmp_path):
    train_autoencoder(AutoencoderConfig(**{**SMALL, "epochs": 1}, engine="compiled"), data[0], None, tmp_path,
                      progress=False)
    with pytest.raises(AeclustError, match="trained by the compiled engine .* with the torch engine"):
        train_autoencoder(AutoencoderConfig(**SMALL, engine="torch"), data[0], None, tmp_path, progress=False,
                          resume=True)
    # "auto" takes the compiled engine here, so the same run goes on
    result = train_autoencoder(AutoencoderConfig(**{**SMALL, "epochs": 2}, engine="auto"), data[0], None, tmp_path,
                               progress=False, resume=True)
    assert len(result.history) == 2


def test_engine_selection():
    assert resolve_engine(AutoencoderConfig(engine="auto"), "cpu") == "compiled"
    assert resolve_engine(AutoencoderConfig(engine="torch"), "cpu") == "torch"
    assert resolve_engine(AutoencoderConfig(engine="auto", optimizer="sgd"), "cpu") == "torch"
    with pytest.raises(AeclustError, match="implements Adam only, and the optimizer is sgd"):
        resolve_engine(AutoencoderConfig(engine="compiled", optimizer="sgd"), "cpu")
    with pytest.raises(InvalidInputError, match="engine 'jit' is not one of auto, compiled, torch"):
        AutoencoderConfig(engine="jit")
    assert AutoencoderConfig().engine == "auto"


def test_files_without_engine_load_as_trained_by_torch(tmp_path):
    """Model files of version 2 (before the engine field) load, with engine 'torch'."""
    model = ConvAutoencoder(AutoencoderConfig())
    state = {"format": "aeclust.autoencoder", "version": 2,
             "config": {k: v for k, v in model.config.to_dict().items() if k != "engine"},
             "model": model.state_dict()}
    torch.save(state, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.config.engine == "torch"
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values()))


def test_numba_cache_folder_is_found():
    """The kernels are cached on disk in this checkout (compile time is paid once)."""
    assert J._CACHE is True


@pytest.mark.parametrize("engine", ["auto", "compiled", "torch"])
def test_engine_option_reaches_the_autoencoder_config(engine):
    from aeclust.cli import _autoencoder_kwargs, build_parser
    from aeclust.pipeline import RunConfig

    parser = build_parser()
    for command in ("train", "run"):
        args = parser.parse_args([command, "--engine", engine])
        assert AutoencoderConfig(**_autoencoder_kwargs(args)).engine == engine
    assert parser.parse_args(["run"]).engine == "auto"
    assert RunConfig(ae_engine=engine).autoencoder_config().engine == engine
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--engine", "jit"])
