"""Fit time of a whole preset on the ELPV training normals (issue #11: `aligned` <= 60 s, mono).

    python benchmarks/preset_fit_time.py [--preset aligned] [--cell-type mono] [--repeats 3]
                                         [--write]

Fits ``skcpcae.make_preset(PRESET)`` ``--repeats`` times on ``load_elpv(CELL_TYPE).X_train``
(294 mono / 460 poly cells, 300x300 gray) and prints each run's wall-clock time and the
machine's 1-minute load average at the end of the fit (the fit's own threads count in it: on a
shared machine the figure is only as good as the load), then the median and how many runs
meet issue #11's target (60 s, for the `aligned` preset on mono cells). ``--write`` puts the
table in ``docs/benchmarks.md`` (section "preset-fit-time").

Before the timed runs, two fits of the same preset on eight small random images: the first
pays the process's one-time costs (the lazy imports of timm, PIL and torch's optimizer
machinery), the second shows what such a small fit costs without them. The script prints both
(and the table's notes give them), and the fit times are those of a warm process, as for every
fit after the first one in a session.
"""

import argparse
import datetime
import os
import sys
import time

import numpy as np
from _cache import DOCS

from skcpcae import make_preset
from skcpcae.datasets import load_elpv
from skcpcae.utils._report import machine_description, update_section

TARGET_S = 60.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="aligned")
    p.add_argument("--cell-type", default="mono", choices=["mono", "poly"])
    p.add_argument("--repeats", type=int, default=1, help="fits in a row (default: 1)")
    p.add_argument("--write", action="store_true")
    args = p.parse_args(argv)
    X = load_elpv(args.cell_type).X_train
    small = np.random.default_rng(0).random((8, 64, 64), np.float32)
    warm_up = []
    for _ in range(2):  # the first pays the one-time costs, the second shows what they are
        t = time.perf_counter()
        make_preset(args.preset).fit(small)
        warm_up.append(time.perf_counter() - t)
    print(f"warm-up fits on 8 random 64x64 images: {warm_up[0]:.1f} s, then {warm_up[1]:.1f} s "
          "(the difference: one-time imports and set-up), not in the times below", flush=True)
    times, loads = [], []
    for run in range(1, args.repeats + 1):
        t = time.perf_counter()
        make_preset(args.preset).fit(X)
        times.append(time.perf_counter() - t)
        loads.append(os.getloadavg()[0])
        print(f"run {run}: {args.preset} fit on {len(X)} {args.cell_type} cells: "
              f"{times[-1]:.1f} s (1-min load average {loads[-1]:.2f})", flush=True)
    met = sum(t <= TARGET_S for t in times)
    summary = (f"{args.preset} fit on {len(X)} {args.cell_type} cells: median "
               f"{np.median(times):.1f} s over {len(times)} run(s) (range {min(times):.1f} to "
               f"{max(times):.1f} s); {met} of {len(times)} within {TARGET_S:.0f} s")
    print(f"{summary}; {machine_description()}")
    if args.write:
        cmd = "python benchmarks/preset_fit_time.py " + " ".join(argv or sys.argv[1:])
        rows = "\n".join(f"| {i} | {t:.1f} | {ld:.2f} |"
                         for i, (t, ld) in enumerate(zip(times, loads, strict=True), 1))
        update_section(DOCS, "preset-fit-time",
                       f"### Fit time of the `{args.preset}` preset on a quiet machine\n\n"
                       f"Command: `{cmd.strip()}`  \nDate: {datetime.date.today()}  \n"
                       f"Machine: {machine_description()}\n\n"
                       "Each run fits the preset as it ships on the protocol's training "
                       "normals, the runs one after the other in one process; the load "
                       "average is read at the end of each fit (the fit's own two threads "
                       "count in it). Two warm-up fits on eight small random images ran "
                       f"first and took {warm_up[0]:.1f} s, then {warm_up[1]:.1f} s: the "
                       "difference is the process's one-time imports and set-up, which the "
                       "first fit of a session pays once.\n\n| run | fit s | 1-min load average |\n|---|---|---|\n"
                       f"{rows}\n\n{summary}.")
    return times


if __name__ == "__main__":
    main()
