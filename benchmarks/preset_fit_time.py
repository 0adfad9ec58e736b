"""Fit time of a whole preset on the ELPV training normals (issue #11: `aligned` <= 60 s, mono).

    python benchmarks/preset_fit_time.py [--preset aligned] [--cell-type mono]

Fits ``skcpcae.make_preset(PRESET)`` once on ``load_elpv(CELL_TYPE).X_train`` (294 mono / 460
poly cells, 300x300 gray) and prints the wall-clock time and the machine's 1-minute load
average at the end of the fit: on a shared machine the figure is only as good as the load.
"""

import argparse
import os
import time

from skcpcae import make_preset
from skcpcae.datasets import load_elpv
from skcpcae.utils._report import machine_description


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="aligned")
    p.add_argument("--cell-type", default="mono", choices=["mono", "poly"])
    args = p.parse_args(argv)
    X = load_elpv(args.cell_type).X_train
    t = time.perf_counter()
    make_preset(args.preset).fit(X)
    fit_s = time.perf_counter() - t
    print(f"{args.preset} fit on {len(X)} {args.cell_type} cells: {fit_s:.1f} s "
          f"(1-min load average {os.getloadavg()[0]:.2f}); {machine_description()}")


if __name__ == "__main__":
    main()
