"""Tests of AdaptiveGamma and object_mask."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skcpcae.datasets import make_parts
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.preprocessing import AdaptiveGamma, object_mask

C = 0.4


def _plate(size):
    """True plate region of make_parts (the rectangle drawn before blurring)."""
    h, w = size
    mask = np.zeros(size, bool)
    mask[h // 8 : h - h // 8, w // 8 : w - w // 8] = True
    return mask


@pytest.mark.parametrize("size", [(96, 96), (300, 300), (600, 800)])
def test_object_mask_finds_the_part_at_any_resolution(size):
    X, _ = make_parts(2, size=size, random_state=1)
    truth = _plate(size)
    for image in list(X) + [X[0] ** 3, X[0] ** 0.4]:
        mask = object_mask(image)
        assert mask.shape == size
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou > 0.8, iou


def test_object_mask_at_full_resolution():
    X, _ = make_parts(1, size=(96, 96), random_state=0)
    mask = object_mask(X[0], mask_size=None)
    truth = _plate((96, 96))
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8


def test_object_mask_of_blank_image_is_empty():
    assert not object_mask(np.full((32, 32), 0.3, np.float32)).any()
    with pytest.raises(ValueError, match="canny_thresholds"):
        object_mask(np.zeros((8, 8)), canny_thresholds=(0.3, 0.1))


def test_output_range_dtype_and_record():
    X, _ = make_parts(4, size=(64, 64), random_state=0)
    gamma = AdaptiveGamma().fit(X)
    out, info = gamma.transform_with_info(X)
    np.testing.assert_array_equal(out, gamma.transform(X))
    assert out.dtype == np.float32 and out.shape == X.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    masks = gamma.compute_masks(X)
    assert masks.shape == X.shape and masks.any(axis=(1, 2)).all()
    means = np.array([X[i][masks[i]].mean() for i in range(4)])
    np.testing.assert_allclose(info.object_intensities, means, rtol=1e-5)
    np.testing.assert_allclose(info.gammas, np.log10(C) / np.log10(means), rtol=1e-5)
    assert not info.empty_masks.any()


@settings(max_examples=25, deadline=None)
@given(
    image=arrays(np.float32, (12, 12), elements=st.floats(0, 1, width=32)),
    target=st.floats(0.05, 0.95),
)
def test_gray_output_in_range_and_monotone(image, target):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # blank / saturated examples
        out = AdaptiveGamma(target).fit_transform(image[None])[0]
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    order = np.argsort(image, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order]) >= 0)  # same pixel order as the input


def test_dark_and_bright_versions_move_towards_target():
    X, _ = make_parts(1, size=(96, 96), random_state=0)
    truth = _plate((96, 96))
    dark, bright = X[0] ** 3.0, X[0] ** 0.4
    before = [dark[truth].mean(), bright[truth].mean()]
    assert before[0] < C - 0.1 and before[1] > C + 0.1
    batch = np.stack([dark, bright])
    gamma = AdaptiveGamma(C).fit(batch)
    out = gamma.transform(batch)
    after = [out[0][truth].mean(), out[1][truth].mean()]
    for b, a in zip(before, after, strict=True):  # on the true part region
        assert abs(a - C) < abs(b - C)
    assert abs(after[0] - after[1]) < abs(before[0] - before[1]) / 5
    # on the stage's own object mask, only Jensen's gap separates the mean from C
    masks = gamma.compute_masks(batch)
    for i in range(2):
        assert abs(out[i][masks[i]].mean() - C) < 0.05


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5])
def test_blank_images_never_give_nan(value):
    blank = np.full((3, 32, 32), value, np.float32)
    gamma = AdaptiveGamma().fit(blank)
    with pytest.warns(UserWarning) as record:
        out, info = gamma.transform_with_info(blank)
    assert any("found no object" in str(w.message) for w in record)
    assert all(w.filename == __file__ for w in record)  # the warnings point at the caller
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    assert info.empty_masks.all()
    saturated = any("black or saturated" in str(w.message) for w in record)
    assert saturated == (value in (0.0, 1.0))
    if value in (0.0, 1.0):  # black / white: I_mu at 0 or 1, gamma = 1, image unchanged
        np.testing.assert_array_equal(info.gammas, 1.0)
        np.testing.assert_array_equal(out, blank)
    else:  # whole image used as the object: its mean goes to the target
        np.testing.assert_allclose(out, C, rtol=1e-5)


def test_saturated_object_warns_and_keeps_gamma_one():
    image = np.ones((32, 32), np.float32)
    image[:4] = 0.997  # a faint stripe gives edges; the object around them is saturated
    gamma = AdaptiveGamma().fit(image[None])
    with pytest.warns(UserWarning, match="black or saturated"):
        out, info = gamma.transform_with_info(image[None])
    assert info.gammas[0] == 1.0
    np.testing.assert_array_equal(out[0], image)


def test_colour_keeps_hue_and_sets_intensity():
    X, _ = make_parts(2, size=(64, 64), color=True, random_state=0)
    gamma = AdaptiveGamma().fit(X)
    out, info = gamma.transform_with_info(X)
    assert out.shape == X.shape and out.min() >= 0.0 and out.max() <= 1.0
    intensity = X.mean(axis=3)
    g = info.gammas[:, None, None]
    unclipped = (X * (intensity**g / np.maximum(intensity, 1e-12))[..., None]).max(axis=3) < 1
    lit = unclipped & (intensity > 0.05)
    np.testing.assert_allclose(out.mean(axis=3)[lit], (intensity**g)[lit], rtol=1e-4, atol=1e-6)
    # channel ratios (hue, saturation) are kept
    ratio_in = X[..., 0] / np.maximum(X[..., 2], 1e-6)
    ratio_out = out[..., 0] / np.maximum(out[..., 2], 1e-6)
    np.testing.assert_allclose(ratio_out[lit], ratio_in[lit], rtol=1e-3)


def test_value_range_and_channels_are_validated():
    X, _ = make_parts(2, size=(16, 16), random_state=0)
    with pytest.warns(UserWarning, match=r"got values in \[0.1.*, 1.6.*\].*clips them to \[0, 1\]"):
        AdaptiveGamma().fit(X * 2)
    with pytest.raises(ValueError, match="channel"):
        AdaptiveGamma().fit(np.zeros((2, 16, 16, 2)))
    with pytest.raises(ValueError, match="canny_thresholds"):
        AdaptiveGamma(canny_thresholds=(0.5,)).fit(X)
    with pytest.raises(ValueError, match="target_intensity"):
        AdaptiveGamma(1.5).fit(X)


def test_values_outside_unit_range_warn_and_are_clipped():
    # the package's one rule (docs/conventions.md): warn, never raise; gamma clips first
    X, _ = make_parts(3, size=(24, 24), random_state=0)
    gamma = AdaptiveGamma().fit(X)
    wild = X * 3 - 1
    with pytest.warns(UserWarning, match=r"AdaptiveGamma expects pixel values in \[0, 1\]"):
        out = gamma.transform(wild)
    np.testing.assert_array_equal(out, gamma.transform(np.clip(wild, 0, 1)))
    assert 0 <= out.min() and out.max() <= 1


def test_estimator_contract_on_unit_images(tmp_path):
    """What scikit-learn's common checks test, on images in [0, 1] (they send other values)."""
    X, _ = make_parts(6, size=(24, 24), random_state=0)
    gamma = AdaptiveGamma()
    with pytest.raises(NotFittedError):
        gamma.transform(X)
    assert gamma.fit(X) is gamma
    ref = gamma.transform(X)
    # idempotent fit, stateless: fitting on other images changes nothing
    np.testing.assert_array_equal(AdaptiveGamma().fit(X[:2]).transform(X), ref)
    np.testing.assert_array_equal(gamma.fit_transform(X), ref)
    # sample order and subset invariance
    perm = np.random.default_rng(0).permutation(6)
    np.testing.assert_array_equal(gamma.transform(X[perm]), ref[perm])
    np.testing.assert_array_equal(gamma.transform(X[2:4]), ref[2:4])
    # dtypes, non-array and read-only / Fortran-ordered input
    np.testing.assert_allclose(gamma.transform(X.astype(np.float64)), ref)
    u8 = (X * 255).round().astype(np.uint8)
    assert gamma.transform(u8).dtype == np.float32
    np.testing.assert_array_equal(gamma.transform(list(X)), ref)
    readonly = X.copy()
    readonly.setflags(write=False)
    np.testing.assert_array_equal(gamma.transform(readonly), ref)
    np.testing.assert_array_equal(gamma.transform(np.asfortranarray(X)), ref)
    # tables in, tables out; wrong sizes and 1-D input refused
    table = X.reshape(6, -1)
    flat = AdaptiveGamma().fit(table)
    assert flat.n_features_in_ == 24 * 24 and flat.transform(table).shape == table.shape
    with pytest.raises(ValueError):
        gamma.transform(X[:, :12, :12])
    with pytest.raises(ValueError):
        gamma.transform(X[0, 0])
    # params untouched by fit, clone, pickle / joblib round trips
    assert gamma.get_params() == AdaptiveGamma().get_params()
    assert not hasattr(clone(gamma), "image_shape_")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(gamma)).transform(X), ref)
    joblib.dump(gamma, tmp_path / "gamma.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "gamma.joblib").transform(X), ref)


def _flatten(X):
    return X.reshape(len(X), -1)


def test_pipeline_and_gridsearch():
    X, _ = make_parts(8, size=(24, 24), random_state=0)
    pipe = make_pipeline(
        AdaptiveGamma(), FunctionTransformer(_flatten), KNNAnomalyScorer(n_neighbors=2)
    )
    grid = GridSearchCV(
        pipe,
        {"adaptivegamma__target_intensity": [0.3, 0.5]},
        scoring=lambda est, X, y=None: float(np.mean(est.score_samples(X))),
        cv=2,
    ).fit(X)
    assert grid.best_params_["adaptivegamma__target_intensity"] in (0.3, 0.5)
    assert np.isfinite(grid.best_estimator_.score_samples(X)).all()


def test_transform_leaves_the_estimator_unchanged():
    X, _ = make_parts(3, size=(32, 32), random_state=0)
    gamma = AdaptiveGamma().fit(X)
    before = dict(vars(gamma))
    gamma.transform(X)
    gamma.transform_with_info(X)
    assert vars(gamma).keys() == before.keys()
    for name in ("last_gammas_", "last_object_intensities_", "last_empty_masks_"):
        assert not hasattr(gamma, name)
        with pytest.raises(AttributeError, match="transform_with_info"):
            getattr(gamma, name)
    with pytest.warns(UserWarning, match="found no object") as record:
        AdaptiveGamma().fit(X).transform(np.full((1, 32, 32), 0.5, np.float32))
    assert record[0].filename == __file__
