import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skcpcae.outlier import KNNAnomalyScorer


def test_score_is_mean_squared_distance_to_k_nearest():
    X = np.array([[0.0], [1.0], [3.0], [10.0]])
    knn = KNNAnomalyScorer(n_neighbors=2).fit(X)
    # neighbours of 2.0: 1 and 3 -> (1 + 1) / 2
    assert knn.score_samples([[2.0]])[0] == pytest.approx(-1.0)
    # leave-one-out training scores: 0 -> {1, 3}: (1 + 9) / 2
    assert knn.negative_outlier_score_[0] == pytest.approx(-5.0)


def test_training_scores_exclude_the_sample_itself():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 3))
    knn = KNNAnomalyScorer(n_neighbors=1).fit(X)
    assert np.all(knn.negative_outlier_score_ < 0)
    assert np.all(knn.score_samples(X) == 0)


def test_k_reduced_with_warning_on_tiny_training_set():
    with pytest.warns(UserWarning, match="n_neighbors"):
        knn = KNNAnomalyScorer(n_neighbors=15).fit(np.eye(4))
    assert knn.n_neighbors_ == 3


def test_far_point_is_flagged():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(100, 4))
    knn = KNNAnomalyScorer(n_neighbors=5).fit(X)
    assert knn.predict(np.full((1, 4), 8.0))[0] == -1
    assert knn.predict(np.zeros((1, 4)))[0] == 1


@settings(max_examples=25, deadline=None)
@given(st.integers(5, 40), st.integers(1, 5), st.floats(0.01, 0.5))
def test_decision_is_score_minus_offset(n, d, contamination):
    rng = np.random.RandomState(n)
    X = rng.normal(size=(n, d))
    knn = KNNAnomalyScorer(n_neighbors=3, contamination=contamination).fit(X)
    Z = rng.normal(size=(7, d))
    np.testing.assert_allclose(knn.decision_function(Z), knn.score_samples(Z) - knn.offset_)
    assert set(np.unique(knn.predict(Z))) <= {-1, 1}
