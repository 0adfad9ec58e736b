# SPDX-License-Identifier: BSD-3-Clause
"""The light runtime: an ONNX file written by ``skcpcae.export.to_onnx``, under onnxruntime.

Image files are read as :func:`skcpcae.datasets.load_images` reads them (OpenCV
``IMREAD_UNCHANGED``, alpha dropped, BGR to RGB, equal channels read as gray,
``INTER_AREA`` when shrinking and ``INTER_LINEAR`` otherwise, luma for gray models), so a
folder scores here as ``skcpcae score model.skops`` scores it. Imports: numpy, onnxruntime,
OpenCV (for files) and the standard library only.
"""

import csv
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "OnnxModel", "list_images", "load", "read_images",
           "score_to_csv"]

#: File extensions read as images (those of ``skcpcae.datasets.IMAGE_EXTENSIONS``).
IMAGE_EXTENSIONS = frozenset({".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".jp2", ".png", ".pbm",
                              ".pgm", ".ppm", ".pnm", ".tif", ".tiff", ".webp"})
_METADATA_KEY = "skcpcae"
_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "skcpcae.runtime needs onnxruntime: pip install \"skcpcae[onnx]\" (onnxruntime, "
            "numpy, opencv-python-headless; no torch)."
        ) from exc
    return onnxruntime


class OnnxModel:
    """An exported skcpcae model, ready to score images.

    Built by :func:`load`.

    Attributes
    ----------
    path : str
        The ONNX file.
    metadata : dict
        What the exporter stored: parity figures (``rtol``, ``max_rel_diff``), ``threshold``,
        ``input_shape``, ``input_dtype``, ``steps``, ``preset``, ``skcpcae_version``.
    input_shape : tuple of int
        ``(height, width)`` or ``(height, width, channels)`` of one image.
    input_dtype : str
        ``"float32"`` (values in [0, 1]) or ``"uint8"``.
    threshold : float
        Threshold on the anomaly score (above: defect).
    outputs : list of str
        ``anomaly_score``, ``decision`` and, for patch models (on the feature grid) and
        CPCAE models (the residual map at the input size), ``anomaly_map``.
    """

    def __init__(self, path, session, metadata):
        self.path = os.fspath(path)
        self._session = session
        self.metadata = metadata
        self.input_shape = tuple(int(s) for s in metadata["input_shape"])
        self.input_dtype = metadata["input_dtype"]
        self.threshold = float(metadata["threshold"])
        self.outputs = [o.name for o in session.get_outputs()]

    def __repr__(self):
        shape = "x".join(map(str, self.input_shape))
        return (f"OnnxModel({self.path!r}, {' -> '.join(self.metadata.get('steps', []))}, "
                f"input {shape} {self.input_dtype})")

    @property
    def color(self):
        """``"rgb"`` for a model fitted on colour images, else ``"gray"``."""
        return "rgb" if len(self.input_shape) == 3 and self.input_shape[2] == 3 else "gray"

    def score(self, images, *, batch_size=32):
        """Score images at the fitted size.

        Parameters
        ----------
        images : array-like of shape (n_samples, height, width[, channels])
            uint8, uint16 or floats in [0, 1] (a float32 model), or uint8 (a uint8 model).
            A single image without the batch axis is accepted.
        batch_size : int, default=32
            Images per run of the graph.

        Returns
        -------
        result : dict
            ``anomaly_score`` (n,) float64, higher = more anomalous; ``decision`` (n,) int,
            +1 normal / -1 anomalous (as ``predict``); ``anomaly_map`` (n, h, w) float32
            for models that have one.
        """
        X = self._as_input(images)
        parts = {name: [] for name in self.outputs}
        for start in range(0, len(X), max(1, int(batch_size))):
            got = self._session.run(None, {"images": X[start:start + batch_size]})
            for name, value in zip(self.outputs, got, strict=True):
                parts[name].append(value)
        if not len(X):
            return {name: np.empty((0,)) for name in self.outputs}
        return {name: np.concatenate(values) for name, values in parts.items()}

    def score_files(self, paths, *, batch_size=32):
        """Read image files (resized to the fitted size) and score them.

        Parameters
        ----------
        paths : list of str or path-like, or a folder
            Image files, or a folder (its image files, sorted by name).
        batch_size : int, default=32
            Files read and scored at a time.

        Returns
        -------
        result : dict
            As :meth:`score`, plus ``path`` (list of str).
        """
        paths = _resolve(paths)
        parts = {name: [] for name in self.outputs}
        for start in range(0, len(paths), max(1, int(batch_size))):
            batch = read_images(paths[start:start + batch_size], size=self.input_shape[:2],
                                color=self.color, dtype=self.input_dtype)
            for name, value in self.score(batch, batch_size=batch_size).items():
                parts[name].append(value)
        result = {name: np.concatenate(values) for name, values in parts.items()}
        result["path"] = paths
        return result

    def _as_input(self, images):
        X = np.asarray(images)
        if X.ndim == len(self.input_shape):
            X = X[None]
        if tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(
                f"The model takes images of shape {self.input_shape} (height, width"
                f"[, channels]); got {tuple(X.shape[1:])}. Resize / convert them first "
                "(score_files does it for files).")
        if self.input_dtype == "uint8":
            if X.dtype != np.uint8:
                raise TypeError(f"The model takes uint8 images; got {X.dtype}.")
            return np.ascontiguousarray(X)
        if X.dtype in _SCALE:
            return (X.astype(np.float32) / np.float32(_SCALE[X.dtype])).copy(order="C")
        if X.dtype.kind not in "fb":
            raise TypeError(f"The model takes float images in [0, 1] (or uint8 / uint16); "
                            f"got {X.dtype}.")
        return np.ascontiguousarray(X, dtype=np.float32)


