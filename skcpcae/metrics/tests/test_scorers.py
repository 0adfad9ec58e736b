"""Scorers for model selection on one-class pipelines: anomalous = positive (#17)."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.metrics import get_scorer as sklearn_get_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae.metrics import get_scorer, get_scorer_names
from skcpcae.model_selection import NormalOnlyKFold
from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = np.r_[rng.normal(size=(120, 4)), rng.normal(1.5, 1.0, size=(40, 4))]
    y = np.r_[np.zeros(120, int), np.ones(40, int)]
    return X, y


def _pipe():
    return make_pipeline(StandardScaler(), KDEThresholdClassifier(
        KNNAnomalyScorer(n_neighbors=5), cv=3, random_state=0))


@pytest.mark.parametrize("labels", ["01", "pm1"])
def test_scorers_score_the_anomalous_class(labels):
    X, y = _data()
    pipe = _pipe().fit(X[y == 0][:80])
    X_test, y_test = X[80:], y[80:]
    y_given = y_test if labels == "01" else np.where(y_test == 1, -1, 1)
    anomaly = -pipe.score_samples(X_test)
    assert get_scorer("roc_auc")(pipe, X_test, y_given) == pytest.approx(
        roc_auc_score(y_test, anomaly))
    assert get_scorer("roc_auc")(pipe, X_test, y_given) > 0.8
    flagged = (pipe.predict(X_test) == -1).astype(int)
    assert get_scorer("f1")(pipe, X_test, y_given) == pytest.approx(f1_score(y_test, flagged))
    assert get_scorer("recall")(pipe, X_test, y_given) == pytest.approx(
        flagged[y_test == 1].mean())


def test_grid_search_roc_auc_gives_auroc_not_its_complement():
    X, y = _data()
    cv = NormalOnlyKFold(3, random_state=0)
    grid = {"kdethresholdclassifier__estimator__n_neighbors": [3, 10]}
    ours = GridSearchCV(_pipe(), grid, cv=cv, scoring=get_scorer("roc_auc"), refit=False)
    with pytest.warns(UserWarning):  # the wrapper cannot tell which scorer is used
        ours.fit(X, y)
    auroc = ours.cv_results_["mean_test_score"]
    assert np.all(auroc > 0.8)
    # labels +1 normal / -1 anomalous: scikit-learn's string scorer reads them right
    y_pm = np.where(y == 1, -1, 1)
    sklearns = GridSearchCV(_pipe(), grid, cv=cv, scoring="roc_auc", refit=False).fit(X, y_pm)
    np.testing.assert_allclose(sklearns.cv_results_["mean_test_score"], auroc)


@pytest.mark.filterwarnings("ignore:KDEThresholdClassifier.fit got y")
@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
@pytest.mark.parametrize("scoring", ["roc_auc", "average_precision"])
def test_string_scorer_with_01_labels_is_a_clear_error_not_one_minus_auroc(scoring):
    X, y = _data()
    cv = NormalOnlyKFold(3, random_state=0)
    search = GridSearchCV(_pipe(), {"kdethresholdclassifier__alpha": [0.05]}, cv=cv,
                          scoring=scoring, error_score="raise")
    with pytest.raises(ValueError, match=r"get_scorer\('" + scoring):
        search.fit(X, y)
    # scikit-learn's default error_score: no figure (NaN), and the reason in the warning
    search.set_params(error_score=np.nan)
    with pytest.warns(UserWarning, match="get_scorer"):
        search.fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"]).all()
    # the bare detector, outside a pipeline, says the same
    det = KNNAnomalyScorer(n_neighbors=5).fit(X[y == 0][:80])
    with pytest.raises(ValueError, match="1 - the real figure"):
        sklearn_get_scorer(scoring)(det, X[80:], y[80:])


@pytest.mark.filterwarnings("ignore:KDEThresholdClassifier.fit got y")
def test_grid_search_f1_and_multi_metric():
    X, y = _data()
    grid = {"kdethresholdclassifier__alpha": [0.05, 0.2]}
    search = GridSearchCV(_pipe(), grid, cv=NormalOnlyKFold(3, random_state=0),
                          scoring=get_scorer(["roc_auc", "f1"]), refit=False).fit(X, y)
    f1 = search.cv_results_["mean_test_f1"]
    assert np.all((f1 > 0) & (f1 <= 1))
    # alpha moves the threshold, not the ranking
    np.testing.assert_allclose(*search.cv_results_["mean_test_roc_auc"].reshape(2, 1))


def test_unknown_scorer_names_the_project_scorers():
    assert "roc_auc" in get_scorer_names() and "f1" in get_scorer_names()
    with pytest.raises(ValueError, match="get_scorer"):
        get_scorer("accuracy_of_something")


def test_predictions_outside_the_outlier_convention_are_refused():
    class Labels01:
        def predict(self, X):
            return np.zeros(len(X), int)

    with pytest.raises(ValueError, match=r"\+1 \(normal\) / -1"):
        get_scorer("f1")(Labels01(), np.zeros((3, 1)), [0, 1, 0])
