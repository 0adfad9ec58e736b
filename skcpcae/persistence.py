# SPDX-License-Identifier: BSD-3-Clause
"""Save and load fitted skcpcae models, with version metadata and a skops trust check.

A model file holds a small payload::

    {"__skcpcae_model__": 1,              # file-format version
     "metadata": {"skcpcae": ..., "sklearn": ..., "numpy": ..., "torch": ..., "python": ...,
                  "created": ..., "estimator_class": ...},
     "estimator": <the fitted estimator or pipeline>}

written with :func:`joblib.dump` (``.joblib``) or :func:`skops.io.dump` (``.skops``).

* **joblib** (pickle) stores anything, torch modules included, but loading a pickle runs
  code chosen by whoever wrote the file: load only files you trust.
* **skops** stores an object graph of known types and refuses, at load time, any type
  that is not trusted; :func:`load` lists the unknown types without loading anything.
  skops cannot store torch objects (``torch.nn.Module``, tensors, skorch nets): :func:`save`
  refuses them with a clear error (use joblib), unless the estimator holding them turns them
  into numpy arrays in its ``__getstate__`` (skops stores the ``__getstate__`` dict and
  restores it with ``__setstate__``).
"""

import datetime
import importlib
import importlib.metadata
import numbers
import os
import platform
import re
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "TRUSTED_TYPES",
    "ModelVersionWarning",
    "UntrustedTypesError",
    "load",
    "save",
]

#: Version of the payload layout; :func:`load` refuses files with a newer one.
FORMAT_VERSION = 1

_MARKER = "__skcpcae_model__"

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
    "skcpcae.outlier._kde_threshold._GaussianKDE1D",
)

