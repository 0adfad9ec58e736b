# SPDX-License-Identifier: BSD-3-Clause
"""The benchmark harness: methods x datasets -> AUROC, AP, timings, peak memory.

Tooling, not part of the installed package: reached as ``python benchmarks/run.py`` and
``python benchmarks/run.py --demo`` (what ``make demo`` runs). It holds the methods table,
the issue targets the rows are compared with, the peak-memory meter and the writing of
``docs/benchmarks.md`` (through ``skcpcae.utils._report.update_section``, at a path resolved
from this file, so the docs and CSV land in the repository whatever the working directory).
"""

import argparse
import csv
import datetime
import gc
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from skcpcae.metrics import image_auroc, image_average_precision

#: the repository (docs and results are written here, whatever the working directory)
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"

__all__ = ["DOCS", "METHODS", "MethodUnavailable", "RESULTS", "ROOT", "demo", "main", "run"]


class MethodUnavailable(RuntimeError):
    """Raised by a method's factory when it cannot run here (e.g. an optional package is
    missing); the harness prints the reason and skips the row."""


def _deep_feature(quick):
    from skcpcae._pipelines import make_deep_feature_pipeline

    return make_deep_feature_pipeline(pooling="max")


def _cpcae_paper(quick):
    from skcpcae._pipelines import make_cpcae_pipeline

    params = {}
    if quick:
        params["cpcaeresidualmap__max_epochs"] = 2
    # ELPV cells are aligned already; registration is part of the paper's pipeline and kept.
    return make_cpcae_pipeline(**params)


def _variation(quick):
    from skcpcae.baselines import VariationDetector

    return VariationDetector()


def _nearest(quick):
    from skcpcae.baselines import NearestImageDetector

    return NearestImageDetector()


def _ae_l2(quick):
    from skcpcae.baselines import AEL2Detector

    # Seeded like the pipelines (random_state=0): unseeded, the autoencoder's weights come
    # from the global RNG and the row moves by several hundredths from one run to the next.
    det = AEL2Detector(random_state=0)
    if quick:
        det.set_params(autoencoder__max_epochs=2) if det.autoencoder is not None else None
    return det


def _patchcore(quick):
    from skcpcae.baselines import PatchCoreDetector

    return PatchCoreDetector(random_state=0)


def _union(quick):
    from skcpcae._pipelines import make_preset

    return make_preset("union")


def _best(quick):
    from skcpcae._pipelines import make_preset

    return make_preset("best")


METHODS = {
    "deep-feature": _deep_feature,
    "cpcae-paper": _cpcae_paper,
    "variation": _variation,
    "nearest-image": _nearest,
    "ae-l2": _ae_l2,
    "patchcore": _patchcore,
    "cpcae-union": _union,
    "best": _best,
}


class _PeakRSS:
    """Peak resident memory (MiB) above the level at start.

    On Linux the kernel's high-water mark (``VmHWM``) is reset on entry and
    read on exit, so even a block that lives for a microsecond counts. Where
    that is not possible, RSS is sampled every 20 ms (and once more on exit),
    which can miss a short-lived peak.
    """

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss():
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return 0

    @staticmethod
    def _reset_high_water_mark():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _high_water_mark():
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __enter__(self):
        self.base = self._rss()
        self.peak = self.base
        self._hwm = self._reset_high_water_mark()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        if self._hwm:
            self.peak = max(self.peak, self._high_water_mark())
        self.mib = max(0.0, (self.peak - self.base) / 2**20)


def _load(dataset, quick):
    """Return (name, X_train, X_test, y_test, certain_mask) for a dataset spec."""
    if dataset.startswith("elpv-"):
        from skcpcae.datasets import load_elpv

        cell = dataset.split("-", 1)[1]
        b = load_elpv(cell, include_uncertain=True)
        proba = np.asarray(b.proba_test)
        certain = (proba == 0) | (proba == 1)
        X_tr, X_te, y_te = b.X_train, b.X_test, np.asarray(b.y_test)
    elif dataset.startswith("mvtec:"):
        from skcpcae.datasets import load_mvtec_ad

        _, root, category = dataset.split(":", 2)
        b = load_mvtec_ad(root, category)
        X_tr, X_te, y_te = b.X_train, b.X_test, np.asarray(b.y_test)
        certain = np.ones(len(y_te), bool)
    else:
        raise ValueError(f"Unknown dataset {dataset!r}: use elpv-mono, elpv-poly or "
                         "mvtec:ROOT:CATEGORY.")
    if quick:  # a smoke run: a few images of each kind
        rng = np.random.default_rng(0)
        X_tr = X_tr[:24]
        keep = np.r_[rng.permutation(np.flatnonzero(y_te == 0))[:16],
                     rng.permutation(np.flatnonzero((y_te == 1) & certain))[:16]]
        X_te, y_te, certain = X_te[keep], y_te[keep], certain[keep]
    return X_tr, X_te, y_te, certain


