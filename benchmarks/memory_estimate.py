"""Measure the memory model behind ``skcpcae fit`` / ``skcpcae score``'s estimate.

The command line refuses a run that would not fit in memory before it loads the images
(``skcpcae._memory``). Its model, per preset, separates what is kept for every image from
what one batch of the embedder (``EMBED_BATCH = 16`` images) needs while it runs::

    fit peak   = fit_base + n * (fit_per_pixel * p + fit_per_image)
                 + min(n, 16) * fit_batch_per_pixel * p
    score peak = score_base + s * (score_per_pixel * p + score_per_image)
                 + min(s, 16) * score_batch_per_pixel * p + n_train * score_train_per_pixel * p

with ``p = height * width * channels``, ``n`` training images, ``s`` images scored at a time
and ``n_train`` the images the model was fitted on. The per-image terms are what is kept
for each image (the float32 image, its registered / gamma-corrected copies, residual maps,
patch features in the memory bank, the CPCAE's downsized patches: the constant
``*_per_image``); the batch term is the network activations of one batch.

Each point runs in a fresh Python process that imports skcpcae and torch, makes ``n``
synthetic gray parts (``make_parts``, float32 as the command line holds them), returns
freed heap to the system (``malloc_trim``), resets the kernel's high-water mark
(``/proc/self/clear_refs``), fits the preset and reads ``VmHWM`` (the absolute peak: the
process, torch, the backbone and the images included). It then scores two batches (8 and
40 new images), each measured the same way as the peak above the memory before the batch
was made. The CPCAE trains for one epoch: the epochs change the time, not the peak (one
epoch holds the same arrays as fifty). The coefficients are fitted by non-negative least
squares over every point of a preset; the output lists each point measured vs estimated,
and one run held out of the fit (``--check``: ``best`` on 294 images of 300x300, the size of
ELPV's mono training cells).

Usage::

    python benchmarks/memory_estimate.py            # table + MEMORY_MODEL dict, ~10 min
    python benchmarks/memory_estimate.py --write    # also docs/benchmarks.md
    python benchmarks/memory_estimate.py --presets best --n 8 16 48 --sizes 96 160

Paste the printed dict into ``skcpcae/_memory.py`` (``MEMORY_MODEL``) after a rerun.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MiB = 2**20
SCORE_BATCHES = (8, 40)


# -- one measurement, in a fresh process ---------------------------------------------------

def _status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _settle():
    """Collect garbage, hand freed heap back to the system, reset the high-water mark."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(preset, n, size):
    """Fit ``preset`` on ``n`` parts of ``size x size``, then score two batches; JSON out."""
    import warnings

    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(1)
    from skcpcae._memory import EMBED_BATCH
    from skcpcae._pipelines import make_preset
    from skcpcae.datasets import make_parts

    one_epoch = {"paper": {"cpcaeresidualmap__max_epochs": 1},
                 "aligned": {"cpcaeresidualmap__max_epochs": 1},
                 "union": {"featureunion__pipeline__cpcaeresidualmap__max_epochs": 1}}
    pipe = make_preset(preset, **one_epoch.get(preset, {}))
    batches = {v for k, v in pipe.get_params(deep=True).items()
               if k.endswith("embedder__batch_size")}
    assert batches == {EMBED_BATCH}, f"{preset}: embedder batch sizes {batches}"
    X = make_parts(n, size=(size, size), random_state=0)[0].astype(np.float32)
    _settle()
    pipe.fit(X)
    out = {"preset": preset, "n": n, "size": size, "fit": _status("VmHWM"), "score": {}}
    del X
    for s in SCORE_BATCHES:
        _settle()
        before = _status("VmRSS")
        Xs = make_parts(s, size=(size, size), random_state=s)[0].astype(np.float32)
        pipe.score_samples(Xs)
        out["score"][s] = _status("VmHWM") - before
        del Xs
    print(json.dumps(out))


def measure(preset, n, size):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", preset, str(n), str(size)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{preset} n={n} size={size}: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["score"] = {int(k): v for k, v in out["score"].items()}
    out["seconds"] = time.perf_counter() - t0
    return out


# -- the least-squares fit ------------------------------------------------------------------

