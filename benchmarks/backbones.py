"""Backbone x pooling head x feature stage study (the paper's Tables 4/5, on what is offline).

    python benchmarks/backbones.py [--backbones lite0 lite1 lite2] [--write]

On the ELPV protocol split (train on half of the probability-0 cells, test on the other half
plus the probability-1 cells), for the deep-feature comparator (embedding of the raw cell) and
for the CPCAE pipeline (embedding of the residual map; autoencoder with default settings and
cv=5, so the k-NN is fitted on out-of-fold maps), every embedding is scored by
StandardScaler -> k-NN (k=15) and reported as AUROC. The cells are fed as they are: ELPV is
aligned and evenly lit, so registration and gamma are left out of this study.
"""

import argparse
import datetime
import sys

import numpy as np
from _cache import DOCS, cache_path
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae.datasets import load_elpv
from skcpcae.embedding import DeepPoolEmbedder
from skcpcae.metrics import image_auroc
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.residuals import CPCAEResidualMap
from skcpcae.utils._report import machine_description, update_section

STAGES = (1, 2, 3, 4)
POOLS = ("max", "avg", "max+avg", "parallel_cascade")
STAGE_SETS = {"final": ("final",), "s3": ("s3",), "s3+s4": ("s3", "s4"),
              "s2+s3+s4": ("s2", "s3", "s4")}


def features(tag, backbone, images):
    path = cache_path(f"bb_{tag}_{backbone}", __file__, images)  # keyed by code and data
    if path.exists():
        d = np.load(path)
        return {k: d[k] for k in d.files}
    name = f"tf_efficientnet_{backbone}"
    emb_s = DeepPoolEmbedder(name, stages=STAGES, pooling="parallel_cascade", batch_size=8)
    emb_f = DeepPoolEmbedder(name, pooling="parallel_cascade", batch_size=8)
    emb_s.fit(images[:2])
    emb_f.fit(images[:2])
    fs = emb_s.transform(images)
    out, start = {}, 0
    for idx, c in zip(STAGES, emb_s.n_channels_, strict=False):
        out[f"s{idx}"] = fs[:, start:start + 6 * c]
        start += 6 * c
    out["final"] = emb_f.transform(images)
    np.savez(path, **out)
    return out


def pooled(block, pooling):
    c = block.shape[1] // 6
    return {"max": block[:, :c], "avg": block[:, c:2 * c], "max+avg": block[:, :2 * c],
            "parallel_cascade": block}[pooling]


def residuals(cell, b):
    path = cache_path(f"bb_{cell}_residuals", __file__, b.X_train, b.X_test)
    if path.exists():
        d = np.load(path)
        return d["train"], d["test"]
    ae = CPCAEResidualMap(cv=5, random_state=0)
    R_train = ae.fit_transform(b.X_train)
    R_test = ae.transform(b.X_test)
    np.savez(path, train=R_train, test=R_test)
    return R_train, R_test


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbones", nargs="+", default=["lite0", "lite1", "lite2"])
    p.add_argument("--cell-types", nargs="+", default=["mono", "poly"])
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for cell in args.cell_types:
        b = load_elpv(cell)
        R_train, R_test = residuals(cell, b)
        for source, (A, B) in {"raw cell (deep feature)": (b.X_train, b.X_test),
                               "residual map (CPCAE)": (R_train, R_test)}.items():
            tag = "raw" if source.startswith("raw") else "res"
            for bb in args.backbones:
                ftr = features(f"{cell}_{tag}_train", bb, A)
                fte = features(f"{cell}_{tag}_test", bb, B)
                for sname, stages in STAGE_SETS.items():
                    for pool in POOLS:
                        E = np.hstack([pooled(ftr[s], pool) for s in stages])
                        T = np.hstack([pooled(fte[s], pool) for s in stages])
                        m = make_pipeline(StandardScaler(), KNNAnomalyScorer(n_neighbors=15))
                        auc = image_auroc(b.y_test, -m.fit(E).score_samples(T))
                        rows.append((cell, source, bb, sname, pool, auc))
                        print(f"{cell} {source:24s} {bb} {sname:9s} {pool:17s} {auc:.3f}",
                              flush=True)
    # one table per cell type and source: rows = backbone x stage, columns = pooling
    parts = []
    for cell in args.cell_types:
        for source in ("raw cell (deep feature)", "residual map (CPCAE)"):
            lines = [f"**{cell}, {source}** — AUROC", "",
                     "| backbone | stages | " + " | ".join(POOLS) + " |",
                     "|---|---|" + "---|" * len(POOLS)]
            for bb in args.backbones:
                for sname in STAGE_SETS:
                    vals = {r[4]: r[5] for r in rows
                            if r[0] == cell and r[1] == source and r[2] == bb and r[3] == sname}
                    lines.append(f"| {bb} | {sname} | "
                                 + " | ".join(f"{vals[q]:.3f}" for q in POOLS) + " |")
            parts.append("\n".join(lines))
    text = "\n\n".join(parts)
    print(text)
    if args.write:
        cmd = "python benchmarks/backbones.py " + " ".join(argv or sys.argv[1:])
        update_section(DOCS, "backbones",
                       "### Backbones, pooling heads and feature stages (Tables 4/5)\n\n"
                       f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
                       f"Machine: {machine_description()}\n\n"
                       "EfficientNet-Lite0/1/2 with their offline ImageNet weights; `final` = "
                       "the 1x1 head map (1280 channels), `s2..s4` = feature stages of stride "
                       "8, 16, 32. Protocol test split; StandardScaler -> k-NN (k=15).\n\n"
                       + text)


if __name__ == "__main__":
    main()
