# SPDX-License-Identifier: BSD-3-Clause
"""The objects inside a model, as :mod:`skcpcae.persistence` sees them: a walk over the
object graph (what a serialiser would store), the torch objects a ``.skops`` file cannot
hold, and the bounds of loaded k-d / ball trees (scikit-learn's Cython reads them
unchecked), and which skcpcae types are public (trusted in a ``.skops`` file)."""

import importlib
import numbers
import re
import sys

import numpy as np

_TORCH_ROOTS = ("torch", "skorch", "timm")



def _children(obj):
    """(name, child) pairs of an object as a serialiser would see them."""
    if isinstance(obj, dict):
        return [(f"[{k!r}]", v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(obj)]
    if isinstance(obj, (str, bytes, numbers.Number, np.ndarray, np.generic, type)) or obj is None:
        return []
    if callable(obj) and not hasattr(obj, "__dict__"):
        return []
    try:
        state = obj.__getstate__() if hasattr(obj, "__getstate__") else vars(obj)
    except Exception:  # objects without a usable state hold nothing to inspect
        return []
    if isinstance(state, dict):
        return [(f".{k}", v) for k, v in state.items()]
    if isinstance(state, (list, tuple)):
        return [(f"<state>[{i}]", v) for i, v in enumerate(state)]
    return []


def _walk(obj, visit, path="estimator", seen=None, depth=0):
    """Depth-first walk over the object graph; ``visit(obj, path)`` returns True to stop."""
    seen = {} if seen is None else seen  # id -> object: holding it keeps its id unique
    if id(obj) in seen or depth > 100:
        return
    seen[id(obj)] = obj
    if visit(obj, path):
        return
    for name, child in _children(obj):
        _walk(child, visit, path + name, seen, depth + 1)


def _torch_paths(estimator):
    """Paths to torch / skorch / timm objects inside ``estimator``."""
    if not any(root in sys.modules for root in _TORCH_ROOTS):
        return []
    found = []

    def visit(obj, path):
        root = type(obj).__module__.split(".")[0]
        if root in _TORCH_ROOTS:
            found.append(f"{path} ({type(obj).__module__}.{type(obj).__qualname__})")
            return True
        return False

    _walk(estimator, visit)
    return found


def _check_binary_tree(tree, path):
    """Bounds of a loaded KDTree / BallTree's index arrays (Cython reads them unchecked)."""
    from .utils.fixes import binary_tree_state

    state = binary_tree_state(tree)
    data, idx_array = state["data"], state["idx_array"]
    node_data, node_bounds = state["node_data"], state["node_bounds"]
    n_levels, n_nodes = state["n_levels"], state["n_nodes"]
    sample_weight = state["sample_weight"]
    problems = []
    data = np.asarray(data)
    if data.ndim != 2:
        problems.append("data is not 2-D")
        n_samples = -1
    else:
        n_samples = data.shape[0]
        idx = np.asarray(idx_array)
        if idx.shape != (n_samples,) or not np.array_equal(np.sort(idx), np.arange(n_samples)):
            problems.append("idx_array is not a permutation of the samples")
    if len(node_data) != n_nodes or n_nodes != 2**n_levels - 1:
        problems.append("node count does not match the number of levels")
    else:
        start = np.asarray(node_data["idx_start"])
        end = np.asarray(node_data["idx_end"])
        leaf = np.asarray(node_data["is_leaf"]).astype(bool)
        if np.any(start < 0) or np.any(end < start) or np.any(end > n_samples):
            problems.append("node index ranges out of bounds")
        last = 2 * np.arange(n_nodes) + 1 >= n_nodes
        if np.any(last & ~leaf):
            problems.append("a node of the last level is not a leaf")
    bounds = np.asarray(node_bounds)
    if data.ndim == 2 and (bounds.ndim != 3 or bounds.shape[1:] != (n_nodes, data.shape[1])):
        problems.append("node_bounds has the wrong shape")
    if sample_weight is not None and np.shape(sample_weight) != (n_samples,):
        problems.append("sample_weight has the wrong length")
    if problems:
        raise ValueError(
            f"The model file holds a corrupted {type(tree).__name__} at {path}: "
            + "; ".join(problems)
            + ". It was not produced by scikit-learn; do not use it."
        )


def _check_loaded(obj):
    from sklearn.neighbors import BallTree, KDTree

    def visit(o, path):
        if isinstance(o, (KDTree, BallTree)):
            _check_binary_tree(o, path)
            return True
        return False

    _walk(obj, visit)



_TYPE_RE = re.compile(r"^skcpcae(\.[A-Za-z_][A-Za-z0-9_]*)+$")



def _is_public_skcpcae_type(name):
    """A class exported in the ``__all__`` of a skcpcae package (or a module's package)."""
    if not _TYPE_RE.match(name):
        return False
    module_name, cls_name = name.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        return False
    for pkg_name in (module_name, module_name.rsplit(".", 1)[0]):
        try:
            pkg = importlib.import_module(pkg_name)
        except ImportError:
            continue
        if cls_name in getattr(pkg, "__all__", ()) and getattr(pkg, cls_name, None) is cls:
            return True
    return False

