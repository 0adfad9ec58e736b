"""Fast test instances and expected failures of the common checks.

Each subpackage keeps its own lists in ``_<subpackage>.py`` beside this file (tiny images,
``max_epochs=1``, ``weights=None``), as imbalanced-learn's ``instance_generator`` does:

* ``INSTANCES``: estimator instances checked by scikit-learn's checks and the image checks;
* ``EXPECTED_FAILED_CHECKS``: ``{ClassName: {check_name: reason}}`` for scikit-learn's checks;
* ``EXPECTED_FAILED_IMAGE_CHECKS``: the same for :mod:`skcpcae.utils.estimator_checks`;
* ``IMAGE_ONLY_INSTANCES``: instances only the image checks run on;
* ``SKLEARN_CHECKS_NOT_RUN`` / ``IMAGE_CHECKS_NOT_RUN``: ``{ClassName: reason}`` for public
  estimators a battery cannot run on at all.

This module merges them. ``tests/test_common.py`` and ``tests/test_image_checks.py`` check
that every public estimator (:func:`skcpcae.utils.discovery.all_estimators`) is either
checked or listed, with a reason, as not run.
"""

import importlib

_PARTS = [
    "_outlier",
    "_preprocessing",
    "_residuals",
    "_embedding",
    "_baselines",
    "_datasets",
]


def _load():
    merged = {
        "INSTANCES": [],
        "IMAGE_ONLY_INSTANCES": [],
        "EXPECTED_FAILED_CHECKS": {},
        "EXPECTED_FAILED_IMAGE_CHECKS": {},
        "SKLEARN_CHECKS_NOT_RUN": {},
        "IMAGE_CHECKS_NOT_RUN": {},
    }
    for part in _PARTS:
        mod = importlib.import_module(f"{__package__}.{part}")
        for key, value in merged.items():
            extra = getattr(mod, key, None)
            if extra is None:
                continue
            if isinstance(value, list):
                value.extend(extra)
            else:
                value.update(extra)
    return merged


def test_instances():
    """Fresh fast instances of every estimator that scikit-learn's checks run on."""
    return _load()["INSTANCES"]


def image_test_instances():
    """Fresh fast instances of every estimator that the image checks run on."""
    merged = _load()
    return merged["INSTANCES"] + merged["IMAGE_ONLY_INSTANCES"]


def expected_failed_checks(estimator):
    """``{check_name: reason}`` for ``parametrize_with_checks(expected_failed_checks=...)``."""
    return dict(_load()["EXPECTED_FAILED_CHECKS"].get(type(estimator).__name__, {}))


def expected_failed_image_checks(estimator):
    """``{check_name: reason}`` for ``parametrize_with_image_checks``."""
    return dict(_load()["EXPECTED_FAILED_IMAGE_CHECKS"].get(type(estimator).__name__, {}))


def sklearn_checks_not_run():
    """``{ClassName: reason}``: public estimators scikit-learn's checks cannot run on."""
    return dict(_load()["SKLEARN_CHECKS_NOT_RUN"])


def image_checks_not_run():
    """``{ClassName: reason}``: public estimators the image checks cannot run on."""
    return dict(_load()["IMAGE_CHECKS_NOT_RUN"])
