"""Reproducibility, chunked scoring and property tests of input validation and metrics.

* Same data + same ``random_state`` ⇒ bit-identical outputs of the full fitted pipeline on
  CPU: fitted twice in one process, and fitted in this process, pickled, then loaded (and
  refitted) in a fresh Python process.
* Fitting leaves the global random states (torch, numpy, ``random``) alone.
* ``skcpcae.utils._chunked``: chunked scoring gives the scores of the whole batch.
* hypothesis: ``skcpcae._base.validate_images`` on random shapes and dtypes either returns
  float32 images with the documented conversion or raises ValueError / TypeError;
  ``image_auroc`` is invariant to monotone transforms of the score; ``to_anomaly_labels``
  round trips.
"""

import copy
import json
import random
import subprocess
import sys
import textwrap
import warnings

import joblib
import numpy as np
import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from skcpcae._base import validate_images
from skcpcae._pipelines import make_cpcae_pipeline
from skcpcae.datasets import make_parts
from skcpcae.metrics import image_auroc, to_anomaly_labels
from skcpcae.outlier import KNNAnomalyScorer
from skcpcae.utils._chunked import chunked_apply, chunked_score_samples

# Tiny but complete: ECC -> gamma -> CPCAE -> DeepPool (timm's small random test CNN) ->
# KDE threshold over scaler + k-NN.
PARAMS = {
    "register": True,
    "n_neighbors": 3,
    "random_state": 0,
    "cpcaeresidualmap__input_size": 16,
    "cpcaeresidualmap__patch_size": 8,
    "cpcaeresidualmap__channels": (4,),
    "cpcaeresidualmap__latent_dim": 4,
    "cpcaeresidualmap__max_epochs": 1,
    "cpcaeresidualmap__device": "cpu",
    "deeppoolembedder__backbone": "test_efficientnet",
    "deeppoolembedder__weights": None,
    "deeppoolembedder__device": "cpu",
    "kdethresholdclassifier__cv": 3,
}
SEEDED = {**PARAMS, "deeppoolembedder__random_state": 0}


def _data():
    X, _ = make_parts(10, size=(24, 24), max_shift=0.03, max_rotation=2.0, random_state=0)
    T, y = make_parts(4, n_anomalies=4, size=(24, 24), max_shift=0.03, max_rotation=2.0,
                      random_state=1)
    return X, T, y


def _fit(params=SEEDED):
    X, _, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_cpcae_pipeline(**params).fit(X)


def _outputs(pipe, T):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {
            "score_samples": pipe.score_samples(T),
            "decision_function": pipe.decision_function(T),
            "predict": pipe.predict(T),
        }


@pytest.fixture(scope="module")
def fitted():
    return _fit()


# ----------------------------------------------------------------------------- same process
def test_refit_gives_bit_identical_scores(fitted):
    _, T, _ = _data()
    first = _outputs(fitted, T)
    second = _outputs(_fit(), T)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert np.isfinite(first["score_samples"]).all()
    # the scores are not trivially constant: the check above could fail
    assert np.ptp(first["score_samples"]) > 0


def test_pipeline_random_state_alone_makes_fit_reproducible():
    _, T, _ = _data()
    a = _outputs(_fit(PARAMS), T)["score_samples"]
    b = _outputs(_fit(PARAMS), T)["score_samples"]
    np.testing.assert_array_equal(a, b)


def test_fit_leaves_global_random_states_alone():
    torch_state = torch.random.get_rng_state()
    np_state = copy.deepcopy(np.random.get_state())
    py_state = random.getstate()
    _fit()
    assert torch.equal(torch_state, torch.random.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1])
    assert py_state == random.getstate()


_CHILD = textwrap.dedent("""
    import json, sys, warnings
    import joblib, numpy as np, torch
    from sklearn.exceptions import ConvergenceWarning
    from skcpcae._pipelines import make_cpcae_pipeline

    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    warnings.simplefilter("ignore", ConvergenceWarning)
    data = np.load(args["data"])
    loaded = joblib.load(args["model"])
    refitted = make_cpcae_pipeline(**eval(args["params"])).fit(data["X"])
    np.savez(args["out"], loaded=loaded.score_samples(data["T"]),
             predict=loaded.predict(data["T"]), refitted=refitted.score_samples(data["T"]))
""")


def test_scores_identical_in_a_fresh_process(fitted, tmp_path):
    """Process A (this one) fits and pickles; process B loads the pickle and also refits."""
    X, T, _ = _data()
    model, data, out = tmp_path / "model.joblib", tmp_path / "data.npz", tmp_path / "out.npz"
    joblib.dump(fitted, model)
    np.savez(data, X=X, T=T)
    expected = _outputs(fitted, T)
    args = {"model": str(model), "data": str(data), "out": str(out), "params": repr(SEEDED),
            "threads": torch.get_num_threads()}  # same thread count: same float reductions
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    np.testing.assert_array_equal(got["loaded"], expected["score_samples"])
    np.testing.assert_array_equal(got["predict"], expected["predict"])
    np.testing.assert_array_equal(got["refitted"], expected["score_samples"])


