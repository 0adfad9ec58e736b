# SPDX-License-Identifier: BSD-3-Clause
"""Save and load fitted skcpcae models: version metadata, a checksum, safe loading.

A model file holds a small payload::

    {"__skcpcae_model__": 2,              # file-format version (exactly this int)
     "metadata": {"skcpcae": ..., "sklearn": ..., "numpy": ..., "torch": ..., "python": ...,
                  "created": ..., "estimator_class": ...},
     "estimator": <the fitted estimator or pipeline>}

written with :func:`skops.io.dump` (``.skops``) or :func:`joblib.dump` (``.joblib``), and a
SHA-256 of everything stored (parameters, weights, metadata): in a skops file the zip
archive's comment holds the digest of its members; a joblib file ends with a one-line
trailer holding the digest of the bytes before it. :func:`load` recomputes it before
anything is built from the file and refuses a mismatch (a damaged or edited file).

* **skops** stores an object graph of known types and refuses, at load time, any type
  that is not trusted; :func:`load` lists the unknown types without loading anything.
  skops cannot store torch objects (``torch.nn.Module``, tensors, skorch nets): :func:`save`
  refuses them with a clear error (use joblib), unless the estimator holding them turns them
  into numpy arrays in its ``__getstate__`` (every skcpcae estimator does).
* **joblib** (pickle) stores anything, but loading a pickle runs code chosen by whoever
  wrote the file: :func:`load` reads one only with ``allow_pickle=True``.

:func:`load` recognises the format from the file's first bytes, never from its name: a file
called ``.skops`` that is not a skops archive is refused before a byte of it is unpickled.
It also bounds what a file can make it allocate: every array's header must match the bytes
stored for it, the whole content must fit in the memory available, and the networks that
estimators rebuild on load must have exactly the shapes of the weights stored (checked on
torch's ``meta`` device, which allocates nothing).
"""

import datetime
import importlib
import importlib.metadata
import io
import platform
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np

from ._components.atomic import write_atomic
from ._model_integrity import (  # noqa: F401 (_zip_digest: tests build files with it)
    _DIGEST_TAG,
    _TRAILER_LEN,
    ModelIntegrityError,
    _check_digest,
    _check_npy_header,
    _describe,
    _sha256_stream,
    _sniff,
    _zip_digest,
)
from ._model_objects import _check_loaded, _is_public_skcpcae_type, _torch_paths
from .utils._system import available_memory

__all__ = [
    "FORMAT_VERSION",
    "TRUSTED_TYPES",
    "ModelIntegrityError",
    "ModelVersionWarning",
    "PickleNotAllowedError",
    "UntrustedTypesError",
    "load",
    "save",
]

#: Version of the file layout; :func:`load` reads exactly this one. Version 1 (before the
#: checksum) is refused with a message saying to re-save the model.
FORMAT_VERSION = 2

_MARKER = "__skcpcae_model__"
# loading a skops member holds its bytes and the object built from them at once
_LOAD_OVERHEAD = 2

#: Types that :func:`load` trusts in a skops file, on top of skops' own defaults (builtins,
#: numpy, scipy and scikit-learn estimators). Public classes exported by a skcpcae
#: subpackage (listed in its ``__all__``) are trusted too. k-d and ball trees are trusted
#: because every k-NN model holds one; :func:`load` checks their index arrays are in bounds
#: (scikit-learn's Cython code reads them without bounds checks). Not listed, on purpose:
#: ``sklearn.tree._tree.Tree`` (IsolationForest and other tree models), which skops flags as
#: unsafe for the same reason and which this module does not validate: pass
#: ``trusted=["sklearn.tree._tree.Tree"]`` for a file you created, and distance metrics with
#: array parameters (Mahalanobis, weighted Minkowski, ...).
TRUSTED_TYPES = (
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance32",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance32",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance32",
    "sklearn.model_selection._split.KFold",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.model_selection._split.ShuffleSplit",
    "skcpcae._components.kde.GaussianKDE1D",
    # the same class, under the path of files saved before the components layer
    "skcpcae.outlier._kde_threshold._GaussianKDE1D",
)

