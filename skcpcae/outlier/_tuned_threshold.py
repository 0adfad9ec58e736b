# SPDX-License-Identifier: BSD-3-Clause
"""Decision threshold tuned on labelled data by cross-validation, for one-class detectors.

The outlier-detector counterpart of scikit-learn's ``TunedThresholdClassifierCV``
(``sklearn/model_selection/_classification_threshold.py``): that one needs a classifier
fitted on both classes; a one-class pipeline must be fitted on normal samples only.
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, clone
from sklearn.model_selection import check_cv
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, indexable

from .._base import refuse_backward_string_scorer
from ..metrics import to_anomaly_labels
from ..utils._cv import is_int_cv
from ..utils.fixes import HasMethods, StrOptions
from ..utils.fixes import estimator_has as _estimator_has
from ..utils.fixes import fit_context as _fit_context
from ..utils.fixes import safe_indexing as _safe_indexing
from ._calibration import best_threshold
from ._kde_threshold import _raw_scores

__all__ = ["TunedThresholdDetectorCV"]

_CRITERIA = {"f1": "f1", "balanced_accuracy": "youden", "youden": "youden"}


def _fold_scores(estimator, X, train, test):
    """The fitted fold estimator and its anomaly scores on the held-out samples (returned,
    not fitted in place: a process or cluster backend fits a copy)."""
    estimator.fit(_safe_indexing(X, train))
    return estimator, -_raw_scores(estimator, _safe_indexing(X, test))


class TunedThresholdDetectorCV(MetaEstimatorMixin, OutlierMixin, BaseEstimator):
    """Outlier detector whose threshold maximises a metric on labelled data, by cross-validation.

    The interface of :class:`~sklearn.model_selection.TunedThresholdClassifierCV` for
    one-class pipelines, which scikit-learn's class refuses (it fits a classifier on both
    classes, and needs ``classes_``). ``fit(X, y)`` takes normal and anomalous samples; each
    split of :class:`~skcpcae.model_selection.NormalOnlyKFold` fits a clone of the detector
    on normal samples only and scores the held-out normals and anomalies; the threshold on
    the anomaly score that maximises ``scoring`` over the pooled held-out scores is
    ``best_threshold_`` (:func:`~skcpcae.outlier.best_threshold`). With ``refit`` the
    detector is then fitted on every normal sample.

    For a fixed threshold (scikit-learn's ``FixedThresholdClassifier``) set
    ``KDEThresholdClassifier(threshold=...)``, or call
    :func:`~skcpcae.outlier.set_operating_point` on a fitted model.

    Parameters
    ----------
    estimator : estimator instance
        An unfitted outlier detector or pipeline (``score_samples`` or
        ``decision_function``, higher = more normal), e.g. a preset.
    scoring : {"f1", "balanced_accuracy"}, default="f1"
        Metric of the anomalous class to maximise: F1, or balanced accuracy (the mean of
        recall and 1 - false-alarm rate, maximised where Youden's J is).
    cv : int, cross-validation splitter, iterable or None, default=5
        Folds whose held-out scores choose the threshold, with the meaning ``cv`` has
        everywhere in skcpcae (``docs/conventions.md``): an int ``k`` >= 2 is
        ``NormalOnlyKFold(k, shuffle=True, random_state=random_state)``; a splitter or an
        iterable of ``(train, test)`` index arrays is used as given and must train on normal
        samples only; ``None`` fits one clone on all normal samples and scores ``X`` in
        sample (optimistic: a k-NN scorer finds each normal sample among its neighbours).
        The default is 5 folds, not ``None``, because a threshold tuned on in-sample scores
        of the normals sits too low.
    refit : bool, default=True
        Fit ``estimator_`` on all normal samples of ``X``; otherwise the last fold's fitted
        clone is kept.
    random_state : int, RandomState instance or None, default=None
        Shuffling of the folds (integer ``cv``).
    n_jobs : int, default=None
        Folds fitted in parallel.

    Attributes
    ----------
    estimator_ : estimator instance
        The fitted detector.
    best_threshold_ : float
        Threshold on the anomaly score (``-score_samples``); above it, ``predict`` gives -1.
    best_score_ : float
        ``scoring`` at ``best_threshold_`` on the pooled held-out scores.
    offset_ : float
        ``-best_threshold_``: ``decision_function = score_samples - offset_``.

    See Also
    --------
    sklearn.model_selection.TunedThresholdClassifierCV : the classifier counterpart.
    skcpcae.outlier.KDEThresholdClassifier : threshold from normal samples only.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import KNNAnomalyScorer, TunedThresholdDetectorCV
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.normal(size=(150, 2)), rng.normal(4, 1, size=(30, 2))]
    >>> y = np.r_[np.zeros(150), np.ones(30)]
    >>> det = TunedThresholdDetectorCV(KNNAnomalyScorer(5), cv=3, random_state=0).fit(X, y)
    >>> det.predict([[0.0, 0.0], [5.0, 5.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"])],
        "scoring": [StrOptions({"f1", "balanced_accuracy"})],
        "cv": ["cv_object"],
        "refit": ["boolean"],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, estimator, *, scoring="f1", cv=5, refit=True, random_state=None,
                 n_jobs=None):
        self.estimator = estimator
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.random_state = random_state
        self.n_jobs = n_jobs

    @_fit_context(
        # The wrapped estimator's parameters are validated when its clones are fitted.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y):
        """Tune the threshold on labelled data, then fit the detector on the normals.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Normal and anomalous samples, in the form ``estimator`` accepts.
        y : array-like of shape (n_samples,)
            0 normal / 1 anomalous, or +1 normal / -1 anomalous.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        from ..model_selection import NormalOnlyKFold

        X, y = indexable(X, y)
        labels = to_anomaly_labels(np.asarray(y))
        if labels.min() == labels.max():
            raise ValueError(
                "TunedThresholdDetectorCV needs normal and anomalous samples in y; for "
                "normal samples only use KDEThresholdClassifier (threshold from alpha)."
            )
        if self.cv is None:  # in sample: fit on every normal sample, score all of X
            splits = [(np.flatnonzero(labels == 0), np.arange(len(labels)))]
        else:  # one rule for cv (utils/_cv.py): an int is shuffled folds
            cv = (NormalOnlyKFold(self.cv, shuffle=True, random_state=self.random_state)
                  if is_int_cv(self.cv) else check_cv(self.cv))
            splits = list(cv.split(X, labels))
        for train, _ in splits:
            if labels[np.asarray(train)].any():
                raise ValueError(
                    "The cv splitter put anomalous samples in a training fold; a one-class "
                    "detector must be fitted on normal samples only (use NormalOnlyKFold)."
                )
        folds = Parallel(n_jobs=self.n_jobs)(
            delayed(_fold_scores)(clone(self.estimator), X, train, test)
            for train, test in splits
        )
        fitted = [est for est, _ in folds]
        scores = [s for _, s in folds]
        test_index = np.concatenate([np.asarray(test) for _, test in splits])
        anomaly = np.concatenate(scores)
        y_test = labels[test_index]
        self.best_threshold_ = best_threshold(y_test, anomaly,
                                              criterion=_CRITERIA[self.scoring])
        pred = (anomaly > self.best_threshold_).astype(int)
        tp = int(np.sum(pred & y_test))
        if self.scoring == "f1":
            self.best_score_ = 2 * tp / max(1, int(pred.sum()) + int(y_test.sum()))
        else:
            tpr = tp / max(1, int(y_test.sum()))
            tnr = int(np.sum((1 - pred) & (1 - y_test))) / max(1, int((1 - y_test).sum()))
            self.best_score_ = (tpr + tnr) / 2
        if self.refit:
            self.estimator_ = clone(self.estimator).fit(_safe_indexing(X, np.flatnonzero(
                labels == 0)))
        else:
            self.estimator_ = fitted[-1]
        self.offset_ = -self.best_threshold_
        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        return self

    def score_samples(self, X):
        """Score samples with the fitted detector: higher = more normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples, in the form ``estimator`` accepts.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The detector's scores: higher = more normal.
        """
        check_is_fitted(self)
        return _raw_scores(self.estimator_, X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples, in the form ``estimator`` accepts.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            Negative for anomalies (scores below the tuned threshold).
        """
        refuse_backward_string_scorer()
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers, -1 for outliers (anomaly score above ``best_threshold_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Samples, in the form ``estimator`` accepts.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 for normal samples, -1 for anomalies.
        """
        return np.where(self.decision_function(X) >= 0, 1, -1)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """``transform`` of the fitted detector.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)

        Returns
        -------
        X_out : ndarray
        """
        check_is_fitted(self)
        return self.estimator_.transform(X)
