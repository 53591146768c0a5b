"""Run the aeclust command line in a separate process, with the test doubles that
monkeypatch cannot carry across a process boundary.

    python tests/helpers/cli_harness.py run --out DIR ...

AECLUST_TEST_MD5    JSON object merged into aeclust.cifar10.MD5 (the fake data's checksums)
AECLUST_TEST_SERVE  a file that urlopen serves instead of the network, 64 KiB per read

Everything else, signals and AECLUST_FAULT included, is the real thing.
"""

from __future__ import annotations

import json
import os
import sys


class _FileResponse:
    def __init__(self, path: str):
        self._f = open(path, "rb")
        self.headers = {"Content-Length": str(os.path.getsize(path))}

    def read(self, n: int = -1) -> bytes:
        return self._f.read(65536 if n < 0 else min(n, 65536))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _install_doubles() -> None:
    from aeclust import cifar10

    if os.environ.get("AECLUST_TEST_MD5"):
        cifar10.MD5.update(json.loads(os.environ["AECLUST_TEST_MD5"]))
    served = os.environ.get("AECLUST_TEST_SERVE")
    cifar10.urlopen = (lambda url, *a, **k: _FileResponse(served)) if served else _offline


def _offline(url, *args, **kwargs):
    raise OSError("the test harness allows no network")


if __name__ == "__main__":
    _install_doubles()
    from aeclust.cli import main

    sys.exit(main(sys.argv[1:]))
