# SPDX-License-Identifier: BSD-3-Clause
"""Adaptive decision threshold (Sec. 3.4, eq. 7): a KDE of out-of-sample training scores.

Imitates scikit-learn's ``sklearn/model_selection/_classification_threshold.py``
(``FixedThresholdClassifier``), as an outlier detector rather than a classifier.
"""

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, MetaEstimatorMixin, OutlierMixin, clone
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, indexable

from .._base import refuse_backward_string_scorer
from .._components.kde import GaussianKDE1D
from ..preprocessing._scaler import FlooredStandardScaler
from ..utils._cv import cross_fit_splits
from ..utils.fixes import HasMethods, Interval, StrOptions
from ..utils.fixes import check_method_params as _check_method_params
from ..utils.fixes import estimator_has as _estimator_has
from ..utils.fixes import fit_context as _fit_context
from ..utils.fixes import num_samples as _num_samples
from ..utils.fixes import raise_for_params as _raise_for_params
from ..utils.fixes import safe_indexing as _safe_indexing

__all__ = ["KDEThresholdClassifier"]


#: The 1-D KDE is :class:`skcpcae._components.kde.GaussianKDE1D`; this name is the class
#: path that model files saved before the components layer record for ``kde_``: they load
#: through it (``skcpcae.persistence.TRUSTED_TYPES`` lists both paths).
_GaussianKDE1D = GaussianKDE1D


def _raw_scores(estimator, X):
    """``score_samples`` of a fitted detector (higher = more normal), else ``decision_function``."""
    if hasattr(estimator, "score_samples"):
        scores = estimator.score_samples(X)
    else:
        scores = estimator.decision_function(X)
    return np.asarray(scores, dtype=np.float64).ravel()


def _fit_and_score_fold(estimator, X, y, train, test, fit_params, restandardize=False):
    """Fit ``estimator`` on the ``train`` indices and score the held-out ``test`` indices.

    With ``restandardize``, a :class:`~sklearn.preprocessing.StandardScaler` is fitted on the
    training fold first and applied to both folds, as if it were inside the estimator.
    """
    X_train, X_test = _safe_indexing(X, train), _safe_indexing(X, test)
    y_train = None if y is None else _safe_indexing(y, train)
    params = _check_method_params(X, params=fit_params, indices=train)
    if restandardize:
        scaler = StandardScaler().fit(X_train)
        if hasattr(X_train, "columns"):
            scaler.set_output(transform="pandas")
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    estimator.fit(X_train, y_train, **params)
    return _raw_scores(estimator, X_test)


def _standardized_on_itself(X, *, atol=1e-3):
    """Whether every column of ``X`` has mean 0 and standard deviation 1 (or is constant 0).

    That is what :class:`~sklearn.preprocessing.StandardScaler` returns on the samples it
    was fitted on, and practically never happens otherwise. Only dense 2-D numeric input of
    at least 3 samples is examined; anything else gives False.
    """
    if sp.issparse(X) or not hasattr(X, "shape") or len(X.shape) != 2 or X.shape[0] < 3:
        return False
    if np.iscomplexobj(X):  # refused by the validation that follows; no ComplexWarning here
        return False
    try:
        data = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if not np.all(np.isfinite(data)):
        return False
    mean = data.mean(axis=0)
    std = data.std(axis=0)
    constant = std <= atol
    return bool(
        np.all(np.abs(mean) <= atol)
        and np.all(np.abs(std[~constant] - 1.0) <= atol)
        and not np.all(constant)
    )


