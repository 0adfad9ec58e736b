"""KDE threshold calibration and last-step comparison on ELPV (deep features, max pooling).

    python benchmarks/threshold.py                 # print both tables
    python benchmarks/threshold.py --write         # also update docs/benchmarks.md
    python benchmarks/threshold.py --splits 3      # fewer random splits (quicker)

Embeddings: ``DeepPoolEmbedder(pooling="max")`` with the default pretrained (offline)
EfficientNet-Lite0, computed once per cell type for every cell (normal, defective and
uncertain) and cached in ``benchmarks/out/elpv_<type>_max.npz``; delete the file to recompute.

1. **Threshold** (``<!-- threshold -->`` section). For each cell type, the normal cells
   (defect probability 0) are split at random into two halves, 10 times
   (``numpy.random.default_rng(split)``); on each split a ``StandardScaler`` and a
   ``KDEThresholdClassifier`` wrapping ``KNNAnomalyScorer(n_neighbors=15)`` or
   ``LocalOutlierFactor(n_neighbors=20, novelty=True)`` are fitted on the training half, in
   three variants: ``cv=5`` with the scaler inside the wrapped estimator (refitted on every
   fold), ``cv=5`` with the scaler before the wrapper (fitted on all training cells, the
   held-out folds included), and ``cv=None`` (in-sample scores). Reported: the
   false-alarm rate on the held-out normal half and the recall on the defective cells
   (probability 1), for alpha in {0.01, 0.05, 0.10}, averaged over the splits. The thresholds
   of the three alphas are read off one fitted KDE (``kde_.ppf(1 - alpha)``), which is what
   refitting with each alpha would give (same folds, same scores).
2. **Last step** (``<!-- last_step -->`` section), the paper's Tables 6 and 7 on ELPV: the
   project's protocol split (``skcpcae.datasets.load_elpv``: normals shuffled with
   ``default_rng(0)``, first half train; test = other half + every probability-1 cell), a
   ``StandardScaler`` and one last step (k-NN, OC-SVM, IF, GMM, LOF, KDE); AUROC and AP, and
   the same with the 1/3 and 2/3 cells counted as defective.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skcpcae.metrics import image_auroc, image_average_precision
from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
)
from skcpcae.utils._report import machine_description, update_section

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
ALPHAS = (0.01, 0.05, 0.10)

THRESHOLD_DETECTORS = {
    "k-NN (k=15)": KNNAnomalyScorer(n_neighbors=15),
    "LOF (k=20, novelty)": LocalOutlierFactor(n_neighbors=20, novelty=True),
}

LAST_STEPS = {
    "k-NN (k=15)": KNNAnomalyScorer(n_neighbors=15),
    "OC-SVM (rbf, nu=0.1)": OneClassSVM(gamma="scale", nu=0.1),
    "IF (100 trees)": IsolationForest(n_estimators=100, random_state=0),
    "GMM (1, full, reg 1e-3)": GMMAnomalyScorer(
        n_components=1, covariance_type="full", reg_covar=1e-3, random_state=0
    ),
    "LOF (k=20, novelty)": LocalOutlierFactor(n_neighbors=20, novelty=True),
    "KDE (gaussian, scott)": KDEAnomalyScorer(),
}


def embeddings(cell_type, batch_size=16):
    """Embeddings of every cell of a type, from the cache or computed once."""
    path = OUT / f"elpv_{cell_type}_max.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from skcpcae.datasets import load_elpv
    from skcpcae.embedding import DeepPoolEmbedder

    data = load_elpv(cell_type, include_uncertain=True, random_state=0)
    emb = DeepPoolEmbedder(pooling="max", batch_size=batch_size).fit(data.X_train[:2])
    t0 = time.perf_counter()
    z = {
        "Z_train": emb.transform(data.X_train),
        "Z_test": emb.transform(data.X_test),
        "proba_test": np.asarray(data.proba_test, dtype=np.float64),
        "index_train": data.index_train,
        "index_test": data.index_test,
    }
    print(
        f"embedded {len(data.X_train) + len(data.X_test)} {cell_type} cells in "
        f"{time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(path, **z)
    return z


VARIANTS = {
    # label: (scaler inside the cross-fitted estimator?, cv)
    "scaler inside, cv=5": (True, 5),
    "scaler outside, cv=5": (False, 5),
    "cv=None (in-sample)": (False, None),
}


def _threshold_model(det, inside, cv, seed):
    if inside:  # the scaler is refitted on every training fold: fully out-of-fold scores
        return KDEThresholdClassifier(
            make_pipeline(StandardScaler(), clone(det)), cv=cv, random_state=seed
        )
    return make_pipeline(
        StandardScaler(), KDEThresholdClassifier(clone(det), cv=cv, random_state=seed)
    )


def threshold_experiment(z, n_splits):
    """Mean false-alarm rate and recall per (detector, variant, alpha) over random splits."""
    normal = np.vstack([z["Z_train"], z["Z_test"][z["proba_test"] == 0]])
    defect = z["Z_test"][z["proba_test"] == 1]
    rows = {}
    for split in range(n_splits):
        perm = np.random.default_rng(split).permutation(len(normal))
        half = len(normal) // 2
        train, held_out = normal[perm[:half]], normal[perm[half:]]
        for name, det in THRESHOLD_DETECTORS.items():
            for variant, (inside, cv) in VARIANTS.items():
                model = _threshold_model(det, inside, cv, split).fit(train)
                kde = (model if inside else model[-1]).kde_
                a_normal = -model.score_samples(held_out)
                a_defect = -model.score_samples(defect)
                for alpha in ALPHAS:
                    t = float(kde.ppf(1 - alpha))
                    rec = rows.setdefault((name, variant, alpha), {"far": [], "recall": []})
                    rec["far"].append(np.mean(a_normal > t))
                    rec["recall"].append(np.mean(a_defect > t))
    return {k: {m: (np.mean(v), np.std(v)) for m, v in d.items()} for k, d in rows.items()}


def last_step_experiment(z):
    """AUROC / AP of each last step on the protocol split (strict and with uncertain cells)."""
    proba = z["proba_test"]
    scaler = StandardScaler().fit(z["Z_train"])
    train, test = scaler.transform(z["Z_train"]), scaler.transform(z["Z_test"])
    strict = (proba == 0) | (proba == 1)
    y_all = (proba > 0).astype(int)
    out = {}
    for name, det in LAST_STEPS.items():
        t0 = time.perf_counter()
        s = -clone(det).fit(train).score_samples(test)
        out[name] = {
            "auroc": image_auroc(y_all[strict], s[strict]),
            "ap": image_average_precision(y_all[strict], s[strict]),
            "auroc_u": image_auroc(y_all, s),
            "ap_u": image_average_precision(y_all, s),
            "seconds": time.perf_counter() - t0,
        }
    return out


def threshold_markdown(results, n_splits, sizes):
    lines = [
        "## KDE threshold: false-alarm rate and recall on ELPV",
        "",
        "`python benchmarks/threshold.py --write`. Deep features (EfficientNet-Lite0, global "
        "max pooling, 1280-d) → StandardScaler → `KDEThresholdClassifier(detector, alpha)`. "
        f"Normal cells split at random in halves, {n_splits} times: fit on one half, "
        "false-alarm rate (FAR) on the other half, recall on the defective cells "
        "(probability 1); mean (std) over the splits. *scaler inside, cv=5*: "
        "`KDEThresholdClassifier(make_pipeline(StandardScaler(), detector), cv=5)`, every "
        "out-of-fold score comes from a scaler and detector that never saw the sample; "
        "*scaler outside, cv=5*: `make_pipeline(StandardScaler(), "
        "KDEThresholdClassifier(detector, cv=5))`, the scaler was fitted on the held-out "
        "folds too; *cv=None*: the KDE sees in-sample scores. "
        + ", ".join(f"{t}: {n} normal / {d} defective cells" for t, (n, d) in sizes.items())
        + ".",
        "",
        "| cells | detector | variant | "
        + " | ".join(f"FAR α={a:g}" for a in ALPHAS)
        + " | "
        + " | ".join(f"recall α={a:g}" for a in ALPHAS)
        + " |",
        "|---|---|---|" + "---:|" * (2 * len(ALPHAS)),
    ]
    for cell_type, res in results.items():
        for name in THRESHOLD_DETECTORS:
            for variant in VARIANTS:
                far = [res[(name, variant, a)]["far"] for a in ALPHAS]
                rec = [res[(name, variant, a)]["recall"] for a in ALPHAS]
                lines.append(
                    f"| {cell_type} | {name} | {variant} | "
                    + " | ".join(f"{m:.3f} ({s:.3f})" for m, s in far)
                    + " | "
                    + " | ".join(f"{m:.3f}" for m, _ in rec)
                    + " |"
                )
    lines += ["", f"Machine: {machine_description()}."]
    return "\n".join(lines)


def last_step_markdown(results):
    lines = [
        "## Last step on deep features (paper's Tables 6/7) on ELPV",
        "",
        "`python benchmarks/threshold.py --write`. Protocol split (`load_elpv`, "
        "`default_rng(0)`): fit on half the normal cells; test on the other half plus every "
        "probability-1 cell (AUROC / AP), and with the 1/3 and 2/3 cells also counted as "
        "defective (AUROC_u / AP_u). Deep features (EfficientNet-Lite0, global max pooling) "
        "→ StandardScaler → last step. Anomalous = positive.",
        "",
        "| cells | last step | AUROC | AP | AUROC_u | AP_u | fit+score s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cell_type, res in results.items():
        for name, r in res.items():
            lines.append(
                f"| {cell_type} | {name} | {100 * r['auroc']:.2f} | {100 * r['ap']:.2f} | "
                f"{100 * r['auroc_u']:.2f} | {100 * r['ap_u']:.2f} | {r['seconds']:.1f} |"
            )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/threshold.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", type=int, default=10, help="random half/half splits")
    parser.add_argument("--cells", nargs="+", default=["mono", "poly"], choices=["mono", "poly"])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)

    thr, last, sizes = {}, {}, {}
    for cell_type in args.cells:
        z = embeddings(cell_type)
        n_normal = len(z["Z_train"]) + int(np.sum(z["proba_test"] == 0))
        sizes[cell_type] = (n_normal, int(np.sum(z["proba_test"] == 1)))
        thr[cell_type] = threshold_experiment(z, args.splits)
        last[cell_type] = last_step_experiment(z)

    thr_md = threshold_markdown(thr, args.splits, sizes)
    last_md = last_step_markdown(last)
    print(thr_md, "\n\n", last_md, sep="")
    if args.write:
        update_section(args.docs, "threshold", thr_md)
        update_section(args.docs, "last_step", last_md)
        print(f"\nwrote {args.docs} (sections 'threshold', 'last_step')", file=sys.stderr)


if __name__ == "__main__":
    main()
