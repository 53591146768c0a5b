"""Matplotlib without a display, and figures saved atomically as PNG.

Kept apart from the report module so that the sweep and the external scores
can draw their figures without importing it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from ._io import write_bytes


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed, and none wanted)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Render ``fig`` to PNG in memory, close it, and write the bytes atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    path = Path(path)
    write_bytes(path, buf.getvalue())
    return path
