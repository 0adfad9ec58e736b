# SPDX-License-Identifier: BSD-3-Clause
"""Configuration files for ``skcpcae fit`` and the record of a fit kept in the model.

A configuration file names a preset and its ``step__param`` overrides, in TOML (read with
the standard library's ``tomllib``) or, when PyYAML is installed, YAML::

    # fit.toml
    preset = "best"

    [params]                                  # as --set STEP__PARAM=VALUE
    kdethresholdclassifier__alpha = 0.01
    deeppatchembedder__stages = [3, 4]        # arrays become tuples, as (3, 4) in --set

    [params.deeppatchembedder]                # a table: its keys are prefixed with
    batch_size = 8                            # "deeppatchembedder__"

``skcpcae fit --config fit.toml`` builds the pipeline from it; ``--preset`` and ``--set`` on
the command line win over the file. The fitted pipeline then carries a record of the fit in
its attribute ``fit_record_`` (a dict of plain values, so a ``.skops`` file stores it): the
preset, the overrides, the configuration file (name, SHA-256 and content), a summary of
the training images (number, size they were fitted at, the sizes of the files, folders),
the versions of the libraries and the date. ``skcpcae info model.skops`` prints it.
"""

import datetime
import hashlib
import importlib.metadata
import platform
from collections import Counter
from pathlib import Path

__all__ = ["describe_model", "fit_record", "format_model_description", "read_fit_config"]

#: Keys a configuration file may hold at its top level.
CONFIG_KEYS = ("preset", "params")
#: Record layout version: bump it when the keys of ``fit_record_`` change meaning.
RECORD_VERSION = 1
_VERSIONED = ("skcpcae", "scikit-learn", "numpy", "scipy", "torch", "torchvision", "timm",
              "skorch", "opencv-python-headless", "opencv-python", "Pillow")


