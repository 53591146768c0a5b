"""The convolutional autoencoder: shapes, training, checkpoints and resume, codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aeclust.autoencoder import (
    AutoencoderConfig,
    ConvAutoencoder,
    encode,
    evaluate,
    images_to_tensor,
    load_checkpoint,
    resolve_device,
    train_autoencoder,
)
from aeclust.errors import AeclustError, InvalidInputError
from aeclust.preprocess import to_grayscale


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth, learnable uint8 RGB images: random blends of a few gradients, plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    bases = np.stack([xx, yy, xx * yy, np.sin(3 * xx) * np.cos(2 * yy)])  # (4, 32, 32)
    w = rng.uniform(0, 1, size=(n, 3, 4))
    img = np.einsum("ncb,bhw->nhwc", w, bases) / 2.0 + rng.normal(0, 0.03, size=(n, 32, 32, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data():
    return _images(128, seed=0), _images(64, seed=1)


SMALL = dict(epochs=4, batch_size=32, seed=3)


@pytest.mark.parametrize("color, c", [("gray", 1), ("rgb", 3)])
def test_shapes(color, c):
    model = ConvAutoencoder(AutoencoderConfig(color=color))
    x = torch.rand(5, c, 32, 32)
    assert model.encode(x).shape == (5, 3, 8, 8)
    assert model(x).shape == x.shape
    assert model.config.code_shape == (3, 8, 8)


def test_images_to_tensor():
    images = _images(3)
    gray = images_to_tensor(images, "gray")
    assert gray.shape == (3, 1, 32, 32) and gray.dtype == torch.float32
    np.testing.assert_allclose(gray[:, 0].numpy(), to_grayscale(images) / 255.0, rtol=1e-6)
    rgb = images_to_tensor(images, "rgb")
    assert rgb.shape == (3, 3, 32, 32)
    assert torch.equal(rgb[:, 2], torch.from_numpy(images[..., 2] / np.float32(255.0)))
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    with pytest.raises(InvalidInputError):
        images_to_tensor(images[..., 0], "rgb")
    with pytest.raises(InvalidInputError):
        images_to_tensor(images[:, :30, :30], "gray")


def test_config_validation_and_options():
    with pytest.raises(InvalidInputError, match="activation"):
        AutoencoderConfig(activation="swishy")
    with pytest.raises(InvalidInputError, match="optimizer"):
        AutoencoderConfig(optimizer="lbfgs")
    cfg = AutoencoderConfig(channels=[4, 2], kernel_size=5, activation="tanh", code_activation="linear")
    assert cfg.channels == (4, 2)
    assert AutoencoderConfig.from_dict(cfg.to_dict()) == cfg
    assert ConvAutoencoder(cfg).encode(torch.rand(2, 1, 32, 32)).shape == (2, 2, 8, 8)


def test_training_lowers_loss_and_writes_history(data, tmp_path):
    train, test = data
    cfg = AutoencoderConfig(**SMALL)
    torch.manual_seed(cfg.seed)
    untrained = evaluate(ConvAutoencoder(cfg), images_to_tensor(test, "gray"))
    threads = torch.get_num_threads()
    result = train_autoencoder(cfg, train, test, tmp_path, device="cpu", progress=True)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    hist = result.history
    assert [row["epoch"] for row in hist] == [1, 2, 3, 4]
    assert hist[-1]["test_loss"] < untrained
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk == hist
    assert set(on_disk[0]) == {"epoch", "train_loss", "test_loss", "seconds"}
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "model.pt").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _losses(history):
    return [(r["epoch"], r["train_loss"], r["test_loss"]) for r in history]


def test_resume_after_interruption_matches_uninterrupted_run(data, tmp_path, monkeypatch):
    train, test = data
    cfg = AutoencoderConfig(**SMALL)
    full = train_autoencoder(cfg, train, test, tmp_path / "full", device="cpu", progress=False)

    # Interrupt during epoch 3, after its training steps and before its checkpoint.
    import aeclust.autoencoder as ae

    real_evaluate, calls = ae.evaluate, []

    def evaluate_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(ae, "evaluate", evaluate_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(cfg, train, test, tmp_path / "cut", device="cpu", progress=False)
    monkeypatch.setattr(ae, "evaluate", real_evaluate)
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())) == 2
    assert not (tmp_path / "cut" / "model.pt").exists()

    resumed = train_autoencoder(cfg, train, test, tmp_path / "cut", device="cpu", resume=True, progress=False)
    assert _same_weights(resumed.model, full.model)
    assert _losses(resumed.history) == _losses(full.history)
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())) == 4
    final = load_checkpoint(tmp_path / "cut" / "model.pt")
    assert _same_weights(final.model, full.model)


def test_resume_with_more_epochs_matches_and_is_deterministic(data, tmp_path):
    train, test = data
    cfg4 = AutoencoderConfig(**SMALL)
    cfg2 = AutoencoderConfig(**{**SMALL, "epochs": 2})
    full = train_autoencoder(cfg4, train, test, tmp_path / "full", device="cpu", progress=False)
    train_autoencoder(cfg2, train, test, tmp_path / "part", device="cpu", progress=False)
    resumed = train_autoencoder(cfg4, train, test, tmp_path / "part", device="cpu", resume=True, progress=False)
    assert _same_weights(resumed.model, full.model)
    assert _losses(resumed.history) == _losses(full.history)
    # Nothing left to do: resuming a finished run returns the same weights.
    again = train_autoencoder(cfg4, train, test, tmp_path / "part", device="cpu", resume=True, progress=False)
    assert _same_weights(again.model, full.model)


def test_resume_with_other_config_fails(data, tmp_path):
    train, test = data
    cfg = AutoencoderConfig(**{**SMALL, "epochs": 1})
    train_autoencoder(cfg, train[:32], None, tmp_path, device="cpu", progress=False)
    for change in ({"kernel_size": 5}, {"channels": (4, 4)}, {"lr": 0.01}, {"color": "rgb"}):
        other = AutoencoderConfig(**{**SMALL, **change})
        with pytest.raises(AeclustError, match="config differs"):
            train_autoencoder(other, train[:32], None, tmp_path, device="cpu", resume=True, progress=False)


def test_checkpoint_of_another_architecture_fails_clearly(data, tmp_path):
    train, _ = data
    cfg = AutoencoderConfig(**{**SMALL, "epochs": 1})
    train_autoencoder(cfg, train[:32], None, tmp_path, device="cpu", progress=False)
    path = tmp_path / "model.pt"
    with pytest.raises(AeclustError, match="different architecture"):
        load_checkpoint(path, config=AutoencoderConfig(kernel_size=5))
    # A file whose config does not describe its weights.
    state = torch.load(path, weights_only=True)
    state["config"]["channels"] = [8, 8]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(AeclustError, match="do not fit"):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AeclustError):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(AeclustError, match="no autoencoder checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_device(data, tmp_path):
    with pytest.raises(AeclustError):
        resolve_device("tpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; 'cuda' is valid here")
    with pytest.raises(AeclustError, match="CUDA"):
        resolve_device("cuda")
    with pytest.raises(AeclustError, match="CUDA"):
        train_autoencoder(AutoencoderConfig(epochs=1), data[0][:8], None, tmp_path, device="cuda")


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_encode(data, color):
    train, _ = data
    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig(color=color))
    codes = encode(model, train[:50], batch_size=16)
    assert codes.shape == (50, 192) and codes.dtype == np.float32
    assert np.array_equal(codes, encode(model, train[:50], batch_size=16))
    # Flattened in (C, H, W) order.
    with torch.no_grad():
        direct = model.encode(images_to_tensor(train[:50], color))
    np.testing.assert_allclose(codes.reshape(50, 3, 8, 8), direct.numpy(), rtol=1e-5, atol=1e-6)
    assert encode(model, train[:0]).shape == (0, 192)


def test_saved_model_encodes_like_trained_model(data, tmp_path):
    train, _ = data
    result = train_autoencoder(
        AutoencoderConfig(**{**SMALL, "epochs": 1}), train[:64], None, tmp_path, device="cpu", progress=False
    )
    loaded = load_checkpoint(tmp_path / "model.pt")
    assert loaded.config == result.model.config and loaded.state["epoch"] == 1
    assert np.array_equal(encode(loaded.model, train), encode(result.model, train))
