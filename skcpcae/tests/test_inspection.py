"""skcpcae.inspection: maps at the input size from every preset, registration undone,
occlusion maps, locations in numbers."""

import cv2
import numpy as np
import pytest
from scipy import ndimage
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

import skcpcae
from skcpcae import PRESETS, anomaly_maps, inspect_images, location_summary, make_preset
from skcpcae.baselines import VariationDetector
from skcpcae.datasets import make_parts, rigid_motion
from skcpcae.inspection import decision_threshold, defect_mask, final_estimator, map_source
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.preprocessing import ECCRegistrar

_CPCAE = {"input_size": 32, "patch_size": 16, "max_epochs": 1, "batch_size": 64}
_KNN = {"kdethresholdclassifier__cv": 3,
        "kdethresholdclassifier__estimator__knnanomalyscorer__n_neighbors": 3}
# the CPCAE presets end with the fused scorer (the embedding's k-NN and the residual peak)
_PAPER = {**{f"cpcaeresidualmap__{k}": v for k, v in _CPCAE.items()},
          "deeppoolembedder__weights": None, "kdethresholdclassifier__cv": 3,
          "kdethresholdclassifier__estimator__fusedknnscorer__n_neighbors": 3}
TINY = {
    "paper": _PAPER,
    "aligned": _PAPER,
    "deep-feature": {"deeppoolembedder__weights": None, **_KNN},
    "union": {**{f"featureunion__pipeline__cpcaeresidualmap__{k}": v
                 for k, v in _CPCAE.items()},
              "featureunion__pipeline__cpcaeresidualmap__cv": 2,
              "featureunion__deeppoolembedder__weights": None,
              "featureunion__pipeline__deeppoolembedder__weights": None, **_KNN},
    "best": {"deeppatchembedder__weights": None, "deeppatchembedder__stages": [2],
             "kdethresholdclassifier__cv": 3},
}
SOURCES = {
    "paper": "CPCAEResidualMap residual",
    "aligned": "CPCAEResidualMap residual",
    "deep-feature": "occlusion",  # no step of it makes a map
    "union": "CPCAEResidualMap residual",  # inside the FeatureUnion
    "best": "KDEThresholdClassifier.anomaly_map",  # PatchKNNScorer's, through the wrapper
}


@pytest.fixture(scope="module")
def parts():
    X, _ = make_parts(12, n_anomalies=3, size=(32, 32), random_state=0)
    return X[:12], X[12:]


def test_every_preset_has_tiny_settings():
    assert set(TINY) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_anomaly_maps_of_every_preset_are_image_sized(parts, name):
    train, test = parts
    pipe = make_preset(name, **TINY[name]).fit(train)
    assert map_source(pipe) == SOURCES[name]
    res = inspect_images(pipe, test, grid=4)
    assert res.anomaly_maps.shape == (len(test), 32, 32)
    assert res.anomaly_maps.dtype == np.float32 and np.all(np.isfinite(res.anomaly_maps))
    assert np.ptp(res.anomaly_maps) > 0
    # the same run gives the pipeline's own scores, decisions and threshold
    np.testing.assert_allclose(res.anomaly_score, -pipe.score_samples(test), rtol=1e-5)
    np.testing.assert_array_equal(res.prediction, pipe.predict(test))
    assert res.threshold == pytest.approx(pipe[-1].threshold_)
    np.testing.assert_array_equal(anomaly_maps(pipe, test, grid=4), res.anomaly_maps)


def test_union_map_is_the_residual_of_its_branch(parts):
    train, test = parts
    pipe = make_preset("union", **TINY["union"]).fit(train)
    residual = pipe.named_steps["featureunion"].transformer_list[1][1][0].transform(test)
    np.testing.assert_allclose(anomaly_maps(pipe, test), residual, rtol=1e-6)


def test_patch_map_threshold_is_the_image_threshold_without_a_global_score(parts):
    # the score is the mean of the worst patch distances: the map is in the score's units
    train, test = parts
    pipe = make_preset("best", global_weight=0.0, **TINY["best"]).fit(train)
    res = inspect_images(pipe, test)
    assert res.map_threshold == res.threshold


def test_best_preset_map_threshold_is_the_patch_score_that_reaches_the_threshold(parts):
    # fused with a global score: the patch score at which a part of average global score
    # reaches the image threshold, so a map is cut where its worst patches make it defective
    train, test = parts
    pipe = make_preset("best", **TINY["best"]).fit(train)
    res = inspect_images(pipe, test)
    scorer = pipe[-1].estimator_
    w = scorer.global_weight
    assert 0 < w < 1
    expected = scorer.score_center_[0] + scorer.score_scale_[0] * res.threshold / (1 - w)
    assert res.map_threshold == pytest.approx(expected)
    # in patch-distance units: a part whose top-k patch score equals it, with an average
    # global score, lands exactly on the image threshold
    z_patch = (res.map_threshold - scorer.score_center_[0]) / scorer.score_scale_[0]
    assert (1 - w) * z_patch + w * 0.0 == pytest.approx(res.threshold)
    assert scorer.map_threshold(res.threshold) == res.map_threshold
    assert clone(scorer).set_params(global_weight=1.0).fit(
        pipe[0].transform(train)).map_threshold(res.threshold) is None
    grid = pipe[-1].anomaly_map(pipe[:-1].transform(test))
    assert grid.shape[1:] != (32, 32)  # a patch grid, upsampled
    np.testing.assert_allclose(res.anomaly_maps.max(axis=(1, 2)), grid.max(axis=(1, 2)),
                               rtol=0.05)


