import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from skcpcae.datasets import make_parts
from skcpcae.outlier import KDEThresholdClassifier, PatchKNNScorer, local_patch_distances


def _brute_force(queries, memory, k, radius, exclude=None):
    m, h, w, _ = queries.shape
    out = np.empty((m, h, w))
    for a in range(m):
        for i in range(h):
            for j in range(w):
                d = []
                for b in range(len(memory)):
                    if exclude is not None and exclude[a] == b:
                        continue
                    for di in range(-radius, radius + 1):
                        for dj in range(-radius, radius + 1):
                            if 0 <= i + di < h and 0 <= j + dj < w:
                                d.append(np.linalg.norm(queries[a, i, j] - memory[b, i + di, j + dj]))
                out[a, i, j] = np.mean(np.sort(d)[:k])
    return out


@pytest.mark.parametrize("k, radius", [(1, 0), (3, 0), (2, 1), (5, 2)])
def test_local_distances_match_brute_force(k, radius):
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(6, 4, 5, 3)).astype(np.float32)
    queries = rng.normal(size=(3, 4, 5, 3)).astype(np.float32)
    got = local_patch_distances(queries, memory, n_neighbors=k, radius=radius)
    np.testing.assert_allclose(got, _brute_force(queries, memory, k, radius), rtol=1e-4, atol=1e-4)


def test_leave_one_out_never_matches_itself():
    rng = np.random.default_rng(1)
    memory = rng.normal(size=(5, 3, 3, 2)).astype(np.float32)
    exclude = np.array([0, 2, -1])
    got = local_patch_distances(memory[[0, 2, 4]], memory, n_neighbors=2, radius=1,
                                exclude=exclude)
    np.testing.assert_allclose(
        got, _brute_force(memory[[0, 2, 4]], memory, 2, 1, exclude=exclude), rtol=1e-4, atol=1e-4
    )
    # the training scores are out-of-sample: never zero
    scorer = PatchKNNScorer(top_k=1).fit(memory)
    assert np.all(scorer.negative_outlier_score_ < 0)


def test_position_conditioning_sees_a_patch_in_the_wrong_place():
    # Every training map has a bright patch at (0, 0). A map with the bright patch moved to
    # (3, 3) holds only patches seen in training, so a global patch memory (radius large
    # enough to cover the grid) finds nothing odd, while radius=0 flags it.
    rng = np.random.default_rng(2)
    X = rng.normal(scale=0.05, size=(15, 4, 4, 2)).astype(np.float32)
    X[:, 0, 0] += 5.0
    moved = X[:1].copy()
    moved[0, 0, 0] -= 5.0
    moved[0, 3, 3] += 5.0
    local = PatchKNNScorer(top_k=1, radius=0).fit(X)
    glob = PatchKNNScorer(top_k=1, radius=3).fit(X)
    assert local.predict(moved)[0] == -1
    assert glob.predict(moved)[0] == 1
    amap = local.anomaly_map(moved)[0]
    assert np.unravel_index(np.argmax(amap), amap.shape) in [(0, 0), (3, 3)]


def test_top_k_averages_the_largest_patches():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(8, 3, 3, 2)).astype(np.float32)
    Q = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    patch = PatchKNNScorer(top_k=1).fit(X).anomaly_map(Q)
    flat = np.sort(patch.reshape(2, -1), axis=1)
    np.testing.assert_allclose(-PatchKNNScorer(top_k=1).fit(X).score_samples(Q), flat[:, -1],
                               rtol=1e-6)
    np.testing.assert_allclose(-PatchKNNScorer(top_k=4).fit(X).score_samples(Q),
                               flat[:, -4:].mean(1), rtol=1e-6)
    # top_k larger than the grid: the mean of every patch
    np.testing.assert_allclose(-PatchKNNScorer(top_k=50).fit(X).score_samples(Q),
                               flat.mean(1), rtol=1e-6)


def test_n_neighbors_clipped_with_a_warning():
    X = np.random.default_rng(4).normal(size=(3, 2, 2)).astype(np.float32)
    with pytest.warns(UserWarning, match="n_neighbors"):
        scorer = PatchKNNScorer(n_neighbors=10).fit(X)
    assert scorer.n_neighbors_ == 2


