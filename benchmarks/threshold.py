"""Does the threshold keep its promise? False-alarm rate vs alpha on ELPV, for every preset.

    python benchmarks/threshold.py --quick          # 3 splits, CPCAE max_epochs=5 (iterate)
    python benchmarks/threshold.py --write          # 10 splits, the presets as shipped; update
                                                    # docs/benchmarks.md
    python benchmarks/threshold.py --models composition best --splits 5

**Threshold** (``<!-- threshold -->`` section). For each cell type (ELPV mono, poly) the
normal cells (defect probability 0) are split at random into two halves, ``--splits`` times
(``numpy.random.default_rng(split).permutation``). Each model is fitted on one half; the
false-alarm rate (FAR) is measured on the other half and the recall on every defective cell
(probability 1), at alpha in {0.01, 0.05, 0.10}; mean (std) over the splits. The models:

* ``composition``: ``make_pipeline(DeepPoolEmbedder(), StandardScaler(),
  KDEThresholdClassifier(KNNAnomalyScorer()))``, the composition of the README and the
  design notes, with the library's default ``restandardize="auto"``, and with
  ``restandardize=False`` (the behaviour before it: the scaler fitted on the held-out folds
  too);
* every preset, ``skcpcae.make_preset(name)`` for ``name`` in ``skcpcae.PRESETS``, as
  shipped (``--quick``: ``max_epochs=5`` for the autoencoder);
* ``..., cv=5 (before)``: the composition and the ``deep-feature`` and ``best`` presets with
  the wrapper's former default ``cv=5`` (out-of-fold scores from banks of 4/5 of the
  normals) instead of ``cv="auto"`` (leave-one-out scores for the k-NN scorers).

Calibration rules, all read off one fit per split and alpha:

* ``kde``: the threshold of the fitted wrapper, ``kde_.ppf(1 - alpha)`` (the library's rule);
* ``order stat.``: the split-conformal order statistic of the same out-of-fold training
  scores, the ``ceil((n + 1)(1 - alpha))``-th smallest;
* ``held-out 1/3`` (``--heldout``): the pipeline-level split-conformal rule of
  :func:`skcpcae.outlier.fit_calibrated`: the whole model is fitted on two thirds of the
  training half and the threshold is the order statistic of the scores of the last third.

Cost: steps that learn nothing from the training images (the pretrained embedders,
``AdaptiveGamma``) run once per cell type; their output is cached in
``benchmarks/out/threshold/`` under a key made of the steps' parameters, the source code of
the modules they come from and a hash of the images. The learned steps before the threshold
(``ECCRegistrar``, ``CPCAEResidualMap``) are refitted on every split and their outputs cached
the same way (plus the split), so a rerun after a change to the threshold code only refits
the threshold. Delete the folder to recompute everything.

**Last step** (``<!-- last_step -->`` section), the paper's Tables 6 and 7 on ELPV: the
project's protocol split (``load_elpv``: normals shuffled with ``default_rng(0)``, first half
train; test = other half + every probability-1 cell), deep features (max pooling) →
``StandardScaler`` → one last step (k-NN, OC-SVM, IF, GMM, LOF, KDE); AUROC and AP, and the
same with the 1/3 and 2/3 cells counted as defective.
"""

import argparse
import hashlib
import inspect
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

import skcpcae
from skcpcae.metrics import image_auroc, image_average_precision
from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
    conformal_threshold,
)
from skcpcae.utils._report import machine_description, update_section

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "threshold"
ALPHAS = (0.01, 0.05, 0.10)
TOLERANCE = 0.02
HELDOUT_FRACTION = 1 / 3
QUICK = {"splits": 3, "cpcae_max_epochs": 5}

# Steps whose fit learns nothing from the training images (pretrained weights, per-image
# statistics): their output is computed once per cell type, on every cell.
FROZEN = ("DeepPoolEmbedder", "DeepPatchEmbedder", "AdaptiveGamma")
# Learned steps cheap enough not to cache.
CHEAP = ("StandardScaler",)


def composition(restandardize="auto"):
    from skcpcae.embedding import DeepPoolEmbedder

    return make_pipeline(
        DeepPoolEmbedder(),
        StandardScaler(),
        KDEThresholdClassifier(KNNAnomalyScorer(), restandardize=restandardize),
    )


# Models also run with the wrapper's former default ``cv=5`` (k-fold instead of the
# leave-one-out scores that ``cv="auto"`` gives nearest-neighbour scorers): the "before" rows.
CV5_BEFORE = ("composition", "preset deep-feature", "preset best")


