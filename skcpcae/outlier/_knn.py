# SPDX-License-Identifier: BSD-3-Clause
"""k-NN one-class scorer: mean squared distance to the k nearest training embeddings (eq. 6)."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted, validate_data

from .._base import (
    CONTAMINATION_CONSTRAINT,
    OutlierScoresMixin,
    OutOfSampleFitPredictMixin,
    offset_from_scores,
)
from .._components.knn import loo_sq_distances
from ..utils.fixes import Interval
from ..utils.fixes import fit_context as _fit_context

__all__ = ["KNNAnomalyScorer"]


class KNNAnomalyScorer(OutOfSampleFitPredictMixin, OutlierScoresMixin, OutlierMixin, BaseEstimator):
    """Outlier detector scoring a sample by its mean squared distance to k normal neighbours.

    Implements eq. 6 of Saeedi & Giusti (2023): the anomaly score of ``y`` is
    ``d(y) = (1/k) * sum_{f in N_k(y)} ||f - f_y||^2`` over the ``k`` nearest training
    embeddings. Following scikit-learn, :meth:`score_samples` returns ``-d(y)`` (higher means
    more normal) and :meth:`predict` returns +1 for inliers and -1 for outliers.

    Training samples are scored *without themselves* (leave-one-out): the scores stored in
    ``negative_outlier_score_``, from which ``offset_`` is set, are out-of-sample, so the
    threshold is not optimistic. (``predict`` on the training set itself still finds each
    sample among its own neighbours, as :class:`~sklearn.neighbors.LocalOutlierFactor` with
    ``novelty=True`` does.) :meth:`loo_score_samples` returns them, also re-standardized
    without each sample for a :class:`~sklearn.preprocessing.StandardScaler` in front.

    Parameters
    ----------
    n_neighbors : int, default=15
        Number of neighbours ``k``. Reduced to ``n_samples - 1`` (with a warning) when the
        training set is smaller.
    metric : str or callable, default="euclidean"
        Any metric accepted by :class:`sklearn.neighbors.NearestNeighbors`; its distances
        are squared before averaging.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_``. With a float, ``offset_`` is that quantile of the leave-one-out
        training scores. With ``"auto"``, ``offset_`` is Tukey's fence on the leave-one-out
        training anomaly scores, ``Q3 + 1.5 * IQR`` (negated), a robust rule that flags only
        clear outliers. For a threshold with a promised false-alarm
        rate, wrap the scorer in :class:`skcpcae.outlier.KDEThresholdClassifier`.
    n_jobs : int, default=None
        Parallel jobs for the neighbour search.

    Attributes
    ----------
    n_neighbors_ : int
        The ``k`` actually used.
    negative_outlier_score_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training samples.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string feature names.

    See Also
    --------
    sklearn.neighbors.LocalOutlierFactor : density-based alternative (use ``novelty=True``).
    skcpcae.outlier.KDEThresholdClassifier : threshold with a chosen false-alarm rate.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(50, 2))
    >>> knn = KNNAnomalyScorer(n_neighbors=5).fit(X)
    >>> knn.predict([[0.0, 0.0], [6.0, 6.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "metric": [str, callable],
        "contamination": CONTAMINATION_CONSTRAINT,
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, n_neighbors=15, *, metric="euclidean", contamination="auto", n_jobs=None):
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.contamination = contamination
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Store the training embeddings and score them leave-one-out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings of normal samples.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted scorer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        n_samples = X.shape[0]
        k = min(self.n_neighbors, max(1, n_samples - 1))
        if k < self.n_neighbors:
            warnings.warn(
                f"n_neighbors ({self.n_neighbors}) is not smaller than the number of training "
                f"samples ({n_samples}); using n_neighbors={k}.",
                UserWarning,
                stacklevel=2,
            )
        self.n_neighbors_ = k
        self.nn_ = NearestNeighbors(n_neighbors=k, metric=self.metric, n_jobs=self.n_jobs).fit(X)
        if n_samples > 1:
            dist, _ = self.nn_.kneighbors(None)  # excludes each point itself
            self.negative_outlier_score_ = -np.mean(np.square(dist), axis=1)
        else:
            self.negative_outlier_score_ = np.zeros(1)
        # "auto": Tukey's fence on the leave-one-out anomaly scores, Q3 + 1.5 IQR.
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def loo_score_samples(self, *, standardize=False, min_scale=0.0, units=None):
        """Leave-one-out ``score_samples`` of the training samples.

        Each training sample is scored against all the others, as a new sample is scored
        against all of them: an exact memory bank of ``n_samples - 1`` (the scores a scorer
        refitted without that sample would give it). These are the out-of-sample training
        scores that :class:`~skcpcae.outlier.KDEThresholdClassifier` fits its KDE on
        (``cv="auto"``), in one pass instead of ``cv`` refits.

        Parameters
        ----------
        standardize : bool, default=False
            Also leave the sample out of a standardization: score sample ``i`` in the units
            of a :class:`~sklearn.preprocessing.StandardScaler` fitted without it, i.e. the
            leave-one-out score of ``make_pipeline(StandardScaler(), KNNAnomalyScorer())``.
            Needs the Euclidean metric.
        min_scale : float, default=0.0
            With ``standardize``: floor the scales fitted without each sample, as
            :class:`~skcpcae.preprocessing.FlooredStandardScaler` does (``min_scale`` times
            their median), i.e. the leave-one-out score of
            ``make_pipeline(FlooredStandardScaler(min_scale=min_scale), KNNAnomalyScorer())``.
        units : array-like of shape (n_features,), default=None
            Per-feature factors that bring the training samples back to the units the floor
            is computed in: the ``scale_`` of the floored scaler in front of this scorer (the
            floor, unlike a plain standardization, depends on the units).

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal; ``negative_outlier_score_`` when ``standardize=False``.
        """
        check_is_fitted(self)
        if not self._loo_supported(standardize):
            raise ValueError(
                f"loo_score_samples(standardize=True) needs metric='euclidean', got "
                f"metric={self.metric!r}."
            )
        if not standardize or self.nn_.n_samples_fit_ < 2:
            return self.negative_outlier_score_.copy()
        # the bank of NearestNeighbors, validated in fit (no copy is kept here)
        bank = self.nn_._fit_X
        if units is not None:
            bank = bank * np.asarray(units, dtype=np.float64)
        sq = loo_sq_distances(bank, self.n_neighbors_, standardize=True, min_scale=min_scale)
        return -np.mean(sq, axis=1)

    def score_samples(self, X):
        """Opposite of the mean squared distance to the k nearest training samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Embeddings to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher is more normal.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        dist, _ = self.nn_.kneighbors(X)
        return -np.mean(np.square(dist), axis=1)

    def _loo_supported(self, standardize):
        """Whether :meth:`loo_score_samples` can give these scores."""
        return not standardize or self.metric in ("euclidean", "l2")
