# SPDX-License-Identifier: BSD-3-Clause
"""Image-level common checks: scikit-learn's contracts on real ``(n, H, W[, C])`` images.

scikit-learn's common checks (:func:`sklearn.utils.estimator_checks.parametrize_with_checks`)
feed tables, which the image stages read as one-pixel-high images: a registration or a
convolutional network is then barely exercised. These checks feed six 32x32 synthetic parts
(:func:`skcpcae.datasets.make_parts`), grayscale and, for the estimators that accept it,
colour; an estimator that takes tables only (no ``three_d_array`` tag) gets the same images
flattened into a table ``(n, H * W)``.

Each check is a plain function ``check_xxx(name, estimator)`` that raises ``AssertionError``
with a message saying what broke; :func:`image_checks_generator` yields them for an
estimator, as scikit-learn's ``estimator_checks`` does, and
:func:`parametrize_with_image_checks` turns them into a pytest parametrization with strict
expected failures.

Tolerance. Batch and subset invariance compare with ``rtol=1e-7, atol=0`` (scikit-learn's
``check_methods_subset_invariance``) unless the estimator declares a looser one in a
``_batch_tolerance`` class attribute (``{"rtol": ..., "atol": ...}``): the backbone
embedders declare the batch-size tolerance their ``batch_size`` docstring documents.
"""

import copy
import inspect
import os
import pickle
import re
import tempfile
from functools import partial

import joblib
import numpy as np
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "check_image_batch_invariance",
    "check_image_clone",
    "check_image_fit_idempotent",
    "check_image_fitted_attributes",
    "check_image_methods_leave_estimator_unchanged",
    "check_image_not_fitted",
    "check_image_output_layout",
    "check_image_pickle",
    "check_image_seeding",
    "check_image_skops",
    "check_image_subset_invariance",
    "image_checks_generator",
    "parametrize_with_image_checks",
]

#: Methods the checks call, in this order, when the fitted estimator has them.
PREDICT_METHODS = ("transform", "score_samples", "decision_function", "predict")

_N_IMAGES = 6
_SIZE = (32, 32)
_DEFAULT_TOLERANCE = {"rtol": 1e-7, "atol": 0.0}


# -- data ---------------------------------------------------------------------------------------

def _images(color=False):
    from ..datasets import make_parts

    X, _ = make_parts(_N_IMAGES, size=_SIZE, color=color, random_state=0)
    return X.astype(np.float32)


def _takes_images(estimator):
    return get_tags(estimator).input_tags.three_d_array


def _needs_y(estimator):
    return "y" in inspect.signature(estimator.fit).parameters and (
        inspect.signature(estimator.fit).parameters["y"].default is inspect.Parameter.empty
    )


