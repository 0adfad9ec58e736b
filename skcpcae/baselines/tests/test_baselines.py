"""Tests of the image baselines: Variation, NearestImage, AE (L2) and PatchCore detectors."""

import io

import joblib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from skcpcae.baselines import (
    AEL2Detector,
    NearestImageDetector,
    PatchCoreDetector,
    VariationDetector,
)
from skcpcae.datasets import make_parts
from skcpcae.residuals import CPCAEResidualMap

N_TRAIN = 16


def _tiny_ae(residual="squared", max_epochs=60):
    # One 32x32 patch per image; 60 tiny steps learn the parts well enough (about 1 s).
    return CPCAEResidualMap(input_size=None, patch_size=32, channels=(8, 16), latent_dim=16,
                            lr=5e-3, max_epochs=max_epochs, batch_size=4, residual=residual,
                            gain=None, device="cpu")


FAST = {
    "variation": lambda: VariationDetector(),
    "nearest": lambda: NearestImageDetector(),
    "nearest-small": lambda: NearestImageDetector(input_size=(16, 12)),
    "ae-l2": lambda: AEL2Detector(_tiny_ae(), random_state=0),
    "patchcore-random": lambda: PatchCoreDetector(weights=None, device="cpu",
                                                  random_state=0),
}
# Detectors whose map must light up inside the defect (random CNN weights need not).
MAPPED = ["variation", "nearest", "nearest-small", "ae-l2"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny networks: thread synchronisation costs more than it saves on a busy 2-core
    machine (the AE fixture takes 1.5 s with one thread, over a minute with two)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def parts():
    X, y, masks = make_parts(N_TRAIN + 6, n_anomalies=6, size=(32, 32), defect="blob",
                             random_state=0, return_masks=True)
    return X, y, masks


@pytest.fixture(scope="module")
def fitted(parts):
    X = parts[0]
    return {name: make().fit(X[:N_TRAIN]) for name, make in FAST.items()}


@pytest.fixture(scope="module")
def pretrained_patchcore():
    X, y, masks = make_parts(18, n_anomalies=6, size=(64, 64), random_state=1,
                             return_masks=True)
    det = PatchCoreDetector(device="cpu", random_state=0).fit(X[:12])
    return det, X[12:], y[12:], masks[12:]


@pytest.mark.parametrize("name", list(FAST))
def test_pasted_defect_scored_worse_than_clean(name, fitted, parts):
    X, y, _ = parts
    scores = fitted[name].score_samples(X[N_TRAIN:])
    # y = 1 (defective) must get the lower scores: AUROC of -score_samples.
    assert roc_auc_score(y[N_TRAIN:], -scores) >= 0.9


@pytest.mark.parametrize("name", list(FAST))
def test_sign_conventions(name, fitted, parts):
    det, X = fitted[name], parts[0]
    scores = det.score_samples(X)
    np.testing.assert_allclose(det.decision_function(X), scores - det.offset_)
    labels = det.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(labels == -1, det.decision_function(X) < 0)
    assert det.negative_outlier_score_.shape == (N_TRAIN,)


@pytest.mark.parametrize("name", list(FAST))
def test_joblib_round_trip_identical(name, fitted, parts):
    det, X = fitted[name], parts[0][N_TRAIN:]
    buffer = io.BytesIO()
    joblib.dump(det, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    np.testing.assert_array_equal(loaded.anomaly_map(X), det.anomaly_map(X))


@pytest.mark.parametrize("name", list(FAST))
def test_skops_round_trip_identical(name, fitted, parts, tmp_path):
    pytest.importorskip("skops")
    from skcpcae.persistence import load, save

    det, X = fitted[name], parts[0][N_TRAIN:]
    path = save(det, tmp_path / "model.skops")
    loaded = load(path)
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
    np.testing.assert_array_equal(loaded.anomaly_map(X), det.anomaly_map(X))


@pytest.mark.parametrize("name", list(FAST))
def test_anomaly_map_shape_dtype_and_layout(name, fitted, parts):
    det, X = fitted[name], parts[0]
    maps = det.anomaly_map(X[N_TRAIN:])
    assert maps.shape == (12, 32, 32) and maps.dtype == np.float32
    assert np.all(np.isfinite(maps)) and maps.min() >= 0
    with pytest.raises(ValueError, match="fitted on images of shape"):
        det.anomaly_map(X[:2, :16])


@pytest.mark.parametrize("name", MAPPED)
def test_anomaly_map_higher_inside_defect(name, fitted, parts):
    X, _, masks = parts
    maps = fitted[name].anomaly_map(X[N_TRAIN:])
    for m, mask in zip(maps, masks[N_TRAIN:], strict=True):
        if mask.any():
            assert m[mask].mean() > 2 * m[~mask].mean()


@pytest.mark.parametrize("make", [VariationDetector, PatchCoreDetector])
def test_not_fitted_raises(make):
    with pytest.raises(NotFittedError):
        make().anomaly_map(np.zeros((2, 8, 8)))


def test_tables_give_tables(parts):
    X = parts[0][:N_TRAIN, 0, :]  # rows of pixels: a (n, n_features) table
    for det in (VariationDetector(), NearestImageDetector(),
                PatchCoreDetector(weights=None, device="cpu", random_state=0)):
        det.fit(X)
        assert det.anomaly_map(X).shape == X.shape
        assert det.score_samples(X).shape == (N_TRAIN,)


# --- Variation ----------------------------------------------------------------------------


def test_variation_loo_scores_match_refits(parts):
    X = parts[0][:8]
    det = VariationDetector(eps=0.05).fit(X)
    for i in (0, 5):
        rest = VariationDetector(eps=0.05).fit(np.delete(X, i, axis=0))
        np.testing.assert_allclose(det.negative_outlier_score_[i],
                                   rest.score_samples(X[i : i + 1])[0], rtol=1e-4)


def test_variation_map_is_squared_zscores_summed_over_channels():
    X, _ = make_parts(10, size=(16, 16), color=True, random_state=3)
    det = VariationDetector(eps=0.1).fit(X[:8])
    z2 = ((X[8:] - X[:8].mean(0)) / (X[:8].std(0) + 0.1)) ** 2
    np.testing.assert_allclose(det.anomaly_map(X[8:]), z2.sum(-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(-det.score_samples(X[8:]), z2.sum((1, 2, 3)), rtol=1e-4)


@settings(max_examples=25, deadline=None)
@given(contamination=st.floats(0.05, 0.5))
def test_contamination_float_sets_quantile_offset(contamination):
    X, _ = make_parts(12, size=(8, 8), random_state=4)
    det = VariationDetector(contamination=contamination).fit(X)
    assert det.offset_ == pytest.approx(
        np.percentile(det.negative_outlier_score_, 100 * contamination))
    np.testing.assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)


def test_auto_contamination_is_tukey_fence(fitted):
    det = fitted["variation"]
    q1, q3 = np.percentile(-det.negative_outlier_score_, [25, 75])
    assert det.offset_ == pytest.approx(-(q3 + 1.5 * (q3 - q1)))


# --- NearestImage -------------------------------------------------------------------------


def test_nearest_scores_are_squared_distance_to_nearest_other_image(parts):
    X = parts[0]
    det = NearestImageDetector().fit(X[:N_TRAIN])
    flat = X.reshape(len(X), -1).astype(np.float64)
    d2 = ((flat[:, None] - flat[None, :N_TRAIN]) ** 2).sum(-1)
    np.testing.assert_allclose(-det.score_samples(X[N_TRAIN:]), d2[N_TRAIN:].min(1), rtol=1e-4)
    loo = np.where(np.eye(N_TRAIN, dtype=bool), np.inf, d2[:N_TRAIN])
    np.testing.assert_allclose(-det.negative_outlier_score_, loo.min(1), rtol=1e-4)
    nearest = X[d2[N_TRAIN:].argmin(1)]
    np.testing.assert_allclose(det.anomaly_map(X[N_TRAIN:]), (X[N_TRAIN:] - nearest) ** 2,
                               atol=1e-6)


# --- AE (L2) ------------------------------------------------------------------------------


def test_ae_l2_squares_absolute_residuals(parts):
    X = parts[0]
    sq = AEL2Detector(_tiny_ae("squared", 2), random_state=0).fit(X[:N_TRAIN])
    ab = AEL2Detector(_tiny_ae("absolute", 2), random_state=0).fit(X[:N_TRAIN])
    np.testing.assert_allclose(ab.score_samples(X), sq.score_samples(X), rtol=1e-5)
    maps = sq.anomaly_map(X[:3])
    recon = sq.autoencoder_.reconstruct(X[:3])
    np.testing.assert_allclose(maps, (X[:3] - recon) ** 2, atol=1e-6)
    np.testing.assert_allclose(-sq.score_samples(X[:3]), maps.sum((1, 2)), rtol=1e-5)


def test_ae_l2_default_autoencoder_and_cross_fitted_training_scores(parts):
    X = parts[0][:8]
    det = AEL2Detector()
    assert det.autoencoder is None
    ae = _tiny_ae(max_epochs=1).set_params(cv=2)
    det = AEL2Detector(ae, random_state=0).fit(X)
    assert det.autoencoder_ is not ae and ae.random_state is None
    assert det.autoencoder_.random_state == 0
    # cv=2: the training scores come from out-of-fold residuals, not from autoencoder_.
    assert not np.allclose(det.negative_outlier_score_, det.score_samples(X))


# --- PatchCore ----------------------------------------------------------------------------


def test_patchcore_pretrained_flags_defects_and_maps_them(pretrained_patchcore):
    det, X, y, masks = pretrained_patchcore
    scores = det.score_samples(X)
    assert scores[y == 1].max() < scores[y == 0].min()
    maps = det.anomaly_map(X)
    assert maps.shape == (12, 64, 64)
    for m, mask in zip(maps[y == 1], masks[y == 1], strict=True):
        # Distances are never zero off the memory bank: rank pixels instead of a ratio.
        assert roc_auc_score(mask.ravel(), m.ravel()) > 0.9
        assert m[mask].mean() > np.percentile(m[~mask], 95)
    assert det.memory_bank_.shape == (round(0.1 * 12 * 8 * 8), 40 + 112)


def test_patchcore_pretrained_pickles_folded_weights_as_numpy(pretrained_patchcore):
    det, X = pretrained_patchcore[:2]
    state = det.__getstate__()
    assert "backbone_" not in state and "backbone_" in det.__dict__
    assert all(isinstance(v, np.ndarray) for v in state["_backbone_weights"].values())
    assert state["_backbone_spec"][2]  # batch norms folded
    loaded = joblib.load(io.BytesIO(_dumps(det)))
    np.testing.assert_array_equal(loaded.score_samples(X[:3]), det.score_samples(X[:3]))


def _dumps(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def test_patchcore_loo_training_scores_match_refit(parts):
    X = parts[0][:6]
    params = dict(weights=None, coreset=None, device="cpu", random_state=0)
    det = PatchCoreDetector(**params).fit(X)
    rest = PatchCoreDetector(**params).fit(X[1:])
    np.testing.assert_allclose(det.negative_outlier_score_[0], rest.score_samples(X[:1])[0],
                               rtol=1e-4)


@pytest.mark.parametrize("kw", [
    {"coreset": "random"}, {"coreset": "greedy", "n_components": 16, "n_neighbors": 3},
])
def test_patchcore_options_reproducible(kw, parts):
    X = parts[0]
    make = lambda: PatchCoreDetector(weights=None, device="cpu", random_state=1,  # noqa: E731
                                     input_size=48, **kw)
    a, b = make().fit(X[:N_TRAIN]), make().fit(X[:N_TRAIN])
    np.testing.assert_array_equal(a.memory_bank_, b.memory_bank_)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.feature_shape_ == (6, 6)
    assert a.anomaly_map(X[:2]).shape == (2, 32, 32)
    assert clone(a).get_params() == a.get_params()


def test_patchcore_color_images():
    X, _ = make_parts(8, size=(32, 32), color=True, random_state=2)
    det = PatchCoreDetector(weights=None, device="cpu", random_state=0).fit(X)
    assert det.anomaly_map(X[:2]).shape == (2, 32, 32)
    with pytest.raises(ValueError, match="channel"):
        det.fit(np.concatenate([X, X[..., :1]], axis=-1))


def test_patchcore_layers_is_a_deprecated_name_of_stages():
    X, _ = make_parts(4, size=(32, 32), random_state=0)
    params = dict(weights=None, device="cpu", batch_size=64, random_state=0)
    old = PatchCoreDetector(layers=(1, 2), **params)
    assert clone(old).get_params()["layers"] == (1, 2)  # get_params / clone keep it
    match = r"\(layers=\.\.\.\) is deprecated.*use stages"
    with pytest.warns(FutureWarning, match=match) as record:
        old.fit(X)
    assert record[0].filename == __file__
    new = PatchCoreDetector(stages=(1, 2), **params).fit(X)
    np.testing.assert_allclose(old.score_samples(X), new.score_samples(X), rtol=1e-5)
    with pytest.raises(ValueError, match="both layers"):
        PatchCoreDetector(layers=(1, 2), stages=(1, 3), **params).fit(X)


def test_nearest_image_size_is_a_deprecated_name_of_input_size():
    X, _ = make_parts(6, size=(32, 32), random_state=0)
    old = NearestImageDetector(image_size=16)
    assert clone(old).get_params()["image_size"] == 16
    with pytest.warns(FutureWarning, match=r"\(image_size=\.\.\.\) is deprecated.*input_size") \
            as record:
        old.fit(X)
    assert record[0].filename == __file__
    new = NearestImageDetector(input_size=16).fit(X)
    np.testing.assert_array_equal(old.score_samples(X), new.score_samples(X))
    with pytest.raises(ValueError, match="both image_size"):
        NearestImageDetector(image_size=16, input_size=8).fit(X)
    state = new.__getstate__()
    state["image_size"] = state.pop("input_size")  # a model file from before the rename
    loaded = NearestImageDetector.__new__(NearestImageDetector)
    loaded.__setstate__(state)
    assert loaded.get_params()["input_size"] == 16
    np.testing.assert_array_equal(loaded.score_samples(X), new.score_samples(X))
