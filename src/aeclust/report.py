"""Figures (PNG, matplotlib) and the self-contained HTML report of a run.

Every figure is written as a PNG file in ``<run>/figures/`` and embedded in
``<run>/report.html`` as a base64 data URI, so the page opens anywhere, alone.
The page's numbers are read from the same dictionary that becomes
``results.json``, and its per-sample figures from what the pipeline left in
each feature set's folder (``labels.npy``, ``silhouette.npy``, ``map.npy`` and
``map_rows.npy``); nothing is computed twice, and ``aeclust report`` redraws
every figure from the run directory alone. The one computation here is the
map's t-SNE (:func:`feature_map`), which the pipeline calls while it holds the
features.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from ._io import write_text
from ._plotting import figure as _figure
from ._plotting import save_png as _save
from ._plotting import subplots as _subplots


def _show(ax, image: np.ndarray) -> None:
    """An image on an axis: (h, w) grayscale or (h, w, 3) colour, uint8 or [0, 1] floats."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        vmax = 255 if image.dtype == np.uint8 else 1.0
        ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_loss_curve(history: list[dict], path: Path, *, n_train: int | None = None,
                    n_test: int | None = None, key: str = "train_loss",
                    title: str = "Autoencoder reconstruction loss", ylabel: str = "mean squared error") -> Path:
    """Training loss (``history[i][key]``) per epoch, and the held-out ``test_loss`` where every epoch has one."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _subplots(figsize=(6, 3.6))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h[key] for h in history], "o-",
            label="train" + (f" ({n_train:,} images)" if n_train else ""))
    if all(h.get("test_loss") is not None for h in history):
        ax.plot(epochs, [h["test_loss"] for h in history], "s--",
                label="held-out test" + (f" ({n_test:,} images)" if n_test else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_reconstructions(originals: np.ndarray, reconstructions: np.ndarray, path: Path) -> Path:
    """Originals (top row) above their reconstructions (bottom row)."""
    n = len(originals)
    fig, axes = _subplots(2, n, figsize=(1.2 * n, 2.7), squeeze=False)
    for i in range(n):
        _show(axes[0, i], originals[i])
        _show(axes[1, i], reconstructions[i])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle("Test images and their reconstructions")
    return _save(fig, path)


def plot_codes(images: np.ndarray, codes: np.ndarray, path: Path) -> Path:
    """Each image beside its 8x8 code channels, each channel shown as a small grayscale image."""
    n, channels = codes.shape[0], codes.shape[1]
    fig, axes = _subplots(n, channels + 1, figsize=(1.3 * (channels + 1), 1.3 * n), squeeze=False)
    for i in range(n):
        _show(axes[i, 0], images[i])
        for c in range(channels):
            ch = codes[i, c]
            span = ch.max() - ch.min()
            _show(axes[i, c + 1], (ch - ch.min()) / span if span > 0 else np.zeros_like(ch))
    axes[0, 0].set_title("image", fontsize=9)
    for c in range(channels):
        axes[0, c + 1].set_title(f"code ch. {c + 1}", fontsize=9)
    fig.suptitle(f"Codes ({channels} x {codes.shape[2]} x {codes.shape[3]}) shown as images", fontsize=10)
    return _save(fig, path)


def _montage(images: list, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """Tile equally sized images (uint8 or [0, 1] floats, gray or RGB) into one RGB float image."""
    h, w = np.asarray(images[0]).shape[:2]
    canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, 3))
    for i, img in enumerate(images):
        if img is None:
            continue
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = _rgb(img)
    return canvas


def _rgb(image) -> np.ndarray:
    """An image (uint8 or [0, 1] floats, gray or RGB) as RGB floats in [0, 1]."""
    img = np.asarray(image, dtype=np.float64)
    if img.max(initial=0) > 1.0:
        img = img / 255.0
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img


def _cluster_colors(k: int) -> list:
    """One colour per cluster number, the same in the silhouette plot and the map."""
    from matplotlib import colormaps

    if k <= 10:
        return [colormaps["tab10"](i) for i in range(k)]
    if k <= 20:
        return [colormaps["tab20"](i) for i in range(k)]
    return [colormaps["turbo"](i / max(k - 1, 1)) for i in range(k)]


def cluster_members(labels: np.ndarray, silhouettes: np.ndarray | None, *, per_cluster: int = 10,
                    seed: int = 0) -> dict:
    """The members a cluster grid shows: per cluster, its best- and worst-fitting and some random ones.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Cluster numbers.
    silhouettes : ndarray of shape (n_samples,) or None
        Per-sample silhouettes, in the order of ``labels``; None gives the random members only.
    per_cluster : int, default=10
        Members per row.
    seed : int, default=0
        Seeds the choice of the random members.

    Returns
    -------
    dict
        Cluster number -> ``{"fits best": rows, "random members": rows, "fits worst": rows}``
        (row indices into ``labels``; without ``silhouettes``, "random members" alone).
        "fits best" runs from the highest silhouette down, "fits worst" from the
        lowest up; equal silhouettes keep the order of the rows, so the choice is
        the same on every run.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = {}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rows = {}
        random = rng.choice(members, size=min(per_cluster, len(members)), replace=False)
        if silhouettes is not None:
            fit = np.asarray(silhouettes)[members]
            rows["fits best"] = members[np.argsort(-fit, kind="stable")][:per_cluster]
            rows["random members"] = random
            rows["fits worst"] = members[np.argsort(fit, kind="stable")][:per_cluster]
        else:
            rows["random members"] = random
        out[c] = rows
    return out