def load(path, *, n_threads=None):
    """Load an ONNX file written by :func:`skcpcae.export.to_onnx`.

    Parameters
    ----------
    path : str or path-like
        The ``.onnx`` file.
    n_threads : int or None, default=None
        onnxruntime's intra-op threads (None: its default, one per core).

    Returns
    -------
    model : OnnxModel
    """
    ort = _onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {str(path)!r}.")
    options = ort.SessionOptions()
    if n_threads:
        options.intra_op_num_threads = int(n_threads)
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(os.fspath(path), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a foreign file
        raise ValueError(f"{str(path)!r} is not a usable ONNX model ({type(exc).__name__}: "
                         f"{exc}).") from None
    props = session.get_modelmeta().custom_metadata_map
    if _METADATA_KEY not in props:
        raise ValueError(f"{str(path)!r} was not written by skcpcae.export.to_onnx (no "
                         f"{_METADATA_KEY!r} metadata).")
    return OnnxModel(path, session, json.loads(props[_METADATA_KEY]))


# -------------------------------------------------------------------------- files


def list_images(folder, recursive=False):
    """Image files of a folder, sorted as ``skcpcae.datasets.list_images`` sorts them."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"Not a folder: {folder!r}.")
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        rel_dir = os.path.relpath(dirpath, folder)
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            rel = name if rel_dir == os.curdir else os.path.join(rel_dir, name)
            if os.path.isfile(os.path.join(folder, rel)):
                found.append(rel)
    found.sort(key=lambda rel: rel.split(os.sep))
    return [os.path.join(folder, rel) for rel in found]


def _resolve(paths, recursive=False):
    if isinstance(paths, (str, os.PathLike)):
        if os.path.isdir(paths):
            return list_images(paths, recursive=recursive)
        paths = [paths]
    out = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(list_images(p, recursive=recursive))
        else:
            out.append(os.fspath(p))
    if not out:
        raise ValueError("No image files given.")
    return out


def _read_native(path):
    """One file as ``skcpcae.datasets`` decodes it: (H, W) or RGB (H, W, 3)."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        raise ValueError(f"Cannot decode image file {path!r}.")
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    if img.ndim == 3:
        if img.shape[2] in (1, 2):
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_BGR2RGB)
            if np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1],
                                                                            img[..., 2]):
                img = img[..., 0]
        else:
            raise ValueError(f"Image file {path!r} has {img.shape[2]} channels.")
    return np.ascontiguousarray(img)


