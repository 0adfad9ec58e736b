# SPDX-License-Identifier: BSD-3-Clause
"""Density-based outlier detectors: Gaussian mixture and kernel density (Tables 6, 7).

scikit-learn's :class:`~sklearn.mixture.GaussianMixture` and
:class:`~sklearn.neighbors.KernelDensity` have ``score_samples`` (log-likelihood) but no
``offset_``, ``decision_function`` or ``predict``; these thin wrappers add the outlier-detector
contract so that either can be the last step of a pipeline or be wrapped in
:class:`~skcpcae.outlier.KDEThresholdClassifier`. File anatomy imitated from
``sklearn/covariance/_elliptic_envelope.py``.
"""

import numbers

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.metrics import pairwise_distances_chunked
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.utils.validation import check_is_fitted, validate_data

from .._base import (
    CONTAMINATION_CONSTRAINT,
    OutlierScoresMixin,
    OutOfSampleFitPredictMixin,
    offset_from_scores,
)
from ..utils.fixes import Interval, StrOptions
from ..utils.fixes import fit_context as _fit_context

__all__ = ["GMMAnomalyScorer", "KDEAnomalyScorer"]

class _DensityDetectorMixin(OutlierScoresMixin):
    """``decision_function`` and ``predict`` from ``score_samples`` and ``offset_``."""


class GMMAnomalyScorer(_DensityDetectorMixin, OutlierMixin, BaseEstimator):
    """Outlier detector scoring a sample by its log-likelihood under a Gaussian mixture.

    A :class:`~sklearn.mixture.GaussianMixture` is fitted on normal samples;
    :meth:`score_samples` is the log-likelihood of a sample (higher = more normal), and
    ``offset_`` turns it into a decision. One of the last steps compared in Tables 6 and 7
    of Saeedi & Giusti (2023).

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance parametrisation, as in :class:`~sklearn.mixture.GaussianMixture`.
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of the covariances; raise it
        when features outnumber samples.
    max_iter : int, default=100
        EM iterations.
    n_init : int, default=1
        Number of initialisations; the best is kept.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_`` from the in-sample training log-likelihoods: with a float, their
        ``contamination`` quantile; with "auto", Tukey's fence ``Q3 + 1.5 IQR`` on the
        training anomaly scores (as :class:`~skcpcae.outlier.KNNAnomalyScorer`). In-sample
        log-likelihoods of a mixture with few components are only mildly optimistic; for a
        threshold with a promised false-alarm rate, wrap the detector in
        :class:`~skcpcae.outlier.KDEThresholdClassifier`.
    random_state : int, RandomState instance or None, default=None
        Seeds the mixture's initialisation.

    Attributes
    ----------
    gmm_ : sklearn.mixture.GaussianMixture
        The fitted mixture.
    n_iter_ : int
        EM iterations of the best initialisation.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit, when X has string feature names.

    See Also
    --------
    KDEAnomalyScorer : non-parametric density.
    skcpcae.outlier.KDEThresholdClassifier : threshold with a chosen false-alarm rate.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import GMMAnomalyScorer
    >>> X = np.random.RandomState(0).normal(size=(100, 2))
    >>> gmm = GMMAnomalyScorer(random_state=0).fit(X)
    >>> gmm.predict([[0.0, 0.0], [6.0, 6.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
        "reg_covar": [Interval(numbers.Real, 0.0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "contamination": CONTAMINATION_CONSTRAINT,
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        contamination="auto",
        random_state=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.contamination = contamination
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the mixture on normal samples and set ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Normal samples.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted detector.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.gmm_ = GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            n_init=self.n_init,
            random_state=self.random_state,
        ).fit(X)
        self.n_iter_ = int(self.gmm_.n_iter_)
        self.offset_ = offset_from_scores(self.gmm_.score_samples(X), self.contamination)
        return self

    def score_samples(self, X):
        """Log-likelihood of each sample under the mixture: higher is more normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Log-density under the fitted mixture: higher = more normal.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.gmm_.score_samples(X)


def _log_kernel(dist, h, kernel):
    """Log of the unnormalised kernel (value 1 at distance 0), as in ``KernelDensity``."""
    u = dist / h
    with np.errstate(divide="ignore", invalid="ignore"):
        if kernel == "gaussian":
            return -0.5 * u**2
        if kernel == "exponential":
            return -u
        inside = u < 1
        if kernel == "tophat":
            val = np.zeros_like(u)
        elif kernel == "epanechnikov":
            val = np.log1p(-np.minimum(u, 1) ** 2)
        elif kernel == "linear":
            val = np.log1p(-np.minimum(u, 1))
        else:  # cosine
            val = np.log(np.cos(0.5 * np.pi * np.minimum(u, 1)))
        return np.where(inside, val, -np.inf)


