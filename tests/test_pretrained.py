"""Frozen pretrained backbones (aeclust.pretrained): names, weights, preprocessing, batches, cache, CLI.

No weights can be downloaded here, and timm needs a torchvision built for the installed
torch, so most tests run against stand-ins for timm and OpenCLIP: small modules with the
parts of each library's API that aeclust calls (create_model, the data/preprocess config,
the pretrained config, a download that can be made to fail as it does offline), put in
``sys.modules`` for the test. Each writes its own random-weight checkpoint. The tests marked
``real_timm`` run the same checks against timm itself wherever it imports.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from aeclust import pretrained
from aeclust.cli import main
from aeclust.errors import AeclustError, InvalidInputError
from aeclust.features import FeatureInputs, check_feature_sets, feature_set
from aeclust.pretrained import (ExtraNotInstalledError, Preprocessing, WeightsMismatchError,
                                WeightsUnavailableError)

# -----------------------------------------------------------------------------
# stand-ins


class LocalEntryNotFoundError(FileNotFoundError):
    """What huggingface_hub raises offline (an OSError)."""


class TinyNet(nn.Module):
    """A small convnet: (n, 3, h, w) -> (n, width) pooled features, and a classifier head."""

    calls: list[tuple[int, ...]] = []

    def __init__(self, width: int = 8, num_classes: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, num_classes) if num_classes else nn.Identity()

    def forward(self, x):
        TinyNet.calls.append(tuple(x.shape))
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _read_state(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


def _fake_timm(hub: dict):
    """timm's API as aeclust uses it; ``hub`` maps hf_hub_id -> a file the "download" gives."""
    lib = types.ModuleType("timm")
    lib.__version__ = "0.0-stand-in"
    widths = {"tiny": 8, "tiny_wide": 16}
    lib.is_model = lambda name: name.split(".")[0] in widths

    def get_pretrained_cfg(name):
        arch, _, tag = name.partition(".")
        if tag not in ("", "web"):
            raise RuntimeError(f"Invalid pretrained tag ({tag}) for {arch}.")
        return types.SimpleNamespace(architecture=arch, tag="web", hf_hub_id=f"org/{arch}.web",
                                     hf_hub_filename=None, url="")

    def download(hf_hub_id):
        if hf_hub_id not in hub:
            raise LocalEntryNotFoundError("cannot find the requested files in the local cache")
        return hub[hf_hub_id]

    def create_model(name, pretrained=False, num_classes=5, pretrained_cfg_overlay=None):
        net = TinyNet(widths[name.split(".")[0]], num_classes)
        net.pretrained_cfg = {"input_size": (3, 24, 24), "interpolation": "bilinear",
                              "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "crop_pct": 0.9}
        if pretrained:
            file = (pretrained_cfg_overlay or {}).get("file") or lib.models.download(
                get_pretrained_cfg(name).hf_hub_id)
            state = _read_state(file)
            if not num_classes:  # as timm does: the classifier goes with the head that is left out
                state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            net.load_state_dict(state)
        return net

    lib.create_model = create_model
    lib.models = types.SimpleNamespace(get_pretrained_cfg=get_pretrained_cfg, download=download)
    lib.data = types.SimpleNamespace(resolve_model_data_config=lambda m: dict(m.pretrained_cfg))
    return lib


class TinyClip(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = TinyNet(8, 0)
        self.text = nn.Linear(4, 8)
        self.visual.preprocess_cfg = {"size": 20, "mean": (0.48, 0.46, 0.41), "std": (0.27, 0.26, 0.28),
                                      "interpolation": "bicubic", "resize_mode": "shortest"}

    def encode_image(self, x):
        return self.visual(x)


def _fake_open_clip(hub: dict):
    """OpenCLIP's API as aeclust uses it: tags, create_model (tag or file), the preprocess config."""
    lib = types.ModuleType("open_clip")
    lib.__version__ = "0.0-stand-in"
    lib.created = []
    lib.list_models = lambda: ["TinyCLIP"]
    lib.list_pretrained_tags_by_model = lambda arch: ["web"] if arch == "TinyCLIP" else []
    lib.get_pretrained_cfg = lambda arch, tag: (
        {"hf_hub": "org/tinyclip-web/", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
         "interpolation": "bicubic", "quick_gelu": True} if (arch, tag) == ("TinyCLIP", "web") else {})

    def create_model(arch, pretrained=None, force_quick_gelu=False, force_preprocess_cfg=None):
        lib.created.append({"pretrained": pretrained, "force_quick_gelu": force_quick_gelu,
                            "force_preprocess_cfg": force_preprocess_cfg})
        model = TinyClip()
        model.visual.preprocess_cfg.update(force_preprocess_cfg or {})
        if pretrained in lib.list_pretrained_tags_by_model(arch):
            repo = lib.get_pretrained_cfg(arch, pretrained)["hf_hub"]
            if repo not in hub:  # OpenCLIP wraps the hub's error in a RuntimeError
                raise RuntimeError(f"Failed to download weights for tag '{pretrained}'") from \
                    LocalEntryNotFoundError("cannot find the requested files in the local cache")
            model.load_state_dict(_read_state(hub[repo]))
        elif pretrained:
            model.load_state_dict(_read_state(pretrained))
        return model

    lib.create_model = create_model
    lib.get_model_preprocess_cfg = lambda model: dict(model.visual.preprocess_cfg)
    return lib


@pytest.fixture
def hub():
    """The files the stand-ins' "downloads" give; empty: offline."""
    return {}


@pytest.fixture
def timm(monkeypatch, hub):
    lib = _fake_timm(hub)
    monkeypatch.setitem(sys.modules, "timm", lib)
    TinyNet.calls = []
    return lib


@pytest.fixture
def open_clip(monkeypatch, hub):
    lib = _fake_open_clip(hub)
    monkeypatch.setitem(sys.modules, "open_clip", lib)
    TinyNet.calls = []
    return lib


def _checkpoint(path, width=8, seed=0, *, with_head=True):
    torch.manual_seed(seed)
    torch.save(TinyNet(width, 5 if with_head else 0).state_dict(), path)
    return str(path)


def _images(n=10, size=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -----------------------------------------------------------------------------
# names and the registry


def test_names_resolve_to_feature_sets_made_on_demand(timm):
    fs = feature_set("timm:tiny")
    assert (fs.name, fs.rgb, fs.learned) == ("timm:tiny", False, False)
    assert "frozen timm tiny" in fs.description
    assert feature_set("open_clip:ViT-B-32.openai").description == "frozen OpenCLIP ViT-B-32.openai embeddings"
    with pytest.raises(InvalidInputError, match="unknown feature set 'nope'.*timm:MODEL"):
        feature_set("nope")
    for bad in ("timm:", "timm:a/b", "timm:hf-hub:org/x", "timm: x"):
        with pytest.raises(InvalidInputError):
            pretrained.parse_name(bad)
    assert pretrained.parse_name("open_clip:ViT-B-32.openai") == ("open_clip", "ViT-B-32.openai")


def test_check_feature_sets_takes_pretrained_names_where_any_set_is_welcome(timm, tmp_path):
    # A backbone reads RGB, but grayscale images are repeated into three channels.
    assert check_feature_sets(["pixels", "timm:tiny"], rgb_images=False) == ("pixels", "timm:tiny")
    with pytest.raises(InvalidInputError, match="unknown feature set.*timm:tiny"):
        check_feature_sets(["timm:tiny"], rgb_images=True, allowed=["pixels"])  # aeclust cluster/sweep
    with pytest.raises(InvalidInputError, match="timm has no model 'nope'"):
        check_feature_sets(["timm:nope"], rgb_images=True)
    with pytest.raises(InvalidInputError, match=r"Invalid pretrained tag \(x\)"):
        check_feature_sets(["timm:tiny.x"], rgb_images=True)
    weights = _checkpoint(tmp_path / "w.pt")
    with pytest.raises(InvalidInputError, match="--weights .* none was given"):
        check_feature_sets(["pixels"], rgb_images=True, weights=weights)
    with pytest.raises(InvalidInputError, match="one pretrained feature set; 2 were given"):
        check_feature_sets(["timm:tiny", "timm:tiny_wide"], rgb_images=True, weights=weights)
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_feature_sets(["timm:tiny"], rgb_images=True, weights=tmp_path / "missing.pt")


def test_missing_or_broken_library_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ModuleNotFoundError
    with pytest.raises(ExtraNotInstalledError, match=r"pip install 'aeclust\[pretrained\]'"):
        check_feature_sets(["timm:resnet18"], rgb_images=True)

    def broken(name, *args):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(pretrained.importlib, "import_module", broken)
    with pytest.raises(ExtraNotInstalledError, match="does not import .*torchvision.*download.pytorch.org/whl/cpu"):
        pretrained._import("timm")


# -----------------------------------------------------------------------------
# preprocessing, batches, weights


def test_preprocess_resizes_whole_images_and_normalises():
    p = Preprocessing.from_config((3, 24, 24), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), "lanczos")
    assert p.interpolation == "bicubic" and p.size == (24, 24)  # lanczos: torch's nearest kin
    white = np.full((2, 8, 8, 3), 255, np.uint8)
    x = pretrained.preprocess(white, p)
    assert x.shape == (2, 3, 24, 24) and x.dtype == torch.float32
    # Bicubic overshoot is clamped, so a white image stays exactly white.
    np.testing.assert_allclose(x[0, :, 5, 5].numpy(), [(1 - 0.5) / 0.2, (1 - 0.4) / 0.25, (1 - 0.3) / 0.3],
                               rtol=1e-6)
    gray = pretrained.preprocess(np.arange(2 * 64, dtype=np.uint8).reshape(2, 8, 8), Preprocessing.from_config(
        8, 0.5, 0.5, "bilinear"))
    assert gray.shape == (2, 3, 8, 8) and torch.equal(gray[:, 0], gray[:, 2])  # no resize: already 8x8
    assert Preprocessing.from_config(8, 0.5, 0.5, "bilinear").mean == (0.5, 0.5, 0.5)


def test_embeddings_shape_batches_and_input_size(timm, tmp_path):
    weights = _checkpoint(tmp_path / "tiny.pt")
    X = pretrained.embeddings("timm:tiny", _images(10), weights=weights, batch_size=4, device="cpu")
    assert X.shape == (10, 8) and X.dtype == np.float32
    assert TinyNet.calls == [(4, 3, 24, 24), (4, 3, 24, 24), (2, 3, 24, 24)]  # resized to the data config's size
    # The head of the checkpoint is left out: the embedding is the pooled features.
    net = TinyNet(8, 5)
    net.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    with torch.no_grad():
        x = pretrained.preprocess(_images(10), pretrained.load_backbone("timm:tiny", weights=weights).preprocessing)
        expected = torch.relu(net.bn(net.conv(x))).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(X, expected, rtol=1e-5, atol=1e-6)


def test_embeddings_are_deterministic(timm, tmp_path):
    weights = _checkpoint(tmp_path / "tiny.pt")
    a = pretrained.embeddings("timm:tiny", _images(10), weights=weights, device="cpu")
    b = pretrained.embeddings("timm:tiny", _images(10), weights=weights, device="cpu")
    assert a.tobytes() == b.tobytes()


def test_cache_is_reused_only_for_the_same_weights_and_images(timm, tmp_path):
    w0 = _checkpoint(tmp_path / "w0.pt", seed=0)
    out = tmp_path / "cache"
    first = pretrained.embeddings("timm:tiny", _images(), weights=w0, out_dir=out, device="cpu")
    record = json.loads((out / "embeddings.json").read_text())
    assert record["weights_source"] == w0 and len(record["weights_sha256"]) == 64
    assert record["preprocessing"]["size"] == [24, 24] and record["images"]["shape"] == [10, 12, 12, 3]
    calls = len(TinyNet.calls)
    again = pretrained.embeddings("timm:tiny", _images(), weights=w0, out_dir=out, device="cpu")
    assert len(TinyNet.calls) == calls and again.tobytes() == first.tobytes()  # read from the cache
    # The same tensors from another file are the same weights: still the cache.
    state = torch.load(w0, weights_only=True)
    torch.save(dict(reversed(list(state.items()))), tmp_path / "copy.pt")
    pretrained.embeddings("timm:tiny", _images(), weights=tmp_path / "copy.pt", out_dir=out, device="cpu")
    assert len(TinyNet.calls) == calls
    # Other weights, other images: computed again.
    other = pretrained.embeddings("timm:tiny", _images(), weights=_checkpoint(tmp_path / "w1.pt", seed=1),
                                  out_dir=out, device="cpu")
    assert len(TinyNet.calls) > calls and not np.array_equal(other, first)
    calls = len(TinyNet.calls)
    pretrained.embeddings("timm:tiny", _images(seed=5), weights=w0, out_dir=out, device="cpu")
    assert len(TinyNet.calls) > calls
    # A damaged cache is computed again, not an error.
    (out / "embeddings.npy").write_bytes(b"not an array")
    assert pretrained.embeddings("timm:tiny", _images(seed=5), weights=w0, out_dir=out).shape == (10, 8)


def test_weights_that_do_not_fit_or_cannot_be_read(timm, tmp_path):
    wide = _checkpoint(tmp_path / "wide.pt", width=16)
    with pytest.raises(WeightsMismatchError, match=r"wide.pt does not fit timm:tiny .*size mismatch for conv.weight"):
        pretrained.load_backbone("timm:tiny", weights=wide)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsMismatchError, match=r"junk.pt cannot be read as the weights of timm:tiny"):
        pretrained.load_backbone("timm:tiny", weights=tmp_path / "junk.pt")
    # A checkpoint saved without its classifier fits too.
    headless = _checkpoint(tmp_path / "headless.pt", with_head=False)
    assert pretrained.load_backbone("timm:tiny", weights=headless).source == headless


def test_the_library_download_when_there_is_network(timm, hub, tmp_path):
    hub["org/tiny.web"] = _checkpoint(tmp_path / "hub.pt")
    backbone = pretrained.load_backbone("timm:tiny.web")
    assert backbone.source == "downloaded by timm"
    assert backbone.weights_sha256 == pretrained.load_backbone("timm:tiny", weights=hub["org/tiny.web"]).weights_sha256


def test_offline_without_weights_names_the_file_and_where_to_put_it(timm, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(WeightsUnavailableError) as info:
        pretrained.load_backbone("timm:tiny")
    message = str(info.value)
    assert "\n" not in message
    assert "https://huggingface.co/org/tiny.web/resolve/main/model.safetensors" in message
    target = pretrained.default_weights_dir() / "timm" / "tiny.web.safetensors"
    assert f"save it as {target} and rerun with --weights {target}" in message
    assert isinstance(info.value, AeclustError)


# -----------------------------------------------------------------------------
# OpenCLIP


def test_open_clip_image_embeddings_from_a_file(open_clip, tmp_path):
    torch.manual_seed(0)
    torch.save(TinyClip().state_dict(), tmp_path / "clip.pt")
    X = pretrained.embeddings("open_clip:TinyCLIP.web", _images(6), weights=tmp_path / "clip.pt", device="cpu")
    assert X.shape == (6, 8) and TinyNet.calls == [(6, 3, 20, 20)]
    # The tag's training settings go with its weights, also from a file.
    created = open_clip.created[-1]
    assert created["pretrained"] == str(tmp_path / "clip.pt") and created["force_quick_gelu"] is True
    assert created["force_preprocess_cfg"] == {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25),
                                               "interpolation": "bicubic"}
    assert pretrained.load_backbone("open_clip:TinyCLIP", weights=tmp_path / "clip.pt").preprocessing.mean == \
        (0.48, 0.46, 0.41)


def test_open_clip_names_and_offline(open_clip):
    with pytest.raises(InvalidInputError, match="needs the tag .*open_clip:TinyCLIP.TAG with TAG one of web"):
        pretrained.load_backbone("open_clip:TinyCLIP")
    with pytest.raises(InvalidInputError, match="no weights 'x' for TinyCLIP; its tags: web"):
        pretrained.load_backbone("open_clip:TinyCLIP.x")
    with pytest.raises(InvalidInputError, match="open_clip has no model 'Nope'"):
        pretrained.load_backbone("open_clip:Nope.web")
    with pytest.raises(WeightsUnavailableError,
                       match="download https://huggingface.co/org/tinyclip-web/resolve/main/open_clip_pytorch_model.bin"):
        pretrained.load_backbone("open_clip:TinyCLIP.web")


# -----------------------------------------------------------------------------
# the command line


def _npz(tmp_path, n=24):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], n // 3)
    images = (labels[:, None, None, None] * 100 + rng.integers(0, 40, (n, 12, 12, 3))).astype(np.uint8)
    path = tmp_path / "rgb.npz"
    np.savez(path, images=images, labels=labels)
    return str(path)


