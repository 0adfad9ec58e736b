"""Common-check instances of ``skcpcae.datasets``: none.

``ImageReader`` is the only estimator of the subpackage. It reads image *files*: its input is
a list of paths and it refuses numeric arrays with a ``TypeError`` (by design, so that a
pipeline fed arrays by mistake fails loudly). scikit-learn's common checks feed numeric arrays
only, so none of them can apply, and the reader is not registered here. Its estimator contract
(``clone``, ``get_params``/``set_params``, parameter validation, ``NotFittedError``, pickle and
joblib round trips, use inside ``Pipeline``) is tested directly in
``skcpcae/datasets/tests/test_io.py``.
"""

INSTANCES = []

_READS_FILES = (
    "reads image files: its input is a list of paths and it refuses numeric arrays with a "
    "TypeError by design; its contract is tested in skcpcae/datasets/tests/test_io.py."
)
SKLEARN_CHECKS_NOT_RUN = {"ImageReader": _READS_FILES}
IMAGE_CHECKS_NOT_RUN = {"ImageReader": _READS_FILES}

EXPECTED_FAILED_CHECKS = {}
