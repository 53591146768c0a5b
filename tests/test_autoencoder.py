"""The convolutional autoencoder: shapes, training, checkpoints and resume, codes; and what it shares
with the contrastive net (aeclust._torch): the model-file envelope, tensors, threads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aeclust.autoencoder import (
    COLLAPSE_RULE,
    AutoencoderConfig,
    ConvAutoencoder,
    assess_collapse,
    collapse_verdict,
    encode,
    evaluate,
    images_to_tensor,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
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
    with pytest.raises(InvalidInputError, match="init 'he' is not one of keras, torch"):
        AutoencoderConfig(init="he")
    assert AutoencoderConfig().init == "keras"
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


def test_each_epochs_test_loss_is_that_of_its_weights(data, tmp_path):
    # Measured on a second thread while the next epoch trains, from a copy of the weights.
    train, test = data
    cfg = AutoencoderConfig(**SMALL)
    result = train_autoencoder(cfg, train, test, tmp_path / "run", device="cpu", progress=False)
    assert all(row["test_loss"] is not None for row in result.history)
    x_test = images_to_tensor(test, cfg.color)
    assert result.history[-1]["test_loss"] == pytest.approx(evaluate(result.model, x_test), rel=1e-6)
    earlier = train_autoencoder(AutoencoderConfig(**{**SMALL, "epochs": 2}), train, test, tmp_path / "two",
                                device="cpu", progress=False)
    assert result.history[1]["test_loss"] == earlier.history[1]["test_loss"]


def test_resume_after_interruption_matches_uninterrupted_run(data, tmp_path, monkeypatch):
    train, test = data
    cfg = AutoencoderConfig(**SMALL)
    full = train_autoencoder(cfg, train, test, tmp_path / "full", device="cpu", progress=False)

    # Interrupt while epoch 3's test loss is measured. It is measured on a second thread
    # while epoch 4 trains, so the interruption reaches the run at the end of epoch 4,
    # before that epoch's checkpoint: epoch 3's checkpoint is the last, and its test loss
    # is still missing, to be measured again when the run resumes.
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
    cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert [row["epoch"] for row in cut] == [1, 2, 3] and cut[-1]["test_loss"] is None
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt").state["epoch"] == 3
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


# -- initialisation ------------------------------------------------------------------------


def _convs(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_keras_init_zero_biases_and_glorot_uniform_kernels(color):
    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig(color=color, init="keras"))
    convs = _convs(model)
    assert len(convs) == 5
    scaled = []
    for conv in convs:
        out_ch, in_ch, kh, kw = conv.weight.shape
        # Glorot's bound, as Keras computes it for a (kh, kw, in, out) kernel.
        limit = (6.0 / (in_ch * kh * kw + out_ch * kh * kw)) ** 0.5
        w = conv.weight.detach()
        assert torch.count_nonzero(conv.bias) == 0
        assert w.abs().max() <= limit
        # Drawn across the whole range, not a narrower one: the widest of these >= 27 draws
        # lies in the top fifth of it (the chance of the opposite is 0.8**27 < 0.3 %).
        assert w.abs().max() > 0.8 * limit
        scaled.append(w.flatten() / limit)
    # Uniform on (-1, 1) once scaled: mean 0, variance 1/3 (each bound is more than 4 standard errors).
    every = torch.cat(scaled)
    assert abs(every.mean().item()) < 0.15 and abs(every.var().item() - 1 / 3) < 0.1


def test_init_is_seeded_and_torch_keeps_pytorchs_defaults():
    def weights(init, seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ConvAutoencoder(AutoencoderConfig(init=init)).state_dict()

    a, b, c = weights("keras", 5), weights("keras", 5), weights("keras", 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    torch_init = weights("torch", 5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        plain = [torch.nn.Conv2d(*shape, 3, padding="same") for shape in ((1, 3), (3, 3), (3, 3), (3, 3), (3, 1))]
    assert torch.equal(torch_init["encoder.0.weight"], plain[0].weight.detach())
    assert torch.equal(torch_init["encoder.0.bias"], plain[0].bias.detach())
    assert torch.count_nonzero(torch_init["encoder.0.bias"]) > 0  # PyTorch's biases are not zero


def test_init_is_recorded_in_checkpoints(data, tmp_path):
    train, _ = data
    cfg = AutoencoderConfig(**{**SMALL, "epochs": 1, "init": "torch"})
    train_autoencoder(cfg, train[:32], None, tmp_path, device="cpu", progress=False)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert state["version"] == 3 and state["config"]["init"] == "torch"
    assert load_checkpoint(tmp_path / "model.pt").config.init == "torch"
    with pytest.raises(AeclustError, match="config differs.*init"):
        train_autoencoder(AutoencoderConfig(**{**SMALL, "init": "keras"}), train[:32], None, tmp_path,
                          device="cpu", resume=True, progress=False)


def _as_version_1(path, to):
    """Rewrite a checkpoint as aeclust wrote it before the init field (format version 1)."""
    state = torch.load(path, weights_only=True)
    state["version"] = 1
    del state["config"]["init"], state["config"]["engine"]  # version 1 had neither field
    state.pop("engine", None)
    torch.save(state, to)
    return state


def test_checkpoints_of_version_1_load_as_torch_init(data, tmp_path):
    train, _ = data
    cfg = AutoencoderConfig(**{**SMALL, "epochs": 1, "init": "torch", "engine": "torch"})
    trained = train_autoencoder(cfg, train[:64], None, tmp_path / "run", device="cpu", progress=False)
    old = _as_version_1(tmp_path / "run" / "model.pt", tmp_path / "old.pt")
    assert set(old["config"]) == {"color", "channels", "kernel_size", "activation", "code_activation",
                                  "epochs", "batch_size", "lr", "optimizer", "seed"}
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert loaded.config.init == "torch" and loaded.config == cfg
    assert _same_weights(loaded.model, trained.model)
    assert np.array_equal(encode(loaded.model, train[:20]), encode(trained.model, train[:20]))

    # A run interrupted under version 1 resumes: same config, same weights as an uninterrupted one.
    full = train_autoencoder(AutoencoderConfig(**{**SMALL, "epochs": 2, "init": "torch", "engine": "torch"}), train[:64], None,
                             tmp_path / "full", device="cpu", progress=False)
    _as_version_1(tmp_path / "run" / "checkpoint.pt", tmp_path / "run" / "checkpoint.pt")
    resumed = train_autoencoder(AutoencoderConfig(**{**SMALL, "epochs": 2, "init": "torch", "engine": "torch"}), train[:64], None,
                                tmp_path / "run", device="cpu", resume=True, progress=False)
    assert _same_weights(resumed.model, full.model)

    state = torch.load(tmp_path / "old.pt", weights_only=True)
    state["version"] = 7
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(AeclustError, match="version 7; this aeclust reads versions 1, 2 and 3"):
        load_checkpoint(tmp_path / "future.pt")


def test_loading_a_checkpoint_leaves_the_callers_generator_alone(tmp_path):
    save_checkpoint(tmp_path / "m.pt", ConvAutoencoder(AutoencoderConfig()), epoch=0, history=[])
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    load_checkpoint(tmp_path / "m.pt")
    assert torch.equal(torch.rand(3), expected)


# -- collapse -----------------------------------------------------------------------------


def _dead_code(model):
    """Force the code constant: the code conv's ReLU sees -1 everywhere, so every code value is 0."""
    with torch.no_grad():
        model.encoder[3].weight.zero_()
        model.encoder[3].bias.fill_(-1.0)
    return model


