# SPDX-License-Identifier: BSD-3-Clause
"""Memory estimates for ``skcpcae fit`` and ``skcpcae score``, checked before any image loads.

A model per preset, linear in what is kept for every image and in the activations of one
batch of the embedder (:data:`EMBED_BATCH` images at a time)::

    fit peak   = fit_base + n * (fit_per_pixel * pixels + fit_per_image)
                 + min(n, batch) * fit_batch_per_pixel * pixels
    score peak = score_base + s * (score_per_pixel * pixels + score_per_image)
                 + min(s, batch) * score_batch_per_pixel * pixels
                 + n_train * score_train_per_pixel * pixels

with ``pixels = height * width * channels``, ``n`` training images, ``s`` images scored at a
time and ``n_train`` the images the model was fitted on. The per-image terms are what is kept
for every image (the float32 image and its copies, residual maps, patch features in the
memory bank); the batch term is the network activations of one batch, which does not grow
with the number of images. The coefficients were measured with
``benchmarks/memory_estimate.py`` (peak resident memory ``VmHWM`` of a fresh process at
several image counts and sizes, synthetic gray parts, CPU; fitted by least squares); the fit
figure includes the Python process, torch, the backbone and the images themselves; the score
figure is what one batch adds to a loaded model. :data:`SAFETY` covers what the measurement
cannot see (allocator fragmentation, other image content, other library builds). The
estimate is a guard against runs that cannot fit, not a promise: ``--memory-limit``
overrides the memory it is compared with.
"""

import math
import re

from .utils._system import available_memory

MiB = MB = 2**20
GiB = 2**30

#: Safety factor applied to every estimate.
SAFETY = 1.25

#: Images the embedders run through the network at a time (their ``batch_size`` default).
EMBED_BATCH = 16

#: Measured by ``python benchmarks/memory_estimate.py`` (bytes; table in
#: docs/benchmarks.md, "Memory estimate"): 2 CPU cores, torch 2.14, EfficientNet-Lite0.
MEMORY_MODEL = {
    "best": dict(fit_base=1016 * MB, fit_per_pixel=332.2, fit_per_image=0.32 * MB,
                 fit_batch_per_pixel=0.0, score_base=3 * MB, score_per_pixel=84.7,
                 score_per_image=0.0, score_batch_per_pixel=0.0, score_train_per_pixel=0.0),
    "aligned": dict(fit_base=1074 * MB, fit_per_pixel=278.2, fit_per_image=0.0,
                    fit_batch_per_pixel=0.0, score_base=23 * MB, score_per_pixel=98.8,
                    score_per_image=0.0, score_batch_per_pixel=0.0,
                    score_train_per_pixel=0.0),
    "paper": dict(fit_base=1004 * MB, fit_per_pixel=488.9, fit_per_image=6.73 * MB,
                  fit_batch_per_pixel=0.0, score_base=24 * MB, score_per_pixel=99.0,
                  score_per_image=0.0, score_batch_per_pixel=0.0, score_train_per_pixel=0.0),
    "deep-feature": dict(fit_base=1109 * MB, fit_per_pixel=311.4, fit_per_image=0.75 * MB,
                         fit_batch_per_pixel=0.0, score_base=0.0, score_per_pixel=246.8,
                         score_per_image=0.0, score_batch_per_pixel=0.0,
                         score_train_per_pixel=0.0),
}

_KEYS = ("fit_base", "fit_per_pixel", "fit_per_image", "fit_batch_per_pixel", "score_base",
         "score_per_pixel", "score_per_image", "score_batch_per_pixel",
         "score_train_per_pixel")


def _coefficients(preset):
    if preset in MEMORY_MODEL:
        return MEMORY_MODEL[preset]
    # an unknown pipeline: the most demanding preset's figures
    return {key: max(m[key] for m in MEMORY_MODEL.values()) for key in _KEYS}


def _pixels(shape):
    return math.prod(int(s) for s in shape)


def _terms(m, kind, shape, extra_images=0):
    """``(base, per image, per batch image)`` in bytes of ``kind`` ("fit" or "score")."""
    p = _pixels(shape)
    base = m[f"{kind}_base"] + (extra_images * m["score_train_per_pixel"] * p
                                if kind == "score" else 0.0)
    return base, m[f"{kind}_per_pixel"] * p + m[f"{kind}_per_image"], \
        m[f"{kind}_batch_per_pixel"] * p


def _peak(terms, n, batch_size):
    base, per, per_batch = terms
    return SAFETY * (base + n * per + min(n, batch_size) * per_batch)


