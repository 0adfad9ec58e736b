# SPDX-License-Identifier: BSD-3-Clause
"""Streaming scoring of image files: batches in, rows out, memory flat in the number of images.

:func:`score_files` reads a batch of files, scores it, appends its rows to the output and
forgets it, so that a folder of 100,000 images needs the memory of one batch. The output is
claimed for the run (a second run on it is refused), every batch's rows are appended whole
or not at all, and ``resume=True`` continues an interrupted run where it stopped. An image
that cannot be read becomes a row with its error instead of ending the run.
"""

import os
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from ._sinks import _CsvSink, _ParquetSink
from ._steps import named_steps as _steps
from ._steps import threshold_of as _threshold
from .datasets._io import MAX_PIXELS, _check_pixels, _read_batch, _read_header
from .utils._files import claim_output

__all__ = ["score_files"]



def score_files(
    model,
    paths,
    output,
    *,
    batch_size=32,
    resume=False,
    overwrite=False,
    on_error="skip",
    max_pixels=MAX_PIXELS,
    score_batch=None,
    trusted=None,
    allow_pickle=False,
    client=None,
    verbose=0,
):
    """Score image files in batches, appending each batch's rows to a CSV or Parquet output.

    Peak memory is that of one batch, whatever the number of files. Each finished batch is
    appended to ``output`` at once (whole or not at all), so an interrupted run keeps every
    finished batch and ``resume=True`` scores only the files that are not in the output yet.

    Rows have the columns ``path``, ``anomaly_score`` (higher = more anomalous),
    ``decision`` (``"ok"`` / ``"defect"``), ``threshold`` (on the anomaly score; empty when
    the model has none) and ``error`` (empty, or why the image could not be scored: its
    other cells are then empty). In the CSV, a text cell starting with ``=``, ``+``, ``-``,
    ``@`` (or a tab, a carriage return, an apostrophe) gets a leading apostrophe, so that a
    spreadsheet shows it as text instead of running it as a formula.

    Parameters
    ----------
    model : estimator, pipeline, str or path-like
        A fitted anomaly detector or pipeline (the last step has ``score_samples`` or
        ``decision_function``), or a model file, read with :func:`skcpcae.persistence.load`.
        Images are read in the size and colour mode the model was fitted on (the
        ``image_shape_`` of its first step); a model that starts with
        :class:`~skcpcae.datasets.ImageReader` gets the paths.
    paths : list of str or path-like
        Image files, scored in this order.
    output : str or path-like
        The output: a ``.csv`` file, or a ``.parquet`` folder (a Parquet dataset of one
        part file per batch, read with ``pyarrow.parquet.read_table(output)``; needs
        ``pyarrow``). The folder that holds it must exist. The output is claimed for the
        run: a second run on it raises ``OutputInUseError``.
    batch_size : int, default=32
        Images read, scored and written at a time.
    resume : bool, default=False
        Continue the run that wrote ``output``: the files already in it (scored, or with
        an error) are skipped and the new rows appended. Without ``resume`` nor
        ``overwrite``, an existing ``output`` raises ``FileExistsError``.
    overwrite : bool, default=False
        Start ``output`` afresh when it exists.
    on_error : {"skip", "fail"}, default="skip"
        What an image that cannot be read or scored does: ``"skip"`` writes a row with its
        error and goes on; ``"fail"`` raises a ``ValueError`` naming the file (the rows of
        the batches finished before are kept).
    max_pixels : int or None, default=MAX_PIXELS
        Pixel budget of one image (height x width), checked from the file's header before
        decoding (see :func:`~skcpcae.datasets.load_images`).
    score_batch : callable or None, default=None
        ``score_batch(model, X, paths) -> dict`` of columns (name -> one value per image,
        in order) for one batch; ``X`` is the batch of images (or of paths, for a model
        that reads files). ``None`` gives ``anomaly_score``, ``decision`` and
        ``threshold``. Floats are written exactly (``repr``), other values as text. With
        ``client``, it runs on the workers: it must be picklable, and a batch may run more
        than once (when a worker dies), so files it writes must be written whole
        (atomically) under names of their own.
    trusted : list of str or None, default=None
        Extra types to trust in a ``.skops`` model file (:func:`skcpcae.persistence.load`).
    allow_pickle : bool, default=False
        Read a ``.joblib`` (pickle) model file: only for files you trust.
    client : ``distributed.Client`` or None, default=None
        Score on this Dask cluster (needs the ``dask`` extra): each batch is a task, the
        images are read by the workers, and a model given as a file is loaded once per
        worker from that file (the workers must see the model and the images at the paths
        given; make them absolute). A model given as an object is sent to each worker
        once. This process alone writes ``output``, the batches in input order as their
        results arrive, so the output is row for row the one a run without ``client``
        writes, and a batch whose worker dies is run again elsewhere and written once.
        ``None`` scores in this process.
    verbose : int, default=0
        Show a progress bar (images/s and time left) on stderr when positive.

    Returns
    -------
    summary : :class:`~sklearn.utils.Bunch`
        ``output`` (path), ``n_images`` (files given), ``n_skipped`` (already in the
        output), ``n_scored``, ``n_errors`` and ``n_defect`` (of this run), ``threshold``.

    Raises
    ------
    OutputInUseError
        When another run holds ``output``.
    FileExistsError
        When ``output`` exists and neither ``resume`` nor ``overwrite`` is set.
    OSError
        When the output cannot be written (checked before any image is read) or the disk
        fills up (the rows written before are kept; rerun with ``resume=True``).

    See Also
    --------
    skcpcae.datasets.load_images : the reading and its conversions.

    Examples
    --------
    >>> import csv, os, tempfile
    >>> import numpy as np
    >>> from skcpcae import score_files
    >>> from skcpcae.datasets import make_parts, save_image
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> X, _ = make_parts(10, size=(16, 16), random_state=0)
    >>> model = KNNAnomalyScorer(n_neighbors=2).fit(X.reshape(10, -1)[:8])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = [save_image(os.path.join(tmp, f"{i}.png"), X[i]) for i in range(10)]
    ...     out = os.path.join(tmp, "scores.csv")
    ...     summary = score_files(model, paths, out, batch_size=4)
    ...     rows = list(csv.DictReader(open(out, newline="")))
    >>> summary.n_scored, len(rows), sorted(rows[0])
    (10, 10, ['anomaly_score', 'decision', 'error', 'path', 'threshold'])
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail'; got {on_error!r}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}.")
    from .scale import BatchScorer

    options = dict(score_batch=score_batch, on_error=on_error, max_pixels=max_pixels,
                   trusted=trusted, allow_pickle=allow_pickle)
    if isinstance(model, (str, os.PathLike)):
        from . import persistence

        # with a client the workers load the file (once each); this process reads it too,
        # for the summary, without keeping it once the run is over
        scorer = BatchScorer(model, **options) if client is not None else None
        model = persistence.load(model, trusted=list(trusted) if trusted else None,
                                 allow_pickle=allow_pickle)
        scorer = scorer or BatchScorer(model, **options)
    else:
        scorer = BatchScorer(model, **options)
    if client is not None:
        from .scale import _map_on_client

        score_batches = partial(_map_on_client, client, scorer)
    else:
        score_batches = partial(map, scorer.score_paths)
    paths = [os.fspath(p) for p in paths]
    output = Path(output)
    sink = (_ParquetSink if output.suffix.lower() == ".parquet" else _CsvSink)(output)

    with claim_output(output.parent):
        done = sink.open(resume=resume, overwrite=overwrite)  # the first write: fails early
        todo = [p for p in paths if p not in done]
        summary = Bunch(output=str(output), n_images=len(paths),
                        n_skipped=len(paths) - len(todo), n_scored=0, n_errors=0,
                        n_defect=0, threshold=_threshold(_steps(model)[-1][1]))
        from tqdm.auto import tqdm

        with tqdm(total=len(todo), desc="Scoring", unit="img", disable=not verbose,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            chunks = (todo[start:start + batch_size]
                      for start in range(0, len(todo), batch_size))
            for rows in score_batches(chunks):
                sink.write(rows)
                for row in rows:
                    if row.get("error"):
                        summary.n_errors += 1
                    else:
                        summary.n_scored += 1
                        summary.n_defect += row.get("decision") == "defect"
                bar.update(len(rows))
    return summary


# ----------------------------------------------------------------------------- one batch


def _score_chunk(model, chunk, score_batch, *, size, color, reads_files, max_pixels,
                 on_error):
    """Rows (dicts) of one batch: read each file, score the readable ones together."""
    images, ok, errors = [], [], {}
    for path in chunk:
        try:
            images.append(_read_one(path, size=size, color=color, reads_files=reads_files,
                                    max_pixels=max_pixels))
            ok.append(path)
        except (OSError, ValueError) as exc:
            if on_error == "fail":
                raise ValueError(f"Cannot read {path!r}: {exc}") from exc
            errors[path] = _one_line(exc)
    columns = {}
    if ok:
        try:
            columns = _run_batch(model, images, ok, score_batch, reads_files)
        except (ValueError, TypeError) as exc:
            if on_error == "fail" or len(ok) == 1:
                if on_error == "fail":
                    raise ValueError(
                        f"Cannot score {ok[0]!r}" + (f" (or another of {len(ok)} files of "
                                                     "its batch)" if len(ok) > 1 else "")
                        + f": {exc}"
                    ) from exc
                errors[ok[0]] = _one_line(exc)
                ok, columns = [], {}
            else:  # find the image(s) at fault: score the batch one image at a time
                parts = [_score_chunk(model, [p], score_batch, size=size, color=color,
                                      reads_files=reads_files, max_pixels=max_pixels,
                                      on_error=on_error)[0] for p in ok]
                by_path = {r["path"]: r for r in parts}
                return [by_path[p] if p in by_path else {"path": p, "error": errors[p]}
                        for p in chunk]
    index = {p: i for i, p in enumerate(ok)}
    rows = []
    for path in chunk:
        if path in index:
            row = {"path": path, **{k: v[index[path]] for k, v in columns.items()}}
            row["error"] = ""
        else:
            row = {"path": path, "error": errors[path]}
        rows.append(row)
    return rows


def _read_one(path, *, size, color, reads_files, max_pixels):
    if reads_files:  # the model reads the file itself: check its header only
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No such file: {path!r}.")
        header = _read_header(path)
        if header is not None:
            _check_pixels(path, header[0], header[1], max_pixels)
        return path
    return _read_batch([path], size=size, color=color, verbose=0, max_pixels=max_pixels)[0][0]


def _run_batch(model, images, paths, score_batch, reads_files):
    """Call ``score_batch`` with warnings that name files instead of batch positions."""
    X = list(images) if reads_files else np.stack(images)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        columns = score_batch(model, X, paths)
    for w in caught:
        message = str(w.message)
        if issubclass(w.category, (UserWarning, RuntimeWarning)) and len(paths) > 1:
            shown = ", ".join(repr(p) for p in paths[:5])
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            message += f" [image numbers count in the batch of files {shown}{more}]"
        warnings.warn_explicit(message, w.category, w.filename, w.lineno)
    columns = dict(columns)
    for name, values in columns.items():
        if len(values) != len(paths):
            raise RuntimeError(
                f"score_batch returned {len(values)} values for column {name!r} and "
                f"{len(paths)} images."
            )
    return columns


def _one_line(exc):
    return " ".join(f"{type(exc).__name__}: {exc}".split())


# ----------------------------------------------------------------------------- the model


def model_input(model, X):
    """``X`` as the model takes it: a batch of images flattened into a table when the model
    was fitted on one (its first step has no ``image_shape_`` but ``n_features_in_``)."""
    first = _steps(model)[0][1]
    if (isinstance(X, np.ndarray) and X.ndim >= 3 and not hasattr(first, "image_shape_")
            and getattr(first, "n_features_in_", None) == int(np.prod(X.shape[1:]))):
        return X.reshape(len(X), -1)
    return X


def _default_score_batch(model, X, paths):
    """``anomaly_score``, ``decision`` and ``threshold`` of a batch (each step run once)."""
    steps = _steps(model)
    Xt = model_input(model, X)
    for _, step in steps[:-1]:
        Xt = step.transform(Xt)
    final = steps[-1][1]
    if hasattr(final, "score_samples"):
        scores = -np.asarray(final.score_samples(Xt), dtype=float)
    else:
        scores = -np.asarray(final.decision_function(Xt), dtype=float)
    pred = np.asarray(final.predict(Xt))
    threshold = _threshold(final)
    return {
        "anomaly_score": [float(s) for s in scores],
        "decision": ["defect" if p == -1 else "ok" for p in pred],
        "threshold": [threshold] * len(scores),
        **readable_columns(final, scores),
    }


def readable_columns(final, anomaly_score):
    """``normalized_score`` and ``normality_pvalue`` columns of a model's anomaly scores.

    Only for a final step with a stored KDE of its training scores
    (:class:`~skcpcae.outlier.KDEThresholdClassifier`): ``normalized_score`` is 0 for a
    typical good part and 1 at the threshold (above 1: defect), whatever the preset's raw
    scale (:meth:`~skcpcae.outlier.KDEThresholdClassifier.normalized_score`);
    ``normality_pvalue`` is the share of good parts expected to score at least as high
    (:meth:`~skcpcae.outlier.KDEThresholdClassifier.normality_pvalue`). Other models get
    no columns. A threshold not above the median training score leaves
    ``normalized_score`` empty.
    """
    if not (hasattr(final, "_normalize") and hasattr(final, "kde_")):
        return {}
    anomaly = np.asarray(anomaly_score, dtype=np.float64)
    try:
        normalized = [float(v) for v in final._normalize(anomaly)]
    except ValueError:  # threshold at or below the median: no scale that puts it at 1
        normalized = [None] * len(anomaly)
    return {"normalized_score": normalized,
            "normality_pvalue": [float(v) for v in final._pvalue(anomaly)]}