class ModelVersionWarning(UserWarning):
    """A model file was written with other versions of skcpcae or its dependencies.

    Like scikit-learn's ``InconsistentVersionWarning``: the model usually still works, but
    its outputs are only guaranteed with the versions it was saved with.
    """


class PickleNotAllowedError(ValueError):
    """A model file is a pickle (joblib) and ``allow_pickle`` was not given.

    Unpickling runs code chosen by whoever wrote the file; nothing was unpickled.
    """


class UntrustedTypesError(ValueError):
    """A skops file holds types that are not trusted; nothing was loaded.

    Parameters
    ----------
    message : str
        The error message.
    types : iterable of str
        The untrusted type names.

    Attributes
    ----------
    types : list of str
        The untrusted type names.
    """

    def __init__(self, message, types):
        super().__init__(message)
        self.types = list(types)


# --------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _current_versions():
    from . import __version__

    return {
        "skcpcae": __version__,
        "sklearn": _version("scikit-learn"),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "python": platform.python_version(),
    }


def _metadata(estimator):
    meta = _current_versions()
    meta["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    cls = type(estimator)
    meta["estimator_class"] = f"{cls.__module__}.{cls.__qualname__}"
    return meta


def _infer_format(path, format):
    if format is not None:
        if format not in ("skops", "joblib"):
            raise ValueError(f"format must be 'skops' or 'joblib', got {format!r}.")
        return format
    suffix = path.suffix.lower()
    if suffix == ".skops":
        return "skops"
    if suffix in (".joblib", ".pkl", ".pickle"):
        return "joblib"
    raise ValueError(
        f"Cannot infer the format from the file name {path.name!r}: use a .skops or .joblib "
        "suffix, or pass format='skops' or format='joblib'."
    )


def _write_atomic(path, write, overwrite):
    """:func:`skcpcae._components.atomic.write_atomic` (``write(fh)`` gets the temporary file
    opened ``"w+b"``; umask permissions; fsync; no clobbering without ``overwrite``)."""
    write_atomic(path, write, overwrite=overwrite)


def save(estimator, path, *, format=None, overwrite=False):
    """Save a fitted estimator or pipeline with version metadata and a checksum, atomically.

    The file records a SHA-256 of its content, which :func:`load` verifies, and gets the
    permissions the user's umask gives, like any file the user creates.

    Parameters
    ----------
    estimator : object
        The fitted estimator (or pipeline) to save.
    path : str or path-like
        Destination file. Its folder must exist.
    format : {"skops", "joblib"} or None, default=None
        File format; by default inferred from the suffix (``.skops``; ``.joblib``,
        ``.pkl`` or ``.pickle``). skops files can be inspected before loading; they cannot
        hold torch objects (a ``TypeError`` says which and recommends joblib).
    overwrite : bool, default=False
        Replace an existing file. Without it an existing ``path`` raises
        ``FileExistsError``.

    Returns
    -------
    path : pathlib.Path
        The file written.

    See Also
    --------
    load : read the file back.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from skcpcae.outlier import KNNAnomalyScorer
    >>> from skcpcae.persistence import load, save
    >>> X = np.random.RandomState(0).normal(size=(30, 2))
    >>> knn = KNNAnomalyScorer(n_neighbors=3).fit(X)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save(knn, pathlib.Path(tmp) / "knn.skops")
    ...     same = load(path)
    >>> bool(np.array_equal(same.score_samples(X), knn.score_samples(X)))
    True
    """
    path = Path(path)
    fmt = _infer_format(path, format)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    payload = {_MARKER: FORMAT_VERSION, "metadata": _metadata(estimator), "estimator": estimator}

    if fmt == "joblib":

        def write(fh):
            joblib.dump(payload, fh)
            fh.flush()
            size = fh.tell()
            fh.seek(0)
            digest, _ = _sha256_stream(fh, size)
            fh.seek(size)
            fh.write(b"\n" + _DIGEST_TAG + digest.encode("ascii") + b"\n")

    else:
        import skops.io as sio

        torch_paths = _torch_paths(estimator)
        if torch_paths:
            raise TypeError(
                "format='skops' cannot store torch objects, found: "
                + "; ".join(torch_paths[:5])
                + ". Save this model with format='joblib' (a .joblib file; load only files "
                "you trust), or give the estimator holding them a __getstate__ that turns "
                "the weights into numpy arrays."
            )
        try:
            buffer = io.BytesIO(sio.dumps(payload))
        except Exception as exc:
            raise TypeError(
                f"skops could not serialise this {type(estimator).__name__}: {exc}. "
                "Save it with format='joblib' instead."
            ) from exc
        with zipfile.ZipFile(buffer, "a") as zf:
            zf.comment = _DIGEST_TAG + _zip_digest(zf).encode("ascii")

        def write(fh):
            fh.write(buffer.getbuffer())

    _write_atomic(path, write, overwrite)
    return path


# --------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------


def _check_budget(path, n_bytes):
    """Refuse a file whose content would not fit in the memory available."""
    avail = available_memory()
    need = _LOAD_OVERHEAD * n_bytes
    if avail is not None and need > avail:
        raise MemoryError(
            f"{path} would need about {need / 2**30:.3g} GiB of memory to load "
            f"({n_bytes / 2**30:.3g} GiB of content), more than the "
            f"{avail / 2**30:.3g} GiB available; nothing was loaded."
        )


def _open_skops(path):
    """Check a skops archive before skops reads it: layout, sizes, array headers, checksum.

    Returns nothing; raises :class:`ModelIntegrityError` (or ``ValueError`` when the zip is
    not a skops file, ``MemoryError`` when it would not fit in memory).
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelIntegrityError(f"{path} is a damaged zip archive ({exc}).") from None
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if "schema.json" not in names:
            raise ValueError(
                f"{path} is {_describe('zip')} (no schema.json): not a skcpcae model file."
            )
        if len(set(names)) != len(names):
            raise ModelIntegrityError(f"{path} has two zip members of the same name.")
        _check_budget(path, sum(i.file_size for i in infos))
        try:
            for info in infos:
                if info.filename.endswith(".npy"):
                    _check_npy_header(zf, info)
            digest = _zip_digest(zf)
        except ModelIntegrityError as exc:
            raise ModelIntegrityError(f"{path} is damaged: {exc}; nothing was loaded.") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # CRC, truncation
            raise ModelIntegrityError(
                f"{path} is damaged ({exc}); nothing was loaded."
            ) from None
        _check_digest(path, zf.comment, digest)


def _load_skops(path, trusted):
    import skops.io as sio

    _open_skops(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable skops file: {exc}") from exc
    allowed = set(TRUSTED_TYPES) | set(trusted or ())
    unknown = [t for t in untrusted if t not in allowed and not _is_public_skcpcae_type(t)]
    if unknown:
        raise UntrustedTypesError(
            f"{path} holds types that are not trusted, so nothing was loaded: "
            + ", ".join(unknown)
            + ". If you trust the file's origin, pass them: load(path, trusted=[...]).",
            unknown,
        )
    payload = sio.load(path, trusted=list(untrusted))
    _check_loaded(payload)
    return payload


def _load_joblib(path):
    """Verify a joblib file's trailer checksum, then unpickle it."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size > _TRAILER_LEN:
            fh.seek(size - _TRAILER_LEN)
            trailer = fh.read(_TRAILER_LEN)
        else:
            trailer = b""
        recorded = trailer[1:-1] if trailer[:1] == b"\n" and trailer[-1:] == b"\n" else b""
        fh.seek(0)
        digest, _ = _sha256_stream(fh, max(0, size - _TRAILER_LEN))
    _check_digest(path, recorded, digest)
    _check_budget(path, size)
    try:
        return joblib.load(path)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable joblib file: {exc}") from exc


def _compare_versions(saved, path):
    current = _current_versions()
    diffs = []
    for key in ("skcpcae", "sklearn", "numpy", "torch"):
        old, new = saved.get(key), current.get(key)
        if old is not None and old != new:
            diffs.append(f"{key} {old} (saved) vs {new or 'not installed'} (now)")
    old_py, new_py = saved.get("python"), current["python"]
    if old_py and old_py.split(".")[:2] != new_py.split(".")[:2]:
        diffs.append(f"python {old_py} (saved) vs {new_py} (now)")
    if diffs:
        warnings.warn(
            f"{path} was saved with other versions: "
            + "; ".join(diffs)
            + ". The model may behave differently; refit it or use the saved versions.",
            ModelVersionWarning,
            stacklevel=3,
        )


def load(path, *, trusted=None, allow_pickle=False):
    """Load a model written by :func:`save`, checking its format, checksum and versions.

    The format is recognised from the file's first bytes, never from its name. Before
    anything is built from the file, :func:`load` checks the SHA-256 recorded by
    :func:`save` and that every size the file declares fits the bytes it holds and the
    memory available.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    trusted : list of str, default=None
        For skops files only: extra type names to trust, on top of skops' defaults,
        :data:`TRUSTED_TYPES` and skcpcae's public classes. Unknown types raise
        :class:`UntrustedTypesError` listing them, before anything is loaded.
    allow_pickle : bool, default=False
        Read pickle (joblib) files. Unpickling runs code chosen by whoever wrote the file:
        pass ``True`` only for files you trust. Without it a pickle raises
        :class:`PickleNotAllowedError` and nothing is unpickled. A pickle whose name ends
        in ``.skops`` is refused either way (rename it if you trust it).

    Returns
    -------
    estimator : object
        The saved estimator or pipeline.

    Raises
    ------
    UntrustedTypesError
        A skops file holds untrusted types.
    PickleNotAllowedError
        The file is a pickle and ``allow_pickle`` is false, or its name ends in ``.skops``.
    ModelIntegrityError
        The file is damaged or was modified (checksum, sizes or shapes do not match).
    MemoryError
        Loading the file would need more memory than is available.
    ValueError
        The file is not a skcpcae model file, or was written in another file format.

    Warns
    -----
    ModelVersionWarning
        The file was saved with other versions of skcpcae, scikit-learn, numpy, torch or
        another Python minor version.

    See Also
    --------
    save : write a model file.
    """
    if not isinstance(allow_pickle, bool):
        raise TypeError(f"allow_pickle must be True or False, got {allow_pickle!r}.")
    if trusted is not None and (
        isinstance(trusted, str) or not all(isinstance(t, str) for t in trusted)
    ):
        raise TypeError(f"trusted must be a list of type names (str), got {trusted!r}.")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    kind = _sniff(path)
    if kind == "zip":
        payload = _load_skops(path, trusted)
    elif kind in ("pickle", "compressed"):
        if path.suffix.lower() == ".skops":
            raise PickleNotAllowedError(
                f"{path} is named .skops but is {_describe(kind)}, not a skops archive; it "
                "was refused without unpickling anything (a .skops file never runs code). "
                "If you trust its origin, rename it .joblib and load it with "
                "allow_pickle=True."
            )
        if not allow_pickle:
            raise PickleNotAllowedError(
                f"{path} is {_describe(kind)}: loading it runs code chosen by whoever wrote "
                "it, so it was not unpickled. If you trust the file, pass "
                "allow_pickle=True (command line: --allow-pickle)."
            )
        if kind == "compressed":
            raise ValueError(
                f"{path} is {_describe(kind)}, which skcpcae.persistence.save never writes: "
                "not a skcpcae model file."
            )
        payload = _load_joblib(path)
    else:
        raise ValueError(
            f"{path} is neither a skops archive nor a joblib file (unknown first bytes): "
            "not a skcpcae model file."
        )
    if not (isinstance(payload, dict) and _MARKER in payload and "estimator" in payload):
        raise ValueError(
            f"{path} is not a skcpcae model file (it was not written by "
            "skcpcae.persistence.save); read plain joblib / skops files with joblib.load or "
            "skops.io.load."
        )
    version = payload[_MARKER]
    if type(version) is not int or version != FORMAT_VERSION:
        if type(version) is int and version > FORMAT_VERSION:
            raise ValueError(
                f"{path} uses model-file format {version}, newer than this skcpcae reads "
                f"({FORMAT_VERSION}); upgrade skcpcae."
            )
        raise ValueError(
            f"{path} has model-file format marker {version!r}; this skcpcae reads format "
            f"{FORMAT_VERSION} only (files of format 1 carry no checksum: re-save the model "
            "with skcpcae.persistence.save)."
        )
    metadata = payload.get("metadata")
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} has no valid metadata; it is not a skcpcae model file.")
    _compare_versions(metadata, path)
    return payload["estimator"]