def _data(estimator, color=False):
    """``(X, y)`` for ``estimator``: images, or the same images pooled into a table."""
    from ..datasets import make_parts

    if _needs_y(estimator):  # fitted on labelled data: four normal parts, two defective
        X, y = make_parts(_N_IMAGES - 2, size=_SIZE, n_anomalies=2, color=color,
                          random_state=0)
    else:
        X, y = make_parts(_N_IMAGES, size=_SIZE, color=color, random_state=0)[0], None
    X = X.astype(np.float32)
    if not _takes_images(estimator):
        # 8x8 block means: a 16-column table, the kind of input an embedder hands a scorer
        n, h, w = X.shape[:3]
        X = X.reshape(n, h // 8, 8, w // 8, 8, -1).mean(axis=(2, 4, 5)).reshape(n, -1)
    return X, y


# Fitted estimators shared by the checks that only read a fitted model (layout, invariances,
# round trips): ``{(class name, joblib.hash of the parameters, color): fitted estimator}``.
# A check receives a deep copy, so it cannot change what the next check sees.
_FITTED = {}


def _fitted(estimator, color=False):
    est = _seeded(estimator)
    key = (type(est).__name__, joblib.hash(est.get_params(deep=True)), color)
    if key not in _FITTED:
        _FITTED[key] = _fit(est, *_data(est, color))
    return copy.deepcopy(_FITTED[key])


def _accepts_color(estimator):
    """Whether an image estimator fits on 3-channel images (a ValueError says it does not)."""
    if not _takes_images(estimator):
        return False
    try:
        _fitted(estimator, color=True)
    except ValueError:
        return False
    return True


def _fit(estimator, X, y):
    return estimator.fit(X, y) if y is not None else estimator.fit(X)


def _methods(estimator):
    return [m for m in PREDICT_METHODS if hasattr(estimator, m)]


def _outputs(estimator, X):
    # decision_function is score_samples - offset_ in every skcpcae detector: comparing
    # score_samples and predict covers it at a third less backbone passes
    methods = _methods(estimator)
    if "score_samples" in methods and "decision_function" in methods:
        methods.remove("decision_function")
    return {m: np.asarray(getattr(estimator, m)(X)) for m in methods}


def _tolerance(estimator):
    tol = dict(_DEFAULT_TOLERANCE)
    tol.update(getattr(estimator, "_batch_tolerance", {}))
    inner = getattr(estimator, "estimator", None)  # a meta-estimator inherits its detector's
    if inner is not None and hasattr(inner, "get_params"):
        for key, value in _tolerance(inner).items():
            tol[key] = max(tol[key], value)
    steps = getattr(inner, "steps", None) or getattr(estimator, "steps", None) or []
    for _, step in steps:
        if hasattr(step, "get_params"):
            for key, value in _tolerance(step).items():
                tol[key] = max(tol[key], value)
    return tol


def _assert_same(name, what, expected, actual, **tol):
    for method in expected:
        try:
            assert_allclose(actual[method], expected[method], **tol)
        except AssertionError as exc:
            raise AssertionError(f"{name}.{method}: {what} ({tol}).\n{exc}") from None


def _seeded(estimator):
    if "random_state" in estimator.get_params():
        return clone(estimator).set_params(random_state=0)
    return clone(estimator)


# -- checks -------------------------------------------------------------------------------------

def check_image_output_layout(name, estimator, color=False):
    """Check that images in give images of the same ``n`` and ``(H, W)`` out, or a table.

    An image transformer returns ``(n, H, W[, C])`` in the layout it received (a patch-feature
    embedder, which has a ``feature_shape_``, returns ``(n, h, w, C)`` on that grid), in each
    dtype its ``preserves_dtype`` tag lists; an embedder returns ``(n, n_features_out_)``; a
    detector's scores and labels are ``(n,)``, labels in {-1, +1}.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.
    color : bool, default=False
        Check on 3-channel images instead of grayscale ones.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator, color)
    X, y = _data(est, color)
    n = X.shape[0]
    for method, out in _outputs(est, X).items():
        if method != "transform":
            assert out.shape == (n,), (
                f"{name}.{method} on {X.shape} returned shape {out.shape}, expected ({n},)."
            )
            if method == "predict":
                assert set(np.unique(out)) <= {-1, 1}, (
                    f"{name}.predict returned {np.unique(out)}, expected values in {{-1, 1}}."
                )
            continue
        assert out.shape[0] == n, f"{name}.transform on {n} samples returned {out.shape}."
        if out.ndim >= 3:
            grid = tuple(getattr(est, "feature_shape_", X.shape[1:3]))
            assert out.shape[1:3] == grid, (
                f"{name}.transform on images {X.shape} returned {out.shape}: expected the "
                f"image grid {grid}."
            )
            if not hasattr(est, "feature_shape_"):
                assert out.ndim == X.ndim, (
                    f"{name}.transform changed the layout: {X.shape} -> {out.shape}."
                )
        else:
            assert out.ndim == 2, (
                f"{name}.transform returned {out.shape}, neither images nor a table."
            )
            if hasattr(est, "n_features_out_"):
                assert out.shape[1] == est.n_features_out_, (
                    f"{name}.transform returned {out.shape[1]} columns, "
                    f"n_features_out_ = {est.n_features_out_}."
                )
    tags = get_tags(est)
    if tags.transformer_tags is not None and hasattr(est, "transform"):
        for dtype in tags.transformer_tags.preserves_dtype:
            fitted = est if X.dtype == dtype else _fit(_seeded(estimator), X.astype(dtype), y)
            out = np.asarray(fitted.transform(X.astype(dtype)))
            assert out.dtype == np.dtype(dtype), (
                f"{name}.transform turned {dtype} input into {out.dtype}, though its tags "
                f"say it preserves {dtype}."
            )


def check_image_batch_invariance(name, estimator, color=False):
    """Check that predicting image by image gives what the whole batch gives.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.
    color : bool, default=False
        Check on 3-channel images instead of grayscale ones.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator, color)
    X, _ = _data(est, color)
    full = _outputs(est, X)
    one_by_one = {
        m: np.concatenate([np.asarray(getattr(est, m)(X[i:i + 1])) for i in range(len(X))])
        for m in full
    }
    _assert_same(name, "image by image differs from the whole batch", full, one_by_one,
                 **_tolerance(est))


