"""Choose the pooled-embedding ("union") preset without looking at the test split.

    python benchmarks/select_preset.py [--write]

Selection data, per ELPV cell type: the protocol's *training* normals only, split 3/4 (fit) /
1/4 (validation normals), and the *uncertain* cells (defect probability 1/3 and 2/3) as
validation anomalies. The protocol's test set (held-out probability-0 normals vs
probability-1 defects) is never touched here; benchmarks/run.py then reports the chosen
preset on it. (The run table's "with 1/3, 2/3" columns include the uncertain cells, so for the
chosen preset those two columns are not independent of this selection.)

Features are computed once per image set: EfficientNet-Lite0 feature stages 1-4 and the final
1280-channel map, each with the parallel+cascade head, on the raw cells and on the CPCAE's
residual maps (out-of-fold for the training cells, cv=5). Candidate embeddings are slices and
concatenations of these; every candidate is scored by StandardScaler -> k-NN (k=15).
"""

import argparse
import datetime
import itertools
import sys
from types import SimpleNamespace

import numpy as np
from _cache import DOCS, OUT, cache_path
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae.datasets import load_elpv
from skcpcae.embedding import DeepPoolEmbedder
from skcpcae.metrics import image_auroc
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.residuals import CPCAEResidualMap
from skcpcae.utils._report import machine_description, update_section

STAGES = (1, 2, 3, 4)


def _features(name, images):
    path = cache_path(f"select_{name}", __file__, images)  # keyed by code and data
    if path.exists():
        d = np.load(path)
        return {k: d[k] for k in d.files}
    emb_s = DeepPoolEmbedder(stages=STAGES, pooling="parallel_cascade", batch_size=8).fit(images[:2])
    emb_f = DeepPoolEmbedder(pooling="parallel_cascade", batch_size=8).fit(images[:2])
    fs, ff = emb_s.transform(images), emb_f.transform(images)
    out, start = {}, 0
    for idx, c in zip(STAGES, emb_s.n_channels_, strict=False):
        block = fs[:, start:start + 6 * c]
        out[f"s{idx}"] = block
        start += 6 * c
    out["final"] = ff
    np.savez(path, **out)
    return out


def _slice(block, pooling):
    c = block.shape[1] // 6
    return {"max": block[:, :c], "max+avg": block[:, :2 * c], "pc": block}[pooling]


def candidates():
    raw, res = [], []
    for st in [("final",), ("s3",), ("s2", "s3"), ("s3", "s4"), ("s2", "s3", "s4")]:
        for pool in ("max", "max+avg", "pc"):
            raw.append(("raw", st, pool))
            res.append(("res", st, pool))
    yield from ((c,) for c in raw + res)
    # unions of the best-looking raw and residual embeddings
    for a, b in itertools.product(raw, res):
        if a[1] in [("s2", "s3"), ("s3", "s4"), ("final",)] and b[1] in [("final",), ("s3", "s4")]:
            yield (a, b)


def embed(feats, cand):
    parts = []
    for src, st, pool in cand:
        parts.extend(_slice(feats[src][s], pool) for s in st)
    return np.hstack(parts)


def load_split(cell_type, *, residuals=True):
    """The selection data of one cell type (test split untouched), residual maps included
    (``residuals=False``: ``R_train`` and ``R_unc`` are None, and no CPCAE is fitted)."""
    b = load_elpv(cell_type, include_uncertain=True)
    proba = np.asarray(b.proba_test)
    X_unc = b.X_test[(proba > 0) & (proba < 1)]
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(b.X_train))
    n_fit = (3 * len(perm)) // 4
    fit_idx, val_idx = perm[:n_fit], perm[n_fit:]
    if not residuals:
        return SimpleNamespace(X_train=b.X_train, X_unc=X_unc, R_train=None, R_unc=None,
                               fit_idx=fit_idx, val_idx=val_idx)
    res_path = cache_path(f"select_{cell_type}_residuals", __file__, b.X_train, X_unc, fit_idx)
    if res_path.exists():
        d = np.load(res_path)
        R_train, R_unc = d["train"], d["unc"]
    else:
        # trained on the fit cells only; out-of-fold maps for them, full-net maps otherwise
        ae = CPCAEResidualMap(cv=5, random_state=0)
        R_fit = ae.fit_transform(b.X_train[fit_idx])
        R_train = np.empty_like(b.X_train)
        R_train[fit_idx] = R_fit
        R_train[val_idx] = ae.transform(b.X_train[val_idx])
        R_unc = ae.transform(X_unc)
        np.savez(res_path, train=R_train, unc=R_unc)
    return SimpleNamespace(X_train=b.X_train, X_unc=X_unc, R_train=R_train, R_unc=R_unc,
                           fit_idx=fit_idx, val_idx=val_idx)


def prepare(cell_type):
    s = load_split(cell_type)
    feats_train = {"raw": _features(f"{cell_type}_raw_train", s.X_train),
                   "res": _features(f"{cell_type}_res_train", s.R_train)}
    feats_unc = {"raw": _features(f"{cell_type}_raw_unc", s.X_unc),
                 "res": _features(f"{cell_type}_res_unc", s.R_unc)}
    return feats_train, feats_unc, s.fit_idx, s.val_idx


def name_of(cand):
    return " + ".join(f"{src}[{','.join(st)}|{pool}]" for src, st, pool in cand)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true")
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    data = {ct: prepare(ct) for ct in ("mono", "poly")}
    results = []
    for cand in candidates():
        aucs = []
        for _ct, (ftr, func, fit_idx, val_idx) in data.items():
            E, U = embed(ftr, cand), embed(func, cand)
            model = make_pipeline(StandardScaler(), KNNAnomalyScorer(n_neighbors=15))
            model.fit(E[fit_idx])
            s = -model.score_samples(np.vstack([E[val_idx], U]))
            y = np.r_[np.zeros(len(val_idx)), np.ones(len(U))]
            aucs.append(image_auroc(y, s))
        results.append((float(np.mean(aucs)), aucs, name_of(cand)))
    results.sort(key=lambda r: -r[0])
    lines = ["| rank | embedding | validation AUROC mono | poly | mean |", "|---|---|---|---|---|"]
    for i, (m, (a, b), n) in enumerate(results[: args.top], 1):
        lines.append(f"| {i} | {n} | {a:.3f} | {b:.3f} | {m:.3f} |")
    ref = [r for r in results if r[2] == "raw[final|max]"][0]
    lines.append(f"| ref | raw[final|max] (deep-feature comparator) | {ref[1][0]:.3f} | "
                 f"{ref[1][1]:.3f} | {ref[0]:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = "python benchmarks/select_preset.py " + " ".join(argv or sys.argv[1:])
        update_section(DOCS, "select",
                       "### Choosing the `union` preset: pooled embeddings (validation data only)\n\n"
                       f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
                       f"Machine: {machine_description()}\n\n"
                       "Validation: 3/4 of the training normals fit, 1/4 held out, against the "
                       "uncertain (1/3, 2/3) cells; the test split is not used. `raw` = the "
                       "cell, `res` = the CPCAE residual map; `s1..s4` = EfficientNet-Lite0 "
                       "feature stages (strides 4..32), `final` = the 1280-channel head map; "
                       "`pc` = parallel+cascade pooling.\n\n" + table)


if __name__ == "__main__":
    main()
