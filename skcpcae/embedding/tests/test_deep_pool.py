import pickle

import joblib
import numpy as np
import pytest
import timm
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcpcae._components import surgery
from skcpcae.datasets import make_parts, paste_defect
from skcpcae.embedding import DeepPatchEmbedder, DeepPoolEmbedder, pooled_n_features
from skcpcae.outlier import KNNAnomalyScorer

TINY = dict(backbone="test_efficientnet", weights=None, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def parts():
    X, _ = make_parts(6, size=(32, 32), random_state=0)
    return X


@pytest.mark.parametrize("pooling", ["max", "avg", "gem", "max+avg", "parallel_cascade"])
def test_output_is_float32_table_of_pooled_width(parts, pooling):
    emb = DeepPoolEmbedder(pooling=pooling, **TINY).fit(parts)
    Z = emb.transform(parts)
    assert Z.dtype == np.float32 and Z.shape == (6, pooled_n_features(pooling, 256))
    assert emb.n_features_out_ == Z.shape[1] and emb.n_channels_ == (256,)
    assert np.all(np.isfinite(Z))
    names = emb.get_feature_names_out()
    assert names[0] == "deeppoolembedder0" and len(names) == Z.shape[1]


def test_stages_are_pooled_and_concatenated(parts):
    emb = DeepPoolEmbedder(stages=(-1, 1), pooling="max+avg", **TINY).fit(parts)
    channels = [f["num_chs"] for f in timm.create_model("test_efficientnet").feature_info]
    assert emb.n_channels_ == (channels[1], channels[-1])  # shallow to deep
    assert emb.transform(parts).shape == (6, 2 * (channels[1] + channels[-1]))
    with pytest.raises(ValueError, match="stages must be"):
        DeepPoolEmbedder(stages=(), **TINY).fit(parts)


def test_gray_equals_gray_repeated_to_three_channels(parts):
    emb = DeepPoolEmbedder(**TINY)
    Z_gray = emb.fit(parts).transform(parts)
    Z_one = emb.fit(parts[..., None]).transform(parts[..., None])
    rgb = np.repeat(parts[..., None], 3, axis=-1)
    Z_rgb = emb.fit(rgb).transform(rgb)
    np.testing.assert_allclose(Z_gray, Z_one)
    np.testing.assert_allclose(Z_gray, Z_rgb, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="channel"):
        emb.fit(np.zeros((2, 32, 32, 4), np.float32))


def test_uint8_is_scaled_like_float(parts):
    as_uint8 = np.round(parts * 255).astype(np.uint8)
    emb = DeepPoolEmbedder(**TINY).fit(as_uint8)
    np.testing.assert_allclose(
        emb.transform(as_uint8), emb.transform(as_uint8 / np.float32(255)), rtol=1e-5, atol=1e-6
    )


def test_small_images_and_tables_are_upsized():
    rng = np.random.RandomState(0)
    small = rng.rand(3, 5, 7).astype(np.float32)
    table = rng.rand(4, 3)
    emb = DeepPoolEmbedder(**TINY)
    assert emb.fit(small).transform(small).shape == (3, 256)
    assert emb._target_size(5, 7) == (32, 32)
    assert emb._target_size(1, 100) == (32, 100)
    Z = emb.fit(table).transform(table)
    assert Z.shape == (4, 256) and np.all(np.isfinite(Z))
    assert not np.allclose(Z[0], Z[1])


def test_input_size_int_and_tuple_agree(parts):
    big = np.repeat(np.repeat(parts, 2, axis=1), 2, axis=2)  # 64x64
    Z_int = DeepPoolEmbedder(input_size=40, **TINY).fit(big).transform(big)
    Z_tup = DeepPoolEmbedder(input_size=(40, 40), **TINY).fit(big).transform(big)
    Z_full = DeepPoolEmbedder(**TINY).fit(big).transform(big)
    np.testing.assert_array_equal(Z_int, Z_tup)
    assert not np.allclose(Z_int, Z_full)
    with pytest.raises(ValueError, match="input_size"):
        DeepPoolEmbedder(input_size=(40, 40, 3), **TINY).fit(big)


def test_random_init_is_seeded_by_random_state(parts):
    Z0 = DeepPoolEmbedder(**TINY).fit(parts).transform(parts)
    Z0_again = DeepPoolEmbedder(**TINY).fit(parts).transform(parts)
    Z1 = DeepPoolEmbedder(**{**TINY, "random_state": 1}).fit(parts).transform(parts)
    np.testing.assert_array_equal(Z0, Z0_again)
    assert not np.allclose(Z0, Z1)


def test_batch_size_and_order(parts):
    Z1 = DeepPoolEmbedder(batch_size=1, **TINY).fit(parts).transform(parts)
    Z4 = DeepPoolEmbedder(batch_size=4, **TINY).fit(parts).transform(parts)
    np.testing.assert_allclose(Z1, Z4, rtol=1e-4, atol=1e-5)
    Z_rev = DeepPoolEmbedder(batch_size=4, **TINY).fit(parts).transform(parts[::-1])
    np.testing.assert_allclose(Z_rev[::-1], Z4, rtol=1e-4, atol=1e-5)


def test_shape_mismatch_and_not_fitted(parts):
    emb = DeepPoolEmbedder(**TINY)
    with pytest.raises(Exception, match="not fitted"):
        emb.transform(parts)
    emb.fit(parts)
    with pytest.raises(ValueError, match="fitted on images of shape"):
        emb.transform(np.zeros((2, 40, 40), np.float32))


def test_pickle_round_trip_gives_identical_features(parts):
    emb = DeepPoolEmbedder(pooling="parallel_cascade", **TINY).fit(parts)
    Z = emb.transform(parts)
    clone_ = pickle.loads(pickle.dumps(emb))
    np.testing.assert_array_equal(clone_.transform(parts), Z)
    assert emb.backbone_ is not clone_.backbone_


def test_gpu_fitted_state_loads_on_a_cpu_only_machine(parts, monkeypatch):
    emb = DeepPoolEmbedder(**TINY).fit(parts)
    Z = emb.transform(parts)
    state = emb.__getstate__()
    state["device_"] = "cuda"  # as pickled by a model fitted on a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = DeepPoolEmbedder.__new__(DeepPoolEmbedder)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        loaded.__setstate__(state)
    assert loaded.device_ == "cpu"
    np.testing.assert_array_equal(loaded.transform(parts), Z)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_pickles_on_cpu_and_matches_cpu(parts):
    emb = DeepPoolEmbedder(**{**TINY, "device": "cuda"}).fit(parts)
    Z_gpu = emb.transform(parts)
    state = emb.__getstate__()
    assert next(state["backbone_"].parameters()).device.type == "cpu"
    assert next(emb.backbone_.parameters()).device.type == "cuda"  # live model untouched
    Z_cpu = DeepPoolEmbedder(**TINY).fit(parts).transform(parts)
    np.testing.assert_allclose(Z_gpu, Z_cpu, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(emb)).transform(parts), Z_gpu)


