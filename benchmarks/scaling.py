"""How the `best` preset scales with the number of training normals: fit time, memory, images/s.

    python benchmarks/scaling.py [--sizes 100 300 1000 3000] [--n-queries 200] [--threads 1]
                                 [--write]

Training sets of ``n`` normal cells are drawn from ELPV's protocol training normals (the
first halves of the mono and the poly normals, 294 + 502 cells) and, past those 796 cells,
from their flips and 90-degree rotations (the 8 symmetries of a square cell), in a fixed
order: the mono cells, then the poly cells, then the transformed mono cells, then the
transformed poly cells, each group shuffled with ``numpy.random.default_rng(0)``. So 100 and
300 are (almost) plain mono cells and 3000 needs the symmetries. The test split is not used
for anything but the ``n_queries`` images timed at scoring (the first of the mono test split);
no AUROC is computed here, the figures are costs.

For every ``n`` the preset ``make_preset("best")`` is fitted once, stage by stage as
``Pipeline.fit`` runs them (``DeepPatchEmbedder.fit_transform``, then the KDE threshold
around ``PatchKNNScorer``, whose fit scores every training map leave-one-out against all the
others, the scores the KDE is fitted on: ``cv="auto"``), and then scores the queries, again
stage by stage:

* fit s = backbone s + k-NN s (every call of the patch-distance kernel) + the rest of the
  threshold (KDE, bookkeeping);
* images/s = queries / (backbone + k-NN + rest) at scoring;
* peak MiB = peak resident memory above the level before fit, during fit and scoring
  (the harness's meter); bank MiB = the size of the fitted memory (``memory_``).

The last lines fit the measured k-NN costs with power laws in ``n`` and say at which ``n``
the exact k-NN search would break the speed goals by itself (scoring below 25 images/s,
fit above 60 s), which is where an approximate search (a coreset per position or faiss)
should take over.
"""

import argparse
import datetime
import gc
import sys
import warnings

import numpy as np
from _cache import DOCS
from _harness import _PeakRSS
from speed import FIT_GOAL_S, SCORE_GOAL, time_stages

from skcpcae import make_preset
from skcpcae.datasets import load_elpv
from skcpcae.utils._report import machine_description, update_section

__all__ = ["training_pool", "measure", "main"]


def _symmetry(image, t):
    """The ``t``-th of the 8 symmetries of a square image (``t = 0``: the image)."""
    out = np.rot90(image, t % 4)
    return np.ascontiguousarray(out[:, ::-1] if t >= 4 else out)


def training_pool(n, random_state=0):
    """``n`` normal training cells: mono, poly, then their flips / rotations (see above)."""
    rng = np.random.default_rng(random_state)
    originals = [load_elpv("mono").X_train, load_elpv("poly").X_train]
    order = []  # (source, index, symmetry)
    for t_group in ([0], list(range(1, 8))):
        for src, X in enumerate(originals):
            group = [(src, i, t) for i in range(len(X)) for t in t_group]
            order += [group[j] for j in rng.permutation(len(group))]
    if n > len(order):
        raise ValueError(f"At most {len(order)} training cells, got n={n}.")
    return np.stack([_symmetry(originals[s][i], t) for s, i, t in order[:n]])


def measure(n, X_query):
    """One row of costs for ``n`` training cells."""
    X = training_pool(n)
    gc.collect()
    with _PeakRSS() as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pipe = make_preset("best")
        embedder, threshold = pipe[:-1], pipe[-1]
        t = time_stages(embedder, threshold, X, X_query)
    backbone_fit, scorer_fit = t["backbone_fit"], t["scorer_fit"]
    backbone_score, scorer_score = t["backbone_score"], t["scorer_score"]
    knn_fit, knn_score = t["knn_fit"], t["knn_score"]
    bank = threshold.estimator_.memory_
    row = {
        "n_train": n,
        "fit_s": backbone_fit + scorer_fit,
        "backbone_fit_s": backbone_fit,
        "knn_fit_s": knn_fit.seconds,
        "rest_fit_s": scorer_fit - knn_fit.seconds,
        "n_queries": len(X_query),
        "images_per_s": len(X_query) / (backbone_score + scorer_score),
        "backbone_ms_per_image": 1e3 * backbone_score / len(X_query),
        "knn_ms_per_image": 1e3 * knn_score.seconds / len(X_query),
        "rest_ms_per_image": 1e3 * (scorer_score - knn_score.seconds) / len(X_query),
        "peak_mib": mem.mib,
        "bank_mib": bank.nbytes / 2**20,
        "bank_shape": "x".join(map(str, bank.shape)),
    }
    del pipe, embedder, threshold, bank
    gc.collect()
    return row


def format_table(rows):
    lines = [
        "| normals | fit s | backbone s (with weights) | k-NN s | rest s | images/s (score) "
        "| backbone ms/img "
        "| k-NN ms/img | rest ms/img | peak MiB | bank MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_train']} | {r['fit_s']:.1f} | {r['backbone_fit_s']:.1f} | "
            f"{r['knn_fit_s']:.1f} | {r['rest_fit_s']:.2f} | {r['images_per_s']:.1f} | "
            f"{r['backbone_ms_per_image']:.1f} | {r['knn_ms_per_image']:.2f} | "
            f"{r['rest_ms_per_image']:.2f} | {r['peak_mib']:.0f} | {r['bank_mib']:.0f} |")
    return "\n".join(lines)