def _moved_defect(shift=(5.0, -4.0)):
    X, y, masks = make_parts(14, n_anomalies=1, defect="blob", size=(48, 48),
                             random_state=3, return_masks=True)
    moved, M = rigid_motion(X[-1], angle=0.0, shift=shift)
    moved_mask = cv2.warpAffine(masks[-1].astype(np.uint8), M, (48, 48),
                                flags=cv2.INTER_NEAREST).astype(bool)
    return X[:14], X[-1], masks[-1], moved, moved_mask


def _peak(m):
    return np.unravel_index(int(np.argmax(m)), m.shape)


def test_registration_is_undone_or_the_registered_image_returned():
    normals, original, mask, moved, moved_mask = _moved_defect()
    pipe = make_pipeline(ECCRegistrar(reference=normals[0]), VariationDetector()).fit(normals)
    maps, images = anomaly_maps(pipe, moved[None], return_images=True)
    np.testing.assert_array_equal(images[0], moved)  # over the image given ...
    near_moved = ndimage.binary_dilation(moved_mask, iterations=2)
    assert near_moved[_peak(maps[0])]  # ... and the defect is where it is in that image
    near_original = ndimage.binary_dilation(mask, iterations=2)
    assert not near_original[_peak(maps[0])]
    maps_r, registered = anomaly_maps(pipe, moved[None], frame="registered",
                                      return_images=True)
    np.testing.assert_allclose(registered, pipe[0].transform(moved[None]))
    assert near_original[_peak(maps_r[0])]
    # without the undo the map would lie over the registered image only
    np.testing.assert_allclose(maps_r, pipe[-1].anomaly_map(registered), rtol=1e-6)


def test_occlusion_maps_find_the_defect():
    normals, original, mask, _, _ = _moved_defect()
    det = VariationDetector().fit(normals)
    res = inspect_images(det, original[None], method="occlusion", grid=6)
    assert res.map_source == "occlusion"
    assert ndimage.binary_dilation(mask, iterations=8)[_peak(res.anomaly_maps[0])]


def test_maps_refused_without_images_or_with_method_model(parts):
    det = KNNAnomalyScorer(n_neighbors=2).fit(np.random.default_rng(0).random((6, 20)))
    assert map_source(det) is None
    with pytest.raises(ValueError, match="does not take images"):
        anomaly_maps(det, np.zeros((2, 20)))
    train, test = parts
    pipe = make_preset("deep-feature", **TINY["deep-feature"]).fit(train)
    assert map_source(pipe, "model") is None
    with pytest.raises(ValueError, match="method='occlusion'"):
        anomaly_maps(pipe, test, method="model")
    with pytest.raises(ValueError, match="frame must be one of"):
        anomaly_maps(pipe, test, frame="reference")
    res = inspect_images(pipe, test, maps=False)
    assert res.anomaly_maps is None and res.anomaly_score.shape == (len(test),)


def test_final_estimator_and_threshold_of_plain_detectors():
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).random((30, 3))
    forest = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(X)
    assert final_estimator(forest) is forest[-1]
    assert decision_threshold(forest) == -forest[-1].offset_
    # the threshold splits the anomaly scores as predict does
    s = -forest.score_samples(X)
    np.testing.assert_array_equal(s > decision_threshold(forest), forest.predict(X) == -1)
    assert skcpcae.inspection.decision_threshold is decision_threshold


def _brute_regions(amap, threshold):
    mask = amap > threshold
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    out = []
    for k in range(1, n + 1):
        rr, cc = np.nonzero(labels == k)
        vals = amap[rr, cc]
        j = int(np.argmax(vals))
        out.append({"row": int(rr.min()), "col": int(cc.min()),
                    "height": int(rr.max() - rr.min() + 1),
                    "width": int(cc.max() - cc.min() + 1), "area": int(len(rr)),
                    "peak": float(vals[j])})
    return sorted(out, key=lambda r: (-r["peak"], r["row"], r["col"]))


@pytest.mark.parametrize("seed", range(5))
def test_location_summary_matches_a_brute_force_count(seed):
    rng = np.random.default_rng(seed)
    amap = ndimage.gaussian_filter(rng.random((20, 27)), 1.5)
    threshold = float(np.quantile(amap, 0.85))
    s = location_summary(amap, threshold)
    r, c = np.unravel_index(np.argmax(amap), amap.shape)
    assert (s["map_max_row"], s["map_max_col"]) == (r, c) and s["map_max"] == amap.max()
    assert s["defect_area"] == int((amap > threshold).sum()) == defect_mask(amap, threshold).sum()
    assert s["defect_fraction"] == pytest.approx(s["defect_area"] / amap.size)
    expected = _brute_regions(amap, threshold)
    got = [{k: reg[k] for k in ("row", "col", "height", "width", "area", "peak")}
           for reg in s["regions"]]
    assert s["n_regions"] == len(expected) > 0 and got == expected
    for reg in s["regions"]:
        assert amap[reg["peak_row"], reg["peak_col"]] == reg["peak"]


def test_location_summary_edge_cases():
    flat = np.zeros((4, 5))
    s = location_summary(flat, 0.0)
    assert s["defect_area"] == 0 and s["n_regions"] == 0 and s["regions"] == []
    assert "defect_area" not in location_summary(flat)
    assert location_summary(np.eye(4), 0.5, max_regions=1)["n_regions"] == 1
    with pytest.raises(ValueError, match="shape"):
        location_summary(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="finite"):
        location_summary(flat, float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        location_summary(np.full((2, 2), np.nan))