def _most_images(terms, budget, batch_size, peak):
    """The largest ``n`` with ``peak(n) <= budget`` (0 if none), ``peak`` increasing."""
    base, per, per_batch = terms
    room = budget / SAFETY - base
    if room < 0:
        return 0
    if per + per_batch <= 0:
        return 10**9
    n = int(room // (per + per_batch))
    if n >= batch_size:  # beyond one batch only the per-image term grows
        n = 10**9 if per <= 0 else int((room - batch_size * per_batch) // per)
    n = max(0, min(n, 10**9))
    while n > 0 and peak(n) > budget:  # float rounding at the edge
        n -= 1
    while n < 10**9 and peak(n + 1) <= budget:
        n += 1
    return n


def estimate_fit(preset, n_images, shape, *, batch_size=None):
    """Estimated peak bytes of fitting ``preset`` on ``n_images`` of ``shape`` (h, w[, c]).

    ``batch_size``: images the embedder runs at a time (default :data:`EMBED_BATCH`).
    """
    batch = EMBED_BATCH if batch_size is None else int(batch_size)
    return _peak(_terms(_coefficients(preset), "fit", shape), n_images, batch)


def estimate_score(preset, batch_size, shape, *, n_train=0, embed_batch=None):
    """Estimated bytes one batch of ``batch_size`` images of ``shape`` adds to a model fitted
    on ``n_train`` images."""
    batch = EMBED_BATCH if embed_batch is None else int(embed_batch)
    terms = _terms(_coefficients(preset), "score", shape, extra_images=n_train)
    return _peak(terms, batch_size, batch)


def max_fit_images(preset, shape, budget, *, batch_size=None):
    """The most images of ``shape`` whose fit stays within ``budget`` bytes (0 if none)."""
    batch = EMBED_BATCH if batch_size is None else int(batch_size)
    terms = _terms(_coefficients(preset), "fit", shape)
    return _most_images(terms, budget, batch, lambda n: _peak(terms, n, batch))


def max_fit_shape(preset, n_images, shape, budget, *, batch_size=None):
    """The largest (height, width) with the aspect of ``shape`` that fits ``n_images``."""
    m = _coefficients(preset)
    batch = EMBED_BATCH if batch_size is None else int(batch_size)
    room = budget / SAFETY - m["fit_base"] - n_images * m["fit_per_image"]
    per_pixel = n_images * m["fit_per_pixel"] + min(n_images, batch) * m["fit_batch_per_pixel"]
    channels = int(shape[2]) if len(shape) > 2 else 1
    if room <= 0 or per_pixel <= 0:
        return None
    scale = math.sqrt(room / per_pixel / channels / (shape[0] * shape[1]))
    h, w = int(shape[0] * scale), int(shape[1] * scale)
    return (h, w) if min(h, w) >= 1 else None


def max_score_batch(preset, shape, budget, *, n_train=0, embed_batch=None):
    """The largest batch of ``shape`` images one scoring step can hold within ``budget``."""
    batch = EMBED_BATCH if embed_batch is None else int(embed_batch)
    terms = _terms(_coefficients(preset), "score", shape, extra_images=n_train)
    return _most_images(terms, budget, batch, lambda s: _peak(terms, s, batch))


def embed_batch_size(model):
    """The largest ``batch_size`` of the embedders in ``model`` (:data:`EMBED_BATCH` if none)."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    sizes = [v for k, v in params.items() if k.endswith("embedder__batch_size")
             and isinstance(v, int)]
    return max(sizes, default=EMBED_BATCH)


def training_size(model):
    """The number of images ``model`` was fitted on (its fit record), or 0 if unknown."""
    record = getattr(model, "fit_record_", None)
    n = ((record or {}).get("data") or {}).get("n_images") if isinstance(record, dict) else None
    if isinstance(n, int) and n >= 0:
        return n
    for _, step in getattr(model, "steps", [("model", model)]):  # a patch memory bank
        bank = getattr(getattr(step, "estimator_", step), "memory_", None)
        if getattr(bank, "ndim", 0) >= 1:
            return int(bank.shape[0])
    return 0


def preset_of(model):
    """The preset whose memory figures describe a fitted pipeline (by its step types)."""
    names = set()
    for step in getattr(model, "steps", [("model", model)]):
        obj = step[1]
        names.add(type(obj).__name__)
        for sub in getattr(obj, "transformer_list", []):  # a FeatureUnion (union preset)
            names.add(type(sub[1]).__name__)
            names.update(type(s).__name__ for _, s in getattr(sub[1], "steps", []))
    if "ResidualPeak" in names:  # the CPCAE presets with the peak branch (a FeatureUnion)
        return "paper" if "ECCRegistrar" in names else "aligned"
    if "FeatureUnion" in names:
        return "union"
    if "DeepPatchEmbedder" in names:
        return "best"
    if "CPCAEResidualMap" in names:
        return "paper" if "ECCRegistrar" in names else "aligned"
    if "DeepPoolEmbedder" in names:
        return "deep-feature"
    return None


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.I)


def parse_memory(text):
    """``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"2000000000"`` → bytes; ``"off"`` → infinity
    (no check)."""
    if text.strip().lower() in ("off", "none"):
        return math.inf
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(
            f"--memory-limit must be a size such as 8G, 512M or 1.5GiB (or 'off'); got "
            f"{text!r}."
        )
    value = float(match.group(1)) * 1024 ** "bkmgt".index((match.group(2) or "b").lower())
    if not (math.isfinite(value) and value >= 1):
        raise ValueError(f"--memory-limit must be at least 1 byte; got {text!r}.")
    return int(value)


def memory_budget(limit):
    """The bytes a run may use: ``limit`` when given, else what the system has available."""
    return limit if limit is not None else available_memory()
