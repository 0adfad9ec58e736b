"""Speed and accuracy of the pre-processing stages (ECCRegistrar, AdaptiveGamma).

    python benchmarks/preprocessing.py             # print the table
    python benchmarks/preprocessing.py --write     # also update docs/benchmarks.md
    python benchmarks/preprocessing.py --quick     # fewer images (smoke run)

Registration: synthetic parts (``make_parts``) at 300x300 and 1600x1200, and ELPV cells at
300x300 (when ``elpv-dataset`` is installed), each moved by a known random rigid motion
(rotation uniform in [-5, 5] degrees, shift uniform in +-10% of the size, ``default_rng(0)``)
and registered back onto the unmoved image with ``motion="euclidean"``. Reported per
configuration: milliseconds per image (wall clock of ``transform`` over the batch divided by
its size), the median and largest warp error (largest displacement in pixels between the
estimated and the true warp over the four corners and the centre of the image) and the number
of images whose error exceeds 0.5 px or whose registration failed. Configurations: plain ECC
(one level at full resolution, started from the identity: ``n_levels=1, max_size=None,
phase_correlation=False``), the pyramid started from the identity, the pyramid with the extra
phase-correlation start (both at full resolution, ``max_size=None``) and the defaults (the
latter with the warp estimated at 1024 px at most).

Gamma: ``AdaptiveGamma()`` on the same synthetic parts (gray and RGB), milliseconds per image.

Timings are wall clock on a shared machine: pessimistic when other jobs run.
"""

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from skcpcae.datasets import make_parts, rigid_motion
from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar
from skcpcae.utils._report import machine_description, update_section

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "plain ECC: 1 level, identity start": {
        "n_levels": 1, "max_size": None, "phase_correlation": False,
    },
    "pyramid, identity start": {"max_size": None, "phase_correlation": False},
    "pyramid + phase start": {"max_size": None},
    "default: pyramid + phase, max_size=1024": {},
}


def moved_batch(reference, n, rng):
    """n copies of ``reference`` under random rigid motions, with their true warps."""
    h, w = reference.shape[:2]
    images, warps = [], []
    for _ in range(n):
        angle = rng.uniform(-5, 5)
        shift = rng.uniform(-0.1, 0.1, size=2) * np.array([w, h])
        moved, M = rigid_motion(reference, angle, shift)
        images.append(moved)
        warps.append(M)
    return np.stack(images), np.stack(warps)


def warp_errors(estimated, truth, size):
    h, w = size
    pts = np.array(
        [[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1], [(w - 1) / 2, (h - 1) / 2, 1]]
    ).T
    return np.array(
        [np.linalg.norm((e[:2] - t) @ pts, axis=0).max() for e, t in zip(estimated, truth, strict=True)]
    )


def time_registration(name, references, n_per_ref, configs, rng):
    rows = []
    batches = [moved_batch(ref, n_per_ref, rng) for ref in references]
    for label, params in configs.items():
        seconds, errors, failed = 0.0, [], 0
        for ref, (batch, truth) in zip(references, batches, strict=True):
            reg = ECCRegistrar(reference=ref, on_failure="identity", **params).fit(ref[None])
            start = time.perf_counter()
            info = reg.transform_with_info(batch)[1]
            seconds += time.perf_counter() - start
            err = warp_errors(info.warps, truth, ref.shape[:2])
            errors.append(err)
            failed += int(np.sum(info.failed | (err > 0.5)))
        errors = np.concatenate(errors)
        n = len(errors)
        rows.append({
            "data": name, "config": label, "n": n, "ms": 1000 * seconds / n,
            "median_px": float(np.median(errors)), "max_px": float(errors.max()), "bad": failed,
        })
        print(f"{name:28s} {label:34s} {rows[-1]['ms']:8.1f} ms/img  "
              f"median {rows[-1]['median_px']:.3f} px  max {rows[-1]['max_px']:.3f} px  "
              f"bad {failed}/{n}", file=sys.stderr, flush=True)
    return rows


def time_gamma(name, X, repeats=1):
    gamma = AdaptiveGamma().fit(X[:1])
    gamma.transform(X[:1])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        gamma.transform(X)
    ms = 1000 * (time.perf_counter() - start) / (repeats * len(X))
    print(f"{name:28s} {'AdaptiveGamma()':34s} {ms:8.1f} ms/img", file=sys.stderr, flush=True)
    return {"data": name, "ms": ms, "n": len(X)}


def elpv_cells(n):
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None:
        return None
    folder = Path(os.path.dirname(spec.origin)) / "data" / "images"
    paths = sorted(folder.glob("cell*.png"))
    if not paths:
        return None
    step = max(1, len(paths) // n)
    cells = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths[::step][:n]]
    return [c.astype(np.float32) / 255.0 for c in cells]


def markdown(reg_rows, gamma_rows):
    lines = [
        "## Pre-processing: registration and gamma speed",
        "",
        "`python benchmarks/preprocessing.py --write`. Each image is the reference moved by a "
        "known random rigid motion (rotation in ±5°, shift in ±10% of the size, "
        "`default_rng(0)`) and registered back with `ECCRegistrar(motion=\"euclidean\")`. "
        "ms/img: wall clock of `transform` over the batch / batch size. Warp error: largest "
        "displacement (px) between estimated and true warp over the corners and centre. "
        "bad: error > 0.5 px or failed. Wall-clock figures on a machine shared with other "
        "jobs: pessimistic.",
        "",
        "| images | configuration | n | ms/img | median err px | max err px | bad |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in reg_rows:
        lines.append(
            f"| {r['data']} | {r['config']} | {r['n']} | {r['ms']:.1f} | "
            f"{r['median_px']:.3f} | {r['max_px']:.3f} | {r['bad']} |"
        )
    lines += [
        "",
        "| images | AdaptiveGamma() ms/img |",
        "|---|---:|",
    ]
    for r in gamma_rows:
        lines.append(f"| {r['data']} (n={r['n']}) | {r['ms']:.1f} |")
    lines += [
        "",
        f"Machine: {machine_description()}; OpenCV {cv2.__version__} "
        f"({cv2.getNumThreads()} threads).",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/preprocessing.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer images (smoke run)")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    n_small, n_big, n_cells = (4, 1, 4) if args.quick else (10, 3, 40)
    parts300, _ = make_parts(2, size=(300, 300), random_state=0)
    parts1600, _ = make_parts(1, size=(1200, 1600), random_state=0)
    reg_rows = []
    reg_rows += time_registration("synthetic parts 300x300", list(parts300), n_small, CONFIGS, rng)
    reg_rows += time_registration("synthetic parts 1600x1200", list(parts1600), n_big, CONFIGS,
                                  rng)
    cells = elpv_cells(n_cells)
    if cells is not None:
        reg_rows += time_registration("ELPV cells 300x300", cells, 3, CONFIGS, rng)
    else:
        print("elpv-dataset not installed: ELPV rows skipped", file=sys.stderr)

    gamma_rows = [
        time_gamma("synthetic parts 300x300", make_parts(8, size=(300, 300), random_state=1)[0]),
        time_gamma("synthetic RGB parts 300x300",
                   make_parts(8, size=(300, 300), color=True, random_state=1)[0]),
        time_gamma("synthetic parts 1600x1200",
                   make_parts(2, size=(1200, 1600), random_state=1)[0]),
    ]
    md = markdown(reg_rows, gamma_rows)
    print(md)
    if args.write:
        update_section(args.docs, "preprocessing", md)
        print(f"\nwrote {args.docs} (section 'preprocessing')", file=sys.stderr)


if __name__ == "__main__":
    main()
