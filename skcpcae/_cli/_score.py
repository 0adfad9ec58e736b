# SPDX-License-Identifier: BSD-3-Clause
"""The work of ``skcpcae score``: which map outputs a run can make, and the batch scorer run
with its failures translated into one-line errors."""

import logging
from contextlib import ExitStack, contextmanager
from pathlib import Path

import typer

from .._steps import fitted_layout, set_verbose
from ._errors import CLIError
from ._files import _prepare_dir
from ._maps import _heatmap_names
from ._memory_checks import _check_score_memory


def _results_path(output, output_format, *, force, resume):
    """``(out_dir, scores_path)``, refusing an output that is a file and a scores file that
    exists without ``--force`` / ``--resume``."""
    out_dir = Path(output)
    if out_dir.exists() and not out_dir.is_dir():
        raise CLIError(f"Output {str(out_dir)!r} exists and is not a folder.")
    csv_path = out_dir / f"scores.{output_format}"
    if csv_path.exists() and not (force or resume):
        raise CLIError(
            f"{str(csv_path)!r} already exists; use --resume to continue the run that "
            "wrote it, or --force to overwrite it."
        )
    return out_dir, csv_path


def _prepare_run(pipe, out_dir, batch_size, limit):
    """Create the output folder, refuse batches that would not fit in memory, quiet the
    model's steps."""
    _prepare_dir(out_dir)
    size_hw, color = fitted_layout(pipe)
    if size_hw is not None:
        _check_score_memory(pipe, batch_size, size_hw + ((3,) if color == "rgb" else ()),
                            limit)
    set_verbose(pipe, 0)


def _map_outputs(pipe, paths, out_dir, *, force, resume):
    """Where the maps of ``skcpcae score`` come from and the heatmap name of each input,
    refusing a model without maps and outputs that exist without ``--force`` / ``--resume``
    (``--force`` removes the old locations.jsonl)."""
    from ..inspection import map_source

    source = map_source(pipe)
    if source is None:
        raise CLIError(
            "Anomaly maps (--heatmaps, --locations, --save-maps, --save-masks) are "
            "unavailable for this model: none of its steps makes an anomaly map and it "
            "does not take images. Rerun without these options."
        )
    if source == "occlusion":
        typer.echo("warning: no step of this model makes an anomaly map; the maps are "
                   "occlusion maps (64 extra scorings per image: slow).", err=True)
    names = _heatmap_names(paths)
    jsonl = out_dir / "locations.jsonl"
    if jsonl.exists() and not (force or resume):
        raise CLIError(f"{str(jsonl)!r} already exists; use --resume or --force.")
    if jsonl.exists() and force:
        jsonl.unlink()
    existing = [n for n in names if (out_dir / "heatmaps" / n).exists()]
    if existing and not (force or resume):
        raise CLIError(
            f"{str(out_dir / 'heatmaps' / existing[0])!r} already exists "
            f"({len(existing)} heatmap file(s) would be overwritten); use --force to "
            "overwrite them."
        )
    return source, names


def _what_is_kept(csv_path, purpose=""):
    """What an interrupted run leaves: the rows already written and how to go on."""
    try:
        with open(csv_path, encoding="utf-8") as f:
            rows = max(sum(1 for _ in f) - 1, 0)  # minus the header
    except OSError:
        rows = 0
    if rows == 0:
        return "no image had been scored, no row is kept"
    return (f"the {rows} row{'s' if rows != 1 else ''} of the finished batches are kept in "
            f"{str(csv_path)!r}; rerun with --resume{' ' + purpose if purpose else ''}")


def _check_cluster_options(scheduler, workers, want_maps):
    """``--scheduler`` / ``--workers``: one of them, and not with the per-image map outputs."""
    if scheduler is not None and workers is not None:
        raise CLIError("Give --scheduler (an existing Dask cluster) or --workers (a local "
                       "one), not both.")
    if want_maps and (scheduler is not None or workers is not None):
        raise CLIError(
            "--heatmaps, --locations, --save-maps and --save-masks run in one process "
            "(locations.jsonl is appended as batches are scored); drop --scheduler / "
            "--workers, or score without them."
        )


@contextmanager
def _dask_client(scheduler, workers):
    """A ``distributed.Client`` of ``--scheduler`` or of a local cluster of ``--workers``
    processes (on 127.0.0.1), closed at the end; ``None`` without either option."""
    if scheduler is None and workers is None:
        yield None
        return
    option = "--scheduler" if scheduler is not None else "--workers"
    try:
        from distributed import Client
    except ImportError:
        raise CLIError(f"{option} needs Dask: pip install 'skcpcae[dask]'.") from None
    from ..scale import _local_client

    with ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except (OSError, TimeoutError, ValueError) as exc:
                raise CLIError(f"Cannot reach the Dask scheduler at {scheduler!r}: "
                               f"{' '.join(str(exc).split()) or type(exc).__name__}.") from None
        else:
            client = stack.enter_context(_local_client(workers, silence_logs=logging.ERROR))
        yield client


def _score_all(pipe, paths, csv_path, out_dir, score_batch, *, batch_size, resume, force,
               on_error, quiet, max_pixels, client=None, trusted=None, allow_pickle=False):
    """:func:`skcpcae._scoring.score_files` with its failures as one-line errors that say
    what is kept (the rows of the finished batches) and how to go on (``--resume``).
    ``pipe`` is the loaded model, or its file (with ``client``: each worker loads it)."""
    from .._scoring import score_files
    from ..datasets import MAX_PIXELS
    from ..utils._files import OutputInUseError, is_disk_full

    try:
        return score_files(
            pipe, paths, csv_path, batch_size=batch_size, resume=resume,
            overwrite=force, on_error=on_error, verbose=0 if quiet else 1,
            max_pixels=MAX_PIXELS if max_pixels is None else max_pixels,
            score_batch=score_batch, client=client,
            trusted=list(trusted or []) or None, allow_pickle=bool(allow_pickle),
        )
    except OutputInUseError as exc:
        raise CLIError(str(exc)) from None
    except (FileExistsError, ImportError) as exc:
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo(_what_is_kept(csv_path, "to score the rest") + ".", err=True)
        raise
    except ValueError as exc:  # --on-error fail
        raise CLIError(f"{exc} ({_what_is_kept(csv_path)})") from None
    except OSError as exc:
        if type(exc).__module__.startswith("distributed"):
            raise CLIError(_cluster_failed(exc, csv_path)) from None
        if is_disk_full(exc):
            raise CLIError(
                f"The disk is full ({exc.strerror or exc}) while writing in "
                f"{str(out_dir)!r}; free some space. {_what_is_kept(csv_path)}."
            ) from None
        raise CLIError(f"Cannot write the results in {str(out_dir)!r}: "
                       f"{exc.strerror or exc}.") from None
    except Exception as exc:
        if not type(exc).__module__.startswith("distributed"):
            raise
        # e.g. KilledWorker: one batch killed its workers again and again
        raise CLIError(_cluster_failed(exc, csv_path)) from None


def _cluster_failed(exc, csv_path):
    return (f"The Dask cluster failed ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            f"{_what_is_kept(csv_path)}.")


def _score_exported(model, inputs, output, *, batch_size, recursive, force, quiet, debug):
    """``skcpcae score model.onnx ...``: the light runtime (onnxruntime, no torch)."""
    from ..runtime._cli import score_onnx
    from ._errors import CLIError, _errors

    with _errors(debug):
        score_onnx(model, inputs, output, batch_size=batch_size, recursive=recursive,
                   force=force, quiet=quiet, error=CLIError)
