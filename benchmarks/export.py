"""ONNX export on ELPV: parity with the Python pipeline and onnxruntime's speed.

    python benchmarks/export.py [--cells mono poly] [--presets best deep-feature [aligned]]
                                [--threads 2] [--batch-size 16] [--quick] [--write]

For each cell type (protocol of ``benchmarks/paper_tables.py``: fit on ``b.X_train``, test on
``b.X_test``) and each preset, the pipeline is fitted, exported with
``skcpcae.export.to_onnx`` (parity checked on 32 training images) and both the Python
pipeline and the ONNX graph under onnxruntime score the whole test split. Reported: the
largest relative anomaly-score difference, the decisions that differ, and images/s of each,
measured in the same run on the same batches (``--batch-size``), alternating batch by batch
(Python, then onnxruntime) so that a load change on a shared machine hits both alike, with
torch and onnxruntime limited to ``--threads`` threads. Python's time is its
``score_samples`` (embedding + scorer); onnxruntime's run returns score, decision and map.

``--presets aligned`` adds the CPCAE pipeline (``CPCAEResidualMap -> DeepPoolEmbedder ->
k-NN``, the ``paper`` preset without registration and gamma, which stay outside the graph);
it is not in the default list because its fit (the autoencoder) takes about a minute per cell
type. Its Python time includes the residual map, as its graph does.

When the ``openvino`` package is installed (``pip install "skcpcae[openvino]"``), the same
file is also compiled by OpenVINO's CPU plugin (``--threads`` inference threads, f32
precision hint) and timed in the same loop (Python, onnxruntime, then OpenVINO on each
batch): one more row per preset. Without the package, a line says that its rows are skipped.
The relative score difference is ``|s - s_python| / |s_python|`` (no floor); the export's own
check divides by ``max(|s_python|, |threshold|)``, reported beside it.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time

import numpy as np
from _cache import DOCS

from skcpcae import make_preset
from skcpcae.datasets import load_elpv
from skcpcae.export import to_onnx
from skcpcae.export._onnx import _floor, relative_difference
from skcpcae.utils._report import machine_description, update_section


def _load(cell, quick):
    b = load_elpv(cell)
    X_tr, X_te = b.X_train, b.X_test
    if quick:
        X_tr, X_te = X_tr[:24], X_te[:32]
    return X_tr, X_te


def _openvino():
    """The ``openvino`` module, or None (with the line saying its rows are skipped)."""
    try:
        import openvino
    except ImportError:
        print("openvino: not installed (pip install 'skcpcae[openvino]'); the OpenVINO rows "
              "are skipped", flush=True)
        return None
    print(f"openvino {openvino.__version__}: OpenVINO rows included", flush=True)
    return openvino


def run_one(cell, preset, X_tr, X_te, *, threads, batch_size, tmp, ov=None):
    import onnxruntime as ort

    t0 = time.perf_counter()
    pipe = make_preset(preset).fit(X_tr)
    fit_s = time.perf_counter() - t0
    path = os.path.join(tmp, f"{cell}-{preset}.onnx")
    report = to_onnx(pipe, path, sample=X_tr[:32], overwrite=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    runners = {"onnxruntime": lambda batch: session.run(None, {"images": batch})}
    if ov is not None:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        outputs = compiled.outputs

        def run_openvino(batch):
            result = request.infer({0: batch})
            return [np.array(result[o]) for o in outputs]

        runners["OpenVINO"] = run_openvino
    head, final = pipe[:-1], pipe[-1]
    for run in runners.values():  # warm up all
        run(X_te[:batch_size])
    head.transform(X_te[:batch_size])
    py_scores, py_dec, t_py = [], [], 0.0
    got = {name: ([], []) for name in runners}
    seconds = dict.fromkeys(runners, 0.0)
    for start in range(0, len(X_te), batch_size):
        batch = X_te[start:start + batch_size]
        t = time.perf_counter()
        features = head.transform(batch)
        scores = -final.score_samples(features)
        t_py += time.perf_counter() - t
        py_scores.append(scores)
        py_dec.append(final.predict(features))  # not timed
        for name, run in runners.items():
            t = time.perf_counter()
            out = run(batch)
            seconds[name] += time.perf_counter() - t
            got[name][0].append(out[0])
            got[name][1].append(out[1])
    py_scores, py_dec = np.concatenate(py_scores), np.concatenate(py_dec)
    n = len(X_te)
    rows = []
    for name in runners:
        scores, dec = (np.concatenate(v) for v in got[name])
        rows.append({
            "cells": cell, "preset": preset, "runtime": name, "n_test": n, "fit_s": fit_s,
            "export_rel_diff": report.max_rel_diff,
            "max_rel_diff": relative_difference(scores, py_scores),  # plain |b|, no floor
            "check_rel_diff": relative_difference(scores, py_scores, _floor(report.threshold)),
            "decisions_differ": int(np.sum(py_dec != dec)),
            "n_defect": int(np.sum(py_dec == -1)),
            "python_ips": n / t_py, "runtime_ips": n / seconds[name],
            "size_mib": os.path.getsize(path) / 2**20,
        })
    return rows


def _table(rows):
    lines = ["| cells | preset | runtime | test images | max rel. score diff | rel. diff, "
             "export check | decisions differ (Python flagged) | Python images/s | runtime "
             "images/s | speed-up | ONNX file MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['cells']} | `{r['preset']}` | {r['runtime']} | {r['n_test']} | "
            f"{r['max_rel_diff']:.2g} | {r['check_rel_diff']:.2g} | "
            f"{r['decisions_differ']} ({r['n_defect']}) | {r['python_ips']:.1f} | "
            f"{r['runtime_ips']:.1f} | {r['runtime_ips'] / r['python_ips']:.2f}x | "
            f"{r['size_mib']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", nargs="+", default=["mono", "poly"], choices=["mono", "poly"])
    p.add_argument("--presets", nargs="+", default=["best", "deep-feature"],
                   choices=["best", "deep-feature", "aligned"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="smoke run on a few images")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    p.add_argument("--docs", default=str(DOCS))
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_description()}", flush=True)
    ov = _openvino()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells:
            X_tr, X_te = _load(cell, args.quick)
            for preset in args.presets:
                for row in run_one(cell, preset, X_tr, X_te, threads=args.threads,
                                   batch_size=args.batch_size, tmp=tmp, ov=ov):
                    rows.append(row)
                    print({k: (float(f"{v:.6g}") if isinstance(v, float) else v)
                           for k, v in row.items()}, flush=True)
    text = _table(rows)
    print(text)
    if args.write and not args.quick:
        text = (
            f"Generated by `python benchmarks/export.py --cells {' '.join(args.cells)} "
            f"--presets {' '.join(args.presets)} "
            f"--threads {args.threads} --batch-size {args.batch_size} --write` on "
            f"{datetime.date.today().isoformat()}.  \n"
            f"Machine: {machine_description()}  \n"
            f"Fit on `X_train`, scored on the whole `X_test` split of each cell type; "
            "exported with `skcpcae.export.to_onnx` (opset 17, float32 input, parity "
            "checked on 32 training images). Images/s: same run, same batches, alternating "
            f"batch by batch, {args.threads} threads for torch, onnxruntime"
            f"{' and OpenVINO' if ov else ''}; Python = the pipeline's `score_samples`, a "
            "runtime = one run giving score, decision (and map). Max rel. score diff: "
            "`|s - s_python| / |s_python|`; export check: divided by `max(|s_python|, "
            "|threshold|)`, as `to_onnx` checks it. "
            + (f"OpenVINO {ov.__version__}, CPU plugin, f32 precision hint."
               if ov else "OpenVINO: not installed, no row.") + "\n\n" + text)
        update_section(args.docs, "export", text)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
