"""Leave-one-out training scores: the scorers' ``loo_score_samples`` and ``cv="auto"``."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skcpcae._components.knn import loo_sq_distances
from skcpcae.outlier import KDEThresholdClassifier, KNNAnomalyScorer, PatchKNNScorer


def _refit_without(make, X, i):
    """Score of sample ``i`` by a fresh ``make()`` fitted on every other sample."""
    return make().fit(np.delete(X, i, axis=0)).score_samples(X[i : i + 1])[0]


@pytest.mark.parametrize("k", [1, 4, 28])
def test_knn_loo_scores_equal_refits_without_the_sample(k):
    X = np.random.RandomState(0).standard_t(3, size=(30, 5))
    loo = KNNAnomalyScorer(k).fit(X).loo_score_samples()
    brute = [_refit_without(lambda: KNNAnomalyScorer(k), X, i) for i in range(len(X))]
    np.testing.assert_allclose(loo, brute, rtol=1e-10)


@pytest.mark.parametrize("already_standardized", [False, True])
def test_standardized_loo_scores_equal_scaler_and_knn_refits(already_standardized):
    # heavy tails: one sample moves the scaler a lot, so the check has teeth
    X = np.random.RandomState(1).standard_t(2, size=(25, 8)) * np.arange(1, 9)
    brute = [_refit_without(lambda: make_pipeline(StandardScaler(), KNNAnomalyScorer(3)), X, i)
             for i in range(len(X))]
    Z = StandardScaler().fit_transform(X) if already_standardized else X
    loo = KNNAnomalyScorer(3).fit(Z).loo_score_samples(standardize=True)
    np.testing.assert_allclose(loo, brute, rtol=1e-8)
    # without the re-standardization the scores differ (the check is not vacuous)
    plain = KNNAnomalyScorer(3).fit(StandardScaler().fit_transform(X)).loo_score_samples()
    assert np.max(np.abs(plain - np.asarray(brute))) > 1e-2


def test_loo_sq_distances_exclude_only_the_sample_itself():
    X = np.array([[0.0], [0.0], [3.0]])  # a duplicate is a neighbour, the sample is not
    np.testing.assert_allclose(loo_sq_distances(X, 2), [[0, 9], [0, 9], [9, 9]])
    with pytest.raises(ValueError, match="at least 2"):
        loo_sq_distances(X[:1])


def test_patch_knn_loo_scores_equal_refits_without_the_map():
    M = np.random.default_rng(0).normal(size=(10, 4, 5, 3)).astype(np.float32)
    make = lambda: PatchKNNScorer(n_neighbors=2, radius=1, top_k=3)  # noqa: E731
    loo = make().fit(M).loo_score_samples()
    brute = [_refit_without(make, M, i) for i in range(len(M))]
    np.testing.assert_allclose(loo, brute, rtol=1e-5)
    with pytest.raises(ValueError, match="standardize"):
        make().fit(M).loo_score_samples(standardize=True)


def test_knn_standardized_loo_needs_euclidean():
    X = np.random.RandomState(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="euclidean"):
        KNNAnomalyScorer(3, metric="manhattan").fit(X).loo_score_samples(standardize=True)


@pytest.mark.parametrize(
    "make, standardized",
    [
        (lambda: KNNAnomalyScorer(5), False),
        (lambda: make_pipeline(StandardScaler(), KNNAnomalyScorer(5)), True),
    ],
)
def test_cv_auto_uses_leave_one_out_for_knn(make, standardized):
    X = np.random.RandomState(2).standard_t(4, size=(40, 6))
    clf = KDEThresholdClassifier(make()).fit(X)
    assert clf.cv_ == "loo"
    brute = [_refit_without(make, X, i) for i in range(len(X))]
    np.testing.assert_allclose(clf.train_scores_, -np.asarray(brute), rtol=1e-8)
    # estimator_ is the detector fitted on all of X
    np.testing.assert_allclose(clf.score_samples(X), make().fit(X).score_samples(X))
    assert clf.threshold_ == pytest.approx(float(clf.kde_.ppf(0.95)))


def test_scaler_outside_gives_the_scaler_inside_threshold_with_loo():
    X = np.random.RandomState(3).standard_t(3, size=(60, 20))
    inside = KDEThresholdClassifier(make_pipeline(StandardScaler(), KNNAnomalyScorer(5))).fit(X)
    outside = make_pipeline(StandardScaler(), KDEThresholdClassifier(KNNAnomalyScorer(5))).fit(X)
    assert outside[-1].cv_ == "loo" and outside[-1].restandardized_
    np.testing.assert_allclose(outside[-1].train_scores_, inside.train_scores_, rtol=1e-8)
    off = make_pipeline(StandardScaler(), KDEThresholdClassifier(
        KNNAnomalyScorer(5), restandardize=False)).fit(X)
    assert off[-1].cv_ == "loo" and not off[-1].restandardized_
    assert off[-1].threshold_ < outside[-1].threshold_  # the scaler saw the left-out sample


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocalOutlierFactor(n_neighbors=10, novelty=True),
        lambda: OneClassSVM(gamma="scale", nu=0.1),
        lambda: IsolationForest(n_estimators=10, random_state=0),
        lambda: make_pipeline(PCA(2), KNNAnomalyScorer(5)),  # PCA: no exact LOO
        lambda: KNNAnomalyScorer(5, metric="manhattan"),  # standardized input, non-Euclidean
    ],
)
def test_cv_auto_falls_back_to_five_folds(make):
    X = StandardScaler().fit_transform(np.random.RandomState(4).normal(size=(50, 3)))
    clf = KDEThresholdClassifier(make(), random_state=0).fit(X)
    ref = KDEThresholdClassifier(make(), cv=5, random_state=0).fit(X)
    assert clf.cv_ == 5
    np.testing.assert_allclose(clf.train_scores_, ref.train_scores_)


def test_cv_loo_is_refused_for_detectors_without_loo_scores():
    X = np.random.RandomState(0).normal(size=(30, 2))
    with pytest.raises(ValueError, match="leave-one-out"):
        KDEThresholdClassifier(OneClassSVM(), cv="loo").fit(X)
    clf = KDEThresholdClassifier(KNNAnomalyScorer(3), cv="loo").fit(X)
    assert clf.cv_ == "loo"


def _far(clf, X_train, X_test):
    return float(np.mean(clf.fit(X_train).predict(X_test) == -1))


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_knn_far_matches_alpha_on_gaussian_data(alpha):
    # 8-D Gaussian, 300 training samples: the k-fold banks (80 % of the samples) make
    # out-of-fold distances larger than those of new samples; leave-one-out does not
    rng = np.random.RandomState(0)
    far = {"auto": [], 5: []}
    for seed in range(4):
        X, X_new = rng.normal(size=(300, 8)), rng.normal(size=(3000, 8))
        for cv in far:
            clf = KDEThresholdClassifier(KNNAnomalyScorer(5), alpha=alpha, cv=cv,
                                         random_state=seed)
            far[cv].append(_far(clf, X, X_new))
    assert abs(np.mean(far["auto"]) - alpha) < 0.02  # observed 0.063 (0.05), 0.090 (0.1)
    assert np.mean(far[5]) < np.mean(far["auto"])  # the k-fold threshold is higher


def test_patch_knn_far_matches_alpha_on_gaussian_maps():
    rng = np.random.default_rng(0)
    alphas = (0.05, 0.1)
    far = {(cv, a): [] for cv in ("auto", 5) for a in alphas}
    for seed in range(3):
        M = rng.normal(size=(300, 2, 2, 4)).astype(np.float32)
        M_new = rng.normal(size=(2000, 2, 2, 4)).astype(np.float32)
        for cv in ("auto", 5):
            clf = KDEThresholdClassifier(
                PatchKNNScorer(n_neighbors=3, top_k=2, batch_size=512), cv=cv,
                random_state=seed).fit(M)
            anomaly = -clf.score_samples(M_new)
            for a in alphas:  # the threshold moves without refitting
                far[cv, a].append(float(np.mean(anomaly > clf.set_params(alpha=a).threshold_)))
    for a in alphas:
        assert abs(np.mean(far["auto", a]) - a) < 0.02  # observed 0.043, 0.093
        assert np.mean(far[5, a]) < np.mean(far["auto", a])
