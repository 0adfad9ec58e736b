"""Benchmark caches keyed by code and data.

A cached array is valid only for the code that computed it and the images it was computed
from, so its file name carries both: a hash of the package's source (every ``skcpcae/**/*.py``
outside the tests) plus the benchmark script's own source, and a hash of the input arrays
(shape, dtype and bytes). Change either and the old file is simply not found; stale files
are harmless and can be deleted with ``rm -r benchmarks/out``. Paths are resolved from this
file, so a script run from any working directory uses the repository's ``benchmarks/out``.
(``threshold.py`` and ``select_cpcae.py`` key their caches by the source of the steps they
use, a finer key of the same kind.)
"""

import functools
import hashlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
#: the page the benchmark scripts write their sections into
DOCS = ROOT / "docs" / "benchmarks.md"

__all__ = ["DOCS", "OUT", "ROOT", "cache_path", "code_key", "data_key"]


@functools.cache
def code_key(script):
    """Hash of the package's source and of ``script`` (a benchmark file)."""
    h = hashlib.sha256()
    package = ROOT / "skcpcae"
    for path in sorted(package.rglob("*.py")):
        if "tests" in path.relative_to(package).parts:
            continue
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    h.update(Path(script).resolve().read_bytes())
    return h.hexdigest()[:12]


def data_key(*arrays):
    """Hash of the arrays a cached result was computed from."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:12]


def cache_path(name, script, *arrays, suffix=".npz"):
    """``benchmarks/out/<name>_<code key>_<data key><suffix>`` (the folder is created)."""
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT / f"{name}_{code_key(script)}_{data_key(*arrays)}{suffix}"