def _nnls(A, b):
    """Non-negative least squares with the columns scaled to unit norm."""
    from scipy.optimize import nnls

    scale = np.linalg.norm(A, axis=0)
    scale[scale == 0] = 1
    x, _ = nnls(A / scale, b)
    return x / scale


def fit_coefficients(points):
    """``MEMORY_MODEL``-style coefficients from the measured points of one preset."""
    from skcpcae._memory import EMBED_BATCH

    A, b = [], []
    for pt in points:
        n, p = pt["n"], pt["size"] ** 2
        A.append([1.0, n * p, n, min(n, EMBED_BATCH) * p])
        b.append(pt["fit"])
    f = _nnls(np.array(A), np.array(b, dtype=float))
    A, b = [], []
    for pt in points:
        p = pt["size"] ** 2
        for s, peak in pt["score"].items():
            A.append([1.0, s * p, s, min(s, EMBED_BATCH) * p, pt["n"] * p])
            b.append(peak)
    s = _nnls(np.array(A), np.array(b, dtype=float))
    return {"fit_base": f[0], "fit_per_pixel": f[1], "fit_per_image": f[2],
            "fit_batch_per_pixel": f[3], "score_base": s[0], "score_per_pixel": s[1],
            "score_per_image": s[2], "score_batch_per_pixel": s[3],
            "score_train_per_pixel": s[4]}


def _estimate_raw(model, kind, n, size, n_train=0):
    """The model's figure without the safety factor."""
    from skcpcae import _memory

    saved = dict(_memory.MEMORY_MODEL)
    _memory.MEMORY_MODEL["_measured"] = model
    try:
        if kind == "fit":
            est = _memory.estimate_fit("_measured", n, (size, size))
        else:
            est = _memory.estimate_score("_measured", n, (size, size), n_train=n_train)
    finally:
        _memory.MEMORY_MODEL.clear()
        _memory.MEMORY_MODEL.update(saved)
    return est / _memory.SAFETY


def _row(preset, kind, n, size, measured, model, n_train=0):
    from skcpcae._memory import SAFETY

    raw = _estimate_raw(model, kind, n, size, n_train)
    return {"preset": preset, "kind": kind, "n": n, "size": size, "n_train": n_train,
            "measured_mib": measured / MiB, "model_mib": raw / MiB,
            "estimate_mib": SAFETY * raw / MiB, "error": raw / measured - 1}


# -- output ---------------------------------------------------------------------------------