def _with_cv5(pipe):
    pipe = clone(pipe)
    keys = [k for k in pipe.get_params() if k.split("__")[-1] == "cv"
            and "kdethresholdclassifier" in k]
    return pipe.set_params(**dict.fromkeys(keys, 5))


def models(quick):
    """``{label: pipeline}``: the composition (two ways) and every preset."""
    out = {
        "composition": composition(),
        "composition, restandardize=False": composition(restandardize=False),
    }
    for name in skcpcae.PRESETS:
        pipe = skcpcae.make_preset(name)
        if quick:
            keys = [k for k in pipe.get_params() if k.endswith("cpcaeresidualmap__max_epochs")]
            pipe.set_params(**dict.fromkeys(keys, QUICK["cpcae_max_epochs"]))
        out[f"preset {name}"] = pipe
    for label in CV5_BEFORE:
        out[f"{label}, cv=5 (before)"] = _with_cv5(out[label])
    return out


# --------------------------------------------------------------------------------------
# cache keys: parameters + source code + data
# --------------------------------------------------------------------------------------


def _estimators(est):
    yield est
    for value in est.get_params(deep=True).values():
        if isinstance(value, BaseEstimator):
            yield value


def _code_hash(steps):
    """Hash of the source files of the subpackages the steps' classes come from."""
    files = set()
    for est in steps:
        for e in _estimators(est):
            module = inspect.getmodule(type(e))
            if module is None or not module.__name__.startswith("skcpcae"):
                continue
            path = Path(inspect.getsourcefile(module))
            files.update(p for p in path.parent.glob("*.py"))
    files.update((ROOT / "skcpcae").glob("_base.py"))
    files.update((ROOT / "skcpcae" / "utils").glob("_torch.py"))
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


_NO_EFFECT = ("verbose", "batch_size", "device", "random_state", "n_jobs")


def _describe(steps, ignore=_NO_EFFECT):
    """Parameters of the steps that change their output (not verbosity, device, ...).

    The frozen steps' ``batch_size`` and ``random_state`` change nothing either (pretrained
    weights, inference only); a learned step's do, so the middle keeps them.
    """
    out = []
    for s in steps:
        params = {k: v for k, v in s.get_params(deep=True).items()
                  if k.split("__")[-1] not in ignore}
        out.append((type(s).__name__, sorted((k, repr(v)) for k, v in params.items())))
    return out


def _key(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode() if not isinstance(p, bytes) else p)
    return h.hexdigest()[:16]


def _cached(path, compute):
    """Arrays from ``path`` (npz), or computed by ``compute()`` and saved there."""
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    out = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


# --------------------------------------------------------------------------------------
# data and model pieces
# --------------------------------------------------------------------------------------


def load_cells(cell_type):
    """Normal (probability 0) and defective (probability 1) cells, and a hash of them."""
    from skcpcae.datasets import load_elpv

    data = load_elpv(cell_type, random_state=0)
    normal = np.concatenate([data.X_train, data.X_test[data.y_test == 0]])
    defect = data.X_test[data.y_test == 1]
    digest = hashlib.sha256(normal.tobytes() + defect.tobytes()).hexdigest()[:16]
    return normal, defect, digest


def split_model(pipe):
    """``(frozen head, learned middle, threshold wrapper)`` of a pipeline."""
    steps = [s for _, s in pipe.steps]
    n_head = 0
    while n_head < len(steps) - 1 and type(steps[n_head]).__name__ in FROZEN:
        n_head += 1
    return steps[:n_head], steps[n_head:-1], steps[-1]


def _apply_head(head, X, batch=64):
    if not head:
        return X
    fitted = [clone(s) for s in head]
    Z = X[:2]
    for s in fitted:
        Z = s.fit(Z).transform(Z)
    out = []
    for start in range(0, len(X), batch):
        Z = X[start : start + batch]
        for s in fitted:
            Z = s.transform(Z)
        out.append(np.asarray(Z))
    return np.concatenate(out)


