"""Tests of KDEThresholdClassifier, its 1-D KDE and the alpha/beta calibration."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import gaussian_kde
from sklearn import config_context
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
    best_threshold,
    fit_alpha_beta,
)
from skcpcae.outlier._kde_threshold import _GaussianKDE1D

DETECTORS = {
    "knn": lambda: KNNAnomalyScorer(n_neighbors=5),
    "lof": lambda: LocalOutlierFactor(n_neighbors=10, novelty=True),
    "ocsvm": lambda: OneClassSVM(gamma="scale", nu=0.1),
    "iforest": lambda: IsolationForest(n_estimators=20, random_state=0),
    "gmm": lambda: GMMAnomalyScorer(random_state=0),
    "kde": lambda: KDEAnomalyScorer(),
}


def _normal(n, seed=0, d=2):
    return np.random.RandomState(seed).normal(size=(n, d))


class _ScoreDetector(OutlierMixin, BaseEstimator):
    """A detector whose score_samples is given by a function of X (for edge cases)."""

    def __init__(self, func=None):
        self.func = func

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        self.fitted_ = True
        return self

    def score_samples(self, X):
        return self.func(np.asarray(X, dtype=float))


def _constant(X):
    return np.zeros(len(X))


def _nan_on_first_feature_above_2(X):
    s = -np.abs(X[:, 0])
    s[X[:, 0] > 2] = np.nan
    return s


class _DecisionOnly(OutlierMixin, BaseEstimator):
    """Detector with a decision_function and no score_samples."""

    def fit(self, X, y=None):
        self.center_ = np.mean(X, axis=0)
        return self

    def decision_function(self, X):
        return -np.sum((np.asarray(X) - self.center_) ** 2, axis=1)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_wrapped_detector_contract(name):
    X = _normal(150)
    clf = KDEThresholdClassifier(DETECTORS[name](), alpha=0.1, cv=3, random_state=0).fit(X)
    X_test = np.vstack([_normal(50, seed=1), [[8.0, 8.0]]])
    scores = clf.score_samples(X_test)
    decision = clf.decision_function(X_test)
    np.testing.assert_allclose(decision, scores - clf.offset_)
    pred = clf.predict(X_test)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_array_equal(pred, np.where(decision >= 0, 1, -1))
    assert pred[-1] == -1  # the far point is an outlier
    assert clf.train_scores_.shape == (150,)
    assert clf.threshold_ == pytest.approx(float(clf.kde_.ppf(0.9)))
    assert clf.offset_ == -clf.threshold_
    assert clf.n_features_in_ == 2


@settings(max_examples=25, deadline=None)
@given(
    alpha=st.floats(0.001, 0.999),
    beta=st.floats(-5, 5),
    seed=st.integers(0, 10_000),
)
def test_decision_is_shifted_score_samples(alpha, beta, seed):
    X = _normal(30, seed=seed)
    clf = KDEThresholdClassifier(
        KNNAnomalyScorer(n_neighbors=3), alpha=alpha, beta=beta, cv=3, random_state=seed
    ).fit(X)
    X_test = _normal(20, seed=seed + 1)
    np.testing.assert_allclose(
        clf.decision_function(X_test), clf.score_samples(X_test) - clf.offset_
    )
    assert set(np.unique(clf.predict(X_test))) <= {-1, 1}
    assert clf.threshold_ == pytest.approx(float(clf.kde_.ppf(1 - alpha)) - beta)


def test_false_alarm_rate_matches_alpha_with_cross_fitting():
    # 2000 normal training samples, 5000 fresh normals, 2-D, k-NN with a small k.
    X_train, X_test = _normal(2000, seed=0), _normal(5000, seed=1)
    rates = {}
    for cv in (5, None):
        clf = KDEThresholdClassifier(
            KNNAnomalyScorer(n_neighbors=3), alpha=0.05, cv=cv, random_state=0
        ).fit(X_train)
        rates[cv] = float(np.mean(clf.predict(X_test) == -1))
    # Out-of-fold scores: the false-alarm rate is close to alpha (observed: 0.052).
    assert abs(rates[5] - 0.05) < 0.02
    # In-sample scores count each training sample as its own neighbour: the KDE sees
    # optimistic scores, the threshold is too low and the false-alarm rate overshoots
    # (observed: 0.109 for k=3; 0.157 for k=2, 0.083 for k=5).
    assert rates[None] > 0.08
    assert rates[None] > 1.5 * rates[5]


def test_in_sample_scores_of_1nn_are_degenerate():
    # With k=1 every in-sample score is 0 (each sample is its own nearest neighbour):
    # the KDE collapses and every fresh normal is flagged. Cross-fitting avoids it.
    X_train, X_test = _normal(300, seed=0), _normal(300, seed=1)
    with pytest.warns(UserWarning, match="no spread"):
        clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=1), cv=None).fit(X_train)
    assert np.mean(clf.predict(X_test) == -1) == 1.0
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=1), cv=5, random_state=0)
    assert np.mean(clf.fit(X_train).predict(X_test) == -1) < 0.15


def test_scaler_inside_the_wrapper_keeps_false_alarms_at_alpha():
    # Heavy-tailed features, more features than samples: a scaler fitted before the wrapper
    # has seen the held-out folds, which damps their extreme values, so the out-of-fold
    # scores are optimistic. Cross-fitting the scaler with the detector fixes it.
    rng = np.random.RandomState(0)
    X_train, X_test = rng.standard_t(2, size=(200, 300)), rng.standard_t(2, size=(2000, 300))
    inside = KDEThresholdClassifier(
        make_pipeline(StandardScaler(), KNNAnomalyScorer(10)), alpha=0.05, random_state=0
    ).fit(X_train)
    outside = make_pipeline(
        StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer(10), alpha=0.05,
                                                 restandardize=False, random_state=0)
    ).fit(X_train)
    default = make_pipeline(
        StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer(10), alpha=0.05, random_state=0)
    ).fit(X_train)
    far_inside = np.mean(inside.predict(X_test) == -1)
    far_outside = np.mean(outside.predict(X_test) == -1)
    assert far_inside < 0.09  # observed 0.04
    assert far_outside > 0.15  # observed 0.21
    # restandardize="auto" (default) detects the scaler outside and gives the inside threshold
    assert default[-1].threshold_ == pytest.approx(inside.threshold_, rel=1e-6)
    np.testing.assert_array_equal(default.predict(X_test), inside.predict(X_test))
    # the scores are the same; only the thresholds differ
    np.testing.assert_allclose(inside.score_samples(X_test), outside.score_samples(X_test))


def test_cv_none_uses_in_sample_scores():
    X = _normal(60)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), cv=None).fit(X)
    np.testing.assert_array_equal(clf.train_scores_, -clf.estimator_.score_samples(X))


def test_out_of_fold_scores_match_manual_cross_fitting():
    X = _normal(40)
    cv = KFold(4, shuffle=True, random_state=3)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), cv=cv).fit(X)
    expected = np.empty(40)
    for train, test in cv.split(X):
        expected[test] = -KNNAnomalyScorer(n_neighbors=3).fit(X[train]).score_samples(X[test])
    np.testing.assert_allclose(clf.train_scores_, expected)
    # estimator_ is refit on everything
    np.testing.assert_array_equal(
        clf.score_samples(X), KNNAnomalyScorer(n_neighbors=3).fit(X).score_samples(X)
    )


def test_same_random_state_same_threshold():
    X = _normal(80)
    a = KDEThresholdClassifier(KNNAnomalyScorer(3), random_state=7).fit(X)
    b = KDEThresholdClassifier(KNNAnomalyScorer(3), random_state=7).fit(X)
    assert a.threshold_ == b.threshold_


def test_cv_must_partition_samples():
    X = _normal(40)
    clf = KDEThresholdClassifier(
        KNNAnomalyScorer(3), cv=ShuffleSplit(3, test_size=0.2, random_state=0)
    )
    with pytest.raises(ValueError, match="partition"):
        clf.fit(X)


def test_lof_without_novelty_is_refused():
    with pytest.raises(ValueError, match="novelty=True"):
        KDEThresholdClassifier(LocalOutlierFactor()).fit(_normal(30))
    with pytest.raises(ValueError, match="novelty=True"):
        KDEThresholdClassifier(make_pipeline(StandardScaler(), LocalOutlierFactor())).fit(
            _normal(30)
        )


def test_detector_without_scores_is_refused():
    with pytest.raises(ValueError, match="neither score_samples nor decision_function"):
        KDEThresholdClassifier(StandardScaler()).fit(_normal(30))


def test_decision_function_only_detector():
    X = _normal(60)
    clf = KDEThresholdClassifier(_DecisionOnly(), cv=3, random_state=0).fit(X)
    np.testing.assert_allclose(clf.score_samples(X), clf.estimator_.decision_function(X))
    assert clf.predict([[10.0, 10.0]])[0] == -1


def test_constant_scores_warn_and_use_point_mass():
    X = _normal(30)
    with pytest.warns(UserWarning, match="no spread"):
        clf = KDEThresholdClassifier(_ScoreDetector(_constant), cv=3, random_state=0).fit(X)
    assert clf.kde_.bandwidth == 0
    assert clf.threshold_ == 0.0
    np.testing.assert_array_equal(clf.predict(X), np.ones(30))


def test_nan_training_scores_raise():
    X = _normal(200, seed=0)
    X[0, 0] = 3.0  # one sample gets a NaN score
    clf = KDEThresholdClassifier(_ScoreDetector(_nan_on_first_feature_above_2), cv=3)
    with pytest.raises(ValueError, match="non-finite"):
        clf.fit(X)


def test_nan_test_scores_are_outliers_with_warning():
    X = np.clip(_normal(50), -1.5, 1.5)
    clf = KDEThresholdClassifier(_ScoreDetector(_nan_on_first_feature_above_2), cv=3).fit(X)
    with pytest.warns(UserWarning, match="NaN score"):
        pred = clf.predict([[3.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(pred, [-1, 1])


def test_delegates_kneighbors_not_transform():
    X = _normal(40)
    clf = KDEThresholdClassifier(LocalOutlierFactor(n_neighbors=5, novelty=True), cv=3).fit(X)
    dist, ind = clf.kneighbors(X[:3])
    dist2, ind2 = clf.estimator_.kneighbors(X[:3])
    np.testing.assert_array_equal(ind, ind2)
    assert not hasattr(clf, "transform")
    assert not hasattr(KDEThresholdClassifier(KNNAnomalyScorer()), "kneighbors")


def test_metadata_routing_slices_fit_params_per_fold():
    X = _normal(60)
    weights = np.linspace(0.5, 1.5, 60)
    with config_context(enable_metadata_routing=True):
        inner = OneClassSVM(gamma="scale").set_fit_request(
            sample_weight=True
        )
        clf = KDEThresholdClassifier(inner, cv=3, random_state=0)
        clf.fit(X, sample_weight=weights)  # each fold gets its own slice of the weights
        assert clf.train_scores_.shape == (60,)
    with pytest.raises(ValueError, match="sample_weight"):
        KDEThresholdClassifier(IsolationForest()).fit(X, sample_weight=weights)


def test_pipeline_with_scaler():
    X = _normal(100) * 50 + 10
    pipe = make_pipeline(
        StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer(5), random_state=0)
    ).fit(X)
    assert pipe.predict([[10.0, 10.0], [1000.0, 1000.0]]).tolist() == [1, -1]


def test_invalid_alpha_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        KDEThresholdClassifier(KNNAnomalyScorer(), alpha=1.0).fit(_normal(20))


# ---- the 1-D KDE ---------------------------------------------------------------------


@pytest.mark.parametrize("bandwidth", ["scott", "silverman", 0.3])
def test_kde_matches_scipy_with_robust_spread(bandwidth):
    s = np.random.RandomState(0).gamma(2.0, size=300)
    ours = _GaussianKDE1D(s, bandwidth=bandwidth)
    q1, q3 = np.percentile(s, [25, 75])
    spread = min(np.std(s, ddof=1), (q3 - q1) / 1.349)
    factor = {"scott": 300 ** -0.2, "silverman": (300 * 0.75) ** -0.2, 0.3: 0.3}[bandwidth]
    assert ours.bandwidth == pytest.approx(factor * spread)
    ref = gaussian_kde(s, bw_method=ours.bandwidth / np.std(s, ddof=1))
    x = np.linspace(-2, 12, 15)
    np.testing.assert_allclose(ours.pdf(x), ref.pdf(x), atol=1e-12)
    np.testing.assert_allclose(
        ours.cdf(x), [ref.integrate_box_1d(-np.inf, v) for v in x], atol=1e-12
    )
    q = np.array([0.001, 0.05, 0.5, 0.95, 0.999])
    np.testing.assert_allclose(ours.cdf(ours.ppf(q)), q, atol=1e-9)


def test_kde_bandwidth_ignores_a_few_huge_scores():
    # Out-of-fold anomaly scores can hold a few values orders of magnitude above the rest;
    # a standard-deviation bandwidth would then smear the 90 % quantile far to the right.
    rng = np.random.RandomState(0)
    s = np.r_[rng.normal(10, 1, 500), [1e6, 1e7]]
    assert _GaussianKDE1D(s).ppf(0.9) == pytest.approx(np.quantile(s, 0.9), abs=0.3)


def test_kde_quantile_is_scale_aware():
    s = np.random.RandomState(1).normal(size=200)
    q1 = _GaussianKDE1D(s).ppf(0.9)
    q2 = _GaussianKDE1D(1e6 * s + 3.0).ppf(0.9)
    assert q2 == pytest.approx(1e6 * q1 + 3.0, rel=1e-9)


def test_kde_refuses_nan_and_empty():
    with pytest.raises(ValueError, match="NaN"):
        _GaussianKDE1D([0.0, np.nan])
    with pytest.raises(ValueError, match="empty"):
        _GaussianKDE1D([])


# ---- calibration ---------------------------------------------------------------------


def test_fit_alpha_beta_recovers_known_constants():
    rng = np.random.RandomState(0)
    sets = [rng.normal(0, 1, 400), rng.gamma(2, 2, 400), rng.normal(5, 0.3, 400)]
    t = [_GaussianKDE1D(s).ppf(1 - 0.07) - 0.4 for s in sets]
    alpha, beta = fit_alpha_beta(sets, t)
    assert alpha == pytest.approx(0.07, abs=1e-4)
    assert beta == pytest.approx(0.4, abs=1e-4)


def test_fit_alpha_beta_needs_two_sets():
    with pytest.raises(ValueError, match="at least 2"):
        fit_alpha_beta([np.arange(10.0)], [5.0])
    with pytest.raises(ValueError, match="score sets"):
        fit_alpha_beta([np.arange(10.0), np.arange(10.0)], [5.0])


def test_best_threshold_separates_classes():
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.8, 0.9]
    assert best_threshold(y, s) == pytest.approx(0.55)
    assert best_threshold(y, s, criterion="youden") == pytest.approx(0.55)
    # sklearn's +1 / -1 convention gives the same answer
    assert best_threshold([1, 1, 1, -1, -1], s) == pytest.approx(0.55)


def test_best_threshold_f1_and_youden_differ_on_imbalanced_overlap():
    rng = np.random.RandomState(0)
    y = np.r_[np.zeros(900), np.ones(100)].astype(int)
    s = np.r_[rng.normal(0, 1, 900), rng.normal(1.5, 1, 100)]
    t_f1 = best_threshold(y, s, criterion="f1")
    t_j = best_threshold(y, s, criterion="youden")
    assert t_j < t_f1  # Youden weighs recall more: a lower threshold
    # the F1 threshold is optimal among candidates
    f1 = lambda t: 2 * np.sum((s > t) & (y == 1)) / (np.sum(s > t) + y.sum())  # noqa: E731
    assert all(f1(t_f1) >= f1(t) - 1e-12 for t in np.linspace(-2, 4, 61))


def test_best_threshold_errors():
    with pytest.raises(ValueError, match="both"):
        best_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="criterion"):
        best_threshold([0, 1], [0.1, 0.2], criterion="auc")


# --------------------------------------------------------------------------------------
# calibration that survives composition (#12), operating point without refit (#17)
# --------------------------------------------------------------------------------------


def _heavy(n, d, seed):
    """Few samples in many dimensions: where a scaler fitted on them biases the threshold."""
    return np.random.RandomState(seed).standard_t(df=5, size=(n, d))


def test_restandardize_auto_matches_scaler_inside():
    X = _heavy(120, 40, 0)
    inner = KDEThresholdClassifier(
        make_pipeline(StandardScaler(), KNNAnomalyScorer(n_neighbors=5)), random_state=0
    ).fit(X)
    outer = make_pipeline(
        StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=5), random_state=0)
    ).fit(X)
    assert outer[-1].restandardized_
    assert not inner.restandardized_  # its input is not standardized
    np.testing.assert_allclose(outer[-1].train_scores_, inner.train_scores_, rtol=1e-6)
    assert outer[-1].threshold_ == pytest.approx(inner.threshold_, rel=1e-6)
    np.testing.assert_allclose(outer.score_samples(X[:5]), inner.score_samples(X[:5]),
                               rtol=1e-6)


def test_restandardize_false_keeps_the_biased_threshold():
    X = _heavy(120, 40, 0)
    auto = make_pipeline(StandardScaler(), KDEThresholdClassifier(
        KNNAnomalyScorer(n_neighbors=5), random_state=0)).fit(X)
    off = make_pipeline(StandardScaler(), KDEThresholdClassifier(
        KNNAnomalyScorer(n_neighbors=5), restandardize=False, random_state=0)).fit(X)
    assert not off[-1].restandardized_
    # the scaler saw the held-out folds: their scores, hence the threshold, are lower
    assert off[-1].threshold_ < auto[-1].threshold_


def test_restandardize_keeps_far_on_new_samples():
    """Scaler outside the wrapper, many dimensions: FAR close to alpha only with the fix."""
    rng = np.random.RandomState(1)
    far = {"auto": [], False: []}
    for seed in range(4):
        X = rng.standard_t(df=5, size=(150, 60))
        X_new = rng.standard_t(df=5, size=(2000, 60))
        for mode in far:
            pipe = make_pipeline(StandardScaler(), KDEThresholdClassifier(
                KNNAnomalyScorer(n_neighbors=10), alpha=0.1, restandardize=mode,
                random_state=seed)).fit(X)
            far[mode].append(np.mean(pipe.predict(X_new) == -1))
    assert abs(np.mean(far["auto"]) - 0.1) < 0.03
    assert np.mean(far[False]) > np.mean(far["auto"]) + 0.02


def test_standardized_detection_ignores_raw_and_centered_data():
    from skcpcae.outlier._kde_threshold import _standardized_on_itself

    X = _normal(50, d=3)
    assert not _standardized_on_itself(X)
    assert not _standardized_on_itself(X - X.mean(axis=0))
    assert _standardized_on_itself(StandardScaler().fit_transform(X))
    Z = StandardScaler().fit_transform(np.c_[X, np.ones(50)])  # a constant column
    assert _standardized_on_itself(Z)
    assert not _standardized_on_itself(StandardScaler().fit_transform(X)[:2])


def test_set_params_moves_threshold_without_refit():
    X = _normal(300)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=5), alpha=0.05,
                                 random_state=0).fit(X)
    kde, est = clf.kde_, clf.estimator_
    t05 = clf.threshold_
    clf.set_params(alpha=0.01)
    assert clf.kde_ is kde and clf.estimator_ is est
    assert clf.threshold_ == pytest.approx(float(kde.ppf(0.99)))
    assert clf.threshold_ > t05
    assert np.mean(clf.predict(X) == -1) < np.mean(
        clf.set_params(alpha=0.2).predict(X) == -1)
    clf.set_params(threshold=1.5)
    assert clf.threshold_ == 1.5 and clf.offset_ == -1.5
    a = -clf.score_samples(X)
    np.testing.assert_array_equal(clf.predict(X) == -1, a > 1.5)
    # the same as a fit with that alpha
    refit = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=5), alpha=0.2,
                                   random_state=0).fit(X)
    clf.set_params(threshold=None, alpha=0.2)
    assert clf.threshold_ == pytest.approx(refit.threshold_)


def test_set_operating_point_on_a_pipeline():
    from skcpcae.outlier import set_operating_point

    X = _normal(200)
    pipe = make_pipeline(StandardScaler(), KDEThresholdClassifier(
        KNNAnomalyScorer(n_neighbors=5), random_state=0)).fit(X)
    before = pipe.predict(X)
    assert set_operating_point(pipe, alpha=0.3) is pipe
    assert pipe[-1].alpha == 0.3 and (pipe.predict(X) == -1).sum() > (before == -1).sum()
    set_operating_point(pipe, threshold=1e9)
    assert np.all(pipe.predict(X) == 1)
    set_operating_point(pipe, alpha=0.05)  # alpha clears the fixed threshold
    assert pipe[-1].threshold is None
    np.testing.assert_array_equal(pipe.predict(X), before)
    with pytest.raises(ValueError, match="not both"):
        set_operating_point(pipe, alpha=0.1, threshold=2.0)
    with pytest.raises(ValueError, match="alpha"):
        set_operating_point(pipe, alpha=1.5)
    with pytest.raises(ValueError, match="finite"):
        set_operating_point(pipe, threshold=float("nan"))
    with pytest.raises(TypeError, match="KDEThresholdClassifier"):
        set_operating_point(make_pipeline(StandardScaler(), KNNAnomalyScorer()), alpha=0.1)


def test_normalized_score_puts_threshold_at_one():
    X = _normal(300)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=5), random_state=0).fit(X)
    X_new = np.r_[_normal(200, seed=3), [[6.0, 6.0]]]
    z = clf.normalized_score(X_new)
    np.testing.assert_array_equal(z > 1, clf.predict(X_new) == -1)
    assert np.median(clf.normalized_score(X)) == pytest.approx(
        np.median((-clf.score_samples(X) - np.median(clf.train_scores_))
                  / (clf.threshold_ - np.median(clf.train_scores_))))
    assert z[-1] > 2
    clf.set_params(alpha=0.01)
    np.testing.assert_array_equal(clf.normalized_score(X_new) > 1,
                                  clf.predict(X_new) == -1)
    clf.set_params(alpha=0.9)
    with pytest.raises(ValueError, match="median"):
        clf.normalized_score(X_new)


def test_normality_pvalue_below_alpha_iff_flagged():
    X = _normal(300)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=5), alpha=0.1,
                                 random_state=0).fit(X)
    X_new = _normal(400, seed=5)
    p = clf.normality_pvalue(X_new)
    assert np.all((p >= 0) & (p <= 1))
    flagged = clf.predict(X_new) == -1
    near = np.abs(p - 0.1) < 1e-9  # the threshold itself: p == alpha
    np.testing.assert_array_equal((p < 0.1)[~near], flagged[~near])


def test_conformal_threshold_order_statistic():
    from skcpcae.outlier import conformal_threshold

    s = np.arange(1, 100, dtype=float)
    assert conformal_threshold(s, 0.05) == 95.0  # ceil(100 * 0.95) = 95th smallest
    assert conformal_threshold(s[::-1], 0.1) == 90.0
    assert conformal_threshold(s[:10], 0.05) == np.inf  # too few for alpha = 0.05
    with pytest.raises(ValueError, match="finite"):
        conformal_threshold([1.0, np.nan], 0.1)
    # false-alarm rate of fresh exchangeable scores is at most alpha, and close to it
    rng = np.random.RandomState(0)
    rates = [np.mean(rng.normal(size=5000) > conformal_threshold(rng.normal(size=199), 0.05))
             for _ in range(200)]
    assert 0.04 < np.mean(rates) <= 0.055


def test_fit_calibrated_holds_out_and_recalibrates():
    from skcpcae.outlier import fit_calibrated

    X = _heavy(240, 30, 2)
    pipe = make_pipeline(StandardScaler(), KDEThresholdClassifier(
        KNNAnomalyScorer(n_neighbors=5), random_state=0))
    assert fit_calibrated(pipe, X, calibration_size=0.25, random_state=0) is pipe
    step = pipe[-1]
    assert step.train_scores_.shape == (60,)
    assert step.estimator_.n_samples_fit_ == 180 if hasattr(
        step.estimator_, "n_samples_fit_") else True
    assert pipe[0].n_samples_seen_ == 180
    # the KDE is that of the held-out scores
    from sklearn.model_selection import train_test_split
    _, cal = train_test_split(np.arange(240), test_size=0.25, random_state=0)
    np.testing.assert_allclose(step.train_scores_, -pipe.score_samples(X[cal]))
    assert step.threshold_ == pytest.approx(float(step.kde_.ppf(0.95)))


def test_fit_warns_about_string_scorers_in_labelled_search():
    X = _normal(60)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), cv=3, random_state=0)
    with pytest.warns(UserWarning, match="get_scorer"):
        clf.fit(X, np.zeros(60))
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("error")
        clf.fit(X)
        clf.fit(X, np.ones(60))  # +1 = normal: roc_auc is right with these labels
