"""Shared fixtures: a tiny fake CIFAR-10, and the real CIFAR-10 files when AECLUST_DATA points at them.

The helpers they build on live in tests/helpers/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.data import write_fake_cifar


def _real_data_dir() -> Path | None:
    value = os.environ.get("AECLUST_DATA")
    if not value:
        return None
    path = Path(value)
    if (path / "cifar-10-batches-py" / "test_batch").is_file():
        return path
    return None


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The directory holding the real CIFAR-10 files; skips the test when there is none."""
    path = _real_data_dir()
    if path is None:
        pytest.skip("real CIFAR-10 data not available: set AECLUST_DATA to the folder that holds cifar-10-batches-py/")
    return path


@pytest.fixture(scope="session")
def cifar_test_gray(cifar_dir):
    """The study's features: grayscale CIFAR-10 test set, (10000, 1024) float32 in [0, 1]."""
    from aeclust.datasets import load_cifar10
    from aeclust.preprocess import preprocess

    return preprocess(load_cifar10(cifar_dir, split="test", progress=False).images, "gray")


@pytest.fixture(scope="session")
def _fake_cifar_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-cifar")
    return root, write_fake_cifar(root)


@pytest.fixture
def fake_cifar(_fake_cifar_files, monkeypatch):
    """A data directory holding a tiny CIFAR-10 (200 training, 150 test images), with
    ``aeclust.cifar10.MD5`` set to its checksums and ``AECLUST_DATA`` pointing at it."""
    from aeclust import cifar10

    root, md5 = _fake_cifar_files
    monkeypatch.setattr(cifar10, "MD5", {**cifar10.MD5, **md5})
    monkeypatch.setenv("AECLUST_DATA", str(root))
    return root


@pytest.fixture(autouse=True)
def _no_fault_injection(monkeypatch):
    """No test inherits an AECLUST_FAULT from the environment or from another test."""
    from aeclust import _fault

    monkeypatch.delenv("AECLUST_FAULT", raising=False)
    _fault.reset()
    yield
    _fault.reset()
