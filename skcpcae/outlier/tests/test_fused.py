"""FusedKNNScorer: the embedding's k-NN score fused with score columns."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from skcpcae.outlier import FusedKNNScorer, KNNAnomalyScorer


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    train = np.c_[rng.normal(size=(60, 4)), rng.gamma(2.0, size=(60, 2))]
    test = np.c_[rng.normal(size=(15, 4)), rng.gamma(2.0, size=(15, 2))]
    return train, test


def _brute(train, test, k, n_scores, weight):
    """The definition: robust z of the leave-one-out k-NN score and of each score column."""
    emb, sc = train[:, :-n_scores], train[:, -n_scores:]
    d_train = []
    for i in range(len(emb)):
        others = np.delete(emb, i, axis=0)
        d = np.sort(((others - emb[i]) ** 2).sum(1))[:k]
        d_train.append(d.mean())
    nn = NearestNeighbors(n_neighbors=k).fit(emb)
    d_test = (nn.kneighbors(test[:, :-n_scores])[0] ** 2).mean(1)

    def z(train_vals, vals):
        q1, med, q3 = np.percentile(train_vals, [25, 50, 75])
        return (vals - med) / (q3 - q1)

    parts = [z(np.array(d_train), d_test)]
    cols = [z(sc[:, j], test[:, -n_scores + j]) for j in range(n_scores)]
    return (1 - weight) * parts[0] + weight * np.mean(cols, axis=0)


@pytest.mark.parametrize("n_scores, weight", [(1, 0.5), (2, 0.25), (1, 1.0)])
def test_scores_match_the_definition(data, n_scores, weight):
    train, test = data
    scorer = FusedKNNScorer(n_neighbors=3, n_scores=n_scores, weight=weight).fit(train)
    np.testing.assert_allclose(-scorer.score_samples(test),
                               _brute(train, test, 3, n_scores, weight), rtol=1e-9, atol=1e-9)


def test_weight_zero_ranks_as_the_knn_alone(data):
    train, test = data
    fused = FusedKNNScorer(n_neighbors=3, weight=0.0).fit(train)
    knn = KNNAnomalyScorer(n_neighbors=3).fit(train[:, :-1])
    assert np.array_equal(np.argsort(fused.score_samples(test)),
                          np.argsort(knn.score_samples(test[:, :-1])))


def test_a_high_score_column_flags_a_sample_the_knn_finds_normal(data):
    train, _ = data
    scorer = FusedKNNScorer(n_neighbors=3).fit(train)
    normal = train[:1].copy()
    flagged = normal.copy()
    flagged[0, -1] = 50.0
    assert scorer.predict(normal)[0] == 1
    assert scorer.predict(flagged)[0] == -1


def test_training_scores_are_out_of_sample(data):
    train, _ = data
    scorer = FusedKNNScorer(n_neighbors=3).fit(train)
    # the k-NN part leave-one-out (no training row is its own neighbour), the score column
    # as it came, each in units of its own training median and interquartile range
    loo = -KNNAnomalyScorer(n_neighbors=3).fit(train[:, :-1]).negative_outlier_score_

    def z(v):
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        return (v - med) / (q3 - q1)

    np.testing.assert_allclose(-scorer.negative_outlier_score_,
                               0.5 * z(loo) + 0.5 * z(train[:, -1]), rtol=1e-9, atol=1e-9)
    # in sample, each row finds itself: lower scores than the out-of-sample ones
    assert np.mean(-scorer.score_samples(train)) < np.mean(-scorer.negative_outlier_score_)


def test_needs_embedding_columns():
    with pytest.raises(ValueError, match=r"needs embedding columns before its n_scores=2 .*n_features=2"):
        FusedKNNScorer(n_scores=2).fit(np.zeros((10, 2)))