def test_run_end_to_end_with_a_local_weights_file(timm, tmp_path, capsys):
    data, weights, out = _npz(tmp_path), _checkpoint(tmp_path / "tiny.pt"), tmp_path / "run"
    argv = ["run", "--dataset", data, "--feature-sets", "pixels,timm:tiny", "--weights", weights, "--k", "3",
            "--train-limit", "24", "--test-limit", "24", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    fs = results["feature_sets"]["timm:tiny"]
    assert fs["n_features"] == 8 and fs["description"] == "frozen timm tiny embeddings, 8-d"
    assert fs["kmeans"]["n_clusters"] == 3 and fs["external"] is not None
    assert results["config"]["weights"] == weights
    cache = out / "timm:tiny" / "model"
    assert np.load(cache / "embeddings.npy").shape == (24, 8)
    assert json.loads((cache / "embeddings.json").read_text())["weights_source"] == weights
    assert (out / "timm:tiny" / "labels.npy").is_file()
    # Resuming after the stage record is lost: the embeddings come from the cache, not the model.
    (out / "stages" / "timm:tiny.json").unlink()
    (out / "results.json").unlink()
    calls = len(TinyNet.calls)
    assert main([*argv, "--resume"]) == 0
    assert len(TinyNet.calls) == calls
    assert json.loads((out / "results.json").read_text())["feature_sets"]["timm:tiny"]["n_features"] == 8
    # Other weights are another result: a resumed run does not take the old one.
    other = _checkpoint(tmp_path / "other.pt", seed=3)
    capsys.readouterr()
    assert main([*argv[:5], "--weights", other, *argv[7:], "--resume"]) == 2
    err = capsys.readouterr().err
    assert "holds a finished 'aeclust run' of another configuration (weights " in err
    assert "tiny.pt there, " in err and "other.pt here)" in err
    # Unfinished, the stage records judge the weights: the finished stage of the old ones refuses them.
    (out / "results.json").unlink()
    assert main([*argv[:5], "--weights", other, *argv[7:], "--resume"]) == 2
    assert "different configuration (stage 'timm:tiny')" in capsys.readouterr().err


def test_run_offline_without_weights_is_one_line_and_exit_2(timm, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    argv = ["run", "--dataset", _npz(tmp_path), "--feature-sets", "pixels,timm:tiny", "--k", "3",
            "--out", str(tmp_path / "run"), "--quiet"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("aeclust: error: cannot download the weights of timm:tiny")
    assert "download https://huggingface.co/org/tiny.web/resolve/main/model.safetensors" in err
    target = pretrained.default_weights_dir() / "timm" / "tiny.web.safetensors"
    assert f"--weights {target}" in err
    # With the file in place, the run goes on from the stage that stopped.
    pixels = (tmp_path / "run" / "stages" / "pixels.json").read_bytes()
    target.parent.mkdir(parents=True)
    weights = _checkpoint(target.with_suffix(".pt"))  # torch.save's format, which the stand-in reads
    assert main([*argv, "--resume", "--weights", weights]) == 0
    assert (tmp_path / "run" / "stages" / "pixels.json").read_bytes() == pixels
    assert "timm:tiny" in json.loads((tmp_path / "run" / "results.json").read_text())["feature_sets"]


@pytest.mark.parametrize("argv, message", [
    (["--feature-sets", "pixels", "--weights", "{w}"], "none was given"),
    (["--feature-sets", "timm:tiny", "--weights", "{missing}"], "does not exist"),
    (["--feature-sets", "timm:tiny", "--weights", "{wide}"], "does not fit timm:tiny"),
])
def test_run_bad_weights_fail_in_one_line(timm, tmp_path, capsys, argv, message):
    paths = {"w": _checkpoint(tmp_path / "w.pt"), "missing": str(tmp_path / "missing.pt"),
             "wide": _checkpoint(tmp_path / "wide.pt", width=16)}
    argv = [a.format(**paths) for a in argv]
    assert main(["run", "--dataset", _npz(tmp_path), *argv, "--k", "3", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_feature_inputs_carry_the_weights(timm, tmp_path):
    weights = _checkpoint(tmp_path / "tiny.pt")
    X, description = feature_set("timm:tiny").build(FeatureInputs(images=_images(4), weights=weights,
                                                                   out_dir=tmp_path / "m", device="cpu"))
    assert X.shape == (4, 8) and description.endswith("8-d") and (tmp_path / "m" / "embeddings.npy").is_file()


# -----------------------------------------------------------------------------
# timm itself, where it imports (it needs a torchvision built for the installed torch)


@pytest.fixture
def real_timm():
    try:
        import timm
    except Exception as exc:  # not installed, or its torchvision does not fit this torch
        pytest.skip(f"timm does not import here ({type(exc).__name__}): {exc}")
    return timm


def test_real_timm_random_checkpoint(real_timm, tmp_path):
    torch.manual_seed(0)
    model = real_timm.create_model("test_resnet", pretrained=False)
    torch.save(model.state_dict(), tmp_path / "test_resnet.pth")
    out = tmp_path / "cache"
    X = pretrained.embeddings("timm:test_resnet", _images(5, size=32), weights=tmp_path / "test_resnet.pth",
                              out_dir=out, batch_size=2, device="cpu")
    cfg = real_timm.data.resolve_model_data_config(model)
    record = json.loads((out / "embeddings.json").read_text())
    assert X.shape == (5, model.num_features)
    assert record["preprocessing"]["size"] == list(cfg["input_size"][1:])
    model.reset_classifier(0)
    model.eval()
    backbone = pretrained.load_backbone("timm:test_resnet", weights=tmp_path / "test_resnet.pth")
    with torch.no_grad():
        expected = model(pretrained.preprocess(_images(5, size=32), backbone.preprocessing)).numpy()
    np.testing.assert_allclose(X, expected, rtol=1e-4, atol=1e-5)
    torch.save(real_timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsMismatchError, match="does not fit timm:test_resnet"):
        pretrained.load_backbone("timm:test_resnet", weights=tmp_path / "r18.pth")


def test_real_timm_offline(real_timm, monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub")

    monkeypatch.setattr(builder, "load_state_dict_from_hf", offline)
    monkeypatch.setattr(builder, "load_state_dict_from_url", offline)
    url = "https://huggingface.co/timm/test_resnet.r160_in1k/resolve/main/model.safetensors"
    with pytest.raises(WeightsUnavailableError, match=f"download {url}"):
        pretrained.load_backbone("timm:test_resnet")
