"""Bounded memory: peak memory of scoring 200 vs 2,000 ELPV-sized images with the full pipeline.

The fitted pipeline is the paper's (``make_cpcae_pipeline(register=True)``: ECCRegistrar →
AdaptiveGamma → CPCAEResidualMap → DeepPoolEmbedder (offline EfficientNet-Lite0 weights) →
KDE-thresholded scaler + k-NN), fitted on 60 synthetic 300x300 gray parts with
``cpcaeresidualmap__max_epochs=2``; the fit is not measured. The images are synthetic
(``skcpcae.datasets.make_parts(size=(300, 300))``, the size of an ELPV cell; no ELPV image is
used, so no licence question arises): 200 distinct images (100 normal, 100 with a pasted
defect), tiled ten times for the 2,000-image batch.

How memory is measured. Each scoring runs in a fresh Python process that loads the pickled
pipeline and the images, scores two images first (so that thread pools, allocator caches and
lazily built buffers exist before the measurement starts), then scores the batch while a
thread reads ``/proc/self/status`` every 2 ms. Reported:

* **anon peak**: the largest increase of ``RssAnon`` (anonymous memory: numpy and torch
  arrays) over its value just before scoring. With a memory-mapped input
  (``numpy.lib.format.open_memmap``) the input's pages are file-backed (``RssFile``): the
  kernel can drop them at any time, they do not count here, so this is the memory the
  pipeline itself allocates. It is the figure whose 2000/200 ratio must stay below 1.5.
* **peak RSS**: ``VmHWM`` (the kernel's exact high-water mark of the resident set, reset
  with ``/proc/self/clear_refs`` just before scoring), file-backed pages included.
* For the in-RAM input (``np.load`` without ``mmap_mode``) the 2,000 images alone are
  2000 x 300 x 300 x 4 B = 720 MB, already resident (and in the baseline) when scoring starts.

A Pipeline's ``score_samples`` passes the whole batch through each step, so the
intermediate images of every image are alive together; ``per stage`` gives the anonymous
peak reached while each step ran (the plain path). ``chunked`` scores with
``skcpcae.utils._chunked.chunked_score_samples(pipe, X, batch_size=64)``.

Usage::

    python benchmarks/memory.py                 # print the table (about 40 min on 2 cores)
    python benchmarks/memory.py --write         # also update docs/benchmarks.md
    python benchmarks/memory.py --n-small 20 --n-large 200   # a quick look
"""

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
SIZE = (300, 300)


# ------------------------------------------------------------------------------ child side
def _status_kb(*fields):
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in fields:
                values[key] = int(line.split()[1])
    return [values[k] for k in fields]


class _Sampler(threading.Thread):
    """Keeps the running maximum of RssAnon, overall and per named stage (O(1) memory)."""

    def __init__(self, interval=0.002):
        super().__init__(daemon=True)
        self.interval = interval
        self.stage = None
        self.peak = 0
        self.stage_peak = {}
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.sample()
            time.sleep(self.interval)

    def sample(self):
        (anon,) = _status_kb("RssAnon")
        self.peak = max(self.peak, anon)
        if self.stage is not None:
            self.stage_peak[self.stage] = max(self.stage_peak.get(self.stage, 0), anon)

    def stop(self):
        self._halt.set()
        self.join()
        self.sample()


def _instrument(pipe, sampler):
    """Tell the sampler which step runs (instance attributes shadow the methods)."""
    steps = pipe.steps

    def wrap(name, method):
        def wrapped(X, *args, **kwargs):
            previous, sampler.stage = sampler.stage, name
            sampler.sample()
            try:
                return method(X, *args, **kwargs)
            finally:
                sampler.sample()
                sampler.stage = previous

        return wrapped

    for name, est in steps[:-1]:
        est.transform = wrap(name, est.transform)
    name, last = steps[-1]
    last.score_samples = wrap(name, last.score_samples)