def check_image_subset_invariance(name, estimator, color=False):
    """Check that the outputs of a subset of the images are that subset of the outputs.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.
    color : bool, default=False
        Check on 3-channel images instead of grayscale ones.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator, color)
    X, _ = _data(est, color)
    full = {m: out[1:4] for m, out in _outputs(est, X).items()}
    subset = _outputs(est, X[1:4])
    _assert_same(name, "outputs of X[1:4] differ from rows 1:4 of the outputs of X", full,
                 subset, **_tolerance(est))


def check_image_seeding(name, estimator):
    """Check that two fits with the same ``random_state`` (0) give the same model.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    X, y = _data(estimator)
    first = _outputs(_fitted(estimator), X)
    second = _outputs(_fit(_seeded(estimator), X, y), X)
    _assert_same(name, "two fits with random_state=0 differ", first, second,
                 **_tolerance(estimator))


def check_image_fit_idempotent(name, estimator):
    """Check that fitting a fitted instance again gives the same model.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator)
    X, y = _data(est)
    first = _outputs(est, X)
    second = _outputs(_fit(est, X, y), X)
    _assert_same(name, "the second fit differs from the first", first, second,
                 **_tolerance(est))


def check_image_clone(name, estimator):
    """Check that ``clone`` of a fitted estimator has its parameters and no fitted state.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator)
    cloned = clone(est)
    assert joblib.hash(cloned.get_params(deep=True)) == joblib.hash(est.get_params(deep=True)), (
        f"clone({name}) has other parameters than the original."
    )
    fitted = sorted(a for a in vars(cloned) if a.endswith("_") and not a.startswith("__"))
    assert not fitted, f"clone({name}) of a fitted estimator keeps fitted attributes {fitted}."


def check_image_pickle(name, estimator, color=False):
    """Check that a pickle round trip of the fitted estimator keeps its outputs exactly.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.
    color : bool, default=False
        Check on 3-channel images instead of grayscale ones.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator, color)
    X, _ = _data(est, color)
    loaded = pickle.loads(pickle.dumps(est))
    _assert_same(name, "outputs changed through pickle", _outputs(est, X), _outputs(loaded, X),
                 rtol=0, atol=0)


def check_image_skops(name, estimator, color=False):
    """Check that a skops round trip (:func:`skcpcae.persistence.save`, ``load``) keeps outputs.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.
    color : bool, default=False
        Check on 3-channel images instead of grayscale ones.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    from ..persistence import load, save

    est = _fitted(estimator, color)
    X, _ = _data(est, color)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.skops")
        save(est, path)
        loaded = load(path)
    _assert_same(name, "outputs changed through skops save/load", _outputs(est, X),
                 _outputs(loaded, X), rtol=0, atol=0)


def check_image_not_fitted(name, estimator):
    """Check that before ``fit`` every prediction method raises ``NotFittedError``.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = clone(estimator)
    X, _ = _data(est)
    for method in PREDICT_METHODS:
        if not hasattr(est, method):
            continue
        try:
            getattr(est, method)(X)
        except NotFittedError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"{name}.{method} before fit raised {type(exc).__name__}: {exc}; expected "
                "NotFittedError."
            ) from None
        raise AssertionError(f"{name}.{method} before fit did not raise NotFittedError.")


def check_image_fitted_attributes(name, estimator):
    """Check that fitted attributes (``name_``) appear in ``fit`` and only there.

    No ``name_`` attribute exists before ``fit``, which adds only ``name_`` or ``_name``
    ones; :func:`~sklearn.utils.validation.check_is_fitted` fails before ``fit`` and passes
    after it, and ``fit`` leaves the parameters as they were.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _seeded(estimator)
    before = set(vars(est))
    early = sorted(a for a in before if a.endswith("_") and not a.startswith("__"))
    assert not early, f"{name} has fitted attributes before fit: {early}."
    try:
        check_is_fitted(est)
    except NotFittedError:
        pass
    else:
        raise AssertionError(f"{name}: check_is_fitted passes before fit.")
    fitted = _fitted(estimator)
    check_is_fitted(fitted)
    public = sorted(a for a in set(vars(fitted)) - before if not a.startswith("_"))
    wrong = [a for a in public if not a.endswith("_")]
    assert not wrong, f"{name}.fit set public attributes not ending in '_': {wrong}."
    assert public, f"{name}.fit set no fitted attribute (name ending in '_')."
    assert joblib.hash(fitted.get_params(deep=False)) == joblib.hash(est.get_params(deep=False)), (
        f"{name}.fit changed its parameters."
    )


