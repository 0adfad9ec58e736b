# SPDX-License-Identifier: BSD-3-Clause
"""Scoring beyond one process: the batch-scoring callable every engine runs.

:class:`BatchScorer` is the one contract shared by :func:`score_files` (in this process,
or over a Dask cluster with ``client=``; also ``skcpcae.score_files``), Ray Data ``map_batches`` and Spark
``mapInPandas``: a small picklable callable that loads the model file once per process (the
first call; later calls and later copies of the callable reuse it) and maps a batch of image
files to rows of scores. Only the path of the model file travels with the callable, never the
model: each worker reads the file itself, from a file system the driver shares with it.
"""

import hashlib
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np

from ._scoring import score_files
from .datasets._io import MAX_PIXELS

__all__ = ["BatchScorer", "score_files"]

#: Models loaded in this process, keyed by (file, SHA-256, trusted types, allow_pickle); the
#: least recently used is dropped past this many.
_MAX_CACHED_MODELS = 2
_MODELS = OrderedDict()
_MODELS_LOCK = threading.Lock()


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_once(path, sha256, trusted, allow_pickle):
    """The model of ``path``, loaded at most once per process (thread-safe)."""
    key = (path, sha256, trusted, allow_pickle)
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        found = _file_sha256(path)
        if found != sha256:
            raise ValueError(
                f"The model file {path!r} seen by this process (SHA-256 {found[:12]}...) is not "
                f"the one the scorer was made for ({sha256[:12]}...): the file changed, or "
                "this machine holds another copy."
            )
        from . import persistence
        from ._steps import set_verbose

        model = persistence.load(path, trusted=list(trusted) if trusted else None,
                                 allow_pickle=allow_pickle)
        set_verbose(model, 0)
        _MODELS[key] = model
        while len(_MODELS) > _MAX_CACHED_MODELS:
            _MODELS.popitem(last=False)
        return model