def child(model, data, mode, path, batch_size):
    import joblib
    import numpy as np

    from skcpcae.utils._chunked import chunked_score_samples

    warnings.simplefilter("ignore")
    pipe = joblib.load(model)
    X = np.load(data, mmap_mode="r") if mode == "memmap" else np.load(data)

    def score(batch):
        if path == "chunked":
            return chunked_score_samples(pipe, batch, batch_size=batch_size)
        return pipe.score_samples(batch)

    score(X[:2])  # warm-up: thread pools, allocator caches, lazily built buffers
    gc.collect()
    sampler = _Sampler()
    _instrument(pipe, sampler)
    (anon0, rss0) = _status_kb("RssAnon", "VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    sampler.start()
    t0 = time.perf_counter()
    scores = score(X)
    seconds = time.perf_counter() - t0
    sampler.stop()
    (hwm,) = _status_kb("VmHWM")
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    print(json.dumps({
        "n": len(X),
        "mode": mode,
        "path": path,
        "seconds": seconds,
        "anon_baseline_mb": anon0 / 1024,
        "anon_peak_mb": (sampler.peak - anon0) / 1024,
        "rss_baseline_mb": rss0 / 1024,
        "peak_rss_mb": hwm / 1024,
        "stages_mb": {k: (v - anon0) / 1024 for k, v in sampler.stage_peak.items()},
        "scores_head": scores[:3].tolist(),
    }))


# ------------------------------------------------------------------------------ parent side
def _fit(tmp, verbose):
    import joblib

    from skcpcae._pipelines import make_cpcae_pipeline
    from skcpcae.datasets import make_parts

    X_fit, _ = make_parts(60, size=SIZE, max_shift=0.02, max_rotation=2.0, random_state=0)
    pipe = make_cpcae_pipeline(
        register=True,
        cpcaeresidualmap__max_epochs=2,
        cpcaeresidualmap__device="cpu",
        deeppoolembedder__device="cpu",
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X_fit)
    if verbose:
        print(f"fitted on {len(X_fit)} images in {time.perf_counter() - t0:.0f} s", flush=True)
    model = os.path.join(tmp, "model.joblib")
    joblib.dump(pipe, model)
    return model


def _write_images(tmp, n_small, n_large):
    """200 distinct images (half with a defect) → small.npy; tiled to n_large → large.npy."""
    import numpy as np

    from skcpcae.datasets import make_parts

    half = n_small // 2
    base, _ = make_parts(n_small - half, n_anomalies=half, size=SIZE, max_shift=0.02,
                         max_rotation=2.0, random_state=1)
    paths = {}
    for name, n in (("small", n_small), ("large", n_large)):
        path = os.path.join(tmp, f"{name}.npy")
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n,) + SIZE)
        for start in range(0, n, len(base)):
            stop = min(n, start + len(base))
            mm[start:stop] = base[: stop - start]
        mm.flush()
        del mm
        paths[n] = path
    return paths


