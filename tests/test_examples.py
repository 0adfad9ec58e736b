"""The gallery examples run, write the figures the docs show, and the docs show no stale figure.

Each example is copied into a temporary tree (``<tmp>/examples/<topic>/plot_*.py``) and run
there with ``SKCPCAE_EXAMPLES_OUT`` pointing into it, so the test never rewrites
``docs/_static``. Slow examples on real data (ELPV) are not run here; run them by hand.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
STATIC = ROOT / "docs" / "_static"

#: figures each example writes (names in docs/_static)
EXPECTED = {
    "pipeline/plot_quickstart.py": ["pipeline_quickstart_roc_pr.png"],
    "preprocessing/plot_registration_gamma.py": [
        "preprocessing_registration.png",
        "preprocessing_gamma.png",
    ],
    "residuals/plot_reconstruction_triplets.py": [
        "residuals_triplets.png",
        "residuals_crossfit.png",
    ],
    "embedding/plot_tsne.py": ["embedding_tsne.png"],
    "threshold/plot_score_histogram.py": ["threshold_histogram.png"],
    "baselines/plot_baselines.py": ["baselines_comparison.png"],
    "elpv/plot_elpv_heatmap.py": ["elpv_heatmap.png"],
    "elpv/plot_elpv_patch_heatmap.py": ["elpv_patch_heatmap.png"],
}
#: examples on real data that take minutes: not run by the test suite
SLOW = {"elpv/plot_elpv_heatmap.py"}
#: examples that take more than 30 s on 2 cores (--durations): run by ``make test``, marked
#: ``slow`` so that ``pytest -m "not slow"`` gives a quick run
SLOW_RUNS = {
    "elpv/plot_elpv_patch_heatmap.py",
    "baselines/plot_baselines.py",
    "pipeline/plot_quickstart.py",
    "residuals/plot_reconstruction_triplets.py",
}

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _examples():
    return sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/plot_*.py"))


def test_every_example_is_listed():
    assert _examples(), "no examples found"
    assert set(_examples()) == set(EXPECTED), (
        "examples and EXPECTED disagree: add the figures of a new example to EXPECTED"
    )


@pytest.mark.parametrize("name", _examples())
def test_example_has_a_gallery_title(name):
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    match = re.match(r'\s*"""\s*\n(.+)\n(=+)\n', text)
    assert match, f"{name} must start with a docstring whose first line is an '=' title"
    assert len(match.group(2)) >= len(match.group(1).rstrip())


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_RUNS else [])
    for n in _examples() if n not in SLOW
])
def test_example_runs_and_writes_its_figures(name, tmp_path):
    script = tmp_path / "examples" / name
    script.parent.mkdir(parents=True)
    shutil.copy(EXAMPLES / name, script)
    out = tmp_path / "out"
    env = dict(os.environ, SKCPCAE_EXAMPLES_OUT=str(out), MPLBACKEND="Agg",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # examples that predate the environment variable write next to their copy
    written = {p.name: p for p in tmp_path.rglob("*.png")}
    for figure in EXPECTED[name]:
        assert figure in written, f"{name} did not write {figure}; wrote {sorted(written)}"
        data = written[figure].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f"{figure} is not a real PNG"


def _figures_shown(pages):
    shown = set()
    for page in pages:
        shown |= set(re.findall(r"_static/([\w.-]+\.png)", page.read_text(encoding="utf-8")))
    return shown


def test_docs_figures_exist():
    """Every docs/_static PNG that the README or a docs page shows is there."""
    pages = [ROOT / "README.md", *(p for p in (ROOT / "docs").rglob("*.md")
                                   if "_build" not in p.parts)]
    shown = _figures_shown(pages)
    assert shown, "no page shows a figure"
    missing = sorted(f for f in shown if not (STATIC / f).is_file())
    assert not missing, f"pages show figures missing from docs/_static: {missing}"


def test_guide_figures_come_from_examples():
    """The README, getting started and user-guide figures are written by an example."""
    produced = {fig for figures in EXPECTED.values() for fig in figures}
    pages = [ROOT / "README.md", ROOT / "docs" / "getting_started.md",
             *(ROOT / "docs" / "user_guide").glob("*.md")]
    shown = _figures_shown(p for p in pages if p.is_file())
    orphans = sorted(shown - produced)
    assert not orphans, f"figures shown that no example writes (add it to EXPECTED): {orphans}"
