"""Measure the memory model behind ``skcpcae fit`` / ``skcpcae score``'s estimate.

The command line refuses a run that would not fit in memory before it loads the images
(``skcpcae._memory``). Its model, per preset, is linear in the pixels it holds::

    fit peak   = FIT_BASE  + n_images * (FIT_PER_PIXEL * pixels + FIT_PER_IMAGE)
    score peak = SCORE_BASE + batch   * (SCORE_PER_PIXEL * pixels + SCORE_PER_IMAGE)

where ``pixels = height * width * channels`` and every peak counts the input images too
(float32, as the command line holds them). This script measures it: each point runs in a
fresh Python process that imports skcpcae and torch, resets the kernel's high-water mark
(``/proc/self/clear_refs``), makes ``n`` synthetic gray parts of ``size x size``, fits the
preset (one CPCAE epoch; the epoch count does not change the peak), reads ``VmHWM``, then
does the same around scoring one batch. Three points per preset, (n, s), (2n, s) and
(n, 2s), give the per-image and per-pixel slopes by differences; the bases are what is
left at the first point (the process itself, torch, the backbone weights).

Usage::

    python benchmarks/memory_estimate.py            # print the table and the Python dict
    python benchmarks/memory_estimate.py --presets best aligned --n 8 --size 96

Paste the printed dict into ``skcpcae/_memory.py`` (``MEMORY_MODEL``) after a rerun.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024

CHILD = r"""
import json, os, sys, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
from skcpcae._pipelines import make_preset
from skcpcae.datasets import make_parts

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
def reset():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

preset, n, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
params = {"paper": {"cpcaeresidualmap__max_epochs": 1},
          "aligned": {"cpcaeresidualmap__max_epochs": 1},
          "union": {"featureunion__pipeline__cpcaeresidualmap__max_epochs": 1}}.get(preset, {})
pipe = make_preset(preset, **params)
reset(); start = rss()
X = make_parts(n, size=(size, size), random_state=0)[0].astype(np.float32)
pipe.fit(X)
fit_peak = hwm()  # absolute: the process, torch and the images included
Xs = X[:batch].copy()
del X
import gc; gc.collect()
reset(); before = rss()
pipe.score_samples(Xs)
score_peak = hwm() - before
print(json.dumps({"base": start, "fit": fit_peak, "score": score_peak}))
"""


def measure(preset, n, size, batch):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", CHILD, preset, str(n), str(size), str(batch)],
                         cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{preset} n={n} size={size}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_model(preset, n, size):
    batch = max(2, n // 2)
    a = measure(preset, n, size, batch)
    b = measure(preset, 2 * n, size, 2 * batch)
    c = measure(preset, n, 2 * size, batch)
    p1, p2 = size * size, 4 * size * size
    # fit: F = base + n * (k_pix * p + k_img); two differences give the slopes
    per_image_1 = (b["fit"] - a["fit"]) / n              # k_pix * p1 + k_img
    per_pixel = max(0.0, ((c["fit"] - a["fit"]) / n) / (p2 - p1))
    per_image = max(0.0, per_image_1 - per_pixel * p1)
    base = a["fit"] - n * (per_pixel * p1 + per_image)
    s_per_image_1 = (b["score"] - a["score"]) / batch
    s_per_pixel = max(0.0, ((c["score"] - a["score"]) / batch) / (p2 - p1))
    s_per_image = max(0.0, s_per_image_1 - s_per_pixel * p1)
    s_base = max(0.0, a["score"] - batch * (s_per_pixel * p1 + s_per_image))
    return {"fit_base": base, "fit_per_pixel": per_pixel, "fit_per_image": per_image,
            "score_base": s_base, "score_per_pixel": s_per_pixel,
            "score_per_image": s_per_image, "points": [a, b, c]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+",
                        default=["best", "aligned", "paper", "deep-feature", "union"])
    parser.add_argument("--n", type=int, default=12, help="images at the first point")
    parser.add_argument("--size", type=int, default=128, help="image side at the first point")
    args = parser.parse_args(argv)
    models = {}
    print(f"{'preset':<14}{'fit base MB':>12}{'B/pixel':>10}{'MB/image':>10}"
          f"{'score base MB':>15}{'B/pixel':>10}{'MB/image':>10}")
    for preset in args.presets:
        m = fit_model(preset, args.n, args.size)
        models[preset] = m
        print(f"{preset:<14}{m['fit_base'] / MB:>12.0f}{m['fit_per_pixel']:>10.1f}"
              f"{m['fit_per_image'] / MB:>10.2f}{m['score_base'] / MB:>15.0f}"
              f"{m['score_per_pixel']:>10.1f}{m['score_per_image'] / MB:>10.2f}", flush=True)
    print("\nMEMORY_MODEL = {")
    for preset, m in models.items():
        print(f"    {preset!r}: dict(fit_base={m['fit_base'] / MB:.0f} * MB, "
              f"fit_per_pixel={m['fit_per_pixel']:.1f}, "
              f"fit_per_image={m['fit_per_image'] / MB:.2f} * MB, "
              f"score_base={m['score_base'] / MB:.0f} * MB, "
              f"score_per_pixel={m['score_per_pixel']:.1f}, "
              f"score_per_image={m['score_per_image'] / MB:.2f} * MB),")
    print("}")
    return models


if __name__ == "__main__":
    main()
