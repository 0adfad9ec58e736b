# SPDX-License-Identifier: BSD-3-Clause
"""k-NN score of an embedding fused with scores that come as columns beside it."""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from .._base import (
    CONTAMINATION_CONSTRAINT,
    OutlierScoresMixin,
    OutOfSampleFitPredictMixin,
    offset_from_scores,
)
from ..utils.fixes import Interval
from ..utils.fixes import fit_context as _fit_context
from ._knn import KNNAnomalyScorer

__all__ = ["FusedKNNScorer"]


def _robust_scale(scores):
    """Median and interquartile range (floored) of training anomaly scores."""
    scores = np.asarray(scores, dtype=np.float64)
    q1, med, q3 = np.percentile(scores, [25, 50, 75], axis=0)
    return med, np.maximum(q3 - q1, 1e-12)


class FusedKNNScorer(OutOfSampleFitPredictMixin, OutlierScoresMixin, OutlierMixin, BaseEstimator):
    """Fuse the k-NN score of the leading columns with the last ``n_scores`` columns.

    The input's last ``n_scores`` columns are anomaly scores already (larger is more
    anomalous), such as the residual peak that :class:`~skcpcae.residuals.ResidualPeak`
    puts beside a CNN embedding in a :class:`~sklearn.pipeline.FeatureUnion`; the other
    columns are an embedding, scored as :class:`KNNAnomalyScorer` scores it (mean squared
    distance to the ``k`` nearest training rows). Each score is centred and scaled by the
    median and interquartile range of its *out-of-sample* training scores (leave-one-out
    for the k-NN; the score columns as they come, which ``ResidualPeak.fit_transform``
    cross-fits), so that scores in different units can be averaged, and the anomaly score
    is ``(1 - weight) * knn + weight * mean(score columns)``. :meth:`score_samples` returns
    its opposite (higher is more normal), as every scikit-learn detector does.

    Parameters
    ----------
    n_neighbors : int, default=3
        ``k`` of the k-NN on the embedding columns.
    n_scores : int, default=1
        How many trailing columns are scores.
    weight : float in [0, 1], default=0.5
        Weight of the score columns (0: the k-NN alone; 1: the score columns alone).
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_`` from the fused leave-one-out training scores, as
        :class:`KNNAnomalyScorer` does.

    Attributes
    ----------
    knn_ : KNNAnomalyScorer
        The k-NN fitted on the embedding columns.
    center_ : ndarray of shape (1 + n_scores,)
        Medians of the out-of-sample training scores (k-NN first).
    scale_ : ndarray of shape (1 + n_scores,)
        Their interquartile ranges.
    negative_outlier_score_ : ndarray of shape (n_samples,)
        Fused out-of-sample ``score_samples`` of the training rows.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of columns seen during fit.

    See Also
    --------
    KNNAnomalyScorer : the k-NN alone.
    skcpcae.residuals.ResidualPeak : the score column of the CPCAE presets.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import FusedKNNScorer
    >>> rng = np.random.RandomState(0)
    >>> X = np.c_[rng.normal(size=(50, 3)), rng.normal(size=50)]  # 3 features, 1 score
    >>> scorer = FusedKNNScorer(n_neighbors=5).fit(X)
    >>> scorer.predict([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_scores": [Interval(numbers.Integral, 1, None, closed="left")],
        "weight": [Interval(numbers.Real, 0, 1, closed="both")],
        "contamination": CONTAMINATION_CONSTRAINT,
    }

    def __init__(self, n_neighbors=3, *, n_scores=1, weight=0.5, contamination="auto"):
        self.n_neighbors = n_neighbors
        self.n_scores = n_scores
        self.weight = weight
        self.contamination = contamination

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the k-NN on the embedding columns and the scales of both scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embedding columns, then ``n_scores`` score columns, of normal samples.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted scorer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        if X.shape[1] <= self.n_scores:
            raise ValueError(
                f"FusedKNNScorer needs embedding columns before its n_scores={self.n_scores} "
                f"score column(s); got n_features={X.shape[1]} in all."
            )
        embedding, scores = self._split(X)
        self.knn_ = KNNAnomalyScorer(n_neighbors=self.n_neighbors).fit(embedding)
        train = np.c_[-self.knn_.negative_outlier_score_, scores]
        self.center_, self.scale_ = _robust_scale(train)
        self.negative_outlier_score_ = -self._fuse(train)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Opposite of the fused anomaly score.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embedding columns, then the score columns.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        embedding, scores = self._split(X)
        return -self._fuse(np.c_[-self.knn_.score_samples(embedding), scores])

    def _split(self, X):
        return X[:, :-self.n_scores], X[:, -self.n_scores:].astype(np.float64)

    def _fuse(self, raw):
        z = (raw - self.center_) / self.scale_
        return (1 - self.weight) * z[:, 0] + self.weight * z[:, 1:].mean(axis=1)
