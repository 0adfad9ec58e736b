import numpy as np
import pytest
import torch

from skcpcae._components.coreset import (
    greedy_coreset,
    greedy_kcenter,
    random_coreset,
    select_coreset,
)


def test_greedy_coreset_covers_better_than_random():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(size=(900, 8)), rng.normal(6, 1, size=(100, 8))])
    feats = feats.astype(np.float32)

    def radius(idx):
        return torch.cdist(torch.from_numpy(feats), torch.from_numpy(feats[idx])).min(1)[0].max()

    greedy = greedy_coreset(feats, 50, random_state=0)
    assert len(np.unique(greedy)) == 50 and np.all(np.diff(greedy) > 0)
    assert radius(greedy) < radius(rng.choice(1000, 50, replace=False))
    chunked = greedy_coreset(feats, 50, random_state=0, chunk_size=300)
    assert len(np.unique(chunked)) == 50
    np.testing.assert_array_equal(greedy, greedy_coreset(feats, 50, random_state=0))


def test_greedy_kcenter_picks_the_farthest_row_each_time():
    z = torch.tensor([[0.0], [1.0], [10.0], [4.0], [6.0]])
    # from 0: farthest is 10; then 4 or 6 -> 6 is 4 from 10 and 6 from 0 -> min 4; 4 is min 4
    sel = greedy_kcenter(z, 3, start=0)
    assert sel[:2].tolist() == [0, 2]
    assert sel[2] in (3, 4)
    assert len(set(greedy_kcenter(z, 5, start=1).tolist())) == 5  # never a row twice


def test_greedy_coreset_restores_the_torch_thread_count():
    before = torch.get_num_threads()
    greedy_coreset(np.random.default_rng(0).normal(size=(50, 4)), 5, random_state=0)
    assert torch.get_num_threads() == before


def test_random_coreset_is_seeded_sorted_and_without_repeats():
    a = random_coreset(100, 10, random_state=3)
    assert len(np.unique(a)) == 10 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, random_coreset(100, 10, random_state=3))
    assert not np.array_equal(a, random_coreset(100, 10, random_state=4))


def test_select_coreset_ratio_and_methods():
    feats = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    assert len(select_coreset(feats, 0.25, method="greedy", random_state=0)) == 10
    assert len(select_coreset(feats, 0.25, method="random", random_state=0)) == 10
    np.testing.assert_array_equal(select_coreset(feats, 0.25, method=None), np.arange(40))
    np.testing.assert_array_equal(select_coreset(feats, 1.0), np.arange(40))
    assert len(select_coreset(feats, 1e-6, method="random", random_state=0)) == 1
    with pytest.raises(ValueError, match="method must be"):
        select_coreset(feats, 0.5, method="kmeans")
