"""Fast test instances and expected failures of scikit-learn's common checks.

Each subpackage keeps its own list in ``_<subpackage>.py`` beside this file (tiny images,
``max_epochs=1``, ``pretrained=False``), with ``INSTANCES`` (estimator instances) and
``EXPECTED_FAILED_CHECKS`` (``{ClassName: {check_name: reason}}``); this module merges them,
as imbalanced-learn's ``instance_generator`` does.
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
    instances, expected = [], {}
    for part in _PARTS:
        try:
            mod = importlib.import_module(f"{__package__}.{part}")
        except ModuleNotFoundError as exc:  # a subpackage without estimators yet
            if exc.name != f"{__package__}.{part}":
                raise
            continue
        instances.extend(mod.INSTANCES)
        expected.update(mod.EXPECTED_FAILED_CHECKS)
    return instances, expected


def test_instances():
    """Fresh fast instances of every public estimator."""
    return _load()[0]


def expected_failed_checks(estimator):
    """``{check_name: reason}`` for ``parametrize_with_checks(expected_failed_checks=...)``."""
    return dict(_load()[1].get(type(estimator).__name__, {}))
