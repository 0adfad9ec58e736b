"""fit_predict of the novelty detectors: the training set judged by its out-of-sample scores.

The rule (docs/conventions.md, "fit_predict"): a detector whose offset_ (or threshold) comes
from out-of-sample training scores labels its training set by those same scores, so a float
contamination (or alpha) is the fraction of the training set flagged, while
fit(X).predict(X) scores the training set in sample and flags (almost) nothing.
"""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from skcpcae.baselines import NearestImageDetector, VariationDetector
from skcpcae.outlier import (
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
    PatchKNNScorer,
)

X, _ = make_blobs(n_samples=200, centers=1, n_features=4, random_state=0)
IMAGES = np.random.default_rng(0).uniform(0.2, 0.8, size=(40, 8, 8)).astype(np.float32)


@pytest.mark.parametrize(
    "detector, data",
    [
        (KNNAnomalyScorer(n_neighbors=3, contamination=0.1), X),
        (KDEAnomalyScorer(contamination=0.1), X),
        (PatchKNNScorer(contamination=0.1), IMAGES[..., None]),
        (NearestImageDetector(contamination=0.1), IMAGES),
        (VariationDetector(contamination=0.1), IMAGES),
    ],
    ids=lambda obj: type(obj).__name__ if hasattr(obj, "fit") else "",
)
def test_fit_predict_flags_contamination_of_the_training_set(detector, data):
    labels = detector.fit_predict(data)
    assert set(np.unique(labels)) <= {-1, 1}
    assert np.mean(labels == -1) == pytest.approx(0.1, abs=1.5 / len(data))
    # the labels are those of the leave-one-out scores offset_ was set from
    expected = np.where(detector.negative_outlier_score_ < detector.offset_, -1, 1)
    np.testing.assert_array_equal(labels, expected)
    # fit(X).predict(X) judges the training set in sample: never more flagged
    assert np.sum(detector.predict(data) == -1) <= np.sum(labels == -1)


def test_knn_fit_predict_differs_from_fit_then_predict():
    det = KNNAnomalyScorer(n_neighbors=1, contamination=0.1)
    labels = det.fit_predict(X)
    # in sample, each training point is its own nearest neighbour: distance 0, all normal
    assert np.all(det.fit(X).predict(X) == 1)
    assert np.sum(labels == -1) == 20


def test_threshold_fit_predict_uses_the_scores_the_kde_saw():
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), alpha=0.1, cv="auto")
    labels = clf.fit_predict(X)
    np.testing.assert_array_equal(labels, np.where(clf.train_scores_ > clf.threshold_, -1, 1))
    assert 0.03 < np.mean(labels == -1) < 0.2  # about alpha (the KDE smooths the quantile)
    assert np.sum(clf.predict(X) == -1) < np.sum(labels == -1)


def test_threshold_fit_predict_without_cv_is_fit_then_predict():
    clf = KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), alpha=0.1, cv=None)
    np.testing.assert_array_equal(clf.fit_predict(X), clf.fit(X).predict(X))