def test_weights_path_is_loaded(parts, tmp_path, monkeypatch):
    # a checkpoint as timm saves it needs the batch norms: take it from an unfolded backbone
    monkeypatch.setattr(surgery, "fold_batchnorm", lambda model, probe=None: model)
    emb = DeepPoolEmbedder(**TINY).fit(parts)
    assert not emb._backbone_folded
    path = tmp_path / "tiny.pth"
    torch.save(timm_state(emb), path)
    monkeypatch.undo()
    other = DeepPoolEmbedder(
        "test_efficientnet", weights=path, device="cpu", random_state=5
    ).fit(parts)
    assert other._backbone_folded
    np.testing.assert_allclose(other.transform(parts), emb.transform(parts), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("cls", [DeepPoolEmbedder, DeepPatchEmbedder])
def test_batch_norms_are_folded_and_survive_pickling(parts, cls):
    emb = cls(**TINY).fit(parts)
    names = {type(m).__name__ for m in emb.backbone_.modules()}
    assert emb._backbone_folded
    assert not {"BatchNorm2d", "BatchNormAct2d"} & names
    back = pickle.loads(pickle.dumps(emb))
    assert back._backbone_folded
    np.testing.assert_array_equal(back.transform(parts), emb.transform(parts))


def test_model_file_from_before_folding_loads_unfolded(parts):
    emb = DeepPoolEmbedder(**TINY).fit(parts)
    # as an unfolded fit pickled it: batch-norm weights, and no _backbone_folded
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(surgery, "fold_batchnorm", lambda model, probe=None: model)
        old = DeepPoolEmbedder(**TINY).fit(parts)
    state = old.__getstate__()
    del state["_backbone_folded"]
    back = DeepPoolEmbedder.__new__(DeepPoolEmbedder)
    back.__setstate__(state)
    assert "BatchNormAct2d" in {type(m).__name__ for m in back.backbone_.modules()}
    np.testing.assert_allclose(back.transform(parts), emb.transform(parts), rtol=1e-4,
                               atol=1e-5)


def timm_state(emb):
    """State dict of the fitted backbone with a classifier head (as timm saves it)."""
    model = timm.create_model("test_efficientnet", pretrained=False)
    state = model.state_dict()
    state.update(emb.backbone_.state_dict())
    return state


def test_pretrained_backbone_without_offline_weights_is_refused(parts):
    with pytest.raises(ValueError, match="weights='timm'"):
        DeepPoolEmbedder("test_efficientnet", device="cpu").fit(parts)


@pytest.mark.parametrize("cls", [DeepPoolEmbedder, DeepPatchEmbedder])
def test_pretrained_is_a_deprecated_switch_of_weights(parts, cls):
    base = dict(backbone="test_efficientnet", device="cpu", random_state=0)
    old = cls(pretrained=False, **base)
    assert clone(old).get_params()["pretrained"] is False  # get_params / clone keep it
    with pytest.warns(FutureWarning, match=r"\(pretrained=\.\.\.\) is deprecated.*weights=None") \
            as record:
        old.fit(parts)
    assert record[0].filename == __file__
    new = cls(weights=None, **base).fit(parts)
    np.testing.assert_array_equal(old.transform(parts), new.transform(parts))
    np.testing.assert_array_equal(cls(weights="random", **base).fit(parts).transform(parts),
                                  new.transform(parts))
    with pytest.raises(ValueError, match="both pretrained"):
        cls(pretrained=False, weights=None, **base).fit(parts)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="weights=None for random"):
        cls(pretrained=True, **base).fit(parts)  # no offline weights for the test CNN


