"""One entry point for the comparison table (also ``skcpcae benchmark``).

    python benchmarks/run.py --write            # full run, updates docs/benchmarks.md
    python benchmarks/run.py --quick            # smoke run
    python benchmarks/run.py --datasets mvtec:/data/mvtec:bottle
"""

from skcpcae._benchmark import main

if __name__ == "__main__":
    main(prog="python benchmarks/run.py")
