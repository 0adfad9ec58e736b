# SPDX-License-Identifier: BSD-3-Clause
"""Cross-validation splitters whose training folds hold normal samples only.

Imitates ``sklearn/model_selection/_split.py`` (``KFold``, ``StratifiedKFold``).
"""

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator, KFold
from sklearn.utils import check_random_state

from ..metrics import to_anomaly_labels
from ..utils.fixes import num_samples as _num_samples

__all__ = ["NormalOnlyKFold"]


class NormalOnlyKFold(BaseCrossValidator):
    """K-fold splitter that trains on normal samples only and tests on normals + anomalies.

    The normal samples are cut into ``n_splits`` folds as :class:`~sklearn.model_selection.KFold`
    does, and so are the anomalous samples. Split ``i`` trains on the normal samples outside
    normal fold ``i`` (never on an anomaly) and tests on normal fold ``i`` plus anomalous
    fold ``i``. The anomalies are therefore split across the test folds, so that the test
    folds are disjoint and every sample is tested exactly once (the alternative, every
    anomaly in every test fold, would reuse them); this needs at least ``n_splits``
    anomalies.

    With it, ``GridSearchCV(pipeline, params, cv=NormalOnlyKFold(3),
    scoring=skcpcae.metrics.auroc_scorer)`` tunes any stage of a one-class pipeline on
    labelled data without ever fitting on an anomaly. Labels ``y`` are 0 (normal) / 1
    (anomalous) or scikit-learn's +1 (normal) / -1 (anomalous), read by
    :func:`skcpcae.metrics.to_anomaly_labels`; ``GridSearchCV`` passes the (all-normal)
    training labels to the pipeline's ``fit``, which one-class estimators ignore.

    .. warning::
       ``GridSearchCV(refit=True)`` refits ``best_estimator_`` on *all* of ``X``, anomalies
       included. Use ``refit=False`` and fit the best parameters on the normal samples
       yourself: ``clone(pipe).set_params(**search.best_params_).fit(X[y == 0])``.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=True
        Shuffle the normal and the anomalous samples before cutting them into folds.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling when ``shuffle`` is True; ignored otherwise.

    See Also
    --------
    sklearn.model_selection.KFold : the splitter this one builds on.
    skcpcae.metrics.auroc_scorer : a scorer for one-class pipelines.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.model_selection import NormalOnlyKFold
    >>> y = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    >>> cv = NormalOnlyKFold(2, shuffle=False)
    >>> for train, test in cv.split(np.zeros((8, 1)), y):
    ...     print(train, test)
    [3 4 5] [0 1 2 6]
    [0 1 2] [3 4 5 7]
    """

    def __init__(self, n_splits=5, *, shuffle=True, random_state=None):
        if not isinstance(n_splits, numbers.Integral) or isinstance(n_splits, bool):
            raise ValueError(f"n_splits must be an integer, got {n_splits!r}.")
        if n_splits < 2:
            raise ValueError(f"n_splits must be at least 2, got {n_splits}.")
        self.n_splits = int(n_splits)
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splitting iterations.

        Parameters
        ----------
        X, y, groups : object
            Ignored, present for API compatibility.

        Returns
        -------
        n_splits : int
            Number of folds.
        """
        return self.n_splits

    def split(self, X, y, groups=None):
        """Generate indices of normal-only training folds and mixed test folds.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples; only their number is used.
        y : array-like of shape (n_samples,)
            0 normal / 1 anomalous, or +1 normal / -1 anomalous.
        groups : object
            Ignored, present for API compatibility.

        Yields
        ------
        train : ndarray
            Indices of normal training samples.
        test : ndarray
            Indices of the held-out normal samples and of the fold's anomalies, sorted.
        """
        if y is None:
            raise ValueError(
                "NormalOnlyKFold needs labels y (0 normal / 1 anomalous, or +1 / -1) to keep "
                "anomalies out of the training folds."
            )
        labels = to_anomaly_labels(y)
        if _num_samples(X) != labels.size:
            raise ValueError(
                f"X has {_num_samples(X)} samples but y has {labels.size} labels."
            )
        normal = np.flatnonzero(labels == 0)
        anomalous = np.flatnonzero(labels == 1)
        for what, idx in (("normal", normal), ("anomalous", anomalous)):
            if idx.size < self.n_splits:
                raise ValueError(
                    f"NormalOnlyKFold(n_splits={self.n_splits}) needs at least "
                    f"{self.n_splits} {what} samples, got {idx.size}. Lower n_splits"
                    + (
                        " (or check the labels: an all-ones y reads as all anomalous; use "
                        "0 for normal samples)."
                        if what == "normal"
                        else "."
                    )
                )
        rng = check_random_state(self.random_state) if self.shuffle else None
        normal_folds = KFold(self.n_splits, shuffle=self.shuffle, random_state=rng).split(normal)
        anomaly_folds = KFold(self.n_splits, shuffle=self.shuffle, random_state=rng).split(
            anomalous
        )
        for (n_train, n_test), (_, a_test) in zip(normal_folds, anomaly_folds, strict=True):
            yield normal[n_train], np.sort(np.concatenate([normal[n_test], anomalous[a_test]]))
