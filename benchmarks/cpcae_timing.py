"""Time CPCAEResidualMap on ELPV-sized data (300x300 gray, 294 training images).

    python benchmarks/cpcae_timing.py                       # the defaults
    python benchmarks/cpcae_timing.py --image-size 96 --max-epochs 10

Prints the fit time, the transform rate (wall clock and process CPU time: on a shared machine,
run with OMP_NUM_THREADS=1 and read the CPU figures as the time of one free core) and, as a sanity check of the residual maps, the
AUROC of the mean residual per image (the "AE (L2)"-style score) on the ELPV test split.
Needs the optional package elpv-dataset.
"""

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from skcpcae.datasets import load_elpv
from skcpcae.residuals import CPCAEResidualMap


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell-type", default="mono")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--patch-size", type=int, default=None)
    parser.add_argument("--channels", type=str, default=None, help="e.g. 16,32,64")
    parser.add_argument("--latent-dim", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--n-test", type=int, default=None, help="test images (all if unset)")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args()

    params = {
        "input_size": args.image_size,
        "patch_size": args.patch_size,
        "latent_dim": args.latent_dim,
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "channels": tuple(int(c) for c in args.channels.split(",")) if args.channels else None,
    }
    params = {k: v for k, v in params.items() if v is not None}
    data = load_elpv(args.cell_type)
    X_test, y_test = data.X_test, data.y_test
    if args.n_test:
        keep = np.random.default_rng(0).permutation(len(X_test))[: args.n_test]
        X_test, y_test = X_test[keep], y_test[keep]
    est = CPCAEResidualMap(random_state=0, verbose=args.verbose, **params)
    print(est)
    print(f"train {data.X_train.shape}, test {X_test.shape}")
    t0, c0 = time.perf_counter(), time.process_time()
    est.fit(data.X_train)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    R = est.transform(X_test)
    tr_s, tr_cpu = time.perf_counter() - t0, time.process_time() - c0
    loss = est.net_.history[-1, "train_loss"]
    score = R.reshape(len(R), -1).mean(axis=1)
    print(
        f"n_patches={est.n_patches_} fit={fit_s:.1f}s (cpu {fit_cpu:.1f}s) "
        f"transform={len(X_test) / tr_s:.1f} img/s (cpu {len(X_test) / tr_cpu:.1f} img/s) "
        f"final_loss={loss:.5f} AUROC(mean residual)={roc_auc_score(y_test, score):.3f}"
    )


if __name__ == "__main__":
    main()
