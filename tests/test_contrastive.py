"""The contrastive net on its own: config, training, features, model files (a few seconds)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from aeclust.contrastive import (
    MEAN,
    STD,
    ContrastiveConfig,
    ContrastiveNet,
    encode,
    encoding_views,
    load_model,
    save_model,
    train_contrastive,
)
from aeclust.errors import AeclustError, InvalidInputError

# Two stages on 8x8 views, three steps of 64 images an epoch: seconds on one core.
TINY = dict(widths=(8, 16), proj_dim=8, resolution=8, epochs=1, batch_size=64, n_clusters=4, seed=5,
            precision="float32", output="projection")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(192, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def trained(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("contrastive")
    return train_contrastive(ContrastiveConfig(**TINY), images, out, device="cpu", progress=False), out


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- layers ---------------------------------------------------------------------------------


def _grads(module, x):
    """The output, the input's gradient and the parameters' gradients, in one list, for a weighted sum."""
    x = x.clone().requires_grad_()
    y = module(x)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return [y.detach(), x.grad, *(p.grad.clone() for p in module.parameters())]


def test_a_3x3_convolution_on_2x2_maps_is_the_same_sums_as_one_matrix_product():
    from aeclust.contrastive import _Conv3x3

    torch.manual_seed(0)
    ours = _Conv3x3(6, 5, 3, padding=1, bias=False)
    plain = torch.nn.Conv2d(6, 5, 3, padding=1, bias=False)
    plain.weight = torch.nn.Parameter(ours.weight.detach().clone())
    x = torch.randn(4, 6, 2, 2).contiguous(memory_format=torch.channels_last)
    for u, v in zip(_grads(ours, x), _grads(plain, x), strict=True):
        torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, y_plain = ours(x), plain(x)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y.float(), y_plain.float(), rtol=0.02, atol=0.05)
    x4 = torch.randn(2, 6, 4, 4)  # any other size is the ordinary convolution
    assert torch.equal(ours(x4), plain(x4))
    strided = _Conv3x3(6, 5, 3, padding=1, stride=2, bias=False)  # and so is any other layer
    assert strided(x).shape == (4, 5, 1, 1)


def test_the_relu_after_the_max_pool_gives_the_values_and_gradients_of_relu_then_pool():
    from torch import nn

    from aeclust.contrastive import _MaxPoolReLU, _stage

    torch.manual_seed(0)
    ours = nn.Sequential(_stage(3, 4, relu=False), _MaxPoolReLU(2))
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
    conv.load_state_dict(ours[0][0].state_dict())
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.5, 1.0, 0.7]))  # a negative scale too
        ours[0][1].weight.copy_(bn.weight)
    textbook = nn.Sequential(conv, bn, nn.ReLU(), nn.MaxPool2d(2))
    x = torch.randn(8, 3, 8, 8)
    (y, gx, *gw), (y_ref, gx_ref, *gw_ref) = _grads(ours, x), _grads(textbook, x)
    assert y.shape == (8, 4, 4, 4) and (y == 0).any() and (y > 0).any()
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-6, atol=1e-6)
    for g, g_ref in zip(gw, gw_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)


def test_the_model_keeps_the_layer_names_of_saved_models():
    names = list(ContrastiveNet(ContrastiveConfig()).state_dict())
    assert [n for n in names if n.startswith("encoder.") and n.endswith("weight")] == [
        f"encoder.{i}.{j}.weight" for i in (0, 2, 4, 6) for j in (0, 1)]


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, match", [
    ({"widths": ()}, "widths must be positive integers"),
    ({"widths": (8, 0)}, "widths must be positive integers"),
    ({"widths": (8, 8, 8, 8), "resolution": 4}, "resolution 4 is too small for 4 stages"),
    ({"crop_scale": (0.5, 0.2)}, "crop_scale must satisfy 0 < lo <= hi <= 1"),
    ({"crop_scale": (0.0, 1.0)}, "crop_scale must satisfy"),
    ({"p_solarize": 1.5}, r"p_jitter, p_gray and p_solarize must be probabilities in \[0, 1\]"),
    ({"p_gray": -0.1}, "must be probabilities"),
    ({"n_clusters": 1}, "n_clusters must be 0 or >= 2"),
    ({"cluster_temperature": 0.0}, "cluster_temperature > 0"),
    ({"output": "pixels"}, "output must be one of encoder, projection, clusters"),
    ({"output": "clusters", "n_clusters": 0}, "clusters needs n_clusters"),
    ({"epochs": -1}, "epochs must be >= 0"),
    ({"batch_size": 1}, "batch_size >= 2"),
    ({"lr": 0.0}, "lr > 0"),
    ({"temperature": -0.5}, "temperature > 0"),
    ({"precision": "float16"}, "precision must be one of auto, float32, bfloat16"),
    ({"encode_crops": (0.8, 0.0)}, r"encode_crops must be side fractions in \(0, 1\]"),
    ({"encode_crops": (1.5,)}, "encode_crops must be side fractions"),
])  # fmt: skip
def test_config_names_what_is_wrong(bad, match):
    with pytest.raises(InvalidInputError, match=f"invalid ContrastiveConfig: .*{match}"):
        ContrastiveConfig(**bad)


def test_config_reports_every_problem_at_once():
    with pytest.raises(InvalidInputError) as e:
        ContrastiveConfig(widths=(), lr=0.0)
    assert "widths" in str(e.value) and "lr > 0" in str(e.value)


def test_config_as_a_dict_and_back():
    cfg = ContrastiveConfig(widths=[4, 8], crop_scale=[0.3, 0.9], output="encoder", mirror=True, encode_crops=[0.5])
    assert cfg.widths == (4, 8) and cfg.crop_scale == (0.3, 0.9)  # lists from JSON become tuples
    assert cfg.encode_crops == (0.5,)
    d = cfg.to_dict()
    assert d["widths"] == [4, 8] and d["crop_scale"] == [0.3, 0.9] and d["encode_crops"] == [0.5]
    json.dumps(d)
    assert ContrastiveConfig.from_dict(d) == cfg
    assert ContrastiveConfig.from_dict(json.loads(json.dumps(d))) == cfg
    with pytest.raises(AeclustError, match="unknown contrastive config fields: colour, depth"):
        ContrastiveConfig.from_dict({**d, "depth": 3, "colour": "rgb"})


def test_feature_dim_follows_the_output():
    cfg = ContrastiveConfig(widths=(8, 16), proj_dim=5, n_clusters=3)
    assert [ContrastiveConfig(**{**cfg.to_dict(), "output": o}).feature_dim
            for o in ("encoder", "projection", "clusters")] == [16, 5, 3]


# -- training -------------------------------------------------------------------------------


def test_training_writes_history_and_model_and_restores_torch_settings(images, tmp_path):
    threads = torch.get_num_threads()
    result = train_contrastive(ContrastiveConfig(**{**TINY, "epochs": 2}), images, tmp_path, device="cpu",
                               progress=True)
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert set(result.history[0]) == {"epoch", "loss", "lr", "seconds"}
    assert all(np.isfinite(row["loss"]) for row in result.history)
    # A cosine schedule after one warm-up epoch: the second epoch ends at a learning rate of 0.
    assert result.history[0]["lr"] == pytest.approx(ContrastiveConfig().lr)
    assert result.history[1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert json.loads((tmp_path / "history.json").read_text()) == result.history
    assert (tmp_path / "model.pt").is_file() and not list(tmp_path.glob(".*.tmp"))
    assert not result.model.training


def test_training_without_an_output_folder_writes_nothing(images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = train_contrastive(ContrastiveConfig(**TINY), images[:128], None, device="cpu", progress=False)
    assert len(result.history) == 1 and not list(tmp_path.iterdir())


def test_zero_epochs_gives_the_seeded_initial_model(images):
    cfg = ContrastiveConfig(**{**TINY, "epochs": 0})
    result = train_contrastive(cfg, images[:8], None, device="cpu", progress=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        fresh = ContrastiveNet(cfg)
    assert result.history == [] and _same_weights(result.model, fresh)


def test_the_same_seed_gives_the_same_bits(images, trained):
    first, _ = trained
    again = train_contrastive(ContrastiveConfig(**TINY), images, None, device="cpu", progress=False)
    assert _same_weights(again.model, first.model)
    assert [r["loss"] for r in again.history] == [r["loss"] for r in first.history]
    other = train_contrastive(ContrastiveConfig(**{**TINY, "seed": 6}), images, None, device="cpu", progress=False)
    assert not _same_weights(other.model, first.model)


def test_bfloat16_training_repeats_and_differs_from_float32(images, trained):
    # Autocast's bfloat16 arithmetic: the same bits again for the same seed, other bits than float32's,
    # and a float32 model to save and encode with.
    first, _ = trained
    bf16 = ContrastiveConfig(**{**TINY, "precision": "bfloat16"})
    a = train_contrastive(bf16, images, None, device="cpu", progress=False)
    b = train_contrastive(bf16, images, None, device="cpu", progress=False)
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, first.model)
    assert all(p.dtype == torch.float32 for p in a.model.parameters())
    assert np.isfinite(a.history[-1]["loss"])


def test_auto_precision_is_what_the_hardware_does_natively(images, monkeypatch):
    # "auto" trains exactly as the precision it resolves to, and the model's config records that one.
    from aeclust.contrastive import resolve_precision

    cpu = torch.device("cpu")
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    expected = "bfloat16" if native else "float32"
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision("float32", cpu) == "float32" and resolve_precision("bfloat16", cpu) == "bfloat16"
    auto = train_contrastive(ContrastiveConfig(**{**TINY, "precision": "auto"}), images, None, device="cpu",
                             progress=False)
    same = train_contrastive(ContrastiveConfig(**{**TINY, "precision": expected}), images, None, device="cpu",
                             progress=False)
    assert auto.model.config.precision == expected
    assert _same_weights(auto.model, same.model)

    # A CPU without bfloat16 instructions, and a torch without the checks: float32, the safe choice.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", cpu) == "float32"
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert resolve_precision("auto", cpu) == "float32"


def test_training_leaves_the_callers_generator_alone(images):
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    train_contrastive(ContrastiveConfig(**TINY), images[:64], None, device="cpu", progress=False)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 32, 32, 3), np.uint8), "at least 2 images"),
    (np.zeros((4, 32, 32), np.uint8), r"needs images of shape \(n, h, w, 3\)"),
    (np.zeros((4, 32, 32, 1), np.uint8), r"needs images of shape \(n, h, w, 3\)"),
])  # fmt: skip
def test_training_refuses_images_it_cannot_use(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        train_contrastive(ContrastiveConfig(**TINY), bad, None, device="cpu", progress=False)


def test_num_threads_must_be_positive(images):
    with pytest.raises(InvalidInputError, match="num_threads must be >= 1"):
        train_contrastive(ContrastiveConfig(**TINY), images[:8], None, device="cpu", progress=False, num_threads=0)


# -- features -------------------------------------------------------------------------------


def test_encode_shapes_and_norms(images, trained):
    model = trained[0].model
    enc, proj, clu = (encode(model, images[:30], batch_size=7, output=o) for o in ("encoder", "projection", "clusters"))
    assert enc.shape == (30, 16) and proj.shape == (30, 8) and clu.shape == (30, 4)
    assert enc.dtype == proj.dtype == clu.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(enc, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(proj, axis=1), 1, rtol=1e-5)
    assert (clu >= 0).all()
    np.testing.assert_allclose(clu.sum(1), 1, rtol=1e-5)
    # The config's own output by default; the batch size does not change the numbers.
    np.testing.assert_array_equal(encode(model, images[:30]), encode(model, images[:30], output="projection"))
    np.testing.assert_allclose(encode(model, images[:30], batch_size=30), proj, rtol=1e-6, atol=1e-7)
    assert encode(model, images[:0]).shape == (0, 8)
    assert encode(model, images[:0], output="clusters").shape == (0, 4)


def test_encoding_views_are_the_image_its_crops_and_their_mirrors(images):
    x = torch.from_numpy(images[:6]).permute(0, 3, 1, 2).float() / 255
    norm = lambda v: (v - MEAN) / STD  # noqa: E731
    cfg = ContrastiveConfig(widths=(8, 16), resolution=16, encode_crops=(0.5, 0.75), mirror=True)
    views = encoding_views(x, cfg)
    assert len(views) == 2 * (1 + 9 * 2) and all(v.shape == (6, 3, 16, 16) for v in views)
    # the whole image, 2x2 area-averaged to 16x16
    torch.testing.assert_close(views[0], norm(torch.nn.functional.avg_pool2d(x, 2)))
    # half-side crops land on pixel centres: the corners are the image's quadrants, row by row
    torch.testing.assert_close(views[1], norm(x[..., :16, :16]))
    torch.testing.assert_close(views[3], norm(x[..., :16, 16:]))
    torch.testing.assert_close(views[9], norm(x[..., 16:, 16:]))
    torch.testing.assert_close(views[5], norm(x[..., 8:24, 8:24]))  # the centre
    # the second half mirrors the first; no mirror, no second half; no crops, the image alone
    for v, m in zip(views[:19], views[19:]):
        torch.testing.assert_close(m, v.flip(3))
    assert len(encoding_views(x, replace(cfg, mirror=False))) == 19
    assert len(encoding_views(x, replace(cfg, encode_crops=(), mirror=False))) == 1


def test_encode_averages_over_the_views(images, trained):
    model = trained[0].model
    config = model.config
    assert config.encode_crops == (0.85, 0.7) and config.mirror  # the defaults: 38 views
    whole = replace(config, encode_crops=(), mirror=False)
    x = torch.from_numpy(images[:12]).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        views = encoding_views(x, config)
        assert len(views) == 38
        want = sum(model.cluster_head(model.encoder(v)).softmax(1) for v in views) / 38
        one = model.cluster_head(model.encoder(encoding_views(x, whole)[0])).softmax(1)
    got = encode(model, images[:12], output="clusters")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    model.config = whole
    try:
        np.testing.assert_allclose(encode(model, images[:12], output="clusters"), one.numpy(), rtol=1e-5, atol=1e-6)
    finally:
        model.config = config
    assert not np.allclose(got, one.numpy())


def test_encode_of_images_of_another_size(images, trained):
    model = trained[0].model
    big = np.repeat(np.repeat(images[:4], 2, axis=1), 2, axis=2)  # 64x64, resampled to the config's 8x8
    assert encode(model, big).shape == (4, 8)
    with pytest.raises(InvalidInputError, match="output must be one of"):
        encode(model, images[:2], output="logits")


def test_encode_leaves_the_models_mode_and_torch_threads_alone(images, trained):
    model = trained[0].model
    threads = torch.get_num_threads()
    model.train()
    try:
        encode(model, images[:4], num_threads=1)
        assert model.training
    finally:
        model.eval()
    assert torch.get_num_threads() == threads


# -- model files ----------------------------------------------------------------------------


def test_saved_model_encodes_like_the_trained_one(images, trained):
    result, out = trained
    loaded = load_model(out / "model.pt")
    assert loaded.config == result.model.config and not loaded.training
    assert _same_weights(loaded, result.model)
    for output in ("encoder", "projection", "clusters"):
        np.testing.assert_array_equal(encode(loaded, images[:40], output=output),
                                      encode(result.model, images[:40], output=output))
    state = torch.load(out / "model.pt", weights_only=True)
    assert list(state) == ["format", "version", "config", "model", "versions", "history"]
    assert state["format"] == "aeclust.contrastive" and state["version"] == 4
    assert state["history"] == result.history


def test_save_and_load_round_trip(images, trained, tmp_path):
    model = trained[0].model
    save_model(tmp_path / "m.pt", model, note="extra entries travel along")
    assert torch.load(tmp_path / "m.pt", weights_only=True)["note"] == "extra entries travel along"
    again = load_model(tmp_path / "m.pt")
    np.testing.assert_array_equal(encode(again, images[:10]), encode(model, images[:10]))
    assert not list(tmp_path.glob(".*.tmp"))


def test_loading_leaves_the_callers_generator_alone(trained):
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    load_model(trained[1] / "model.pt")
    assert torch.equal(torch.rand(3), expected)


def test_files_that_are_not_contrastive_models(trained, tmp_path):
    from aeclust.autoencoder import AutoencoderConfig, ConvAutoencoder, save_checkpoint

    with pytest.raises(AeclustError, match="no contrastive model at"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(AeclustError, match="cannot read contrastive model"):
        load_model(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "ae.pt", ConvAutoencoder(AutoencoderConfig()))
    with pytest.raises(AeclustError, match="is not an aeclust contrastive model"):
        load_model(tmp_path / "ae.pt")
    state = torch.load(trained[1] / "model.pt", weights_only=True)
    state["version"] = 5
    torch.save(state, tmp_path / "future.pt")
    with pytest.raises(AeclustError, match="contrastive model version 5; this aeclust reads versions 1, 2, 3 and 4"):
        load_model(tmp_path / "future.pt")
    state["version"], state["config"]["widths"] = 4, [8, 32]
    torch.save(state, tmp_path / "wider.pt")
    with pytest.raises(AeclustError, match="do not fit its config"):
        load_model(tmp_path / "wider.pt")
