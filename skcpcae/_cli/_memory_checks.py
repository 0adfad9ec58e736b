# SPDX-License-Identifier: BSD-3-Clause
"""Memory checks run before any image is decoded: refuse a fit or a score run whose estimated
peak memory exceeds the budget, and say what would fit."""

from ._errors import CLIError


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.3g} GiB"


def _check_fit_memory(preset, n_images, shape, limit, batch_size=None):
    """Refuse a fit whose estimated peak memory exceeds the budget, saying what would fit
    (``batch_size``: the embedders' batch, by default theirs)."""
    from .._memory import estimate_fit, max_fit_images, max_fit_shape, memory_budget

    budget = memory_budget(limit)
    need = estimate_fit(preset, n_images, shape, batch_size=batch_size)
    if budget is None or need <= budget:
        return
    h, w = shape[:2]
    fits = []
    n_max = max_fit_images(preset, shape, budget, batch_size=batch_size)
    if n_max >= 1:
        fits.append(f"at most {n_max} images of {h}x{w}")
    hw = max_fit_shape(preset, n_images, shape, budget, batch_size=batch_size)
    if hw is not None:
        fits.append(f"--size {hw[0]}x{hw[1]} or smaller for {n_images} images")
    raise CLIError(
        f"Fitting preset {preset!r} on {n_images} images of {h}x{w} needs about "
        f"{_gib(need)} of memory (estimate), more than the {_gib(budget)} "
        + ("available" if limit is None else "of --memory-limit")
        + "; " + (" or ".join(fits) + " would fit" if fits else
                  "the preset alone needs more than that")
        + " (--memory-limit off skips this check)."
    )


def _check_score_memory(model, batch_size, shape, limit):
    """Refuse a score run whose batches would not fit in memory; suggest a batch size."""
    from .._memory import (
        embed_batch_size,
        estimate_score,
        max_score_batch,
        memory_budget,
        preset_of,
        training_size,
    )

    budget = memory_budget(limit)
    preset = preset_of(model)
    sizes = dict(n_train=training_size(model), embed_batch=embed_batch_size(model))
    need = estimate_score(preset, batch_size, shape, **sizes)
    if budget is None or need <= budget:
        return
    h, w = shape[:2]
    fit = max_score_batch(preset, shape, budget, **sizes)
    raise CLIError(
        f"Scoring batches of {batch_size} images of {h}x{w} needs about {_gib(need)} of "
        f"memory (estimate), more than the {_gib(budget)} "
        + ("available" if limit is None else "of --memory-limit") + "; "
        + (f"--batch-size {fit} would fit" if fit >= 1 else
           "not even one image of this size fits")
        + " (--memory-limit off skips this check)."
    )
