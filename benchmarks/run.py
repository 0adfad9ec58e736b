"""One entry point for the comparison table, and for ``make demo`` (``--demo``).

    python benchmarks/run.py --demo             # what `make demo` runs: three methods on ELPV
    python benchmarks/run.py --write            # full run, updates docs/benchmarks.md
    python benchmarks/run.py --quick            # smoke run
    python benchmarks/run.py --datasets mvtec:/data/mvtec:bottle
    .venv-compare/bin/python benchmarks/run.py --write   # with anomalib's PatchCore and PaDiM
    .venv-compare/bin/python benchmarks/run.py --methods best patchcore anomalib-patchcore \
        anomalib-padim --threads 1 --section compare --write   # the 'Beside anomalib' table

The rows ``anomalib-patchcore`` and ``anomalib-padim`` (benchmarks/_anomalib_rows.py) need the
optional extra ``compare`` (anomalib), installed in its own venv; without it they are skipped
with a line that says so.
"""

import sys

from _anomalib_rows import register
from _harness import METHODS, demo, main

register(METHODS)

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--demo" in argv:
        demo([a for a in argv if a != "--demo"])
    else:
        main(argv, prog="python benchmarks/run.py")
