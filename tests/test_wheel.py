"""The wheel built from the checkout works outside it.

``python -m build`` makes an sdist and, from that sdist, a wheel; the wheel goes into a fresh
virtual environment (the Makefile's torch pin first: an unpinned torch is a multi-GB CUDA build),
and tools/smoke_wheel.py runs there, copied to an empty folder, with that environment's
site-packages read-only and nothing of the checkout on the path: aeclust from site-packages,
KMeans on the compiled kernels, the metrics against scikit-learn, ``aeclust --help``.

Read-only means read-only for the process that runs the smoke script, root included (CI runs as
root, and chmod does not stop root): as root the script runs in its own mount namespace with
site-packages bind-mounted read-only (``unshare --mount``), or else as uid 65534 (nobody); as
any other user ``chmod -R a-w`` is enough. A probe checks that a write into the installed
package fails before the smoke script is trusted. numba must then cache the kernels in the
user's cache folder: the first run compiles and writes them there, the second loads them all
and compiles none. A third run with no writable folder at all checks that aeclust warns and
compiles in memory instead of stopping.

About 45 s here (2 cores, the packages from a local index): the build 4 s, the fresh environment
and its install 20 s, the three smoke runs 20 s (the first and the third compile the kernels in
about 6 s, the second loads them in under 1 s).
Skipped only where nothing can be built: the isolated build cannot fetch setuptools and this
environment lacks it too, or pip cannot reach an index for the dependencies.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "aeclust"
SMOKE = ROOT / "tools" / "smoke_wheel.py"
NOBODY = 65534
#: pip's words when it cannot reach an index (nothing the package can fix).
_OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name "
                      r"resolution|Network is unreachable|No route to host|ConnectTimeoutError")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.name != "posix", reason="the read-only site-packages check uses POSIX permissions"),
]


def _run(cmd: list, *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)


def _tail(done: subprocess.CompletedProcess, chars: int = 3000) -> str:
    return (done.stdout + done.stderr)[-chars:]


def _package_modules() -> set[str]:
    """The checkout's modules, as paths inside the package (``aeclust/kmeans.py``)."""
    return {"aeclust/" + p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
            if "__pycache__" not in p.parts}


