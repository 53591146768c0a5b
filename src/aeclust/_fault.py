"""Fault injection for the reliability tests: stop the process at a named point.

Inert unless the environment variable ``AECLUST_FAULT`` is set. Its value is
``SIGNAL:POINT`` or ``SIGNAL:POINT:N``: when the process reaches ``POINT`` for
the ``N``-th time (default: the first), it sends itself ``SIGNAL`` (``INT``,
``TERM`` or ``KILL``; or ``STOP``, which pauses it there until a ``SIGCONT``,
so that a test can act while it holds a state). The points:

``stage-<name>``     after the stage record of ``pixels``, ``autoencoder`` or ``codes`` is written
``epoch-<n>``        after epoch ``n``'s checkpoint and history are written
``train-step``       after each optimizer step of the autoencoder
``rename-<file>``    inside an atomic write of ``<file>``: data written and fsynced, not yet renamed
``download-chunk``   after each chunk of the CIFAR-10 download is written

``AECLUST_FAULT=KILL:rename-results.json``, for example, kills ``aeclust run``
while results.json exists only as a temporary file.
"""

from __future__ import annotations

import os
import signal
import time

ENV_VAR = "AECLUST_FAULT"

_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Send the configured signal to this process if ``name`` is the configured point."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[1] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != (int(parts[2]) if len(parts) == 3 else 1):
        return
    sig = getattr(signal, "SIG" + parts[0].upper().removeprefix("SIG"))
    os.kill(os.getpid(), sig)
    if sig == getattr(signal, "SIGSTOP", None):
        return  # continued by SIGCONT: go on as if nothing happened
    # A Python-level handler (SIGINT, or the CLI's SIGTERM) runs at the latest while
    # sleeping here, and raises where the fault was asked for.
    time.sleep(30)
    raise RuntimeError(f"{ENV_VAR}={spec}: signal sent but the process was not stopped")


def reset() -> None:
    """Forget how often each point was reached (for several runs in one process)."""
    _hits.clear()