# ----------------------------------------------------------------------------- chunked scoring
def test_chunked_score_samples_matches_whole_batch(fitted):
    _, T, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = fitted.score_samples(T)
        for batch_size in (1, 3, 5, len(T), 100):
            chunked = chunked_score_samples(fitted, T, batch_size=batch_size)
            assert chunked.shape == whole.shape and chunked.dtype == whole.dtype
            # every stage treats images independently, but the embedder's CNN sees batches
            # of another size (a batch of one image takes another kernel): float noise only,
            # judged on the scores' scale (the fused score of the CPCAE presets is centred
            # on the training median, so a normal image can score near 0)
            np.testing.assert_allclose(chunked, whole, rtol=1e-4,
                                       atol=1e-4 * float(np.abs(whole).max()))
        # a whole-batch chunk is the plain call
        np.testing.assert_array_equal(chunked_score_samples(fitted, T, batch_size=len(T)),
                                      whole)


def test_chunked_score_samples_bit_identical_with_per_image_embedder(fitted):
    _, T, _ = _data()
    pipe = copy.deepcopy(fitted).set_params(
        featureunion__embedding__deeppoolembedder__batch_size=1)  # the peak branch's CNN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = pipe.score_samples(T)
        for batch_size in (1, 3, 5):
            np.testing.assert_array_equal(chunked_score_samples(pipe, T, batch_size=batch_size),
                                          whole)


def test_chunked_apply_reads_memmap_and_lists(fitted, tmp_path):
    _, T, _ = _data()
    path = tmp_path / "T.npy"
    np.save(path, T)
    mm = np.load(path, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = fitted.predict(T)
        np.testing.assert_array_equal(chunked_apply(fitted.predict, mm, batch_size=3), whole)
        np.testing.assert_array_equal(chunked_apply(fitted.predict, list(T), batch_size=3),
                                      whole)
        emb = fitted[:-1].transform(T)
        chunked = chunked_apply(fitted[:-1].transform, mm, batch_size=3)
    assert chunked.shape == emb.shape and chunked.dtype == emb.dtype
    np.testing.assert_allclose(chunked, emb, rtol=1e-5, atol=1e-6)


def test_chunked_apply_is_exact_for_per_sample_methods():
    X = np.random.default_rng(0).normal(size=(97, 4))
    knn = KNNAnomalyScorer(n_neighbors=5).fit(X)
    np.testing.assert_array_equal(chunked_score_samples(knn, X, batch_size=10),
                                  knn.score_samples(X))


def test_chunked_apply_errors():
    X = np.zeros((10, 3))
    knn = KNNAnomalyScorer(n_neighbors=2).fit(np.random.default_rng(0).normal(size=(10, 3)))
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            chunked_score_samples(knn, X, batch_size=bad)
    with pytest.raises(TypeError, match="has no score_samples"):
        chunked_score_samples(object(), X)
    with pytest.raises(TypeError, match="method must be a callable"):
        chunked_apply("score_samples", X)
    # an empty batch reaches the estimator, which says what is wrong
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        chunked_score_samples(knn, X[:0], batch_size=4)
    # a method that does not return one result per sample is refused
    with pytest.raises(ValueError, match="one result per sample"):
        chunked_apply(lambda chunk: np.zeros(1), X, batch_size=4)
    with pytest.raises(ValueError, match="different shapes"):
        chunked_apply(lambda chunk: np.zeros((len(chunk), len(chunk))), X, batch_size=4)


# ----------------------------------------------------------------------------- properties
class _Probe(BaseEstimator):
    """The smallest estimator validate_images can record a fit on."""

    def fit(self, X, y=None):
        validate_images(self, X, reset=True)
        return self


_DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
           np.uint64, np.float16, np.float32, np.float64, np.complex64]


def _documented(X):
    """The conversion the docs promise: uint8 / 255, uint16 / 65535; other integers as is
    when they are 0/1, on the 8-bit scale up to 255, on the 16-bit scale up to 65535, and
    refused (NaN here, so that ``_valid`` expects an error) beyond or below zero; floats as is."""
    if X.dtype == np.uint8:
        return X.astype(np.float32) / np.float32(255)
    if X.dtype == np.uint16:
        return X.astype(np.float32) / np.float32(65535)
    if X.dtype.kind in "iu" and X.size:
        lo, hi = int(X.min()), int(X.max())
        if lo < 0 or hi > 65535:
            return np.full(X.shape, np.nan, np.float32)
        if hi > 255:
            return X.astype(np.float32) / np.float32(65535)
        if hi > 1:
            return X.astype(np.float32) / np.float32(255)
    return X.astype(np.float32)


@st.composite
def _batches(draw):
    ndim = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    if dtype.kind == "f":
        elements = st.floats(-2.0, 2.0, width=dtype.itemsize * 8) | st.sampled_from(
            [np.nan, np.inf, -np.inf, 1e300 if dtype.itemsize == 8 else 1.0]
        )
    elif dtype.kind == "c":
        elements = st.complex_numbers(max_magnitude=2.0, width=64)
    else:
        elements = None  # the dtype's whole range
    return draw(hnp.arrays(dtype, shape, elements=elements))