_TORCH_ROOTS = ("torch", "skorch", "timm")
_TYPE_RE = re.compile(r"^skcpcae(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class ModelVersionWarning(UserWarning):
    """A model file was written with other versions of skcpcae or its dependencies.

    Like scikit-learn's ``InconsistentVersionWarning``: the model usually still works, but
    its outputs are only guaranteed with the versions it was saved with.
    """


class UntrustedTypesError(ValueError):
    """A skops file holds types that are not trusted; nothing was loaded.

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


def _children(obj):
    """(name, child) pairs of an object as a serialiser would see them."""
    if isinstance(obj, dict):
        return [(f"[{k!r}]", v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(obj)]
    if isinstance(obj, (str, bytes, numbers.Number, np.ndarray, np.generic, type)) or obj is None:
        return []
    if callable(obj) and not hasattr(obj, "__dict__"):
        return []
    try:
        state = obj.__getstate__() if hasattr(obj, "__getstate__") else vars(obj)
    except Exception:  # objects without a usable state hold nothing to inspect
        return []
    if isinstance(state, dict):
        return [(f".{k}", v) for k, v in state.items()]
    if isinstance(state, (list, tuple)):
        return [(f"<state>[{i}]", v) for i, v in enumerate(state)]
    return []


def _walk(obj, visit, path="estimator", seen=None, depth=0):
    """Depth-first walk over the object graph; ``visit(obj, path)`` returns True to stop."""
    seen = {} if seen is None else seen  # id -> object: holding it keeps its id unique
    if id(obj) in seen or depth > 100:
        return
    seen[id(obj)] = obj
    if visit(obj, path):
        return
    for name, child in _children(obj):
        _walk(child, visit, path + name, seen, depth + 1)


def _torch_paths(estimator):
    """Paths to torch / skorch / timm objects inside ``estimator``."""
    if not any(root in sys.modules for root in _TORCH_ROOTS):
        return []
    found = []

    def visit(obj, path):
        root = type(obj).__module__.split(".")[0]
        if root in _TORCH_ROOTS:
            found.append(f"{path} ({type(obj).__module__}.{type(obj).__qualname__})")
            return True
        return False

    _walk(estimator, visit)
    return found


def _write_atomic(path, write, overwrite):
    """Write through a temporary file in the same folder, then move it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:  # link fails if the target appeared meanwhile: no silent clobbering
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"{path} exists; pass overwrite=True to replace it."
                ) from None
            except OSError:  # file systems without hard links
                if path.exists():
                    raise FileExistsError(
                        f"{path} exists; pass overwrite=True to replace it."
                    ) from None
                os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(estimator, path, *, format=None, overwrite=False):
    """Save a fitted estimator or pipeline with version metadata, atomically.

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

        def write(fh):
            try:
                sio.dump(payload, fh)
            except Exception as exc:
                raise TypeError(
                    f"skops could not serialise this {type(estimator).__name__}: {exc}. "
                    "Save it with format='joblib' instead."
                ) from exc

    _write_atomic(path, write, overwrite)
    return path


# --------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------


def _is_public_skcpcae_type(name):
    """A class exported in the ``__all__`` of a skcpcae package (or a module's package)."""
    if not _TYPE_RE.match(name):
        return False
    module_name, cls_name = name.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        return False
    for pkg_name in (module_name, module_name.rsplit(".", 1)[0]):
        try:
            pkg = importlib.import_module(pkg_name)
        except ImportError:
            continue
        if cls_name in getattr(pkg, "__all__", ()) and getattr(pkg, cls_name, None) is cls:
            return True
    return False


def _check_binary_tree(tree, path):
    """Bounds of a loaded KDTree / BallTree's index arrays (Cython reads them unchecked)."""
    state = tree.__getstate__()
    data, idx_array, node_data, node_bounds = state[0], state[1], state[2], state[3]
    n_levels, n_nodes = int(state[5]), int(state[6])
    sample_weight = state[12]
    problems = []
    data = np.asarray(data)
    if data.ndim != 2:
        problems.append("data is not 2-D")
        n_samples = -1
    else:
        n_samples = data.shape[0]
        idx = np.asarray(idx_array)
        if idx.shape != (n_samples,) or not np.array_equal(np.sort(idx), np.arange(n_samples)):
            problems.append("idx_array is not a permutation of the samples")
    if len(node_data) != n_nodes or n_nodes != 2**n_levels - 1:
        problems.append("node count does not match the number of levels")
    else:
        start = np.asarray(node_data["idx_start"])
        end = np.asarray(node_data["idx_end"])
        leaf = np.asarray(node_data["is_leaf"]).astype(bool)
        if np.any(start < 0) or np.any(end < start) or np.any(end > n_samples):
            problems.append("node index ranges out of bounds")
        last = 2 * np.arange(n_nodes) + 1 >= n_nodes
        if np.any(last & ~leaf):
            problems.append("a node of the last level is not a leaf")
    bounds = np.asarray(node_bounds)
    if data.ndim == 2 and (bounds.ndim != 3 or bounds.shape[1:] != (n_nodes, data.shape[1])):
        problems.append("node_bounds has the wrong shape")
    if sample_weight is not None and np.shape(sample_weight) != (n_samples,):
        problems.append("sample_weight has the wrong length")
    if problems:
        raise ValueError(
            f"The model file holds a corrupted {type(tree).__name__} at {path}: "
            + "; ".join(problems)
            + ". It was not produced by scikit-learn; do not use it."
        )


def _check_loaded(obj):
    from sklearn.neighbors import BallTree, KDTree

    def visit(o, path):
        if isinstance(o, (KDTree, BallTree)):
            _check_binary_tree(o, path)
            return True
        return False

    _walk(obj, visit)


def _load_skops(path, trusted):
    import skops.io as sio

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


def load(path, *, trusted=None):
    """Load a model written by :func:`save`, checking its format and versions.

    The format is recognised from the file's content (skops files are zip archives).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    trusted : list of str, default=None
        skops only: extra type names to trust, on top of skops' defaults,
        :data:`TRUSTED_TYPES` and skcpcae's public classes. Unknown types raise
        :class:`UntrustedTypesError` listing them, before anything is loaded. Ignored for
        joblib files, which are pickles: loading one runs code chosen by its author, so
        load only joblib files you trust.

    Returns
    -------
    estimator : object
        The saved estimator or pipeline.

    Raises
    ------
    UntrustedTypesError
        A skops file holds untrusted types.
    ValueError
        The file is not a skcpcae model file, or was written in a newer file format.

    Warns
    -----
    ModelVersionWarning
        The file was saved with other versions of skcpcae, scikit-learn, numpy, torch or
        another Python minor version.

    See Also
    --------
    save : write a model file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    if zipfile.is_zipfile(path):
        payload = _load_skops(path, trusted)
    else:
        try:
            payload = joblib.load(path)
        except Exception as exc:
            raise ValueError(
                f"{path} is neither a skops file nor a readable joblib file: {exc}"
            ) from exc
    if not (isinstance(payload, dict) and _MARKER in payload and "estimator" in payload):
        raise ValueError(
            f"{path} is not a skcpcae model file (it was not written by "
            "skcpcae.persistence.save); read plain joblib / skops files with joblib.load or "
            "skops.io.load."
        )
    version = payload[_MARKER]
    if not isinstance(version, numbers.Integral) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model-file format {version!r}, newer than this skcpcae reads "
            f"({FORMAT_VERSION}); upgrade skcpcae."
        )
    _compare_versions(payload.get("metadata") or {}, path)
    return payload["estimator"]