def _anomaly(est, X):
    from skcpcae.metrics import anomaly_scores

    return anomaly_scores(est, X)


def run(methods, datasets, *, quick=False, verbose=True, on_row=None, skipped=None):
    """Fit and score every method on every dataset; return a list of result rows.

    ``on_row(rows)`` is called after each row, e.g. to save partial results of a long run.
    A method whose factory raises :class:`MethodUnavailable` is skipped; with a list as
    ``skipped``, ``(dataset, method, reason)`` is appended to it.
    """
    rows = []
    for ds in datasets:
        X_tr, X_te, y_te, certain = _load(ds, quick)
        for name in methods:
            if name not in METHODS:
                raise ValueError(f"Unknown method {name!r}; choose from {sorted(METHODS)}.")
            try:
                est = METHODS[name](quick)
            except MethodUnavailable as exc:
                if verbose:
                    print(f"  {ds:10s} {name:14s} skipped: {exc}", flush=True)
                if skipped is not None:
                    skipped.append((ds, name, str(exc)))
                continue
            gc.collect()
            with _PeakRSS() as mem, warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                t0 = time.perf_counter()
                est.fit(X_tr)
                t1 = time.perf_counter()
                s = _anomaly(est, X_te)
                t2 = time.perf_counter()
            row = {
                "dataset": ds,
                "method": name,
                "n_train": len(X_tr),
                "n_test": int(certain.sum()),
                "auroc": image_auroc(y_te[certain], s[certain]),
                "ap": image_average_precision(y_te[certain], s[certain]),
                "auroc_uncertain": image_auroc(y_te, s) if (~certain).any() else float("nan"),
                "ap_uncertain": image_average_precision(y_te, s) if (~certain).any() else float("nan"),
                "fit_s": t1 - t0,
                "images_per_s": len(X_te) / max(t2 - t1, 1e-9),
                "peak_mib": mem.mib,
            }
            rows.append(row)
            if on_row is not None:
                on_row(rows)
            if verbose:
                print(f"  {ds:10s} {name:14s} AUROC {row['auroc']:.3f}  AP {row['ap']:.3f}  "
                      f"fit {row['fit_s']:.1f}s  {row['images_per_s']:.1f} img/s", flush=True)
            del est
    return rows