def read_images(paths, *, size, color="gray", dtype="float32"):
    """Read files resized to ``size`` as ``skcpcae.datasets.load_images`` does.

    Parameters
    ----------
    paths : list of str
        Image files.
    size : tuple of (int, int)
        ``(height, width)``.
    color : {"gray", "rgb"}, default="gray"
        Output channels: luma ``(n, H, W)`` or ``(n, H, W, 3)``.
    dtype : {"float32", "uint8"}, default="float32"
        float32 in [0, 1], or the 8-bit values as stored (16-bit files are refused).

    Returns
    -------
    images : ndarray of shape (n, height, width[, 3])
    """
    import cv2

    size = (int(size[0]), int(size[1]))
    shape = (len(paths), *size) + ((3,) if color == "rgb" else ())
    out = np.empty(shape, dtype=np.uint8 if dtype == "uint8" else np.float32)
    for i, path in enumerate(paths):
        img = _read_native(os.fspath(path))
        h, w = img.shape[:2]
        if (h, w) != size:
            shrink = size[0] <= h and size[1] <= w
            img = cv2.resize(img, (size[1], size[0]),
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if color == "gray" and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if dtype == "uint8":
            if img.dtype != np.uint8:
                raise ValueError(f"{path!r} is {img.dtype}; this model takes 8-bit images.")
            scaled = img
        elif img.dtype in _SCALE:
            scaled = img.astype(np.float32) / np.float32(_SCALE[img.dtype])
        else:
            scaled = img.astype(np.float32)
        out[i] = scaled[..., None] if (color == "rgb" and scaled.ndim == 2) else scaled
    return out


def score_to_csv(model, inputs, output, *, batch_size=32, recursive=False, overwrite=False,
                 n_threads=None):
    """Score image files with an ONNX model into ``output/scores.csv``.

    The CSV has the columns of ``skcpcae score``: ``path``, ``anomaly_score``, ``decision``
    (``ok`` / ``defect``) and ``threshold``.

    Parameters
    ----------
    model : str, path-like or OnnxModel
        The ONNX file (or a loaded model).
    inputs : list of str or path-like
        Folders and image files.
    output : str or path-like
        Output folder (created).
    batch_size : int, default=32
        Files read and scored at a time.
    recursive : bool, default=False
        Also read sub-folders.
    overwrite : bool, default=False
        Replace an existing ``scores.csv``.
    n_threads : int or None, default=None
        onnxruntime threads.

    Returns
    -------
    summary : dict
        ``path`` (of the CSV), ``n_scored``, ``n_defect``, ``threshold``.
    """
    if not isinstance(model, OnnxModel):
        model = load(model, n_threads=n_threads)
    paths = _resolve(list(inputs), recursive=recursive)
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "scores.csv"
    if csv_path.exists() and not overwrite:
        raise FileExistsError(f"{str(csv_path)!r} already exists; use --force to overwrite it.")
    result = model.score_files(paths, batch_size=batch_size)
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "anomaly_score", "decision", "threshold", "error"])
        for p, s, d in zip(result["path"], result["anomaly_score"], result["decision"],
                           strict=True):
            writer.writerow([p, repr(float(s)), "ok" if d == 1 else "defect",
                             repr(model.threshold), ""])
    os.replace(tmp, csv_path)
    return {"path": str(csv_path), "n_scored": len(paths),
            "n_defect": int(np.sum(result["decision"] != 1)), "threshold": model.threshold}
