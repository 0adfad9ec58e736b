"""The image checks (skcpcae.utils.estimator_checks) on every public estimator.

Six 32x32 synthetic parts, gray and colour; tiny networks (the fast instances of
skcpcae/utils/_test_common). Expected failures are strict (``xfail_strict = true``).
"""

import pytest

from skcpcae.utils._test_common.instance_generator import (
    expected_failed_image_checks,
    image_checks_not_run,
    image_test_instances,
)
from skcpcae.utils.discovery import all_estimators
from skcpcae.utils.estimator_checks import (
    check_image_methods_leave_estimator_unchanged,
    check_image_output_layout,
    image_checks_generator,
    parametrize_with_image_checks,
)


@parametrize_with_image_checks(
    image_test_instances(), expected_failed_checks=expected_failed_image_checks
)
def test_image_checks(estimator, check):
    check(estimator)


def test_every_public_estimator_is_checked_or_listed():
    checked = {type(est).__name__ for est in image_test_instances()}
    not_run = image_checks_not_run()
    public = {name for name, _ in all_estimators()}
    missing = sorted(public - checked - set(not_run))
    assert not missing, (
        f"public estimators neither in the image-check instances nor in IMAGE_CHECKS_NOT_RUN "
        f"(skcpcae/utils/_test_common): {missing}"
    )
    assert not checked & set(not_run), f"checked and listed as not run: {checked & set(not_run)}"
    assert set(not_run) <= public, f"not-run entries that are no public estimator: {not_run}"


def test_all_estimators_lists_public_classes_once():
    pairs = all_estimators()
    names = [name for name, _ in pairs]
    assert names == sorted(set(names))
    assert all(cls.__module__.startswith("skcpcae.") for _, cls in pairs)
    outliers = {name for name, _ in all_estimators("outlier_detector")}
    assert "KNNAnomalyScorer" in outliers and "CPCAEResidualMap" not in outliers
    with pytest.raises(ValueError, match="type_filter"):
        all_estimators("regresor")


def test_checks_catch_broken_estimators():
    """The checks fail, with a message naming the problem, on estimators that break them."""
    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin

    from skcpcae._base import image_tags

    class ShrinkingStage(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.n_features_in_ = int(np.prod(X.shape[1:]))
            return self

        def transform(self, X):
            self.calls_ = getattr(self, "calls_", 0) + 1  # state written by transform
            return np.asarray(X, dtype=np.float64)[:, ::2, ::2]  # grid and dtype changed

        def __sklearn_tags__(self):
            return image_tags(super().__sklearn_tags__())

    with pytest.raises(AssertionError, match="image grid"):
        check_image_output_layout("ShrinkingStage", ShrinkingStage())
    with pytest.raises(AssertionError, match="calls_"):
        check_image_methods_leave_estimator_unchanged("ShrinkingStage", ShrinkingStage())


def test_generator_refuses_unknown_expected_failures():
    from skcpcae.outlier import KNNAnomalyScorer

    with pytest.raises(ValueError, match="do not exist"):
        list(image_checks_generator(
            [KNNAnomalyScorer()], expected_failed_checks=lambda est: {"check_typo": "why"}
        ))