class KDEAnomalyScorer(
    OutOfSampleFitPredictMixin, _DensityDetectorMixin, OutlierMixin, BaseEstimator
):
    """Outlier detector scoring a sample by its log-density under a kernel density estimate.

    A :class:`~sklearn.neighbors.KernelDensity` is fitted on normal samples;
    :meth:`score_samples` is the log-density at a sample (higher = more normal). One of the
    last steps compared in Tables 6 and 7 of Saeedi & Giusti (2023).

    Training samples are scored *without themselves* (leave-one-out, computed exactly in log
    space): a kernel density evaluated at its own training points is dominated by each
    point's own kernel when the bandwidth is small, so in-sample scores would be far too
    optimistic. ``offset_`` is set from these leave-one-out scores.

    Parameters
    ----------
    bandwidth : float or {"scott", "silverman"}, default="scott"
        Kernel bandwidth, as in :class:`~sklearn.neighbors.KernelDensity`. Its "scott" and
        "silverman" rules assume standardised features (put a
        :class:`~sklearn.preprocessing.StandardScaler` before this step).
    kernel : {"gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"}, \
            default="gaussian"
        Kernel. Compact kernels give a score of ``-inf`` to samples farther than the
        bandwidth from every training sample.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_`` from the leave-one-out training scores: with a float, their
        ``contamination`` quantile; with "auto", Tukey's fence ``Q3 + 1.5 IQR`` on the
        leave-one-out anomaly scores. For a threshold with a promised false-alarm rate,
        wrap the detector in :class:`~skcpcae.outlier.KDEThresholdClassifier`.

    Attributes
    ----------
    kde_ : sklearn.neighbors.KernelDensity
        The fitted density estimate.
    bandwidth_ : float
        The bandwidth used.
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
    GMMAnomalyScorer : parametric density.
    skcpcae.outlier.KNNAnomalyScorer : k-NN distance (eq. 6).

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import KDEAnomalyScorer
    >>> X = np.random.RandomState(0).normal(size=(100, 2))
    >>> kde = KDEAnomalyScorer().fit(X)
    >>> kde.predict([[0.0, 0.0], [6.0, 6.0]])
    array([ 1, -1])
    """

    _parameter_constraints: dict = {
        "bandwidth": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"scott", "silverman"}),
        ],
        "kernel": [
            StrOptions({"gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"})
        ],
        "contamination": CONTAMINATION_CONSTRAINT,
    }

    def __init__(self, bandwidth="scott", *, kernel="gaussian", contamination="auto"):
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.contamination = contamination

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the density on normal samples and score them leave-one-out.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Normal samples (at least 2).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            Fitted detector.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        n_samples = X.shape[0]
        if n_samples < 2:
            raise ValueError(
                "KDEAnomalyScorer needs at least 2 training samples to score them "
                f"leave-one-out; got n_samples={n_samples}."
            )
        self.kde_ = KernelDensity(bandwidth=self.bandwidth, kernel=self.kernel).fit(X)
        self.bandwidth_ = float(self.kde_.bandwidth_)
        self.negative_outlier_score_ = self._loo_scores(X)
        self.offset_ = offset_from_scores(self.negative_outlier_score_, self.contamination)
        return self

    def score_samples(self, X):
        """Log-density of the estimate at each sample: higher is more normal.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Log-density under the kernel density estimate: higher = more normal.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.kde_.score_samples(X)

    def _loo_scores(self, X):
        """Leave-one-out log-densities of the training samples, in log space."""
        n_samples = X.shape[0]
        # Log of the normalised kernel at distance 0: a one-point estimate at its own point.
        one = KernelDensity(bandwidth=self.bandwidth_, kernel=self.kernel).fit(X[:1])
        log_k0 = float(one.score_samples(X[:1])[0])
        out = np.empty(n_samples, dtype=np.float64)
        start = 0
        for chunk in pairwise_distances_chunked(X, X, metric="euclidean"):
            logk = _log_kernel(chunk.astype(np.float64), self.bandwidth_, self.kernel)
            rows = np.arange(chunk.shape[0])
            logk[rows, start + rows] = -np.inf  # leave the sample itself out
            out[start : start + chunk.shape[0]] = logsumexp(logk, axis=1)
            start += chunk.shape[0]
        return out + log_k0 - np.log(n_samples - 1)