def test_verbose_shows_progress(parts, capsys):
    DeepPoolEmbedder(verbose=1, batch_size=2, **TINY).fit(parts).transform(parts)
    assert "DeepPoolEmbedder" in capsys.readouterr().err


def test_set_output_pandas(parts):
    pd = pytest.importorskip("pandas")
    emb = DeepPoolEmbedder(**TINY).set_output(transform="pandas").fit(parts)
    df = emb.transform(parts)
    assert isinstance(df, pd.DataFrame) and list(df.columns[:2]) == [
        "deeppoolembedder0",
        "deeppoolembedder1",
    ]


def test_pipeline_survives_joblib(parts, tmp_path):
    pipe = make_pipeline(
        DeepPoolEmbedder(**TINY), StandardScaler(), KNNAnomalyScorer(n_neighbors=2)
    ).fit(parts)
    path = tmp_path / "pipe.joblib"
    joblib.dump(pipe, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.score_samples(parts), pipe.score_samples(parts))
    refit = clone(pipe).fit(parts)
    np.testing.assert_array_equal(refit.score_samples(parts), pipe.score_samples(parts))


def test_default_pretrained_embedding_sees_a_pasted_defect():
    X, _ = make_parts(2, size=(96, 96), random_state=0)
    clean = X[0]
    defective = paste_defect(clean, kind="blob", random_state=1, strength=0.4)
    rng = np.random.RandomState(0)
    jitter = np.clip(clean + rng.normal(0, 0.002, clean.shape), 0, 1).astype(np.float32)
    emb = DeepPoolEmbedder(device="cpu").fit(X)  # offline EfficientNet-Lite0 weights
    Z = emb.transform(np.stack([clean, jitter, defective, X[1]]))
    noise = np.linalg.norm(Z[1] - Z[0])
    defect = np.linalg.norm(Z[2] - Z[0])
    other_part = np.linalg.norm(Z[3] - Z[0])  # another good part (other shading and noise)
    assert defect > 5 * noise
    assert defect > other_part


@pytest.mark.parametrize("pretrained, expected", [(False, None), (True, "offline")])
def test_model_saved_with_pretrained_loads_with_weights(parts, pretrained, expected):
    state = DeepPoolEmbedder(**TINY).fit(parts).__getstate__()
    state.update(pretrained=pretrained, weights=None)  # as a file written before 0.1 holds
    loaded = DeepPoolEmbedder.__new__(DeepPoolEmbedder)
    loaded.__setstate__(state)
    assert loaded.get_params()["weights"] == expected
    assert loaded.get_params()["pretrained"] == "deprecated"
