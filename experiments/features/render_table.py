"""Render docs/features.md's tables from experiments/results/features.jsonl.

Usage: python experiments/features/render_table.py [--check]   (--check: fail if docs/features.md is out of date)
"""
import json, statistics, sys
from collections import defaultdict

from common import RESULTS, ROOT  # beside this script, which Python puts first on the path

DOC = ROOT / "docs" / "features.md"
BEGIN, END = "<!-- table:begin -->", "<!-- table:end -->"
SBEGIN, SEND = "<!-- screen:begin -->", "<!-- screen:end -->"

LITERATURE = [  # CIFAR-10, as published (all 60,000 images)
    ("Autoencoder + k-means (literature)", "0.314", "0.239", "–", "–"),
    ("DEC (literature)", "0.301", "0.257", "–", "–"),
    ("Study's autoencoder, RGB, 192-d codes (measured in the issue)", "≈0.22", "≈0.10", "–", "–"),
    ("Grayscale pixels (measured in the issue)", "0.20", "0.06", "–", "–"),
]


def ms(v):
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}"


def f3(v):
    return "–" if v is None else f"{v:.3f}"


def _simclr_default():
    from aeclust.contrastive import ContrastiveConfig

    return {k: v for k, v in ContrastiveConfig().to_dict().items() if k != "seed"}


SIMCLR_DEFAULT = _simclr_default()  # the settings of `simclr` as aeclust trains it now


def _simclr_kmeans():
    from aeclust.features import FEATURE_SETS

    return tuple(FEATURE_SETS["simclr"].kmeans)


SIMCLR_KMEANS = _simclr_kmeans()  # how `aeclust run` starts k-means on it now


def label(r):
    """A final row's name: for ``simclr``, the settings that tell its runs apart."""
    c = r["config"]
    if r.get("features") != "simclr":
        return f"`{r['variant']}`"
    parts = [f"{c['epochs']} epochs", f"temperature {c['temperature']}", f"{c.get('output', 'encoder')} output"]
    if c.get("n_clusters"):
        parts.append(f"cluster head ({c['n_clusters']})")
    # Settings added later: what the runs before them used.
    older = {"precision": "float32", "encode_crops": [], "p_solarize": 0.0}
    crops = c.get("encode_crops", older["encode_crops"])
    if crops:
        parts.append(f"encoded over {(1 + 9 * len(crops)) * (2 if c.get('mirror') else 1)} views")
    elif c.get("mirror"):
        parts.append("mirror-averaged")
    if c.get("precision", older["precision"]) != "float32":
        parts.append(c["precision"])
    if c.get("p_solarize", older["p_solarize"]):
        parts.append(f"solarised ({c['p_solarize']})")
    # Runs of the default's settings from before the faster layers (2x2 maps' convolution as a matrix product,
    # the ReLU after the max-pool): the same function, rounded otherwise, so another training.
    plain_layers = r.get("layers") == "plain"
    if plain_layers:
        parts.append("plain layers")
    # A run records the precision "auto" resolved to; either one is the default's.
    is_default = all(c.get(k, older.get(k)) == v or (k, v) == ("precision", "auto")
                     for k, v in SIMCLR_DEFAULT.items())
    if r.get("via"):
        parts.append(f"`{r['via']}`")
        # The run's k-means: rows logged before it was recorded came from one random start.
        km = tuple(r.get("kmeans", ("random", 1)))
        parts.append("k-means++ best of 10" if km == ("k-means++", 10) else
                     "one random k-means start" if km == ("random", 1) else f"k-means {km[0]} x{km[1]}")
        is_default = is_default and km == SIMCLR_KMEANS and not plain_layers
    return "`simclr`: " + ", ".join(parts) + (" (**the default**)" if is_default else "")


def minutes(s):
    return f"{statistics.mean(s) / 60:.1f}"


def cpu_minutes(rs):
    """The mean CPU minutes of the trainings, "–" where a row's run did not measure them."""
    s = [r.get("train_cpu_seconds") for r in rs]
    return "–" if None in s else minutes(s)


def main():
    rows = [json.loads(l) for l in RESULTS.read_text().splitlines() if l.strip()]
    final, screen = defaultdict(list), []
    for r in rows:
        (screen.append(r) if r.get("screen") else final[label(r)].append(r))
    out = ["| features | seeds | ACC | NMI | ARI | training, min (wall) | training, CPU min | threads | load avg |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, rs in sorted(final.items(), key=lambda kv: -statistics.mean(r["acc"] for r in kv[1])):
        load = [r[k][1] for r in rs for k in ("load_avg_before", "load_avg_after") if r.get(k)]
        out.append(
            f"| {name} | {len(rs)} | {ms([r['acc'] for r in rs])} | {ms([r['nmi'] for r in rs])} | "
            f"{ms([r['ari'] for r in rs])} | {minutes([r['train_seconds'] for r in rs])} | "
            f"{cpu_minutes(rs)} | {'/'.join(sorted({str(r['threads']) for r in rs}))} | "
            f"{f'{min(load):.1f}–{max(load):.1f}' if load else '–'} |"
        )
    for name, a, n, ari, t in LITERATURE:
        out.append(f"| {name} | – | {a} | {n} | {ari} | {t} | – | – | – |")
    sout = ["| variant | seed | ACC | NMI | ARI | training, s (wall) | notes |", "|---|---|---|---|---|---|---|"]
    for r in screen:
        note = r.get("note", "")
        if "config" in r and "epochs" in r["config"]:
            note = (note + f" epochs={r['config']['epochs']}").strip()
            if r["config"].get("n_clusters"):
                note += f", cluster head ({r['config']['n_clusters']})"
        sout.append(f"| `{r['variant']}` | {r['seed']} | {f3(r['acc'])} | {f3(r['nmi'])} | {f3(r['ari'])} | "
                    f"{r.get('train_seconds', '–')} | {note} |")
    doc = DOC.read_text()
    new = _splice(_splice(doc, BEGIN, END, "\n".join(out)), SBEGIN, SEND, "\n".join(sout))
    if "--check" in sys.argv:
        sys.exit(0 if new == doc else "docs/features.md is out of date; run experiments/features/render_table.py")
    DOC.write_text(new)


def _splice(doc, begin, end, body):
    i, j = doc.index(begin) + len(begin), doc.index(end)
    return doc[:i] + "\n" + body + "\n" + doc[j:]


if __name__ == "__main__":
    main()
