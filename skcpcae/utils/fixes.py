# SPDX-License-Identifier: BSD-3-Clause
"""Private APIs of dependencies that skcpcae uses, each wrapped once, here.

As :mod:`sklearn.utils.fixes` does for numpy and scipy: every import of a private name of
scikit-learn, timm or torch goes through this module, so a release that moves it breaks one
function, and its tested range is written next to it. Each entry names what it wraps, why
there is no public equivalent, and the versions it was tested on (``TESTED_VERSIONS``; the
test suite checks the installed versions against them).

The state layout of scikit-learn's ``KDTree`` / ``BallTree`` (``__getstate__``, a tuple
private to scikit-learn's Cython code) is read here too, by :func:`binary_tree_state`, which
:mod:`skcpcae.persistence` uses to check loaded trees. ``skcpcae/utils/tests/test_fixes.py``
fails when a module outside this one imports a private name of scikit-learn, timm or torch.
"""

import numpy as np

__all__ = [
    "TESTED_VERSIONS",
    "HasMethods",
    "Interval",
    "StrOptions",
    "binary_tree_state",
    "check_method_params",
    "estimator_has",
    "fit_context",
    "num_samples",
    "raise_for_params",
    "safe_indexing",
    "string_scorer_labels",
    "timm_batchnorm_act_2d",
    "timm_feature_getter_net",
]

#: ``{distribution: (oldest, newest)}`` the wrapped private names were tested with.
TESTED_VERSIONS = {
    "scikit-learn": ("1.6", "1.9.1"),
    "timm": ("1.0.8", "1.0.31"),
}

# scikit-learn's parameter validation (``_parameter_constraints``) is the documented way to
# write an estimator ("Rolling your own estimator", scikit-learn >= 1.2) yet lives in a
# private module; the constraint classes and ``_fit_context`` have no public spelling.
from sklearn.base import _fit_context as fit_context  # noqa: E402

# ``_safe_indexing`` (rows of an array, a list or a DataFrame alike) is documented in
# scikit-learn's API reference under its private name and is in ``sklearn.utils.__all__``
# from 1.7 on, not in 1.6. Tested on scikit-learn 1.6 - 1.9.1.
from sklearn.utils import _safe_indexing as safe_indexing  # noqa: E402
from sklearn.utils._param_validation import (  # noqa: E402
    HasMethods,
    Interval,
    StrOptions,
)

# The metadata-routing helpers a meta-estimator needs (as scikit-learn's own
# ``FixedThresholdClassifier`` / ``TunedThresholdClassifierCV`` use them): refusing routed
# parameters when routing is off, and slicing fit parameters along with the samples. The
# public API (``process_routing``, ``MetadataRouter``) has no spelling for either; tested on
# scikit-learn 1.6 - 1.9.1.
from sklearn.utils.metadata_routing import _raise_for_params as raise_for_params  # noqa: E402
from sklearn.utils.validation import _check_method_params as check_method_params  # noqa: E402

# ``available_if(_estimator_has("decision_function"))``: the predicate every scikit-learn
# meta-estimator uses to expose a method only when its inner estimator has it; public
# ``available_if`` takes a predicate but scikit-learn ships none. Tested on 1.6 - 1.9.1.
from sklearn.utils.validation import _estimator_has as estimator_has  # noqa: E402

# The number of samples of an array-like without converting it (lists of images, arrays,
# DataFrames); there is no public function (``check_consistent_length`` raises, it does not
# count). Tested on scikit-learn 1.6 - 1.9.1.
from sklearn.utils.validation import _num_samples as num_samples  # noqa: E402


def timm_feature_getter_net():
    """timm's ``FeatureGetterNet``: a feature extractor over an already loaded classifier.

    ``timm.create_model(..., features_only=True)`` builds a new network (it cannot wrap
    weights this package loaded itself), so :func:`skcpcae.embedding.load_backbone` wraps
    the loaded classifier with the class directly. Private in timm (``timm.models._features``)
    since 0.9; tested on timm 1.0.8 - 1.0.31.
    """
    try:
        from timm.models._features import FeatureGetterNet
    except ImportError:  # pragma: no cover - a timm that moved it
        from timm.models import FeatureGetterNet
    return FeatureGetterNet


