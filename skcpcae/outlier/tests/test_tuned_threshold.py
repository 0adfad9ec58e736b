"""TunedThresholdDetectorCV: the threshold tuned on labelled data, detector fitted on normals."""

import numpy as np
import pytest
from sklearn.model_selection import KFold, TunedThresholdClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae.metrics import get_scorer
from skcpcae.outlier import (
    KDEThresholdClassifier,
    KNNAnomalyScorer,
    TunedThresholdDetectorCV,
    best_threshold,
)


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = np.r_[rng.normal(size=(150, 3)), rng.normal(2.0, 1.0, size=(50, 3))]
    y = np.r_[np.zeros(150, int), np.ones(50, int)]
    return X, y


def test_sklearn_tuned_threshold_refuses_detectors():
    """Why the equivalent exists: scikit-learn's class needs a classifier."""
    X, y = _data()
    with pytest.raises(AttributeError, match="classes_"):
        TunedThresholdClassifierCV(KDEThresholdClassifier(KNNAnomalyScorer())).fit(X, y)


@pytest.mark.parametrize("scoring", ["f1", "balanced_accuracy"])
def test_tuned_threshold_beats_a_fixed_alpha(scoring):
    X, y = _data()
    X_val, y_val = _data(seed=1)
    pipe = make_pipeline(StandardScaler(), KNNAnomalyScorer(n_neighbors=10))
    tuned = TunedThresholdDetectorCV(pipe, scoring=scoring, cv=4, random_state=0).fit(X, y)
    # fitted on the normal samples only
    assert tuned.estimator_[-1].n_samples_fit_ == 150 if hasattr(
        tuned.estimator_[-1], "n_samples_fit_") else tuned.estimator_[0].n_samples_seen_ == 150
    assert tuned.estimator_[0].n_samples_seen_ == 150
    anomaly = -tuned.score_samples(X_val)
    np.testing.assert_array_equal(tuned.predict(X_val) == -1, anomaly > tuned.best_threshold_)
    np.testing.assert_allclose(tuned.decision_function(X_val),
                               tuned.score_samples(X_val) - tuned.offset_)
    score = get_scorer(scoring)(tuned, X_val, y_val)
    fixed = KDEThresholdClassifier(pipe, alpha=0.01, random_state=0).fit(X[y == 0])
    assert score > get_scorer(scoring)(fixed, X_val, y_val)
    # close to the best threshold of the validation set itself
    oracle = best_threshold(y_val, anomaly, criterion="f1" if scoring == "f1" else "youden")
    assert abs(tuned.best_threshold_ - oracle) < 0.5 * np.std(anomaly)
    assert 0 < tuned.best_score_ <= 1


def test_tuned_threshold_refuses_bad_labels_and_splitters():
    X, y = _data()
    with pytest.raises(ValueError, match="normal and anomalous"):
        TunedThresholdDetectorCV(KNNAnomalyScorer()).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="normal samples only"):
        TunedThresholdDetectorCV(KNNAnomalyScorer(), cv=KFold(3)).fit(X, y)


def test_tuned_threshold_accepts_plus_minus_one_labels():
    X, y = _data()
    a = TunedThresholdDetectorCV(KNNAnomalyScorer(5), cv=3, random_state=0).fit(X, y)
    b = TunedThresholdDetectorCV(KNNAnomalyScorer(5), cv=3, random_state=0).fit(
        X, np.where(y == 1, -1, 1))
    assert a.best_threshold_ == b.best_threshold_


def test_tuned_threshold_cv_follows_the_package_rule():
    # an iterable of splits is used as given; an int is shuffled NormalOnlyKFold
    from skcpcae.model_selection import NormalOnlyKFold

    X, y = _data()
    splits = list(NormalOnlyKFold(3, shuffle=True, random_state=0).split(X, y))
    a = TunedThresholdDetectorCV(KNNAnomalyScorer(5), cv=splits).fit(X, y)
    b = TunedThresholdDetectorCV(KNNAnomalyScorer(5), cv=3, random_state=0).fit(X, y)
    assert a.best_threshold_ == b.best_threshold_


def test_tuned_threshold_cv_none_tunes_on_in_sample_scores():
    X, y = _data()
    det = TunedThresholdDetectorCV(KNNAnomalyScorer(5), cv=None).fit(X, y)
    anomaly = -det.estimator_.score_samples(X)  # refit on the same normals: same scores
    assert det.best_threshold_ == best_threshold(y, anomaly, criterion="f1")
