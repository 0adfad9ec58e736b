"""Tests of load_folder, load_mvtec_ad and load_elpv."""

import os
import sys

import cv2
import numpy as np
import pytest

from skcpcae.datasets import load_elpv, load_folder, load_mvtec_ad, save_image


def _img(value, h=8, w=8):
    return np.full((h, w), value, np.uint8)


def _fill(folder, values, h=8, w=8, ext=".png"):
    os.makedirs(folder, exist_ok=True)
    return [
        save_image(os.path.join(folder, f"{i:03d}{ext}"), _img(v, h, w))
        for i, v in enumerate(values)
    ]


# ----------------------------------------------------------------------------- load_folder
def test_load_folder_labels_and_order(tmp_path):
    good = _fill(tmp_path / "good", [10, 20, 30])
    bad = _fill(tmp_path / "bad", [200, 210])
    X, y, paths = load_folder(tmp_path / "good", str(tmp_path / "bad"), return_paths=True)
    assert X.shape == (5, 8, 8) and X.dtype == np.float32
    assert y.tolist() == [0, 0, 0, 1, 1] and y.dtype == np.int64
    assert paths == good + bad
    np.testing.assert_allclose(X[:, 0, 0], np.array([10, 20, 30, 200, 210]) / 255, rtol=1e-6)
    X, y = load_folder(tmp_path / "good")
    assert X.shape == (3, 8, 8) and y.tolist() == [0, 0, 0]


def test_load_folder_several_folders_color_and_size(tmp_path):
    _fill(tmp_path / "g1", [1, 2], 8, 8)
    _fill(tmp_path / "g2", [3], 10, 12)
    os.makedirs(tmp_path / "bad")
    save_image(
        tmp_path / "bad" / "red.png",
        np.dstack([np.ones((8, 8)), np.zeros((8, 8)), np.zeros((8, 8))]),
    )
    with pytest.raises(ValueError, match="size="):
        load_folder([tmp_path / "g1", tmp_path / "g2"], tmp_path / "bad")
    X, y = load_folder([tmp_path / "g1", tmp_path / "g2"], [tmp_path / "bad"], size=(4, 4))
    assert X.shape == (4, 4, 4, 3)  # colour resolved over all images
    assert y.tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(X[3, 0, 0], [1, 0, 0])


def test_load_folder_errors(tmp_path):
    _fill(tmp_path / "good", [1])
    os.makedirs(tmp_path / "empty_defects")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="defect folder.*empty_defects"):
        load_folder(tmp_path / "good", tmp_path / "empty_defects")
    with pytest.raises(ValueError, match="at least one"):
        load_folder([])


# ----------------------------------------------------------------------------- MVTec
def _mvtec_tree(root, *, with_gt=True, h=12, w=16):
    cat = root / "screw"
    _fill(cat / "train" / "good", [100, 101, 102], h, w)
    _fill(cat / "test" / "good", [103, 104], h, w)
    _fill(cat / "test" / "scratch", [50], h, w)
    _fill(cat / "test" / "crack", [20, 30], h, w)
    os.makedirs(root / "bottle" / "train")  # another category
    (root / "license.txt").write_text("CC BY-NC-SA 4.0")
    if with_gt:
        for defect, n, box in [
            ("crack", 2, (slice(2, 6), slice(4, 8))),
            ("scratch", 1, (slice(0, 12), slice(0, 2))),
        ]:
            os.makedirs(cat / "ground_truth" / defect)
            for i in range(n):
                m = np.zeros((h, w), np.uint8)
                m[box] = 255
                save_image(cat / "ground_truth" / defect / f"{i:03d}_mask.png", m)
    return cat


def test_load_mvtec_ad_reads_layout(tmp_path):
    _mvtec_tree(tmp_path)
    data = load_mvtec_ad(tmp_path, "screw")
    assert data.X_train.shape == (3, 12, 16) and data.X_test.shape == (5, 12, 16)
    assert data.defect_types.tolist() == ["good", "good", "crack", "crack", "scratch"]
    assert data.y_test.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_allclose(data.X_test[:, 0, 0] * 255, [103, 104, 20, 30, 50], atol=1e-3)
    assert data.masks_test.dtype == bool and data.masks_test.shape == (5, 12, 16)
    assert data.masks_test.sum(axis=(1, 2)).tolist() == [0, 0, 16, 16, 24]
    assert data.masks_test[2, 2:6, 4:8].all()
    assert [
        os.path.basename(os.path.dirname(p)) for p in data.paths_test
    ] == data.defect_types.tolist()
    assert len(data.paths_train) == 3 and data.category == "screw"


def test_load_mvtec_ad_resizes_masks_nearest(tmp_path):
    _mvtec_tree(tmp_path)
    data = load_mvtec_ad(tmp_path, "screw", size=(6, 8), color="rgb")
    assert data.X_train.shape == (3, 6, 8, 3) and data.X_test.shape == (5, 6, 8, 3)
    assert data.masks_test.shape == (5, 6, 8) and data.masks_test.dtype == bool
    expected = np.zeros((12, 16), np.uint8)
    expected[2:6, 4:8] = 1
    small = cv2.resize(expected, (8, 6), interpolation=cv2.INTER_NEAREST).astype(bool)
    np.testing.assert_array_equal(data.masks_test[2], small)
    assert small.sum() == 4


