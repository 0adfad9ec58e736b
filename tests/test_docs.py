"""The documentation: a complete API reference, and a strict build that renders it.

``test_api_reference_lists_every_public_name`` is fast and needs no Sphinx. The build test
runs what ``make docs`` runs (``sphinx-build -n -W``: an unresolved reference or any warning
fails), into a temporary folder, and reads the rendered page of ``KDEThresholdClassifier``,
so an empty or broken API reference fails the test suite.
"""

import importlib
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Modules whose ``__all__`` the API reference must list in full. ``skcpcae`` itself
#: re-exports the estimators of the subpackages; its own names are the factories.
PUBLIC_MODULES = [
    "skcpcae.preprocessing",
    "skcpcae.residuals",
    "skcpcae.embedding",
    "skcpcae.outlier",
    "skcpcae.baselines",
    "skcpcae.datasets",
    "skcpcae.metrics",
    "skcpcae.model_selection",
    "skcpcae.plotting",
    "skcpcae.persistence",
    "skcpcae.scale",
    "skcpcae.export",
    "skcpcae.runtime",
    "skcpcae.utils",
    "skcpcae.utils.discovery",
    "skcpcae.utils.estimator_checks",
]
FACTORIES = ["PRESETS", "make_best_pipeline", "make_cpcae_pipeline",
             "make_deep_feature_pipeline", "make_preset", "make_union_pipeline"]


def _documented_names():
    """``{module: {name, ...}}`` of the autosummary entries of docs/api.md."""
    documented, module = {}, None
    for line in (DOCS / "api.md").read_text(encoding="utf-8").splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line.strip())
        if match:
            module = match.group(1)
            continue
        entry = re.fullmatch(r" {3}([A-Za-z_][A-Za-z0-9_]*)", line)
        if entry and module is not None:
            documented.setdefault(module, set()).add(entry.group(1))
    return documented


@pytest.mark.parametrize("module_name", PUBLIC_MODULES + ["skcpcae"])
def test_api_reference_lists_every_public_name(module_name):
    documented = _documented_names().get(module_name, set())
    if module_name == "skcpcae":
        public = set(FACTORIES)
    else:
        public = set(importlib.import_module(module_name).__all__)
    missing = sorted(public - documented)
    assert not missing, (
        f"docs/api.md does not list {missing} of {module_name}.__all__: add them under "
        f"'.. currentmodule:: {module_name}'."
    )
    stale = sorted(documented - public)
    assert not stale, f"docs/api.md lists {stale}, which {module_name} does not export."


def _copy_docs(dest):
    """docs/ and examples/ (the gallery's source, ``../examples`` from conf.py) without
    build outputs, so the test never writes into the working tree."""
    ignore = shutil.ignore_patterns("_build", "generated", "auto_examples", "*.pyc",
                                    "__pycache__", "sg_execution_times.rst")
    shutil.copytree(DOCS, dest / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", dest / "examples", ignore=ignore)
    return dest / "docs"


@pytest.mark.slow
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("sphinx", "numpydoc", "myst_parser")),
    reason="the docs extra is not installed (pip install -e '.[docs]')",
)
def test_docs_build_strict_and_renders_api_reference(tmp_path):
    src = _copy_docs(tmp_path)
    out = tmp_path / "html"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-b", "html",
         str(src), str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"sphinx-build -n -W failed:\n{proc.stderr[-6000:]}"

    _check_rendered_reference(out)


def _check_rendered_reference(out):
    page = out / "generated" / "skcpcae.outlier.KDEThresholdClassifier.html"
    assert page.is_file(), "no rendered page for KDEThresholdClassifier"
    html = page.read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", "", html)
    # the signature, the Parameters and Attributes sections with their entries
    assert 'id="skcpcae.outlier.KDEThresholdClassifier"' in html
    for section in ("Parameters", "Attributes", "Examples"):
        assert section in text, f"section {section!r} missing"
    for name in ("estimator", "alpha", "beta", "cv", "bandwidth",  # parameters
                 "estimator_", "train_scores_", "kde_"):             # attributes
        assert f"<strong>{name}</strong>" in html, f"entry {name!r} not rendered"
    for prop in ("threshold_", "offset_"):  # properties: listed, and documented below
        assert f'id="skcpcae.outlier.KDEThresholdClassifier.{prop}"' in html, prop
    # the executed example, and the methods documented on the class's page
    assert "&gt;&gt;&gt;" in html and "KDEThresholdClassifier(KNNAnomalyScorer" in text
    for method in ("fit", "predict", "score_samples", "decision_function"):
        assert f'id="skcpcae.outlier.KDEThresholdClassifier.{method}"' in html, method
    # scikit-learn's own methods are left to scikit-learn's reference
    assert 'id="skcpcae.outlier.KDEThresholdClassifier.get_params"' not in html

    # the factories and the utilities have pages, linked from the API reference
    api = (out / "api.html").read_text(encoding="utf-8")
    for target in ("skcpcae.make_cpcae_pipeline", "skcpcae.make_preset",
                   "skcpcae.utils.chunked_score_samples", "skcpcae.persistence.load"):
        assert (out / "generated" / f"{target}.html").is_file(), target
        assert f"generated/{target}.html" in api, target