class BatchScorer:
    """Picklable callable that scores batches of image files, loading the model once.

    One instance serves every process of a run: pickled, it carries the path and SHA-256 of
    the model file (a few hundred bytes), and the first call in a process loads the file
    (after checking that its SHA-256 is the same) and keeps the model for the later calls and
    copies. This is what :func:`skcpcae.scale.score_files` runs on each batch, in this process or
    as the tasks of a Dask cluster (``client=``), and what Ray Data ``map_batches`` or Spark
    ``mapInPandas`` run in their workers (see the user guide, "Scoring at scale").

    Read more in the :ref:`User Guide <scale>`.

    Parameters
    ----------
    model : str, path-like or estimator
        A model file written by :func:`skcpcae.persistence.save`, loaded once per process
        (its path is made absolute: every worker must see the file at that path), or a
        fitted model (then pickled with the scorer: prefer a file for many workers).
    score_batch : callable or None, default=None
        ``score_batch(model, X, paths) -> dict`` of columns for one batch, as in
        :func:`skcpcae.scale.score_files`; ``None`` gives ``anomaly_score``, ``decision``,
        ``threshold`` (and the readable scores of a KDE threshold). It must be picklable to
        run on other processes.
    on_error : {"skip", "fail"}, default="skip"
        An image that cannot be read or scored: ``"skip"`` makes a row with its error,
        ``"fail"`` raises a ``ValueError`` naming the file.
    max_pixels : int or None, default=MAX_PIXELS
        Pixel budget of one image (height x width), checked from the file's header before
        decoding (see :func:`skcpcae.datasets.load_images`).
    trusted : list of str or None, default=None
        Extra types to trust in a ``.skops`` model file (:func:`skcpcae.persistence.load`).
    allow_pickle : bool, default=False
        Read a ``.joblib`` (pickle) model file: only for files you trust.

    Attributes
    ----------
    sha256 : str or None
        SHA-256 of the model file, computed when the scorer is made; ``None`` for a model
        given as an object.

    See Also
    --------
    score_files : score files into a CSV or Parquet output, resumably, in this process
        or over a Dask cluster.

    Notes
    -----
    Calls in one process share one loaded model; the model's prediction methods must then
    be safe to call from several threads at once (they are for skcpcae's models: inference
    only reads the fitted state). The rows of a batch are the same whichever process scores
    it, so that a run split over many workers writes the rows of a run in one process.

    Examples
    --------
    >>> import os, tempfile
    >>> from skcpcae import persistence
    >>> from skcpcae.datasets import make_parts, save_image
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> from skcpcae.scale import BatchScorer
    >>> X, _ = make_parts(6, size=(16, 16), random_state=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     model = os.path.join(tmp, "model.skops")
    ...     _ = persistence.save(KNNAnomalyScorer(n_neighbors=2).fit(X.reshape(6, -1)), model)
    ...     paths = [save_image(os.path.join(tmp, f"{i}.png"), X[i]) for i in range(3)]
    ...     scorer = BatchScorer(model)
    ...     rows = scorer(paths)
    >>> len(rows), sorted(rows[0])
    (3, ['anomaly_score', 'decision', 'error', 'path', 'threshold'])
    """

    def __init__(self, model, *, score_batch=None, on_error="skip", max_pixels=MAX_PIXELS,
                 trusted=None, allow_pickle=False):
        if on_error not in ("skip", "fail"):
            raise ValueError(f"on_error must be 'skip' or 'fail'; got {on_error!r}.")
        if isinstance(model, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(model))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"No model file at {path}.")
            self.model = path
            self.sha256 = _file_sha256(path)
        else:
            self.model = model
            self.sha256 = None
        self.score_batch = score_batch
        self.on_error = on_error
        self.max_pixels = max_pixels
        self.trusted = tuple(trusted) if trusted else None
        self.allow_pickle = bool(allow_pickle)

    def __repr__(self):
        model = self.model if self.sha256 is not None else type(self.model).__name__
        return f"BatchScorer({model!r})"

    def get_model(self):
        """The fitted model, loaded from its file at the first call in this process.

        Returns
        -------
        model : estimator
            The fitted model or pipeline (the same object for every call in the process).
        """
        if self.sha256 is None:
            return self.model
        return _load_once(self.model, self.sha256, self.trusted, self.allow_pickle)

    def __call__(self, batch):
        """Score one batch.

        Parameters
        ----------
        batch : list of str, dict, pandas.DataFrame or ndarray
            Image files: a list of paths, a mapping with a ``"path"`` column (Ray Data's
            ``dict`` of numpy arrays), or a DataFrame with a ``"path"`` column (Ray's
            ``"pandas"`` batches, Spark's ``mapInPandas``); or images already in memory,
            an array of shape ``(n_images, height, width[, channels])``.

        Returns
        -------
        rows : list of dict, dict of list or pandas.DataFrame
            One row per file, in order (``path``, the score columns, ``error``): a list of
            dicts for a list, a ``dict`` of columns for a mapping, a DataFrame for a
            DataFrame. The cells of an image that could not be read are ``None`` but its
            ``error``. For an array of images: a ``dict`` of the score columns.
        """
        if isinstance(batch, np.ndarray) and batch.dtype.kind in "biuf":
            from ._scoring import _default_score_batch

            score_batch = self.score_batch or _default_score_batch
            return dict(score_batch(self.get_model(), batch, [None] * len(batch)))
        if hasattr(batch, "to_dict") and hasattr(batch, "columns"):  # a pandas DataFrame
            import pandas as pd

            rows = self.score_paths(batch["path"].tolist())
            return pd.DataFrame(_as_columns(rows))
        if hasattr(batch, "keys"):
            return _as_columns(self.score_paths(list(batch["path"])))
        return self.score_paths(list(batch))

    def score_paths(self, paths):
        """Read and score a list of image files: one row (dict) per file.

        Parameters
        ----------
        paths : list of str or path-like
            Image files, read by this process.

        Returns
        -------
        rows : list of dict
            ``{"path": ..., <score columns>, "error": ""}`` per file, in order; an image
            that could not be read has ``{"path": ..., "error": "<why>"}``.
        """
        from ._scoring import _default_score_batch, _score_chunk
        from ._steps import fitted_layout, reads_files

        model = self.get_model()
        size, color = fitted_layout(model)
        paths = [os.fspath(p) for p in paths]
        if not paths:
            return []
        return _score_chunk(model, paths, self.score_batch or _default_score_batch,
                            size=size, color=color, reads_files=reads_files(model),
                            max_pixels=self.max_pixels, on_error=self.on_error)