def _torch_pin() -> str:
    """The Makefile's torch requirement (``TORCH ?= torch==...``): the CPU build, one source of truth."""
    found = re.search(r"^TORCH\s*\?=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert found, "the Makefile sets no TORCH ?= torch==<version>: the fresh venv needs that pin"
    return found.group(1)


@pytest.fixture(scope="module")
def workdir():
    """A folder that uid 65534 can enter (pytest's tmp_path lies under a root-only folder)."""
    path = Path(tempfile.mkdtemp(prefix="aeclust-wheel-"))
    path.chmod(0o755)
    yield path
    for folder, _, files in os.walk(path):  # chmod -R a-w was applied: give the owner back its writes
        for p in [folder, *(os.path.join(folder, f) for f in files)]:
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    shutil.rmtree(path)


def _build_requirements_met() -> bool:
    """Whether this environment holds pyproject.toml's build requirements (for ``--no-isolation``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: build depends on tomli there
        import tomli as tomllib
    from packaging.requirements import Requirement

    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        req = Requirement(text)
        try:
            if not req.specifier.contains(importlib.metadata.version(req.name), prereleases=True):
                return False
        except importlib.metadata.PackageNotFoundError:
            return False
    return True


@pytest.fixture(scope="module")
def dists(workdir) -> tuple[Path, Path]:
    """The sdist and the wheel built from it, by ``python -m build`` in its isolated environment;
    offline, with this environment's setuptools (``--no-isolation``) when it meets the requirements."""
    if importlib.util.find_spec("build") is None:
        pytest.fail("the 'build' package is missing: install the test extra (pip install -e '.[test]')")
    out = workdir / "dist"
    command = [sys.executable, "-m", "build", "--outdir", out, ROOT]
    done = _run(command)
    if done.returncode != 0:
        if not _build_requirements_met():
            pytest.skip("cannot build: the isolated build could not install the build requirements (no "
                        "network, nothing cached?) and this environment lacks them:\n" + _tail(done, 1500))
        isolated = _tail(done, 1500)
        done = _run(command + ["--no-isolation"])
        assert done.returncode == 0, f"python -m build failed, isolated and not:\n{isolated}\n{_tail(done)}"
        warnings.warn("the isolated build failed (no network?); built with this environment's setuptools "
                      "instead:\n" + isolated)
    sdists, wheels = sorted(out.glob("aeclust-*.tar.gz")), sorted(out.glob("aeclust-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, f"expected one sdist and one wheel in {out}: {sorted(out.iterdir())}"
    return sdists[0], wheels[0]


def test_wheel_holds_the_package_alone(dists):
    wheel = dists[1]
    version = wheel.name.split("-")[1]
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"aeclust-{version}.dist-info/"
    assert [n for n in names if not n.startswith(("aeclust/", dist_info))] == []
    assert [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc"))] == []
    assert _package_modules() - set(names) == set()
    entry_points = zipfile.ZipFile(wheel).read(dist_info + "entry_points.txt").decode()
    assert re.search(r"^aeclust = aeclust\.cli:main$", entry_points, flags=re.M), entry_points


def test_sdist_holds_the_sources_the_wheel_was_built_from(dists):
    # python -m build made the wheel from this sdist: the wheel's existence shows it is enough.
    with tarfile.open(dists[0]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= names
    assert {"src/" + m for m in _package_modules()} - names == set()
    assert [n for n in names if n.startswith("tests/")] == []  # they need the checkout's docs and tools
    assert [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".nbi", ".nbc"))] == []


@pytest.fixture(scope="module")
def venv(dists, workdir) -> tuple[Path, Path]:
    """A fresh virtual environment with the wheel installed: its python and its site-packages."""
    root = workdir / "venv"
    done = _run([sys.executable, "-m", "venv", root])
    assert done.returncode == 0, _tail(done)
    python = root / "bin" / "python"
    # --no-compile: byte-compiling torch alone takes about 20 s; aeclust is compiled below, so that
    # its __pycache__ (where numba tries to cache first) is there, read-only, as pip leaves it.
    done = _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                 _torch_pin(), dists[1]])
    if done.returncode != 0 and _OFFLINE.search(done.stdout + done.stderr):
        pytest.skip("pip cannot reach an index to install the wheel's dependencies:\n" + _tail(done, 1500))
    assert done.returncode == 0, _tail(done)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    assert site.is_relative_to(root), site
    done = _run([python, "-m", "compileall", "-q", site / "aeclust"])
    assert done.returncode == 0, _tail(done)
    return python, site


# Exits 3 when the installed package cannot be written to, 0 when it can.
_PROBE = """
import pathlib, sys
try:
    (pathlib.Path(sys.argv[1]) / "aeclust" / "__pycache__" / "write-probe").write_text("x")
except OSError:
    sys.exit(3)
"""


def _read_only_ways(site: Path) -> list[tuple[str, list, dict]]:
    """The ways to run a command with ``site`` read-only, best first: (name, command prefix,
    subprocess.run keywords)."""
    if os.geteuid() != 0:
        return [("chmod", [], {})]
    mount = ["unshare", "--mount", "sh", "-c",
             'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', "sh", site]
    return [("read-only mount", mount, {}),
            ("uid 65534", [], {"user": NOBODY, "group": NOBODY, "extra_groups": []})]


def _lock(python: Path, site: Path, home: Path, rundir: Path):
    """Make ``site`` read-only (chmod -R a-w, plus what root needs) and return the way's name and
    ``run(args, home)``, which runs ``python args`` in ``rundir`` so, with only PATH, HOME and LANG
    set; fails when no way is found that really stops writes."""
    done = _run(["chmod", "-R", "a-w", site])
    assert done.returncode == 0, _tail(done)
    tried = []
    for name, prefix, keywords in _read_only_ways(site):
        if keywords.get("user") == NOBODY:
            os.chown(home, NOBODY, NOBODY)

        def run(args, home, prefix=prefix, keywords=keywords):
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
            return _run([*prefix, python, *args], env=env, cwd=rundir, **keywords)

        try:
            done = run(["-c", _PROBE, site], home)
        except (OSError, subprocess.SubprocessError) as error:
            tried.append(f"{name}: {error}")
            continue
        if done.returncode == 3:
            return name, run
        tried.append(f"{name}: the probe exited with {done.returncode}: {_tail(done, 500)}")
    pytest.fail("found no way to make site-packages read-only for the smoke script, so the numba "
                "cache check would prove nothing; tried:\n" + "\n".join(tried))


def _smoke(run, home: Path, expect: str) -> dict:
    done = run(["smoke_wheel.py", "--expect-cache", expect], home)
    assert done.returncode == 0, f"smoke script (--expect-cache {expect}) failed:\n{_tail(done)}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_wheel_passes_the_smoke_script_in_a_fresh_venv(venv, workdir):
    python, site = venv
    home = workdir / "home"
    home.mkdir()
    rundir = workdir / "run"  # empty but for the smoke script: nothing of the checkout on the path
    rundir.mkdir()
    shutil.copy(SMOKE, rundir / "smoke_wheel.py")
    way, run = _lock(python, site, home, rundir)

    first = _smoke(run, home, "miss")
    assert Path(first["aeclust_file"]).is_relative_to(site), first
    assert first["cache_misses"] > 0 and first["cache_hits"] == 0, first
    assert all(Path(d).is_relative_to(home / ".cache" / "numba") for d in first["numba_cache_dirs"]), first

    second = _smoke(run, home, "hit")
    assert second["cache_hits"] > 0 and second["cache_misses"] == 0, second
    assert second["numba_cache_dirs"] == first["numba_cache_dirs"]
    assert (second["silhouette"], second["dunn"]) == (first["silhouette"], first["dunn"])

    # No writable folder at all: HOME inside the read-only site-packages.
    uncached = _smoke(run, site, "none")
    assert "NUMBA_CACHE_DIR" in uncached["warning"]
    assert (uncached["silhouette"], uncached["dunn"]) == (first["silhouette"], first["dunn"])
    print(f"\nsite-packages read-only by {way}; first fit {first['fit_seconds'][0]:.2f} s (compiling), "
          f"{second['fit_seconds'][0]:.2f} s from the cache, {uncached['fit_seconds'][0]:.2f} s uncached")
