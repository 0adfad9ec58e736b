# SPDX-License-Identifier: BSD-3-Clause
"""What ``skcpcae export`` does, behind the command line's option parsing."""

import numpy as np
import typer

from ._onnx import ParityError, to_onnx

__all__ = ["export_pipeline"]


def export_pipeline(pipe, output, sample_paths, *, rtol, input_dtype, opset, error, layout):
    """Read the sample at the fitted size, export, print the parity figures.

    ``error`` is the command line's error type (exit code 2); ``layout`` the fitted
    ``(size, color)``.
    """
    from ..datasets import load_images

    size, color = layout
    try:
        X = load_images(sample_paths, size=size, color=color)
    except (OSError, ValueError) as exc:
        raise error(f"Cannot read the sample images: {exc}") from None
    if input_dtype == "uint8":
        X = np.clip(np.rint(X * 255.0), 0, 255).astype(np.uint8)
    try:
        report = to_onnx(pipe, output, sample=X, rtol=rtol, opset=opset,
                         input_dtype=input_dtype, overwrite=True)
    except ParityError as exc:
        raise error(str(exc)) from None
    except (NotImplementedError, ValueError, TypeError) as exc:
        raise error(str(exc)) from None
    typer.echo(f"Wrote {report.path!r}: {' -> '.join(report.steps)}; input "
               f"{'x'.join(map(str, report.input_shape))} {report.input_dtype}; threshold "
               f"{report.threshold:.6g}; {report.summary()}.")
    return report