def _run_child(model, data, mode, path, batch_size):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", model, data, mode, path,
           str(batch_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"child {mode}/{path} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(results, n_small, n_large, batch_size):
    from skcpcae.utils._report import machine_description

    by = {(r["n"], r["mode"], r["path"]): r for r in results}
    lines = [
        "## Bounded memory: scoring a large batch",
        "",
        f"Peak memory of `score_samples` on {n_small} vs {n_large} synthetic 300x300 gray "
        "images (`make_parts`, ELPV-sized) with the full fitted pipeline "
        "`make_cpcae_pipeline(register=True)` (EfficientNet-Lite0 offline weights, fitted on "
        "60 images, `max_epochs=2`). Each scoring runs in a fresh process; *anon* is the "
        "peak increase of anonymous memory (`RssAnon`, sampled every 2 ms) over its value "
        "before scoring, *peak RSS* the kernel's high-water mark `VmHWM` (file-backed pages "
        "of a memory-mapped input included). A memory-mapped input "
        "(`np.lib.format.open_memmap`) does not count in *anon*; an in-RAM input of "
        f"{n_large} images is {n_large * SIZE[0] * SIZE[1] * 4 / 1e6:.0f} MB by itself, "
        "resident before scoring starts. *chunked* = "
        f"`skcpcae.utils._chunked.chunked_score_samples(pipe, X, batch_size={batch_size})`. "
        "Times are wall-clock on a shared machine and vary with its load; they are no speed "
        "figure.",
        "",
        "| input | path | n | time (s) | anon peak (MB) | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode in ("memmap", "ram"):
        for path in ("plain", "chunked"):
            for n in (n_small, n_large):
                r = by.get((n, mode, path))
                if r is None:
                    continue
                lines.append(
                    f"| {mode} | {path} | {n} | {r['seconds']:.0f} | {r['anon_peak_mb']:.0f} | "
                    f"{r['peak_rss_mb']:.0f} |"
                )
    lines.append("")
    for mode in ("memmap", "ram"):
        for path in ("plain", "chunked"):
            small, large = by.get((n_small, mode, path)), by.get((n_large, mode, path))
            if small and large:
                ratio = large["anon_peak_mb"] / max(small["anon_peak_mb"], 1.0)
                verdict = "below 1.5: bounded" if ratio < 1.5 else "not bounded (>= 1.5)"
                lines.append(
                    f"- {mode} input, {path}: anon peak ratio {n_large}/{n_small} = "
                    f"**{ratio:.2f}** ({verdict})."
                )
    plain = by.get((n_large, "memmap", "plain"))
    if plain:
        stages = ", ".join(f"{k} {v:.0f} MB" for k, v in plain["stages_mb"].items())
        lines.append(
            f"- Anon peak while each step ran (memmap input, plain path, n={n_large}): "
            f"{stages}."
        )
    lines.append("")
    lines.append(f"Machine: {machine_description()}. Command: `python benchmarks/memory.py "
                 f"--n-small {n_small} --n-large {n_large} --batch-size {batch_size}`.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-small", type=int, default=200)
    parser.add_argument("--n-large", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--modes", default="memmap,ram")
    parser.add_argument("--paths", default="plain,chunked")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--from-json", help="render the table from a --json file of an "
                        "earlier run instead of measuring")
    parser.add_argument("--workdir", help="keep the fitted model and images here (reused "
                        "when present) instead of a temporary folder")
    parser.add_argument("--child", nargs=5, metavar=("MODEL", "DATA", "MODE", "PATH", "BS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model, data, mode, path, bs = args.child
        child(model, data, mode, path, int(bs))
        return 0

    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        return _report(results, args)
    tmp = args.workdir or tempfile.mkdtemp(prefix="skcpcae-memory-")
    os.makedirs(tmp, exist_ok=True)
    try:
        model = os.path.join(tmp, "model.joblib")
        if not (args.workdir and os.path.exists(model)):
            model = _fit(tmp, verbose=True)
        data = _write_images(tmp, args.n_small, args.n_large)
        results = []
        for mode in args.modes.split(","):
            for path in args.paths.split(","):
                for n in (args.n_small, args.n_large):
                    r = _run_child(model, data[n], mode, path, args.batch_size)
                    results.append(r)
                    if args.json:  # after every run, so that an interrupted run keeps its data
                        with open(args.json, "w") as f:
                            json.dump(results, f, indent=1)
                    print(f"{mode:6s} {path:7s} n={n:5d}: {r['seconds']:6.0f} s, anon peak "
                          f"{r['anon_peak_mb']:7.0f} MB, peak RSS {r['peak_rss_mb']:7.0f} MB, "
                          f"stages {json.dumps({k: round(v) for k, v in r['stages_mb'].items()})}",
                          flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(tmp, ignore_errors=True)
    return _report(results, args)


def _report(results, args):
    text = _table(results, args.n_small, args.n_large, args.batch_size)
    print()
    print(text)
    if args.write:
        from skcpcae.utils._report import update_section

        update_section(ROOT / "docs" / "benchmarks.md", "memory", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