def test_a_model_whose_code_is_forced_constant_is_flagged_as_collapsed(data):
    _, test = data
    torch.manual_seed(0)
    model = _dead_code(ConvAutoencoder(AutoencoderConfig()))
    verdict = assess_collapse(model, test)
    assert verdict["collapsed"] is True
    assert verdict["constant_code_features"] == verdict["n_code_features"] == 192
    assert verdict["n_images"] == len(test) and verdict["rule"] == COLLAPSE_RULE
    # One output for every image: no better than the mean image, the best constant answer.
    assert verdict["mse_ratio"] >= 1.0
    json.dumps(verdict)  # JSON-ready


def test_a_trained_model_is_not_flagged(data, tmp_path):
    train, test = data
    result = train_autoencoder(AutoencoderConfig(**SMALL), train, test, tmp_path, device="cpu", progress=False)
    verdict = assess_collapse(result.model, test)
    assert verdict["collapsed"] is False
    x = images_to_tensor(test, "gray")
    assert verdict["reconstruction_mse"] == pytest.approx(evaluate(result.model, x), rel=1e-12)
    assert verdict["mean_image_mse"] == pytest.approx(((x - x.mean(0)) ** 2).mean().item(), rel=1e-5)
    codes = encode(result.model, test)
    assert verdict["constant_code_features"] == int(np.sum(codes.max(0) == codes.min(0)))


