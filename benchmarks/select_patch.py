"""Choose the patch-level pipeline (the `best` preset) without looking at the test split.

    python benchmarks/select_patch.py [--write]
    python benchmarks/select_patch.py --sources raw --stages 3+4 --backbones lite0 lite1 lite2 \
        --input-sizes 300 448 --top-ks 10 30 --radii 0 --section select-patch-backbone --write

Same selection data as benchmarks/select_preset.py: per ELPV cell type, 3/4 of the
protocol's training normals fit, the other 1/4 are validation normals, and the uncertain
cells (defect probability 1/3, 2/3) are validation anomalies; the test split is never used.
Every candidate is DeepPatchEmbedder (EfficientNet-Lite0, offline weights) on the raw cell or
on the CPCAE residual map (out-of-fold for the fit cells, cv=5), then PatchKNNScorer; the
PatchCore-style detector (its defaults) is scored on the same data for reference.
"""

import argparse
import datetime
import itertools
import sys
import time

import numpy as np
from _cache import DOCS
from select_preset import OUT, load_split

from skcpcae.baselines import PatchCoreDetector
from skcpcae.embedding import DeepPatchEmbedder
from skcpcae.metrics import image_auroc
from skcpcae.outlier import PatchKNNScorer
from skcpcae.utils._report import machine_description, update_section

STAGES = ["3", "4", "2+3", "3+4"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--sources", nargs="+", default=["raw", "res"], choices=["raw", "res"])
    p.add_argument("--stages", nargs="+", default=STAGES, help="stage sets, e.g. 3+4")
    p.add_argument("--backbones", nargs="+", default=["lite0"])
    p.add_argument("--input-sizes", nargs="+", type=int, default=[None],
                   help="input side in pixels (default: the native 300)")
    p.add_argument("--top-ks", nargs="+", type=int, default=[1, 10, 30])
    p.add_argument("--radii", nargs="+", type=int, default=[0, 1])
    p.add_argument("--ks", nargs="+", type=int, default=[1, 3])
    p.add_argument("--section", default="select-patch")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the PatchCore reference row (it is in the main selection table)")
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    scorers = [dict(top_k=t, radius=r, n_neighbors=k)
               for t, r, k in itertools.product(args.top_ks, args.radii, args.ks)]
    results = {}  # name -> {cell: auroc}
    for cell in ("mono", "poly"):
        s = load_split(cell)
        y = np.r_[np.zeros(len(s.val_idx)), np.ones(len(s.X_unc))]
        sources = {"raw": (s.X_train, s.X_unc), "res": (s.R_train, s.R_unc)}
        for src, bb, size, stage_set in itertools.product(
                args.sources, args.backbones, args.input_sizes, args.stages):
            A, U = sources[src]
            stages = tuple(int(x) for x in stage_set.split("+"))
            emb = DeepPatchEmbedder(f"tf_efficientnet_{bb}", stages=stages, input_size=size,
                                    batch_size=8).fit(A[:2])
            F_fit = emb.transform(A[s.fit_idx])
            F_val = emb.transform(np.concatenate([A[s.val_idx], U]))
            for kw in scorers:
                if kw["radius"] and len(stages) > 1 and 2 in stages:
                    continue  # stride-8 grids with a radius: slow, and never better
                t0 = time.perf_counter()
                sc = PatchKNNScorer(**kw).fit(F_fit).score_samples(F_val)
                dt = time.perf_counter() - t0
                tag = "" if bb == "lite0" and size is None else f" {bb}@{size or 'native'}"
                name = (f"{src}[s{'+s'.join(map(str, stages))}]{tag} top_k={kw['top_k']} "
                        f"radius={kw['radius']} k={kw['n_neighbors']}")
                auc = image_auroc(y, -sc)
                results.setdefault(name, {})[cell] = auc
                print(f"{cell} {name}: {auc:.3f} ({dt:.1f} s)", flush=True)
        if args.no_reference:
            continue
        det = PatchCoreDetector(random_state=0).fit(s.X_train[s.fit_idx])
        sc = det.score_samples(np.concatenate([s.X_train[s.val_idx], s.X_unc]))
        results.setdefault("ref", {})[cell] = image_auroc(y, -sc)
        print(f"{cell} PatchCore: {results['ref'][cell]:.3f}", flush=True)
    ref = results.pop("ref", None)
    ranked = sorted(results.items(), key=lambda kv: -np.mean(list(kv[1].values())))
    lines = ["| rank | candidate | validation AUROC mono | poly | mean |", "|---|---|---|---|---|"]
    for i, (name, a) in enumerate(ranked[: args.top], 1):
        lines.append(f"| {i} | {name} | {a['mono']:.3f} | {a['poly']:.3f} | "
                     f"{np.mean(list(a.values())):.3f} |")
    if ref is not None:
        lines.append(f"| ref | PatchCoreDetector (defaults) | {ref['mono']:.3f} | "
                     f"{ref['poly']:.3f} | {np.mean(list(ref.values())):.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = "python benchmarks/select_patch.py " + " ".join(argv or sys.argv[1:])
        title = ("Choosing the patch-level `best` preset" if args.section == "select-patch"
                 else "Patch-level preset: backbones and input sizes")
        update_section(DOCS, args.section,
                       f"### {title} (validation data only)\n\n"
                       f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
                       f"Machine: {machine_description()}\n\n"
                       "Validation as above (3/4 of the training normals fit, 1/4 held out, "
                       "against the uncertain 1/3, 2/3 cells; the test split is not used). "
                       "`raw` = the cell, `res` = the CPCAE residual map; `s2, s3, s4` = "
                       "EfficientNet-Lite0 stages of stride 8, 16, 32 (DeepPatchEmbedder, 3x3 "
                       "local averaging; `lite1@448` = another backbone or input side); then "
                       "PatchKNNScorer with the given image score "
                       "(`top_k` largest patch distances), search `radius` and neighbours `k`.\n\n"
                       + table)


if __name__ == "__main__":
    main()
