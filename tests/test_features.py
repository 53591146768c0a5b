"""The feature registry: shapes, files and a tiny fit of every entry (a few seconds)."""

from dataclasses import replace

import numpy as np
import pytest

from aeclust.errors import InvalidInputError
from aeclust.features import EXTRACTORS, fit_features, load_features

SMALL = {
    "codes": {"epochs": 1},
    "simclr": {"epochs": 1, "batch_size": 64, "widths": [8, 16, 16, 32], "proj_dim": 8},
    "kmeans-patches": {"n_atoms": 16, "n_patches": 2000, "pca": 10, "pca_images": 100},
}
DIMS = {"codes": 192, "simclr": 10, "kmeans-patches": 10}  # simclr: its cluster head's 10 probabilities


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(200, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_fit_transform_save_load(name, images, tmp_path):
    ext = fit_features(name, images, seed=0, device="cpu", out_dir=tmp_path, progress=False, **SMALL[name])
    X = ext.transform(images[:50])
    assert X.dtype == np.float32 and X.shape == (50, DIMS[name])
    assert np.isfinite(X).all()
    again = load_features(tmp_path)
    assert again.name == name and again.config == ext.config
    np.testing.assert_allclose(again.transform(images[:50]), X, rtol=1e-5, atol=1e-5)


def test_simclr_features_are_cluster_probabilities_or_unit_vectors(images):
    ext = fit_features("simclr", images, seed=1, device="cpu", progress=False, **SMALL["simclr"])
    p = ext.transform(images[:20])  # by default the cluster head's probabilities
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    ext = fit_features("simclr", images, seed=1, device="cpu", progress=False, output="projection",
                       **SMALL["simclr"])
    np.testing.assert_allclose(np.linalg.norm(ext.transform(images[:20]), axis=1), 1, rtol=1e-5)


def test_simclr_is_deterministic_on_cpu(images):
    a = fit_features("simclr", images, seed=3, device="cpu", progress=False, **SMALL["simclr"])
    b = fit_features("simclr", images, seed=3, device="cpu", progress=False, **SMALL["simclr"])
    np.testing.assert_array_equal(a.transform(images[:10]), b.transform(images[:10]))


def test_unknown_name_and_bad_images(images):
    with pytest.raises(InvalidInputError, match="unknown features"):
        fit_features("nope", images)
    with pytest.raises(InvalidInputError, match="uint8 RGB"):
        fit_features("simclr", images.astype(np.float32))


def test_augment_gives_views_of_the_configured_size():
    import torch

    from aeclust.contrastive import ContrastiveConfig, augment

    cfg = ContrastiveConfig(resolution=16)
    x = torch.rand(8, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    v1, v2 = augment(x, cfg, g), augment(x, cfg, g)
    assert v1.shape == (8, 3, 16, 16) and torch.isfinite(v1).all()
    assert not torch.equal(v1, v2)


def test_solarisation_flips_the_values_above_one_half_and_leaves_the_other_draws_alone():
    import torch

    from aeclust.contrastive import MEAN, STD, ContrastiveConfig, augment

    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def view(p):  # on the [0, 1] scale, from the same generator state
        return augment(x, ContrastiveConfig(resolution=8, p_solarize=p), torch.Generator().manual_seed(0)) * STD + MEAN

    plain, always = view(0.0), view(1.0)
    assert (plain > 0.55).any()
    # Solarisation draws after every other choice, so the view before it is the same one.
    torch.testing.assert_close(always, torch.where(plain >= 0.5, 1 - plain, plain), atol=1e-5, rtol=0)
    sometimes = view(0.5)
    flipped = [not torch.allclose(s, p, atol=1e-5) for s, p in zip(sometimes, plain, strict=True)]
    assert 0 < sum(flipped) < len(flipped)


def test_nt_xent_prefers_matching_pairs():
    import torch

    from aeclust.contrastive import nt_xent

    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert nt_xent(z, z, 0.2) < nt_xent(z, z[torch.randperm(16)], 0.2)


@pytest.mark.parametrize("name", sorted(EXTRACTORS))
def test_fit_without_out_dir(name, images):
    ext = fit_features(name, images[:100], seed=0, device="cpu", progress=False, **SMALL[name])
    assert ext.transform(images[:5]).shape == (5, DIMS[name])


def _tiny_contrastive(images, **over):
    from aeclust.contrastive import ContrastiveConfig, train_contrastive

    cfg = ContrastiveConfig(**{**SMALL["simclr"], "n_clusters": 4, **over})
    return train_contrastive(cfg, images[:128], None, device="cpu", progress=False).model


def test_contrastive_outputs(images):
    from aeclust.contrastive import encode

    model = _tiny_contrastive(images)
    enc, proj, clu = (encode(model, images[:20], output=o) for o in ("encoder", "projection", "clusters"))
    assert enc.shape == (20, 32) and proj.shape == (20, 8) and clu.shape == (20, 4)
    np.testing.assert_allclose(np.linalg.norm(enc, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(proj, axis=1), 1, rtol=1e-5)
    assert (clu >= 0).all()
    np.testing.assert_allclose(clu.sum(1), 1, rtol=1e-5)
    with pytest.raises(InvalidInputError, match="output must be one of"):
        encode(_tiny_contrastive(images, n_clusters=0), images[:2], output="clusters")


def test_mirror_encoding_is_mirror_invariant(images):
    from aeclust.contrastive import encode

    model = _tiny_contrastive(images, mirror=True, output="projection")
    a = encode(model, images[:10])
    b = encode(model, np.ascontiguousarray(images[:10, :, ::-1]))  # each image left-right mirrored
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    plain = encode(_tiny_contrastive(images, output="projection", mirror=False), images[:10])
    assert not np.allclose(a, plain)


def test_cluster_loss_prefers_views_that_agree():
    import torch

    from aeclust.contrastive import cluster_loss

    logits = 5 * torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    shuffled = logits[torch.randperm(64, generator=torch.Generator().manual_seed(1))][:, torch.randperm(10)]
    assert cluster_loss(logits, logits, 1.0) < cluster_loss(logits, shuffled, 1.0)
    # one cluster taking every image costs more than the balanced assignment above (the entropy term)
    collapsed = torch.zeros(64, 10)
    collapsed[:, 0] = 20
    assert cluster_loss(collapsed, collapsed, 1.0) > cluster_loss(logits, logits, 1.0)


@pytest.mark.parametrize("bad, match", [({"output": "pixels"}, "output must be one of"),
                                        ({"output": "clusters", "n_clusters": 0}, "clusters needs n_clusters"),
                                        ({"n_clusters": 1}, "n_clusters must be 0 or >= 2")])
def test_contrastive_config_rejects(bad, match):
    from aeclust.contrastive import ContrastiveConfig

    with pytest.raises(InvalidInputError, match=match):
        ContrastiveConfig(**bad)


def test_a_version_1_model_loads_as_it_was_saved(images, tmp_path):
    """Models written before the cluster head existed keep their meaning: no cluster head, encoder output."""
    import torch

    from aeclust.contrastive import encode, load_model, save_model

    model = _tiny_contrastive(images, n_clusters=0, output="encoder", mirror=False, encode_crops=())
    save_model(tmp_path / "model.pt", model)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    for key in ("n_clusters", "cluster_temperature", "output", "mirror", "encode_crops", "p_solarize"):
        del state["config"][key]
    state["version"] = 1
    torch.save(state, tmp_path / "model.pt")
    old = load_model(tmp_path / "model.pt")
    assert old.cluster_head is None and old.config.output == "encoder"
    np.testing.assert_array_equal(encode(old, images[:5]), encode(model, images[:5]))


def test_a_version_2_model_encodes_the_whole_image_alone(images, tmp_path):
    """Models written before the encoding crops keep their meaning: the whole image (and its mirror image
    where their config asked for it)."""
    import torch

    from aeclust.contrastive import encode, load_model, save_model

    model = _tiny_contrastive(images, encode_crops=())
    save_model(tmp_path / "model.pt", model)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    del state["config"]["encode_crops"], state["config"]["p_solarize"]
    state["version"] = 2
    torch.save(state, tmp_path / "model.pt")
    old = load_model(tmp_path / "model.pt")
    assert old.config.encode_crops == () and old.config.mirror
    np.testing.assert_array_equal(encode(old, images[:5]), encode(model, images[:5]))


def test_a_version_3_model_was_trained_without_solarisation(images, tmp_path):
    import torch

    from aeclust.contrastive import ContrastiveConfig, encode, load_model, save_model

    assert ContrastiveConfig().p_solarize == 0.2
    model = _tiny_contrastive(images)
    save_model(tmp_path / "model.pt", model)
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    del state["config"]["p_solarize"]
    state["version"] = 3
    torch.save(state, tmp_path / "model.pt")
    old = load_model(tmp_path / "model.pt")
    assert old.config.p_solarize == 0.0
    assert replace(old.config, p_solarize=model.config.p_solarize) == model.config
    np.testing.assert_array_equal(encode(old, images[:5]), encode(model, images[:5]))


def test_weights_that_do_not_fit_the_config_are_a_clear_error(images, tmp_path):
    import torch

    from aeclust.contrastive import load_model, save_model
    from aeclust.errors import AeclustError

    save_model(tmp_path / "model.pt", _tiny_contrastive(images))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state["config"]["n_clusters"] = 0  # the weights still hold a cluster head
    state["config"]["output"] = "projection"  # an output that needs no cluster head
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(AeclustError, match="do not fit its config"):
        load_model(tmp_path / "model.pt")