def _table(rows):
    lines = ["| preset | run | images | size | measured MiB | model MiB | model error "
             "| estimate MiB (x1.25) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        run = r["kind"] if r["kind"] != "score" else f"score (fit on {r['n_train']})"
        lines.append(f"| {r['preset']} | {run} | {r['n']} | {r['size']}x{r['size']} "
                     f"| {r['measured_mib']:.0f} | {r['model_mib']:.0f} "
                     f"| {100 * r['error']:+.1f}% | {r['estimate_mib']:.0f} |")
    return "\n".join(lines)


def _coefficient_table(models):
    lines = ["| preset | fit base MiB | B/pixel/image | MiB/image | B/pixel/batch image "
             "| score base MiB | B/pixel/image | MiB/image | B/pixel/batch image "
             "| B/pixel/training image |", "|---|" + "---|" * 10]
    for preset, m in models.items():
        lines.append(
            f"| {preset} | {m['fit_base'] / MiB:.0f} | {m['fit_per_pixel']:.1f} "
            f"| {m['fit_per_image'] / MiB:.3f} | {m['fit_batch_per_pixel']:.1f} "
            f"| {m['score_base'] / MiB:.0f} | {m['score_per_pixel']:.1f} "
            f"| {m['score_per_image'] / MiB:.3f} | {m['score_batch_per_pixel']:.1f} "
            f"| {m['score_train_per_pixel']:.2f} |")
    return "\n".join(lines)


def _python_dict(models):
    lines = ["MEMORY_MODEL = {"]
    for preset, m in models.items():
        lines.append(
            f"    {preset!r}: dict(fit_base={m['fit_base'] / MiB:.0f} * MiB, "
            f"fit_per_pixel={m['fit_per_pixel']:.1f}, "
            f"fit_per_image={m['fit_per_image'] / MiB:.3f} * MiB, "
            f"fit_batch_per_pixel={m['fit_batch_per_pixel']:.1f},\n"
            f"        score_base={m['score_base'] / MiB:.0f} * MiB, "
            f"score_per_pixel={m['score_per_pixel']:.1f}, "
            f"score_per_image={m['score_per_image'] / MiB:.3f} * MiB, "
            f"score_batch_per_pixel={m['score_batch_per_pixel']:.1f}, "
            f"score_train_per_pixel={m['score_train_per_pixel']:.2f}),")
    lines.append("}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+",
                        default=["best", "aligned", "paper", "deep-feature", "union"])
    parser.add_argument("--n", type=int, nargs="+", default=[8, 24, 64],
                        help="training images at each point")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 192],
                        help="image sides (square gray images)")
    parser.add_argument("--check", type=int, nargs=2, default=[294, 300],
                        metavar=("N", "SIZE"), help="held-out fit of 'best' (0 0: none)")
    parser.add_argument("--jobs", type=int, default=2, help="measurements run at once")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    grid = [(p, n, s) for p in args.presets for s in args.sizes for n in args.n]
    if args.check[0] > 0:
        grid.append(("best", args.check[0], args.check[1]))
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda g: measure(*g), grid))
    check = results.pop() if args.check[0] > 0 else None
    models, rows = {}, []
    for preset in args.presets:
        points = [r for r in results if r["preset"] == preset]
        models[preset] = m = fit_coefficients(points)
        for pt in points:
            rows.append(_row(preset, "fit", pt["n"], pt["size"], pt["fit"], m))
        for pt in points:
            for s, peak in pt["score"].items():
                rows.append(_row(preset, "score", s, pt["size"], peak, m, n_train=pt["n"]))
    held = []
    if check is not None and "best" in models:
        held.append(_row("best", "fit", check["n"], check["size"], check["fit"],
                         models["best"]))
        for s, peak in check["score"].items():
            held.append(_row("best", "score", s, check["size"], peak, models["best"],
                             n_train=check["n"]))
    minutes = (time.perf_counter() - t0) / 60
    print(_coefficient_table(models), "\n")
    print(_table(rows), "\n")
    if held:
        print("Held out of the least squares:\n" + _table(held), "\n")
    print(_python_dict(models))
    print(f"\n{len(grid)} runs in {minutes:.1f} min")
    if args.write:
        from skcpcae.utils._report import machine_description, update_section

        command = "python benchmarks/memory_estimate.py " + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]))
        text = "\n\n".join([
            "## Memory estimate of `skcpcae fit` / `skcpcae score`",
            "The command line refuses a run whose estimated peak memory exceeds what the "
            "system has available (or `--memory-limit`), before it reads an image. The model "
            "(`skcpcae._memory`), per preset: *fit peak = base + n x (a x p + c) + "
            "min(n, 16) x b x p*, *score peak = base + s x (a x p + c) + min(s, 16) x b x p "
            "+ n_train x t x p*, with *p* the pixels of one image (height x width x "
            "channels), *n* training images, *s* images scored at a time (`--batch-size`), "
            "*n_train* the images the model was fitted on. *a*, *c* are what is kept for "
            "every image (the image, its copies, residual maps, patch features in the memory "
            "bank), *b* the network activations of one image of a batch of the embedder (16 "
            "images), *t* the memory bank the patch k-NN copies while it searches. The "
            "estimate is 1.25 x the model.",
            "Measured peaks: fresh process per point, synthetic gray parts (`make_parts`), "
            "freed heap returned (`malloc_trim`) and the kernel's high-water mark `VmHWM` "
            "reset before each step; *fit* is the absolute peak (Python, torch, the backbone "
            "and the images included), *score* the peak above the memory before the batch "
            "was made (the batch included). The CPCAE trains one epoch: the epochs change "
            "the time, not the peak. Coefficients by non-negative least squares over the "
            "points of each preset.",
            _coefficient_table(models),
            _table(rows),
            ("Held out of the least squares (the size of ELPV's mono training set):\n\n"
             + _table(held)) if held else "",
            f"Machine: {machine_description()}. {len(grid)} runs in {minutes:.1f} min. "
            f"Command: `{command.strip()}`.",
        ])
        update_section(ROOT / "docs" / "benchmarks.md", "memory-estimate", text)
    return models, rows, held


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
