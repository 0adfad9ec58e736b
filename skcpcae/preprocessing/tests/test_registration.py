"""Tests of ECCRegistrar: recovery of known motions, failure policies, sklearn integration."""

import importlib.util
import os
import warnings

import cv2
import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skcpcae.datasets import make_parts, rigid_motion
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar

GREY = 1.0 / 255.0
# Tolerances stated in the issue: after registration the mean absolute difference to the
# untouched image, inside the valid region, is at most 4 grey levels; the euclidean warp is
# within 0.5 px (at the corners and the centre of the image) and 0.2 degree of the truth.
MAD_TOL = 4 * GREY
PX_TOL = 0.5
DEG_TOL = 0.2


def _random_motions(rng, size, n):
    """n rigid motions: rotation in [-5, 5] degrees, shift up to 10% of the size."""
    h, w = size
    return [(rng.uniform(-5, 5), rng.uniform(-0.1, 0.1, 2) * np.array([w, h])) for _ in range(n)]


def _warp_error_px(estimated, truth, size):
    """Largest displacement (px) between two warps over the image corners and centre."""
    h, w = size
    pts = np.array(
        [[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1], [(w - 1) / 2, (h - 1) / 2, 1]]
    ).T
    return float(np.linalg.norm((estimated[:2] - truth[:2]) @ pts, axis=0).max())


def _angle_deg(warp):
    """Rotation angle of a rigid warp in rigid_motion's convention (counter-clockwise)."""
    return float(np.degrees(np.arctan2(-warp[1, 0], warp[0, 0])))


def _check_recovered(reg, moved_batch, motions, reference):
    out, info = reg.transform_with_info(moved_batch)
    np.testing.assert_array_equal(out, reg.transform(moved_batch))
    valid = reg.valid_masks(info.warps)
    assert not info.failed.any()
    size = reference.shape[:2]
    for i, (angle, M) in enumerate(motions):
        assert _warp_error_px(info.warps[i], M, size) <= PX_TOL, i
        assert abs(_angle_deg(info.warps[i]) - angle) <= DEG_TOL, i
        mad = np.abs(out[i] - reference)[valid[i]].mean()
        assert mad <= MAD_TOL, (i, mad * 255)
        assert valid[i].mean() > 0.5
    return out


def test_recovers_random_rigid_motions_synthetic_128():
    rng = np.random.default_rng(0)
    X, _ = make_parts(3, size=(128, 128), random_state=0)
    ref = X[0]
    moved, motions = [], []
    for angle, shift in _random_motions(rng, (128, 128), 10):
        m, M = rigid_motion(ref, angle, shift)
        moved.append(m)
        motions.append((angle, M))
    reg = ECCRegistrar(reference=ref).fit(X)
    _check_recovered(reg, np.stack(moved), motions, ref)


def test_recovers_random_rigid_motions_synthetic_300():
    rng = np.random.default_rng(1)
    X, _ = make_parts(2, size=(300, 300), random_state=1)
    ref = X[0]
    moved, motions = [], []
    for angle, shift in _random_motions(rng, (300, 300), 4):
        m, M = rigid_motion(ref, angle, shift)
        moved.append(m)
        motions.append((angle, M))
    reg = ECCRegistrar(reference=ref).fit(X)
    _check_recovered(reg, np.stack(moved), motions, ref)


def _elpv_cells(indices):
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None:
        pytest.skip("elpv-dataset is not installed (pip install skcpcae[elpv])")
    folder = os.path.join(os.path.dirname(spec.origin), "data", "images")
    cells = []
    for i in indices:
        path = os.path.join(folder, f"cell{i:04d}.png")
        if not os.path.exists(path):
            pytest.skip(f"ELPV image {path} not found")
        cells.append(cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0)
    return cells


@pytest.mark.parametrize("index", [10, 200, 1000, 1500, 2000])
def test_recovers_random_rigid_motions_elpv_300(index):
    (cell,) = _elpv_cells([index])
    assert cell.shape == (300, 300)
    rng = np.random.default_rng(index)
    moved, motions = [], []
    for angle, shift in _random_motions(rng, (300, 300), 3):
        m, M = rigid_motion(cell, angle, shift)
        moved.append(m)
        motions.append((angle, M))
    reg = ECCRegistrar(reference=cell).fit(cell[None])
    _check_recovered(reg, np.stack(moved), motions, cell)


