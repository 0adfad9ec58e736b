"""CPCAE benchmark on ELPV (protocol split): speed of the autoencoder and quality of the full
pipeline with and without cross-fitting and sparsity.

    python benchmarks/cpcae.py [--cell-types mono poly] [--write]

Prints, per cell type: the autoencoder's fit wall time with the default settings, its
transform throughput (images/s at 300x300), and AUROC / AP of the full paper pipeline
(ECC -> gamma -> CPCAE -> DeepPoolEmbedder -> StandardScaler -> k-NN) for
cv=None / cv=5 and sparsity on / off.
"""

import argparse
import datetime
import sys
import time
import warnings

from _cache import DOCS

from skcpcae._pipelines import make_cpcae_pipeline
from skcpcae.datasets import load_elpv
from skcpcae.metrics import image_auroc, image_average_precision
from skcpcae.residuals import CPCAEResidualMap
from skcpcae.utils._report import machine_description, update_section

CONFIGS = {
    "default (cv=None, sparsity=1e-4)": {},
    "cv=5": {"cpcaeresidualmap__cv": 5},
    "sparsity=0": {"cpcaeresidualmap__sparsity": 0.0},
}


def autoencoder_speed(b):
    ae = CPCAEResidualMap(random_state=0)
    t0 = time.perf_counter()
    ae.fit(b.X_train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ae.transform(b.X_test)
    ips = len(b.X_test) / (time.perf_counter() - t0)
    return fit_s, ips


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell-types", nargs="+", default=["mono", "poly"])
    p.add_argument("--configs", nargs="*", default=list(CONFIGS),
                   help="pipeline configurations to score (none: speed only)")
    p.add_argument("--no-speed", action="store_true", help="skip the autoencoder timing")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    print(f"machine: {machine_description()}", flush=True)
    speed_rows, rows = [], []
    for ct in args.cell_types:
        b = load_elpv(ct)
        if not args.no_speed:
            fit_s, ips = autoencoder_speed(b)
            speed_rows.append((ct, len(b.X_train), fit_s, ips))
            print(f"{ct}: CPCAE fit {fit_s:.1f}s on {len(b.X_train)} cells, "
                  f"transform {ips:.1f} images/s", flush=True)
        for name in args.configs:
            pipe = make_cpcae_pipeline(threshold=False, **CONFIGS[name])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                t0 = time.perf_counter()
                pipe.fit(b.X_train)
                t1 = time.perf_counter()
                s = -pipe.score_samples(b.X_test)
                t2 = time.perf_counter()
            row = (ct, name, image_auroc(b.y_test, s), image_average_precision(b.y_test, s),
                   t1 - t0, len(b.X_test) / (t2 - t1))
            rows.append(row)
            print(f"  {name:34s} AUROC {row[2]:.3f} AP {row[3]:.3f} fit {row[4]:.0f}s "
                  f"{row[5]:.1f} img/s", flush=True)
    t1 = ("| cells | n train | CPCAE fit s (defaults) | CPCAE transform images/s |\n"
          "|---|---|---|---|\n" + "\n".join(
              f"| {c} | {n} | {f:.1f} | {i:.1f} |" for c, n, f, i in speed_rows))
    t2 = ("| cells | full pipeline | AUROC | AP | pipeline fit s | pipeline images/s |\n"
          "|---|---|---|---|---|---|\n" + "\n".join(
              f"| {c} | {n} | {a:.3f} | {ap:.3f} | {f:.0f} | {i:.1f} |"
              for c, n, a, ap, f, i in rows))
    print("\n" + t1 + "\n\n" + t2)
    if args.write:
        cmd = "python benchmarks/cpcae.py " + " ".join(argv if argv is not None else sys.argv[1:])
        head = (f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
                f"Machine: {machine_description()}\n\n")
        if speed_rows:
            update_section(DOCS, "cpcae-speed",
                           "### CPCAE autoencoder speed (default settings)\n\n" + head + t1)
        if rows:
            update_section(DOCS, "cpcae",
                           "### The paper pipeline: cross-fitting and sparsity\n\n" + head + t2)


if __name__ == "__main__":
    main()
