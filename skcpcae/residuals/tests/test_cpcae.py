"""Tests of CPCAEResidualMap and its torch module (tiny images, few epochs)."""

import io
import os
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from skorch.dataset import Dataset

from skcpcae.datasets import make_parts
from skcpcae.residuals import CPCAEResidualMap
from skcpcae.residuals._cpcae import _collate_batch, _PatchBatches, _SparseAENet
from skcpcae.residuals._modules import ConditionalPatchAE

# a fast configuration: 16x16 images, 8x8 patches (3 x 3 grid), two conv layers
# gain=None: the residual in its own units, so the tests can check its formula
FAST = dict(
    gain=None,
    input_size=None, patch_size=8, channels=(4, 8), latent_dim=8, max_epochs=2,
    batch_size=16, device="cpu", random_state=0,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The test machines are small and shared: one intra-op thread avoids oversubscription.
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def parts():
    X, _ = make_parts(8, size=(16, 16), random_state=0)
    return X


@pytest.fixture(scope="module")
def fitted(parts):
    return CPCAEResidualMap(**FAST).fit(parts)


# ----------------------------------------------------------------------------- module


@pytest.mark.parametrize("patch_shape", [(32, 32), (1, 1), (1, 7), (17, 9)])
@pytest.mark.parametrize("channels", [(4,), (4, 8, 16)])
def test_module_reconstructs_any_patch_shape(patch_shape, channels):
    ae = ConditionalPatchAE(patch_shape, n_patches=3, in_channels=2, channels=channels,
                            latent_dim=5)
    with torch.no_grad():
        recon, latent = ae(torch.rand(4, 2, *patch_shape), torch.tensor([0, 1, 2, 1]))
    assert recon.shape == (4, 2) + patch_shape
    assert latent.shape == (4, 5)
    assert 0 <= float(recon.min()) and float(recon.max()) <= 1


def test_module_output_depends_on_the_patch_index():
    torch.manual_seed(0)
    ae = ConditionalPatchAE((8, 8), n_patches=4, channels=(4,), latent_dim=3)
    x = torch.rand(1, 1, 8, 8).repeat(2, 1, 1, 1)
    recon, latent = ae(x, torch.tensor([0, 3]))
    assert not torch.equal(latent[0], latent[1])
    assert not torch.equal(recon[0], recon[1])


def test_module_has_a_dense_bottleneck_without_pooling():
    ae = ConditionalPatchAE((32, 32), n_patches=49, channels=(16, 32, 64), latent_dim=64)
    kinds = {type(m).__name__ for m in ae.modules()}
    assert not any("Pool" in k for k in kinds)
    assert ae.encoder_dense.in_features == 64 * 4 * 4 + 49
    assert ae.decoder_dense.in_features == 64 + 49


def test_loss_adds_the_sparsity_penalty_on_the_latent_code():
    net = _SparseAENet(ConditionalPatchAE, criterion=torch.nn.MSELoss, sparsity=0.5,
                       train_split=None).initialize()
    recon, latent = torch.full((2, 1, 4, 4), 0.5), torch.tensor([[1.0, -3.0], [0.0, 2.0]])
    X = {"patches": torch.zeros(2, 1, 4, 4), "index": torch.tensor([0, 0])}
    loss = net.get_loss((recon, latent), None, X=X)
    assert float(loss) == pytest.approx(0.25 + 0.5 * 1.5)


# -------------------------------------------------------------------------- estimator


def test_transform_highlights_a_pasted_defect():
    X, _ = make_parts(20, size=(32, 32), random_state=0)
    X_bad, _, masks = make_parts(0, n_anomalies=4, size=(32, 32), random_state=1,
                                 return_masks=True)
    est = CPCAEResidualMap(
        input_size=None, patch_size=16, channels=(8, 16), latent_dim=16, max_epochs=10,
        batch_size=32, lr=3e-3, device="cpu", random_state=0,
    ).fit(X)
    R = est.transform(X_bad)
    for r, m in zip(R, masks, strict=True):
        assert r[m].mean() > 2 * r[~m].mean()


def test_output_is_float32_at_input_size_with_downsizing(parts):
    est = CPCAEResidualMap(**{**FAST, "input_size": 12}).fit(parts)
    assert est.working_shape_ == (12, 12)
    assert est.patch_shape_ == (8, 8) and est.stride_ == (4, 4)
    assert est.n_patches_ == len(est.patch_corners_) == 4
    R = est.transform(parts)
    assert R.shape == parts.shape and R.dtype == np.float32
    assert R.min() >= 0


def test_input_size_never_enlarges_and_patch_is_clamped(parts):
    est = CPCAEResidualMap(**{**FAST, "input_size": (64, 10), "patch_size": 12}).fit(parts)
    assert est.working_shape_ == (16, 10)
    assert est.patch_shape_ == (12, 10)
    assert est.stride_ == (6, 5)


def test_table_input_is_read_as_one_pixel_high_images():
    X = np.random.default_rng(0).random((10, 5), dtype=np.float32)
    est = CPCAEResidualMap(max_epochs=1, device="cpu", random_state=0).fit(X)
    assert est.image_shape_ == (1, 5)
    assert est.patch_shape_ == (1, 5)
    R = est.transform(X)
    assert R.shape == (10, 5) and R.dtype == np.float32


def test_colour_input_gives_one_residual_channel_per_input_channel():
    X, _ = make_parts(6, size=(16, 16), color=True, random_state=0)
    est = CPCAEResidualMap(**FAST).fit(X)
    assert est.net_.module_.in_channels == 3
    R = est.transform(X)
    recon = est.reconstruct(X)
    assert R.shape == X.shape == recon.shape
    np.testing.assert_array_equal(R, np.abs(X - recon))


def test_residual_is_absolute_or_squared_difference_to_the_reconstruction(parts, fitted):
    recon = fitted.reconstruct(parts)
    assert recon.dtype == np.float32 and recon.min() >= 0 and recon.max() <= 1
    np.testing.assert_array_equal(fitted.transform(parts), np.abs(parts - recon))
    squared = CPCAEResidualMap(**{**FAST, "residual": "squared"}).fit(parts)
    np.testing.assert_array_equal(squared.transform(parts), np.square(parts - recon))


def test_relative_and_log_residuals_are_in_units_of_the_expected_intensity(parts, fitted):
    recon = fitted.reconstruct(parts)
    relative = CPCAEResidualMap(**{**FAST, "residual": "relative"}).fit(parts)
    expected = np.clip(np.abs(parts - recon) / np.maximum(recon, 0.05), 0, 1)
    np.testing.assert_allclose(relative.transform(parts), expected, rtol=1e-6)
    log = CPCAEResidualMap(**{**FAST, "residual": "log"}).fit(parts)
    expected = np.clip(np.abs(np.log(parts + 0.02) - np.log(recon + 0.02)) / 2, 0, 1)
    np.testing.assert_allclose(log.transform(parts), expected, rtol=1e-5, atol=1e-7)
    # the same absolute error weighs more where the expected intensity is low
    from skcpcae.residuals._cpcae import residual_map

    dark, bright = residual_map(np.array([[0.1, 0.8]]), np.array([[0.2, 0.9]]), "relative")[0]
    assert dark > bright


def test_auto_gain_exposes_the_training_residuals_99th_percentile_at_one(parts):
    plain = CPCAEResidualMap(**{**FAST, "residual": "relative", "gain": None}).fit(parts)
    auto = CPCAEResidualMap(**{**FAST, "residual": "relative", "gain": "auto"}).fit(parts)
    assert plain.gain_ == 1.0
    R = plain.transform(parts)
    # same seed, same net: the auto map is the plain one scaled by gain_ and clipped at 1
    assert auto.gain_ == pytest.approx(1 / np.quantile(R, 0.99), rel=0.05)
    assert auto.gain_ > 1  # residuals are small: the map is brightened, not darkened
    G = auto.transform(parts)
    np.testing.assert_allclose(G, np.clip(R * np.float32(auto.gain_), 0, 1), rtol=1e-6)
    assert G.max() == 1 and 0.002 < np.mean(G == 1) < 0.03  # about the top 1 % clipped
    # the same on the out-of-fold path, and a fixed factor is used as given
    np.testing.assert_array_equal(auto.fit_transform(parts), G)
    fixed = CPCAEResidualMap(**{**FAST, "residual": "relative", "gain": 2.5}).fit(parts)
    assert fixed.gain_ == 2.5
    np.testing.assert_allclose(fixed.transform(parts), np.clip(R * 2.5, 0, 1), rtol=1e-6)


def test_auto_gain_keeps_a_perfect_reconstruction_at_zero(parts):
    flat = np.full((6, 16, 16), 0.5, np.float32)
    est = CPCAEResidualMap(**{**FAST, "max_epochs": 1, "gain": "auto"}).fit(flat)
    assert np.isfinite(est.gain_) and est.gain_ > 0
    assert np.isfinite(est.transform(flat)).all()


def test_old_model_without_gain_loads_as_gain_none(fitted, parts):
    state = fitted.__getstate__()
    state.pop("gain"), state.pop("gain_")
    old = CPCAEResidualMap.__new__(CPCAEResidualMap)
    old.__setstate__(state)
    assert old.gain is None and old.gain_ == 1.0
    np.testing.assert_array_equal(old.transform(parts), fitted.transform(parts))


def test_cosine_schedule_anneals_the_learning_rate(parts):
    est = CPCAEResidualMap(**{**FAST, "max_epochs": 4, "lr": 1e-2, "lr_schedule": "cosine"})
    est.fit(parts)
    lrs = [group["lr"] for group in est.net_.optimizer_.param_groups]
    assert lrs[0] < 1e-2 * 0.2  # after 4 of 4 epochs the cosine is near 0
    assert CPCAEResidualMap(**FAST).fit(parts).net_.optimizer_.param_groups[0]["lr"] == 1e-3


def test_random_state_makes_training_reproducible_bit_for_bit(parts):
    state = torch.random.get_rng_state()
    a = CPCAEResidualMap(**FAST).fit(parts).transform(parts)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    b = CPCAEResidualMap(**FAST).fit(parts).transform(parts)
    c = CPCAEResidualMap(**{**FAST, "random_state": 1}).fit(parts).transform(parts)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_whole_batch_reads_train_as_row_by_row_reads_do_bit_for_bit(parts):
    # The net reads each mini-batch whole (one fancy index, not one row per call): the same
    # patches in the same order, so the same weights as skorch's own row-by-row dataset.
    est = CPCAEResidualMap(**{**FAST, "batch_size": 5})  # 72 patches: a short last batch
    images, _ = est._fit_setup(parts)
    net = est._make_net()
    assert net.dataset is _PatchBatches and net.iterator_train__collate_fn is _collate_batch
    weights = {}
    patches, index = est._patches(images)
    for name, dataset in [("whole", _PatchBatches), ("rows", Dataset)]:  # rows: default_collate
        net = est._make_net().set_params(dataset=dataset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            net.fit({"patches": patches, "index": index}, None)
        weights[name] = [p.detach().clone() for p in net.module_.parameters()]
        assert len(net.history[-1, "batches"]) == 15  # ceil(72 / 5)
    for a, b in zip(weights["whole"], weights["rows"], strict=True):
        assert torch.equal(a, b)


def test_refit_forgets_the_previous_fit(parts):
    est = CPCAEResidualMap(**FAST).fit(parts[:, :, :12])
    est.fit(parts)
    np.testing.assert_array_equal(
        est.transform(parts), CPCAEResidualMap(**FAST).fit(parts).transform(parts)
    )


def test_transform_of_an_image_does_not_depend_on_the_batch(parts, fitted):
    full = fitted.transform(parts)
    np.testing.assert_array_equal(fitted.transform(parts[5:2:-1]), full[5:2:-1])


def test_training_lowers_the_loss(parts):
    est = CPCAEResidualMap(**{**FAST, "max_epochs": 10, "lr": 1e-2}).fit(parts)
    losses = est.net_.history[:, "train_loss"]
    assert len(losses) == 10
    assert losses[-1] < 0.5 * losses[0]


def test_verbose_prints_the_epoch_log(parts, capsys):
    CPCAEResidualMap(**{**FAST, "max_epochs": 1}).fit(parts)
    assert capsys.readouterr().out == ""
    CPCAEResidualMap(**{**FAST, "max_epochs": 1, "verbose": 1}).fit(parts)
    out = capsys.readouterr().out
    assert "epoch" in out and "train_loss" in out


def test_joblib_round_trip_gives_identical_residuals(parts, fitted):
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert loaded.device_ == "cpu"
    np.testing.assert_array_equal(loaded.transform(parts), fitted.transform(parts))
    refit = clone(loaded).fit(parts)
    np.testing.assert_array_equal(refit.transform(parts), fitted.transform(parts))


def test_pickle_of_a_net_marked_as_cuda_holds_only_numpy_weights(parts):
    # Exercise the CUDA branch of __getstate__ on a CPU machine: the net claims a CUDA
    # device; the pickle must hold no torch object and leave the original untouched.
    est = CPCAEResidualMap(**FAST).fit(parts)
    expected = est.transform(parts)
    est.net_.device = "cuda:0"
    est.device_ = "cuda:0"
    state = est.__getstate__()
    assert "net_" not in state and state["device_"] == "cpu"
    assert state["_fitted_device"] == "cuda:0"
    assert all(isinstance(v, np.ndarray) for v in state["_net_weights"].values())
    assert est.net_.device == "cuda:0"  # the fitted estimator is not changed
    blob = pickle.dumps(est)
    if not torch.cuda.is_available():
        # the same warning as every torch estimator (utils._torch.device_after_unpickling)
        with pytest.warns(UserWarning, match="fitted on 'cuda:0' but CUDA is not available"):
            loaded = pickle.loads(blob)
        assert loaded.device_ == "cpu" and loaded.net_.device == "cpu"
        np.testing.assert_array_equal(loaded.transform(parts), expected)


def test_unpickling_leaves_the_global_torch_rng_alone(parts):
    est = CPCAEResidualMap(**FAST).fit(parts)
    blob = pickle.dumps(est)
    before = torch.random.get_rng_state()
    pickle.loads(blob)
    assert torch.equal(before, torch.random.get_rng_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fitted_pickle_loads_on_a_cpu_only_machine(parts, tmp_path):
    est = CPCAEResidualMap(**{**FAST, "device": "cuda"}).fit(parts)
    expected = est.transform(parts)
    path = tmp_path / "cpcae_cuda.joblib"
    joblib.dump(est, path)
    np.save(tmp_path / "X.npy", parts)
    code = textwrap.dedent(f"""
        import joblib, numpy as np, torch
        assert not torch.cuda.is_available()
        est = joblib.load({str(path)!r})
        assert est.device_ == "cpu", est.device_
        np.save({str(tmp_path / "R.npy")!r}, est.transform(np.load({str(tmp_path / "X.npy")!r})))
    """)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    np.testing.assert_allclose(np.load(tmp_path / "R.npy"), expected, atol=1e-5)
    loaded = joblib.load(path)  # on this machine it goes back to the GPU
    assert loaded.device_.startswith("cuda")
    np.testing.assert_allclose(loaded.transform(parts), expected, atol=1e-6)


def test_fit_transform_without_cv_equals_fit_then_transform(parts, fitted):
    np.testing.assert_array_equal(
        CPCAEResidualMap(**FAST).fit_transform(parts), fitted.transform(parts)
    )


def test_cross_fitted_residuals_are_out_of_fold(parts, fitted, monkeypatch):
    trained_on, scored = [], []
    original_train = CPCAEResidualMap._train
    original_residuals = CPCAEResidualMap._residuals

    def train(self, images, seed):
        net = original_train(self, images, seed)
        trained_on.append((net, {img.tobytes() for img in images}))
        return net

    def residuals(self, net, images):
        scored.append((net, {img.tobytes() for img in images}))
        return original_residuals(self, net, images)

    monkeypatch.setattr(CPCAEResidualMap, "_train", train)
    monkeypatch.setattr(CPCAEResidualMap, "_residuals", residuals)
    est = CPCAEResidualMap(**{**FAST, "cv": 2})
    R = est.fit_transform(parts)
    monkeypatch.undo()

    all_images = {img.tobytes() for img in parts}
    assert len(trained_on) == 3  # the full net, then one per fold
    assert trained_on[0][0] is est.net_ and trained_on[0][1] == all_images
    assert len(scored) == 2
    seen = set()
    for net, images in scored:
        train_set = dict((id(n), s) for n, s in trained_on)[id(net)]
        assert net is not est.net_
        assert not images & train_set  # out of fold
        seen |= images
    assert seen == all_images

    assert R.shape == parts.shape and R.dtype == np.float32
    in_sample = fitted.transform(parts)
    assert not np.allclose(R, in_sample)  # fit(X).transform(X) differs from fit_transform(X)
    # transform after a cross-fitted fit uses the net fitted on all images
    np.testing.assert_array_equal(est.transform(parts), in_sample)


def test_cv_larger_than_the_number_of_images_raises(parts):
    with pytest.raises(ValueError, match="n_splits"):
        CPCAEResidualMap(**{**FAST, "cv": 9}).fit_transform(parts)


def test_int_cv_is_shuffled_kfold_seeded_from_random_state(parts, monkeypatch):
    # the rule of utils/_cv.py: net seed, then fold seed, then one seed per fold, all drawn
    # from random_state in that order (as before splitters were accepted)
    from sklearn.model_selection import KFold

    from skcpcae.utils._torch import seed_from

    rng = np.random.RandomState(0)
    seed_from(rng)
    folds = list(KFold(2, shuffle=True, random_state=seed_from(rng)).split(parts))
    seen = []
    original = CPCAEResidualMap._train
    monkeypatch.setattr(CPCAEResidualMap, "_train",
                        lambda self, images, seed: seen.append(images) or original(
                            self, images, seed))
    CPCAEResidualMap(**{**FAST, "cv": 2}).fit_transform(parts)
    for (train, _), images in zip(folds, seen[1:], strict=True):
        np.testing.assert_array_equal(images, parts[train])


@pytest.mark.parametrize("make_cv", [
    lambda: __import__("sklearn.model_selection").model_selection.KFold(2),
    lambda: [(np.arange(4, 8), np.arange(4)), (np.arange(4), np.arange(4, 8))],
], ids=["splitter", "iterable"])
def test_cv_accepts_a_splitter_or_an_iterable_of_splits(parts, make_cv):
    R = CPCAEResidualMap(**{**FAST, "cv": make_cv()}).fit_transform(parts)
    assert R.shape == parts.shape and np.isfinite(R).all()


def test_cv_whose_test_folds_do_not_partition_the_images_raises(parts):
    cv = [(np.arange(4, 8), np.arange(4))]  # images 4..7 never held out
    with pytest.raises(ValueError, match="must partition the training samples"):
        CPCAEResidualMap(**{**FAST, "cv": cv}).fit_transform(parts)


def test_errors_before_fit_and_on_a_wrong_image_shape(parts, fitted):
    with pytest.raises(NotFittedError):
        CPCAEResidualMap().transform(parts)
    with pytest.raises(ValueError, match="16"):
        fitted.transform(parts[:, :, :12])


@pytest.mark.parametrize("channels", [(), (4, 0), (4, 2.5)])
def test_invalid_channels_raise(parts, channels):
    with pytest.raises(ValueError, match="channels"):
        CPCAEResidualMap(**{**FAST, "channels": channels}).fit(parts)


@pytest.mark.parametrize("input_size", [(8,), (8, 0), (8, 8, 8)])
def test_invalid_input_size_raises(parts, input_size):
    with pytest.raises(ValueError, match="input_size"):
        CPCAEResidualMap(**{**FAST, "input_size": input_size}).fit(parts)


def test_values_outside_unit_range_warn(parts):
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        CPCAEResidualMap(**{**FAST, "max_epochs": 1}).fit(parts * 255)


def test_uint8_images_are_scaled(parts):
    X8 = np.round(parts * 255).astype(np.uint8)
    est = CPCAEResidualMap(**FAST).fit(X8)
    np.testing.assert_array_equal(
        est.transform(X8), CPCAEResidualMap(**FAST).fit(X8 / np.float32(255)).transform(X8)
    )


def test_image_size_is_a_deprecated_name_of_input_size(parts):
    params = {k: v for k, v in FAST.items() if k != "input_size"}
    old = CPCAEResidualMap(image_size=12, **params)
    assert clone(old).get_params()["image_size"] == 12  # get_params / clone keep it
    with pytest.warns(FutureWarning, match=r"\(image_size=\.\.\.\) is deprecated.*input_size") \
            as record:
        old.fit(parts)
    assert record[0].filename == __file__
    new = CPCAEResidualMap(input_size=12, **params).fit(parts)
    assert old.working_shape_ == new.working_shape_ == (12, 12)
    np.testing.assert_array_equal(old.transform(parts), new.transform(parts))
    with pytest.raises(ValueError, match="both image_size"):
        CPCAEResidualMap(image_size=12, input_size=8, **params).fit(parts)
    with pytest.warns(FutureWarning, match="image_size"):  # fit_transform warns too
        CPCAEResidualMap(image_size=12, **params).fit_transform(parts)


def test_model_saved_before_the_rename_loads_with_input_size(parts, fitted):
    state = fitted.__getstate__()
    state["image_size"] = state.pop("input_size")  # what a file written before 0.1 holds
    loaded = CPCAEResidualMap.__new__(CPCAEResidualMap)
    loaded.__setstate__(state)
    assert loaded.get_params()["input_size"] == fitted.input_size
    assert loaded.get_params()["image_size"] == "deprecated"
    np.testing.assert_array_equal(loaded.transform(parts), fitted.transform(parts))