def test_recovers_motion_of_colour_image_per_channel():
    X, _ = make_parts(2, size=(96, 96), color=True, random_state=0)
    ref = X[0]
    moved, M = rigid_motion(ref, 3.0, (5.0, -7.0))
    assert moved.shape == (96, 96, 3)
    reg = ECCRegistrar(reference=ref).fit(X)
    out, info = reg.transform_with_info(moved[None])
    assert out.shape == (1, 96, 96, 3)
    assert _warp_error_px(info.warps[0], M, (96, 96)) <= PX_TOL
    valid = reg.valid_masks(info.warps)[0]
    for c in range(3):
        assert np.abs(out[0, ..., c] - ref[..., c])[valid].mean() <= MAD_TOL


@settings(max_examples=25, deadline=None)
@given(
    dx=st.floats(-6, 6, allow_nan=False),
    dy=st.floats(-6, 6, allow_nan=False),
)
def test_translation_recovers_small_shifts(dx, dy):
    X, _ = make_parts(1, size=(64, 64), random_state=0)
    moved, M = rigid_motion(X[0], 0.0, (dx, dy))
    reg = ECCRegistrar("translation", reference=X[0]).fit(X)
    info = reg.transform_with_info(moved[None])[1]
    assert not info.failed[0]
    np.testing.assert_allclose(info.warps[0, :2, :2], np.eye(2))
    np.testing.assert_allclose(info.warps[0, :2, 2], [dx, dy], atol=0.1)


@pytest.mark.parametrize("motion", ["affine", "homography"])
def test_affine_and_homography_recover_rigid_motion(motion):
    X, _ = make_parts(1, size=(96, 96), random_state=2)
    moved, M = rigid_motion(X[0], -2.0, (4.0, 3.0))
    reg = ECCRegistrar(motion, reference=X[0]).fit(X)
    info = reg.transform_with_info(moved[None])[1]
    assert not info.failed[0]
    warp = info.warps[0]
    assert _warp_error_px(warp / warp[2, 2], M, (96, 96)) <= PX_TOL


def test_default_reference_is_closest_to_median():
    X, _ = make_parts(1, size=(64, 64), random_state=0)
    shifts = [-6.0, -3.0, 0.0, 3.0, 6.0]
    batch = np.stack([rigid_motion(X[0], 0.0, (s, 0.0))[0] for s in shifts])
    order = [4, 0, 2, 1, 3]  # the unshifted image is at position 2 of the shuffled batch
    reg = ECCRegistrar().fit(batch[order])
    assert reg.reference_index_ == 2
    np.testing.assert_array_equal(reg.reference_, batch[2])
    given_ref = ECCRegistrar(reference=X[0]).fit(batch)
    assert given_ref.reference_index_ is None


def test_mask_ignores_a_static_fixture():
    X, _ = make_parts(1, size=(128, 128), random_state=0)

    def with_fixture(img):
        img = img.copy()
        img[:, :20] = 0.9
        img[:, -20:] = 0.9
        return img

    ref = with_fixture(X[0])
    moved, M = rigid_motion(X[0], 3.0, (10.0, 10.0))
    moved = with_fixture(moved)
    mask = np.ones((128, 128), bool)
    mask[:, :24] = mask[:, -24:] = False
    plain = ECCRegistrar(reference=ref).fit(ref[None])
    plain_warps = plain.transform_with_info(moved[None])[1].warps
    masked = ECCRegistrar(reference=ref, mask=mask).fit(ref[None])
    masked_warps = masked.transform_with_info(moved[None])[1].warps
    assert _warp_error_px(masked_warps[0], M, (128, 128)) <= PX_TOL
    # without the mask the static fixture pulls the warp away from the part's motion
    assert _warp_error_px(plain_warps[0], M, (128, 128)) > 1.0


def test_mask_and_reference_shapes_are_validated():
    X, _ = make_parts(2, size=(32, 32), random_state=0)
    with pytest.raises(ValueError, match="mask must have shape"):
        ECCRegistrar(mask=np.ones((16, 16))).fit(X)
    with pytest.raises(ValueError, match="selects no pixel"):
        ECCRegistrar(mask=np.zeros((32, 32))).fit(X)
    with pytest.raises(ValueError, match="reference must be"):
        ECCRegistrar(reference=np.zeros((16, 16))).fit(X)
    with pytest.raises(ValueError, match="odd"):
        ECCRegistrar(blur_size=4).fit(X)


