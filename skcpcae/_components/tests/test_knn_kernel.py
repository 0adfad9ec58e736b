import numpy as np
import pytest
import torch

from skcpcae._components.knn import (
    BACKENDS,
    ExactSearch,
    knn_search,
    local_patch_distances,
    make_search,
    mean_knn_distance,
)


def _data(m=70, n=40, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, d, generator=g), torch.randn(n, d, generator=g)


def test_mean_knn_distance_matches_cdist_and_excludes_groups():
    q, bank = _data()
    full = torch.cdist(q, bank)
    np.testing.assert_allclose(mean_knn_distance(q, bank), full.min(1)[0], rtol=1e-5)
    np.testing.assert_allclose(mean_knn_distance(q, bank, 3),
                               full.topk(3, largest=False)[0].mean(1), rtol=1e-5)
    # unsorted groups (masked) and sorted, consecutive groups (blanked ranges) agree
    for qg, bg in [(torch.arange(70) % 4, torch.arange(40) % 4),
                   (torch.arange(70) // 18, torch.arange(40) // 10)]:
        masked = full.masked_fill(qg[:, None] == bg[None, :], float("inf"))
        np.testing.assert_allclose(mean_knn_distance(q, bank, query_groups=qg, bank_groups=bg),
                                   masked.min(1)[0], rtol=1e-5)


@pytest.mark.parametrize("block_bytes", [1, 4 * 40 * 3, 64 * 2**20])
def test_knn_search_gives_the_same_neighbours_for_any_block_size(block_bytes):
    q, bank = _data()
    dist, idx = knn_search(q, bank, 4, block_bytes=block_bytes)
    ref = torch.cdist(q, bank).topk(4, largest=False)
    np.testing.assert_allclose(dist, ref.values, rtol=1e-5)
    np.testing.assert_array_equal(idx, ref.indices)
    assert torch.all(dist[:, 1:] >= dist[:, :-1])  # ascending


def test_knn_search_is_batched_over_independent_problems():
    g = torch.Generator().manual_seed(1)
    q, bank = torch.randn(6, 9, 3, generator=g), torch.randn(6, 11, 3, generator=g)
    dist, idx = knn_search(q, bank, 2, block_bytes=4 * 11 * 2)  # several blocks per axis
    for p in range(6):
        ref = torch.cdist(q[p], bank[p]).topk(2, largest=False)
        np.testing.assert_allclose(dist[p], ref.values, rtol=1e-5)
        np.testing.assert_array_equal(idx[p], ref.indices)


def test_knn_search_pads_missing_neighbours_with_inf_and_minus_one():
    q, bank = _data(m=3, n=4)
    dist, idx = knn_search(q, bank, 6)
    assert dist.shape == idx.shape == (3, 6)
    assert torch.isinf(dist[:, 4:]).all() and (idx[:, 4:] == -1).all()
    # every bank row in the query's own group: no candidate at all
    dist, idx = knn_search(q, bank, 1, query_groups=torch.zeros(3, dtype=torch.long),
                           bank_groups=torch.zeros(4, dtype=torch.long))
    assert torch.isinf(dist).all() and (idx == -1).all()


def test_knn_search_exact_distances_survive_large_norms():
    # Far from the origin, ||b||^2 - 2 q.b loses the small distances; the recomputation keeps them.
    g = torch.Generator().manual_seed(0)
    bank = 1000.0 + torch.randn(50, 8, generator=g)
    q = bank[:5] + 1e-3
    dist, idx = knn_search(q, bank, 1)
    np.testing.assert_array_equal(idx[:, 0], np.arange(5))
    np.testing.assert_allclose(dist[:, 0], (q - bank[:5]).norm(dim=1), rtol=1e-5)
    expansion = (bank[:5] ** 2).sum(1) - 2 * (q * bank[:5]).sum(1) + (q**2).sum(1)
    assert not np.allclose(expansion.clamp_min(0).sqrt(), dist[:, 0], rtol=1e-2)


def test_knn_search_refuses_mismatched_inputs():
    q, bank = _data()
    with pytest.raises(ValueError, match="together"):
        knn_search(q, bank, query_groups=torch.zeros(70, dtype=torch.long))
    with pytest.raises(ValueError, match="2-D"):
        knn_search(q[None], bank)
    with pytest.raises(ValueError, match="features"):
        knn_search(q, bank[:, :3])
    with pytest.raises(ValueError, match="at least 1"):
        knn_search(q, bank, 0)


def test_exact_search_backend_interface():
    q, bank = _data()
    bg, qg = torch.arange(40) % 2, torch.arange(70) % 2
    search = make_search(bank, groups=bg)
    assert isinstance(search, ExactSearch) and BACKENDS["exact"] is ExactSearch
    d, i = search.search(q, 2, groups=qg)
    ref_d, ref_i = knn_search(q, bank, 2, query_groups=qg, bank_groups=bg)
    torch.testing.assert_close(d, ref_d)
    assert torch.equal(i, ref_i)
    assert torch.all(bg[i] != qg[:, None])
    with pytest.raises(ValueError, match="bank built with groups"):
        make_search(bank).search(q, 1, groups=qg)
    with pytest.raises(ValueError, match="Unknown k-NN backend"):
        make_search(bank, backend="faiss-not-here")


def _brute_local(queries, memory, k, radius, exclude=None):
    m, h, w, _ = queries.shape
    out = np.empty((m, h, w))
    for a in range(m):
        for i in range(h):
            for j in range(w):
                cand = [np.linalg.norm(queries[a, i, j] - memory[b, i + di, j + dj])
                        for b in range(len(memory)) if exclude is None or b != exclude[a]
                        for di in range(-radius, radius + 1)
                        for dj in range(-radius, radius + 1)
                        if 0 <= i + di < h and 0 <= j + dj < w]
                out[a, i, j] = np.mean(sorted(cand)[:k])
    return out


@pytest.mark.parametrize("block_bytes", [1, 64 * 2**20])
def test_local_patch_distances_match_brute_force_in_any_block_size(block_bytes):
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(5, 4, 3, 2)).astype(np.float32)
    queries = rng.normal(size=(3, 4, 3, 2)).astype(np.float32)
    got = local_patch_distances(queries, memory, n_neighbors=2, radius=1,
                                block_bytes=block_bytes)
    np.testing.assert_allclose(got, _brute_local(queries, memory, 2, 1), rtol=1e-5)
    got = local_patch_distances(memory[[0, 2]], memory, n_neighbors=1, radius=0,
                                exclude=np.array([0, -1]), block_bytes=block_bytes)
    ref = _brute_local(memory[[0, 2]], memory, 1, 0, exclude=[0, -1])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert np.all(got[1] == 0)  # not excluded: matches itself
