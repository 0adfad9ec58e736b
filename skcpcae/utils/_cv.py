# SPDX-License-Identifier: BSD-3-Clause
"""One rule for ``cv`` across the package.

Wherever an estimator has a ``cv`` parameter (``CPCAEResidualMap``, ``KDEThresholdClassifier``,
``TunedThresholdDetectorCV``) it accepts the same values, with scikit-learn's meaning
(:func:`sklearn.model_selection.check_cv`):

- ``None``: no cross-fitting; the estimator's in-sample values (each docstring says what);
- an int ``k`` >= 2: ``k`` *shuffled* folds seeded from the estimator's ``random_state``
  (``KFold(k, shuffle=True)``, or ``NormalOnlyKFold`` where labels are needed): unlike
  ``check_cv``, which does not shuffle, because image folders are usually sorted;
- a cross-validation splitter (``split`` and ``get_n_splits``), used as given;
- an iterable of ``(train, test)`` index arrays, used as given.

Where out-of-fold values are assembled into one array (every sample gets one), the test folds
must partition the samples; :func:`cross_fit_splits` checks it.
"""

import numbers

import numpy as np
from sklearn.model_selection import KFold, check_cv

from .fixes import num_samples as _num_samples

__all__ = ["cross_fit_splits", "is_int_cv"]


def is_int_cv(cv):
    """Whether ``cv`` is a number of folds (an int, not a bool)."""
    return isinstance(cv, numbers.Integral) and not isinstance(cv, bool)


def cross_fit_splits(cv, X, y=None, *, random_state=None):
    """The ``(train, test)`` splits of ``cv`` for cross-fitting, checked to partition ``X``.

    Parameters
    ----------
    cv : int, cross-validation splitter or iterable
        Not None (the caller handles "no cross-fitting").
    X : array-like
        The samples (only their number is used by ``KFold``).
    y : array-like or None, default=None
        Passed to the splitter's ``split``.
    random_state : int or None, default=None
        Seed of the shuffled ``KFold`` of an integer ``cv``.

    Returns
    -------
    splits : list of (ndarray, ndarray)
        Each sample is in exactly one test fold.
    """
    n_samples = _num_samples(X)
    if is_int_cv(cv):
        if cv > n_samples:
            raise ValueError(  # before any training; KFold's own wording
                f"Cannot have number of splits n_splits={cv} greater than the number of "
                f"samples: n_samples={n_samples}. Use a smaller cv or cv=None."
            )
        splitter = KFold(n_splits=cv, shuffle=True, random_state=random_state)
    else:
        splitter = check_cv(cv)
    splits = [(np.asarray(train), np.asarray(test)) for train, test in splitter.split(X, y)]
    counts = np.zeros(n_samples, dtype=int)
    for _, test in splits:
        counts[test] += 1
    if not np.all(counts == 1):
        raise ValueError(
            "The test folds of cv must partition the training samples (each sample held out "
            f"exactly once, as KFold does); {int(np.sum(counts == 0))} samples are never held "
            f"out and {int(np.sum(counts > 1))} are held out more than once."
        )
    return splits
