"""The full pipeline, end to end, on tiny synthetic parts."""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from skcpcae import make_cpcae_pipeline, make_preset
from skcpcae.datasets import make_parts
from skcpcae.embedding import DeepPoolEmbedder
from skcpcae.metrics import auroc_scorer, image_auroc
from skcpcae.model_selection import NormalOnlyKFold
from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
)
from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar
from skcpcae.residuals import CPCAEResidualMap

TINY = {
    "cpcaeresidualmap__input_size": 32,
    "cpcaeresidualmap__patch_size": 16,
    "cpcaeresidualmap__max_epochs": 3,
    "cpcaeresidualmap__batch_size": 64,
}


@pytest.fixture(scope="module")
def parts():
    X, y = make_parts(24, n_anomalies=6, size=(48, 48), max_shift=0.03, max_rotation=2,
                      random_state=0)
    return X[y == 0][:16], X[16:], y[16:]


def _front(weights=None):
    return [
        ECCRegistrar(),
        AdaptiveGamma(),
        CPCAEResidualMap(input_size=32, patch_size=16, max_epochs=3, batch_size=64,
                         random_state=0),
        DeepPoolEmbedder(weights=weights, pooling="max", random_state=0, device="cpu"),
        StandardScaler(),
    ]


@pytest.mark.parametrize(
    "last",
    [
        KNNAnomalyScorer(n_neighbors=3),
        LocalOutlierFactor(n_neighbors=3, novelty=True),
        OneClassSVM(gamma="scale"),
        IsolationForest(n_estimators=20, random_state=0),
        GMMAnomalyScorer(covariance_type="diag", random_state=0),
        KDEAnomalyScorer(),
        KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3), cv=3, random_state=0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_any_outlier_detector_is_the_last_step(parts, last):
    X_train, X_test, _ = parts
    pipe = make_pipeline(*_front(), clone(last)).fit(X_train)
    scores = pipe.score_samples(X_test)
    assert scores.shape == (len(X_test),) and np.all(np.isfinite(scores))
    pred = pipe.predict(X_test)
    assert set(np.unique(pred)) <= {-1, 1}
    np.testing.assert_allclose(pipe.decision_function(X_test),
                               scores - pipe[-1].offset_, rtol=1e-6, atol=1e-9)


def test_preset_pipeline_flags_pasted_defects(parts):
    X_train, X_test, y_test = parts
    pipe = make_cpcae_pipeline(**TINY).fit(X_train)  # pretrained Lite0, KDE threshold
    auroc = image_auroc(y_test, -pipe.score_samples(X_test))
    assert auroc > 0.8
    assert set(np.unique(pipe.predict(X_test))) <= {-1, 1}


def test_best_preset_registers_moving_parts_and_flags_pasted_defects():
    # Parts that move by up to 10 % and 5 degrees, with the registration step in front
    # (pretrained Lite0, stages 3+4 on 96x96 parts, KDE threshold): the whole chain fits,
    # separates pasted defects and predicts.
    X, y = make_parts(30, n_anomalies=8, size=(96, 96), max_shift=0.1, max_rotation=5,
                      random_state=1)
    train, test, y_test = X[:22], X[22:], y[22:]
    moving = make_preset("best", register=True, kdethresholdclassifier__cv=3)
    auroc = image_auroc(y_test, -moving.fit(train).score_samples(test))
    assert auroc > 0.9
    assert np.isfinite(moving[-1].threshold_)
    assert set(np.unique(moving.predict(test))) <= {-1, 1}


def test_fitted_pipeline_survives_joblib_bit_for_bit(parts, tmp_path):
    X_train, X_test, _ = parts
    pipe = make_pipeline(*_front(), KNNAnomalyScorer(n_neighbors=3)).fit(X_train)
    path = tmp_path / "model.joblib"
    joblib.dump(pipe, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.score_samples(X_test), pipe.score_samples(X_test))


def test_grid_search_tunes_a_stage_with_the_normal_only_splitter(parts):
    X_train, X_test, y_test = parts
    X = np.concatenate([X_train, X_test])
    y = np.r_[np.zeros(len(X_train), int), y_test]
    pipe = make_pipeline(*_front(), KNNAnomalyScorer(n_neighbors=3))
    search = GridSearchCV(pipe, {"knnanomalyscorer__n_neighbors": [1, 3]},
                          cv=NormalOnlyKFold(3, random_state=0), scoring=auroc_scorer,
                          refit=False)
    search.fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_["knnanomalyscorer__n_neighbors"] in (1, 3)


def test_presets_build_and_reject_unknown_names():
    for name in ("paper", "aligned", "deep-feature", "union", "best"):
        assert hasattr(make_preset(name), "fit")
    with pytest.raises(ValueError, match="Unknown preset"):
        make_preset("nope")


def test_fitted_full_pipeline_survives_skops_bit_for_bit(parts, tmp_path):
    from skcpcae import persistence

    X_train, X_test, _ = parts
    pipe = make_cpcae_pipeline(**TINY, deeppoolembedder__weights=None,
                               kdethresholdclassifier__cv=3).fit(X_train)
    path = tmp_path / "model.skops"
    persistence.save(pipe, path)
    loaded = persistence.load(path)  # no extra trusted types needed
    np.testing.assert_array_equal(loaded.score_samples(X_test), pipe.score_samples(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test), pipe.predict(X_test))


def test_cpcae_pipeline_fuses_the_residual_peak_with_the_unchanged_embedding(parts):
    # the peak branch adds a column beside the embedding the pipeline had without it (the
    # same numbers bit for bit), and the fused scorer at weight 0 ranks as the k-NN alone
    X_train, X_test, _ = parts
    common = dict(TINY, register=False, gamma=False, threshold=False,
                  deeppoolembedder__weights=None)
    fused = make_cpcae_pipeline(**common).fit(X_train)
    plain = make_cpcae_pipeline(**common, peak_weight=0).fit(X_train)
    assert [type(s).__name__ for s in fused.named_steps.values()] == [
        "CPCAEResidualMap", "FeatureUnion", "FlooredStandardScaler", "FusedKNNScorer"]
    assert [type(s).__name__ for s in plain.named_steps.values()] == [
        "CPCAEResidualMap", "DeepPoolEmbedder", "FlooredStandardScaler", "KNNAnomalyScorer"]
    features = fused[:2].transform(X_test)
    np.testing.assert_array_equal(features[:, :-1], plain[:2].transform(X_test))
    assert np.all(np.isfinite(features[:, -1]))
    fused.set_params(fusedknnscorer__weight=0.0).fit(X_train)
    assert np.array_equal(np.argsort(fused.score_samples(X_test)),
                          np.argsort(plain.score_samples(X_test)))


def test_cpcae_pipeline_peak_options_reach_their_steps():
    pipe = make_cpcae_pipeline(peak_weight=0.25, peak_polarity="both", peak_sigma=3.0,
                               residualpeak__min_std=0.01, deeppoolembedder__stages=(3,))
    params = pipe.get_params()
    assert params["featureunion__residualpeak__polarity"] == "both"
    assert params["featureunion__residualpeak__sigma"] == 3.0
    assert params["featureunion__residualpeak__min_std"] == 0.01
    assert params["featureunion__embedding__deeppoolembedder__stages"] == (3,)
    assert params["kdethresholdclassifier__estimator__fusedknnscorer__weight"] == 0.25
    with pytest.raises(ValueError, match=r"peak_weight must be in \[0, 1\] or 'auto'"):
        make_cpcae_pipeline(peak_weight=1.5)
    # "auto": the weight chosen on validation data for each input (with and without gamma)
    weight = "kdethresholdclassifier__estimator__fusedknnscorer__weight"
    assert make_cpcae_pipeline().get_params()[weight] == 0.25  # the paper preset: gamma
    assert make_cpcae_pipeline(gamma=False).get_params()[weight] == 0.5
