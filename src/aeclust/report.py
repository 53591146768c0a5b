"""Figures (PNG, matplotlib) and the self-contained HTML report of a run.

Every figure is written as a PNG file in ``<run>/figures/`` and embedded in
``<run>/report.html`` as a base64 data URI, so the page opens anywhere, alone.
The page's numbers are read from the same dictionary that becomes
``results.json``; nothing is computed twice.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from ._io import write_text
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
        img = np.asarray(img, dtype=np.float64)
        if img.max(initial=0) > 1.0:
            img = img / 255.0
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return canvas


def plot_cluster_grid(images: np.ndarray, labels: np.ndarray, path: Path, *, per_cluster: int = 10,
                      title: str = "", seed: int = 0) -> Path:
    """One row per cluster: a random sample of its images, with the cluster's size."""
    clusters = np.unique(labels)
    rng = np.random.default_rng(seed)
    tiles = []
    for c in clusters:
        members = np.flatnonzero(labels == c)
        pick = rng.choice(members, size=min(per_cluster, len(members)), replace=False)
        tiles += [images[p] for p in pick] + [None] * (per_cluster - len(pick))
    canvas = _montage(tiles, len(clusters), per_cluster)
    fig, ax = _subplots(figsize=(0.75 * per_cluster + 1.2, 0.75 * len(clusters) + 0.6))
    ax.imshow(canvas, interpolation="nearest")
    h = images.shape[1] + 2
    ax.set_yticks([2 + h * r + (h - 2) / 2 for r in range(len(clusters))])
    ax.set_yticklabels([f"cluster {c}  (n={int(np.sum(labels == c))})" for c in clusters], fontsize=8)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or "Sample images per cluster", fontsize=10)
    return _save(fig, path)


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

    ``sections`` is a list of ``(heading, [(figure_id, png_path, caption), ...])``.
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
                 "The study's numbers are those it reports for the CIFAR-10 test set.</p>")
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
            note += (f" Literature rows: {LITERATURE_DATASET}; this run clusters the 10,000 test images, "
                     "so the comparison is indicative.")
        parts.append(f"<p class='note'>{html.escape(note)}</p>")

    for heading, figures in sections:
        if not figures:
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>")
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


def build_run_report(run_dir: Path, results: dict, *, models: dict, images: np.ndarray | None,
                     labels: np.ndarray | None, main_color: str = "gray", n_examples: int = 10) -> Path:
    """All figures of an ``aeclust run`` and the page that shows them.

    Reads the cluster labels that the pipeline saved in the run directory.
    ``models`` maps an input colour to its trained autoencoder; ``images`` are
    the uint8 images that were clustered (None for a feature matrix) and
    ``labels`` their true classes (None when unknown).
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

    cluster_figs, confusion_figs = [], []
    class_names = results.get("config", {}).get("class_names")
    for name, fs in results["feature_sets"].items():
        predicted = np.load(run_dir / name / "labels.npy")
        if images is not None:
            path = plot_cluster_grid(images, predicted, fig_dir / f"clusters_{name}.png",
                                     title=f"Clusters of {fs['description']}: random members per cluster")
            cluster_figs.append((f"clusters-{name}", path, f"Sample images per cluster, k-means on {fs['description']}"))
        if labels is not None:
            from .external import confusion, plot_confusion

            names = class_names or [str(c) for c in np.unique(labels)]
            matrix = confusion(labels, predicted, n_classes=len(names))
            path = plot_confusion(matrix, names, fig_dir / f"confusion_{name}.png",
                                  title=f"Clusters against classes: {fs['description']}")
            confusion_figs.append((f"confusion-{name}", path,
                                   f"How the true classes spread over the clusters of {fs['description']}"))

    sections = [("Autoencoder", autoencoder_figs), ("Learned features", learned_figs), ("Clusters", cluster_figs),
                ("Clusters against classes", confusion_figs)]
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