@pytest.mark.parametrize("constant, ratio, collapsed", [
    (192, 1.0, True),    # all dead, the mean image: seed 2 under PyTorch's init
    (187, 1.01, True),
    (96, 0.5, True),     # both bounds met exactly
    (95, 0.99, False),   # the mean image, but most of the code varies: not trained yet, not dead
    (0, 0.92, False),
    (64, 0.14, False),   # one dead channel, reconstructs well
    (192, 0.49, False),
])
def test_collapse_rule_needs_both_a_mostly_constant_code_and_the_mean_image(constant, ratio, collapsed):
    rng = np.random.default_rng(0)
    codes = rng.random((40, 192)).astype(np.float32)
    codes[:, :constant] = 0.25
    verdict = collapse_verdict(codes, ratio * 0.056, 0.056)
    assert verdict["constant_code_features"] == constant
    assert verdict["mse_ratio"] == pytest.approx(ratio)
    assert verdict["collapsed"] is collapsed


def test_collapse_of_images_that_do_not_vary():
    verdict = collapse_verdict(np.zeros((5, 192), np.float32), 0.0, 0.0)
    assert verdict["mse_ratio"] is None and verdict["collapsed"] is False
    with pytest.raises(InvalidInputError):
        collapse_verdict(np.zeros((0, 192), np.float32), 0.0, 1.0)


def test_a_run_whose_code_is_dead_says_so_loudly(fake_cifar, tmp_path, monkeypatch, capsys):
    """``aeclust run`` end to end with an autoencoder whose code conv starts (and so stays) dead."""
    import aeclust.autoencoder as ae
    from aeclust.cli import main

    keras_init = ae.ConvAutoencoder._keras_init

    def dead_from_the_start(self):
        keras_init(self)
        _dead_code(self)  # no gradient reaches a ReLU that sees only negative inputs: it stays dead

    monkeypatch.setattr(ae.ConvAutoencoder, "_keras_init", dead_from_the_start)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--epochs", "1", "--seed", "7", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    r = json.loads((out / "results.json").read_text())
    collapse = r["autoencoders"]["autoencoder"]["collapse"]
    assert collapse["collapsed"] is True and collapse["constant_code_features"] == 192
    assert collapse["n_code_features"] == 192 and collapse["rule"] == COLLAPSE_RULE
    codes = r["feature_sets"]["codes"]
    assert codes["meaningful"] is False and r["feature_sets"]["pixels"]["meaningful"] is True
    # Every code is the same: k-means finds one cluster, which has no silhouette; the run reports, not fails.
    assert codes["metrics"]["silhouette"] is None and codes["metrics"]["n_clusters"] == 1
    [warning] = codes["warnings"]
    assert "seed 7" in warning and "collapsed" in warning and "not meaningful" in warning
    assert r["config"]["ae_init"] == "keras" and r["config"]["autoencoder"]["init"] == "keras"
    summary = printed[printed.index("aeclust run:"):]
    assert "NOT MEANINGFUL" in summary and f"WARNING: {warning}" in summary
    assert "code (gray): 192 of 192 features constant" in summary and "COLLAPSED" in summary
    page = (out / "report.html").read_text()
    assert "class='alert'" in page and "class='not-meaningful'" in page
    assert "data-collapsed='true'" in page and "192 of 192 code features constant" in page


# -- what the torch models share (aeclust._torch) ---------------------------------------------


def test_the_models_share_one_implementation():
    import aeclust._torch as shared
    import aeclust.autoencoder as ae
    import aeclust.contrastive as cn

    for name in ("resolve_device", "TrainResult"):
        assert getattr(ae, name) is getattr(shared, name) is getattr(cn, name)
    assert cn.images_to_tensor is shared.images_to_tensor


@pytest.fixture
def model_file():
    from aeclust._torch import ModelFile

    return ModelFile("aeclust.test", 3, "test model", {1: {"init": "torch"}, 2: {}})


