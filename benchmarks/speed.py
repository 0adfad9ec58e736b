"""Where the time of the `best` preset goes: decode, backbone, k-NN, threshold (ELPV, 2 cores).

    python benchmarks/speed.py [--cells mono poly] [--threads 2] [--write]

For each ELPV cell type (the project's protocol split) the preset
``make_preset("best")`` is fitted and scored once end to end, as the harness times it, and its
work is then attributed to stages by running the same pipeline with timers around them:

* decode: reading the PNG files with ``skcpcae.datasets.load_images`` (the CLI's reader), as
  many files of that cell type as the split has images (``load_elpv`` decodes once per
  process, so the harness's fit/score figures do not include it);
* weights: ``DeepPatchEmbedder.fit`` (building the network, loading the offline weights);
* backbone: ``DeepPatchEmbedder.transform`` (the CNN forward passes and patch aggregation);
* k-NN: every call of ``PatchKNNScorer``'s patch-distance kernel (leave-one-out scores of
  the training maps, which the threshold's KDE is fitted on with its default
  ``cv="auto"``, in one pass of ``ceil(n_train / batch_size)`` calls; then the test queries);
* threshold: the rest of ``KDEThresholdClassifier`` (bookkeeping, the KDE, the
  threshold and ``score_samples`` plumbing) and the top-k image score.

Figures are wall-clock seconds on the machine named below; the load average (1 minute)
before and after each cell is printed beside them, since the machine may be shared.
"""

import argparse
import datetime
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _cache import DOCS

from skcpcae import make_preset
from skcpcae.datasets import load_elpv, load_images
from skcpcae.outlier import PatchKNNScorer
from skcpcae.utils._report import machine_description, update_section

#: issue #15's speed goals for the best preset on 2 cores
FIT_GOAL_S = 60.0
SCORE_GOAL = 25.0


