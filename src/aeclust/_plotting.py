"""Figures drawn off-screen with matplotlib's object-oriented API, saved atomically as PNG.

Each figure is a :class:`matplotlib.figure.Figure` on its own Agg canvas.
``matplotlib.pyplot`` is never imported and the global backend never set, so
drawing a report changes nothing for a caller who uses matplotlib
interactively, in a notebook or with another backend; and no figure is
registered anywhere, so none has to be closed.

Kept apart from the report module so that the sweep and the external scores
can draw their figures without importing it. matplotlib is imported on first
use, so that importing aeclust does not import it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from ._io import write_bytes


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **grid):
    """A new figure and its grid of axes, as ``pyplot.subplots`` makes them.

    Parameters
    ----------
    nrows, ncols : int
        The grid of axes.
    figsize : (float, float)
        Width and height in inches; the dots per inch are matplotlib's default
        (``rcParams["figure.dpi"]``), as for a pyplot figure.
    **grid
        Passed to :meth:`matplotlib.figure.Figure.subplots`: ``sharex``,
        ``squeeze``, ``gridspec_kw`` ...

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : matplotlib.axes.Axes or numpy.ndarray of them
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # the figure keeps its canvas; savefig and tight_layout draw on it
    return fig, fig.subplots(nrows, ncols, **grid)


def figure(*, figsize: tuple[float, float]):
    """A new empty figure on its own Agg canvas, for a caller that places its axes itself.

    Parameters
    ----------
    figsize : (float, float)
        Width and height in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | os.PathLike, *, dpi: int = 110, colors: int | None = None,
             crop: bool = True) -> Path:
    """Render ``fig`` to PNG in memory and write the bytes atomically to ``path``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        The PNG file; its folder is created when missing.
    dpi : int, optional
        Dots per inch of the PNG.
    crop : bool, default=True
        Crop the figure to what it draws. A figure laid out pixel by pixel keeps
        its size instead: cropping would shift it by a fraction of a pixel.
    colors : int, optional
        Store the PNG with a palette of at most this many colours (median cut,
        no dithering: the same bytes every time). A chart of a few flat colours
        and anti-aliased edges looks the same and takes about a third of the
        bytes; leave photographs in full colour.

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if crop else None)
    # The figure is opaque: without its alpha channel the PNG is smaller by a tenth or so.
    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    if colors is not None:
        image = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    image.save(buf, format="png")
    path = Path(path)
    write_bytes(path, buf.getvalue())
    return path
