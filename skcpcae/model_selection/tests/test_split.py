"""Tests of NormalOnlyKFold, alone and driving GridSearchCV on one-class pipelines."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae.metrics import auroc_scorer
from skcpcae.model_selection import NormalOnlyKFold
from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer


def _data(n_normal=120, n_anomalous=30, seed=0):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.normal(size=(n_normal, 4)), rng.normal(3.0, 1.0, size=(n_anomalous, 4))])
    y = np.r_[np.zeros(n_normal, int), np.ones(n_anomalous, int)]
    perm = rng.permutation(len(y))
    return X[perm] * 10.0 + 5.0, y[perm]


class _NormalOnlyKNN(KNNAnomalyScorer):
    """KNNAnomalyScorer that fails if it is ever fitted on an anomaly."""

    def fit(self, X, y=None):
        assert y is not None and np.all(np.asarray(y) == 0), "fitted on an anomaly"
        return super().fit(X, y)


@pytest.mark.parametrize("labels", ["01", "pm1"])
def test_folds_train_on_normals_and_partition_the_samples(labels):
    X, y = _data()
    y_in = y if labels == "01" else np.where(y == 1, -1, 1)
    cv = NormalOnlyKFold(3, random_state=0)
    assert cv.get_n_splits() == 3
    tested = []
    for train, test in cv.split(X, y_in):
        assert np.all(y[train] == 0)
        assert np.intersect1d(train, test).size == 0
        assert 0 < y[test].sum() < len(test)  # both classes in every test fold
        tested.append(test)
    tested = np.concatenate(tested)
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(y)))  # disjoint, complete


def test_anomalies_are_split_evenly():
    X, y = _data(n_normal=60, n_anomalous=9)
    counts = [y[test].sum() for _, test in NormalOnlyKFold(3, random_state=0).split(X, y)]
    assert counts == [3, 3, 3]


def test_same_random_state_same_folds():
    X, y = _data()
    a = [t for _, t in NormalOnlyKFold(4, random_state=1).split(X, y)]
    b = [t for _, t in NormalOnlyKFold(4, random_state=1).split(X, y)]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_split_errors():
    X, y = _data(n_anomalous=2)
    with pytest.raises(ValueError, match="at least 3 anomalous"):
        list(NormalOnlyKFold(3).split(X, y))
    with pytest.raises(ValueError, match="needs labels"):
        list(NormalOnlyKFold(3).split(X, None))
    with pytest.raises(ValueError, match="normal samples"), \
            pytest.warns(UserWarning, match="y holds only 1s"):
        list(NormalOnlyKFold(3).split(np.zeros((5, 1)), np.ones(5)))
    with pytest.raises(ValueError, match="at least 2"):
        NormalOnlyKFold(1)


def test_grid_search_on_scaler_knn_pipeline():
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), _NormalOnlyKNN(n_neighbors=5))
    search = GridSearchCV(
        pipe,
        {"_normalonlyknn__n_neighbors": [1, 10]},
        cv=NormalOnlyKFold(3, random_state=0),
        scoring=auroc_scorer,
        refit=False,
        error_score="raise",
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all((scores > 0.8) & (scores <= 1.0))
    assert search.best_params_["_normalonlyknn__n_neighbors"] in (1, 10)
    # refit by hand on the normal samples only
    best = clone(pipe).set_params(**search.best_params_).fit(X[y == 0], y[y == 0])
    assert best.predict(X).shape == (len(y),)


def test_grid_search_tunes_wrapped_detector():
    X, y = _data()
    clf = KDEThresholdClassifier(_NormalOnlyKNN(n_neighbors=3), cv=3, random_state=0)
    pipe = make_pipeline(StandardScaler(), clf)
    search = GridSearchCV(
        pipe,
        {"kdethresholdclassifier__estimator__n_neighbors": [2, 8]},
        cv=NormalOnlyKFold(3, random_state=0),
        scoring=auroc_scorer,
        error_score="raise",
        refit=False,
    )
    with pytest.warns(UserWarning, match="got y = 0 for every sample"):  # names the scorers
        search.fit(X, y)
    assert np.all(search.cv_results_["mean_test_score"] > 0.8)
