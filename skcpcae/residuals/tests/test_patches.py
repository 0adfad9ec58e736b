"""Tests of the pure patch functions."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skcpcae.residuals._patches import (
    downsize,
    extract_patches,
    patch_grid,
    reassemble_patches,
    upsize,
)


@st.composite
def _images_and_grid(draw):
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 24))
    ph = draw(st.integers(1, height))
    pw = draw(st.integers(1, width))
    square = draw(st.booleans())
    if square:
        ph = pw = min(ph, pw)
    sh = draw(st.integers(1, ph))
    sw = draw(st.integers(1, pw))
    channels = draw(st.sampled_from([None, 1, 3]))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    shape = (n, height, width) if channels is None else (n, height, width, channels)
    images = np.random.default_rng(seed).random(shape, dtype=np.float32)
    patch = ph if square else (ph, pw)
    stride = sh if (square and sh == sw) else (sh, sw)
    return images, patch, stride


@settings(max_examples=25, deadline=None)
@given(_images_and_grid())
def test_extract_then_reassemble_is_identity(case):
    images, patch, stride = case
    patches = extract_patches(images, patch, stride)
    back = reassemble_patches(patches, images.shape[1:], patch, stride)
    assert back.dtype == images.dtype
    np.testing.assert_array_equal(back, images)


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    patch=st.integers(1, 40),
    data=st.data(),
)
def test_patch_grid_covers_every_pixel_and_ends_at_the_border(height, width, patch, data):
    patch = min(patch, height, width)
    stride = data.draw(st.integers(1, patch))
    corners = patch_grid(height, width, patch, stride)
    covered = np.zeros((height, width), int)
    for top, left in corners:
        covered[top : top + patch, left : left + patch] += 1
    assert covered.min() >= 1
    assert corners[:, 0].max() == height - patch
    assert corners[:, 1].max() == width - patch
    tops = np.unique(corners[:, 0])
    assert np.all(np.diff(tops)[:-1] == stride)  # regular steps, the last one may be shorter
    assert len(corners) == len(set(map(tuple, corners)))


def test_patch_grid_is_row_major_with_half_patch_default_stride():
    corners = patch_grid(8, 12, 4)
    assert corners[:4].tolist() == [[0, 0], [0, 2], [0, 4], [0, 6]]
    assert corners[-1].tolist() == [4, 8]
    assert len(corners) == 3 * 5
    # a 128 image with 32 patches and stride 16: 7 x 7 patches
    assert len(patch_grid(128, 128, 32, 16)) == 49


def test_patch_grid_adds_a_last_row_flush_with_the_border():
    corners = patch_grid(10, 4, 4, 4)
    assert sorted(set(corners[:, 0].tolist())) == [0, 4, 6]


def test_patch_grid_rejects_a_patch_larger_than_the_image():
    with pytest.raises(ValueError, match="larger than the image"):
        patch_grid(8, 8, 9)


def test_patch_grid_rejects_a_stride_larger_than_the_patch():
    with pytest.raises(ValueError, match="must not exceed patch_size"):
        patch_grid(16, 16, 4, 5)


def test_extract_patches_shapes_and_channel_first_colour_patches():
    rng = np.random.default_rng(0)
    gray = rng.random((2, 9, 7), dtype=np.float32)
    colour = rng.random((2, 9, 7, 3), dtype=np.float32)
    pg = extract_patches(gray, 4, 2)
    pc = extract_patches(colour, 4, 2)
    n_patches = len(patch_grid(9, 7, 4, 2))
    assert pg.shape == (2, n_patches, 4, 4)
    assert pc.shape == (2, n_patches, 3, 4, 4)
    top, left = patch_grid(9, 7, 4, 2)[-1]
    np.testing.assert_array_equal(pg[1, -1], gray[1, top : top + 4, left : left + 4])
    np.testing.assert_array_equal(
        pc[1, -1], np.moveaxis(colour[1, top : top + 4, left : left + 4], -1, 0)
    )


def test_reassemble_patches_averages_overlaps():
    # 1x6 image, patches of width 4 with stride 2: corners at 0 and 2, overlap in 2..3
    patches = np.stack([np.full((1, 4), 1.0), np.full((1, 4), 3.0)])[None]
    out = reassemble_patches(patches, (1, 6), (1, 4), (1, 2))
    np.testing.assert_allclose(out[0, 0], [1, 1, 2, 2, 3, 3])


def test_reassemble_patches_rejects_a_mismatched_grid():
    patches = np.zeros((1, 3, 4, 4))
    with pytest.raises(ValueError, match="do not match the grid"):
        reassemble_patches(patches, (8, 8), 4, 2)


@pytest.mark.parametrize("channels", [None, 1, 3, 6])
def test_downsize_and_upsize_keep_layout_and_dtype(channels):
    shape = (2, 20, 30) if channels is None else (2, 20, 30, channels)
    images = np.random.default_rng(0).random(shape, dtype=np.float32)
    small = downsize(images, (10, 15))
    assert small.shape == (2, 10, 15) + shape[3:]
    assert small.dtype == np.float32
    big = upsize(small, (20, 30))
    assert big.shape == shape
    # area interpolation of a 2x2 block is its mean
    np.testing.assert_allclose(small[0, 0, 0], images[0, :2, :2].mean(axis=(0, 1)), rtol=1e-5)


def test_upsize_keeps_a_constant_image_constant_and_int_size_is_square():
    images = np.full((1, 3, 5), 0.25, np.float32)
    out = upsize(images, 7)
    assert out.shape == (1, 7, 7)
    np.testing.assert_allclose(out, 0.25)


def test_resize_to_the_same_size_returns_a_copy():
    images = np.zeros((1, 4, 4), np.float32)
    out = downsize(images, (4, 4))
    out[:] = 1
    assert images.max() == 0