def test_border_modes_and_valid_masks():
    X, _ = make_parts(1, size=(64, 64), random_state=0)
    moved, _ = rigid_motion(X[0], 0.0, (8.0, 0.0))
    outs = {}
    for mode in ["replicate", "reflect", "constant"]:
        reg = ECCRegistrar("translation", reference=X[0], border_mode=mode).fit(X)
        out, info = reg.transform_with_info(moved[None])
        outs[mode] = out[0]
        valid = reg.valid_masks(info.warps)[0]
        # the registration moves the image 8 px left: its last 8 columns come from outside
        assert not valid[:, -6:].any() and valid[:, 4:-10].all()
    # "constant" fills the columns that come entirely from outside with black ...
    assert np.all(outs["constant"][:, -6:] == 0.0)
    # ... replicate repeats the input's last column: no black band, no invented edge
    np.testing.assert_allclose(outs["replicate"][:, -6:], np.repeat(moved[:, -1:], 6, 1),
                               atol=2e-3)
    # ... reflect mirrors the image content next to the border
    assert float(outs["reflect"][:, -6:].mean()) > 0.05
    affine = reg.valid_masks(info.warps[:, :2])  # the 2x3 form gives the same masks
    np.testing.assert_array_equal(affine, reg.valid_masks(info.warps))


def _batch_with_blank():
    X, _ = make_parts(2, size=(48, 48), random_state=0)
    moved, _ = rigid_motion(X[0], 2.0, (3.0, -2.0))
    return X, np.stack([moved, np.zeros_like(moved), moved])


def test_on_failure_warn_records_identity():
    X, batch = _batch_with_blank()
    reg = ECCRegistrar(reference=X[0]).fit(X)
    with pytest.warns(ConvergenceWarning, match=r"1 of 3 image\(s\).*\b1 \("):
        out, info = reg.transform_with_info(batch)
    np.testing.assert_array_equal(info.failed, [False, True, False])
    np.testing.assert_array_equal(info.warps[1], np.eye(3))
    assert np.isnan(info.scores[1]) and info.scores[0] > 0.9
    np.testing.assert_array_equal(out[1], batch[1])  # returned unwarped
    assert not np.allclose(out[0], batch[0])


def test_on_failure_raise_names_the_image():
    X, batch = _batch_with_blank()
    reg = ECCRegistrar(reference=X[0], on_failure="raise").fit(X)
    with pytest.raises(RuntimeError, match="failed for image 1 of the batch"):
        reg.transform(batch)


def test_on_failure_identity_is_silent_and_recorded():
    X, batch = _batch_with_blank()
    reg = ECCRegistrar(reference=X[0], on_failure="identity").fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, info = reg.transform_with_info(batch)
    np.testing.assert_array_equal(info.failed, [False, True, False])
    np.testing.assert_array_equal(out[1], batch[1])


def test_min_score_turns_poor_matches_into_failures():
    X, _ = make_parts(1, size=(48, 48), random_state=0)
    noise = np.random.default_rng(0).uniform(size=(1, 48, 48)).astype(np.float32)
    reg = ECCRegistrar(reference=X[0], min_score=0.9, on_failure="identity").fit(X)
    info = reg.transform_with_info(np.concatenate([X[:1], noise]))[1]
    np.testing.assert_array_equal(info.failed, [False, True])
    assert info.scores[1] < 0.9  # the poor score is kept for inspection


def test_tables_and_tiny_images_fall_back_to_identity():
    X = np.random.default_rng(0).uniform(size=(5, 7)).astype(np.float32)
    reg = ECCRegistrar().fit(X)
    with pytest.warns(ConvergenceWarning, match="too small"):
        out, info = reg.transform_with_info(X)
    assert out.shape == (5, 7) and out.dtype == np.float32
    np.testing.assert_array_equal(out, X)
    assert info.failed.all()


