"""Tests of load_images, list_images, save_image and ImageReader."""

import os
import pathlib
import pickle

import cv2
import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from skcpcae.datasets import ImageReader, list_images, load_images, save_image
from skcpcae.datasets._io import _looks_truncated
from skcpcae.outlier import KNNAnomalyScorer


def _write(path, img, ext=None):
    """Write ``img`` (OpenCV channel order) with OpenCV, unicode-safe."""
    path = os.fspath(path)
    ok, buf = cv2.imencode(ext or os.path.splitext(path)[1], img)
    assert ok
    buf.tofile(path)
    return path


def _gray(h=8, w=8, value=None, seed=0):
    if value is not None:
        return np.full((h, w), value, np.uint8)
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _flatten(X):
    return X.reshape(len(X), -1)


# ----------------------------------------------------------------------------- listing
def test_list_images_sorted_filters_and_recurses(tmp_path):
    for name in ["b.png", "a.PNG", "c.jpg", "notes.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.bmp").write_bytes(b"x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "e.png").write_bytes(b"x")
    with pytest.warns(UserWarning, match=r"Skipped 1 file\(s\).*notes\.txt"):
        flat = list_images(tmp_path)
    assert [os.path.basename(p) for p in flat] == ["a.PNG", "b.png", "c.jpg"]
    assert all(isinstance(p, str) for p in flat)
    with pytest.warns(UserWarning):
        deep = list_images(str(tmp_path), recursive=True)
    assert [os.path.relpath(p, tmp_path) for p in deep] == [
        "a.PNG",
        "b.png",
        "c.jpg",
        os.path.join("sub", "d.bmp"),
    ]


def test_list_images_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        list_images(tmp_path / "nope")


# ----------------------------------------------------------------------------- bad inputs
def test_load_images_undecodable_file_names_it(tmp_path):
    _write(tmp_path / "a.png", _gray())
    (tmp_path / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"broken\.png"):
        load_images(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.jpg.*empty"):
        load_images(tmp_path / "empty.jpg")


def test_load_images_skips_non_image_files_with_warning(tmp_path):
    _write(tmp_path / "a.png", _gray(value=10))
    _write(tmp_path / "b.png", _gray(value=20))
    (tmp_path / "labels.csv").write_text("a,0\n")
    (tmp_path / "README").write_text("hi")
    with pytest.warns(UserWarning, match=r"Skipped 2 file\(s\)"):
        X = load_images(tmp_path)
    assert X.shape == (2, 8, 8)
    np.testing.assert_allclose(X[:, 0, 0], [10 / 255, 20 / 255], rtol=1e-6)


def test_load_images_empty_folder_raises_naming_it(tmp_path):
    folder = tmp_path / "empty_dir"
    folder.mkdir()
    with pytest.raises(ValueError, match="No image files in folder.*empty_dir"):
        load_images(folder)
    (folder / "notes.txt").write_text("x")
    with pytest.warns(UserWarning, match="Skipped 1"):
        with pytest.raises(ValueError, match="empty_dir"):
            load_images(folder)
    with pytest.raises(ValueError, match="empty list"):
        load_images([])


def test_load_images_nonexistent_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        load_images(tmp_path / "missing_dir")
    good = _write(tmp_path / "a.png", _gray())
    with pytest.raises(FileNotFoundError, match=r"ghost\.png"):
        load_images([good, str(tmp_path / "ghost.png")])


def test_load_images_mixed_sizes_without_size_raises(tmp_path):
    _write(tmp_path / "a.png", _gray(8, 8))
    _write(tmp_path / "b.png", _gray(8, 8))
    _write(tmp_path / "c.png", _gray(6, 10))
    with pytest.raises(ValueError, match=r"a\.png.*8x8.*c\.png.*6x10.*size=\(height, width\)"):
        load_images(tmp_path)
    X = load_images(tmp_path, size=(4, 5))
    assert X.shape == (3, 4, 5)


def test_load_images_rejects_bad_arguments(tmp_path):
    path = _write(tmp_path / "a.png", _gray())
    with pytest.raises(TypeError, match="numeric array"):
        load_images(np.zeros((2, 4, 4)))
    with pytest.raises(TypeError, match="list of file paths"):
        load_images([path, 3])
    with pytest.raises(ValueError, match="is a folder"):
        load_images([path, str(tmp_path)])
    with pytest.raises(ValueError, match="color"):
        load_images(path, color="cmyk")
    for bad in [(0, 4), (4,), 4, (4.0, 4), "44"]:
        with pytest.raises(ValueError, match="size"):
            load_images(path, size=bad)


def test_truncated_png_raises(tmp_path):
    full = tmp_path / "full.png"
    _write(full, _gray(32, 32))
    data = full.read_bytes()
    for cut in [len(data) // 2, 20, 4]:  # inside IDAT, inside IEND, only the IEND CRC
        p = tmp_path / f"cut{cut}.png"
        p.write_bytes(data[:-cut])
        with pytest.raises(ValueError, match=rf"cut{cut}\.png"):
            load_images(p)


def test_truncated_jpeg_raises(tmp_path):
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.dstack([xx * 4, yy * 4, (xx + yy) * 2]).astype(np.uint8)
    full = tmp_path / "full.jpg"
    _write(full, img)
    data = full.read_bytes()
    for cut in [len(data) // 2, 300, 2]:  # the last case removes only the EOI marker
        p = tmp_path / f"cut{cut}.jpg"
        p.write_bytes(data[:-cut])
        with pytest.raises(ValueError, match=rf"cut{cut}\.jpg"):
            load_images(p)
    assert load_images(full).shape == (1, 64, 64, 3)


def test_truncation_check_accepts_complete_files_and_trailers():
    """The fallback check (for OpenCV versions that decode truncated JPEGs partially)."""
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    jpg = cv2.imencode(".jpg", img)[1].ravel()
    png = cv2.imencode(".png", img)[1].ravel()
    assert not _looks_truncated(jpg)
    assert not _looks_truncated(png)
    assert _looks_truncated(jpg[: len(jpg) // 2])
    assert _looks_truncated(png[: len(png) // 2])
    # bytes appended after the end-of-image marker (some cameras do this) are fine
    trailer = np.concatenate([jpg, np.full(200, 7, np.uint8)])
    assert not _looks_truncated(trailer)


# ----------------------------------------------------------------------------- conversions
def test_16bit_png_scaled_to_unit_range(tmp_path):
    img = np.array([[0, 1, 32768], [65535, 65535, 0]], np.uint16)
    path = _write(tmp_path / "deep.png", img)
    X = load_images(path)
    assert X.dtype == np.float32 and X.shape == (1, 2, 3)
    assert X[0, 1, 0] == 1.0 and X[0, 0, 0] == 0.0
    np.testing.assert_allclose(X[0], img / 65535.0, rtol=1e-6)
    rgb16 = np.dstack([img, img // 2, img // 4])
    X = load_images(_write(tmp_path / "deep_rgb.png", rgb16))
    np.testing.assert_allclose(X[0, ..., 0], (img // 4) / 65535.0, rtol=1e-6)  # BGR -> RGB


def test_rgba_png_alpha_dropped(tmp_path):
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2] = 10, 20, 30  # B, G, R
    bgra[..., 3] = 0  # fully transparent: colours are kept, not composited
    bgra[0, 0, 3] = 255
    X = load_images(_write(tmp_path / "rgba.png", bgra))
    assert X.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(X[0, 2, 2], np.array([30, 20, 10]) / 255, rtol=1e-6)
    # gray + alpha (Pillow "LA") reads as gray
    from PIL import Image

    la = np.dstack([_gray(value=100), np.full((8, 8), 50, np.uint8)])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    X = load_images(tmp_path / "la.png")
    assert X.shape == (1, 8, 8)
    np.testing.assert_allclose(X, 100 / 255, rtol=1e-6)


def test_rgb_written_by_pillow_reads_in_rgb_order(tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "pil.png")
    X = load_images(tmp_path / "pil.png")
    np.testing.assert_allclose(X[0], rgb / 255.0, rtol=1e-6)
    # a palette image is expanded
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    assert load_images(tmp_path / "pal.png").shape == (1, 5, 6, 3)


def test_unicode_file_names(tmp_path):
    folder = tmp_path / "données_图"
    folder.mkdir()
    p1 = _write(folder / "défaut_图像.png", _gray(value=51))
    _write(folder / "ok.png", _gray(value=102))
    X = load_images(folder)
    np.testing.assert_allclose(X[:, 0, 0], [0.2, 0.4], rtol=1e-6)
    assert load_images(pathlib.Path(p1)).shape == (1, 8, 8)
    assert [os.path.basename(p) for p in list_images(folder)] == ["défaut_图像.png", "ok.png"]
    (folder / "cassé_图.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cassé_图.png"):
        load_images(folder)


def test_color_auto_detection(tmp_path):
    g = _write(tmp_path / "g.png", _gray(seed=1))
    equal = _write(tmp_path / "equal.png", np.dstack([_gray(seed=2)] * 3))
    c = np.dstack([_gray(seed=3), _gray(seed=4), _gray(seed=5)])
    colour = _write(tmp_path / "colour.png", c)
    assert load_images([g, equal]).shape == (2, 8, 8)  # equal channels count as gray
    X = load_images([g, colour])
    assert X.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(X[0, ..., 0], X[0, ..., 2])  # gray repeated
    np.testing.assert_allclose(X[0, ..., 1], _gray(seed=1) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(X[1], c[..., ::-1] / 255.0, rtol=1e-6)  # BGR -> RGB
    # forced modes
    Xg = load_images([g, colour], color="gray")
    assert Xg.shape == (2, 8, 8)
    luma = cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) / 255.0
    np.testing.assert_allclose(Xg[1], luma, rtol=1e-6)
    assert load_images(g, color="rgb").shape == (1, 8, 8, 3)


def test_size_resizes_with_area_when_shrinking(tmp_path):
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    p = _write(tmp_path / "checker.png", checker)
    X = load_images(p, size=(4, 2))
    assert X.shape == (1, 4, 2)
    np.testing.assert_allclose(X, 0.5, atol=1 / 255)  # INTER_AREA averages
    big = load_images(p, size=(16, 20))
    assert big.shape == (1, 16, 20)
    assert 0 <= big.min() and big.max() <= 1


def test_float_tiff_kept_and_range_checked(tmp_path):
    ok = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    X = load_images(_write(tmp_path / "ok.tiff", ok))
    np.testing.assert_array_equal(X[0], ok)
    with pytest.raises(ValueError, match=r"bad\.tiff.*outside \[0, 1\]"):
        load_images(_write(tmp_path / "bad.tiff", ok * 4))


def test_list_order_is_kept_and_verbose_runs(tmp_path, capsys):
    paths = [_write(tmp_path / f"{i}.png", _gray(value=i * 50)) for i in range(3)]
    X = load_images([paths[2], pathlib.Path(paths[0]), paths[1]], verbose=1)
    np.testing.assert_allclose(X[:, 0, 0], [100 / 255, 0, 50 / 255], rtol=1e-6)
    X = load_images(np.array(paths))
    assert X.shape == (3, 8, 8)


# ----------------------------------------------------------------------------- save_image
def test_save_image_round_trip_and_atomic(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    out = save_image(tmp_path / "x.png", rgb)
    assert out == str(tmp_path / "x.png")
    np.testing.assert_allclose(load_images(out)[0], rgb / 255.0, rtol=1e-6)
    save_image(tmp_path / "x.png", np.full((3, 3), 2.0))  # overwrite; clipped to 1
    assert load_images(tmp_path / "x.png").min() == 1.0
    assert sorted(os.listdir(tmp_path)) == ["x.png"]  # no temporary file left behind
    mask = np.eye(4, dtype=bool)
    np.testing.assert_array_equal(load_images(save_image(tmp_path / "m.png", mask))[0], mask)
    rgba = np.zeros((4, 4, 4), np.float32)
    rgba[..., 0] = 1.0
    assert load_images(save_image(tmp_path / "a.png", rgba))[0, 0, 0].tolist() == [1, 0, 0]


def test_save_image_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        save_image(tmp_path / "x.png", np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="extension"):
        save_image(tmp_path / "noext", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        save_image(tmp_path / "x.png", np.full((4, 4), np.nan))
    with pytest.raises(FileNotFoundError):
        save_image(tmp_path / "no_dir" / "x.png", np.zeros((4, 4)))
    assert os.listdir(tmp_path) == []


@settings(max_examples=25, deadline=None)
@given(
    img=arrays(
        np.uint8,
        st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3])),
    )
)
def test_save_load_round_trip_is_exact(tmp_path_factory, img):
    folder = tmp_path_factory.mktemp("rt")
    img = img[..., 0] if img.shape[2] == 1 else img
    X = load_images(save_image(folder / "im.png", img), color="gray" if img.ndim == 2 else "rgb")
    np.testing.assert_array_equal(np.rint(X[0] * 255).astype(np.uint8), img)


# ----------------------------------------------------------------------------- ImageReader
@pytest.fixture
def gray_paths(tmp_path):
    return [_write(tmp_path / f"g{i}.png", _gray(8, 8, seed=i)) for i in range(6)]


def test_image_reader_matches_load_images(gray_paths):
    reader = ImageReader()
    Xt = reader.fit_transform(gray_paths)
    np.testing.assert_array_equal(Xt, load_images(gray_paths))
    assert reader.image_shape_ == (8, 8) and reader.color_ == "gray"
    np.testing.assert_array_equal(ImageReader().fit(gray_paths).transform(gray_paths), Xt)
    # an (n, 1) column of paths is accepted as well
    np.testing.assert_array_equal(reader.transform(np.array(gray_paths)[:, None]), Xt)


def test_image_reader_keeps_fitted_color_and_size(tmp_path, gray_paths):
    colour = _write(tmp_path / "c.png", np.dstack([_gray(seed=7), _gray(seed=8), _gray(seed=9)]))
    gray_reader = ImageReader().fit(gray_paths)
    assert gray_reader.transform([colour]).shape == (1, 8, 8)  # converted to gray
    rgb_reader = ImageReader().fit([colour])
    assert rgb_reader.color_ == "rgb" and rgb_reader.image_shape_ == (8, 8, 3)
    assert rgb_reader.transform(gray_paths).shape == (6, 8, 8, 3)  # gray repeated
    small = _write(tmp_path / "small.png", _gray(4, 6))
    with pytest.raises(ValueError, match=r"fitted on images of 8x8.*4x6.*size=\(8, 8\)"):
        gray_reader.transform([small])
    resizing = ImageReader(size=(5, 5)).fit(gray_paths)
    assert resizing.transform([small]).shape == (1, 5, 5)


def test_image_reader_refuses_arrays_and_bad_input(gray_paths):
    reader = ImageReader()
    with pytest.raises(NotFittedError):
        reader.transform(gray_paths)
    with pytest.raises(TypeError, match="Drop ImageReader"):
        reader.fit(np.zeros((4, 8, 8)))
    with pytest.raises(TypeError, match="Drop ImageReader"):
        reader.fit([np.zeros((8, 8))] * 2)
    with pytest.raises(TypeError, match="single path"):
        reader.fit(gray_paths[0])
    with pytest.raises(ValueError, match="empty"):
        reader.fit([])
    with pytest.raises(InvalidParameterError):
        ImageReader(color="cmyk").fit(gray_paths)
    with pytest.raises(ValueError, match="size"):
        ImageReader(size=(0, 3)).fit(gray_paths)
    reader.fit(gray_paths)
    with pytest.raises(TypeError, match="Drop ImageReader"):
        reader.transform(np.zeros((4, 64)))


def test_image_reader_estimator_contract(tmp_path, gray_paths):
    reader = ImageReader((4, 4), color="rgb", verbose=0)
    assert reader.get_params() == {"size": (4, 4), "color": "rgb", "verbose": 0}
    cloned = clone(reader)
    assert cloned.get_params() == reader.get_params() and cloned is not reader
    assert cloned.set_params(color="gray").color == "gray"
    reader.fit(gray_paths)
    assert not hasattr(clone(reader), "image_shape_")
    expected = reader.transform(gray_paths)
    joblib.dump(reader, tmp_path / "reader.joblib")
    loaded = joblib.load(tmp_path / "reader.joblib")
    np.testing.assert_array_equal(loaded.transform(gray_paths), expected)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(reader)).transform(gray_paths), expected
    )
    assert expected.shape == (6, 4, 4, 3)


def test_image_reader_heads_a_pipeline(tmp_path, gray_paths):
    defect = _gray(8, 8, seed=0)
    defect[2:6, 2:6] = 255
    odd = _write(tmp_path / "defect.png", defect)
    normal = [_write(tmp_path / f"n{i}.png", np.full((8, 8), 100 + i, np.uint8)) for i in range(8)]
    pipe = make_pipeline(
        ImageReader(), FunctionTransformer(_flatten), KNNAnomalyScorer(n_neighbors=2)
    )
    pipe.fit(normal)
    assert pipe.predict([normal[0], odd]).tolist() == [1, -1]
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    loaded = joblib.load(tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(
        loaded.score_samples(normal + [odd]), pipe.score_samples(normal + [odd])
    )
