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
import hashlib
import importlib
import importlib.metadata
import io
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

from .utils._system import available_memory, default_file_mode

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
_DIGEST_TAG = b"skcpcae-sha256="
# a joblib file's last line: b"\nskcpcae-sha256=<64 hex digits>\n"
_TRAILER_LEN = 1 + len(_DIGEST_TAG) + 64 + 1
_CHUNK = 1 << 20
# first bytes of the files joblib writes compressed (zlib, gzip, bz2, lzma, xz, lz4)
_COMPRESSED_MAGIC = (b"\x78", b"\x1f\x8b", b"BZh", b"\x5d\x00\x00", b"\xfd7zXZ",
                     b"\x04\x22\x4d\x18", b"ZF")
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

_TORCH_ROOTS = ("torch", "skorch", "timm")
_TYPE_RE = re.compile(r"^skcpcae(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class ModelVersionWarning(UserWarning):
    """A model file was written with other versions of skcpcae or its dependencies.

    Like scikit-learn's ``InconsistentVersionWarning``: the model usually still works, but
    its outputs are only guaranteed with the versions it was saved with.
    """


class ModelIntegrityError(ValueError):
    """A model file is damaged or was edited: its checksum, a size or a shape is wrong.

    Nothing was built from the file.
    """


class PickleNotAllowedError(ValueError):
    """A model file is a pickle (joblib) and ``allow_pickle`` was not given.

    Unpickling runs code chosen by whoever wrote the file; nothing was unpickled.
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
    """Write through a temporary file in the same folder, then move it into place.

    ``write(fh)`` gets the temporary file opened ``"w+b"``; the file gets the permissions
    the user's umask gives (not ``mkstemp``'s ``0o600``).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
            fh.flush()
            os.fchmod(fh.fileno(), default_file_mode())
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


def _sha256_stream(fh, n_bytes):
    """SHA-256 of the next ``n_bytes`` of ``fh``, read in chunks."""
    digest = hashlib.sha256()
    left = n_bytes
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest(), n_bytes - left


def _zip_digest(zf):
    """SHA-256 over a zip archive's members (name, size, content), in name order.

    Reads each member in chunks and refuses one that holds more bytes than its header
    declares; returns the hex digest.
    """
    digest = hashlib.sha256()
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        name = info.filename.encode("utf-8")
        digest.update(len(name).to_bytes(8, "little") + name)
        digest.update(info.file_size.to_bytes(8, "little"))
        read = 0
        with zf.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    break
                read += len(chunk)
                if read > info.file_size:
                    raise ModelIntegrityError(
                        f"member {info.filename!r} holds more bytes than its header declares"
                    )
                digest.update(chunk)
        if read != info.file_size:
            raise ModelIntegrityError(
                f"member {info.filename!r} holds {read} bytes, its header declares "
                f"{info.file_size}"
            )
    return digest.hexdigest()


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


def _sniff(path):
    """The kind of a file from its first bytes: "zip", "pickle", "compressed" or None."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"  # protocol 2-5: what joblib.dump writes
    if any(head.startswith(magic) for magic in _COMPRESSED_MAGIC):
        return "compressed"
    return None


def _describe(kind):
    return {"pickle": "a pickle (joblib) file",
            "compressed": "a compressed joblib file (a pickle)",
            "zip": "a zip archive that is not a skops file"}.get(kind, "not a model file")


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


def _check_npy_header(zf, info):
    """The shape and dtype a ``.npy`` member declares must match the bytes it holds."""
    from numpy.lib import format as npy

    with zf.open(info) as member:
        try:
            version = npy.read_magic(member)
            read_header = (npy.read_array_header_1_0 if version == (1, 0)
                           else npy.read_array_header_2_0)
            shape, _, dtype = read_header(member, max_header_size=10000)
        except Exception as exc:  # a header numpy cannot parse
            raise ModelIntegrityError(
                f"member {info.filename!r} is not a valid .npy array ({exc})"
            ) from None
        offset = member.tell()
    if dtype.hasobject:
        raise ModelIntegrityError(f"member {info.filename!r} is an object array (pickled)")
    n_values = 1
    for dim in shape:
        n_values *= int(dim)
    if n_values * dtype.itemsize != info.file_size - offset:
        raise ModelIntegrityError(
            f"member {info.filename!r} declares an array of shape {shape} ({dtype}, "
            f"{n_values * dtype.itemsize} bytes) but holds {info.file_size - offset} bytes"
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


def _check_digest(path, recorded, digest):
    if not recorded.startswith(_DIGEST_TAG):
        raise ModelIntegrityError(
            f"{path} records no checksum: it was not written by this version of "
            "skcpcae.persistence.save (or the record was removed); nothing was loaded. "
            "Re-save the model with skcpcae.persistence.save."
        )
    if recorded[len(_DIGEST_TAG):].decode("ascii", "replace") != digest:
        raise ModelIntegrityError(
            f"{path} is damaged or was modified: the SHA-256 of its content does not match "
            "the one recorded when it was saved; nothing was loaded. Use an intact copy or "
            "refit the model."
        )


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
        skops only: extra type names to trust, on top of skops' defaults,
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