def _loo_plan(estimator, X, restandardize):
    """How to get exact leave-one-out training scores from ``estimator``, or None.

    ``estimator`` (unfitted) qualifies when its final step has ``loo_score_samples`` and
    every step before it is a :class:`~sklearn.preprocessing.StandardScaler` (or
    ``"passthrough"``): scaling is then left out with the sample (``standardize``), as it
    is when ``restandardize`` asks for it (``"auto"``: ``X`` standardized on itself).
    """
    last = _final_step(estimator)
    if not (hasattr(last, "loo_score_samples") and hasattr(last, "_loo_supported")):
        return None
    standardize = False
    floored = []
    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps[:-1]:
            if step is None or step == "passthrough":
                continue
            if type(step) not in (StandardScaler, FlooredStandardScaler):
                return None
            if step.with_std:
                standardize = True
                if isinstance(step, FlooredStandardScaler) and step.min_scale:
                    floored.append(step)
    # one floored scaler, the last before the detector: its scale_ gives the floor's units
    if len(floored) > 1 or (floored and _last_scaler(estimator) is not floored[0]):
        return None
    restandardized = restandardize is True or (
        restandardize == "auto" and _standardized_on_itself(X)
    )
    standardize = standardize or restandardized
    if not last._loo_supported(standardize):
        return None
    # restandardization mimics the plain StandardScaler outside: no floor there
    return {"standardize": standardize, "restandardize": restandardized,
            "min_scale": float(floored[0].min_scale) if floored else 0.0}


def _last_scaler(pipeline):
    """The last step of ``pipeline`` before its detector that is not ``"passthrough"``."""
    steps = [s for _, s in pipeline.steps[:-1] if s is not None and s != "passthrough"]
    return steps[-1]


def _final_step(estimator):
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _check_detector(estimator):
    """Clear errors for detectors that cannot score new samples."""
    last = _final_step(estimator)
    if isinstance(last, LocalOutlierFactor) and not last.novelty:
        raise ValueError(
            "KDEThresholdClassifier needs a detector that scores new samples, but "
            "LocalOutlierFactor(novelty=False) only scores its training set. Set "
            "novelty=True: LocalOutlierFactor(novelty=True)."
        )
    if not (hasattr(estimator, "score_samples") or hasattr(estimator, "decision_function")):
        raise ValueError(
            f"The wrapped estimator {type(estimator).__name__} has neither score_samples nor "
            "decision_function; KDEThresholdClassifier needs an outlier detector that scores "
            "new samples (higher = more normal)."
        )


def _warn_if_labelled_cv(y):
    """Warn when ``y`` looks like the all-normal training fold of a labelled search.

    ``GridSearchCV(..., cv=NormalOnlyKFold(...))`` passes the training fold's labels to
    ``fit``: all 0 in this package's convention. scikit-learn's string scorers then read
    the scores the wrong way round; this is the one place the wrapper can tell.
    """
    if y is None:
        return
    values = np.unique(np.asarray(y))
    if values.size == 1 and values[0] == 0:
        warnings.warn(
            "KDEThresholdClassifier.fit got y = 0 for every sample (labelled cross-validation "
            "with 0 = normal, 1 = anomalous?). y is ignored here, but scikit-learn's string "
            "scorers are not made for one-class detectors: with these labels scoring='roc_auc' "
            "and 'average_precision' are refused when scoring (NaN scores) and 'f1' fails. Use skcpcae.metrics.get_scorer('roc_auc') (or auroc_scorer, "
            "average_precision_scorer, f1_scorer) as scoring; skcpcae.metrics.get_scorer_names() "
            "lists them.",
            UserWarning,
            stacklevel=3,
        )


def _check_alpha(alpha):
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a float in the open interval (0, 1); got {alpha!r}.")


def _check_finite_scores(scores, what, name):
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"The wrapped detector {name} returned {int(bad.sum())} non-finite (NaN or "
            f"infinite) {what} out of {scores.size}; the KDE threshold needs finite scores. "
            "Check the detector's input (constant features, too few samples for its "
            "parameters) or pick a detector with finite scores."
        )


