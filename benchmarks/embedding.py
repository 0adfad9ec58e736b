"""Embedding throughput of DeepPoolEmbedder on CPU (images per second).

    python benchmarks/embedding.py              # print the table
    python benchmarks/embedding.py --write      # also update docs/benchmarks.md
    python benchmarks/embedding.py --quick      # fewer images (smoke run)

Default pretrained backbone (EfficientNet-Lite0, offline weights), ``pooling="max"`` (the
deep-feature baseline) and ``"parallel_cascade"`` (the CPCAE pipeline's head), on grayscale
images at full resolution: 300x300 (ELPV cells when ``elpv-dataset`` is installed, else
synthetic parts) and 1024x1024 (synthetic parts), for several ``batch_size`` values. Each
configuration is fitted, warmed up on one batch, then ``transform`` is timed (wall clock, best
of ``--repeats``) over the whole set, for each torch thread count given with ``--threads``
(default: torch's own). Timings are wall clock on a shared machine: pessimistic
when other jobs run.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from skcpcae.datasets import make_parts
from skcpcae.embedding import DeepPoolEmbedder

ROOT = Path(__file__).resolve().parents[1]
SECTION = "embedding"

try:
    from skcpcae.utils._report import machine_description, update_section
except ImportError:  # pragma: no cover - fallback when the shared helper is absent
    import platform
    import re

    def update_section(path, name, text):
        path = Path(path)
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        block = f"{start}\n{text.rstrip()}\n{end}"
        old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if pattern.search(old):
            new = pattern.sub(lambda _: block, old)
        else:
            new = old.rstrip() + "\n\n" + block + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new, encoding="utf-8")

    def machine_description():
        return (
            f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
        )


def elpv_cells(n):
    """The first ``n`` ELPV cells (300x300 uint8), or None without ``elpv-dataset``."""
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError:
        return None
    images = load_dataset()[0]
    return np.asarray(images[:n])


def datasets(quick):
    n300, n1024 = (8, 2) if quick else (32, 8)
    cells = elpv_cells(n300)
    if cells is not None:
        yield "ELPV cells 300x300", cells
    else:
        print("elpv-dataset not installed: synthetic 300x300 parts used", file=sys.stderr)
        yield "synthetic parts 300x300", make_parts(n300, size=(300, 300), random_state=0)[0]
    yield "synthetic parts 1024x1024", make_parts(n1024, size=(1024, 1024), random_state=0)[0]


def time_transform(emb, X, repeats):
    emb.transform(X[: emb.batch_size])  # warm-up (oneDNN primitive creation)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        emb.transform(X)
        best = min(best, time.perf_counter() - start)
    return len(X) / best


def run(quick, repeats, batch_sizes, threads):
    rows = []
    default_threads = torch.get_num_threads()
    for name, X in datasets(quick):
        for pooling in ("max", "parallel_cascade"):
            emb = DeepPoolEmbedder(pooling=pooling, device="cpu")
            emb.fit(X[:1])
            for n_threads in threads or [default_threads]:
                torch.set_num_threads(n_threads)
                for bs in batch_sizes:
                    if bs > len(X):
                        continue
                    emb.set_params(batch_size=bs)
                    ips = time_transform(emb, X, repeats)
                    rows.append((name, pooling, emb.n_features_out_, n_threads, bs, len(X), ips))
                    print(
                        f"{name:26s} {pooling:17s} threads {n_threads} batch {bs:3d}: "
                        f"{ips:7.2f} images/s",
                        file=sys.stderr,
                    )
    torch.set_num_threads(default_threads)
    return rows


def _load():
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except (AttributeError, OSError):  # pragma: no cover - not on every platform
        return "unknown"


def markdown(rows):
    lines = [
        "## Embedding throughput (DeepPoolEmbedder)",
        "",
        "`python benchmarks/embedding.py --write`. Default pretrained backbone "
        "(`tf_efficientnet_lite0`, offline weights), grayscale images at full resolution "
        "(repeated to 3 channels), CPU, `torch.inference_mode`, channels-last. Images per "
        "second of `transform` (wall clock, best of the repeats, after a warm-up batch).",
        "",
        f"Machine: {machine_description()}. The machine was shared with other jobs (load "
        f"average {_load()}), so the figures are pessimistic; with other CPU-bound jobs "
        "running, fewer torch threads can be faster.",
        "",
        "| images | pooling | features | torch threads | batch_size | n images | images / s "
        "| ms / image |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, pooling, d, n_threads, bs, n, ips in rows:
        lines.append(
            f"| {name} | `{pooling}` | {d} | {n_threads} | {bs} | {n} | {ips:.2f} "
            f"| {1000 / ips:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/embedding.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer images (smoke run)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--threads", type=int, nargs="+", default=None, help="torch thread counts to compare"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    md = markdown(run(args.quick, args.repeats, args.batch_sizes, args.threads))
    print(md)
    if args.write:
        update_section(args.docs, SECTION, md)
        print(f"\nwrote {args.docs} (section '{SECTION}')", file=sys.stderr)


if __name__ == "__main__":
    main()