def test_model_file_round_trip_keeps_the_envelope_in_order(model_file, tmp_path):
    model = ConvAutoencoder(AutoencoderConfig(init="torch"))
    model_file.save(tmp_path / "m.pt", model, epoch=4, history=[{"epoch": 4}])
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file of the atomic write is gone
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert list(raw) == ["format", "version", "config", "model", "versions", "epoch", "history"]
    assert raw["format"] == "aeclust.test" and raw["version"] == 3
    assert set(raw["versions"]) == {"torch", "numpy", "python"}
    state = model_file.read(tmp_path / "m.pt")
    assert state["config"] == model.config.to_dict() and state["epoch"] == 4
    again = model_file.rebuild(ConvAutoencoder, AutoencoderConfig.from_dict(state["config"]), state["model"],
                               tmp_path / "m.pt")
    assert _same_weights(again, model)


def test_model_file_upgrades_the_config_of_an_older_version(model_file, tmp_path):
    model_file.save(tmp_path / "m.pt", ConvAutoencoder(AutoencoderConfig(init="torch")))
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    state["version"] = 1
    del state["config"]["init"], state["config"]["engine"]  # version 1 had neither field
    state.pop("engine", None)
    torch.save(state, tmp_path / "old.pt")
    assert model_file.read(tmp_path / "old.pt")["config"]["init"] == "torch"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_model_file_that_is_damaged(model_file, tmp_path, content):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(AeclustError, match=r"cannot read test model .*bad\.pt: \S"):
        model_file.read(tmp_path / "bad.pt")


def test_model_file_cut_short(model_file, tmp_path):
    model_file.save(tmp_path / "m.pt", ConvAutoencoder(AutoencoderConfig()))
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(AeclustError, match="cannot read test model"):
        model_file.read(tmp_path / "m.pt")


@pytest.mark.parametrize("state, match", [
    ([1, 2, 3], "is not an aeclust test model"),
    ({"format": "aeclust.autoencoder", "version": 3, "config": {}}, "is not an aeclust test model"),
    ({"format": "aeclust.test", "version": 9, "config": {}},
     "test model version 9; this aeclust reads versions 1, 2 and 3"),
    ({"format": "aeclust.test", "version": 3}, "holds no model config"),
    ({"format": "aeclust.test", "version": 3, "config": [1]}, "holds no model config"),
])  # fmt: skip
def test_model_file_of_another_kind(model_file, tmp_path, state, match):
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(AeclustError, match=match):
        model_file.read(tmp_path / "other.pt")
    with pytest.raises(AeclustError, match="no test model at"):
        model_file.read(tmp_path / "missing.pt")


def test_model_file_whose_weights_do_not_fit(model_file, tmp_path):
    model_file.save(tmp_path / "m.pt", ConvAutoencoder(AutoencoderConfig()))
    state = model_file.read(tmp_path / "m.pt")
    with pytest.raises(AeclustError, match=r"m\.pt do not fit its config.*size mismatch"):
        model_file.rebuild(ConvAutoencoder, AutoencoderConfig(channels=(4, 3)), state["model"], tmp_path / "m.pt")


def test_model_file_write_that_fails_leaves_the_old_file_and_no_temporary(model_file, tmp_path, monkeypatch):
    model_file.save(tmp_path / "m.pt", ConvAutoencoder(AutoencoderConfig()), epoch=1)
    before = (tmp_path / "m.pt").read_bytes()

    def write_half_then_fail(obj, f):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        model_file.save(tmp_path / "m.pt", ConvAutoencoder(AutoencoderConfig()), epoch=2)
    assert (tmp_path / "m.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_images_to_tensor_shared_checks():
    from aeclust._torch import images_to_tensor as shared

    images = _images(2)
    assert torch.equal(shared(images), images_to_tensor(images, "rgb"))
    assert shared(images[:, :30, :30]).shape == (2, 3, 30, 30)  # only the autoencoder needs multiples of 4
    with pytest.raises(InvalidInputError, match="multiples of 4"):
        shared(images[:, :30, :30], multiple=4)
    with pytest.raises(InvalidInputError, match="unknown color 'cmyk'"):
        shared(images, "cmyk")


def test_threads_and_reproducible_restore_the_callers_settings():
    from aeclust._torch import reproducible, threads

    before = torch.get_num_threads()
    with reproducible(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == before and not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(RuntimeError, match="inside"):
        with threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with pytest.raises(InvalidInputError, match="num_threads must be >= 1"):
        with threads(0):
            pass


def test_encode_leaves_a_training_model_training(data):
    torch.manual_seed(0)
    model = ConvAutoencoder(AutoencoderConfig())
    assert model.training
    encode(model, data[0][:3])
    assert model.training
