"""Tests of the command line's memory model (skcpcae._memory) and the system helpers."""

import math
import os

import pytest

from skcpcae import _memory
from skcpcae._memory import (
    MEMORY_MODEL,
    GiB,
    estimate_fit,
    estimate_score,
    max_fit_images,
    max_fit_shape,
    max_score_batch,
    parse_memory,
)
from skcpcae.utils._system import available_memory, default_file_mode


@pytest.mark.parametrize("text, expected", [
    ("8G", 8 * GiB), ("512M", 512 * 2**20), ("1.5GiB", int(1.5 * GiB)), ("2000", 2000),
    ("4 gb", 4 * GiB), ("off", math.inf),
])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "nanG", "0", "8X", ""])
def test_parse_memory_refuses_bad_sizes(text):
    with pytest.raises(ValueError, match="--memory-limit"):
        parse_memory(text)


@pytest.mark.parametrize("preset", sorted(MEMORY_MODEL) + ["union", None])
def test_suggestions_fit_within_the_budget(preset):
    budget = 16 * GiB
    shape = (4000, 4000)
    # the case: 41 images of 4000x4000 with the best preset does not fit 16 GiB
    assert estimate_fit(preset, 41, shape) > budget
    n = max_fit_images(preset, shape, budget)
    assert estimate_fit(preset, n, shape) <= budget < estimate_fit(preset, n + 1, shape)
    h, w = max_fit_shape(preset, 41, shape, budget)
    assert h == w and estimate_fit(preset, 41, (h, w)) <= budget
    assert estimate_fit(preset, 41, (h + 2, w + 2)) > budget
    b = max_score_batch(preset, shape, budget)
    assert estimate_score(preset, b, shape) <= budget < estimate_score(preset, b + 1, shape)


def test_estimates_grow_with_images_and_pixels():
    small = estimate_fit("best", 10, (100, 100))
    assert estimate_fit("best", 20, (100, 100)) > small
    assert estimate_fit("best", 10, (200, 200)) > small
    assert estimate_fit("best", 10, (100, 100, 3)) > small


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_system_helpers(umask):
    mem = available_memory()
    assert mem is None or mem > 0
    old = os.umask(umask)
    try:
        assert default_file_mode() == 0o666 & ~umask
    finally:
        os.umask(old)


def test_unknown_pipeline_gets_the_largest_figures():
    assert _memory._coefficients(None)["fit_per_pixel"] == max(
        m["fit_per_pixel"] for m in MEMORY_MODEL.values())
