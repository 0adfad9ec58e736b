import numpy as np
import pytest
import torch

from skcpcae.embedding import DeepPatchEmbedder, DeepPoolEmbedder


def _emb(**kw):
    kw.setdefault("random_state", 0)
    return DeepPatchEmbedder("test_efficientnet", weights=None, device="cpu", **kw)


def test_output_shape_and_grid():
    X = np.random.default_rng(0).random((3, 64, 48), dtype=np.float32)
    emb = _emb(stages=(2, 3)).fit(X)
    out = emb.transform(X)
    h, w = emb.feature_shape_
    assert out.shape == (3, h, w, sum(emb.n_channels_))
    assert (h, w) == (8, 6)  # stride 8 of the finest stage
    assert emb.n_features_out_ == out[0].size
    assert out.dtype == np.float32


def test_local_size_one_is_the_raw_stage_map():
    X = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    emb = _emb(stages=(2,), local_size=1).fit(X)
    with torch.inference_mode():
        raw = emb.backbone_(emb._prepare(X))[0].permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(emb.transform(X), raw, rtol=1e-5, atol=1e-6)
    # and the 3x3 average is a smoothing of it: same mean over the grid interior
    smooth = _emb(stages=(2,), local_size=3).fit(X).transform(X)
    np.testing.assert_allclose(smooth[:, 1, 1], raw[:, 0:3, 0:3].mean(axis=(1, 2)),
                               rtol=1e-4, atol=1e-5)


def test_even_local_size_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        _emb(local_size=2).fit(np.zeros((2, 32, 32), np.float32))


def test_table_input_gives_a_table():
    X = np.random.default_rng(2).random((3, 20), dtype=np.float32)
    emb = _emb().fit(X)
    assert emb.transform(X).shape == (3, emb.n_features_out_)


def test_matches_max_pooling_of_its_own_map():
    # local_size=1: global max over the patch grid is DeepPoolEmbedder's max pooling
    X = np.random.default_rng(3).random((2, 64, 64), dtype=np.float32)
    patches = _emb(stages=(3,), local_size=1).fit(X).transform(X)
    pooled = DeepPoolEmbedder("test_efficientnet", weights=None, device="cpu",
                              stages=(3,), pooling="max", random_state=0).fit(X).transform(X)
    np.testing.assert_allclose(patches.max(axis=(1, 2)), pooled, rtol=1e-5, atol=1e-6)


def test_feature_names_only_for_a_table_output():
    X = np.random.default_rng(4).random((3, 32, 32), dtype=np.float32)
    emb = _emb(stages=(2,)).fit(X)
    with pytest.raises(ValueError, match=r"patch maps \(n_samples, 4, 4, \d+\), not a table"):
        emb.get_feature_names_out()
    table = _emb(stages=(2,)).fit(X.reshape(3, -1))
    names = table.get_feature_names_out()
    assert len(names) == table.n_features_out_ == table.transform(X.reshape(3, -1)).shape[1]


@pytest.mark.parametrize("batch_size", [2, 16])
def test_batch_size_invariance_within_the_documented_tolerance(batch_size):
    X = np.random.default_rng(5).random((5, 48, 48), dtype=np.float32)
    one = _emb(stages=(2, 3), batch_size=1).fit(X).transform(X)
    many = _emb(stages=(2, 3), batch_size=batch_size).fit(X).transform(X)
    # the tolerance docs/benchmarks.md documents ("Batch-size tolerance"): 1e-5 absolute
    np.testing.assert_allclose(many, one, rtol=0, atol=1e-5)
