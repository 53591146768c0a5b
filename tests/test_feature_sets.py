"""The feature-set registry and the option names that read it."""

from __future__ import annotations

import numpy as np
import pytest

from aeclust.cli import build_parser, main
from aeclust.datasets import load_digits_set
from aeclust.errors import InvalidInputError
from aeclust.features import (ALL_FEATURE_SETS, DEFAULT_FEATURE_SETS, FEATURE_SETS, FeatureInputs,
                              check_feature_sets, feature_set_names)
from aeclust.pipeline import CLUSTER_FEATURE_SETS, feature_matrix
from aeclust.preprocess import preprocess


def test_every_entry_is_named_as_its_key_and_the_defaults_are_entries():
    assert all(f.name == name for name, f in FEATURE_SETS.items())
    assert set(DEFAULT_FEATURE_SETS) <= set(FEATURE_SETS)
    assert set(ALL_FEATURE_SETS) <= set(FEATURE_SETS)
    assert set(CLUSTER_FEATURE_SETS) <= set(FEATURE_SETS)
    # 'all' leaves out the feature sets that train for minutes.
    assert "simclr" not in ALL_FEATURE_SETS and "pixels" in ALL_FEATURE_SETS


def test_the_study_s_sets_keep_one_random_start_and_the_others_get_the_best_of_10_kmeans_plus_plus():
    from aeclust.features import feature_set

    study = {"pixels", "pixels-rgb", "pca", "codes", "codes-train", "codes-rgb"}
    assert {n for n, f in FEATURE_SETS.items() if f.kmeans == ("random", 1)} == study
    assert {f.kmeans for n, f in FEATURE_SETS.items() if n not in study} == {("k-means++", 10)}
    assert feature_set("timm:resnet18").kmeans == ("k-means++", 10)


def test_names_are_read_once_each_and_all_expands():
    assert feature_set_names(" pixels, pca ,pixels") == ("pixels", "pca")
    assert feature_set_names("all") == ALL_FEATURE_SETS


def test_unknown_and_rgb_only_sets_fail_with_the_choices():
    with pytest.raises(InvalidInputError, match="unknown feature set.*nope.*choose from pixels"):
        check_feature_sets(["pixels", "nope"], rgb_images=True)
    with pytest.raises(InvalidInputError, match="pixels-rgb, simclr need RGB images"):
        check_feature_sets(["pixels", "pixels-rgb", "simclr"], rgb_images=False)
    with pytest.raises(InvalidInputError, match="codes need RGB"):  # its autoencoder reads RGB
        check_feature_sets(["codes"], rgb_images=False, ae_color="rgb")
    assert check_feature_sets(["codes"], rgb_images=False) == ("codes",)
    with pytest.raises(InvalidInputError, match="no feature set"):
        check_feature_sets([], rgb_images=True)


def test_builds_match_the_preprocessing_they_name():
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    X, _ = FEATURE_SETS["pixels"].build(FeatureInputs(images=images))
    np.testing.assert_array_equal(X, preprocess(images, "gray"))
    X, _ = FEATURE_SETS["pixels-rgb"].build(FeatureInputs(images=images))
    np.testing.assert_array_equal(X, preprocess(images, "rgb"))
    X, description = FEATURE_SETS["pca"].build(FeatureInputs(images=images))
    assert X.shape == (20, 20) and "20 components" in description
    with pytest.raises(InvalidInputError, match="needs a trained autoencoder"):
        FEATURE_SETS["codes"].build(FeatureInputs(images=images))


def test_feature_matrix_of_digits():
    digits = load_digits_set()
    assert feature_matrix(digits, "pixels").shape == (1797, 64)
    with pytest.raises(InvalidInputError, match="need RGB"):
        feature_matrix(digits, "pixels-rgb")
    with pytest.raises(InvalidInputError, match="unknown feature set"):
        feature_matrix(digits, "simclr")  # trains for minutes: not a choice of cluster or sweep


@pytest.mark.parametrize("argv, dest, value, new", [
    (["cluster", "--color", "rgb"], "feature_set", "pixels-rgb", "--feature-set"),
    (["cluster", "--color", "gray"], "feature_set", "pixels", "--feature-set"),
    (["run", "--color", "rgb"], "ae_color", "rgb", "--ae-color"),
    (["train", "--color", "rgb"], "ae_color", "rgb", "--ae-color"),
    (["run", "--features", "simclr"], "extra_feature_sets", ["simclr"], "--feature-sets pixels,codes,NAME"),
    (["sweep", "--features", "pca"], "feature_set", "pca", "--feature-set"),
])
def test_old_spellings_still_work_and_name_the_new_one(argv, dest, value, new, capsys):
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert f"{argv[1]} is deprecated" in err and new in err


@pytest.mark.parametrize("argv, dest, value", [
    (["cluster", "--feature-set", "pca"], "feature_set", "pca"),
    (["run", "--ae-color", "rgb"], "ae_color", "rgb"),
    (["sweep", "--feature-set", "pixels-rgb"], "feature_set", "pixels-rgb"),
])
def test_new_spellings_are_quiet(argv, dest, value, capsys):
    assert getattr(build_parser().parse_args(argv), dest) == value
    assert capsys.readouterr().err == ""


def test_run_help_lists_every_feature_set(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps at hyphens
    assert all(name in text for name in FEATURE_SETS)


def test_cluster_on_pca_of_digits(tmp_path, capsys):
    assert main(["cluster", "--dataset", "digits", "--feature-set", "pca", "--out", str(tmp_path), "--quiet"]) == 0
    import json

    r = json.loads((tmp_path / "results.json").read_text())
    assert r["config"]["features"] == "pca" and r["config"]["n_features"] == 50
