# SPDX-License-Identifier: BSD-3-Clause
"""The work of ``skcpcae fit``: the preset's pipeline with every parameter checked, the good
images sized and loaded after a memory check, the fit and its record."""

from .._steps import set_verbose, validate_steps
from ._errors import CLIError
from ._inputs import _common_size, _image_sizes, _load
from ._memory_checks import _check_fit_memory


def _make_pipeline(preset, params):
    """The preset's pipeline with ``params`` set, every parameter checked before any image
    is read."""
    from .._pipelines import make_preset

    try:
        pipe = make_preset(preset, **params)
        validate_steps(pipe)  # every parameter checked before any image is read
    except (ValueError, TypeError) as exc:
        raise CLIError(
            f"Bad --set for preset {preset!r}: {exc} (`skcpcae fit --preset {preset} "
            "--list-params` lists the parameters)."
        ) from None
    return pipe


def _fit_images(pipe, preset, paths, *, size_hw, color, keep_aspect, max_pixels, limit,
                quiet):
    """``(X, size_hw, source_sizes)``: the sizes read from the headers (no image decoded),
    the common size, the memory check, then the images loaded."""
    from .._memory import embed_batch_size

    sizes = _image_sizes(paths, max_pixels)  # headers only: no image decoded yet
    if size_hw is None:
        size_hw = _common_size(sizes, keep_aspect)
    _check_fit_memory(preset, len(paths), size_hw + ((3,) if color == "rgb" else ()),
                      limit, batch_size=embed_batch_size(pipe))
    X = _load(paths, size=size_hw, color=color, verbose=0 if quiet else 1,
              keep_aspect=keep_aspect, max_pixels=max_pixels)
    return X, size_hw, sizes


def _fit_and_record(pipe, X, *, preset, params, config, paths, source_sizes):
    """Fit (the steps' progress as set by the caller, then quiet) and store ``fit_record_``."""
    from .._fit_record import fit_record

    try:
        pipe.fit(X)
    except ValueError as exc:
        raise CLIError(f"Fitting failed: {exc}") from None
    set_verbose(pipe, 0)
    pipe.fit_record_ = fit_record(X, preset=preset, params=params, config=config,
                                  paths=paths, source_sizes=source_sizes,
                                  command="skcpcae fit")