def _valid(X):
    if X.dtype.kind == "c" or X.ndim not in (2, 3, 4) or 0 in X.shape:
        return False
    if X.ndim == 2 and (X.dtype in (np.uint8, np.uint16) or X.shape[0] == X.shape[1] >= 32):
        return False  # one image without the batch axis: refused with a hint
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(_documented(X)).all())


@settings(max_examples=200, deadline=None)
@given(_batches(), st.booleans())
@example(np.array([[2.0]], dtype=np.float16), True)  # out of [0, 1]: warned and clipped
@example(np.array([[[-0.5, 0.25]]], dtype=np.float32), True)
def test_validate_images_converts_or_refuses(X, unit):
    with warnings.catch_warnings():
        # float64 beyond the float32 range: numpy warns about the overflowing cast before
        # the ValueError (the error is what is tested)
        warnings.simplefilter("ignore", RuntimeWarning)
        _check_validate_images(X, unit)


def _check_validate_images(X, unit):
    est = _Probe()
    value_range = "unit" if unit else None
    expect_ok = _valid(X)
    # the package's one rule (docs/conventions.md): values outside [0, 1] warn and are clipped
    clipped = False
    if expect_ok and unit:
        converted = _documented(X)
        clipped = not bool(converted.min() >= 0 and converted.max() <= 1)
    if not expect_ok:
        with pytest.raises((ValueError, TypeError)):
            validate_images(est, X, reset=True, value_range=value_range)
        return
    outside = (pytest.warns(UserWarning, match="expects pixel values in") if clipped
               else warnings.catch_warnings())
    with outside:
        images, was_2d = validate_images(est, X, reset=True, value_range=value_range)
    assert images.dtype == np.float32 and images.flags.c_contiguous
    assert was_2d == (X.ndim == 2)
    expected = np.clip(_documented(X), 0, 1) if clipped else _documented(X)
    if was_2d:
        expected = expected.reshape(X.shape[0], 1, X.shape[1])
    assert images.shape == expected.shape
    np.testing.assert_array_equal(images, expected)
    assert est.image_shape_ == images.shape[1:]
    assert est.n_features_in_ == int(np.prod(images.shape[1:]))
    # after the fit the same layout passes, another image shape is refused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the same warning as above, if any
        again, _ = validate_images(est, X, reset=False, value_range=value_range)
    np.testing.assert_array_equal(again, images)
    other = np.zeros((1,) + tuple(s + 1 for s in X.shape[1:]), dtype=X.dtype)
    with pytest.raises(ValueError, match="features"):
        validate_images(est, other, reset=False)
    check_is_fitted(est)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=2, max_size=40))
def test_validate_images_accepts_lists_of_images(flags):
    images = [np.full((3, 2), f, dtype=np.float32) for f in flags]
    out, was_2d = validate_images(_Probe(), images, reset=True)
    assert not was_2d
    np.testing.assert_array_equal(out, np.stack(images))


_MONOTONE = {
    "affine": lambda s: 3.0 * s - 7.0,
    "cube": lambda s: s**3,
    "exp": lambda s: np.exp(s / 10.0),
    "arctan": lambda s: np.arctan(s / 5.0),
}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(-50, 50)), min_size=2, max_size=60),
    st.sampled_from(sorted(_MONOTONE)),
)
def test_image_auroc_invariant_to_monotone_transforms(pairs, name):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float)
    assume(0 < y.sum() < len(y))
    auc = image_auroc(y, s)
    f = _MONOTONE[name]
    assert image_auroc(y, f(s)) == pytest.approx(auc, abs=1e-12)
    # a decreasing transform turns the ranking round
    assert image_auroc(y, -f(s)) == pytest.approx(1 - auc, abs=1e-12)
    # and the sklearn outlier labels (+1 normal, -1 anomalous) give the same AUROC
    assert image_auroc(1 - 2 * y, s) == pytest.approx(auc, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=50))
def test_to_anomaly_labels_round_trip(labels):
    y = np.array(labels)
    if y.all():  # all 1s is ambiguous (all anomalous, or all normal as +1): said aloud
        with pytest.warns(UserWarning, match="y holds only 1s"):
            np.testing.assert_array_equal(to_anomaly_labels(y), y)
    else:
        np.testing.assert_array_equal(to_anomaly_labels(y), y)
    np.testing.assert_array_equal(to_anomaly_labels(y.astype(bool)), y)
    assume(y.any())  # see the test below for all-normal +1 labels
    np.testing.assert_array_equal(to_anomaly_labels(1 - 2 * y), y)  # +1 / -1 convention
    back = 1 - 2 * to_anomaly_labels(1 - 2 * y)
    np.testing.assert_array_equal(back, 1 - 2 * y)


def test_to_anomaly_labels_all_normal_sklearn_labels_are_not_silently_anomalous():
    with pytest.warns(UserWarning, match="ambiguous"):
        to_anomaly_labels(np.ones(5, dtype=int))