def _power_law(ns, ys):
    """``(a, b)`` of ``y = a * n**b`` fitted on the rows with ``y > 0`` (log-log least squares)."""
    ns, ys = np.asarray(ns, float), np.asarray(ys, float)
    keep = ys > 0
    b, log_a = np.polyfit(np.log(ns[keep]), np.log(ys[keep]), 1)
    return float(np.exp(log_a)), float(b)


def crossover_lines(rows):
    """Where the exact k-NN search alone would break the speed goals (fitted power laws)."""
    if len(rows) < 2:
        return []
    ns = [r["n_train"] for r in rows]
    a_s, b_s = _power_law(ns, [r["knn_ms_per_image"] for r in rows])
    a_f, b_f = _power_law(ns, [r["knn_fit_s"] for r in rows])
    backbone_ms = float(np.median([r["backbone_ms_per_image"] for r in rows]))
    rest_ms = float(np.median([r["rest_ms_per_image"] for r in rows]))
    # per training image, from the largest set (the weights' loading, a constant, weighs least)
    big = max(rows, key=lambda r: r["n_train"])
    backbone_per_fit_image = big["backbone_fit_s"] / big["n_train"]
    budget_ms = 1e3 / SCORE_GOAL - backbone_ms - rest_ms  # what the k-NN may take per image
    n_equal = (backbone_ms / a_s) ** (1 / b_s)
    n_speed = (budget_ms / a_s) ** (1 / b_s) if budget_ms > 0 else float("nan")
    n_fit = (FIT_GOAL_S / a_f) ** (1 / b_f)
    n_fit_backbone = FIT_GOAL_S / backbone_per_fit_image
    knn_ms = float(np.median([r["knn_ms_per_image"] for r in rows]))
    if b_s <= 0.1:  # flat: the search per query does not grow with n (retrieval)
        scoring = (f"- Scoring: the backbone takes {backbone_ms:.1f} ms per image whatever n; "
                   f"the k-NN takes about {knn_ms:.1f} ms per image whatever n as well (its "
                   f"exponent is {b_s:.2f}: each map is compared patch by patch with the "
                   "n_retrieve retrieved maps only), so it never catches up with the backbone.")
    else:
        scoring = (f"- Scoring: the backbone takes {backbone_ms:.1f} ms per image whatever n; "
                   f"the k-NN catches up with it at n ~ {n_equal:,.0f} normals; "
                   + (f"alone it would pull scoring below {SCORE_GOAL:.0f} images/s at n ~ "
                      f"{n_speed:,.0f}." if np.isfinite(n_speed) else
                      f"the backbone alone is already slower than {SCORE_GOAL:.0f} images/s "
                      "here, so no k-NN search, exact or approximate, can reach the goal on "
                      "this setting."))
    out = [
        f"- k-NN time per scored image ~ {a_s:.2e} * n^{b_s:.2f} ms; k-NN time at fit ~ "
        f"{a_f:.2e} * n^{b_f:.2f} s (every training map scored leave-one-out).",
        scoring,
        f"- Fit: the k-NN alone reaches {FIT_GOAL_S:.0f} s at n ~ {n_fit:,.0f} normals; the "
        f"backbone ({backbone_per_fit_image * 1e3:.0f} ms per training image) reaches it at "
        f"n ~ {n_fit_backbone:,.0f}.",
    ]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[100, 300, 1000, 3000])
    p.add_argument("--n-queries", type=int, default=200)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--docs", default=str(DOCS))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}", flush=True)
    X_query = load_elpv("mono").X_test[: args.n_queries]
    rows = []
    for n in args.sizes:
        rows.append(measure(n, X_query))
        print(format_table(rows[-1:]), flush=True)
    table = format_table(rows)
    lines = crossover_lines(rows)
    print()
    print(table)
    print("\n".join(lines))
    if args.write:
        cmd = " ".join(["python benchmarks/scaling.py"]
                       + (argv if argv is not None else sys.argv[1:]))
        text = (
            "### Scaling with the training set: the `best` preset\n\n"
            f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
            f"Machine: {machine_description()}  \n"
            "Training normals: ELPV's protocol training cells (mono, then poly), then their "
            "flips and 90-degree rotations to reach 3000 (the script's docstring); scoring: "
            f"{len(X_query)} mono test cells. Fit = backbone + k-NN (the patch-distance kernel: "
            "leave-one-out scores of the training maps, which the threshold's KDE is fitted "
            "on) + rest (KDE). "
            "Peak MiB: peak resident memory above the level before fit; bank MiB: the fitted "
            "patch memory (float32, n x 19 x 19 x 432).\n\n"
            + table + "\n\n" + "\n".join(lines))
        update_section(args.docs, "scaling", text)
        print(f"\nwrote {args.docs} (section 'scaling')")
    return rows


if __name__ == "__main__":
    main()
