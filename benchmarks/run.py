"""One entry point for the comparison table (also ``skcpcae benchmark``).

    python benchmarks/run.py --write            # full run, updates docs/benchmarks.md
    python benchmarks/run.py --quick            # smoke run
    python benchmarks/run.py --datasets mvtec:/data/mvtec:bottle
    .venv-compare/bin/python benchmarks/run.py --write   # with anomalib's PatchCore and PaDiM

The rows ``anomalib-patchcore`` and ``anomalib-padim`` (benchmarks/_anomalib_rows.py) need the
optional extra ``compare`` (anomalib), installed in its own venv; without it they are skipped
with a line that says so.
"""

from _anomalib_rows import register

from skcpcae._benchmark import METHODS, main

register(METHODS)

if __name__ == "__main__":
    main(prog="python benchmarks/run.py")