def plot_cluster_grid(images: np.ndarray, labels: np.ndarray, path: Path, *, per_cluster: int | None = None,
                      title: str = "", seed: int = 0, silhouettes: np.ndarray | None = None) -> Path:
    """Members of each cluster, one row of images per kind of member, with the cluster's size.

    Without ``silhouettes``, one row of random members per cluster. With them,
    three rows per cluster: the members that fit it best (highest silhouette),
    random members, and the members that fit it worst (lowest silhouette): what
    the cluster is about, and what it gathered by mistake.

    Parameters
    ----------
    images : ndarray of shape (n_samples, h, w[, 3])
        The images, uint8 or in [0, 1].
    labels : ndarray of shape (n_samples,)
        Cluster numbers.
    path : path-like
        The PNG file.
    per_cluster : int, optional
        Images per row: 10 for random members alone, 8 with three rows (the
        images of a photograph set hardly compress, and the report has a size
        to keep).
    title : str, optional
    seed : int, default=0
        Seeds the choice of the random members.
    silhouettes : ndarray of shape (n_samples,), optional
        Per-sample silhouettes, in the order of ``labels``.

    Returns
    -------
    Path
    """
    import textwrap

    if per_cluster is None:
        per_cluster = 10 if silhouettes is None else 8
    members = cluster_members(labels, silhouettes, per_cluster=per_cluster, seed=seed)
    kinds = list(next(iter(members.values())))
    sizes = {c: int(np.sum(labels == c)) for c in members}
    h, pad = images.shape[1], 2
    # A white strip between clusters where each has several rows, so the blocks read apart.
    strip = 3 * pad if len(kinds) > 1 else 0
    blocks, centers, top = [], [], 0
    for c, rows in members.items():
        tiles = []
        for kind in kinds:
            tiles += [images[p] for p in rows[kind]] + [None] * (per_cluster - len(rows[kind]))
        block = _montage(tiles, len(kinds), per_cluster, pad=pad)
        if blocks and strip:
            blocks.append(np.ones((strip, block.shape[1], 3)))
            top += strip
        blocks.append(block)
        centers.append([top + pad + r * (h + pad) + h / 2 for r in range(len(kinds))])
        top += block.shape[0]
    canvas = np.concatenate(blocks)
    # Each image pixel becomes an exact square of screen pixels (about 68 per row of images):
    # crisp, and a whole-pixel repeat costs the PNG little.
    zoom = max(1, round(68 / (h + pad)))
    dpi = 110
    left, right, top, bottom = (120, 80, 40, 6) if len(kinds) > 1 else (170, 6, 40, 6)  # screen pixels
    width, height = canvas.shape[1] * zoom, canvas.shape[0] * zoom
    fig_w, fig_h = width + left + right, height + top + bottom
    fig = _figure(figsize=(fig_w / dpi, fig_h / dpi))
    ax = fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
    ax.imshow(canvas, interpolation="nearest", aspect="auto")
    if len(kinds) > 1:
        ax.set_yticks([y for rows in centers for y in rows])
        ax.set_yticklabels(kinds * len(members), fontsize=7)
        # The cluster of each block of rows goes on the right, so the rows' kinds stay plain on the left.
        beside = ax.get_yaxis_transform()  # x in axes fractions, y in image rows
        for c, rows in zip(members, centers):
            ax.text(1 + 6 / width, rows[len(rows) // 2], f"cluster {c}\n(n={sizes[c]})", transform=beside,
                    fontsize=8, va="center", ha="left")
    else:
        ax.set_yticks([rows[0] for rows in centers])
        ax.set_yticklabels([f"cluster {c}  (n={sizes[c]})" for c in members], fontsize=8)
    ax.set_xticks([])
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    fig.suptitle(textwrap.fill(title or "Sample images per cluster", width=max(30, fig_w // 7)),
                 y=1 - 4 / fig_h, va="top", fontsize=9)
    return _save(fig, path, crop=False)


def plot_silhouette(silhouettes: np.ndarray, labels: np.ndarray, path: Path, *, title: str = "") -> Path:
    """Rousseeuw's silhouette plot: a band per cluster of its samples' silhouettes, sorted, and the mean.

    Parameters
    ----------
    silhouettes : ndarray of shape (n_samples,)
        Per-sample silhouettes.
    labels : ndarray of shape (n_samples,)
        Cluster numbers (0 to k - 1), in the order of ``silhouettes``.
    path : path-like
        The PNG file.
    title : str, optional

    Returns
    -------
    Path
    """
    s = np.asarray(silhouettes, dtype=np.float64)
    labels = np.asarray(labels)
    clusters = np.unique(labels)
    colors = _cluster_colors(int(clusters.max()) + 1)
    gap = max(len(s) // 100, 2)  # white space between bands, in samples
    fig, ax = _subplots(figsize=(6.4, 0.45 * len(clusters) + 1.6))
    y, ticks, tick_labels = 0, [], []
    for c in clusters:
        band = np.sort(s[labels == c])[::-1]  # widest on top, as Rousseeuw drew it
        ys = y + np.arange(len(band))
        ax.fill_betweenx(ys, 0, band, color=colors[c], linewidth=0, step="post")
        ticks.append(y + len(band) / 2)
        tick_labels.append(f"cluster {c}  (n={len(band)}, mean {band.mean():.3f})")
        y += len(band) + gap
    mean = float(s.mean())
    ax.axvline(mean, color="black", ls="--", lw=1.2, label=f"mean silhouette {mean:.4f}")
    ax.axvline(0, color="#888", lw=0.8)
    ax.set_ylim(y - gap, 0)  # the first cluster on top, in the order of the member grids
    ax.set_yticks(ticks)
    ax.set_yticklabels(tick_labels, fontsize=8)
    ax.tick_params(axis="y", length=0)
    low, high = min(float(s.min()), -0.05), max(float(s.max()), 0.05)
    ax.set_xlim(low - 0.02 * (high - low), high + 0.02 * (high - low))
    ax.set_xlabel("silhouette of each sample: (b − a) / max(a, b)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "Silhouette per cluster", fontsize=10)
    return _save(fig, path, colors=256)


# -- maps ---------------------------------------------------------------------------------

#: How many points of a feature set its map shows (a sample drawn with :data:`MAP_SEED`).
#: t-SNE's time grows a little faster than the points: the default run's two maps
#: (pixels and codes of the 10,000 test images) take about 10 s together with
#: 2,000 points, 12 s with 2,500 and 17 s with 3,000, on one core of a 2-core machine.
MAP_POINTS = 2000
#: Seeds the sample of a map's points and its t-SNE.
MAP_SEED = 0
#: Dimensions kept by the PCA that comes before t-SNE, as is usual.
MAP_PCA_DIMS = 50
#: t-SNE iterations, the first 250 with early exaggeration.
MAP_ITERATIONS = 500


def _top_components(X: np.ndarray, dims: int) -> np.ndarray:
    """``X`` (centred, float64) projected on its ``dims`` leading principal axes, each with a fixed sign."""
    from scipy.linalg import eigh

    d = X.shape[1]
    # The covariance is d x d, cheaper to decompose than the sample for the
    # n >= d samples maps use; eigh returns the axes in ascending order.
    _, axes = eigh(X.T @ X, subset_by_index=[d - dims, d - 1])
    axes = axes[:, ::-1]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(dims)])
    return X @ axes


def feature_map(X: np.ndarray, *, n_points: int = MAP_POINTS, seed: int = MAP_SEED
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """A 2-D t-SNE map of a sample of the rows of ``X``.

    The sample is ``n_points`` rows drawn without replacement by
    ``numpy.random.default_rng(seed)`` (all rows when there are fewer), reduced
    by PCA to :data:`MAP_PCA_DIMS` dimensions, then embedded by scikit-learn's
    Barnes-Hut t-SNE (PCA start, ``random_state=seed``, :data:`MAP_ITERATIONS`
    iterations). BLAS and OpenMP are held to one thread meanwhile: t-SNE adds
    up over the points in OpenMP threads, in an order that depends on how many
    there are; on one, the map is the same bits whatever threads the process has.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_points : int, default=MAP_POINTS
    seed : int, default=MAP_SEED

    Returns
    -------
    (rows, coordinates) or None
        ``rows`` (int64, ascending) are the sampled row indices into ``X`` and
        ``coordinates`` (float32, ``(len(rows), 2)``) their places on the map.
        None when the sample has no spread (every row the same), which has no map.
    """
    import inspect

    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = X.shape[0]
    rows = (np.arange(n) if n <= n_points
            else np.sort(np.random.default_rng(seed).choice(n, size=n_points, replace=False)))
    rows = rows.astype(np.int64)
    sample = np.asarray(X[rows], dtype=np.float64)
    sample -= sample.mean(axis=0)
    if len(rows) < 3 or not np.any(sample):
        return None
    # scikit-learn renamed n_iter to max_iter in 1.5 and removed n_iter in 1.7.
    iterations = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(rows) - 1) / 3), init="pca", learning_rate="auto",
                method="barnes_hut", angle=0.5, random_state=seed, **{iterations: MAP_ITERATIONS})
    with threadpool_limits(limits=1):
        if sample.shape[1] > MAP_PCA_DIMS:
            sample = _top_components(sample, MAP_PCA_DIMS)
        coordinates = tsne.fit_transform(sample)
    return rows, coordinates.astype(np.float32)


def save_feature_map(folder: Path, X: np.ndarray, **kwargs) -> bool:
    """Write :func:`feature_map` of ``X`` as ``folder/map.npy`` (coordinates) and ``folder/map_rows.npy``.

    Returns False where ``X`` has no map, and then removes an older run's map from
    ``folder``, which would not belong to these points. Keyword arguments go to
    :func:`feature_map`.
    """
    from ._io import save_array

    found = feature_map(X, **kwargs)
    if found is None:
        for old in ("map.npy", "map_rows.npy"):
            (Path(folder) / old).unlink(missing_ok=True)
        return False
    rows, coordinates = found
    save_array(Path(folder) / "map_rows.npy", rows)
    save_array(Path(folder) / "map.npy", coordinates)
    return True


def _spread_out(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` points far apart (greedy farthest-point choice from the one nearest the middle)."""
    chosen = [int(np.argmin(((points - np.median(points, axis=0)) ** 2).sum(axis=1)))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    while len(chosen) < min(count, len(points)):
        chosen.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, ((points - points[chosen[-1]]) ** 2).sum(axis=1))
    return np.array(chosen)


def plot_map(coordinates: np.ndarray, labels: np.ndarray, path: Path, *, images: np.ndarray | None = None,
             n_thumbnails: int = 16, title: str = "") -> Path:
    """A map of a feature set: a point per sampled sample, coloured by its cluster, with a few thumbnails.

    Parameters
    ----------
    coordinates : ndarray of shape (n_points, 2)
        The map's places, as :func:`feature_map` gives them.
    labels : ndarray of shape (n_points,)
        The cluster of each point.
    path : path-like
        The PNG file.
    images : ndarray of shape (n_points, h, w[, 3]), optional
        Each point's image; ``n_thumbnails`` of them, far apart, are drawn on the map.
    n_thumbnails : int, default=16
    title : str, optional

    Returns
    -------
    Path
    """
    from matplotlib.lines import Line2D
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    coordinates = np.asarray(coordinates, dtype=np.float64)
    labels = np.asarray(labels)
    clusters = np.unique(labels)
    colors = _cluster_colors(int(clusters.max()) + 1)
    fig, ax = _subplots(figsize=(7.2, 6.0))
    ax.scatter(coordinates[:, 0], coordinates[:, 1], s=5, c=[colors[c] for c in labels], linewidths=0,
               alpha=0.85)
    if images is not None and n_thumbnails:
        zoom = 0.3 * 72 / images.shape[1]  # about a third of an inch, whatever the image's size
        for i in _spread_out(coordinates, n_thumbnails):
            box = OffsetImage(_rgb(images[i]), zoom=zoom, interpolation="nearest")
            ax.add_artist(AnnotationBbox(box, coordinates[i], frameon=True, pad=0.1,
                                         bboxprops={"edgecolor": colors[labels[i]], "linewidth": 1.5}))
    handles = [Line2D([], [], ls="", marker="o", color=colors[c], label=str(c)) for c in clusters]
    ax.legend(handles=handles, title="cluster", fontsize=7, title_fontsize=8, loc="center left",
              bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "Map of the feature set (t-SNE)", fontsize=10)
    # A palette keeps the thumbnails' look and cuts the scatter's anti-aliased colours to a third of the bytes.
    return _save(fig, path, colors=256)


# -- HTML -------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.35em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.92em}
.note{color:#555;font-size:.92em}.warning{background:#fff4e5;border-left:4px solid #e69500;padding:.5em .8em}
.alert{background:#fdecea;border:2px solid #c62828;color:#7f1010;padding:.7em 1em;font-size:1.05em}
tr.not-meaningful td{color:#999;text-decoration:line-through}tr.not-meaningful td:first-child{text-decoration:none;color:#c62828}
code,pre{background:#f6f6f6;padding:.1em .3em;border-radius:3px}
pre{padding:.8em;overflow-x:auto;font-size:.85em}
"""


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def metrics_rows(results: dict) -> list[dict]:
    """One row per feature set: the numbers the report's main table shows.

    A feature set without metrics (None, or a dictionary of Nones for codes that
    fell into one cluster) gets a row of dashes, not an error.
    """
    rows = []
    for name, fs in results.get("feature_sets", {}).items():
        m = fs.get("metrics") or {}
        study = fs.get("study") or {}
        rows.append({
            "feature_set": name,
            "description": fs.get("description", ""),
            "n_features": fs.get("n_features"),
            "silhouette": m.get("silhouette"),
            "study_silhouette": study.get("silhouette"),
            "dunn": m.get("dunn"),
            "study_dunn": study.get("dunn"),
            "iterations": fs["kmeans"]["n_iter"],
            "inertia": fs["kmeans"]["inertia"],
            "meaningful": fs.get("meaningful", True),
        })
    return rows


def external_rows(results: dict) -> list[dict]:
    """Accuracy, NMI, ARI and purity per feature set, where the true classes are known."""
    return [{"feature_set": name, "description": fs.get("description", name),
             "meaningful": fs.get("meaningful", True), **fs["external"]}
            for name, fs in results.get("feature_sets", {}).items() if fs.get("external")]


def collapse_rows(results: dict) -> list[dict]:
    """One row per trained autoencoder: its folder, input colour and collapse verdict (None if not measured)."""
    return [{"folder": folder, "color": trained.get("config", {}).get("color"),
             "seed": trained.get("config", {}).get("seed"), "init": trained.get("config", {}).get("init"),
             "collapse": trained.get("collapse")}
            for folder, trained in results.get("autoencoders", {}).items()]


_NOT_MEANINGFUL = " — not meaningful: the autoencoder collapsed"


def _row_attrs(row: dict) -> str:
    """The attributes of a table row of one feature set; a collapsed autoencoder's codes are marked."""
    attrs = f"data-feature-set='{html.escape(row['feature_set'])}'"
    return attrs if row.get("meaningful", True) else attrs + " class='not-meaningful' data-meaningful='false'"


def _row_label(row: dict) -> str:
    label = html.escape(row["description"] or row["feature_set"])
    return label if row.get("meaningful", True) else f"{label}<strong>{html.escape(_NOT_MEANINGFUL)}</strong>"


def _collapse_html(results: dict) -> list[str]:
    """A line per autoencoder on its code (constant features, reconstruction, verdict), and the rule."""
    rows = collapse_rows(results)
    if not rows:
        return []
    parts = ["<ul id='collapse'>"]
    rule = None
    for r in rows:
        c = r["collapse"]
        if not c:
            text = f"Autoencoder ({r['color']} input): collapse not measured (a run from an older aeclust)."
            parts.append(f"<li data-autoencoder='{html.escape(r['folder'])}'>{html.escape(text)}</li>")
            continue
        rule = c["rule"]
        ratio = "—" if c["mse_ratio"] is None else f"{c['mse_ratio']:.2f}"
        text = (f"Autoencoder ({r['color']} input, seed {r['seed']}, {r['init']} initialisation): "
                f"{c['constant_code_features']} of {c['n_code_features']} code features constant on the "
                f"{c.get('n_images', '?')} encoded images; reconstruction MSE {c['reconstruction_mse']:.5f}, "
                f"{ratio} x the mean image's {c['mean_image_mse']:.5f}; ")
        verdict = "<strong>collapsed</strong>" if c["collapsed"] else "not collapsed"
        parts.append(f"<li data-autoencoder='{html.escape(r['folder'])}' "
                     f"data-collapsed='{str(c['collapsed']).lower()}'>{html.escape(text)}{verdict}.</li>")
    parts.append("</ul>")
    if rule:
        parts.append(f"<p class='note'>Rule: {html.escape(rule)}.</p>")
    return parts


def _page_head(title: str) -> list[str]:
    """The start of a report page, up to its title line."""
    return ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<title>aeclust report — {html.escape(title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>aeclust report</h1><p class='note'>{html.escape(title)}</p>"]


def _page_tail(results: dict) -> list[str]:
    """The end of a report page: configuration, timings and versions."""
    details = {k: results.get(k) for k in ("config", "timings", "versions") if k in results}
    return ["<h2>Configuration, timings and versions</h2>",
            f"<pre>{html.escape(json.dumps(details, indent=2))}</pre>", "</body></html>"]


def render_html(results: dict, sections: list[tuple[str, list[tuple[str, Path, str]]]]) -> str:
    """The report page: metrics beside the study's numbers, then each section's figures, then details.

    ``sections`` is a list of ``(heading, [(figure_id, png_path, caption), ...])``, each
    optionally with a third item, a note shown under the heading (a section with a
    note and no figures still shows the note).
    """
    title = results.get("title", "")
    parts = _page_head(title)

    for fs in results.get("feature_sets", {}).values():
        loud = not fs.get("meaningful", True)
        for warning in fs.get("warnings", []):
            parts.append(f"<p class='{'alert' if loud else 'warning'}'><strong>{'WARNING' if loud else 'Warning'}:"
                         f"</strong> {html.escape(warning)}</p>")
    parts.append("<h2>Cluster quality</h2>")
    parts.append("<table id='metrics'><thead><tr><th>features</th><th>dims</th>"
                 "<th>silhouette</th><th>study</th><th>Dunn</th><th>study</th>"
                 "<th>k-means iterations</th><th>inertia</th></tr></thead><tbody>")
    for r in metrics_rows(results):
        parts.append(
            f"<tr {_row_attrs(r)}>"
            f"<td>{_row_label(r)}</td><td>{_fmt(r['n_features'])}</td>"
            f"<td class='silhouette'>{_fmt(r['silhouette'])}</td><td>{_fmt(r['study_silhouette'])}</td>"
            f"<td class='dunn'>{_fmt(r['dunn'])}</td><td>{_fmt(r['study_dunn'])}</td>"
            f"<td>{_fmt(r['iterations'])}</td><td>{r['inertia']:.6g}</td></tr>")
    parts.append("</tbody></table>")
    parts.append("<p class='note'>Silhouette: mean over all samples of (b − a) / max(a, b), Euclidean, exact. "
                 "Dunn: smallest distance between two points of different clusters / largest distance "
                 "between two points of the same cluster, exact. k = "
                 f"{_fmt(results.get('config', {}).get('k'))}, the same k-means for every feature set. "
                 "The study's numbers stand beside the reading they belong to: part 1 on the pixels of the "
                 "CIFAR-10 test set, part 2 on the codes of the training set.</p>")
    collapse = _collapse_html(results)
    if collapse:
        parts.append("<h2>Autoencoder code</h2>")
        parts.extend(collapse)

    ext = external_rows(results)
    if ext:
        from .external import LITERATURE, LITERATURE_DATASET

        parts.append("<h2>Clusters against the true classes</h2>")
        parts.append("<table id='external'><thead><tr><th>features</th><th>accuracy</th><th>NMI</th>"
                     "<th>ARI</th><th>purity</th></tr></thead><tbody>")
        for r in ext:
            parts.append(f"<tr {_row_attrs(r)}>"
                         f"<td>{_row_label(r)}</td><td class='acc'>{_fmt(r['acc'])}</td>"
                         f"<td class='nmi'>{_fmt(r['nmi'])}</td><td class='ari'>{_fmt(r['ari'])}</td>"
                         f"<td class='purity'>{_fmt(r['purity'])}</td></tr>")
        if results.get("config", {}).get("dataset") in ("cifar10", "cifar-10"):
            for row in LITERATURE:
                parts.append(f"<tr class='literature'><td>{html.escape(row['method'])} (literature)</td>"
                             f"<td>{_fmt(row['acc'], 3)}</td><td>{_fmt(row['nmi'], 3)}</td>"
                             f"<td>{_fmt(row['ari'], 3)}</td><td>—</td></tr>")
        parts.append("</tbody></table>")
        note = ("Accuracy: the best one-to-one matching of clusters to classes (Hungarian method). "
                "NMI and ARI as in scikit-learn. Purity: the share of samples in their cluster's majority class.")
        if results.get("config", {}).get("dataset") in ("cifar10", "cifar-10"):
            note += (f" Literature rows: {LITERATURE_DATASET}; each row here clusters the images its name says, "
                     "so the comparison is indicative.")
        parts.append(f"<p class='note'>{html.escape(note)}</p>")

    for heading, figures, *note in sections:
        note = note[0] if note else ""
        if not figures and not note:
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if note:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        for fig_id, path, caption in figures:
            parts.append(f"<figure id='fig-{html.escape(fig_id)}'><img alt='{html.escape(caption)}' "
                         f"src='{_data_uri(path)}'><figcaption>{html.escape(caption)}</figcaption></figure>")

    parts += _page_tail(results)
    return "\n".join(parts)


def write_report(run_dir: Path, results: dict, sections) -> Path:
    """Write ``report.html`` into ``run_dir`` atomically and return its path."""
    path = Path(run_dir) / "report.html"
    write_text(path, render_html(results, sections))
    return path


def _silhouettes(folder: Path, fs: dict, labels: np.ndarray) -> np.ndarray | None:
    """The per-sample silhouettes the pipeline saved for one feature set, or None.

    None where there are none (a run from an older aeclust, codes in one
    cluster) or where they do not belong to these labels.
    """
    path = folder / "silhouette.npy"
    if not path.is_file() or (fs.get("metrics") or {}).get("silhouette") is None:
        return None
    s = np.load(path)
    return s if s.shape == labels.shape else None


def _feature_map(folder: Path, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The map the pipeline saved for one feature set (rows, coordinates), or None."""
    if not (folder / "map.npy").is_file() or not (folder / "map_rows.npy").is_file():
        return None
    rows, coordinates = np.load(folder / "map_rows.npy"), np.load(folder / "map.npy")
    if len(rows) != len(coordinates) or (len(rows) and rows.max() >= len(labels)):
        return None
    return rows, coordinates


def build_run_report(run_dir: Path, results: dict, *, models: dict, images: np.ndarray | None,
                     labels: np.ndarray | None, main_color: str = "gray", n_examples: int = 10,
                     train=None) -> Path:
    """All figures of an ``aeclust run`` and the page that shows them.

    Reads what the pipeline saved in the run directory for each feature set:
    the cluster labels, the per-sample silhouettes (``silhouette.npy``) and the
    map (``map.npy``, ``map_rows.npy``); a figure whose file is missing is left
    out (the map with a note saying so).
    ``models`` maps an input colour to its trained autoencoder; ``images`` are
    the uint8 images that were clustered (None for a feature matrix) and
    ``labels`` their true classes (None when unknown); ``train`` is the
    :class:`~aeclust.datasets.ImageSet` of the training images, whose images and
    classes go with a feature set that clustered them (``"split": "train"``).
    """
    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    autoencoder_figs = []
    for folder, trained in results.get("autoencoders", {}).items():
        if trained["history"]:
            name = "loss_curve" if folder == "autoencoder" else f"loss_curve_{folder.split('-')[-1]}"
            color = trained["config"]["color"]
            autoencoder_figs.append((name, plot_loss_curve(trained["history"], fig_dir / f"{name}.png",
                                                           n_train=results["config"].get("n_train"),
                                                           n_test=results["config"].get("n_test")
                                                           if trained["history"][-1].get("test_loss") is not None
                                                           else None),
                                     f"Reconstruction loss (MSE) per epoch, {color} input"))
    model = models.get(main_color)
    if model is not None and images is not None:
        import torch

        from .autoencoder import images_to_tensor

        with torch.no_grad():
            model.eval()
            x = images_to_tensor(images[:n_examples], model.config.color)
            recon = model(x).permute(0, 2, 3, 1).numpy()
            codes = model.encode(x[:5]).numpy()
        seen = x.permute(0, 2, 3, 1).numpy()  # what the model saw: grayscale for a gray model
        autoencoder_figs.append(("reconstructions", plot_reconstructions(seen, recon, fig_dir / "reconstructions.png"),
                                 "Images (top) and the autoencoder's reconstructions (bottom)"))
        autoencoder_figs.append(("codes", plot_codes(seen[:5], codes, fig_dir / "codes.png"),
                                 f"The {'x'.join(map(str, codes.shape[1:]))} codes of five images, "
                                 f"each channel shown as an image"))

    # Learned features (aeclust.features) leave their training history beside their weights.
    learned_figs = []
    for name, fs in results["feature_sets"].items():
        history_path = run_dir / name / "model" / "history.json"
        if history_path.is_file():
            history = json.loads(history_path.read_text())
            if history and all("loss" in h for h in history):
                path = plot_loss_curve(history, fig_dir / f"loss_curve_{name}.png", key="loss",
                                       title=f"Training loss: {name}", ylabel="training loss")
                learned_figs.append((f"loss-{name}", path, f"Training loss per epoch of {fs['description']}"))

    cluster_figs, confusion_figs, silhouette_figs, map_figs, missing_maps = [], [], [], [], []
    class_names = results.get("config", {}).get("class_names")
    by_split = {"test": (images, labels), "train": (images, labels) if train is None else (train.images, train.labels)}
    for name, fs in results["feature_sets"].items():
        images, labels = by_split[fs.get("split", "test")]
        folder = run_dir / name
        predicted = np.load(folder / "labels.npy")
        silhouettes = _silhouettes(folder, fs, predicted)
        if silhouettes is not None:
            path = plot_silhouette(silhouettes, predicted, fig_dir / f"silhouette_{name}.png",
                                   title=f"Silhouette per cluster: {fs['description']}")
            silhouette_figs.append((f"silhouette-{name}", path,
                                    f"Silhouette of every sample, sorted within its cluster, k-means on "
                                    f"{fs['description']}; dashed: the mean"))
        if images is not None:
            path = plot_cluster_grid(images, predicted, fig_dir / f"clusters_{name}.png", silhouettes=silhouettes,
                                     title=f"Clusters of {fs['description']}: "
                                           + ("best- and worst-fitting and random members" if silhouettes is not None
                                              else "random members per cluster"))
            caption = (f"Per cluster of {fs['description']}: the members that fit it best (highest silhouette), "
                       "random members, and those that fit it worst (lowest silhouette)" if silhouettes is not None
                       else f"Sample images per cluster, k-means on {fs['description']}")
            cluster_figs.append((f"clusters-{name}", path, caption))
        found = _feature_map(folder, predicted)
        if found is not None:
            rows, coordinates = found
            path = plot_map(coordinates, predicted[rows], fig_dir / f"map_{name}.png",
                            images=None if images is None else images[rows],
                            title=f"Map of {fs['description']} (t-SNE), coloured by cluster")
            pca = f" (after PCA to {MAP_PCA_DIMS} dimensions)" if (fs.get("n_features") or 0) > MAP_PCA_DIMS else ""
            map_figs.append((f"map-{name}", path,
                             f"t-SNE of {len(rows):,} of the {len(predicted):,} samples of {fs['description']}{pca}, "
                             "coloured by k-means cluster; points near each other are near in the feature space, "
                             "distances between groups mean little"))
        else:
            missing_maps.append(name)
        if labels is not None:
            from .external import confusion, plot_confusion

            names = class_names or [str(c) for c in np.unique(labels)]
            matrix = confusion(labels, predicted, n_classes=len(names))
            path = plot_confusion(matrix, names, fig_dir / f"confusion_{name}.png",
                                  title=f"Clusters against classes: {fs['description']}")
            confusion_figs.append((f"confusion-{name}", path,
                                   f"How the true classes spread over the clusters of {fs['description']}"))

    map_note = (f"No map of {', '.join(missing_maps)}: the run holds no map.npy for "
                f"{'it' if len(missing_maps) == 1 else 'them'} (maps are drawn with 'aeclust run --map'; "
                "features without spread have none)." if missing_maps else "")
    sections = [("Autoencoder", autoencoder_figs), ("Learned features", learned_figs),
                ("Silhouette per cluster", silhouette_figs), ("Clusters", cluster_figs),
                ("Maps", map_figs, map_note), ("Clusters against classes", confusion_figs)]
    return write_report(run_dir, results, sections)


# -----------------------------------------------------------------------------
# many seeds (aeclust run --seeds)

_SEED_METRICS = (("silhouette", "silhouette"), ("dunn", "Dunn's index"))


def plot_seed_strips(results: dict, path: Path) -> Path:
    """One panel per metric: a point per seed for each feature set, its mean, the study's number.

    Seeds whose numbers are not meaningful (a collapsed autoencoder) are drawn as
    red crosses and left out of the mean.
    """
    names = list(results.get("summary", {}))
    rows = results.get("per_seed", [])
    fig, axes = _subplots(1, len(_SEED_METRICS), figsize=(4.2 * len(_SEED_METRICS), 3.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], _SEED_METRICS):
        for x, name in enumerate(names):
            cells = [(r["seed"], r["feature_sets"][name]) for r in rows if name in r["feature_sets"]]
            ok = [c[key] for _, c in cells if c["meaningful"] and c[key] is not None]
            bad = [c[key] for _, c in cells if not c["meaningful"] and c[key] is not None]
            spread = np.linspace(-0.18, 0.18, max(len(cells), 1))
            ax.scatter(x + spread[: len(ok)], ok, s=22, color="tab:blue", zorder=3,
                       label="a seed" if x == 0 else None)
            if bad:
                ax.scatter(x + spread[len(ok): len(ok) + len(bad)], bad, s=30, marker="x", color="tab:red",
                           zorder=3, label="collapsed (not meaningful)")
            if ok:
                ax.plot([x - 0.3, x + 0.3], [float(np.mean(ok))] * 2, color="black", lw=1.2,
                        label="mean" if x == 0 else None)
            study = results.get("study", {}).get(name, {}).get(key)
            if study is not None:
                ax.plot([x - 0.35, x + 0.35], [study, study], color="tab:orange", lw=2, ls="--",
                        label="the study" if x == 0 or "codes" in name else None)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_title(f"{label} per seed")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def _mean_sd(stats: dict | None) -> str:
    if not stats:
        return "—"
    return f"{stats['mean']:.4f} ± {stats['sd']:.4f}"


def render_seeds_html(results: dict, figure: Path) -> str:
    """The page of a many-seed run: summary over the seeds, the strip plot, a row per seed."""
    title = results.get("title", "")
    names = list(results.get("summary", {}))
    study = results.get("study", {})
    parts = _page_head(title)
    collapsed = [(r["seed"], folder) for r in results.get("per_seed", [])
                 for folder, c in r.get("collapsed", {}).items() if c.get("collapsed")]
    for seed, folder in collapsed:
        parts.append(f"<p class='alert'><strong>WARNING:</strong> the {html.escape(folder)} of seed {seed} "
                     "collapsed; its codes' numbers are not meaningful and are left out of the means.</p>")
    parts.append("<h2>Over the seeds</h2>")
    parts.append("<table id='seed-summary'><thead><tr><th>features</th><th>seeds</th><th>silhouette</th>"
                 "<th>study</th><th>Dunn</th><th>study</th><th>accuracy</th><th>NMI</th></tr></thead><tbody>")
    for name in names:
        s = results["summary"][name]
        left_out = f" ({s['n_not_meaningful']} left out)" if s.get("n_not_meaningful") else ""
        parts.append(f"<tr><td>{html.escape(name)}</td><td>{s['n_seeds']}{left_out}</td>"
                     f"<td class='silhouette'>{_mean_sd(s.get('silhouette'))}</td>"
                     f"<td>{_fmt(study.get(name, {}).get('silhouette'))}</td>"
                     f"<td class='dunn'>{_mean_sd(s.get('dunn'))}</td><td>{_fmt(study.get(name, {}).get('dunn'))}</td>"
                     f"<td>{_mean_sd(s.get('acc'))}</td><td>{_mean_sd(s.get('nmi'))}</td></tr>")
    parts.append("</tbody></table>")
    parts.append("<p class='note'>Mean ± sample standard deviation over the seeds whose numbers are meaningful. "
                 "Each seed sets the k-means start and the autoencoder's weights and shuffling.</p>")
    parts.append(f"<figure id='fig-seeds'><img alt='silhouette and Dunn per seed' src='{_data_uri(figure)}'>"
                 "<figcaption>One point per seed; black: the mean"
                 + ("; dashed orange: the study's number" if study else "")
                 + ("; red crosses: collapsed, left out of the mean" if collapsed else "")
                 + ".</figcaption></figure>")
    parts.append("<h2>Per seed</h2>")
    head = "".join(f"<th>{html.escape(n)} silhouette</th><th>{html.escape(n)} Dunn</th>" for n in names)
    parts.append(f"<table id='per-seed'><thead><tr><th>seed</th>{head}<th>report</th></tr></thead><tbody>")
    folders = results.get("folders", {})
    for r in results.get("per_seed", []):
        cells = ""
        for n in names:
            c = r["feature_sets"].get(n)
            style = "" if c is None or c["meaningful"] else " class='not-meaningful-cell' style='color:#c62828'"
            cells += (f"<td{style}>{_fmt(None if c is None else c['silhouette'])}</td>"
                      f"<td{style}>{_fmt(None if c is None else c['dunn'])}</td>")
        folder = folders.get(str(r["seed"]), f"seed-{r['seed']}")
        parts.append(f"<tr><td>{r['seed']}</td>{cells}"
                     f"<td><a href='{html.escape(folder)}/report.html'>{html.escape(folder)}/</a></td></tr>")
    parts.append("</tbody></table>")
    parts += _page_tail(results)
    return "\n".join(parts)


def build_seeds_report(run_dir: Path, results: dict) -> Path:
    """``figures/seeds.png`` and ``report.html`` of a many-seed run, each written atomically."""
    run_dir = Path(run_dir)
    figure = plot_seed_strips(results, run_dir / "figures" / "seeds.png")
    path = run_dir / "report.html"
    write_text(path, render_seeds_html(results, figure))
    return path