def test_batches_do_not_change_scores():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(11, 3, 4, 2)).astype(np.float32)
    a = PatchKNNScorer(batch_size=2, n_neighbors=2).fit(X)
    b = PatchKNNScorer(batch_size=64, n_neighbors=2).fit(X)
    np.testing.assert_allclose(a.negative_outlier_score_, b.negative_outlier_score_, rtol=1e-5)
    np.testing.assert_allclose(a.score_samples(X[:5]), b.score_samples(X[:5]), rtol=1e-5)


def test_wrong_map_shape_is_a_clear_error():
    X = np.zeros((4, 3, 3, 2), np.float32)
    scorer = PatchKNNScorer().fit(X)
    with pytest.raises(ValueError, match="PatchKNNScorer"):
        scorer.score_samples(np.zeros((2, 4, 3, 2), np.float32))


def test_patch_pipeline_flags_pasted_defects_and_round_trips(tmp_path):
    from skcpcae.embedding import DeepPatchEmbedder

    X, y = make_parts(24, n_anomalies=6, size=(64, 64), random_state=0)
    normal, test = X[:18], X[18:]
    y_test = y[18:]
    pipe = make_pipeline(
        DeepPatchEmbedder("test_efficientnet", weights=None, stages=(2,), random_state=0,
                          device="cpu"),
        PatchKNNScorer(top_k=3),
    )
    pipe.fit(normal)
    scores = -pipe.score_samples(test)
    assert scores[y_test == 1].min() > scores[y_test == 0].max()
    path = tmp_path / "m.joblib"
    joblib.dump(pipe, path)
    np.testing.assert_array_equal(joblib.load(path).score_samples(test), pipe.score_samples(test))
    # thresholded as one unit, like the other presets
    clf = KDEThresholdClassifier(clone(pipe), cv=3, random_state=0).fit(normal)
    assert clf.predict(test[y_test == 1]).tolist().count(-1) >= 1


def test_border_patches_with_few_candidates_average_what_they_have():
    # two training maps, radius 1, k = 5: a corner patch has 2 x 4 = 8 candidates, an
    # inner one 2 x 9; every distance is a real mean, never padded with zeros
    rng = np.random.default_rng(6)
    memory = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
    queries = rng.normal(size=(1, 3, 3, 2)).astype(np.float32) + 3.0
    got = local_patch_distances(queries, memory, n_neighbors=5, radius=1, exclude=np.array([0]))
    # with map 0 excluded, the corner has 4 candidates (< 5): their mean
    np.testing.assert_allclose(got, _brute_force(queries, memory, 5, 1, exclude=np.array([0])),
                               rtol=1e-4, atol=1e-4)


def _retrieval_reference(queries, memory, m, k, top_k):
    """Scores by hand: the m training maps nearest by mean patch feature, then patch k-NN."""
    g_mem = memory.mean(axis=(1, 2), dtype=np.float64)
    out = np.empty(len(queries))
    for a, q in enumerate(queries):
        d = ((q.mean(axis=(0, 1), dtype=np.float64) - g_mem) ** 2).sum(1)
        near = np.argsort(d)[:m]
        patch = _brute_force(q[None], memory[near], k, 0)[0].ravel()
        out[a] = np.sort(patch)[-top_k:].mean()
    return out


def test_retrieval_compares_with_the_nearest_maps_only():
    rng = np.random.default_rng(4)
    memory = rng.normal(size=(12, 3, 4, 2)).astype(np.float32)
    memory[:6] += 2.0  # two kinds of parts: a query of one kind must not see the other
    queries = rng.normal(size=(4, 3, 4, 2)).astype(np.float32)
    queries[:2] += 2.0
    scorer = PatchKNNScorer(2, top_k=3, n_retrieve=5).fit(memory)
    np.testing.assert_allclose(-scorer.score_samples(queries),
                               _retrieval_reference(queries, memory, 5, 2, 3), rtol=1e-4)
    # retrieving every map is the plain scorer
    everything = PatchKNNScorer(2, top_k=3, n_retrieve=12).fit(memory)
    plain = PatchKNNScorer(2, top_k=3).fit(memory)
    np.testing.assert_allclose(everything.score_samples(queries), plain.score_samples(queries))
    np.testing.assert_allclose(everything.negative_outlier_score_,
                               plain.negative_outlier_score_)


