"""The paper's comparison (its Tables 8/9) on ELPV, with localisation on synthetic defects.

    python benchmarks/paper_tables.py [--cell-types mono poly] [--methods ...] [--quick] [--write]

Every method is fitted once per cell type on the protocol's training normals (DESIGN.md:
normals = probability 0, ``default_rng(0)`` shuffle, first half) and then scored on

* the protocol's **test split** (the other half of the normals vs every probability-1 cell):
  image AUROC and AP, as the paper's Tables 8/9;
* a **synthetic-defect set** built here from the *test* normals, so its masks are exact: every
  other test normal gets one pasted defect (``skcpcae.datasets.paste_defect``, strength 0.15: a dark blob, a
  bright scratch or a dark crack, in turn, at a seeded random place), the rest stay clean.
  Reported: image AUROC on that set, and, from ``skcpcae.inspection.anomaly_maps`` at the input
  size, pixel AUROC and AUPRO up to 30 % FPR (``skcpcae.metrics``). A method without maps of
  its own (the deep-feature comparator) gets occlusion maps (``method="occlusion"``, 8x8
  grid) on the first 40 images of the set.

Fit time and scoring throughput (test split) are measured on this machine, in this run, after
a warm-up: every method is first fitted on eight small random images, which pays the process's
one-time imports (timm, PIL, torch's optimizer machinery) before any timed fit, so no row pays
them for the others. The warm-up's time is printed and given under the tables.
"""

import argparse
import datetime
import os
import sys
import time

import numpy as np
from _cache import DOCS

from skcpcae.datasets import load_elpv, paste_defect
from skcpcae.inspection import anomaly_maps
from skcpcae.metrics import aupro, image_auroc, image_average_precision, pixel_auroc
from skcpcae.utils._report import machine_description, update_section

KINDS = ("blob", "scratch", "crack")
# Faint, as ELPV's real defects are (paste_defect's default 0.35 makes every method's pixel
# AUROC about 0.99 on a smoke run); fixed before any full run, not tuned.
STRENGTH = 0.15
OCCLUSION_IMAGES = 40


def _methods(quick):
    from skcpcae import make_preset
    from skcpcae.baselines import (
        AEL2Detector,
        NearestImageDetector,
        PatchCoreDetector,
        VariationDetector,
    )

    epochs = {"cpcaeresidualmap__max_epochs": 2} if quick else {}
    return {
        "CPCAE (`aligned` preset)": lambda: make_preset("aligned", **epochs),
        "CPCAE (`paper` preset, with ECC)": lambda: make_preset("paper", **epochs),
        "AE (L2)": lambda: AEL2Detector(),
        "Deep feature (`deep-feature`)": lambda: make_preset("deep-feature"),
        "NN (nearest image)": lambda: NearestImageDetector(),
        "Variation": lambda: VariationDetector(),
        "PatchCore-style": lambda: PatchCoreDetector(random_state=0),
        "`best` (patch k-NN)": lambda: make_preset("best"),
    }


def synthetic_set(X_normal, random_state=0):
    """Every other image gets one pasted defect; returns images, masks and labels."""
    rng = np.random.default_rng(random_state)
    images, masks = X_normal.copy(), np.zeros(X_normal.shape[:3], bool)
    labels = np.zeros(len(X_normal), int)
    for j, i in enumerate(range(0, len(X_normal), 2)):
        images[i], masks[i] = paste_defect(X_normal[i], kind=KINDS[j % 3], strength=STRENGTH,
                                           random_state=int(rng.integers(2**31)),
                                           return_mask=True)
        labels[i] = 1
    return images, masks, labels


# The embeddings drawn by --tsne: the comparator's and the CPCAE pipeline's.
TSNE = ("Deep feature (`deep-feature`)", "CPCAE (`aligned` preset)")