def _load_toml(text, path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError(
                f"Reading {path} needs Python 3.11 or the package tomli (pip install tomli)."
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}.") from None


def _load_yaml(text, path):
    try:
        import yaml
    except ModuleNotFoundError:
        raise ValueError(
            f"Reading {path} needs PyYAML (pip install pyyaml); or write the file in TOML "
            "(.toml), which needs nothing more."
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None


def _plain(value, where):
    """Config values as Python literals of ``--set``: arrays → tuples; no dates."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v, where) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"{where} is a {type(value).__name__}; a parameter value must be a string, number, "
        "boolean or an array of them."
    )


def _flatten(table, prefix, path, out):
    for key, value in table.items():
        if not isinstance(key, str) or not key or not key.replace("_", "a").isalnum():
            raise ValueError(f"{path}: {key!r} is not a parameter name (STEP__PARAM).")
        name = f"{prefix}__{key}" if prefix else key
        if isinstance(value, dict):
            _flatten(value, name, path, out)
        else:
            out[name] = _plain(value, f"{path}: params {name}")
    return out


def read_fit_config(path):
    """Read a ``skcpcae fit`` configuration file (TOML, or YAML with PyYAML installed).

    Parameters
    ----------
    path : str or path-like
        A ``.toml`` file, or ``.yaml`` / ``.yml``.

    Returns
    -------
    config : dict
        ``{"preset": str or None, "params": {"step__param": value}, "path": str,
        "sha256": str, "text": str}``; nested tables of ``params`` are flattened with
        ``__`` and arrays become tuples.

    Raises
    ------
    ValueError
        The file cannot be read or parsed, holds unknown keys, or a value of the wrong
        type; the message names the file and the key.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ValueError(f"A configuration file must end in .toml, .yaml or .yml; got {path}.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"Cannot read the configuration file {path}: {exc.strerror or exc}.") \
            from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text.") from None
    data = _load_toml(text, path) if suffix == ".toml" else _load_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a table of keys ({', '.join(CONFIG_KEYS)}).")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; a configuration file "
            f"holds {' and '.join(CONFIG_KEYS)} (step parameters go under [params])."
        )
    preset = data.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise ValueError(f"{path}: preset must be a string, got {preset!r}.")
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: params must be a table of STEP__PARAM = value.")
    return {
        "preset": preset,
        "params": _flatten(params, "", path, {}),
        "path": str(path),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "text": text,
    }


def _versions():
    versions = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def fit_record(X, *, preset=None, params=None, config=None, paths=None, source_sizes=None,
               command=None):
    """A record of one fit, of plain values: what was fitted, on what, with what.

    Parameters
    ----------
    X : ndarray of shape (n_images, height, width[, channels])
        The images the model was fitted on, as they entered the pipeline.
    preset : str, default=None
        The preset's name.
    params : dict, default=None
        The ``step__param`` overrides applied to the preset.
    config : dict, default=None
        :func:`read_fit_config`'s result for the configuration file, if one was used.
    paths : list of str, default=None
        The image files; their folders are recorded (not every file name).
    source_sizes : dict, default=None
        ``{(height, width): [paths]}``: the files' own sizes, before any resizing.
    command : str, default=None
        The command that ran the fit (e.g. ``"skcpcae fit"``).

    Returns
    -------
    record : dict
        Keys ``record_version``, ``created`` (UTC, ISO 8601), ``command``, ``preset``,
        ``params``, ``config`` (``path``, ``sha256``, ``text``, or None), ``data``
        (``n_images``, ``image_size`` ``[height, width]``, ``channels``, ``dtype``,
        ``source_sizes`` ``{"HxW": count}``, ``folders``) and ``versions``.
    """
    shape = tuple(int(s) for s in getattr(X, "shape", ()))
    data = {
        "n_images": shape[0] if shape else len(X),
        "image_size": list(shape[1:3]) if len(shape) >= 3 else None,
        "channels": (shape[3] if len(shape) == 4 else 1) if len(shape) >= 3 else None,
        "dtype": str(getattr(X, "dtype", "")) or None,
        "source_sizes": None,
        "folders": None,
    }
    if source_sizes:
        counts = {f"{h}x{w}": len(files) for (h, w), files in sorted(source_sizes.items())}
        data["source_sizes"] = counts
    if paths:
        folders = Counter(str(Path(p).parent) for p in paths)
        data["folders"] = {folder: n for folder, n in sorted(folders.items())}
    return {
        "record_version": RECORD_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "preset": preset,
        "params": dict(params or {}),
        "config": None if config is None else {k: config[k] for k in ("path", "sha256", "text")},
        "data": data,
        "versions": _versions(),
    }


def _steps(model):
    steps = getattr(model, "steps", None)
    if steps is None:
        return [(type(model).__name__.lower(), model)]
    return [(name, step) for name, step in steps if step is not None and step != "passthrough"]


def describe_model(model, *, path=None, threshold=None):
    """What a fitted model is, as a dict of plain values (``skcpcae info``).

    Parameters
    ----------
    model : estimator or Pipeline
        A fitted model, e.g. as loaded by :func:`skcpcae.persistence.load`.
    path : str or path-like, default=None
        The file it was loaded from (its name and size are reported).
    threshold : float, default=None
        The threshold on the anomaly score, when the caller knows it.

    Returns
    -------
    description : dict
        ``file``, ``file_bytes``, ``estimator``, ``steps`` (``[name, class]`` pairs),
        ``threshold``, ``alpha`` (of a final KDE threshold) and ``fit_record`` (the
        model's ``fit_record_``, or None for a model not fitted by ``skcpcae fit``).
    """
    steps = [[name, f"{type(step).__module__.split('.')[0]}.{type(step).__name__}"]
             for name, step in _steps(model)]
    final = _steps(model)[-1][1]
    desc = {
        "file": None if path is None else str(path),
        "file_bytes": None if path is None else Path(path).stat().st_size,
        "estimator": type(model).__name__,
        "steps": steps,
        "threshold": None if threshold is None else float(threshold),
        "alpha": getattr(final, "alpha", None) if hasattr(final, "kde_") else None,
        "fit_record": getattr(model, "fit_record_", None),
    }
    if desc["fit_record"] is None:
        first = _steps(model)[0][1]
        shape = getattr(first, "image_shape_", None)
        desc["image_shape"] = None if shape is None else [int(s) for s in shape]
    return desc


def _size(n_bytes):
    for unit in ("bytes", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000


def format_model_description(desc):
    """:func:`describe_model`'s dict as the lines ``skcpcae info`` prints."""
    lines = []
    if desc.get("file"):
        lines.append(f"model file:  {desc['file']} ({_size(desc['file_bytes'])})")
    lines.append("pipeline:    " + " -> ".join(f"{name} ({cls.rsplit('.', 1)[-1]})"
                                                for name, cls in desc["steps"]))
    if desc.get("threshold") is not None:
        alpha = f", alpha={desc['alpha']:g}" if desc.get("alpha") is not None else ""
        lines.append(f"threshold:   {desc['threshold']:.6g} on the anomaly score{alpha}")
    record = desc.get("fit_record")
    if record is None:
        lines.append("fit record:  none (this model was not fitted by `skcpcae fit`)")
        if desc.get("image_shape"):
            lines.append("image shape: " + "x".join(map(str, desc["image_shape"])))
        return lines
    lines.append(f"fitted:      {record.get('created')} by {record.get('command') or 'Python'}")
    lines.append(f"preset:      {record.get('preset')}")
    params = record.get("params") or {}
    if params:
        lines.append("overrides:   " + ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())))
    else:
        lines.append("overrides:   none")
    config = record.get("config")
    if config:
        lines.append(f"config file: {config['path']} (sha256 {config['sha256'][:16]}...)")
    data = record.get("data") or {}
    size = data.get("image_size")
    line = f"training:    {data.get('n_images')} images"
    if size:
        kind = "gray" if data.get("channels") == 1 else f"{data.get('channels')} channels"
        line += f", fitted at {size[0]}x{size[1]} ({kind})"
    lines.append(line)
    if data.get("source_sizes"):
        lines.append("file sizes:  " + ", ".join(f"{hw} ({n})"
                                                 for hw, n in data["source_sizes"].items()))
    if data.get("folders"):
        lines.append("folders:     " + ", ".join(f"{f} ({n})" for f, n in data["folders"].items()))
    versions = record.get("versions") or {}
    if versions:
        lines.append("versions:    " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return lines