def test_retrieval_leave_one_out_is_a_refit_without_the_map():
    rng = np.random.default_rng(5)
    memory = rng.normal(size=(9, 3, 3, 2)).astype(np.float32)
    scorer = PatchKNNScorer(2, top_k=2, n_retrieve=4).fit(memory)
    for i in range(len(memory)):
        rest = np.delete(memory, i, axis=0)
        alone = PatchKNNScorer(2, top_k=2, n_retrieve=4).fit(rest)
        np.testing.assert_allclose(scorer.negative_outlier_score_[i],
                                   alone.score_samples(memory[i:i + 1])[0], rtol=1e-5)


def test_global_weight_fuses_standardised_scores():
    rng = np.random.default_rng(6)
    memory = rng.normal(size=(15, 3, 3, 2)).astype(np.float32)
    queries = rng.normal(size=(5, 3, 3, 2)).astype(np.float32)
    w = 0.25
    fused = PatchKNNScorer(3, top_k=2, global_weight=w).fit(memory)
    patch = PatchKNNScorer(3, top_k=2).fit(memory)
    p_loo, p_new = -patch.negative_outlier_score_, -patch.score_samples(queries)
    g_mem = memory.mean(axis=(1, 2), dtype=np.float64)
    d = np.sqrt(((g_mem[:, None] - g_mem[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    g_loo = np.sort(d, axis=1)[:, :3].mean(1)
    g_q = queries.mean(axis=(1, 2), dtype=np.float64)
    g_new = np.sort(np.sqrt(((g_q[:, None] - g_mem[None]) ** 2).sum(-1)), axis=1)[:, :3].mean(1)

    def z(loo, s):
        return (s - loo.mean()) / loo.std()

    np.testing.assert_allclose(-fused.negative_outlier_score_,
                               (1 - w) * z(p_loo, p_loo) + w * z(g_loo, g_loo), rtol=1e-5)
    np.testing.assert_allclose(-fused.score_samples(queries),
                               (1 - w) * z(p_loo, p_new) + w * z(g_loo, g_new), rtol=1e-5)
    # the map stays the patch distances
    np.testing.assert_allclose(fused.anomaly_map(queries), patch.anomaly_map(queries))


def test_global_score_sees_a_part_darker_everywhere():
    # every patch a little off, none far off: the global score sees what the patches miss
    rng = np.random.default_rng(7)
    memory = rng.normal(size=(30, 4, 4, 3)).astype(np.float32)
    normal = rng.normal(size=(10, 4, 4, 3)).astype(np.float32)
    shifted = rng.normal(size=(10, 4, 4, 3)).astype(np.float32) + 0.6
    X = np.concatenate([normal, shifted])
    y = np.r_[np.zeros(10), np.ones(10)]
    from skcpcae.metrics import image_auroc

    auc = {w: image_auroc(y, -PatchKNNScorer(3, top_k=4, global_weight=w).fit(memory)
                          .score_samples(X)) for w in (0.0, 1.0)}
    assert auc[1.0] > auc[0.0]
    assert auc[1.0] > 0.9


@pytest.mark.parametrize("params", [{"n_retrieve": 0}, {"global_weight": 1.5},
                                    {"global_weight": -0.1}, {"position_norm": "minmax"}])
def test_bad_refinement_parameters_are_refused(params):
    X = np.zeros((4, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="n_retrieve|global_weight|position_norm"):
        PatchKNNScorer(**params).fit(X)


def test_retrieval_clips_n_neighbors_to_the_retrieved_maps():
    X = np.random.default_rng(8).normal(size=(8, 2, 2, 1)).astype(np.float32)
    with pytest.warns(UserWarning, match="n_retrieve=2"):
        scorer = PatchKNNScorer(5, n_retrieve=2).fit(X)
    assert scorer.n_neighbors_ == 2


def test_global_scores_in_blocks_match_one_block():
    # more maps than one block of the global search (256): the blocks' leave-one-out is exact
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 1, 2, 3)).astype(np.float32)
    fused = PatchKNNScorer(2, top_k=1, global_weight=1.0).fit(X)
    g = X.mean(axis=(1, 2), dtype=np.float64)
    d = np.sqrt(((g[:, None] - g[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    loo = np.sort(d, axis=1)[:, :2].mean(1)
    np.testing.assert_allclose(-fused.negative_outlier_score_, (loo - loo.mean()) / loo.std(),
                               rtol=1e-4, atol=1e-5)


def test_position_norm_standardises_by_each_place_leave_one_out_distances():
    rng = np.random.default_rng(10)
    memory = rng.normal(size=(12, 3, 4, 2)).astype(np.float32)
    memory[:, 0, 0] *= 5.0  # one place where normal parts vary a lot
    queries = rng.normal(size=(4, 3, 4, 2)).astype(np.float32)
    plain = PatchKNNScorer(2, top_k=3).fit(memory)
    normed = PatchKNNScorer(2, top_k=3, position_norm="zscore").fit(memory)
    loo = _brute_force(memory, memory, 2, 0, exclude=np.arange(12))
    center, scale = loo.mean(0), loo.std(0)
    scale = np.maximum(scale, 0.1 * np.median(scale))
    np.testing.assert_allclose(normed.position_center_, center, rtol=1e-4)
    np.testing.assert_allclose(normed.position_scale_, scale, rtol=1e-4)
    expected = (_brute_force(queries, memory, 2, 0) - center) / scale
    np.testing.assert_allclose(normed.anomaly_map(queries), expected, rtol=1e-4, atol=1e-5)

    def top3(maps):
        return np.sort(maps.reshape(len(maps), -1), axis=1)[:, -3:].mean(1)

    np.testing.assert_allclose(-normed.score_samples(queries), top3(expected), rtol=1e-4)
    np.testing.assert_allclose(-normed.negative_outlier_score_, top3((loo - center) / scale),
                               rtol=1e-4, atol=1e-5)
    # the noisy place dominates the raw maps, not the standardised ones
    assert plain.anomaly_map(queries).mean(0).argmax() == 0
    assert normed.anomaly_map(queries).mean(0).argmax() != 0
    assert np.allclose(plain.position_center_, 0) and np.allclose(plain.position_scale_, 1)


def test_position_norm_finds_a_defect_at_a_quiet_place_beside_a_noisy_one():
    # normal parts vary a lot at one place; a defect elsewhere, as large as that variation
    # in absolute terms, is hidden among the noisy place's distances unless they are
    # standardised per place
    rng = np.random.default_rng(11)
    memory = rng.normal(scale=0.1, size=(40, 4, 4, 2)).astype(np.float32)
    memory[:, 0, 0] = rng.normal(scale=2.0, size=(40, 2))
    normal = rng.normal(scale=0.1, size=(20, 4, 4, 2)).astype(np.float32)
    normal[:, 0, 0] = rng.normal(scale=2.0, size=(20, 2))
    bad = normal.copy()
    bad[:, 2, 2] += 0.8
    X = np.concatenate([normal, bad])
    y = np.r_[np.zeros(20), np.ones(20)]
    from skcpcae.metrics import image_auroc

    auc = {norm: image_auroc(y, -PatchKNNScorer(1, top_k=1, position_norm=norm).fit(memory)
                             .score_samples(X)) for norm in (None, "zscore")}
    assert auc["zscore"] > 0.95
    assert auc["zscore"] > auc[None] + 0.1


def test_position_norm_floors_the_scale_of_places_that_never_vary():
    X = np.zeros((6, 2, 2, 1), np.float32)
    X[:, 0, 0, 0] = np.arange(6)  # only one place varies
    scorer = PatchKNNScorer(1, position_norm="zscore").fit(X)
    assert np.all(scorer.position_scale_ > 0)
    assert np.all(np.isfinite(scorer.score_samples(X + 1.0)))
    constant = PatchKNNScorer(1, position_norm="zscore").fit(np.zeros((5, 2, 2, 1), np.float32))
    np.testing.assert_array_equal(constant.position_scale_, 1.0)
