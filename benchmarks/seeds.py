"""Seed spread: the test AUROC of a preset fitted with several random seeds on ELPV.

    python benchmarks/seeds.py [--presets aligned] [--cells mono poly] [--seeds 0 1 2 3 4]
                               [--threads 1] [--write]

The autoencoder presets (``aligned``, ``paper``) draw their weights, patch order and folds
from ``random_state``; the AE-L2 baseline (``ae-l2``) likewise. A single run's test AUROC is
one draw, and the differences that the comparison tables turn on (a hundredth or two) are of
the size of the spread between draws. This script fits each preset once per seed on the
protocol's training normals, scores the protocol's test split (probability-0 normals against
probability-1 defects, as ``benchmarks/run.py``) and prints every seed's AUROC with their
mean, standard deviation and range. Nothing is selected here: the seeds are fixed in advance
and every one is reported. Deterministic presets (``best``, ``deep-feature``: no random step
that changes a score) are refused, since every seed gives the same figure.
"""

import argparse
import datetime
import sys
import time

import numpy as np
from _cache import DOCS

from skcpcae import make_preset
from skcpcae.datasets import load_elpv
from skcpcae.metrics import anomaly_scores, image_auroc
from skcpcae.utils._report import machine_description, update_section

RANDOM = ("aligned", "paper", "ae-l2")


def _model(name, seed):
    if name == "ae-l2":
        from skcpcae.baselines import AEL2Detector

        return AEL2Detector(random_state=seed)
    return make_preset(name, random_state=seed)


def spread(name, cell, seeds, verbose=True):
    """``(aurocs, fit seconds)`` of preset ``name`` on ELPV ``cell``, one per seed."""
    b = load_elpv(cell, include_uncertain=True)
    proba = np.asarray(b.proba_test)
    certain = (proba == 0) | (proba == 1)
    y = np.asarray(b.y_test)[certain]
    X_test = b.X_test[certain]
    aurocs, fits = [], []
    for seed in seeds:
        t = time.perf_counter()
        model = _model(name, seed).fit(b.X_train)
        fits.append(time.perf_counter() - t)
        aurocs.append(image_auroc(y, anomaly_scores(model, X_test)))
        if verbose:
            print(f"{name} {cell} seed {seed}: AUROC {aurocs[-1]:.3f} (fit {fits[-1]:.0f} s)",
                  flush=True)
    return np.array(aurocs), np.array(fits)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["aligned"], choices=RANDOM)
    p.add_argument("--cells", nargs="+", default=["mono", "poly"], choices=["mono", "poly"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--write", action="store_true", help="write the table to docs/benchmarks.md")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    lines = ["| preset | cells | " + " | ".join(f"seed {s}" for s in args.seeds)
             + " | mean | std | range |", "|---" * (len(args.seeds) + 5) + "|"]
    for name in args.presets:
        for cell in args.cells:
            a, _ = spread(name, cell, args.seeds)
            lines.append(f"| {name} | {cell} | " + " | ".join(f"{v:.3f}" for v in a)
                         + f" | {a.mean():.3f} | {a.std(ddof=1) if len(a) > 1 else 0:.3f} | "
                         f"{a.max() - a.min():.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = "python benchmarks/seeds.py " + " ".join(argv or sys.argv[1:])
        update_section(DOCS, "seeds",
                       "### Seed spread of the autoencoder rows (test split)\n\n"
                       f"Command: `{cmd.strip()}`  \nDate: {datetime.date.today()}  \n"
                       f"Machine: {machine_description()}\n\n"
                       "Test AUROC (probability-0 normals vs probability-1 defects) of each "
                       "preset fitted once per seed (`random_state`: the autoencoder's weights, "
                       "patch order and folds); the seeds are fixed in advance and all are "
                       "shown. `std` is the sample standard deviation.\n\n" + table)


if __name__ == "__main__":
    main()