def test_load_mvtec_ad_missing_category_lists_found(tmp_path):
    _mvtec_tree(tmp_path)
    with pytest.raises(ValueError, match=r"'carpet'.*'bottle', 'screw'"):
        load_mvtec_ad(tmp_path, "carpet")
    with pytest.raises(FileNotFoundError):
        load_mvtec_ad(tmp_path / "nowhere", "screw")
    with pytest.raises(FileNotFoundError, match="train"):
        load_mvtec_ad(tmp_path, "bottle")  # no train/good


def test_load_mvtec_ad_masks_missing_or_inconsistent(tmp_path):
    cat = _mvtec_tree(tmp_path, with_gt=False)
    assert load_mvtec_ad(tmp_path, "screw").masks_test is None  # no ground_truth folder
    os.makedirs(cat / "ground_truth" / "crack")
    save_image(cat / "ground_truth" / "crack" / "000_mask.png", np.zeros((12, 16)))
    with pytest.raises(ValueError, match=r"No mask.*001\.png.*001_mask\.png"):
        load_mvtec_ad(tmp_path, "screw")
    save_image(cat / "ground_truth" / "crack" / "001_mask.png", np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"001_mask\.png.*6x6.*12x16"):
        load_mvtec_ad(tmp_path, "screw")


# ----------------------------------------------------------------------------- ELPV
@pytest.fixture(scope="module")
def elpv_raw():
    pytest.importorskip("elpv_dataset")
    from skcpcae.datasets._elpv import _load_raw

    return _load_raw()


@pytest.mark.parametrize("cell_type", ["mono", "poly"])
@pytest.mark.parametrize("include_uncertain", [False, True])
def test_load_elpv_protocol(elpv_raw, cell_type, include_uncertain):
    images, proba, types = elpv_raw
    of_type = types == cell_type
    normal = np.flatnonzero(of_type & (proba == 0))
    data = load_elpv(cell_type, include_uncertain=include_uncertain, size=(16, 16))
    n_train = len(normal) // 2
    assert data.X_train.shape == (n_train, 16, 16) and data.X_train.dtype == np.float32
    assert data.X_test.shape == (len(data.y_test), 16, 16)
    # normals: train and test halves cover all normals of the type, without overlap
    test_normal = data.index_test[data.y_test == 0]
    assert len(np.intersect1d(data.index_train, data.index_test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([data.index_train, test_normal])), normal)
    # the split is default_rng(random_state).permutation of the normals
    perm = np.random.default_rng(0).permutation(len(normal))
    np.testing.assert_array_equal(data.index_train, normal[perm[:n_train]])
    np.testing.assert_array_equal(test_normal, normal[perm[n_train:]])
    # positives: every probability-1 cell, plus 1/3 and 2/3 with include_uncertain
    positive = data.index_test[data.y_test == 1]
    assert np.all(types[data.index_test] == cell_type)
    if include_uncertain:
        np.testing.assert_array_equal(positive, np.flatnonzero(of_type & (proba > 0)))
    else:
        np.testing.assert_array_equal(positive, np.flatnonzero(of_type & (proba == 1)))
    np.testing.assert_array_equal(data.proba_test, proba[data.index_test])
    assert np.all(data.proba_test[data.y_test == 0] == 0)
    assert np.all(data.proba_test[data.y_test == 1] > 0)
    assert data.cell_type == cell_type
    assert "CC BY-NC-SA 4.0" in data.DESCR and "Deitsch" in data.DESCR


def test_load_elpv_full_resolution_images_match_dataset(elpv_raw):
    images, _, _ = elpv_raw
    data = load_elpv("mono")
    assert data.X_train.shape == (294, 300, 300) and data.X_test.shape == (607, 300, 300)
    assert data.X_train.dtype == np.float32
    assert 0 <= data.X_test.min() and data.X_test.max() <= 1
    np.testing.assert_array_equal(data.X_train[:5], images[data.index_train[:5]] / np.float32(255))
    np.testing.assert_array_equal(data.X_test[-5:], images[data.index_test[-5:]] / np.float32(255))
    assert int(data.y_test.sum()) == 313
    # the returned arrays are copies: changing them leaves the cache intact
    data.X_train[:] = 0
    assert load_elpv("mono", size=(8, 8)).X_train.max() > 0


def test_load_elpv_deterministic_and_seeded(elpv_raw):
    a = load_elpv("poly", size=(8, 8), random_state=0)
    b = load_elpv("poly", size=(8, 8), random_state=0)
    c = load_elpv("poly", size=(8, 8), random_state=1)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.index_test, b.index_test)
    assert not np.array_equal(a.index_train, c.index_train)
    # another seed: another split of the same normals, the same positives
    norm_a = np.concatenate([a.index_train, a.index_test[a.y_test == 0]])
    norm_c = np.concatenate([c.index_train, c.index_test[c.y_test == 0]])
    np.testing.assert_array_equal(np.sort(norm_a), np.sort(norm_c))
    np.testing.assert_array_equal(a.index_test[a.y_test == 1], c.index_test[c.y_test == 1])
    assert len(a.index_train) == len(c.index_train) == 460


def test_load_elpv_cache_and_bad_arguments(elpv_raw):
    from skcpcae.datasets._elpv import _load_raw

    hits = _load_raw.cache_info().hits
    load_elpv("mono", size=(4, 4))
    assert _load_raw.cache_info().hits == hits + 1
    with pytest.raises(ValueError, match="cell_type"):
        load_elpv("cdte")
    with pytest.raises(ValueError, match="size"):
        load_elpv("mono", size=(0, 4))


def test_load_elpv_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "elpv_dataset", None)
    monkeypatch.setitem(sys.modules, "elpv_dataset.utils", None)
    with pytest.raises(ImportError, match=r'pip install "skcpcae\[elpv\]"'):
        load_elpv("mono")