def head_output(head, normal, defect, digest, cell_type):
    key = _key(_describe(head), _code_hash(head), digest)
    path = OUT / f"{cell_type}_head_{key}.npz"
    t0 = time.perf_counter()
    out = _cached(path, lambda: {"normal": _apply_head(head, normal),
                                 "defect": _apply_head(head, defect)})
    if time.perf_counter() - t0 > 5:
        print(f"  {cell_type}: frozen steps {[type(s).__name__ for s in head]} on "
              f"{len(normal) + len(defect)} cells in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    return out["normal"], out["defect"]


def middle_output(middle, head, train, others, digest, cell_type, tag):
    """``middle`` fitted on ``train``: its output on ``train`` (``fit_transform``) and others."""
    def compute():
        if not middle:
            return {"train": train, **{f"x{i}": x for i, x in enumerate(others)}}
        pipe = make_pipeline(*[clone(s) for s in middle])
        out = {"train": pipe.fit_transform(train)}
        for i, x in enumerate(others):
            out[f"x{i}"] = pipe.transform(x)
        return out

    if not middle or all(type(s).__name__ in CHEAP for s in middle):
        out = compute()
    else:
        key = _key(_describe(head), _describe(middle, ("verbose", "device", "n_jobs")),
                   _code_hash(head + middle), digest, tag,
                   hashlib.sha256(np.ascontiguousarray(train[:, :1]).tobytes()).hexdigest())
        out = _cached(OUT / f"{cell_type}_middle_{key}.npz", compute)
    return out["train"], [out[f"x{i}"] for i in range(len(others))]


# --------------------------------------------------------------------------------------
# experiment
# --------------------------------------------------------------------------------------


def threshold_experiment(cell_type, pipes, n_splits, heldout):
    normal, defect, digest = load_cells(cell_type)
    rows = {}
    for label, pipe in pipes.items():
        head, middle, wrapper = split_model(pipe)
        H_normal, H_defect = head_output(head, normal, defect, digest, cell_type)
        t0 = time.perf_counter()
        for split in range(n_splits):
            perm = np.random.default_rng(split).permutation(len(normal))
            half = len(normal) // 2
            train, held = perm[:half], perm[half:]
            Z_train, (Z_held, Z_def) = middle_output(
                middle, head, H_normal[train], [H_normal[held], H_defect], digest, cell_type,
                ("split", split),
            )
            clf = clone(wrapper).set_params(random_state=split).fit(Z_train)
            a_held, a_def = -clf.score_samples(Z_held), -clf.score_samples(Z_def)
            thresholds = {
                "kde": lambda a, clf=clf: clf.set_params(alpha=a).threshold_,
                "order stat.": lambda a, clf=clf: conformal_threshold(clf.train_scores_, a),
            }
            for rule, threshold in thresholds.items():
                for alpha in ALPHAS:
                    _record(rows, (label, rule, alpha), threshold(alpha), a_held, a_def)
            if heldout:
                n_cal = int(round(HELDOUT_FRACTION * half))
                fit_idx, cal_idx = train[n_cal:], train[:n_cal]
                Z_fit, (Z_cal, Z_held2, Z_def2) = middle_output(
                    middle, head, H_normal[fit_idx],
                    [H_normal[cal_idx], H_normal[held], H_defect], digest, cell_type,
                    ("heldout", split, HELDOUT_FRACTION),
                )
                clf = clone(wrapper).set_params(random_state=split).fit(Z_fit)
                a_cal = -clf.score_samples(Z_cal)
                a_held, a_def = -clf.score_samples(Z_held2), -clf.score_samples(Z_def2)
                for alpha in ALPHAS:
                    t = conformal_threshold(a_cal, alpha)
                    _record(rows, (label, "held-out 1/3", alpha), t, a_held, a_def)
        print(f"  {cell_type}: {label}: {n_splits} splits in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
    sizes = (len(normal), len(defect))
    return {k: {m: (float(np.mean(v)), float(np.std(v))) for m, v in d.items()}
            for k, d in rows.items()}, sizes


def _record(rows, key, t, a_held, a_def):
    rec = rows.setdefault(key, {"far": [], "recall": []})
    rec["far"].append(float(np.mean(a_held > t)))
    rec["recall"].append(float(np.mean(a_def > t)))


def threshold_markdown(results, sizes, n_splits, quick, command):
    rules = list(dict.fromkeys(r for res in results.values() for (_, r, _) in res))
    labels = list(dict.fromkeys(m for res in results.values() for (m, _, _) in res))
    lines = [
        "## Threshold calibration: false-alarm rate vs alpha on ELPV",
        "",
        f"`{command}`. Normal cells split at random in halves, {n_splits} times: fit on one "
        "half, false-alarm rate (FAR) on the other half, recall on the defective cells "
        "(probability 1); mean (std) over the splits. *composition*: `make_pipeline("
        "DeepPoolEmbedder(), StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer()))` "
        "(the library's default `restandardize=\"auto\"` re-standardizes each cross-validation "
        "fold, because its input is standardized on the training set); *restandardize=False*: "
        "the scaler was fitted on the held-out folds too. *cv=5 (before)*: the wrapper's "
        "former default, 5-fold scores, instead of the leave-one-out scores that "
        "`cv=\"auto\"` (the default) gives k-NN scorers. *kde*: the library's threshold, "
        "`kde_.ppf(1 - alpha)` of the out-of-sample training scores; *order stat.*: the "
        "split-conformal order statistic of the same scores; *held-out 1/3*: "
        "`fit_calibrated(model, X, calibration_size=1/3)`, the whole model fitted on two "
        "thirds, threshold = order statistic of the last third's scores. "
        f"**bold**: FAR more than {TOLERANCE} away from alpha. "
        + ", ".join(f"{t}: {n} normal / {d} defective cells" for t, (n, d) in sizes.items())
        + "."
        + (f" Quick run: {QUICK['splits']} splits, autoencoder `max_epochs="
           f"{QUICK['cpcae_max_epochs']}`." if quick else ""),
        "",
        "| cells | model | rule | "
        + " | ".join(f"FAR α={a:g}" for a in ALPHAS)
        + " | "
        + " | ".join(f"recall α={a:g}" for a in ALPHAS)
        + " |",
        "|---|---|---|" + "---:|" * (2 * len(ALPHAS)),
    ]
    for cell_type, res in results.items():
        for label in labels:
            for rule in rules:
                if (label, rule, ALPHAS[0]) not in res:
                    continue
                far = [(a, *res[(label, rule, a)]["far"]) for a in ALPHAS]
                rec = [res[(label, rule, a)]["recall"][0] for a in ALPHAS]
                cells = [
                    (f"**{m:.3f}**" if abs(m - a) > TOLERANCE else f"{m:.3f}") + f" ({s:.3f})"
                    for a, m, s in far
                ]
                lines.append(f"| {cell_type} | {label} | {rule} | " + " | ".join(cells)
                             + " | " + " | ".join(f"{r:.3f}" for r in rec) + " |")
    lines += ["", f"Machine: {machine_description()}."]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# last step (paper's Tables 6/7)
# --------------------------------------------------------------------------------------

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


def last_step_experiment(cell_type):
    from skcpcae.datasets import load_elpv
    from skcpcae.embedding import DeepPoolEmbedder

    data = load_elpv(cell_type, include_uncertain=True, random_state=0)
    head = [DeepPoolEmbedder(pooling="max")]
    digest = hashlib.sha256(data.X_train.tobytes() + data.X_test.tobytes()).hexdigest()[:16]
    H_train, H_test = head_output(head, data.X_train, data.X_test, digest, f"{cell_type}-u")
    proba = np.asarray(data.proba_test, dtype=np.float64)
    scaler = StandardScaler().fit(H_train)
    train, test = scaler.transform(H_train), scaler.transform(H_test)
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
    parser.add_argument("--splits", type=int, default=None,
                        help="random half/half splits (default 10, --quick 3)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['splits']} splits, autoencoder max_epochs="
                             f"{QUICK['cpcae_max_epochs']}")
    parser.add_argument("--cells", nargs="+", default=["mono", "poly"], choices=["mono", "poly"])
    parser.add_argument("--models", nargs="+", default=None,
                        help="labels (or prefixes) of the models to run; default all")
    parser.add_argument("--no-heldout", dest="heldout", action="store_false",
                        help="skip the held-out calibration rule (one more fit per split)")
    parser.add_argument("--no-last-step", dest="last_step", action="store_false")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    n_splits = args.splits or (QUICK["splits"] if args.quick else 10)

    pipes = models(args.quick)
    if args.models:
        pipes = {k: v for k, v in pipes.items()
                 if any(k == m or k.startswith(m) or k == f"preset {m}" for m in args.models)}
    thr, sizes, last = {}, {}, {}
    for cell_type in args.cells:
        thr[cell_type], sizes[cell_type] = threshold_experiment(
            cell_type, pipes, n_splits, args.heldout)
        if args.last_step:
            last[cell_type] = last_step_experiment(cell_type)

    # quoted as a shell would need it ("preset best" is one model label)
    command = "python benchmarks/threshold.py " + shlex.join(argv if argv is not None
                                                             else sys.argv[1:])
    thr_md = threshold_markdown(thr, sizes, n_splits, args.quick, command.strip())
    print(thr_md)
    if last:
        last_md = last_step_markdown(last)
        print("\n" + last_md)
    if args.write:
        update_section(args.docs, "threshold", thr_md)
        if last:
            update_section(args.docs, "last_step", last_md)
        print(f"\nwrote {args.docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
