"""scikit-learn's common checks on every public estimator (fast test parameters)."""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from skcpcae.utils._test_common.instance_generator import (
    expected_failed_checks,
)
from skcpcae.utils._test_common.instance_generator import (
    test_instances as _instances,  # not a test: keep pytest from collecting it
)

warnings.filterwarnings("ignore", message=".*SCIPY_ARRAY_API.*")


@parametrize_with_checks(_instances(), expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