def _embed(model, data):
    """Test-split embeddings (everything before the last step), standardised with the
    training embeddings' statistics as the pipeline's scaler does; and the labels."""
    from sklearn.preprocessing import StandardScaler

    X_tr, X_te, y_te = data
    head = model[:-1]
    scaler = StandardScaler().fit(head.transform(X_tr))
    return scaler.transform(head.transform(X_te)), y_te


def plot_tsne(embedded, cell_types, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skcpcae.plotting import plot_embedding_tsne

    fig, axes = plt.subplots(len(cell_types), len(TSNE), squeeze=False,
                             figsize=(5.5 * len(TSNE), 5 * len(cell_types)),
                             constrained_layout=True)
    for i, ct in enumerate(cell_types):
        for j, name in enumerate(TSNE):
            if (ct, name) in embedded:
                Z, y = embedded[(ct, name)]
                plot_embedding_tsne(Z, y, ax=axes[i, j], random_state=0,
                                    title=f"ELPV {ct}: {name.replace('`', '')}")
                axes[i, j].title.set_fontsize(10)
    fig.savefig(path, dpi=72)
    return path


def _anomaly(model, X):
    return -np.asarray(model.score_samples(X), float)


def run_method(make, data, syn):
    X_tr, X_te, y_te = data
    X_syn, M_syn, y_syn = syn
    model = make()
    t = time.perf_counter()
    model.fit(X_tr)
    fit_s = time.perf_counter() - t
    load = os.getloadavg()[0]  # what else ran on the machine during the fit
    t = time.perf_counter()
    s_te = _anomaly(model, X_te)
    ips = len(X_te) / (time.perf_counter() - t)
    row = dict(auroc=image_auroc(y_te, s_te), ap=image_average_precision(y_te, s_te),
               fit_s=fit_s, n_fit=len(X_tr), load=load, ips=ips, syn_auroc=image_auroc(y_syn, _anomaly(model, X_syn)))
    try:
        maps = anomaly_maps(model, X_syn, method="model")
        row["maps"] = "own"
        masks = M_syn
    except (ValueError, TypeError):
        maps = anomaly_maps(model, X_syn[:OCCLUSION_IMAGES], method="occlusion")
        row["maps"] = f"occlusion, {OCCLUSION_IMAGES} images"
        masks = M_syn[:OCCLUSION_IMAGES]
    row["pixel_auroc"] = pixel_auroc(masks, maps)
    row["aupro"] = aupro(masks, maps)
    return row, model


# Must-show of issue #11 for the `aligned` preset, against the deep-feature comparator.
TARGET_AUROC = {"mono": 0.92, "poly": 0.86}
TARGET_MARGIN = 0.02
TARGET_FIT_S = {"mono": 60.0}
ALIGNED, DEEP = "CPCAE (`aligned` preset)", "Deep feature (`deep-feature`)"


def _verdict(value, target, higher=True):
    gap = value - target if higher else target - value
    return "met" if gap >= 0 else f"**missed by {abs(gap):.3f}**"


def _targets(cell_type, results):
    """Lines saying, for the `aligned` preset, whether each target is met and by how much."""
    if ALIGNED not in results:
        return []
    a = results[ALIGNED]
    lines = ["", "| target (issue #11) | goal | measured | verdict |", "|---|---|---|---|",
             f"| `aligned` AUROC | >= {TARGET_AUROC[cell_type]:.2f} | {a['auroc']:.3f} | "
             f"{_verdict(a['auroc'], TARGET_AUROC[cell_type])} |"]
    if DEEP in results:
        margin = a["auroc"] - results[DEEP]["auroc"]
        lines.append(f"| `aligned` ahead of `deep-feature` | >= +{TARGET_MARGIN:.2f} | "
                     f"{margin:+.3f} | {_verdict(margin, TARGET_MARGIN)} |")
    if cell_type in TARGET_FIT_S:
        goal = TARGET_FIT_S[cell_type]
        lines.append(f"| `aligned` fit, {a['n_fit']} cells | <= {goal:.0f} s | "
                     f"{a['fit_s']:.0f} s | "
                     + ("met" if a["fit_s"] <= goal else
                        f"**missed by {a['fit_s'] - goal:.0f} s**") + f" (1-min load average "
                     f"{a['load']:.1f} on 2 cores at the end of the fit) |")
    return lines


def load(cell_type, quick):
    b = load_elpv(cell_type)
    X_tr, X_te, y_te = b.X_train, b.X_test, np.asarray(b.y_test)
    if quick:
        rng = np.random.default_rng(0)
        keep = np.r_[rng.permutation(np.flatnonzero(y_te == 0))[:12],
                     rng.permutation(np.flatnonzero(y_te == 1))[:12]]
        X_tr, X_te, y_te = X_tr[:24], X_te[keep], y_te[keep]
    return X_tr, X_te, y_te


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell-types", nargs="+", default=["mono", "poly"])
    p.add_argument("--methods", nargs="+", default=None,
                   help="substrings of the method names to run (default: all)")
    p.add_argument("--quick", action="store_true", help="a smoke run on a few images")
    p.add_argument("--write", action="store_true")
    p.add_argument("--tsne", default=None, metavar="PNG",
                   help="also draw the t-SNE of the deep-feature and CPCAE embeddings of the "
                        "test split (the paper's Figs. 9/10), e.g. docs/_static/elpv_tsne.png")
    args = p.parse_args(argv)
    methods = _methods(args.quick)
    if args.methods:
        methods = {k: v for k, v in methods.items()
                   if any(m.lower() in k.lower() for m in args.methods)}
    t = time.perf_counter()
    small = np.random.default_rng(0).random((8, 64, 64), np.float32)
    for make in methods.values():
        make().fit(small)
    warm_up = time.perf_counter() - t
    print(f"warm-up fits on 8 random 64x64 images: {warm_up:.1f} s, not in the fit times",
          flush=True)
    blocks, embedded = [], {}
    for ct in args.cell_types:
        data = load(ct, args.quick)
        syn = synthetic_set(data[1][data[2] == 0])
        lines = [f"**ELPV {ct}** — test split: {len(data[1])} cells "
                 f"({int(data[2].sum())} defective); synthetic set: {len(syn[0])} cells "
                 f"({int(syn[2].sum())} with a pasted defect)", "",
                 "| method | AUROC | AP | fit s | images/s | synthetic AUROC | pixel AUROC "
                 "| AUPRO (30 %) | maps |", "|---|---|---|---|---|---|---|---|---|"]
        results = {}
        for name, make in methods.items():
            r, model = run_method(make, data, syn)
            results[name] = r
            if name in TSNE:
                embedded[(ct, name)] = _embed(model, data)
            line = (f"| {name} | {r['auroc']:.3f} | {r['ap']:.3f} | {r['fit_s']:.0f} | "
                    f"{r['ips']:.1f} | {r['syn_auroc']:.3f} | {r['pixel_auroc']:.3f} | "
                    f"{r['aupro']:.3f} | {r['maps']} |")
            print(ct, line, flush=True)
            lines.append(line)
        blocks.append("\n".join(lines + _targets(ct, results)))
    table = "\n\n".join(blocks) + (f"\n\nWarm-up fits (every method on eight random 64x64 "
                                    f"images, before the runs above): {warm_up:.1f} s.")
    print(table)
    if args.tsne and embedded:
        print(f"wrote {plot_tsne(embedded, args.cell_types, args.tsne)}")
    if args.write and not args.quick:
        cmd = "python benchmarks/paper_tables.py " + " ".join(argv or sys.argv[1:])
        update_section(DOCS, "paper-tables",
                       "## The paper's comparison (Tables 8/9) and localisation\n\n"
                       f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
                       f"Machine: {machine_description()}\n\n" + __doc__.split("\n\n", 2)[2]
                       + "\n\n" + table)


if __name__ == "__main__":
    main()