class _KernelTimer:
    """Adds up the wall time spent in ``PatchKNNScorer._distances`` while active."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def __enter__(self):
        original = PatchKNNScorer._distances
        self._original = original
        timer = self

        def timed(scorer, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(scorer, *args, **kwargs)
            finally:
                timer.seconds += time.perf_counter() - t0
                timer.calls += 1

        PatchKNNScorer._distances = timed
        return self

    def __exit__(self, *exc):
        PatchKNNScorer._distances = self._original


def time_stages(embedder, threshold, X_fit, X_score, *, fit_embedder=True):
    """Seconds of each stage of ``embedder -> threshold``: fit on ``X_fit``, score ``X_score``.

    ``backbone_*``: the embedder (``fit_transform`` when ``fit_embedder``, else ``transform``);
    ``scorer_*``: the threshold wrapper as a whole; ``knn_*``: the :class:`_KernelTimer` of
    its patch distances (``.seconds`` and ``.calls``), part of ``scorer_*``.
    """
    t0 = time.perf_counter()
    Z = embedder.fit_transform(X_fit) if fit_embedder else embedder.transform(X_fit)
    out = {"backbone_fit": time.perf_counter() - t0}
    with _KernelTimer() as out["knn_fit"]:
        t0 = time.perf_counter()
        threshold.fit(Z)
        out["scorer_fit"] = time.perf_counter() - t0
    del Z  # the training features are not kept while scoring (peak memory)
    t0 = time.perf_counter()
    Zq = embedder.transform(X_score)
    out["backbone_score"] = time.perf_counter() - t0
    with _KernelTimer() as out["knn_score"]:
        t0 = time.perf_counter()
        threshold.score_samples(Zq)
        out["scorer_score"] = time.perf_counter() - t0
    return out


def _elpv_files(cell, n):
    """Paths of the first ``n`` ELPV PNG files of a cell type."""
    import elpv_dataset

    root = Path(elpv_dataset.__file__).parent / "data"
    names = np.genfromtxt(root / "labels.csv", dtype=["|S19", "<f8", "|S4"],
                          names=["path", "probability", "type"])
    paths = [root / p.decode() for p, t in zip(names["path"], names["type"], strict=True)
             if t.decode() == cell]
    return paths[:n]


def _load_average():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        return float("nan")


def measure(cell, quick=False):
    """One row of timings (seconds) for a cell type (``quick``: a few images, a smoke run)."""
    data = load_elpv(cell)
    X_tr, X_te = data.X_train, data.X_test
    if quick:
        X_tr, X_te = X_tr[:24], X_te[:16]
    load_before = _load_average()

    # decode: the same number of PNG files as the split holds, through the CLI's reader
    t0 = time.perf_counter()
    load_images(_elpv_files(cell, len(X_tr)))
    decode_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_images(_elpv_files(cell, len(X_te)))
    decode_score = time.perf_counter() - t0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # end to end, as benchmarks/run.py times it
        pipe = make_preset("best")
        t0 = time.perf_counter()
        pipe.fit(X_tr)
        fit_total = time.perf_counter() - t0
        t0 = time.perf_counter()
        pipe.score_samples(X_te)
        score_total = time.perf_counter() - t0

        # the same work, stage by stage
        pipe = make_preset("best")
        embedder, threshold = pipe[:-1], pipe[-1]
        t0 = time.perf_counter()
        embedder[-1].fit(X_tr[:1])
        weights = time.perf_counter() - t0
        t = time_stages(embedder, threshold, X_tr, X_te, fit_embedder=False)
        knn_fit, knn_score = t["knn_fit"], t["knn_score"]
    return {
        "cell": cell,
        "n_train": len(X_tr),
        "n_test": len(X_te),
        "fit_total": fit_total,
        "score_total": score_total,
        "decode_fit": decode_fit,
        "weights": weights,
        "backbone_fit": t["backbone_fit"],
        "knn_fit": knn_fit.seconds,
        "knn_fit_calls": knn_fit.calls,
        "threshold_fit": t["scorer_fit"] - knn_fit.seconds,
        "decode_score": decode_score,
        "backbone_score": t["backbone_score"],
        "knn_score": knn_score.seconds,
        "knn_score_calls": knn_score.calls,
        "threshold_score": t["scorer_score"] - knn_score.seconds,
        "load_before": load_before,
        "load_after": _load_average(),
    }


def format_table(rows):
    lines = [
        "| cell | phase | images | decode s | weights s | backbone s | k-NN s | threshold s | "
        "total s (end to end) | images/s (end to end) | images/s with decode | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        load = f"{r['load_before']:.1f} / {r['load_after']:.1f}"
        lines.append(
            f"| {r['cell']} | fit | {r['n_train']} | {r['decode_fit']:.1f} | {r['weights']:.1f} "
            f"| {r['backbone_fit']:.1f} | {r['knn_fit']:.1f} ({r['knn_fit_calls']} calls) "
            f"| {r['threshold_fit']:.2f} | {r['fit_total']:.1f} "
            f"| {r['n_train'] / r['fit_total']:.1f} "
            f"| {r['n_train'] / (r['fit_total'] + r['decode_fit']):.1f} | {load} |")
        lines.append(
            f"| {r['cell']} | score | {r['n_test']} | {r['decode_score']:.1f} | - "
            f"| {r['backbone_score']:.1f} | {r['knn_score']:.1f} ({r['knn_score_calls']} calls) "
            f"| {r['threshold_score']:.2f} | {r['score_total']:.1f} "
            f"| {r['n_test'] / r['score_total']:.1f} "
            f"| {r['n_test'] / (r['score_total'] + r['decode_score']):.1f} | {load} |")
    return "\n".join(lines)


def goal_lines(rows):
    out = []
    for r in rows:
        fit_ok = "met" if r["fit_total"] <= FIT_GOAL_S else "not met"
        speed = r["n_test"] / r["score_total"]
        speed_ok = "met" if speed >= SCORE_GOAL else "not met"
        share = {k: r[f"{k}_score"] / r["score_total"] for k in ("backbone", "knn")}
        out.append(
            f"- {r['cell']}: fit {r['fit_total']:.1f} s for {r['n_train']} cells (goal <= "
            f"{FIT_GOAL_S:.0f} s, {fit_ok}); scoring {speed:.1f} images/s (goal >= "
            f"{SCORE_GOAL:.0f}, {speed_ok}); of the scoring time the backbone takes "
            f"{share['backbone']:.0%}, the k-NN {share['knn']:.0%}.")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="+", default=["mono", "poly"], choices=["mono", "poly"])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    p.add_argument("--quick", action="store_true", help="smoke run on a few images")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--docs", default=str(DOCS))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}", flush=True)
    rows = []
    for cell in args.cells:
        rows.append(measure(cell, quick=args.quick))
        print(format_table(rows[-1:]), flush=True)
    table = format_table(rows)
    goals = goal_lines(rows)
    print()
    print(table)
    print("\n".join(goals))
    if args.write:
        cmd = " ".join(["python benchmarks/speed.py"] + (argv if argv is not None else sys.argv[1:]))
        text = (
            "### Where the time goes: the `best` preset, stage by stage\n\n"
            f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
            f"Machine: {machine_description()}  \n"
            "Seconds per stage (see the script's docstring): decode = reading the PNG files "
            "(not in the harness's fit/score, whose images are decoded once beforehand); "
            "weights = building the backbone; backbone = CNN forward passes; k-NN = the "
            "patch-distance kernel (at fit time the leave-one-out scores of the training maps, "
            "which the KDE is fitted on); threshold = the rest of the KDE wrapper. 'Total' is "
            "a separate end-to-end fit / score_samples of the preset, timed as the harness "
            "does; load avg = the "
            "1-minute load average before / after the cell (2 cores: above 2 the figures are "
            "slowed by other work).\n\n" + table + "\n\n" + "\n".join(goals))
        update_section(args.docs, "speed", text)
        print(f"\nwrote {args.docs} (section 'speed')")
    return rows


if __name__ == "__main__":
    main()