def test_max_size_and_pyramid_keep_accuracy_on_a_large_image():
    X, _ = make_parts(1, size=(240, 320), random_state=3)
    moved, M = rigid_motion(X[0], 4.0, (-25.0, 18.0))
    for params in [{"max_size": 100}, {"max_size": None}, {"n_levels": 1, "max_size": None}]:
        reg = ECCRegistrar(reference=X[0], **params).fit(X)
        warps = reg.transform_with_info(moved[None])[1].warps
        assert _warp_error_px(warps[0], M, (240, 320)) <= PX_TOL, params
    assert ECCRegistrar(max_size=100).fit(X)._plan()["levels"][0] == 2  # 80x60 at most


def test_n_jobs_gives_the_same_result():
    rng = np.random.default_rng(0)
    X, _ = make_parts(1, size=(48, 48), random_state=0)
    batch = np.stack(
        [rigid_motion(X[0], a, s)[0] for a, s in _random_motions(rng, (48, 48), 20)]
    )
    one = ECCRegistrar(reference=X[0]).fit(X)
    two = ECCRegistrar(reference=X[0], n_jobs=2).fit(X)
    np.testing.assert_array_equal(one.transform(batch), two.transform(batch))
    np.testing.assert_array_equal(
        one.transform_with_info(batch)[1].warps, two.transform_with_info(batch)[1].warps
    )


def test_input_layout_and_dtype():
    X, _ = make_parts(3, size=(32, 32), random_state=0)
    reg = ECCRegistrar().fit((X * 255).astype(np.uint8))
    out = reg.transform(X.astype(np.float64))
    assert out.dtype == np.float32 and out.shape == X.shape
    with pytest.raises(ValueError, match="fitted on images of shape"):
        reg.transform(X[:, :16, :16])


def _flatten(X):
    return X.reshape(len(X), -1)


def _mean_score(estimator, X, y=None):
    return float(np.mean(estimator.score_samples(X)))


def _pipeline():
    return Pipeline(
        [
            ("eccregistrar", ECCRegistrar()),
            ("adaptivegamma", AdaptiveGamma()),
            ("flatten", FunctionTransformer(_flatten)),
            ("knn", KNNAnomalyScorer(n_neighbors=2)),
        ]
    )


def test_pipeline_clone_gridsearch_and_joblib_round_trip(tmp_path):
    X, _ = make_parts(8, size=(32, 32), max_shift=0.05, max_rotation=3, random_state=0)
    pipe = _pipeline().fit(X)
    scores = pipe.score_samples(X)
    assert scores.shape == (8,) and np.isfinite(scores).all()

    cloned = clone(pipe)
    assert not hasattr(cloned.named_steps["eccregistrar"], "reference_")
    assert cloned.get_params()["eccregistrar__motion"] == "euclidean"

    grid = GridSearchCV(
        _pipeline(),
        {"eccregistrar__motion": ["translation", "euclidean"],
         "adaptivegamma__target_intensity": [0.4]},
        scoring=_mean_score,
        cv=2,
    ).fit(X)
    assert len(grid.cv_results_["params"]) == 2
    assert grid.best_params_["eccregistrar__motion"] in ("translation", "euclidean")

    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.score_samples(X), scores)
    reg = make_pipeline(ECCRegistrar(reference=X[0])).fit(X)
    joblib.dump(reg, path)
    np.testing.assert_array_equal(joblib.load(path).transform(X), reg.transform(X))


def test_transform_leaves_the_estimator_unchanged():
    X, _ = make_parts(3, size=(32, 32), random_state=0)
    reg = ECCRegistrar().fit(X)
    before = joblib.hash(vars(reg))
    reg.transform(X)
    Xt, info = reg.transform_with_info(X)
    assert joblib.hash(vars(reg)) == before
    assert info.warps.shape == (3, 3, 3) and info.scores.shape == info.failed.shape == (3,)
    for name in ("last_warps_", "last_scores_", "last_failed_"):
        assert not hasattr(reg, name)
        with pytest.raises(AttributeError, match="transform_with_info"):
            getattr(reg, name)


def test_failure_warning_points_at_the_caller():
    X, batch = _batch_with_blank()
    reg = ECCRegistrar(reference=X[0]).fit(X)
    for method in (reg.transform, reg.transform_with_info):
        with pytest.warns(ConvergenceWarning) as record:
            method(batch)
        assert record[0].filename == __file__, method
