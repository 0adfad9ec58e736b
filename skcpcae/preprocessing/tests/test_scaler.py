"""FlooredStandardScaler: StandardScaler's scales with a floor, and its exact leave-one-out."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer
from skcpcae.preprocessing import FlooredStandardScaler


def _table(seed=0, n=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * [1.0, 2.0, 3.0, 1.0, 1.0, 1.0]
    X[:, 3] = 0.0  # dead channel
    X[0, 4] = 0.1  # fires on one sample only
    X[1:, 4] = 0.0
    X[:, 5] *= 1e-4  # nearly constant
    return X


def test_zero_floor_is_standard_scaler():
    X = _table()
    assert_allclose(FlooredStandardScaler(min_scale=0).fit_transform(X),
                    StandardScaler().fit_transform(X))


def test_small_scales_are_raised_to_the_floor_and_the_others_kept():
    X = _table()
    scaler = FlooredStandardScaler(min_scale=0.1).fit(X)
    std = X.std(axis=0)
    floor = 0.1 * np.median(std[std > 0])
    assert_allclose(scaler.scale_[:3], std[:3])
    assert_allclose(scaler.scale_[3:], floor)  # dead, one-sample and near-constant channels
    assert scaler.n_floored_ == 3
    assert_allclose(scaler.var_, X.var(axis=0))


def test_partial_fit_gives_the_scales_of_fit():
    X = _table()
    scaler = FlooredStandardScaler()
    for part in np.array_split(X, 4):
        scaler.partial_fit(part)
    assert_allclose(scaler.scale_, FlooredStandardScaler().fit(X).scale_)


def test_float32_noise_in_a_near_dead_channel_stays_small():
    # A channel that fired weakly on one training image: StandardScaler divides it by 1/20 of
    # that activation, so 1e-5 of noise on a test image moves the k-NN score by more than a
    # whole normal score.
    X = _table(n=400)
    X[0, 4] = 0.01
    test = _table(seed=1, n=1)  # a new sample, not one of the training rows
    test[0, 4] = 0.02
    noisy = test.copy()
    noisy[0, 4] += 1e-5
    rel = []
    for scaler in (StandardScaler(), FlooredStandardScaler()):
        model = make_pipeline(scaler, KNNAnomalyScorer(n_neighbors=3)).fit(X)
        a, b = model.score_samples(test)[0], model.score_samples(noisy)[0]
        typical = np.median(-model[-1].negative_outlier_score_)  # a normal sample's score
        rel.append(abs(a - b) / typical)
    assert rel[0] > 1.0  # the noise alone moves the score by more than a normal score
    assert rel[1] < 1e-3


@pytest.mark.parametrize("min_scale", [0.0, 0.1, 0.5])
def test_threshold_leave_one_out_equals_refitting_without_each_sample(min_scale):
    X = _table(seed=1, n=30)
    X[1, 4] = 1e-3  # a second, tiny activation: without sample 0 the channel's std is ~1e-4
    inner = make_pipeline(FlooredStandardScaler(min_scale=min_scale),
                          KNNAnomalyScorer(n_neighbors=3))
    wrapper = KDEThresholdClassifier(inner).fit(X)
    assert wrapper.cv_ == "loo"
    brute = []
    for i in range(len(X)):
        model = make_pipeline(FlooredStandardScaler(min_scale=min_scale),
                              KNNAnomalyScorer(n_neighbors=3)).fit(np.delete(X, i, axis=0))
        brute.append(-model.score_samples(X[i : i + 1])[0])
    assert_allclose(wrapper.train_scores_, brute, rtol=1e-9)
