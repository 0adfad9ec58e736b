# SPDX-License-Identifier: BSD-3-Clause
"""``skcpcae score model.onnx FOLDER``: the command line's light branch (no torch)."""

from ._model import score_to_csv

__all__ = ["score_onnx"]


def score_onnx(model, inputs, output, *, batch_size, recursive, force, quiet, error):
    """Score ``inputs`` with an exported model into ``output/scores.csv``.

    ``error`` is the command line's error type (exit code 2).
    """
    import typer

    try:
        summary = score_to_csv(model, inputs, output, batch_size=batch_size,
                               recursive=recursive, overwrite=force)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, TypeError,
            ImportError) as exc:
        raise error(str(exc)) from None
    if not quiet:
        n, bad = summary["n_scored"], summary["n_defect"]
        typer.echo(f"Scored {n} image(s): {bad} defect, {n - bad} ok (threshold "
                   f"{summary['threshold']:.6g}). Wrote {summary['path']!r}.")
    return summary
