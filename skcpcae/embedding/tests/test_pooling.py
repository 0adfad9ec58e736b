import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skcpcae.embedding import (
    POOLINGS,
    gem_pool,
    global_avg_pool,
    global_max_pool,
    max_avg_pool,
    parallel_cascade_pool,
    pool_features,
    pooled_n_features,
)

_maps = st.tuples(
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)
).flatmap(lambda shape: arrays(np.float32, shape, elements=st.floats(0.0009765625, 10.0, width=32)))


@settings(max_examples=25, deadline=None)
@given(_maps)
def test_gem_with_p_one_is_the_mean(x):
    t = torch.from_numpy(x)
    np.testing.assert_allclose(gem_pool(t, p=1.0), global_avg_pool(t), rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(_maps)
def test_gem_lies_between_mean_and_max_and_grows_with_p(x):
    t = torch.from_numpy(x).double()
    g3, g8 = gem_pool(t, p=3.0), gem_pool(t, p=8.0)
    assert torch.all(g3 >= global_avg_pool(t) - 1e-9)
    assert torch.all(g8 >= g3 - 1e-9)
    assert torch.all(g8 <= global_max_pool(t) + 1e-9)


def test_gem_with_large_p_tends_to_max():
    t = torch.rand(2, 5, 7, 7, dtype=torch.float64) + 0.1
    np.testing.assert_allclose(gem_pool(t, p=200.0), global_max_pool(t), rtol=0.02)


def test_gem_clamps_negative_values():
    t = torch.full((1, 1, 2, 2), -3.0)
    assert gem_pool(t, p=2.0).item() == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="p must be positive"):
        gem_pool(t, p=0.0)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (1, 5, 3, 7), (4, 8, 10, 10)])
def test_output_dims_match_pooled_n_features(pooling, shape):
    out = pool_features(torch.rand(shape), pooling)
    assert out.shape == (shape[0], pooled_n_features(pooling, shape[1]))
    assert out.dtype == torch.float32


def test_max_avg_concatenates_max_then_mean():
    x = torch.rand(3, 4, 5, 6)
    out = max_avg_pool(x)
    torch.testing.assert_close(out[:, :4], x.amax(dim=(2, 3)))
    torch.testing.assert_close(out[:, 4:], x.mean(dim=(2, 3)))


def test_parallel_cascade_layout_on_a_known_map():
    # one channel, 4x4 map: the cascade's 4x4 max grid is the map itself, so its 2x2 average
    # pooling gives the means of the four 2x2 quadrants.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = parallel_cascade_pool(x, grid_size=2)[0]
    assert out.tolist() == [15.0, 7.5, 2.5, 4.5, 10.5, 12.5]


def test_parallel_cascade_cascade_branch_averages_local_maxima():
    x = torch.zeros(1, 2, 8, 8)
    x[0, 0, 0, 0] = 4.0  # one spike in the top-left region of channel 0
    out = parallel_cascade_pool(x, grid_size=2)[0]
    c = 2
    assert out[0].item() == 4.0 and out[1].item() == 0.0  # global max per channel
    assert out[c].item() == pytest.approx(4.0 / 64)  # global average
    cascade = out[2 * c :].reshape(c, 2, 2)
    # 4x4 grid of 2x2 maxima: the spike is one cell of the top-left 2x2 block -> 4/4 = 1
    assert cascade[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert torch.all(cascade[1] == 0)


def test_parallel_cascade_grid_size_changes_width():
    x = torch.rand(2, 3, 9, 9)
    assert parallel_cascade_pool(x, grid_size=3).shape == (2, (2 + 9) * 3)
    with pytest.raises(ValueError, match="grid_size"):
        parallel_cascade_pool(x, grid_size=0)


def test_bad_input_and_name_are_refused():
    with pytest.raises(ValueError, match="one of"):
        pool_features(torch.rand(1, 2, 3, 3), "median")
    with pytest.raises(ValueError, match="one of"):
        pooled_n_features("median", 3)
    with pytest.raises(ValueError, match=r"\(n, C, h, w\)"):
        global_max_pool(torch.rand(2, 3))