def _as_columns(rows):
    """A dict of columns (every key of every row; a row without it gets ``None``)."""
    from ._sinks import _columns

    names = _columns(rows) if rows else ["path", "error"]
    return {name: [r.get(name) for r in rows] for name in names}


# ----------------------------------------------------------------------------- Dask

#: Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in the workers it spawns; any explicit
#: glibc threshold turns off glibc's dynamic mmap threshold, so that every large torch
#: buffer is mapped and unmapped again: the best preset then scores about 3x slower on CPU
#: (measured: 330 vs 110 images/s, one thread). The local clusters skcpcae starts leave it
#: unset (Dask's memory trimming matters little to workers that hold one model and one batch).
_LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextmanager
def _local_client(n_workers, **kwargs):
    """A ``distributed.Client`` of a ``LocalCluster`` of ``n_workers`` one-thread worker
    processes on 127.0.0.1, closed at the end. The nanny writes the workers' environment
    (``OMP_NUM_THREADS=1``, ...) into this process's ``os.environ`` as well: it is put back
    when the cluster closes, so that later child processes do not inherit it."""
    import dask
    from distributed import Client, LocalCluster

    saved = dict(os.environ)
    try:
        with dask.config.set(_LOCAL_CLUSTER_CONFIG), LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0", **kwargs,
        ) as cluster, Client(cluster) as client:
            yield client
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _score_task(scorer, paths):
    """One Dask task: the rows of a batch (a module-level function: pickled by name)."""
    return scorer.score_paths(paths)


def _map_on_client(client, scorer, batches, *, max_in_flight=None):
    """Yield the rows of each batch, in order, scored as tasks of a Dask cluster.

    At most ``max_in_flight`` batches are submitted and not yet yielded (default: two per
    worker thread, at least 4), so the memory of this process is bounded whatever the number
    of batches. Each batch is a task with its own key; a task whose worker dies is run
    again by the scheduler, and its rows are yielded once, when its result reaches this
    process. A scorer that holds its model (not a file) is sent to the workers once
    (``scatter``), not with every task.
    """
    import uuid
    from collections import deque

    if max_in_flight is None:
        n_threads = sum(client.nthreads().values()) or 1
        max_in_flight = max(4, 2 * n_threads)
    arg = scattered = None
    if scorer.sha256 is None or scorer.score_batch is not None:
        arg = scattered = client.scatter(scorer, broadcast=True, hash=False)
    else:
        arg = scorer  # a path and a digest: lighter than a reference to scattered data
    run = uuid.uuid4().hex[:12]
    pending = deque()
    index = 0
    batches = iter(batches)
    try:
        while True:
            while len(pending) < max_in_flight:
                batch = next(batches, None)
                if batch is None:
                    break
                pending.append(client.submit(_score_task, arg, list(batch),
                                             key=f"skcpcae-score-{run}-{index:08d}",
                                             pure=False))
                index += 1
            if not pending:
                return
            head = pending.popleft()
            rows = head.result()
            head.release()
            yield rows
    finally:
        for future in pending:
            future.cancel()
        if scattered is not None:
            scattered.release()