def format_table(rows):
    head = ("| dataset | method | AUROC | AP | AUROC (with 1/3, 2/3) | AP (with 1/3, 2/3) | "
            "fit s | images/s | peak MiB |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['auroc']:.3f} | {r['ap']:.3f} | "
            f"{r['auroc_uncertain']:.3f} | {r['ap_uncertain']:.3f} | {r['fit_s']:.1f} | "
            f"{r['images_per_s']:.1f} | {r['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


#: issue #15's targets for the best preset: AUROC per ELPV cell type and images/s (2 cores)
TARGETS = {"elpv-mono": 0.97, "elpv-poly": 0.92}
TARGET_SPEED = 25.0


def target_lines(rows, method="best"):
    """Markdown bullets: how far ``method`` is from the targets, row by row (measured).

    ``method`` is compared with every other row of the same dataset (ours and anomalib's),
    each by name, and the bullet says whether it is ahead of all of them.
    """
    lines = []
    for r in rows:
        if r["method"] != method or r["dataset"] not in TARGETS:
            continue
        goal = TARGETS[r["dataset"]]
        others = [o for o in rows if o["dataset"] == r["dataset"] and o["method"] != method]
        auroc = r["auroc"]
        status = "met" if auroc >= goal else f"{goal - auroc:.3f} short"
        parts = [f"AUROC {auroc:.3f} vs target {goal:.2f} ({status})"]
        for o in others:
            gap = auroc - o["auroc"]
            parts.append(f"{'ahead of' if gap > 0 else 'behind'} {o['method']} by {abs(gap):.3f}")
        if others:
            behind = [o["method"] for o in others if o["auroc"] >= auroc]
            parts.append("ahead of every other row" if not behind
                         else f"not ahead of {', '.join(behind)}")
        speed = r["images_per_s"]
        parts.append(f"{speed:.1f} images/s vs target {TARGET_SPEED:.0f} "
                     f"({'met' if speed >= TARGET_SPEED else 'not met'})")
        lines.append(f"- {r['dataset']}, {method}: " + "; ".join(parts) + ".")
    return lines


def _interpreter(prog):
    """``prog`` as it was run: a venv inside the repository (``.venv-compare``, for the
    anomalib rows) is named in place of ``python``, so the documented command reruns them."""
    exe = Path(sys.executable)
    try:
        rel = exe.relative_to(ROOT)
    except ValueError:
        return prog
    if rel.parts[0] == ".venv":  # the project's default venv: plain `python`
        return prog
    return prog.replace("python", str(rel), 1) if prog.startswith("python ") else prog


def main(argv=None, *, prog="python benchmarks/run.py", default_methods=None, section="run"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Compare anomaly detectors on ELPV (and MVTec-layout folders) with the "
                    "project's protocol: AUROC, AP, fit time, images/s, peak memory.",
    )
    parser.add_argument("--methods", nargs="+", default=default_methods or list(METHODS),
                        help=f"methods to run (default: "
                             f"{', '.join(default_methods or METHODS)}; any of "
                             f"{', '.join(METHODS)})")
    parser.add_argument("--datasets", nargs="+", default=["elpv-mono", "elpv-poly"],
                        help="elpv-mono, elpv-poly, or mvtec:ROOT:CATEGORY")
    parser.add_argument("--quick", action="store_true", help="smoke run on a few images")
    parser.add_argument("--write", action="store_true",
                        help="write the table into docs/benchmarks.md and a CSV")
    parser.add_argument("--docs", default=str(DOCS),
                        help="markdown file to update (default: the repository's "
                             "docs/benchmarks.md)")
    parser.add_argument("--csv", default=None,
                        help="CSV path (default: the repository's "
                             "benchmarks/results/<section>.csv)")
    parser.add_argument("--section", default=section,
                        help=f"docs section written by --write (default: {section!r}); "
                             "another name keeps the full table and writes these rows "
                             "beside it")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    section = args.section
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from skcpcae.utils._report import machine_description, update_section

    print(f"machine: {machine_description()}", flush=True)
    cmd = " ".join([_interpreter(prog)] + (argv if argv is not None else sys.argv[1:]))

    def write(rows):
        table = format_table(rows)
        targets = target_lines(rows)
        if targets:
            table += "\n\nTargets (issue #15), from the rows above:\n\n" + "\n".join(targets)
        if skipped:
            table += "\n\nSkipped rows:\n\n" + "\n".join(
                f"- {ds}, {name}: {reason}" for ds, name, reason in skipped)
        text = (f"Command: `{cmd}`  \nDate: {datetime.date.today()}  \n"
                f"Machine: {machine_description()}  \n"
                "AUROC/AP: probability-0 normals vs probability-1 defects (ELPV protocol); the "
                "'with 1/3, 2/3' columns also count the uncertain cells as defective. "
                "Peak MiB: peak resident memory above the level before fit, during fit + "
                "scoring.\n\n" + table)
        update_section(args.docs, section, text)
        csv_path = Path(args.csv or RESULTS / f"{section}.csv")
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return csv_path

    skipped = []
    rows = run(args.methods, args.datasets, quick=args.quick,
               on_row=write if args.write else None, skipped=skipped)
    print()
    print(format_table(rows))
    for line in target_lines(rows):
        print(line)
    if args.write and rows:
        csv_path = write(rows)
        print(f"\nwrote {args.docs} (section '{section}') and {csv_path}")
    del torch
    return rows


def demo(argv=None):
    """``make demo``: the paper's CPCAE pipeline, the deep-feature comparator and the best
    preset on ELPV, table printed (``--write`` also updates the docs' ``demo`` section)."""
    print("skcpcae demo: ELPV solar cells (train on half of the good cells, test on the other "
          "half + defective cells)")
    return main(argv if argv is not None else [], prog="python benchmarks/run.py --demo",
                default_methods=["deep-feature", "cpcae-paper", "best"], section="demo")
