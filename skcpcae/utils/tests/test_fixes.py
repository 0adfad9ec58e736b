"""skcpcae.utils.fixes: the one module that imports private names of its dependencies."""

import ast
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import BallTree, KDTree

import skcpcae
from skcpcae.utils import fixes

PACKAGE = Path(skcpcae.__file__).parent
DEPENDENCIES = ("sklearn", "timm", "torch", "torchvision", "skorch", "skops")

#: module (relative to the package) -> private names it may import, and why. Empty: every
#: private name of a dependency goes through ``skcpcae/utils/fixes.py``.
ALLOWED = {}


def _private_imports(path):
    """``(line, "module.name")`` of each private name of a dependency imported in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] not in DEPENDENCIES:
                continue
            private_module = any(p.startswith("_") for p in parts)
            for alias in node.names:
                if private_module or alias.name.startswith("_"):
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in DEPENDENCIES and any(p.startswith("_") for p in parts):
                    found.append((node.lineno, alias.name))
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in DEPENDENCIES and node.attr.startswith("_")
              and not node.attr.startswith("__")):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if "tests/" in rel or rel == "utils/fixes.py":
            continue
        yield rel, path


def test_private_names_of_dependencies_are_imported_in_fixes_only():
    offenders = []
    for rel, path in _modules():
        allowed = ALLOWED.get(rel, set())
        offenders += [f"skcpcae/{rel}:{line}: {name}" for line, name in _private_imports(path)
                      if name not in allowed]
    assert not offenders, (
        "Import these through skcpcae/utils/fixes.py (one wrapper each, with the tested "
        "versions):\n" + "\n".join(offenders))


def test_the_scan_sees_each_kind_of_private_import(tmp_path):
    # the scanner itself must catch what it is meant to catch
    path = tmp_path / "m.py"
    path.write_text(
        "import torch\n"
        "from sklearn.base import BaseEstimator, _fit_context\n"
        "from sklearn.utils._param_validation import Interval\n"
        "import timm.models._features\n"
        "from .._base import _private_of_skcpcae\n"
        "def f():\n    from sklearn.utils.validation import _num_samples\n"
        "    return torch._C\n"
    )
    names = sorted(name for _, name in _private_imports(path))
    assert names == sorted(["sklearn.base._fit_context", "sklearn.utils._param_validation.Interval",
                            "timm.models._features", "sklearn.utils.validation._num_samples",
                            "torch._C"])


def test_every_allowed_exception_is_still_needed():
    for rel, names in ALLOWED.items():
        found = {name for _, name in _private_imports(PACKAGE / rel)}
        assert names <= found, f"{rel}: {sorted(names - found)} no longer imported; drop them"


def _as_tuple(v):
    return tuple(int(p) for p in v.split("+")[0].split(".")[:3] if p.isdigit())


@pytest.mark.parametrize("dist", sorted(fixes.TESTED_VERSIONS))
def test_installed_versions_are_in_the_tested_range(dist):
    oldest, newest = fixes.TESTED_VERSIONS[dist]
    installed = _as_tuple(version(dist))
    assert _as_tuple(oldest) <= installed[: len(_as_tuple(oldest))], (dist, installed)
    # a newer release is allowed, but the wrappers were not tested on it: say so
    if installed[: len(_as_tuple(newest))] > _as_tuple(newest):
        pytest.xfail(f"{dist} {version(dist)} is newer than the tested {newest}: "
                     "run the suite and extend TESTED_VERSIONS")


def test_every_wrapper_resolves():
    for name in fixes.__all__:
        assert getattr(fixes, name) is not None, name
    assert fixes.timm_feature_getter_net() is not None
    assert fixes.num_samples(np.zeros((7, 3))) == 7
    assert fixes.num_samples([[1], [2]]) == 2
    np.testing.assert_array_equal(fixes.safe_indexing(np.arange(5), [4, 0]), [4, 0])
    assert fixes.safe_indexing([10, 20, 30], [2]) == [30]


@pytest.mark.parametrize("tree_class", [KDTree, BallTree])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_tree_state_reads_the_arrays(tree_class, weighted):
    X = np.random.default_rng(0).normal(size=(40, 3))
    w = np.linspace(1, 2, 40) if weighted else None
    tree = tree_class(X, leaf_size=5, sample_weight=w)
    state = fixes.binary_tree_state(tree)
    np.testing.assert_array_equal(state["data"], X)
    assert sorted(np.asarray(state["idx_array"]).tolist()) == list(range(40))
    assert state["n_nodes"] == len(state["node_data"]) == 2 ** state["n_levels"] - 1
    assert np.asarray(state["node_bounds"]).shape[1:] == (state["n_nodes"], 3)
    if weighted:
        np.testing.assert_allclose(state["sample_weight"], w)
    else:
        assert state["sample_weight"] is None
    data, idx, node_data, bounds = tree.get_arrays()  # the public accessor agrees
    np.testing.assert_array_equal(state["idx_array"], idx)
    np.testing.assert_array_equal(state["node_bounds"], bounds)


def test_binary_tree_state_refuses_another_layout():
    class Moved:
        def __getstate__(self):
            return (np.zeros((2, 2)), np.arange(2))

    with pytest.raises(RuntimeError, match="does not have the layout"):
        fixes.binary_tree_state(Moved())
