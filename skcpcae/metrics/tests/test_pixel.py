"""Pixel metrics against brute-force references on small cases, and their speed."""

import time

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import auc, roc_auc_score

from skcpcae.metrics import aupro, pixel_auroc, pro_curve


def _brute_curve(masks, maps):
    """FPR and PRO at every distinct value, each computed from scratch."""
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = ~masks
    fpr, pro = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fpr.append(above[normal].mean())
        pro.append(np.mean([above[i][r].mean() for i, r in regions]))
    return np.array(fpr), np.array(pro)


def _case(seed, n=3, shape=(9, 11), levels=None):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n,) + shape, bool)
    for i in range(n - 1):  # the last image is defect-free
        for _ in range(rng.integers(1, 3)):
            r, c = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
            masks[i, r:r + rng.integers(1, 4), c:c + rng.integers(1, 4)] = True
    maps = rng.random((n,) + shape) + 0.7 * masks
    if levels:  # ties
        maps = np.round(maps * levels) / levels
    return masks, maps


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("levels", [None, 5])
def test_pro_curve_matches_brute_force(seed, levels):
    masks, maps = _case(seed, levels=levels)
    fpr, pro, thresholds = pro_curve(masks, maps)
    bf_fpr, bf_pro = _brute_curve(masks, maps)
    np.testing.assert_allclose(fpr, bf_fpr, atol=1e-12)
    np.testing.assert_allclose(pro, bf_pro, atol=1e-12)
    assert np.all(np.diff(thresholds) < 0) and fpr[-1] == 1.0 and pro[-1] == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_float32_maps_take_the_fast_path_with_the_same_result(seed):
    masks, maps = _case(seed, levels=None if seed % 2 else 6)
    maps = (maps - 0.8).astype(np.float32)  # negative values and zeros too
    maps[0, 0, :3] = [0.0, -0.0, 0.0]
    fpr, pro, thresholds = pro_curve(masks, maps)
    bf_fpr, bf_pro = _brute_curve(masks, maps.astype(np.float64))
    np.testing.assert_allclose(fpr, bf_fpr, atol=1e-12)
    np.testing.assert_allclose(pro, bf_pro, atol=1e-12)
    np.testing.assert_array_equal(thresholds, np.unique(maps)[::-1])
    assert pixel_auroc(masks, maps) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_pixel_auroc_equals_sklearn_with_ties(seed):
    masks, maps = _case(seed, levels=None if seed % 2 else 4)
    assert pixel_auroc(masks, maps) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_fpr", [0.3, 0.05, 1.0])
def test_aupro_matches_brute_force_integration(seed, max_fpr):
    masks, maps = _case(seed, levels=None if seed % 2 else 7)
    fpr, pro = _brute_curve(masks, maps)
    # independent integration: the exact area of the linear interpolation of the curve
    xs = np.r_[fpr[fpr <= max_fpr], max_fpr]
    # the PRO at max_fpr by interpolation between the surrounding points
    j = np.searchsorted(fpr, max_fpr, side="right")
    y_at = pro[-1] if j >= len(fpr) else pro[j - 1] + (pro[j] - pro[j - 1]) * (
        max_fpr - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
    ys = np.r_[pro[fpr <= max_fpr], y_at]
    expected = auc(xs, ys) / max_fpr
    assert aupro(masks, maps, max_fpr=max_fpr) == pytest.approx(expected, abs=1e-12)


def test_aupro_by_hand():
    # two one-pixel regions; scores 0.9 (region), 0.8 (normal), 0.5 (region), 0.1 (normal):
    # the curve (0, 0) (0, .5) (.5, .5) (.5, 1) (1, 1)
    masks = np.array([[[1, 0, 0, 1]]], bool)
    maps = np.array([[[0.9, 0.8, 0.1, 0.5]]])
    fpr, pro, _ = pro_curve(masks, maps)
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0] and pro.tolist() == [0, 0.5, 0.5, 1, 1]
    assert aupro(masks, maps) == pytest.approx(0.5)
    assert aupro(masks, maps, max_fpr=1.0) == pytest.approx(0.75)


def test_aupro_counts_every_region_once_whatever_its_size():
    # one large region found, one small region missed: PRO 0.5, however large the first
    masks = np.zeros((1, 20, 20), bool)
    masks[0, 2:12, 2:12] = True  # 100 pixels
    masks[0, 16, 16] = True  # 1 pixel
    maps = np.full((1, 20, 20), 0.5)
    maps[0, 2:12, 2:12] = 1.0
    maps[0, 16, 16] = 0.0  # below every normal pixel
    assert aupro(masks, maps) == pytest.approx(0.5)
    assert pixel_auroc(masks, maps) > 0.98  # the pixel AUROC hardly sees the miss


def test_aupro_of_perfect_random_and_inverted_maps():
    masks, maps = _case(0, n=6, shape=(30, 30))
    assert aupro(masks, masks.astype(float)) == 1.0
    large = np.zeros((4, 100, 100), bool)
    large[0, 10:40, 10:40] = large[1, 50:60, :] = True
    noise = np.random.default_rng(1).random(large.shape)
    assert aupro(large, noise) == pytest.approx(0.15, abs=0.02)  # ~ max_fpr / 2
    assert aupro(masks, -masks.astype(float)) == 0.0
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))


def test_aupro_refuses_bad_input():
    masks, maps = _case(0)
    with pytest.raises(ValueError, match="shape"):
        aupro(masks, maps[:, :-1])
    with pytest.raises(ValueError, match="no"):
        aupro(np.zeros_like(masks), maps)
    with pytest.raises(ValueError, match="normal pixels"):
        aupro(np.ones_like(masks), maps)
    with pytest.raises(ValueError, match="max_fpr"):
        aupro(masks, maps, max_fpr=0)
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        aupro(masks, bad)


def test_hundred_maps_of_300_pixels_take_seconds():
    rng = np.random.default_rng(0)
    masks = np.zeros((100, 300, 300), bool)
    for i in range(50):
        r, c = rng.integers(0, 250, size=2)
        masks[i, r:r + rng.integers(5, 50), c:c + rng.integers(5, 50)] = True
    maps = (rng.random(masks.shape, dtype=np.float32) + 0.5 * masks).astype(np.float32)
    start = time.process_time()  # CPU time: a machine shared with other jobs stretches wall time
    value = aupro(masks, maps)
    auroc = pixel_auroc(masks, maps)
    elapsed = time.process_time() - start
    assert 0.5 < value < 1.0 and 0.5 < auroc < 1.0
    assert elapsed < 30  # about 6 s of CPU time for both here; generous for a slow machine
