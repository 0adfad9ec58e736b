"""Bad-input catalogue: what every public estimator and loader does with wrong input.

``CATALOGUE`` is a table: one :class:`Row` per (component, bad input), each with the call that
feeds the bad input and the expected outcome, either

* an exception of a given type whose message matches a regex saying what was expected and
  what came, raised by skcpcae's or scikit-learn's own validation (never a ``cv2.error`` or an
  exception from inside torch, OpenCV, timm or skorch: the raising frame is checked), or
* a documented conversion / acceptance, with a check of the result (usually: identical to the
  result of the converted, well-formed input).

Rows whose outcome is not yet the expected one are marked ``xfail(strict=True)`` with what is
wrong; the fix is described in the reason. ``docs/bad_input.md`` is generated from this table
by ``benchmarks/bad_input_table.py`` (``python benchmarks/bad_input_table.py``) and a test
below checks that it is up to date.

Estimators are fitted once per module (lazily, on 8 synthetic 24x24 images) with tiny
parameters.
"""

import csv
import dataclasses
import importlib.util
import os
import re
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

from skcpcae.baselines import (
    AEL2Detector,
    NearestImageDetector,
    PatchCoreDetector,
    VariationDetector,
)
from skcpcae.datasets import (
    ImageReader,
    load_folder,
    load_images,
    load_mvtec_ad,
    make_parts,
    save_image,
)
from skcpcae.embedding import DeepPatchEmbedder, DeepPoolEmbedder
from skcpcae.outlier import (
    GMMAnomalyScorer,
    KDEAnomalyScorer,
    KDEThresholdClassifier,
    KNNAnomalyScorer,
    PatchKNNScorer,
)
from skcpcae.preprocessing import AdaptiveGamma, ECCRegistrar
from skcpcae.residuals import CPCAEResidualMap

ROOT = Path(__file__).resolve().parents[1]
H = W = 24
N = 8


# ----------------------------------------------------------------------------- the row type
@dataclasses.dataclass(frozen=True)
class Row:
    """One catalogue entry.

    ``call(ctx)`` feeds the bad input and returns the result; with ``raises`` it must raise
    that type with a message matching ``match``; otherwise ``check(result, ctx)`` asserts on
    the result. ``warns`` / ``warns_match``: a warning that must be emitted.
    """

    component: str
    case: str
    how: str
    expected: str
    call: Callable = dataclasses.field(repr=False, compare=False)
    raises: Any = None
    match: str | None = None
    warns: Any = None
    warns_match: str | None = None
    check: Callable | None = dataclasses.field(default=None, repr=False, compare=False)
    xfail: str | None = None

    @property
    def id(self):
        return f"{self.component}-{self.case}"


# ----------------------------------------------------------------------------- components
def _cpcae():
    return CPCAEResidualMap(input_size=16, patch_size=8, channels=(4,), latent_dim=4,
                            max_epochs=1, batch_size=64, device="cpu", random_state=0)


# name -> (factory, method applied after fit)
IMAGE_STAGES = {
    "ECCRegistrar": (ECCRegistrar, "transform"),
    "AdaptiveGamma": (AdaptiveGamma, "transform"),
    "CPCAEResidualMap": (_cpcae, "transform"),
    "DeepPoolEmbedder": (
        lambda: DeepPoolEmbedder("test_efficientnet", weights=None, device="cpu",
                                 random_state=0),
        "transform",
    ),
    "DeepPatchEmbedder": (
        lambda: DeepPatchEmbedder("test_efficientnet", weights=None, device="cpu",
                                  random_state=0),
        "transform",
    ),
    "PatchKNNScorer": (lambda: PatchKNNScorer(n_neighbors=2), "score_samples"),
    "VariationDetector": (VariationDetector, "score_samples"),
    "NearestImageDetector": (NearestImageDetector, "score_samples"),
    "AEL2Detector": (lambda: AEL2Detector(_cpcae(), random_state=0), "score_samples"),
    "PatchCoreDetector": (
        lambda: PatchCoreDetector(weights=None, stages=(1, 2), device="cpu",
                                  random_state=0),
        "score_samples",
    ),
}
TABULAR = {
    "KNNAnomalyScorer": lambda: KNNAnomalyScorer(n_neighbors=3),
    "KDEThresholdClassifier": lambda: KDEThresholdClassifier(KNNAnomalyScorer(n_neighbors=3),
                                                             cv=3, random_state=0),
    "GMMAnomalyScorer": lambda: GMMAnomalyScorer(random_state=0),
    "KDEAnomalyScorer": KDEAnomalyScorer,
}
# the image stages that only take 1 or 3 channels
RGB_ONLY = {"AdaptiveGamma", "DeepPoolEmbedder", "DeepPatchEmbedder", "PatchCoreDetector"}


# ----------------------------------------------------------------------------- shared data
class Ctx:
    """Data, fitted estimators (fitted on first use) and files, shared by the module."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.X = make_parts(N, size=(H, W), max_shift=0.03, random_state=0)[0]
        self.Xrgb = make_parts(N, size=(H, W), max_shift=0.03, color=True, random_state=0)[0]
        rng = np.random.default_rng(0)
        self.Z = rng.normal(size=(20, 5))
        self._fitted = {}
        self._refs = {}
        self._files = None

    def fitted(self, name, layout="gray"):
        key = (name, layout)
        if key not in self._fitted:
            factory = IMAGE_STAGES[name][0] if name in IMAGE_STAGES else TABULAR[name]
            X = self.Z if name in TABULAR else (self.X if layout == "gray" else self.Xrgb)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                self._fitted[key] = factory().fit(X)
        return self._fitted[key]

    def apply(self, name, X, layout="gray"):
        est = self.fitted(name, layout)
        method = IMAGE_STAGES[name][1] if name in IMAGE_STAGES else "score_samples"
        return getattr(est, method)(X)

    def ref(self, name, X):
        """``apply`` on a well-formed float input (the comparison point of conversions)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return self.apply(name, np.ascontiguousarray(X))

    @property
    def files(self):
        if self._files is None:
            self._files = _make_files(self.tmp, self.X, self.Xrgb)
        return self._files


def _encode(ext, image):
    ok, buf = cv2.imencode(ext, np.round(image * 255).astype(np.uint8))
    assert ok
    return buf.tobytes()


def _save(path, image):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_image(path, image)