def timm_batchnorm_act_2d():
    """timm's ``BatchNormAct2d`` class (public in ``timm.layers``), or None without timm.

    Batch-norm folding recognises it by type to keep its activation.
    """
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # pragma: no cover - timm is a dependency
        return None
    return BatchNormAct2d


# scikit-learn's string scorers (``scoring="roc_auc"``) call ``decision_function`` from
# ``sklearn.metrics._scorer._Scorer._score`` with the labels at hand; a detector cannot see
# them through any public interface. Tested on scikit-learn 1.6 - 1.9.1 (the frame's code
# name and its ``self`` / ``y_true`` locals).
_SCORE_FUNCS_READ_BACKWARDS = {"roc_auc_score", "average_precision_score"}


def string_scorer_labels(max_depth=20):
    """The score function and labels of a scikit-learn ``_Scorer`` calling up the stack.

    Returns ``(score_func_name, y_true, scorer_kwargs)`` of the nearest calling
    ``sklearn.metrics._scorer._Scorer._score`` frame within ``max_depth`` frames, or None.
    """
    import sys

    frame = sys._getframe(1)
    for _ in range(max_depth):
        frame = frame.f_back
        if frame is None:
            return None
        code = frame.f_code
        if code.co_name == "_score" and frame.f_globals.get("__name__") == "sklearn.metrics._scorer":
            scorer = frame.f_locals.get("self")
            func = getattr(scorer, "_score_func", None)
            return (getattr(func, "__name__", None), frame.f_locals.get("y_true"),
                    dict(getattr(scorer, "_kwargs", {}) or {}))
    return None


# The state of scikit-learn's ``KDTree`` / ``BallTree`` (``BinaryTree.__getstate__`` in
# ``sklearn/neighbors/_binary_tree.pxi.tp``) is a tuple whose layout is private to the Cython
# code: there is no public accessor for the index arrays a loaded tree will read unchecked.
# Tested on scikit-learn 1.6 - 1.9.1: 13 entries, these positions.
_BINARY_TREE_STATE = {"data": 0, "idx_array": 1, "node_data": 2, "node_bounds": 3,
                      "n_levels": 5, "n_nodes": 6, "sample_weight": 12}
_BINARY_TREE_STATE_LEN = 13


def binary_tree_state(tree):
    """The arrays of a ``KDTree`` / ``BallTree`` that its queries index without checks.

    Returns a dict with ``data``, ``idx_array``, ``node_data``, ``node_bounds``,
    ``n_levels``, ``n_nodes`` (ints) and ``sample_weight`` (None or an array), read from
    ``tree.__getstate__()`` at the positions of scikit-learn 1.6 - 1.9.1.

    Raises
    ------
    RuntimeError
        If the state does not have the tested layout (a scikit-learn that changed it): the
        tree cannot be checked, and this function must be updated for that release.
    """
    import sklearn

    state = tree.__getstate__()
    layout_ok = (
        isinstance(state, tuple)
        and len(state) == _BINARY_TREE_STATE_LEN
        and all(hasattr(state[i], "__len__") for i in (0, 1, 2, 3))
        and all(isinstance(state[i], (int, np.integer)) for i in (5, 6))
    )
    if not layout_ok:
        raise RuntimeError(
            f"The state of {type(tree).__name__} in scikit-learn {sklearn.__version__} does "
            f"not have the layout skcpcae was tested with (scikit-learn "
            f"{TESTED_VERSIONS['scikit-learn'][0]} - {TESTED_VERSIONS['scikit-learn'][1]}); "
            "update skcpcae.utils.fixes.binary_tree_state for this release."
        )
    out = {name: state[i] for name, i in _BINARY_TREE_STATE.items()}
    out["n_levels"], out["n_nodes"] = int(out["n_levels"]), int(out["n_nodes"])
    return out
