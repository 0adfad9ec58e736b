"""Tests of the density-based detectors GMMAnomalyScorer and KDEAnomalyScorer."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity

from skcpcae.outlier import GMMAnomalyScorer, KDEAnomalyScorer


def _normal(n, seed=0, d=3):
    return np.random.RandomState(seed).normal(size=(n, d))


def test_gmm_scores_are_mixture_log_likelihoods():
    X = _normal(200)
    det = GMMAnomalyScorer(n_components=2, random_state=0).fit(X)
    ref = GaussianMixture(n_components=2, random_state=0).fit(X)
    np.testing.assert_allclose(det.score_samples(X), ref.score_samples(X))
    np.testing.assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)
    assert det.n_iter_ == ref.n_iter_


def test_gmm_contamination_sets_training_outlier_fraction():
    X = _normal(400)
    det = GMMAnomalyScorer(contamination=0.1, random_state=0).fit(X)
    assert np.mean(det.predict(X) == -1) == pytest.approx(0.1, abs=0.005)


@pytest.mark.parametrize("cls", [GMMAnomalyScorer, KDEAnomalyScorer])
def test_far_point_is_outlier(cls):
    det = cls().fit(_normal(200))
    assert det.predict([[0.0, 0.0, 0.0], [8.0, 8.0, 8.0]]).tolist() == [1, -1]


@pytest.mark.parametrize(
    "kernel", ["gaussian", "tophat", "epanechnikov", "exponential", "linear", "cosine"]
)
def test_kde_leave_one_out_matches_refits(kernel):
    X = _normal(30, seed=1)
    det = KDEAnomalyScorer(bandwidth=2.0, kernel=kernel).fit(X)
    brute = [
        KernelDensity(bandwidth=2.0, kernel=kernel)
        .fit(np.delete(X, i, axis=0))
        .score_samples(X[i : i + 1])[0]
        for i in range(len(X))
    ]
    np.testing.assert_allclose(det.negative_outlier_score_, brute, rtol=1e-10, atol=1e-10)


def test_kde_scores_are_kernel_density_log_densities():
    X = _normal(100)
    det = KDEAnomalyScorer(bandwidth="silverman").fit(X)
    ref = KernelDensity(bandwidth="silverman").fit(X)
    X_test = _normal(10, seed=2)
    np.testing.assert_allclose(det.score_samples(X_test), ref.score_samples(X_test))
    assert det.bandwidth_ == pytest.approx(ref.bandwidth_)


def test_kde_leave_one_out_is_not_optimistic():
    # High dimension, small bandwidth: in-sample log-densities are dominated by each
    # sample's own kernel; leave-one-out ones are comparable to fresh samples' scores.
    X, X_new = _normal(200, d=30), _normal(200, seed=5, d=30)
    det = KDEAnomalyScorer(bandwidth=1.0).fit(X)
    in_sample = det.score_samples(X)
    assert np.median(in_sample) > np.median(det.score_samples(X_new)) + 5
    assert abs(np.median(det.negative_outlier_score_) - np.median(det.score_samples(X_new))) < 2


def test_kde_contamination_uses_leave_one_out_quantile():
    X = _normal(100)
    det = KDEAnomalyScorer(contamination=0.2).fit(X)
    assert det.offset_ == pytest.approx(np.percentile(det.negative_outlier_score_, 20))


def test_kde_needs_two_samples():
    with pytest.raises(ValueError, match="n_samples=1"):
        KDEAnomalyScorer().fit(np.zeros((1, 2)))
