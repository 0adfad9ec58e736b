# SPDX-License-Identifier: BSD-3-Clause
"""Private APIs of dependencies that skcpcae uses, each wrapped once, here.

As :mod:`sklearn.utils.fixes` does for numpy and scipy: every import of a private name of
scikit-learn, timm or torch goes through this module, so a release that moves it breaks one
function, and its tested range is written next to it. Each entry names what it wraps, why
there is no public equivalent, and the versions it was tested on (``TESTED_VERSIONS``; the
test suite checks the installed versions against them).

Still outside this module (for the lead): ``skcpcae/persistence.py`` reads the state of
scikit-learn's ``KDTree`` / ``BallTree`` by tuple position (``__getstate__``), a layout that
is private to scikit-learn's Cython code.
"""

__all__ = [
    "TESTED_VERSIONS",
    "HasMethods",
    "Interval",
    "StrOptions",
    "fit_context",
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
from sklearn.utils._param_validation import (  # noqa: E402
    HasMethods,
    Interval,
    StrOptions,
)


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