def check_image_methods_leave_estimator_unchanged(name, estimator):
    """Check that ``transform``, ``predict``, ``score_samples``... leave ``__dict__`` as is.

    Parameters
    ----------
    name : str
        The estimator's name, used in the error messages.
    estimator : estimator instance
        An unfitted estimator; the check fits clones of it.

    Raises
    ------
    AssertionError
        When the estimator breaks the contract; the message says how.
    """
    est = _fitted(estimator)
    X, _ = _data(est)
    for method in _methods(est):
        before = {k: joblib.hash(v) for k, v in est.__dict__.items()}
        getattr(est, method)(X)
        after = {k: joblib.hash(v) for k, v in est.__dict__.items()}
        if before != after:
            changed = sorted(k for k in before.keys() | after.keys()
                             if before.get(k) != after.get(k))
            raise AssertionError(
                f"{name}.{method} changed the estimator's __dict__ (joblib.hash of "
                f"{changed} differs before and after the call)."
            )


# -- generators ---------------------------------------------------------------------------------

_CHECKS_WITH_COLOR = (
    check_image_output_layout,
    check_image_batch_invariance,
    check_image_subset_invariance,
    check_image_pickle,
    check_image_skops,
)
_GRAY_ONLY_CHECKS = (
    check_image_seeding,
    check_image_fit_idempotent,
    check_image_clone,
    check_image_not_fitted,
    check_image_fitted_attributes,
    check_image_methods_leave_estimator_unchanged,
)


def _check_name(check):
    if isinstance(check, partial):
        extra = ", ".join(f"{k}={v!r}" for k, v in check.keywords.items())
        return f"{check.func.__name__}({extra})" if extra else check.func.__name__
    return check.__name__


def _estimator_id(estimator):
    return re.sub(r"\s+", "", repr(estimator))  # one line, as scikit-learn's ids


def _yield_image_checks(estimator):
    name = type(estimator).__name__
    color = _accepts_color(estimator)
    for check in _CHECKS_WITH_COLOR:
        yield partial(check, name)
        if color:
            yield partial(check, name, color=True)
    for check in _GRAY_ONLY_CHECKS:
        yield partial(check, name)


def image_checks_generator(estimators, *, expected_failed_checks=None):
    """Yield ``(estimator, check, reason)`` for every image check of every estimator.

    Parameters
    ----------
    estimators : list of estimator instances
        Estimators to check (fast parameters: tiny networks, one epoch).
    expected_failed_checks : callable or None, default=None
        ``expected_failed_checks(estimator)`` returns ``{check_name: reason}`` for that
        estimator; ``check_name`` is the check's function name, followed by ``(color=True)``
        for the colour variant.

    Yields
    ------
    estimator : estimator instance
        A fresh clone for each check.
    check : callable
        Call ``check(estimator)``; it raises ``AssertionError`` when the contract breaks.
    reason : str or None
        Why the check is expected to fail, or None.
    """
    for estimator in estimators:
        expected = dict(expected_failed_checks(estimator)) if expected_failed_checks else {}
        for check in _yield_image_checks(estimator):
            yield clone(estimator), check, expected.pop(_check_name(check), None)
        if expected:
            raise ValueError(
                f"expected_failed_checks of {type(estimator).__name__} names checks that "
                f"do not exist: {sorted(expected)}."
            )


def parametrize_with_image_checks(estimators, *, expected_failed_checks=None):
    """A ``pytest.mark.parametrize`` over the image checks, with strict expected failures.

    Parameters
    ----------
    estimators : list of estimator instances
        Estimators to check.
    expected_failed_checks : callable or None, default=None
        ``expected_failed_checks(estimator)`` returns ``{check_name: reason}``; those checks
        are marked ``xfail(strict=True)``: one that passes fails the test run.

    Returns
    -------
    decorator : pytest.mark.parametrize
        Parametrizes the arguments ``estimator`` and ``check``.

    See Also
    --------
    sklearn.utils.estimator_checks.parametrize_with_checks : scikit-learn's checks.

    Examples
    --------
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> from skcpcae.utils.estimator_checks import parametrize_with_image_checks
    >>> @parametrize_with_image_checks([KNNAnomalyScorer(n_neighbors=2)])
    ... def test_image_checks(estimator, check):
    ...     check(estimator)
    """
    import pytest

    params = []
    for estimator, check, reason in image_checks_generator(
        estimators, expected_failed_checks=expected_failed_checks
    ):
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(estimator, check, marks=marks,
                                   id=f"{_estimator_id(estimator)}-{_check_name(check)}"))
    return pytest.mark.parametrize("estimator, check", params)
