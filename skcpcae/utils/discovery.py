# SPDX-License-Identifier: BSD-3-Clause
"""Discover the public estimators of skcpcae (as :mod:`sklearn.utils.discovery` does)."""

import importlib
import inspect
import pkgutil
from pathlib import Path

__all__ = ["all_estimators"]

# Modules that hold no public estimator class: tests, the command line (argument handling and
# output only) and the checks themselves.
_MODULES_TO_IGNORE = {"tests", "cli", "estimator_checks", "discovery"}

_TYPE_FILTERS = ("classifier", "regressor", "transformer", "cluster", "outlier_detector")


def _public_modules():
    root = Path(__file__).resolve().parent.parent
    yield "skcpcae"
    for info in pkgutil.walk_packages(path=[str(root)], prefix="skcpcae."):
        parts = info.name.split(".")
        if any(part.startswith("_") or part in _MODULES_TO_IGNORE for part in parts):
            continue
        yield info.name


def _is_abstract(cls):
    return bool(getattr(cls, "__abstractmethods__", None))


def all_estimators(type_filter=None):
    """Every public estimator class of skcpcae.

    Walks the public modules of the package (never a private ``_module`` or a ``tests``
    folder) and collects the classes each lists in its ``__all__`` that derive from
    :class:`~sklearn.base.BaseEstimator` and are not abstract. A class re-exported by
    several modules (``skcpcae.KNNAnomalyScorer`` is ``skcpcae.outlier.KNNAnomalyScorer``) is
    listed once.

    Parameters
    ----------
    type_filter : {"classifier", "regressor", "transformer", "cluster", \
"outlier_detector"}, list of those, or None, default=None
        Keep only the estimators with at least one of these scikit-learn mixins
        (``OutlierMixin`` for ``"outlier_detector"``). None keeps all of them.

    Returns
    -------
    estimators : list of (str, type)
        ``(class name, class)`` pairs, sorted by name.

    See Also
    --------
    sklearn.utils.discovery.all_estimators : the same for scikit-learn.
    skcpcae.utils.estimator_checks.parametrize_with_image_checks : checks them on images.

    Examples
    --------
    >>> from skcpcae.utils.discovery import all_estimators
    >>> names = [name for name, _ in all_estimators()]
    >>> "CPCAEResidualMap" in names and "KNNAnomalyScorer" in names
    True
    >>> [name for name, _ in all_estimators("outlier_detector")][:2]
    ['AEL2Detector', 'FusedKNNScorer']
    """
    from sklearn.base import (
        BaseEstimator,
        ClassifierMixin,
        ClusterMixin,
        OutlierMixin,
        RegressorMixin,
        TransformerMixin,
    )

    mixins = {
        "classifier": ClassifierMixin,
        "regressor": RegressorMixin,
        "transformer": TransformerMixin,
        "cluster": ClusterMixin,
        "outlier_detector": OutlierMixin,
    }
    if type_filter is None:
        wanted = None
    else:
        wanted = [type_filter] if isinstance(type_filter, str) else list(type_filter)
        unknown = [t for t in wanted if t not in mixins]
        if unknown:
            raise ValueError(
                f"type_filter must be None or one or a list of {list(_TYPE_FILTERS)}; got "
                f"{unknown!r}."
            )

    found = {}
    for module_name in _public_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseEstimator)
                and not name.startswith("_")
                and not _is_abstract(obj)
            ):
                found[obj] = name
    estimators = sorted(((name, cls) for cls, name in found.items()), key=lambda p: p[0])
    if wanted is not None:
        estimators = [
            (name, cls) for name, cls in estimators
            if any(issubclass(cls, mixins[t]) for t in wanted)
        ]
    return estimators