class KDEThresholdClassifier(MetaEstimatorMixin, OutlierMixin, BaseEstimator):
    """Outlier detector with a threshold from a KDE of out-of-sample training scores.

    Wraps any scikit-learn outlier detector (e.g. :class:`~skcpcae.outlier.KNNAnomalyScorer`,
    ``LocalOutlierFactor(novelty=True)``, :class:`~sklearn.svm.OneClassSVM`,
    :class:`~sklearn.ensemble.IsolationForest`,
    :class:`~skcpcae.outlier.GMMAnomalyScorer`, :class:`~skcpcae.outlier.KDEAnomalyScorer`)
    and replaces its decision threshold with the adaptive threshold of Saeedi & Giusti
    (2023), Sec. 3.4: a one-dimensional Gaussian kernel density estimate is fitted on the
    anomaly scores of the (normal) training samples, and the threshold is read off its
    cumulative distribution so that a fraction ``alpha`` of normal samples is expected to be
    flagged (then shifted by ``beta``).

    The anomaly score is ``-score_samples`` of the wrapped detector (``-decision_function``
    when it has no ``score_samples``). The scores the KDE sees are *out-of-sample*. For a
    nearest-neighbour scorer (:class:`~skcpcae.outlier.KNNAnomalyScorer`,
    :class:`~skcpcae.outlier.PatchKNNScorer`, alone or after ``StandardScaler`` steps) they
    are by default *leave-one-out*: each training sample is scored against all the others,
    in one fit. For any other detector a clone is fitted on k-1 folds and scores the
    held-out fold, which gives one out-of-fold score per training sample; ``estimator_`` is
    then refitted on all of ``X``. With ``cv=None`` the KDE is fitted on the in-sample
    scores of ``estimator_``, which are optimistic (a k-NN scorer finds each training
    sample among its own neighbours), so the false-alarm rate on new normal samples then
    exceeds ``alpha``.

    Like any outlier detector, it is fitted on normal samples only; ``y`` is ignored.

    Parameters
    ----------
    estimator : estimator instance
        The outlier detector to wrap (unfitted; it is cloned). It must have ``fit`` and
        ``score_samples`` or ``decision_function``. A
        :class:`~sklearn.neighbors.LocalOutlierFactor` needs ``novelty=True``.
    alpha : float in (0, 1), default=0.05
        Significance level: the expected false-alarm rate on normal samples (before
        ``beta``).
    beta : float, default=0.0
        Offset subtracted from the threshold on the anomaly score, in the anomaly score's
        units; a positive ``beta`` flags more samples (fewer missed alarms).
    cv : "auto", "loo", int, cross-validation generator, iterable or None, default="auto"
        How the training anomaly scores are made out-of-sample:

        - "auto": leave-one-out when the detector gives exact leave-one-out scores (its
          final step has ``loo_score_samples``, as :class:`~skcpcae.outlier.KNNAnomalyScorer`
          and :class:`~skcpcae.outlier.PatchKNNScorer` do, and every step before it is a
          :class:`~sklearn.preprocessing.StandardScaler`, which is then also left out with
          the sample); else ``KFold(5)`` as for ``cv=5``. See Notes for why;
        - "loo": leave-one-out, and an error for a detector without it;
        - int ``k`` >= 2: ``KFold(k, shuffle=True, random_state=random_state)``;
        - a splitter or an iterable of ``(train, test)`` index arrays whose test folds
          partition the training samples (each sample held out exactly once);
        - None: in-sample scores of ``estimator_`` (optimistic, see above).

        None, ints, splitters and iterables mean what they mean for every ``cv`` in skcpcae
        (``docs/conventions.md``). The default is out-of-sample (``"auto"``), unlike
        :class:`~skcpcae.residuals.CPCAEResidualMap`'s ``None``, because the threshold's
        promise (a false-alarm rate of ``alpha``) only holds on out-of-sample scores, and
        leave-one-out costs one fit for the k-NN scorers.
    bandwidth : {"scott", "silverman"} or float, default="scott"
        Bandwidth of the 1-D Gaussian KDE, as a multiple of the scores' robust spread
        ``min(std, IQR / 1.349)`` (hence scale-aware): "scott" is ``n**(-1/5)``,
        "silverman" ``(3n/4)**(-1/5)`` (scipy's ``gaussian_kde`` factors). The robust
        spread keeps a few huge out-of-fold scores from over-smoothing the estimate.
    threshold : float or None, default=None
        A fixed threshold on the anomaly score, instead of the one read off the KDE with
        ``alpha`` and ``beta`` (as in :class:`~sklearn.model_selection.FixedThresholdClassifier`).
        ``alpha``, ``beta`` and ``threshold`` can be changed on a fitted model with
        ``set_params``: the KDE is stored, nothing is refitted.
    restandardize : "auto" or bool, default="auto"
        Re-standardize each cross-validation fold (fit a
        :class:`~sklearn.preprocessing.StandardScaler` on its training part) before the
        detector is fitted. ``"auto"``: when ``X`` is standardized on itself (every column
        mean 0 and standard deviation 1, what a ``StandardScaler`` fitted on the same
        samples returns), which makes ``make_pipeline(StandardScaler(),
        KDEThresholdClassifier(detector))`` give exactly the threshold of
        ``KDEThresholdClassifier(make_pipeline(StandardScaler(), detector))``. With
        leave-one-out scores (``cv="auto"``) each left-out sample is scored in the units of
        a scaler fitted without it. Predictions do not change; only the out-of-sample
        scores, hence the threshold, do.
    random_state : int, RandomState instance or None, default=None
        Shuffles the samples before they are cut into ``cv`` folds (integer ``cv``, and
        "auto" when it falls back to folds).
    n_jobs : int, default=None
        Number of folds fitted in parallel (joblib).

    Attributes
    ----------
    estimator_ : estimator instance
        The detector fitted on all of ``X``; used by every prediction method.
    train_scores_ : ndarray of shape (n_samples,)
        The anomaly scores the KDE was fitted on: leave-one-out or out-of-fold (``cv`` set)
        or in-sample (``cv=None``), in the order of the training samples.
    cv_ : "loo", int or None
        How ``train_scores_`` were made: "loo" (leave-one-out), the number of
        cross-validation folds, or None (in-sample).
    kde_ : object
        The fitted 1-D KDE, with ``pdf``, ``cdf`` and ``ppf`` (inverse CDF) methods and a
        ``bandwidth`` attribute (kernel standard deviation, in score units).
    threshold_ : float
        Threshold on the anomaly score: ``threshold`` if set, else
        ``kde_.ppf(1 - alpha) - beta``, computed from the stored KDE and the current
        parameters. A sample whose anomaly score exceeds it is an outlier.
    restandardized_ : bool
        Whether the folds (or each left-out sample) were re-standardized (see
        ``restandardize``).
    offset_ : float
        ``-threshold_``, so that ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Number of features seen during fit (when ``estimator_`` exposes it).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit (when ``estimator_`` exposes them).

    See Also
    --------
    sklearn.model_selection.FixedThresholdClassifier : the classifier counterpart.
    skcpcae.outlier.fit_alpha_beta : fit ``alpha`` and ``beta`` on labelled validation sets.
    skcpcae.outlier.set_operating_point : move the threshold of a fitted pipeline.
    skcpcae.outlier.TunedThresholdDetectorCV : threshold tuned on labelled data.

    Notes
    -----
    Eq. 7 of the paper writes the threshold as ``T(s) = alpha * int_{-inf}^{s} p(s) ds + beta``
    with ``p`` the KDE of the training scores, ``alpha`` "the significance level" and
    ``beta`` "an offset"; higher ``alpha`` and ``beta`` lower the missed-alarm rate. This
    project reads it as a quantile rule: with ``F`` the KDE's CDF of the out-of-sample
    training anomaly scores, the threshold on the anomaly score is
    ``t = F^{-1}(1 - alpha) - beta``. ``alpha`` is then the expected false-alarm rate on
    normal samples, and raising ``alpha`` or ``beta`` lowers ``t`` (more alarms, fewer
    misses), as the paper states.

    Why leave-one-out for nearest-neighbour scorers (``cv="auto"``): with ``k`` folds, a
    held-out sample is compared with a memory bank of ``(k - 1) / k`` of the normal
    samples, while a new sample is compared with all of them, so its out-of-fold distances
    are larger than those of new normals and the threshold lands too high. On ELPV mono
    (patch k-NN, preset ``best``, mean of 10 half splits, ``benchmarks/threshold.py``)
    ``cv=5`` flagged 0.012 / 0.049 / 0.080 of new normal cells at ``alpha`` = 0.01 / 0.05 /
    0.1; leave-one-out scores (a bank of ``n - 1``, exactly what a scorer refitted without
    the sample uses, and one fit instead of ``k + 1``) flag 0.014 / 0.056 / 0.097.
    Detectors without ``loo_score_samples`` (LOF, OC-SVM, IsolationForest, ...) keep 5 folds.

    Cross-fitting covers what is inside ``estimator`` only. In
    ``make_pipeline(StandardScaler(), KDEThresholdClassifier(detector))`` the scaler has
    also been fitted on the held-out folds, so their scores are optimistic and, with
    ``restandardize=False``, the false-alarm rate exceeds ``alpha``: on ELPV deep features
    (1280 max-pooled features, 294-460 training cells) 0.09-0.13 at ``alpha=0.05``. The
    default ``restandardize="auto"`` detects the standardized input and brings it to
    0.04-0.06 (``benchmarks/threshold.py``). Other steps fitted on the same samples cannot
    be detected: put them inside the wrapper, or use
    :func:`~skcpcae.outlier.fit_calibrated` (a held-out calibration split for the whole
    pipeline).

    The inverse CDF is computed numerically (bracketing and Brent's method on the mean of
    normal CDFs). Constant training scores (zero spread) give a zero bandwidth: the KDE
    degenerates to point masses, a warning is issued and the threshold is the empirical
    quantile. Non-finite training scores raise a ``ValueError``. At prediction time a
    sample whose score is NaN is predicted an outlier (-1), a fail-safe choice for
    inspection, with a warning.

    Metadata routing (``sample_weight`` and the like) is forwarded to the wrapped detector's
    ``fit``, on each training fold as well, as in ``FixedThresholdClassifier``.

    References
    ----------
    .. [1] Saeedi, J., Giusti, A. (2023). Semi-supervised visual anomaly detection based on
       convolutional autoencoder and transfer learning. Machine Learning with Applications.

    Examples
    --------
    >>> import numpy as np
    >>> from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 2))
    >>> clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=5), alpha=0.05,
    ...                              random_state=0).fit(X)
    >>> clf.predict([[0.0, 0.0], [6.0, 6.0]])
    array([ 1, -1])
    >>> bool(np.allclose(clf.decision_function(X), clf.score_samples(X) - clf.offset_))
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"])],
        "alpha": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta": [Interval(numbers.Real, None, None, closed="neither")],
        "cv": ["cv_object", StrOptions({"auto", "loo"}), None],
        "bandwidth": [
            StrOptions({"scott", "silverman"}),
            Interval(numbers.Real, 0, None, closed="neither"),
        ],
        "threshold": [Interval(numbers.Real, None, None, closed="neither"), None],
        "restandardize": [StrOptions({"auto"}), "boolean"],
        "random_state": ["random_state"],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(
        self,
        estimator,
        *,
        alpha=0.05,
        beta=0.0,
        cv="auto",
        bandwidth="scott",
        threshold=None,
        restandardize="auto",
        random_state=None,
        n_jobs=None,
    ):
        self.estimator = estimator
        self.alpha = alpha
        self.beta = beta
        self.cv = cv
        self.bandwidth = bandwidth
        self.threshold = threshold
        self.restandardize = restandardize
        self.random_state = random_state
        self.n_jobs = n_jobs

    @_fit_context(
        # KDEThresholdClassifier.estimator is not validated yet: its parameters are
        # validated when its clones are fitted, as in FixedThresholdClassifier.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None, **params):
        """Fit the detector, score the training samples out-of-fold and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Normal training samples, in whatever form ``estimator`` accepts.
        y : Ignored
            Not used by the threshold; passed on to the wrapped detector's ``fit``.
        **params : dict
            Metadata for the wrapped detector's ``fit`` (requires metadata routing to be
            enabled, see ``sklearn.set_config(enable_metadata_routing=True)``).

        Returns
        -------
        self : object
            Fitted detector.
        """
        _raise_for_params(params, self, "fit")
        _check_detector(self.estimator)
        routed = process_routing(self, "fit", **params)
        fit_params = routed.estimator.fit
        X, y = indexable(X, y)  # sparse inputs become CSR, which folds can index
        _warn_if_labelled_cv(y)
        n_samples = _num_samples(X)
        name = type(self.estimator).__name__

        loo = None if self.cv is None else _loo_plan(self.estimator, X, self.restandardize)
        if self.cv == "loo" and loo is None:
            raise ValueError(
                f"cv='loo' needs a detector with exact leave-one-out scores "
                f"(loo_score_samples, e.g. KNNAnomalyScorer or PatchKNNScorer, alone or after "
                f"StandardScaler steps); {name} has none. Use cv='auto' or an integer."
            )
        if self.cv is None:
            self.cv_ = None
            self.restandardized_ = False
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
            scores = _raw_scores(self.estimator_, X)
        elif self.cv in ("auto", "loo") and loo is not None:
            # Leave-one-out: each training sample scored against all the others, one fit
            # (a k-fold bank holds (k-1)/k of them, hence larger distances than at test).
            self.cv_ = "loo"
            self.restandardized_ = loo["restandardize"]
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
            last = _final_step(self.estimator_)
            kwargs = {"standardize": loo["standardize"]}
            if loo["min_scale"]:  # the floor is computed in the scaler's input units
                kwargs["min_scale"] = loo["min_scale"]
                kwargs["units"] = _last_scaler(self.estimator_).scale_
            scores = np.asarray(last.loo_score_samples(**kwargs), dtype=np.float64).ravel()
        else:
            # one rule for cv (utils/_cv.py): "auto" is 5 shuffled folds, as an int is
            cv = 5 if self.cv == "auto" else self.cv
            splits = cross_fit_splits(cv, X, y, random_state=self.random_state)
            self.cv_ = len(splits)
            restandardize = self.restandardize is True or (
                self.restandardize == "auto" and _standardized_on_itself(X)
            )
            self.restandardized_ = restandardize
            fold_scores = Parallel(n_jobs=self.n_jobs)(
                delayed(_fit_and_score_fold)(
                    clone(self.estimator), X, y, train, test, fit_params, restandardize
                )
                for train, test in splits
            )
            scores = np.empty(n_samples, dtype=np.float64)
            for (_, test), s in zip(splits, fold_scores, strict=True):
                scores[np.asarray(test)] = s
            self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)

        anomaly = -scores
        _check_finite_scores(anomaly, "training scores", name)
        self.train_scores_ = anomaly
        self.kde_ = GaussianKDE1D(anomaly, bandwidth=self.bandwidth)
        if self.kde_.bandwidth == 0:
            warnings.warn(
                f"The training anomaly scores of {name} have no spread (all equal or a single "
                "sample), so their KDE has zero bandwidth; the threshold is their empirical "
                f"quantile ({float(self.kde_.dataset[-1])!r} for constant scores).",
                UserWarning,
                stacklevel=2,
            )
        self._operating_point = None
        self.threshold_  # noqa: B018  (computed now; recomputed when alpha/beta/threshold change)

        if hasattr(self.estimator_, "n_features_in_"):
            self.n_features_in_ = self.estimator_.n_features_in_
        if hasattr(self.estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.estimator_.feature_names_in_
        return self

    @property
    def threshold_(self):
        """Threshold on the anomaly score, from the stored KDE and the current parameters.

        ``threshold`` when it is set, else ``kde_.ppf(1 - alpha) - beta``. Computed from the
        stored KDE, so ``set_params(alpha=...)``, ``beta=`` or ``threshold=`` on a fitted
        model move the operating point without refitting.
        """
        check_is_fitted(self, "kde_")
        point = (self.alpha, self.beta, self.threshold)
        cached = getattr(self, "_operating_point", None)
        if cached is None or cached[0] != point:
            if self.threshold is not None:
                value = float(self.threshold)
            else:
                _check_alpha(self.alpha)
                value = float(self.kde_.ppf(1.0 - self.alpha)) - float(self.beta)
            self._operating_point = (point, value)
        return self._operating_point[1]

    @property
    def offset_(self):
        """``-threshold_``, so that ``decision_function = score_samples - offset_``."""
        return -self.threshold_

    def recalibrate(self, X):
        """Refit the KDE on the scores of held-out normal samples; the detector is kept.

        The split-conformal step of :func:`~skcpcae.outlier.fit_calibrated`: when the
        samples the detector (and any pipeline step before it) was fitted on are not used,
        their scores are exchangeable with those of new normal samples, whatever came
        before this step. ``train_scores_`` and ``kde_`` are replaced; ``estimator_`` is not
        refitted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Normal samples that the fitted model has not seen, in the form
            ``estimator_`` accepts (inside a pipeline: transformed by the steps before).

        Returns
        -------
        self : object
            The recalibrated estimator.
        """
        check_is_fitted(self)
        anomaly = -_raw_scores(self.estimator_, X)
        _check_finite_scores(anomaly, "calibration scores", type(self.estimator_).__name__)
        self.train_scores_ = anomaly
        self.kde_ = GaussianKDE1D(anomaly, bandwidth=self.bandwidth)
        self._operating_point = None
        self.threshold_  # noqa: B018
        return self

    def normalized_score(self, X):
        """Anomaly score rescaled so that 0 is a typical normal sample and 1 the threshold.

        ``(a - m) / (threshold_ - m)``, with ``a = -score_samples(X)`` and ``m`` the median
        of ``train_scores_``. Above 1 a sample is flagged (``predict`` gives -1); 2 is twice
        as far from a typical normal sample as the threshold. Unlike the raw score, the
        scale is the same for every detector and preset.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as accepted by the wrapped detector.

        Returns
        -------
        normalized : ndarray of shape (n_samples,)
            0 for a typical normal sample, 1 at the threshold, above 1 for anomalies.
        """
        return self._normalize(-self.score_samples(X))

    def _normalize(self, anomaly):
        """:meth:`normalized_score` of anomaly scores (``-score_samples``)."""
        median = float(np.median(self.train_scores_))
        span = self.threshold_ - median
        if not span > 0:
            raise ValueError(
                f"The threshold ({self.threshold_!r}) is not above the median training "
                f"anomaly score ({median!r}), so the score cannot be normalized to put it at "
                "1; use an alpha below 0.5 (or a higher threshold)."
            )
        return (np.asarray(anomaly, dtype=np.float64) - median) / span

    def normality_pvalue(self, X):
        """Probability that a normal sample scores at least as high: ``1 - kde_.cdf(a)``.

        Read off the stored KDE of the normal training scores (``a = -score_samples(X)``).
        With ``beta=0`` and no fixed ``threshold``, a sample is flagged exactly when its
        p-value is below ``alpha``. A small p-value says "rare for a good part"; it is not
        the probability of a defect, which would need the defects' score distribution.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as accepted by the wrapped detector.

        Returns
        -------
        pvalue : ndarray of shape (n_samples,)
            Probability that a normal sample scores at least as high.
        """
        return self._pvalue(-self.score_samples(X))

    def _pvalue(self, anomaly):
        """:meth:`normality_pvalue` of anomaly scores (``-score_samples``)."""
        check_is_fitted(self, "kde_")
        return 1.0 - self.kde_.cdf(np.asarray(anomaly, dtype=np.float64))

    def score_samples(self, X):
        """Score samples with the wrapped detector: higher is more normal.

        ``score_samples`` of ``estimator_`` (its ``decision_function`` when it has no
        ``score_samples``); the anomaly score is the opposite.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as accepted by the wrapped detector.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The wrapped detector's scores: higher = more normal.
        """
        check_is_fitted(self)
        return _raw_scores(self.estimator_, X)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as accepted by the wrapped detector.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``: negative for anomalies.
        """
        refuse_backward_string_scorer()
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers, -1 for outliers (anomaly score above ``threshold_``).

        A sample with a NaN score is predicted -1, with a warning.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples, as accepted by the wrapped detector.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 for normal samples, -1 for anomalies.
        """
        decision = self.decision_function(X)
        n_nan = int(np.isnan(decision).sum())
        if n_nan:
            warnings.warn(
                f"{n_nan} samples got a NaN score from {type(self.estimator_).__name__}; "
                "they are predicted outliers (-1).",
                UserWarning,
                stacklevel=2,
            )
        return np.where(decision >= 0, 1, -1)

    def fit_predict(self, X, y=None, **params):
        """Fit on ``X`` and label its samples by the out-of-sample scores the KDE was fitted on.

        The training samples are judged by ``train_scores_`` (leave-one-out or out-of-fold,
        see ``cv``), the scores ``threshold_`` was read from, so about a fraction ``alpha``
        of a normal training set is flagged, as on new normal samples. ``fit(X).predict(X)``
        scores ``X`` with ``estimator_``, which was fitted on it, and flags fewer; the two
        agree when ``cv=None``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Normal training samples, in whatever form ``estimator`` accepts.
        y : Ignored
            Not used by the threshold; passed on to the wrapped detector's ``fit``.
        **params : dict
            Metadata for the wrapped detector's ``fit`` (see :meth:`fit`).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers of the training set.
        """
        self.fit(X, y, **params)
        return np.where(-self.train_scores_ - self.offset_ >= 0, 1, -1)

    @available_if(_estimator_has("transform"))
    def transform(self, X):
        """``transform`` of the fitted wrapped detector.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_out : ndarray
        """
        check_is_fitted(self)
        return self.estimator_.transform(X)

    @available_if(_estimator_has("anomaly_map"))
    def anomaly_map(self, X):
        """``anomaly_map`` of the fitted wrapped detector (higher = worse).

        Parameters
        ----------
        X : array-like
            Input of the wrapped detector.

        Returns
        -------
        maps : ndarray
        """
        check_is_fitted(self)
        return self.estimator_.anomaly_map(X)

    @available_if(_estimator_has("kneighbors"))
    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """``kneighbors`` of the fitted wrapped detector.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
        n_neighbors : int, default=None
        return_distance : bool, default=True

        Returns
        -------
        neigh_dist, neigh_ind : ndarray of shape (n_queries, n_neighbors)
        """
        check_is_fitted(self)
        return self.estimator_.kneighbors(
            X, n_neighbors=n_neighbors, return_distance=return_distance
        )

    def get_metadata_routing(self):
        """Get metadata routing of this object.

        Returns
        -------
        routing : MetadataRouter
            Routes ``fit`` metadata to the wrapped detector's ``fit``.
        """
        return MetadataRouter(owner=self).add(
            estimator=self.estimator,
            method_mapping=MethodMapping().add(callee="fit", caller="fit"),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.three_d_array = inner.input_tags.three_d_array
        return tags
