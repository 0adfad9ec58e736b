# SPDX-License-Identifier: BSD-3-Clause
"""Memory estimates for ``skcpcae fit`` and ``skcpcae score``, checked before any image loads.

A simple model, linear in the pixels held, per preset::

    fit peak   = fit_base   + n_images * (fit_per_pixel   * pixels + fit_per_image)
    score peak = score_base + batch    * (score_per_pixel * pixels + score_per_image)

with ``pixels = height * width * channels``. The coefficients were measured once with
``benchmarks/memory_estimate.py`` (peak resident memory of a fresh process, synthetic gray
parts of 128x128 and 256x256, CPU); the fit figure includes the Python process, torch, the
backbone and the images themselves; the score figure is what one batch adds to a loaded
model. :data:`SAFETY` covers what a small measurement cannot see (allocator fragmentation,
other image content). The estimate is a guard against runs that cannot fit, not a promise:
``--memory-limit`` overrides the memory it is compared with.
"""

import math
import re

from .utils._system import available_memory

MB = 2**20
GiB = 2**30

#: Safety factor applied to every estimate.
SAFETY = 1.25

#: Measured by ``python benchmarks/memory_estimate.py --n 8 --size 128`` (bytes; 2 CPU
#: cores, torch 2.14, EfficientNet-Lite0). "union" was not measured: it gets the largest
#: figure of every measured preset (as any unknown pipeline does).
MEMORY_MODEL = {
    "best": dict(fit_base=1016 * MB, fit_per_pixel=332.2, fit_per_image=0.32 * MB,
                 score_base=3 * MB, score_per_pixel=84.7, score_per_image=0.0),
    "aligned": dict(fit_base=1074 * MB, fit_per_pixel=278.2, fit_per_image=0.0,
                    score_base=23 * MB, score_per_pixel=98.8, score_per_image=0.0),
    "paper": dict(fit_base=1004 * MB, fit_per_pixel=488.9, fit_per_image=6.73 * MB,
                  score_base=24 * MB, score_per_pixel=99.0, score_per_image=0.0),
    "deep-feature": dict(fit_base=1109 * MB, fit_per_pixel=311.4, fit_per_image=0.75 * MB,
                         score_base=0.0, score_per_pixel=246.8, score_per_image=0.0),
}


def _coefficients(preset):
    if preset in MEMORY_MODEL:
        return MEMORY_MODEL[preset]
    # an unknown pipeline: the most demanding preset's figures
    return {key: max(m[key] for m in MEMORY_MODEL.values())
            for key in next(iter(MEMORY_MODEL.values()))}


def estimate_fit(preset, n_images, shape):
    """Estimated peak bytes of fitting ``preset`` on ``n_images`` of ``shape`` (h, w[, c])."""
    m = _coefficients(preset)
    pixels = math.prod(int(s) for s in shape)
    return SAFETY * (m["fit_base"] + n_images * (m["fit_per_pixel"] * pixels
                                                 + m["fit_per_image"]))


def estimate_score(preset, batch_size, shape):
    """Estimated bytes one batch of ``batch_size`` images of ``shape`` adds to a model."""
    m = _coefficients(preset)
    pixels = math.prod(int(s) for s in shape)
    return SAFETY * (m["score_base"] + batch_size * (m["score_per_pixel"] * pixels
                                                     + m["score_per_image"]))


def max_fit_images(preset, shape, budget):
    """The most images of ``shape`` whose fit stays within ``budget`` bytes (0 if none)."""
    m = _coefficients(preset)
    per = m["fit_per_pixel"] * math.prod(int(s) for s in shape) + m["fit_per_image"]
    return max(0, int((budget / SAFETY - m["fit_base"]) // per)) if per > 0 else 10**9


def max_fit_shape(preset, n_images, shape, budget):
    """The largest (height, width) with the aspect of ``shape`` that fits ``n_images``."""
    m = _coefficients(preset)
    room = (budget / SAFETY - m["fit_base"]) / max(1, n_images) - m["fit_per_image"]
    channels = int(shape[2]) if len(shape) > 2 else 1
    if room <= 0 or m["fit_per_pixel"] <= 0:
        return None
    scale = math.sqrt(room / m["fit_per_pixel"] / channels / (shape[0] * shape[1]))
    h, w = int(shape[0] * scale), int(shape[1] * scale)
    return (h, w) if min(h, w) >= 1 else None


def max_score_batch(preset, shape, budget):
    """The largest batch of ``shape`` images one scoring step can hold within ``budget``."""
    m = _coefficients(preset)
    per = m["score_per_pixel"] * math.prod(int(s) for s in shape) + m["score_per_image"]
    return max(0, int((budget / SAFETY - m["score_base"]) // per)) if per > 0 else 10**9


def preset_of(model):
    """The preset whose memory figures describe a fitted pipeline (by its step types)."""
    names = set()
    for step in getattr(model, "steps", [("model", model)]):
        obj = step[1]
        names.add(type(obj).__name__)
        for sub in getattr(obj, "transformer_list", []):  # a FeatureUnion (union preset)
            names.add(type(sub[1]).__name__)
            names.update(type(s).__name__ for _, s in getattr(sub[1], "steps", []))
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