def _write(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _make_files(tmp, X, Xrgb):
    """Every file the loader rows read: good images, broken files, folder trees."""
    f = {}
    png, jpg = _encode(".png", X[0]), _encode(".jpg", X[0])
    f["good"] = [_save(tmp / "good" / f"{i}.png", X[i]) for i in range(4)]
    f["good_dir"] = str(tmp / "good")
    f["truncated_png"] = _write(tmp / "broken" / "truncated.png", png[: len(png) // 2])
    f["truncated_jpg"] = _write(tmp / "broken" / "truncated.jpg", jpg[: len(jpg) // 2])
    f["corrupt_png"] = _write(tmp / "broken" / "corrupt.png",
                              png[:8] + np.random.default_rng(0).bytes(200))
    f["text_as_jpg"] = _write(tmp / "broken" / "notes.jpg", b"not an image\n")
    f["empty_png"] = _write(tmp / "broken" / "empty.png", b"")
    f["text"] = _write(tmp / "broken" / "notes.txt", b"not an image\n")
    # a folder with two images and a text file
    f["mixed_dir"] = str(tmp / "mixed")
    for i in range(2):
        _save(tmp / "mixed" / f"{i}.png", X[i])
    _write(tmp / "mixed" / "readme.txt", b"not an image\n")
    f["empty_dir"] = str(tmp / "empty")
    (tmp / "empty").mkdir()
    f["trunc_dir"] = str(tmp / "with_truncated")
    _save(tmp / "with_truncated" / "0.png", X[0])
    _write(tmp / "with_truncated" / "1.png", png[: len(png) // 2])
    f["sizes_dir"] = str(tmp / "sizes")
    _save(tmp / "sizes" / "a.png", X[0])
    f["small"] = _save(tmp / "sizes" / "b.png", X[1][:20])
    uni = tmp / "données_検査 ü"
    f["unicode"] = [_save(uni / f"pièce_{i}_é.png", X[i]) for i in range(2)]
    f["unicode_dir"] = str(uni)
    f["rgb"] = _save(tmp / "colour" / "rgb.png", Xrgb[0])
    img16 = np.round(X[0] * 65535).astype(np.uint16)
    f["png16"] = str(tmp / "deep" / "16bit.png")
    (tmp / "deep").mkdir()
    assert cv2.imwrite(f["png16"], img16)
    f["png16_values"] = img16
    g8 = np.round(X[0] * 255).astype(np.uint8)
    f["rgba"] = str(tmp / "deep" / "rgba.png")
    assert cv2.imwrite(f["rgba"], np.dstack([g8, g8, g8, np.full_like(g8, 7)]))
    f["gray8"] = g8
    # MVTec AD trees: <root>/<tree>/tile/{train/good, test/good, test/crack, ground_truth/crack}
    mask = _encode(".png", (X[0] > 0.5).astype(np.float32))

    def mvtec(name, *, train=True, with_mask=True, extra=None, root=None):
        base = (root or tmp / "mvtec" / name) / "tile"
        if train:
            _save(base / "train" / "good" / "000.png", X[0])
        else:
            (base / "train" / "good").mkdir(parents=True)
        _save(base / "test" / "good" / "000.png", X[1])
        _save(base / "test" / "crack" / "000.png", X[2])
        if with_mask:
            _write(base / "ground_truth" / "crack" / "000_mask.png", mask)
        for rel, data in (extra or {}).items():
            _write(base / rel, data)
        return str(base.parent)

    f["mv_ok"] = mvtec("ok")
    f["mv_no_mask"] = mvtec("no_mask", with_mask=False)
    (Path(f["mv_no_mask"]) / "tile" / "ground_truth" / "crack").mkdir(parents=True)
    f["mv_truncated"] = mvtec("truncated", extra={"test/crack/001.png": png[: len(png) // 2],
                                                  "ground_truth/crack/001_mask.png": mask})
    f["mv_text"] = mvtec("text", extra={"test/crack/notes.txt": b"not an image\n"})
    f["mv_empty_train"] = mvtec("empty_train", train=False)
    f["mv_unicode"] = mvtec("", root=tmp / "mvtec" / "jeu de données ü")
    f["missing"] = str(tmp / "does_not_exist")
    return f


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Ctx(tmp_path_factory.mktemp("bad_input"))


# ----------------------------------------------------------------------------- checks
def _same(result, ctx, reference):
    """The result equals ``reference(ctx)`` bit for bit."""
    expected = reference(ctx)
    assert result.shape == expected.shape
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)


def _close(result, ctx, reference):
    expected = reference(ctx)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def _finite(result, ctx, n=N):
    assert len(result) == n
    assert np.isfinite(result).all()


# ----------------------------------------------------------------------------- image rows
_SHAPE_RE = r"expects images of shape \(n_samples, height, width\[, channels\]\)"
_INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
_SCALE = {"uint8": 255, "uint16": 65535}


def _int_image(X, dtype):
    if dtype in _SCALE:
        return np.round(X * _SCALE[dtype]).astype(dtype)
    return (X > 0.5).astype(dtype)


def _poke(X, value):
    """``X`` as float with its sixth value replaced by ``value``."""
    out = np.array(X, dtype=np.float64)
    out.flat[5] = value
    return out


def _strided(X):
    big = np.repeat(np.repeat(X, 2, axis=1), 2, axis=2)
    view = big[:, ::2, ::2]
    assert not view.flags.c_contiguous
    return view


def _read_only(X):
    X = X.copy()
    X.setflags(write=False)
    return X


def _memmap(ctx, X, name):
    path = ctx.tmp / f"{name}.npy"
    if not path.exists():
        np.save(path, X)
    return np.load(path, mmap_mode="r")


def _range_rows(name):
    """Floats outside [0, 1]: no stage refuses them; the two defined on [0, 1] warn."""
    rows = []
    cases = [
        ("negative-floats", "`X - 0.5` (floats in [-0.5, 0.5])", lambda X: X - 0.5),
        ("floats-above-one", "`X * 255` (8-bit values stored as floats)", lambda X: X * 255),
    ]
    for case, how, make in cases:
        kw = dict(component=name, case=case, how=how,
                  call=lambda c, m=make, n=name: c.apply(n, m(c.X)))
        if name == "AdaptiveGamma":
            rows.append(Row(
                **kw, warns=UserWarning,
                warns_match=r"expects pixel values in \[0, 1\].*clips them to \[0, 1\]",
                check=_finite,
                expected="Accepted with a UserWarning (as in `fit`) that gives the range found: "
                         "gamma correction is defined on [0, 1], so the values are clipped to "
                         "[0, 1] first.",
            ))
        elif name == "ECCRegistrar":
            def check(result, ctx, m=make):
                reg = ctx.fitted("ECCRegistrar")
                warps = reg.transform_with_info(m(ctx.X))[1].warps
                assert np.isfinite(result).all()
                np.testing.assert_allclose(warps, reg.transform_with_info(ctx.X)[1].warps,
                                           atol=0.05)

            rows.append(Row(
                **kw, check=check,
                expected="Accepted as is: ECC's correlation coefficient ignores intensity "
                         "scale and offset, so the warps are those of `X` (within 0.05 px).",
            ))
        elif name in ("CPCAEResidualMap", "AEL2Detector"):
            rows.append(Row(
                **kw, warns=UserWarning,
                warns_match=r"expects pixel values in \[0, 1\]",
                check=_finite,
                expected="Accepted with a UserWarning (as in `fit`): the decoder ends with a "
                         "sigmoid, so the residuals include the distance to [0, 1].",
            ))
        else:
            rows.append(Row(
                **kw, check=_finite,
                expected="Accepted as is (floats are not rescaled); the output is finite.",
            ))
    return rows


def _image_rows(name):
    method = IMAGE_STAGES[name][1]
    out = "scores" if method == "score_samples" else "output"

    def row(case, how, expected, call, **kw):
        return Row(component=name, case=case, how=how, expected=expected, call=call, **kw)

    def on(make, layout="gray"):
        return lambda c: c.apply(name, make(c.X if layout == "gray" else c.Xrgb), layout)

    def ref(make):
        return lambda result, c: _same(result, c, lambda cc: cc.ref(name, make(cc.X)))

    rows = [
        row("1d", "one row of one image, `X[0, 0]`, shape (24,)",
            "ValueError naming the expected layouts and the shape received, suggesting "
            "`X[None]`.",
            on(lambda X: X[0, 0]), raises=ValueError,
            match=_SHAPE_RE + r".*1 dimension\(s\), shape \(24,\).*X\[None\]"),
        row("5d", "`X[..., None, None]`, shape (8, 24, 24, 1, 1)",
            "ValueError naming the expected layouts and the shape received.",
            on(lambda X: X[..., None, None]), raises=ValueError,
            match=_SHAPE_RE + r".*5 dimension\(s\), shape \(8, 24, 24, 1, 1\)"),
        row("single-image-without-batch-axis", "`X[0]`, shape (24, 24)",
            "ValueError saying this looks like one image without the batch axis and "
            "suggesting `X[None]`.",
            on(lambda X: X[0]), raises=ValueError, match=r"X\[None\]"),
        row("colour-after-gray-fit", "fitted on gray `X`, given `(8, 24, 24, 3)` RGB images",
            "ValueError giving the fitted and received shapes and saying how to convert "
            "between gray and colour.",
            on(lambda X: np.repeat(X[..., None], 3, axis=-1)), raises=ValueError,
            match=r"fitted on images of shape \(24, 24\).*got images of shape \(24, 24, 3\)"
                  r".*(colou?r|gr[ae]y)"),
        row("gray-after-colour-fit", "fitted on RGB images, given gray `(8, 24, 24)`",
            "ValueError giving the fitted and received shapes and saying how to convert "
            "between gray and colour.",
            on(lambda X: X[..., 0], layout="rgb"), raises=ValueError,
            match=r"fitted on images of shape \(24, 24, 3\).*got images of shape \(24, 24\)"
                  r"[^,].*(colou?r|gr[ae]y)"),
        row("other-size", "fitted on 24x24, given 32x32 images",
            "ValueError giving the fitted and received image shapes and suggesting resizing.",
            lambda c: c.apply(name, make_parts(2, size=(32, 32), random_state=0)[0]),
            raises=ValueError,
            match=r"fitted on images of shape \(24, 24\).*got images of shape \(32, 32\).*"
                  r"[Rr]esize"),
        row("nan", "`X` with one NaN pixel", "ValueError: input contains NaN.",
            on(lambda X: _poke(X, np.nan)),
            raises=ValueError, match=r"Input X contains NaN"),
        row("inf", "`X` with one +inf pixel", "ValueError: input contains infinity.",
            on(lambda X: _poke(X, np.inf)),
            raises=ValueError, match=r"Input X contains infinity"),
        row("float64-beyond-float32", "`X.astype(np.float64) * 1e39` (finite, too large for "
            "float32)", "ValueError: a value too large for float32.",
            on(lambda X: X.astype(np.float64) * 1e39), raises=ValueError,
            match=r"Input X contains infinity or a value too large for dtype\('float32'\)"),
    ]
    rows += _range_rows(name)
    for dtype in _INTS:
        if dtype in _SCALE:
            how = f"`Xi = np.round(X * {_SCALE[dtype]}).astype({dtype})`"
            expected = (f"Accepted: divided by {_SCALE[dtype]}; same {out} as "
                        f"`Xi.astype(np.float32) / {_SCALE[dtype]}`.")
        else:
            how = f"`(X > 0.5).astype({dtype})` (values 0 / 1)"
            expected = f"Accepted: cast to float32 as is (not rescaled); same {out} as the 0/1 float image."

        def conv(X, d=dtype):
            arr = _int_image(X, d)
            return arr.astype(np.float32) / np.float32(_SCALE.get(d, 1))

        rows.append(row(dtype, how, expected, on(lambda X, d=dtype: _int_image(X, d)),
                        check=ref(conv)))
    # integers outside [0, 1] (issue #18): on the 8- or 16-bit scale, or refused
    for dtype, scale, how in [
        ("int64", 255, "`np.round(X * 255).astype(np.int64)` (0..255 in int64)"),
        ("int32", 65535, "`np.round(X * 65535).astype(np.int32)` (0..65535 in int32)"),
        ("list", 255, "`np.round(X * 255).astype(int).tolist()` (Python ints, 0..255)"),
    ]:
        def make(X, d=dtype, k=scale):
            arr = np.round(X * k).astype(np.int64 if d == "list" else d)
            return arr.tolist() if d == "list" else arr

        rows.append(row(
            f"{dtype}-on-{'8' if scale == 255 else '16'}-bit-scale", how,
            f"Accepted: values in [0, {scale}] are on the {'8' if scale == 255 else '16'}-bit "
            f"scale, divided by {scale} (never used as is); same {out} as that float image.",
            on(make), check=ref(lambda X, m=make, k=scale:
                                np.asarray(m(X), dtype=np.float32) / np.float32(k))))
    rows += [
        row("negative-int64", "`np.round(X * 255).astype(np.int64)` with one value -1",
            "ValueError giving the dtype and range found and the scales accepted.",
            on(lambda X: _poke(np.round(X * 255), -1).astype(np.int64)), raises=ValueError,
            match=r"int64 pixel values in \[-1, \d+\]: integer images must be on the "
                  r"8-bit \(0..255\) or 16-bit \(0..65535\) scale"),
        row("single-uint8-image", "one 8-bit image without the batch axis, shape (24, 24)",
            "ValueError: looks like a single image, pass `X[None]` (not read as 24 rows).",
            on(lambda X: np.round(X[0] * 255).astype(np.uint8)), raises=ValueError,
            match=r"2-D uint8 array of shape \(24, 24\), which looks like a single image "
                  r".*X\[None\]"),
        row("fit-single-image", "`fit` on one 64x64 float image without the batch axis",
            "ValueError: looks like a single image, pass `X[None]` (not 64 one-pixel rows).",
            lambda c: IMAGE_STAGES[name][0]().fit(make_parts(1, size=(64, 64),
                                                             random_state=0)[0][0]),
            raises=ValueError,
            match=r"2-D float\d+ array of shape \(64, 64\), which looks like a single "
                  r"image .*X\[None\]"),
    ]
    rows += [
        row("bool", "`X > 0.5` (bool)", f"Accepted: False / True become 0 / 1; same {out} as "
            "the 0/1 float image.", on(lambda X: X > 0.5),
            check=ref(lambda X: (X > 0.5).astype(np.float32))),
        row("float16", "`X.astype(np.float16)`", f"Accepted: cast to float32; same {out} as "
            "the float32 image.", on(lambda X: X.astype(np.float16)),
            check=ref(lambda X: X.astype(np.float16).astype(np.float32))),
        row("float64", "`X.astype(np.float64)`", f"Accepted: cast to float32; same {out} as "
            "`X`.", on(lambda X: X.astype(np.float64)), check=ref(lambda X: X)),
        row("empty-batch", "`X[:0]`, shape (0, 24, 24)",
            "ValueError: 0 samples, at least 1 required.",
            on(lambda X: X[:0]), raises=ValueError,
            match=rf"0 sample\(s\).*minimum of 1 is required by {name}"),
        row("one-image", "`X[:1]`", f"Works; same {out} as for the first image of the full "
            "batch (to float rounding).", on(lambda X: X[:1]),
            check=lambda r, c: _close(r, c, lambda cc: cc.ref(name, cc.X)[:1])),
        row("strided-view", "`X2[:, ::2, ::2]` of a 48x48 batch (not contiguous)",
            f"Works; same {out} as the contiguous copy.", on(_strided), check=ref(lambda X: X)),
        row("fortran-order", "`np.asfortranarray(X)`", f"Works; same {out} as the C-ordered "
            "array.", on(np.asfortranarray), check=ref(lambda X: X)),
        row("negative-strides", "`X[:, ::-1]` (flipped view)", f"Works; same {out} as the "
            "contiguous copy.", on(lambda X: X[:, ::-1]), check=ref(lambda X: X[:, ::-1])),
        row("read-only", "`X` with `setflags(write=False)`", f"Works; same {out} as a "
            "writeable array.", on(_read_only), check=ref(lambda X: X)),
        row("memmap", "`np.load(path, mmap_mode='r')` (read-only memory map)",
            f"Works; same {out} as the in-memory array.",
            lambda c: c.apply(name, _memmap(c, c.X, "X")), check=ref(lambda X: X)),
        row("list-of-2d-arrays", "`list(X)`", f"Works: stacked; same {out} as the array.",
            on(list), check=ref(lambda X: X)),
        row("list-of-different-shapes", "`[X[0], X[1][:20]]`",
            "ValueError listing the shapes found and suggesting resizing on load.",
            on(lambda X: [X[0], X[1][:20]]), raises=ValueError,
            match=r"different shapes \[\(20, 24\), \(24, 24\)\].*size=\(height, width\)"),
        row("path-string", "`'part.png'`",
            "TypeError: expects an array of images; suggests load_images / ImageReader.",
            on(lambda X: "part.png"), raises=TypeError,
            match=r"expects an array of images, got a string.*load_images"),
        row("list-of-paths", "`['a.png', 'b.png']`",
            "TypeError: got file paths; suggests load_images / ImageReader.",
            on(lambda X: ["a.png", "b.png"]), raises=TypeError,
            match=r"got a list of file paths.*load_images.*ImageReader"),
        row("complex", "`X.astype(np.complex64)`", "ValueError: complex images not supported.",
            on(lambda X: X.astype(np.complex64)), raises=ValueError,
            match=rf"Complex data not supported: {name}"),
        row("sparse", "`scipy.sparse.csr_matrix(X.reshape(8, -1))`",
            "TypeError: sparse input refused; suggests `X.toarray()`.",
            on(lambda X: sp.csr_matrix(X.reshape(len(X), -1))), raises=TypeError,
            match=rf"{name} does not accept sparse input.*toarray"),
        # fit-time rows (validation fails before any work)
        row("fit-empty-batch", "`fit(X[:0])`", "ValueError: 0 samples, at least 1 required.",
            lambda c: IMAGE_STAGES[name][0]().fit(c.X[:0]), raises=ValueError,
            match=rf"0 sample\(s\).*minimum of 1 is required by {name}"),
        row("fit-nan", "`fit(X)` with one NaN pixel", "ValueError: input contains NaN.",
            lambda c: IMAGE_STAGES[name][0]().fit(_poke(c.X, np.nan)),
            raises=ValueError, match=r"Input X contains NaN"),
    ]
    if name == "PatchKNNScorer":
        rows.append(row(
            "features-overflowing-float32", "`X * 1e20` (finite in float32, squared norms "
            "are not)", "ValueError: the squared norms overflow float32; suggests scaling "
            "(an overflowed distance is never read as 0, i.e. normal).",
            on(lambda X: X * np.float32(1e20)), raises=ValueError,
            match=r"Patch features too large: their squared norms overflow float32"))
    if name in RGB_ONLY:
        rows.append(row(
            "fit-4-channels", "`fit` on RGBA images, shape (8, 24, 24, 4)",
            "ValueError: 1 or 3 channels accepted; shape received; suggests dropping alpha.",
            lambda c: IMAGE_STAGES[name][0]().fit(np.repeat(c.X[..., None], 4, axis=-1)),
            raises=ValueError,
            match=r"accepts images with 1 or 3 channel\(s\).*\(8, 24, 24, 4\).*X\[\.\.\., :3\]"))
    return rows


# ----------------------------------------------------------------------------- tabular rows
def _tabular_rows(name):
    factory = TABULAR[name]

    def row(case, how, expected, call, **kw):
        return Row(component=name, case=case, how=how, expected=expected, call=call, **kw)

    def on(make):
        return lambda c: c.apply(name, make(c.Z))

    def ref(make):
        return lambda result, c: _same(result, c, lambda cc: cc.ref(name, make(cc.Z)))

    inner = "KNNAnomalyScorer" if name == "KDEThresholdClassifier" else name
    rows = [
        row("1d", "one sample without the batch axis, `Z[0]`",
            "ValueError: expected a 2-D array; suggests `reshape(1, -1)`.",
            on(lambda Z: Z[0]), raises=ValueError,
            match=r"(?s)Expected 2D array, got 1D array.*reshape\(1, -1\)"),
        row("3d", "`Z[None]`, shape (1, 20, 5)", "ValueError: dim 3, dim <= 2 required.",
            on(lambda Z: Z[None]), raises=ValueError,
            match=rf"Found array with dim 3.*(dim <= 2 is required by|{inner} expected <= 2)"),
        row("fewer-features", "fitted on 5 features, given 3",
            "ValueError giving both feature counts.", on(lambda Z: Z[:, :3]),
            raises=ValueError, match=rf"X has 3 features, but {inner} is expecting 5"),
        row("nan", "one NaN value", "ValueError: input contains NaN.",
            on(lambda Z: _poke(Z, np.nan)), raises=ValueError,
            match=r"Input X contains NaN"),
        row("inf", "one +inf value", "ValueError: input contains infinity.",
            on(lambda Z: _poke(Z, np.inf)), raises=ValueError,
            match=r"Input X contains infinity"),
    ]
    for dtype in _INTS:
        signed = not dtype.startswith("u")

        def make(Z, d=dtype, s=signed):
            return np.round(np.clip(Z * 10, -100, 100) if s else np.abs(Z) * 10).astype(d)

        rows.append(row(dtype, f"values `round(10 Z)` as {dtype}",
                        "Accepted: cast to float as is (tables are never rescaled, uint8 "
                        "included); same scores as the float table.",
                        on(make), check=ref(lambda Z, m=make: m(Z).astype(np.float64))))
    rows += [
        row("empty-batch", "`Z[:0]`", "ValueError: 0 samples, at least 1 required.",
            on(lambda Z: Z[:0]), raises=ValueError, match=r"0 sample\(s\).*minimum of 1"),
        row("one-sample", "`Z[:1]`", "Works; same score as in the full batch.",
            on(lambda Z: Z[:1]),
            check=lambda r, c: _close(r, c, lambda cc: cc.ref(name, cc.Z)[:1])),
        row("strided-view", "`np.repeat(Z, 2, axis=1)[:, ::2]` (not contiguous)",
            "Works; same scores as the contiguous copy.",
            on(lambda Z: np.repeat(Z, 2, axis=1)[:, ::2]), check=ref(lambda Z: Z)),
        row("fortran-order", "`np.asfortranarray(Z)`", "Works; same scores.",
            on(np.asfortranarray), check=ref(lambda Z: Z)),
        row("read-only", "`Z` with `setflags(write=False)`", "Works; same scores.",
            on(_read_only), check=ref(lambda Z: Z)),
        row("list-of-lists", "`Z.tolist()`", "Works; same scores.",
            on(lambda Z: Z.tolist()), check=ref(lambda Z: Z)),
        row("string", "`'x'`", "ValueError: could not convert string to float.",
            on(lambda Z: "x"), raises=ValueError, match=r"could not convert string to float"),
        row("complex", "`Z.astype(complex)`", "ValueError: complex data not supported.",
            on(lambda Z: Z.astype(complex)), raises=ValueError,
            match=r"Complex data not supported"),
        row("sparse", "`scipy.sparse.csr_matrix(Z)`",
            "TypeError: dense data required; suggests `.toarray()`.",
            on(sp.csr_matrix), raises=TypeError,
            match=r"Sparse data was passed.*dense data is required.*toarray"),
        row("fit-nan", "`fit(Z)` with one NaN", "ValueError: input contains NaN.",
            lambda c: factory().fit(_poke(c.Z, np.nan)), raises=ValueError,
            match=r"Input X contains NaN"),
    ]
    one = {
        "KNNAnomalyScorer": dict(
            expected="Works with a UserWarning: n_neighbors is reduced to the number of "
                     "training samples.",
            warns=UserWarning,
            warns_match=r"n_neighbors \(3\) is not smaller than the number of training "
                        r"samples \(1\); using n_neighbors=1",
            check=lambda est, c: _finite(est.score_samples(c.Z), c, n=20)),
        "KDEThresholdClassifier": dict(
            expected="ValueError: cv=3 needs at least 3 samples.", raises=ValueError,
            match=r"n_splits=3 greater than the number of samples: n_samples=1"),
        "GMMAnomalyScorer": dict(
            expected="ValueError: at least 2 samples required.", raises=ValueError,
            match=r"1 sample\(s\) \(shape=\(1, 5\)\) while a minimum of 2 is required"),
        "KDEAnomalyScorer": dict(
            expected="ValueError: at least 2 training samples required.", raises=ValueError,
            match=r"needs at least 2 training samples.*n_samples=1"),
    }[name]
    rows.append(row("fit-one-sample", "`fit(Z[:1])`", call=lambda c: factory().fit(c.Z[:1]),
                    **one))
    return rows


# ----------------------------------------------------------------------------- loader rows
def _loader_rows():
    rows = []

    def row(component, case, how, expected, call, **kw):
        rows.append(Row(component=component, case=case, how=how, expected=expected,
                        call=call, **kw))

    cannot = r"Cannot decode image file '.*{}'.*(corrupt|truncated)"

    def fitted_reader(c, layout="gray"):
        return ImageReader().fit(c.files["good"][:2] if layout == "gray" else [c.files["rgb"]])

    def same_as_x(n):
        def check(result, c):
            X = result[0] if isinstance(result, tuple) else result
            np.testing.assert_array_equal(X, np.round(c.X[:n] * 255) / np.float32(255))
        return check

    # load_images ------------------------------------------------------------------------
    for case, key, fname in [
        ("truncated-png", "truncated_png", "truncated.png"),
        ("truncated-jpeg", "truncated_jpg", "truncated.jpg"),
        ("corrupt-png", "corrupt_png", "corrupt.png"),
        ("text-file-with-.jpg-extension", "text_as_jpg", "notes.jpg"),
    ]:
        row("load_images", case, f"a file `{fname}` ({case.replace('-', ' ')})",
            "ValueError naming the file: corrupt or truncated.",
            lambda c, k=key: load_images(c.files[k]), raises=ValueError,
            match=cannot.format(fname))
    row("load_images", "empty-file", "a 0-byte `empty.png`",
        "ValueError naming the file: the file is empty.",
        lambda c: load_images(c.files["empty_png"]), raises=ValueError,
        match=r"Cannot read image file '.*empty\.png': the file is empty")
    row("load_images", "non-image-file-in-list", "`['notes.txt']`",
        "ValueError naming the file: not an image format OpenCV reads.",
        lambda c: load_images([c.files["text"]]), raises=ValueError,
        match=cannot.format("notes.txt"))
    row("load_images", "non-image-file-in-folder", "a folder with 2 PNGs and `readme.txt`",
        "Works: the text file is skipped with a UserWarning naming it; the 2 images load.",
        lambda c: load_images(c.files["mixed_dir"]), warns=UserWarning,
        warns_match=r"Skipped 1 file\(s\) without an image extension.*readme\.txt",
        check=same_as_x(2))
    row("load_images", "empty-folder", "an empty folder",
        "ValueError: no image files in the folder (named).",
        lambda c: load_images(c.files["empty_dir"]), raises=ValueError,
        match=r"No image files in folder '.*empty'")
    row("load_images", "missing-path", "a path that does not exist",
        "FileNotFoundError naming the path.",
        lambda c: load_images(c.files["missing"]), raises=FileNotFoundError,
        match=r"No such file or folder: '.*does_not_exist'")
    row("load_images", "unicode-path", "folder `données_検査 ü`, files `pièce_0_é.png`",
        "Works; pixel values as written.", lambda c: load_images(c.files["unicode_dir"]),
        check=same_as_x(2))
    row("load_images", "mixed-sizes", "a folder with a 24x24 and a 20x24 image",
        "ValueError naming both files and sizes, suggesting `size=(height, width)`.",
        lambda c: load_images(c.files["sizes_dir"]), raises=ValueError,
        match=r"different sizes: '.*a\.png' is 24x24.*'.*b\.png' is 20x24.*size=\(height, "
              r"width\)")

    def check16(result, c):
        np.testing.assert_array_equal(
            result[0], c.files["png16_values"].astype(np.float32) / np.float32(65535))

    row("load_images", "16-bit-png", "a 16-bit grayscale PNG",
        "Works: divided by 65535 (the exact 16-bit values are kept).",
        lambda c: load_images(c.files["png16"]), check=check16)

    def check_rgba(result, c):
        assert result.shape == (1, H, W)
        np.testing.assert_array_equal(result[0], c.files["gray8"] / np.float32(255))

    row("load_images", "rgba-png", "an RGBA PNG (gray colour, alpha = 7)",
        "Works: alpha dropped (not composited); equal channels read as gray.",
        lambda c: load_images(c.files["rgba"]), check=check_rgba)
    row("load_images", "numeric-array", "an image array instead of paths",
        "TypeError: reads files; arrays need no loading.",
        lambda c: load_images(c.X), raises=TypeError,
        match=r"reads image files; it got a numeric array of shape \(8, 24, 24\)")
    row("load_images", "bytes-path", "`b'/path/to/folder'`", "TypeError: pass str or Path.",
        lambda c: load_images(os.fsencode(c.files["good_dir"])), raises=TypeError,
        match=r"not bytes")
    row("load_images", "folder-in-list", "`[folder]`",
        "ValueError: a list holds files only; pass the folder on its own.",
        lambda c: load_images([c.files["good_dir"]]), raises=ValueError,
        match=r"is a folder; a list may hold image files only")

    # load_folder ------------------------------------------------------------------------
    row("load_folder", "truncated-png-in-folder", "a good folder holding a truncated PNG",
        "ValueError naming the file.", lambda c: load_folder(c.files["trunc_dir"]),
        raises=ValueError, match=cannot.format("1.png"))
    row("load_folder", "empty-good-folder", "`load_folder(empty)`",
        "ValueError: no image files in the good folder (named).",
        lambda c: load_folder(c.files["empty_dir"]), raises=ValueError,
        match=r"No image files in good folder '.*empty'")
    row("load_folder", "empty-defect-folder", "`load_folder(good, empty)`",
        "ValueError: no image files in the defect folder (named).",
        lambda c: load_folder(c.files["good_dir"], c.files["empty_dir"]), raises=ValueError,
        match=r"No image files in defect folder '.*empty'")
    row("load_folder", "no-good-folder", "`load_folder([])`",
        "ValueError: at least one folder of good images needed.",
        lambda c: load_folder([]), raises=ValueError,
        match=r"needs at least one folder of good images")
    row("load_folder", "missing-folder", "a path that does not exist",
        "FileNotFoundError naming the path.", lambda c: load_folder(c.files["missing"]),
        raises=FileNotFoundError, match=r"No such good folder or file: '.*does_not_exist'")

    def check_mixed(result, c):
        X, y = result
        same_as_x(2)(X, c)
        assert y.tolist() == [0, 0]

    row("load_folder", "non-image-file-in-folder", "a folder with 2 PNGs and `readme.txt`",
        "Works: the text file is skipped with a UserWarning naming it.",
        lambda c: load_folder(c.files["mixed_dir"]), warns=UserWarning,
        warns_match=r"Skipped 1 file\(s\).*readme\.txt", check=check_mixed)
    row("load_folder", "unicode-path", "folder `données_検査 ü`", "Works; values as written.",
        lambda c: load_folder(c.files["unicode_dir"]), check=check_mixed)
    row("load_folder", "mixed-sizes", "a folder with a 24x24 and a 20x24 image",
        "ValueError naming both sizes, suggesting `size=`.",
        lambda c: load_folder(c.files["sizes_dir"]), raises=ValueError,
        match=r"different sizes.*24x24.*20x24.*size=")

    # ImageReader ------------------------------------------------------------------------
    row("ImageReader", "numeric-array", "`fit(X)` with an image array",
        "TypeError: reads files; drop ImageReader when passing arrays.",
        lambda c: ImageReader().fit(c.X), raises=TypeError,
        match=r"numeric array of shape \(8, 24, 24\).*Drop ImageReader")
    row("ImageReader", "single-path-string", "`fit('folder')`",
        "TypeError: expects a list of paths; suggests `[path]` or `list_images(folder)`.",
        lambda c: ImageReader().fit(c.files["good_dir"]), raises=TypeError,
        match=r"got a single path.*Use \[path\].*list_images")
    row("ImageReader", "empty-list", "`fit([])`", "ValueError: empty list of paths.",
        lambda c: ImageReader().fit([]), raises=ValueError, match=r"empty list of paths")
    for case, key, fname in [("truncated-png", "truncated_png", "truncated.png"),
                             ("truncated-jpeg", "truncated_jpg", "truncated.jpg")]:
        row("ImageReader", case, f"`transform(['{fname}'])`", "ValueError naming the file.",
            lambda c, k=key: fitted_reader(c).transform([c.files[k]]), raises=ValueError,
            match=cannot.format(fname))
    row("ImageReader", "missing-file", "`transform(['does_not_exist'])`",
        "FileNotFoundError naming the path.",
        lambda c: fitted_reader(c).transform([c.files["missing"]]), raises=FileNotFoundError,
        match=r"No such file: '.*does_not_exist'")
    row("ImageReader", "other-size", "fitted on 24x24 files, given a 20x24 file",
        "ValueError giving both sizes and suggesting `size=(24, 24)`.",
        lambda c: fitted_reader(c).transform([c.files["small"]]), raises=ValueError,
        match=r"fitted on images of 24x24.*got images of 20x24.*size=\(24, 24\)")

    def check_luma(result, c):
        assert result.shape == (1, H, W)
        rgb = load_images(c.files["rgb"])[0]
        luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        np.testing.assert_allclose(result[0], luma, atol=1 / 255 + 1e-6)

    row("ImageReader", "colour-file-after-gray-fit", "fitted on gray files, given an RGB file",
        "Works: converted to luma (documented), shape (1, 24, 24).",
        lambda c: fitted_reader(c).transform([c.files["rgb"]]), check=check_luma)

    def check_repeat(result, c):
        assert result.shape == (1, H, W, 3)
        for k in range(3):
            np.testing.assert_array_equal(result[0, ..., k], load_images(c.files["good"][0])[0])

    row("ImageReader", "gray-file-after-colour-fit", "fitted on an RGB file, given gray files",
        "Works: gray repeated in 3 channels (documented), shape (1, 24, 24, 3).",
        lambda c: fitted_reader(c, "rgb").transform([c.files["good"][0]]), check=check_repeat)
    row("ImageReader", "unicode-path", "files `données_検査 ü/pièce_*_é.png`",
        "Works; values as written.",
        lambda c: ImageReader().fit_transform(c.files["unicode"]), check=same_as_x(2))

    # load_mvtec_ad ----------------------------------------------------------------------
    row("load_mvtec_ad", "missing-root", "a root that does not exist",
        "FileNotFoundError naming the path.",
        lambda c: load_mvtec_ad(c.files["missing"], "tile"), raises=FileNotFoundError,
        match=r"No such folder: '.*does_not_exist'")
    row("load_mvtec_ad", "unknown-category", "`load_mvtec_ad(root, 'bottle')`",
        "ValueError listing the categories found.",
        lambda c: load_mvtec_ad(c.files["mv_ok"], "bottle"), raises=ValueError,
        match=r"No category 'bottle'.*Categories found: 'tile'")
    row("load_mvtec_ad", "missing-mask", "a defect image without `ground_truth/.../*_mask.png`",
        "ValueError naming the image and the mask path expected.",
        lambda c: load_mvtec_ad(c.files["mv_no_mask"], "tile"), raises=ValueError,
        match=r"No mask for defect image '.*crack.000\.png': expected '.*000_mask\.png'")
    row("load_mvtec_ad", "truncated-test-image", "a truncated PNG in `test/crack`",
        "ValueError naming the file.",
        lambda c: load_mvtec_ad(c.files["mv_truncated"], "tile"), raises=ValueError,
        match=cannot.format("001.png"))
    row("load_mvtec_ad", "empty-train-folder", "no image in `train/good`",
        "ValueError naming the folder.",
        lambda c: load_mvtec_ad(c.files["mv_empty_train"], "tile"), raises=ValueError,
        match=r"No image files in '.*train.good'")

    def check_mv(result, c):
        assert result.X_train.shape == (1, H, W)
        assert result.y_test.tolist() == [0, 1]
        assert result.masks_test.shape == (2, H, W) and result.masks_test[1].any()

    row("load_mvtec_ad", "non-image-file-in-test-folder", "`test/crack/notes.txt`",
        "Works: skipped with a UserWarning naming it.",
        lambda c: load_mvtec_ad(c.files["mv_text"], "tile"), warns=UserWarning,
        warns_match=r"Skipped 1 file\(s\).*notes\.txt", check=check_mv)
    row("load_mvtec_ad", "unicode-path", "root `jeu de données ü`", "Works.",
        lambda c: load_mvtec_ad(c.files["mv_unicode"], "tile"), check=check_mv)
    return rows


# ----------------------------------------------------------------------------- CLI and model files
def _cli(*args):
    from typer.testing import CliRunner

    from skcpcae import cli

    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=True)


def _exit_2(pattern):
    """A check: exit code 2 and one line on stderr, ``Error: ...`` matching ``pattern``."""
    def check(result, ctx):
        assert result.exit_code == 2, result.output
        lines = [ln for ln in result.stderr.splitlines()
                 if ln.strip() and not ln.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert re.search(pattern, lines[0]), lines[0]
    return check


class _Evil:
    """Unpickling it creates the folder ``marker`` (a stand-in for any code a pickle runs)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _model_files(ctx):
    """A fitted model as .skops and .joblib, a pickle named .skops, a damaged .skops."""
    import pickle
    import zipfile

    from skcpcae import persistence

    folder = ctx.tmp / "models"
    if folder.exists():
        return folder
    folder.mkdir()
    det = ctx.fitted("VariationDetector")
    good = persistence.save(det, folder / "good.skops")
    persistence.save(det, folder / "good.joblib")
    (folder / "evil.skops").write_bytes(pickle.dumps(
        {"__skcpcae_model__": persistence.FORMAT_VERSION, "metadata": {}, "estimator": det,
         "hook": _Evil(folder / "MARKER")}))
    weights = np.ascontiguousarray(det.mean_).tobytes()
    with zipfile.ZipFile(good) as zf:  # one bit flipped in a weight, CRCs rebuilt
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
        comment = zf.comment
    with zipfile.ZipFile(folder / "flipped.skops", "w") as zf:
        for name, data in members:
            if weights in data:
                at = data.index(weights) + len(weights) // 2
                data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
            zf.writestr(name, data)
        zf.comment = comment
    return folder


def _no_marker(pattern):
    check = _exit_2(pattern)

    def both(result, ctx):
        check(result, ctx)
        assert not (_model_files(ctx) / "MARKER").exists()
    return both


def _cli_rows():
    rows = []

    def row(component, case, how, expected, call, **kw):
        rows.append(Row(component=component, case=case, how=how, expected=expected,
                        call=call, **kw))

    def fit(*args):
        return lambda c: _cli("fit", c.files["good_dir"], "-o", c.tmp / "cli_model.skops",
                              "--preset", "best", *args)

    def score(*args, model="good.skops"):
        return lambda c: _cli("score", _model_files(c) / model, c.files["good_dir"],
                              "-o", c.tmp / "cli_results", *args)

    for case, args, expected, pattern in [
        ("size-huge", ("--size", "99999999x99999999"),
         "Exit 2, one line: each side at most 32768 pixels (before any image is read).",
         r"--size 99999999x99999999 is too large: each side must be at most 32768"),
        ("size-not-ascii-digits", ("--size", "²x3"),
         "Exit 2, one line: --size must look like HEIGHTxWIDTH.",
         r"--size must look like HEIGHTxWIDTH"),
        ("set-nan", ("--set", "kdethresholdclassifier__alpha=nan"),
         "Exit 2, one line: the step's own parameter validation, before any image is read.",
         r"Bad --set .*'alpha' parameter of KDEThresholdClassifier must be a float in the "
         r"range \(0\.0, 1\.0\)"),
        ("set-out-of-range", ("--set", "kdethresholdclassifier__alpha=2.0"),
         "Exit 2, one line: the step's own parameter validation.",
         r"'alpha' parameter .* Got 2\.0"),
        ("set-inf", ("--set", "patchknnscorer__radius=1e999"),
         "Exit 2, one line: --set values must be finite.",
         r"--set patchknnscorer__radius: values must be finite numbers"),
        ("memory-estimate", ("--size", "30000x30000", "--memory-limit", "8G"),
         "Exit 2, one line, before any image is read: the estimated memory, the budget, and "
         "the image count and --size that would fit.",
         r"needs about [\d.e+]+ GiB of memory \(estimate\), more than the 8 GiB of "
         r"--memory-limit; .*--size \d+x\d+ or smaller for 4 images would fit"),
        ("memory-limit-not-a-size", ("--memory-limit", "lots"),
         "Exit 2, one line: --memory-limit must be a size such as 8G.",
         r"--memory-limit must be a size such as 8G"),
    ]:
        row("skcpcae fit", case, f"`skcpcae fit good/ --preset best {' '.join(args)}`",
            expected, fit(*args), check=_exit_2(pattern))

    for case, args, expected, pattern in [
        ("sigma-nan", ("--sigma", "nan"), "Exit 2, one line: --sigma must be finite.",
         r"--sigma must be a finite number; got nan"),
        ("sigma-negative", ("--sigma", "-1"), "Exit 2, one line: --sigma at least 0.",
         r"--sigma must be at least 0; got -1"),
        ("sigma-absurd", ("--sigma", "1e9"), "Exit 2, one line: --sigma at most 1000.",
         r"--sigma must be at most 1000"),
        ("sigma-not-a-number", ("--sigma", "abc"),
         "Exit 2, one line (not click's boxed usage text): --sigma must be a number.",
         r"Invalid value for '--sigma': .*number"),
        ("batch-size-zero", ("--batch-size", "0"),
         "Exit 2, one line (not click's boxed usage text): --batch-size at least 1.",
         r"Invalid value for '--batch-size': .*greater than or equal to 1"),
        ("vmax-inf", ("--vmax", "inf"), "Exit 2, one line: --vmax must be finite.",
         r"--vmax must be a finite number; got inf"),
        ("vmax-zero", ("--vmax", "0"), "Exit 2, one line: --vmax must be positive.",
         r"--vmax must be greater than 0"),
        ("batch-beyond-memory", ("--batch-size", "100000000", "--memory-limit", "1G"),
         "Exit 2, one line, before any image is read: the estimate and the --batch-size "
         "that fits.",
         r"Scoring batches of 100000000 images of 24x24 needs about .* --batch-size \d+ "
         r"would fit"),
    ]:
        row("skcpcae score", case, f"`skcpcae score good.skops good/ {' '.join(args)}`",
            expected, score(*args), check=_exit_2(pattern))
    row("skcpcae score", "pickle-named-skops",
        "`skcpcae score evil.skops good/`: a pickle whose `__reduce__` creates a marker",
        "Exit 2, one line: refused before unpickling (also with --allow-pickle); the "
        "marker is never created.",
        score(model="evil.skops"),
        check=_no_marker(r"named \.skops but is a pickle .* refused without unpickling"))
    row("skcpcae score", "pickle-named-skops-allow-pickle",
        "`skcpcae score evil.skops good/ --allow-pickle`",
        "Exit 2, one line: a .skops name never loads a pickle; no marker.",
        score("--allow-pickle", model="evil.skops"),
        check=_no_marker(r"named \.skops but is a pickle"))
    row("skcpcae score", "joblib-without-allow-pickle", "`skcpcae score good.joblib good/`",
        "Exit 2, one line: a pickle is read only with --allow-pickle.",
        score(model="good.joblib"),
        check=_exit_2(r"is a pickle \(joblib\) file: loading it runs code .* add "
                      r"--allow-pickle"))
    row("skcpcae score", "flipped-bit-in-weights",
        "one bit flipped in a weight array of `good.skops`, zip CRCs rebuilt",
        "Exit 2, one line: the SHA-256 recorded at save does not match.",
        score(model="flipped.skops"),
        check=_exit_2(r"damaged or was modified: the SHA-256 of its content does not match"))
    row("skcpcae evaluate", "joblib-without-allow-pickle",
        "`skcpcae evaluate good.joblib --good good/ --defect good/`",
        "Exit 2, one line: a pickle is read only with --allow-pickle.",
        lambda c: _cli("evaluate", _model_files(c) / "good.joblib", "--good",
                       c.files["good_dir"], "--defect", c.files["good_dir"],
                       "-o", c.tmp / "cli_report"),
        check=_exit_2(r"add --allow-pickle"))

    from skcpcae.persistence import load

    row("persistence.load", "pickle-named-skops", "`load('evil.skops', allow_pickle=True)`",
        "PickleNotAllowedError: named .skops but a pickle; nothing unpickled.",
        lambda c: load(_model_files(c) / "evil.skops", allow_pickle=True),
        raises=ValueError, match=r"named \.skops but is a pickle")
    row("persistence.load", "joblib-without-allow-pickle", "`load('good.joblib')`",
        "PickleNotAllowedError saying to pass allow_pickle=True for trusted files.",
        lambda c: load(_model_files(c) / "good.joblib"),
        raises=ValueError, match=r"runs code .* allow_pickle=True")
    row("persistence.load", "flipped-bit-in-weights", "one bit flipped in a .skops weight, "
        "CRCs rebuilt", "ModelIntegrityError: the SHA-256 does not match; nothing built.",
        lambda c: load(_model_files(c) / "flipped.skops"),
        raises=ValueError, match=r"SHA-256 of its content does not match")
    return rows


# ----------------------------------------------------------------------------- issue #18:
# nothing lost (hostile files, unwritable outputs, interruptions, model files)
def _png_header_bomb(path, height=30000, width=30000, bit_depth=8):
    """A PNG whose header says ``height x width`` gray pixels and holds a few rows of data:
    what a decompression bomb shows the loader before decoding (a few hundred bytes)."""
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width * bit_depth // 8 + 1) * 4, 9)
    return _write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                  + chunk(b"IEND", b""))


def _hostile_files(ctx):
    """Bombs, a two-page TIFF, broken symbolic links, formula-like names (made once)."""
    from PIL import Image

    f = ctx.files
    if "bomb8" in f:
        return f
    tmp = ctx.tmp / "hostile"
    f["bomb8"] = _png_header_bomb(tmp / "bomb8.png")
    f["bomb16"] = _png_header_bomb(tmp / "bomb16.png", bit_depth=16)
    f["bomb_dir"] = str(tmp / "with_bomb")
    for i in range(2):
        _save(tmp / "with_bomb" / f"{i}.png", ctx.X[i])
    _png_header_bomb(tmp / "with_bomb" / "2_bomb.png")
    g8 = np.round(ctx.X[0] * 255).astype(np.uint8)
    f["tiff2"] = str(tmp / "two_pages.tif")
    Image.fromarray(g8).save(f["tiff2"], save_all=True,
                             append_images=[Image.fromarray(255 - g8)])
    f["links_dir"] = str(tmp / "links")
    for i in range(2):
        _save(tmp / "links" / f"{i}.png", ctx.X[i])
    os.symlink(tmp / "nowhere.png", tmp / "links" / "gone.png")
    f["broken_link"] = str(tmp / "links" / "gone.png")
    f["formula_dir"] = str(tmp / "formula")
    f["formula_names"] = ["=SUM(1).png", "+1.png", "-1.png", "@x.png", "plain.png"]
    for i, fname in enumerate(f["formula_names"]):
        _save(tmp / "formula" / fname, ctx.X[i])
    return f


def _no_decode(call):
    """Run ``call`` with OpenCV's decoder replaced by a failure: a refusal from the header."""
    from unittest import mock

    import skcpcae.datasets._io as io_module

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    with mock.patch.object(io_module.cv2, "imdecode", refuse):
        return call()


def _hidden(folder):
    """Hidden files (locks, temporary ``.NAME.*.tmp`` files) left in a folder tree."""
    return sorted(str(p) for p in Path(folder).rglob(".*"))


def _exit_2_nothing_left(pattern, folder):
    check = _exit_2(pattern)

    def both(result, ctx):
        check(result, ctx)
        assert not _hidden(ctx.tmp / folder), _hidden(ctx.tmp / folder)
    return both


def _score_in(ctx, folder, *args, model="good.skops", src=None):
    return _cli("score", _model_files(ctx) / model, src or ctx.files["good_dir"],
                "-o", ctx.tmp / folder, "--quiet", *args)


def _score_in_use(ctx):
    from skcpcae.utils._files import claim_output

    out = ctx.tmp / "in_use"
    out.mkdir(exist_ok=True)
    with claim_output(out):  # another run holds the folder
        result = _score_in(ctx, "in_use")
    assert not (out / "scores.csv").exists()
    return result


def _score_unwritable(ctx):
    import errno
    from unittest import mock

    import skcpcae._scoring as scoring
    import skcpcae.datasets._io as io_module

    reads = []
    real = io_module._read_native

    def refuse(folder):  # the lock file, the run's first write, cannot be created
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    with mock.patch.object(scoring, "claim_output", refuse), mock.patch.object(
            io_module, "_read_native", lambda *a, **k: reads.append(a[0]) or real(*a, **k)):
        result = _score_in(ctx, "unwritable")
    assert reads == [], reads  # not one image was read
    return result


def _score_disk_full(ctx):
    import errno
    from unittest import mock

    import skcpcae.utils._files as files

    real = files._write
    calls = []

    def write(fd, view):  # the disk fills up during the second batch's rows
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, view)

    with mock.patch.object(files, "_write", write):
        return _score_in(ctx, "disk_full", "--batch-size", "2")


def _score_stopped(ctx, exc, folder):
    from unittest import mock

    import skcpcae._scoring as scoring

    real = scoring._default_score_batch
    calls = []

    def batch(*args):  # the signal arrives while the second batch is scored
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real(*args)

    with mock.patch.object(scoring, "_default_score_batch", batch):
        return _score_in(ctx, folder, "--batch-size", "2")


def _stopped(code, word):
    def check(result, ctx):
        folder = ctx.tmp / ("terminated" if code == 143 else "interrupted")
        assert result.exit_code == code, result.output
        assert word in result.stderr and "--resume" in result.stderr, result.stderr
        assert "Traceback" not in result.output
        assert not _hidden(folder), _hidden(folder)  # no lock, no temporary file
        with open(folder / "scores.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == 2 and all(r["anomaly_score"] for r in rows)  # batch 1, whole
    return check


def _fit_unwritable(errno_name):
    def call(ctx):
        import errno
        from unittest import mock

        from skcpcae import persistence

        target = ctx.tmp / f"fit_{errno_name}"
        target.mkdir(exist_ok=True)
        code = getattr(errno, errno_name)
        real = persistence.save
        error = (PermissionError if code == errno.EACCES else OSError)(code,
                                                                       os.strerror(code))

        def save(est, path, **kwargs):  # as a read-only folder or a full disk would
            if Path(path).resolve().parent == target.resolve():
                raise error
            return real(est, path, **kwargs)

        with mock.patch.object(persistence, "save", save):
            return _cli("fit", ctx.files["good_dir"], "-o", target / "m.skops", *_FAST_FIT)
    return call


_FAST_FIT = ("--preset", "best", "--set", "deeppatchembedder__weights=None",
             "--set", "deeppatchembedder__stages=[2]", "--set", "kdethresholdclassifier__cv=2",
             "--quiet")


def _model_saved_elsewhere(errno_name):
    def check(result, ctx):
        import errno
        import tempfile

        from skcpcae import persistence

        code = getattr(errno, errno_name)
        line = _exit_2(re.escape(os.strerror(code)) + r".*saved as '[^']+' instead")(
            result, ctx) or [ln for ln in result.stderr.splitlines()
                             if ln.startswith("Error: ")][0]
        saved = Path(re.search(r"saved as '([^']+)' instead", line).group(1))
        try:
            assert saved.parent == Path(tempfile.gettempdir()) and saved.suffix == ".skops"
            model = persistence.load(saved)
            assert model.predict(load_images(ctx.files["good_dir"])).shape == (4,)
        finally:
            saved.unlink(missing_ok=True)
        target = ctx.tmp / f"fit_{errno_name}"
        assert not (target / "m.skops").exists() and not _hidden(target)
    return check


def _fit_in_use(ctx):
    from skcpcae.utils._files import claim_output

    out = ctx.tmp / "fit_in_use.skops"
    with claim_output(out):  # another fit is writing this model file
        result = _cli("fit", ctx.files["good_dir"], "-o", out, *_FAST_FIT)
    assert not out.exists()
    return result


def _score_files_formulas(ctx):
    import contextlib

    from skcpcae import score_files

    f = _hostile_files(ctx)
    out = ctx.tmp / "formula.csv"
    with contextlib.chdir(f["formula_dir"]):  # relative names, as given
        score_files(_model_files(ctx) / "good.skops", f["formula_names"], out)
    return out.read_text(encoding="utf-8")


def _check_formulas(raw, ctx):
    cells = [line.split(",", 1)[0] for line in raw.splitlines()[1:]]
    assert cells == ["'=SUM(1).png", "'+1.png", "'-1.png", "'@x.png", "plain.png"], cells


def _edited_model_file(ctx):
    import copy

    from skcpcae.persistence import load, save

    cpcae = copy.deepcopy(ctx.fitted("CPCAEResidualMap"))
    cpcae.n_patches_ = 10**9  # without the check: an embedding of 10^9 rows at load
    return load(save(cpcae, ctx.tmp / "edited_n_patches.skops"))


def _saved_under_umask(ctx):
    import stat

    from skcpcae.persistence import save

    old = os.umask(0o027)
    try:
        path = save(ctx.fitted("VariationDetector"), ctx.tmp / "umask027.skops")
    finally:
        os.umask(old)
    return stat.S_IMODE(Path(path).stat().st_mode)


def _overflowing_distances(ctx):
    from skcpcae._components.knn import local_patch_distances

    # squared norms 1e38 fit in float32; the squared distance between them, 4e38, does not
    return local_patch_distances(np.full((1, 2, 2, 1), 1e19, np.float32),
                                 np.full((2, 2, 2, 1), -1e19, np.float32))


def _nothing_lost_rows():
    rows = []

    def row(component, case, how, expected, call, **kw):
        rows.append(Row(component=component, case=case, how=how, expected=expected,
                        call=call, **kw))

    budget = (r"Image file '.*{}' is {} pixels \(height x width\), .* over the pixel budget "
              r"of .* refused from its header, before decoding")
    # loaders: headers first, hostile files said aloud
    row("load_images", "decompression-bomb", "a 30000x30000 8-bit PNG header (a few hundred "
        "bytes on disk, 900 MB decoded)",
        "ValueError naming the file and its size, from the header: nothing is decoded or "
        "allocated; says how to raise the budget (`max_pixels=`, `--max-pixels`).",
        lambda c: _no_decode(lambda: load_images(_hostile_files(c)["bomb8"])),
        raises=ValueError, match=budget.format("bomb8.png", "30000x30000"))
    row("load_images", "16-bit-decompression-bomb", "a 30000x30000 16-bit PNG header "
        "(1.8 GB decoded)", "ValueError naming the file, from the header, before decoding.",
        lambda c: _no_decode(lambda: load_images(_hostile_files(c)["bomb16"])),
        raises=ValueError, match=budget.format("bomb16.png", "30000x30000"))
    row("load_images", "over-pixel-budget", "a 24x24 PNG with `max_pixels=100`",
        "ValueError naming the file, from the header, before decoding (the budget is "
        "settable; default 100 megapixels).",
        lambda c: _no_decode(lambda: load_images(c.files["good"][0], max_pixels=100)),
        raises=ValueError, match=budget.format("0.png", "24x24"))
    row("load_images", "bomb-in-folder", "a folder of two 24x24 PNGs and a 30000x30000 "
        "header", "ValueError naming the bomb, refused from its header (the bomb is never "
        "decoded).", lambda c: load_images(_hostile_files(c)["bomb_dir"]),
        raises=ValueError, match=budget.format("2_bomb.png", "30000x30000"))

    def check_first_page(result, c):
        np.testing.assert_array_equal(result[0], c.files["gray8"] / np.float32(255))

    row("load_images", "multi-page-tiff", "a TIFF of two pages (the image, then its negative)",
        "Works, said aloud: a UserWarning names the file and its page count; the first page "
        "is read.", lambda c: load_images(_hostile_files(c)["tiff2"]), warns=UserWarning,
        warns_match=r"two_pages\.tif' holds 2 pages \(frames\); only the first is read",
        check=check_first_page)
    row("load_images", "broken-symlink-in-folder", "a folder of two PNGs and `gone.png`, a "
        "link to a file that does not exist",
        "Works, said aloud: a UserWarning names the link and its missing target; the two "
        "images load.", lambda c: load_images(_hostile_files(c)["links_dir"]),
        warns=UserWarning,
        warns_match=r"Skipped 1 broken symbolic link\(s\) .*'gone\.png' -> '.*nowhere\.png'",
        check=lambda r, c: _finite(r.reshape(len(r), -1).sum(1), c, n=2))
    row("load_images", "broken-symlink-path", "`load_images('gone.png')`, a broken link",
        "FileNotFoundError saying it is a broken symbolic link and naming its target.",
        lambda c: load_images(_hostile_files(c)["broken_link"]), raises=FileNotFoundError,
        match=r"gone\.png' is a broken symbolic link \(to '.*nowhere\.png'")

    # local_patch_distances: overflow is an error, never a distance of 0
    row("local_patch_distances", "distances-overflowing-float32",
        "query patches of 1e19 against memory patches of -1e19 (squared norms finite, the "
        "squared distance 4e38 is not)",
        "ValueError: the distances overflow float32; never dropped and read as 0 (normal).",
        _overflowing_distances, raises=ValueError,
        match=r"Patch distances overflow float32")

    # skcpcae score: the output is claimed, checked writable first, never left half-made
    row("skcpcae score", "output-folder-in-use", "a second `skcpcae score ... -o out` while "
        "another run holds `out`", "Exit 2, one line naming the run that holds the folder; "
        "nothing written.", _score_in_use,
        check=_exit_2(r"in use by another skcpcae run \(pid \d+"))
    row("skcpcae score", "output-folder-not-writable", "`-o` a folder where the lock file "
        "(the run's first write) cannot be created", "Exit 2, one line, before a single "
        "image is read.", _score_unwritable, check=_exit_2(r"Permission denied"))
    row("skcpcae score", "disk-full-while-writing", "ENOSPC while the second batch's rows "
        "are written", "Exit 2, one line: the disk is full, the finished rows are kept, "
        "rerun with --resume; no lock or temporary file left.", _score_disk_full,
        check=_exit_2_nothing_left(r"disk is full .*--resume", "disk_full"))
    row("skcpcae score", "terminated-mid-run", "SIGTERM while the second batch is scored",
        "Exit 143, 'Terminated.' and how to resume; the first batch's rows kept whole; no "
        "lock or temporary file left.",
        lambda c: _score_stopped(c, _cli_errors()._Terminated(15), "terminated"),
        check=_stopped(143, "Terminated."))
    row("skcpcae score", "interrupted-mid-run", "Ctrl-C (SIGINT) while the second batch is "
        "scored", "Exit 130, 'Interrupted.' and how to resume; the first batch's rows kept "
        "whole; no lock or temporary file left.",
        lambda c: _score_stopped(c, KeyboardInterrupt(), "interrupted"),
        check=_stopped(130, "Interrupted."))
    row("skcpcae score", "decompression-bomb", "a folder holding a 30000x30000 PNG header, "
        "`--on-error fail`", "Exit 2, one line naming the file, refused from its header.",
        lambda c: _score_in(c, "bomb", "--on-error", "fail",
                            src=_hostile_files(c)["bomb_dir"]),
        check=_exit_2(budget.format("2_bomb.png", "30000x30000")))
    row("score_files", "formula-like-file-names", "relative names `=SUM(1).png`, `+1.png`, "
        "`-1.png`, `@x.png`", "Works: such cells are written with a leading `'`, so a "
        "spreadsheet shows them as text instead of running them.", _score_files_formulas,
        check=_check_formulas)

    # skcpcae fit: a finished fit always reaches disk
    for errno_name, what in [("EACCES", "a read-only folder (PermissionError)"),
                             ("ENOSPC", "a full disk (OSError ENOSPC)")]:
        row("skcpcae fit", f"model-folder-{errno_name}", f"`-o` in {what}",
            "Exit 2, one line: the model is saved in the system temp folder and its path "
            "printed; that file loads and scores.",
            _fit_unwritable(errno_name), check=_model_saved_elsewhere(errno_name))
    row("skcpcae fit", "model-file-in-use", "a second fit onto a model file another fit "
        "holds", "Exit 2, one line; nothing written.", _fit_in_use,
        check=_exit_2(r"in use by another skcpcae run"))
    row("skcpcae fit", "mixed-sizes", "a folder with a 24x24 and a 20x24 image",
        "Exit 2, one line listing the sizes with a file each; says to use --size (and "
        "--keep-aspect): images are never resized to the first file's size.",
        lambda c: _cli("fit", c.files["sizes_dir"], "-o", c.tmp / "mixed.skops", *_FAST_FIT),
        check=_exit_2(r"2 different sizes.*24x24: 1 file\(s\).*20x24: 1 file\(s\).*--size"))
    row("skcpcae fit", "over-pixel-budget", "`--max-pixels 100` with 24x24 images",
        "Exit 2, one line naming the file, from its header, before any image is decoded.",
        lambda c: _no_decode(lambda: _cli("fit", c.files["good_dir"], "-o",
                                          c.tmp / "budget.skops", "--max-pixels", "100",
                                          *_FAST_FIT)),
        check=_exit_2(budget.format(r"\d\.png", "24x24")))

    # model files
    row("persistence.load", "edited-size-in-model-file", "a .skops whose `n_patches_` says "
        "10^9 (a trusted integer)", "ValueError: the sizes do not fit the network; refused "
        "before allocating.", _edited_model_file, raises=ValueError,
        match=r"do not fit the network .*\(\d+, 1000000\d+\) vs stored")

    def check_mode(mode, ctx):
        assert mode == 0o640, oct(mode)

    row("persistence.save", "umask-027", "`save` under `umask 027`",
        "Works: the file is written with the user's umask, mode 0640 (not 0600).",
        _saved_under_umask, check=check_mode)
    return rows


def _cli_module():
    from skcpcae import cli

    return cli


def _cli_errors():
    from skcpcae._cli import _errors

    return _errors


CATALOGUE = (
    [r for name in IMAGE_STAGES for r in _image_rows(name)]
    + [r for name in TABULAR for r in _tabular_rows(name)]
    + _loader_rows()
    + _cli_rows()
    + _nothing_lost_rows()
)


# ----------------------------------------------------------------------------- the tests
_OWN = (os.sep + "skcpcae" + os.sep, os.sep + "sklearn" + os.sep)


def _raising_frame(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    return frames[-1].filename if frames else ""


def _param(row):
    marks = [pytest.mark.xfail(strict=True, reason=row.xfail)] if row.xfail else []
    return pytest.param(row, id=row.id, marks=marks)


@pytest.mark.parametrize("row", [_param(r) for r in CATALOGUE])
def test_bad_input(row, ctx):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if row.raises is not None:
            with pytest.raises(row.raises, match=row.match) as excinfo:
                row.call(ctx)
            exc = excinfo.value
            assert not isinstance(exc, cv2.error)
            where = _raising_frame(exc)
            assert any(part in where for part in _OWN), (
                f"{type(exc).__name__} raised outside skcpcae / sklearn validation, in {where}"
            )
        else:
            result = row.call(ctx)
            if row.check is not None:
                row.check(result, ctx)
    messages = [(w.category, str(w.message)) for w in caught]
    if row.warns is not None:
        assert any(
            issubclass(cat, row.warns) and re.search(row.warns_match, msg)
            for cat, msg in messages
        ), f"expected {row.warns.__name__} matching {row.warns_match!r}; got {messages}"
    elif row.raises is None:
        # a successful conversion is silent (registration failures aside)
        unexpected = [m for m in messages if not issubclass(m[0], ConvergenceWarning)]
        assert not unexpected, unexpected


def test_catalogue_ids_are_unique_and_rows_complete():
    ids = [r.id for r in CATALOGUE]
    assert len(ids) == len(set(ids))
    for r in CATALOGUE:
        assert r.expected.endswith(".") and r.how
        assert (r.raises is None) == (r.match is None)
        assert r.raises is not None or r.check is not None or r.warns is not None
    components = {r.component for r in CATALOGUE}
    assert set(IMAGE_STAGES) | set(TABULAR) <= components
    assert {"load_images", "load_folder", "ImageReader", "load_mvtec_ad"} <= components


def test_docs_table_is_up_to_date():
    spec = importlib.util.spec_from_file_location(
        "_bad_input_table", ROOT / "benchmarks" / "bad_input_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render(CATALOGUE)
    path = ROOT / "docs" / "bad_input.md"
    assert path.read_text(encoding="utf-8") == expected, (
        "docs/bad_input.md is out of date: run `python benchmarks/bad_input_table.py`"
    )
