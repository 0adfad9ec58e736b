import pytest
import torch
import torch.nn.functional as F

from skcpcae._components.patch_features import aggregate_patch_maps


def test_aggregate_upsamples_to_the_finest_grid_and_concatenates():
    g = torch.Generator().manual_seed(0)
    fine, coarse = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 5, 4, 4, generator=g)
    out = aggregate_patch_maps([fine, coarse], local_size=1)
    assert out.shape == (2, 8, 8, 8)
    torch.testing.assert_close(out[:, :3], fine)
    up = F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[:, 3:], up)


def test_aggregate_local_average_counts_only_real_neighbours():
    x = torch.ones(1, 1, 5, 5)
    x[0, 0, 2, 2] = 10.0
    out = aggregate_patch_maps([x], local_size=3)
    assert out.shape == (1, 1, 5, 5)
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(1.0))  # border: 4 ones
    torch.testing.assert_close(out[0, 0, 2, 2], torch.tensor(18.0 / 9.0))


def test_aggregate_refuses_even_sizes_and_empty_lists():
    with pytest.raises(ValueError, match="odd"):
        aggregate_patch_maps([torch.zeros(1, 1, 4, 4)], local_size=2)
    with pytest.raises(ValueError, match="at least one"):
        aggregate_patch_maps([])
