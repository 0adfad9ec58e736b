"""Scale: peak memory and images/s of streaming scoring, in one process and on a Dask cluster.

The model is the ``best`` preset (offline EfficientNet-Lite0 weights, stages 3+4 patch
features, patch k-NN, KDE threshold) fitted on 40 synthetic normal parts
(``skcpcae.datasets.make_parts``); the fit is not measured. The images are synthetic too:
200 distinct parts (160 normal, 40 with a pasted defect) written once as PNG files and copied
under new names until the folder holds the number asked (2,000 and 20,000 by default), so
every scored image is a file read and decoded from disk.

Each measurement runs in a fresh Python process that loads the model file and calls
:func:`skcpcae.score_files` (batches of 32, CSV output) on the folder:

* **peak RSS**: the process's ``VmHWM`` (the kernel's high-water mark of its resident set,
  model and libraries included) when the run ends; for a Dask run also each worker's.
* **images/s**: images scored per second of wall time of ``score_files`` (model loading,
  cluster start and a 64-image warm-up excluded, in one process as on the cluster).
* **Dask overhead per image**: wall time per image on a one-worker cluster (one thread)
  minus that of one process with one torch thread, on the same images: the cost of the Dask
  path itself (task submission, moving the rows back, the driver's writing).

Usage::

    python benchmarks/scale.py                       # print the table
    python benchmarks/scale.py --write               # also update docs/benchmarks.md
    python benchmarks/scale.py --n-small 200 --n-large 2000 --size 32   # a quick look
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _vmhwm_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------------------ child side
def child(model, folder, n, mode, workers, threads, out):
    warnings.simplefilter("ignore")
    import torch

    from skcpcae import score_files

    if threads:
        torch.set_num_threads(threads)
    paths = sorted(str(p) for p in Path(folder).iterdir())[:n]
    result = {"n": n, "mode": mode, "workers": workers, "torch_threads": torch.get_num_threads()}
    if mode == "local":
        from skcpcae import persistence

        pipe = persistence.load(model)
        # warm-up, as on the cluster: lazily built buffers and thread pools, not measured
        score_files(pipe, paths[:64], out + ".warm.csv", batch_size=32)
        t0 = time.perf_counter()
        summary = score_files(pipe, paths, out, batch_size=32)
        result["seconds"] = time.perf_counter() - t0
    else:
        import logging

        from skcpcae.scale import _local_client

        # the cluster of `skcpcae score --workers N`
        with _local_client(workers, silence_logs=logging.ERROR) as client:
            # warm-up: imports and the model load on every worker, not measured
            score_files(model, paths[:64], out + ".warm.csv", batch_size=32, client=client)
            t0 = time.perf_counter()
            summary = score_files(model, paths, out, batch_size=32, client=client)
            result["seconds"] = time.perf_counter() - t0
            result["worker_peak_mb"] = sorted(v / 1024 for v in
                                              client.run(_vmhwm_kb).values())
            result["torch_threads"] = max(client.run(torch.get_num_threads).values())
    assert summary.n_scored == n, summary
    result["peak_mb"] = _vmhwm_kb() / 1024
    print(json.dumps(result))


# ------------------------------------------------------------------------------ parent side
def _write_images(folder, n_max, size):
    from skcpcae.datasets import make_parts, save_image

    X, _ = make_parts(160, n_anomalies=40, size=(size, size), random_state=1)
    blobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, x in enumerate(X):
            blobs.append(Path(save_image(Path(tmp) / f"{i}.png", x)).read_bytes())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_max):
        (folder / f"img_{i:06d}.png").write_bytes(blobs[i % len(blobs)])


def _fit_model(path, size):
    from skcpcae import make_preset, persistence
    from skcpcae.datasets import make_parts

    X, _ = make_parts(40, size=(size, size), random_state=0)
    pipe = make_preset("best").fit(X)
    persistence.save(pipe, path)


def _run(args, model, folder, n, mode, workers=0, threads=0):
    out = tempfile.mktemp(suffix=".csv", dir=args.tmp)
    cmd = [sys.executable, __file__, "--child", mode, "--model", str(model), "--folder",
           str(folder), "--n", str(n), "--workers", str(workers), "--threads", str(threads),
           "--out", out]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["out"] = out
    print(f"  {mode:5s} n={n:6d} workers={workers} threads={result['torch_threads']}: "
          f"{result['seconds']:.1f} s, {n / result['seconds']:.1f} img/s, peak "
          f"{result['peak_mb']:.0f} MB"
          + (f", workers {', '.join(f'{m:.0f}' for m in result['worker_peak_mb'])} MB"
             if "worker_peak_mb" in result else ""), flush=True)
    return result


def _same_rows(a, b):
    return Path(a).read_bytes() == Path(b).read_bytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-small", type=int, default=2000)
    parser.add_argument("--n-large", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", choices=["local", "dask"])
    parser.add_argument("--model")
    parser.add_argument("--folder")
    parser.add_argument("--n", type=int)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        return child(args.model, args.folder, args.n, args.child, args.workers, args.threads,
                     args.out)
    sys.path.insert(0, str(ROOT))
    warnings.simplefilter("ignore")
    from skcpcae.utils._report import machine_description, update_section

    args.tmp = tempfile.mkdtemp(prefix="skcpcae-scale-")
    try:
        model, folder = Path(args.tmp) / "best.skops", Path(args.tmp) / "images"
        t0 = time.perf_counter()
        _fit_model(model, args.size)
        _write_images(folder, args.n_large, args.size)
        print(f"model fitted and {args.n_large} images written in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        load_before = os.getloadavg()[1]
        small = _run(args, model, folder, args.n_small, "local")
        large = _run(args, model, folder, args.n_large, "local")
        one = _run(args, model, folder, args.n_small, "local", threads=1)
        dask2 = _run(args, model, folder, args.n_small, "dask", workers=2)
        dask1 = _run(args, model, folder, args.n_small, "dask", workers=1)
    finally:
        results_same = None
        try:
            results_same = _same_rows(one["out"], dask2["out"])
        except Exception:  # noqa: BLE001 - a failed run above says why
            pass
        shutil.rmtree(args.tmp, ignore_errors=True)

    load = (load_before, os.getloadavg()[1])
    ratio = large["peak_mb"] / small["peak_mb"]
    overhead_ms = 1000 * (dask1["seconds"] - one["seconds"]) / args.n_small
    rate = {k: r["n"] / r["seconds"] for k, r in
            {"small": small, "large": large, "one": one, "dask2": dask2, "dask1": dask1}.items()}
    lines = [
        f"Scoring {args.n_small:,} vs {args.n_large:,} synthetic {args.size}x{args.size} gray "
        "PNG files with the `best` preset (fitted on 40 parts), batches of 32, CSV output; "
        f"`python benchmarks/scale.py` on {machine_description()}. Each row is a fresh "
        "process; peak = `VmHWM` (model and libraries included); Dask rows: the "
        "`LocalCluster` of `skcpcae score --workers N` (127.0.0.1, one thread per worker), "
        "started and warmed up before the clock starts. Load average (5 min) of the machine when the runs started and "
        f"ended: {load[0]:.1f}, {load[1]:.1f} (other work on a shared machine slows every "
        "row; images/s compare only within one run).",
        "",
        "| run | images | torch threads (per process) | seconds | images/s | peak RSS, driver | peak RSS, "
        "each worker |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("one process", small), ("one process", large),
                    ("one process, 1 thread", one), ("Dask, 2 workers", dask2),
                    ("Dask, 1 worker", dask1)):
        workers = (", ".join(f"{m:.0f} MB" for m in r["worker_peak_mb"])
                   if "worker_peak_mb" in r else "")
        lines.append(f"| {name} | {r['n']:,} | {r['torch_threads']} | {r['seconds']:.1f} | "
                     f"{r['n'] / r['seconds']:.1f} | {r['peak_mb']:.0f} MB | {workers} |")
    lines += [
        "",
        f"- Peak memory, {args.n_large:,} vs {args.n_small:,} images: "
        f"{large['peak_mb']:.0f} / {small['peak_mb']:.0f} MB = **{ratio:.2f}x** "
        f"(target: at most 1.2x) — {'met' if ratio <= 1.2 else 'NOT met'}.",
        f"- Throughput on this 2-core machine: one process {rate['small']:.1f} images/s "
        f"({rate['one']:.1f} with one torch thread), 2-worker cluster "
        f"{rate['dask2']:.1f} images/s ({rate['dask2'] / max(rate['small'], rate['one']):.2f}x "
        "the faster single process).",
        f"- Dask overhead: {overhead_ms:+.2f} ms per image (1-worker cluster vs one process "
        f"with one torch thread: {rate['dask1']:.1f} vs {rate['one']:.1f} images/s).",
        f"- The 2-worker cluster's CSV is byte for byte the one-thread local run's: "
        f"{'yes' if results_same else 'no'}.",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    if args.write:
        update_section(ROOT / "docs" / "benchmarks.md", "scale", "## Scale\n\n" + text)
        print("\nwrote docs/benchmarks.md (section 'scale')")


if __name__ == "__main__":
    main()
