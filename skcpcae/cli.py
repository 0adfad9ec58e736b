# SPDX-License-Identifier: BSD-3-Clause
"""The ``skcpcae`` command line: ``fit``, ``score``, ``evaluate``, ``demo``, ``benchmark``.

Exit codes: 0 success; 1 unexpected error; 2 bad usage or bad input (unreadable or empty
folder, bad ``--set``, a file that is not a model, an output that exists without ``--force``).
Errors are one line on stderr; ``--debug`` shows the traceback instead.

Heavy modules (torch, the pipeline stages, matplotlib) are imported inside the commands, so
``skcpcae --help`` answers at once.
"""

import ast
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

__all__ = ["app", "main"]

#: Model file written by ``skcpcae fit`` when ``-o`` is not given.
DEFAULT_MODEL = "model.skops"
MODEL_SUFFIXES = (".joblib", ".skops")

_EPILOG_MAIN = """\
**Examples**

```
skcpcae fit parts/good -o model.skops
skcpcae fit cells/good -o model.skops --preset aligned --set cpcaeresidualmap__max_epochs=50
skcpcae score model.skops incoming/ -o results/ --heatmaps
skcpcae evaluate model.skops --good test/good --defect test/crack -o report/
skcpcae evaluate model.skops --mvtec mvtec_ad --category bottle -o report/
```

Exit codes: 0 ok, 1 unexpected error, 2 bad usage or bad input. Add `--debug` to any command
for the full traceback.
"""


class CLIError(Exception):
    """Bad usage or bad input: a one-line message, exit code 2."""


app = typer.Typer(
    name="skcpcae",
    help="Visual anomaly detection for parts: fit on images of good parts, score new "
    "images, evaluate on labelled folders (Saeedi & Giusti 2023).",
    epilog=_EPILOG_MAIN,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_STATE = {"debug": False}


# ---------------------------------------------------------------------------- plumbing


def _version_callback(value: bool):
    if value:
        from ._version import __version__

        typer.echo(f"skcpcae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks (for every command).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
):
    _STATE["debug"] = debug


def _echo(message, quiet=False):
    if not quiet:
        typer.echo(message)


def _short_warning(message, category, filename, lineno, file=None, line=None):
    typer.echo(f"warning: {message}", err=True)


@contextmanager
def _errors(debug):
    """Turn exceptions into one-line messages and exit codes (tracebacks with --debug)."""
    debug = debug or _STATE["debug"]
    with warnings.catch_warnings():
        if not debug:
            warnings.showwarning = _short_warning
        try:
            yield
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except CLIError as exc:
            if debug:
                raise
            typer.echo("Error: " + " ".join(str(exc).split()), err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug:
                raise
            typer.echo(
                f"Unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                "traceback)",
                err=True,
            )
            raise typer.Exit(1) from None


def _check_new_file(path, force):
    """Refuse to overwrite an existing file unless ``force``; refuse a folder in its place."""
    path = Path(path)
    if path.is_dir():
        raise CLIError(f"{str(path)!r} is a folder; give a file name for the output.")
    if path.exists() and not force:
        raise CLIError(f"{str(path)!r} already exists; use --force to overwrite it.")


def _prepare_dir(path):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CLIError(f"Output {str(path)!r} exists and is not a folder.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"Cannot create the output folder {str(path)!r}: {exc}") from None
    return path


def _default_file_mode():
    """The permissions a plain ``open(path, "w")`` would give (mkstemp makes 0o600 files)."""
    from .utils._system import default_file_mode

    return default_file_mode()


def _write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` through a temporary file and os.replace."""
    path = Path(path)
    mode = "w" if isinstance(data, str) else "wb"
    kwargs = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            fh.write(data)
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


#: Largest image side ``--size`` accepts (32768 x 32768 is already a gigapixel).
MAX_SIDE = 32768
#: Largest ``--sigma``, in pixels (a Gaussian kernel of about 6 sigma per side).
MAX_SIGMA = 1000.0


def _parse_size(size):
    if size is None:
        return None
    text = size.lower().replace(" ", "")
    parts = text.split("x")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
        raise CLIError(f"--size must look like HEIGHTxWIDTH, e.g. 256x256; got {size!r}.")
    height, width = int(parts[0]), int(parts[1])
    if max(height, width) > MAX_SIDE:
        raise CLIError(
            f"--size {height}x{width} is too large: each side must be at most {MAX_SIDE} "
            "pixels."
        )
    return height, width


def _check_number(option, value, *, low=None, high=None, low_open=False):
    """Refuse NaN, infinity and values outside [low, high] (``(low`` when ``low_open``)."""
    import math

    if value is None:
        return None
    if not math.isfinite(value):
        raise CLIError(f"{option} must be a finite number; got {value}.")
    if low is not None and (value < low or (low_open and value == low)):
        word = "greater than" if low_open else "at least"
        raise CLIError(f"{option} must be {word} {low:g}; got {value:g}.")
    if high is not None and value > high:
        raise CLIError(f"{option} must be at most {high:g}; got {value:g}.")
    return value


def _finite_literals(value):
    """Whether every float inside a ``--set`` literal (tuples, lists, dicts) is finite."""
    import math

    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, complex):
        return False
    if isinstance(value, (tuple, list, set, frozenset)):
        return all(_finite_literals(v) for v in value)
    if isinstance(value, dict):
        return all(_finite_literals(k) and _finite_literals(v) for k, v in value.items())
    return True


def _validate_steps(pipe):
    """Run each step's own parameter validation (what its ``fit`` does first), so that a
    bad ``--set`` value is refused before the images are read."""
    estimators = [pipe] + [v for v in pipe.get_params(deep=True).values()
                           if hasattr(v, "get_params") and not isinstance(v, type)]
    for est in estimators:
        validate = getattr(est, "_validate_params", None)  # scikit-learn's, as in fit
        if validate is not None:
            validate()


def _parse_memory_limit(text):
    if text is None:
        return None
    from ._memory import parse_memory

    try:
        return parse_memory(text)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _gib(n_bytes):
    return f"{n_bytes / 2**30:.3g} GiB"


def _check_fit_memory(preset, n_images, shape, limit):
    """Refuse a fit whose estimated peak memory exceeds the budget, saying what would fit."""
    from ._memory import estimate_fit, max_fit_images, max_fit_shape, memory_budget

    budget = memory_budget(limit)
    need = estimate_fit(preset, n_images, shape)
    if budget is None or need <= budget:
        return
    h, w = shape[:2]
    fits = []
    n_max = max_fit_images(preset, shape, budget)
    if n_max >= 1:
        fits.append(f"at most {n_max} images of {h}x{w}")
    hw = max_fit_shape(preset, n_images, shape, budget)
    if hw is not None:
        fits.append(f"--size {hw[0]}x{hw[1]} or smaller for {n_images} images")
    raise CLIError(
        f"Fitting preset {preset!r} on {n_images} images of {h}x{w} needs about "
        f"{_gib(need)} of memory (estimate), more than the {_gib(budget)} "
        + ("available" if limit is None else "of --memory-limit")
        + "; " + (" or ".join(fits) + " would fit" if fits else
                  "the preset alone needs more than that")
        + " (--memory-limit off skips this check)."
    )


def _check_score_memory(model, batch_size, shape, limit):
    """Refuse a score run whose batches would not fit in memory; suggest a batch size."""
    from ._memory import estimate_score, max_score_batch, memory_budget, preset_of

    budget = memory_budget(limit)
    preset = preset_of(model)
    need = estimate_score(preset, batch_size, shape)
    if budget is None or need <= budget:
        return
    h, w = shape[:2]
    fit = max_score_batch(preset, shape, budget)
    raise CLIError(
        f"Scoring batches of {batch_size} images of {h}x{w} needs about {_gib(need)} of "
        f"memory (estimate), more than the {_gib(budget)} "
        + ("available" if limit is None else "of --memory-limit") + "; "
        + (f"--batch-size {fit} would fit" if fit >= 1 else
           "not even one image of this size fits")
        + " (--memory-limit off skips this check)."
    )


def _parse_set(assignments):
    """``["step__param=value", ...]`` → dict, values as Python literals (else strings)."""
    params = {}
    for item in assignments or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "a").isalnum():
            raise CLIError(
                f"--set expects STEP__PARAM=VALUE (e.g. cpcaeresidualmap__max_epochs=5); "
                f"got {item!r}."
            )
        raw = raw.strip()
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            value = raw
        if not _finite_literals(value):
            raise CLIError(f"--set {key}: values must be finite numbers; got {raw!r}.")
        params[key] = value
    return params


def _expand_inputs(sources, *, recursive=False, role="input"):
    """Folders (their image files, sorted) and files (as given) → list of str paths."""
    from .datasets import list_images

    paths = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            try:
                found = list_images(src, recursive=recursive)
            except OSError as exc:
                raise CLIError(f"Cannot read the {role} folder {str(src)!r}: {exc}") from None
            if not found:
                raise CLIError(
                    f"The {role} folder {str(src)!r} holds no image files (.png, .jpg, .bmp, "
                    ".tif, ...)."
                )
            paths.extend(found)
        elif src.is_file():
            paths.append(str(src))
        else:
            raise CLIError(f"No such {role} folder or file: {str(src)!r}.")
    if not paths:
        raise CLIError(f"No {role} images given.")
    return paths


def _load(paths, *, size, color, verbose=0):
    from .datasets import load_images

    try:
        return load_images(paths, size=size, color=color, verbose=verbose)
    except (OSError, ValueError, TypeError) as exc:
        raise CLIError(f"Cannot read the images: {exc}") from None


def _steps(model):
    """``[(name, step), ...]`` of a pipeline (without 'passthrough' / None), or the model."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return [("model", model)]
    return [(n, s) for n, s in steps if s is not None and s != "passthrough"]


def _set_verbose(model, verbose):
    """Set ``verbose`` on the pipeline's skcpcae steps that have one."""
    for _, step in _steps(model):
        if type(step).__module__.startswith("skcpcae") and "verbose" in step.get_params(
            deep=False
        ):
            step.set_params(verbose=verbose)


def _fitted_layout(model):
    """``(size, color)`` the model was fitted on, from its first image stage."""
    first = _steps(model)[0][1]
    shape = getattr(first, "image_shape_", None)
    if shape is None or len(shape) < 2 or shape[0] == 1:
        return None, "auto"
    color = "rgb" if len(shape) == 3 and shape[2] == 3 else "gray"
    return (int(shape[0]), int(shape[1])), color


def _load_model(path, trusted=None, allow_pickle=False):
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"No such model file: {str(path)!r}.")
    from . import persistence

    try:
        model = persistence.load(path, trusted=list(trusted or []) or None,
                                 allow_pickle=bool(allow_pickle))
    except persistence.UntrustedTypesError as exc:
        raise CLIError(
            f"{str(path)!r} holds types that are not trusted: {', '.join(exc.types)}. If you "
            "trust the file, pass each with --trust TYPE."
        ) from None
    except persistence.PickleNotAllowedError as exc:
        raise CLIError(str(exc).replace("pass allow_pickle=True (command line: --allow-pickle)",
                                        "add --allow-pickle")) from None
    except (persistence.ModelIntegrityError, MemoryError) as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:  # any failure to read is the file's fault, not ours
        raise CLIError(
            f"{str(path)!r} is not a usable skcpcae model file ({type(exc).__name__}: {exc}) "
            "Refit it with `skcpcae fit`."
        ) from None
    final = _steps(model)[-1][1]
    if not (hasattr(final, "score_samples") or hasattr(final, "decision_function")):
        raise CLIError(
            f"{str(path)!r} does not hold an anomaly detector (its last step, "
            f"{type(final).__name__}, has neither score_samples nor decision_function)."
        )
    return model


def _threshold(final):
    """Threshold on the anomaly score (higher = more anomalous), or None."""
    value = getattr(final, "threshold_", None)
    if value is not None:
        return float(value)
    if hasattr(final, "score_samples") and getattr(final, "offset_", None) is not None:
        return -float(final.offset_)
    if not hasattr(final, "score_samples") and hasattr(final, "decision_function"):
        return 0.0
    return None


def _map_source(model):
    """Where anomaly maps come from: ``(index, "residual" | "anomaly_map")`` or None."""
    steps = _steps(model)
    try:
        from .residuals import CPCAEResidualMap
    except ImportError:  # pragma: no cover
        CPCAEResidualMap = ()
    for i, (_, step) in enumerate(steps):
        if isinstance(step, CPCAEResidualMap):
            return i, "residual"
    for i, (_, step) in enumerate(steps):
        if hasattr(step, "anomaly_map"):
            return i, "anomaly_map"
    return None


def _reads_files(model):
    """Whether the model starts with an ImageReader (it takes file paths, not arrays)."""
    from .datasets import ImageReader

    return isinstance(_steps(model)[0][1], ImageReader)


def _is_registrar(step):
    try:
        from .preprocessing import ECCRegistrar
    except ImportError:  # pragma: no cover
        return type(step).__name__.endswith("Registrar")
    return isinstance(step, ECCRegistrar)


def _run_model(model, X, *, map_source=None):
    """Features for the final step, and (optionally) anomaly maps with their base images.

    Runs every step once. The maps are those of the residual step (or of a step's
    ``anomaly_map``), averaged over channels; the base image is the input, or the output of
    the registration step when one precedes the map (so that map and image are aligned).
    """
    steps = _steps(model)
    Xt, base, maps = X, X, None
    for i, (_, step) in enumerate(steps):
        is_last = i == len(steps) - 1
        if map_source is not None and i == map_source[0] and map_source[1] == "anomaly_map":
            maps = np.asarray(step.anomaly_map(Xt), dtype=np.float32)
        if is_last:
            break
        Xt = step.transform(Xt)
        if i == 0 and _reads_files(model):
            base = Xt
        if map_source is not None and i < map_source[0] and _is_registrar(step):
            base = Xt
        if map_source is not None and i == map_source[0] and map_source[1] == "residual":
            maps = np.asarray(Xt, dtype=np.float32)
    if maps is not None and maps.ndim == 4:
        maps = maps.mean(axis=3)
    if maps is not None and np.ndim(base) >= 3 and maps.shape[1:3] != np.shape(base)[1:3]:
        # a patch grid (e.g. PatchKNNScorer's, one cell per 16 pixels): upsample to the image
        import cv2

        h, w = np.shape(base)[1:3]
        maps = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])
    return Xt, steps[-1][1], base, maps


def _smooth(maps, sigma):
    if not sigma or sigma <= 0:
        return maps
    import cv2

    return np.stack(
        [cv2.GaussianBlur(m.astype(np.float32), (0, 0), float(sigma)) for m in maps]
    )


def _anomaly_scores(final, Xt):
    if hasattr(final, "score_samples"):
        return -np.asarray(final.score_samples(Xt), dtype=float)
    return -np.asarray(final.decision_function(Xt), dtype=float)


def _heatmap_names(paths):
    """One PNG name per input (file stem; duplicates get ``-1``, ``-2``, ...)."""
    names, seen = [], {}
    for p in paths:
        stem = Path(p).stem or "image"
        count = seen.get(stem, 0)
        seen[stem] = count + 1
        names.append(f"{stem}.png" if count == 0 else f"{stem}-{count}.png")
    # a later stem may equal an earlier "stem-1": make every name unique
    used, out = set(), []
    for name in names:
        base, k = name[:-4], 1
        while name in used:
            name = f"{base}_{k}.png"
            k += 1
        used.add(name)
        out.append(name)
    return out


# ---------------------------------------------------------------------------- fit

_FIT_EPILOG = """\
**Examples**

```
skcpcae fit parts/good -o model.skops
skcpcae fit cells/good -o cells.skops --preset aligned --size 128x128
skcpcae fit parts/good --set cpcaeresidualmap__max_epochs=50 --set kdethresholdclassifier__alpha=0.01
```

`--set` values are Python literals (`5`, `0.01`, `True`, `(32, 32)`, `'resnet18'`); anything
else is taken as a string. Parameter names are `<step>__<param>` as in scikit-learn
(`skcpcae fit --preset NAME --list-params` shows them).

Model files: `.skops` (the default: loading it never runs code, unknown types are listed
and refused) or `.joblib` (a pickle: load only files you trust; `score` and `evaluate` read
it only with `--allow-pickle`). Both record a SHA-256 of their content: a damaged file is
refused. Should a `.skops` save fail,
the fitted model is saved as `.joblib` instead, with exit code 2, so a long fit is not lost.
"""


@app.command(epilog=_FIT_EPILOG)
def fit(
    good: Annotated[
        list[Path],
        typer.Argument(help="Folder(s) or image files of GOOD parts only.",
                       metavar="GOOD_DIR...", show_default=False),
    ] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="FILE",
                           help="Model file to write (.joblib or .skops).")
    ] = Path(DEFAULT_MODEL),
    preset: Annotated[
        str,
        typer.Option("--preset", metavar="NAME", help="Pipeline: paper (registration + gamma + CPCAE + deep "
                     "features + k-NN + KDE threshold), aligned (paper without registration, "
                     "for pre-aligned parts), best (patch features, each compared with the "
                     "same place on good parts; fast, no training), union (raw-image + "
                     "residual-map embeddings), deep-feature (the CNN-feature comparator)."),
    ] = "paper",
    set_: Annotated[
        list[str],
        typer.Option("--set", metavar="STEP__PARAM=VALUE",
                     help="Override a pipeline parameter (repeatable)."),
    ] = None,
    size: Annotated[
        str,
        typer.Option("--size", metavar="HxW",
                     help="Resize every image to HEIGHTxWIDTH. Default: the size of the first "
                     "image (others are resized to it)."),
    ] = None,
    color: Annotated[
        str, typer.Option("--color", metavar="MODE", help="auto, gray or rgb.")
    ] = "auto",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also read sub-folders.")
    ] = False,
    list_params: Annotated[
        bool, typer.Option("--list-params", help="Print the preset's parameters and exit.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite an existing model file.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")
    ] = False,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", metavar="SIZE",
                          help="Memory the run may use, e.g. 8G (default: what the system "
                          "has available); the run is refused before loading images when "
                          "the estimate exceeds it. 'off' skips the check.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.")] = False,
):
    """Fit an anomaly detector on images of good parts and save it."""
    with _errors(debug):
        from ._pipelines import PRESETS, make_preset

        if preset not in PRESETS:
            raise CLIError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        params = _parse_set(set_)
        if not list_params:
            if not good:
                raise CLIError("Give at least one folder (or image file) of good parts.")
            output = Path(output)
            if output.suffix.lower() not in MODEL_SUFFIXES:
                raise CLIError(
                    f"The model file must end in .joblib or .skops; got {str(output)!r}."
                )
            _check_new_file(output, force)
            if not output.parent.is_dir():
                raise CLIError(f"The folder of {str(output)!r} does not exist.")
            if color not in ("auto", "gray", "rgb"):
                raise CLIError(f"--color must be auto, gray or rgb; got {color!r}.")
            size_hw = _parse_size(size)
            limit = _parse_memory_limit(memory_limit)
            paths = _expand_inputs(good, recursive=recursive, role="good-image")
        try:
            pipe = make_preset(preset, **params)
            _validate_steps(pipe)  # every parameter checked before any image is read
        except (ValueError, TypeError) as exc:
            raise CLIError(
                f"Bad --set for preset {preset!r}: {exc} (`skcpcae fit --preset {preset} "
                "--list-params` lists the parameters)."
            ) from None
        if list_params:
            for key, value in sorted(pipe.get_params(deep=True).items()):
                if "__" in key and not hasattr(value, "get_params"):
                    typer.echo(f"{key}={value!r}")
            return
        if size_hw is None:
            size_hw = tuple(_load(paths[:1], size=None, color=color).shape[1:3])
        _check_fit_memory(preset, len(paths), size_hw + ((3,) if color == "rgb" else ()),
                          limit)
        X = _load(paths, size=size_hw, color=color, verbose=0 if quiet else 1)
        _set_verbose(pipe, 0 if quiet else 1)
        _echo(f"Fitting preset {preset!r} on {len(X)} images of {size_hw[0]}x{size_hw[1]} "
              "pixels...", quiet)
        try:
            pipe.fit(X)
        except ValueError as exc:
            raise CLIError(f"Fitting failed: {exc}") from None
        _set_verbose(pipe, 0)

        _save_model(pipe, output, force)
        final = _steps(pipe)[-1][1]
        t = _threshold(final)
        _echo(f"Saved {str(output)!r}" + (f" (threshold on the anomaly score: {t:.6g})"
                                          if t is not None else "") + ".", quiet)


def _save_model(pipe, output, force):
    """Save with skcpcae.persistence; a .skops that cannot hold the model falls back to
    .joblib (so a long fit is not lost) and the command then exits with code 2."""
    from . import persistence

    try:
        persistence.save(pipe, output, overwrite=force)
    except FileExistsError:
        raise CLIError(f"{str(output)!r} already exists; use --force to overwrite it.") from None
    except TypeError as exc:
        if output.suffix.lower() != ".skops":
            raise
        fallback = output.with_suffix(".joblib")
        if fallback.exists() and not force:
            raise CLIError(
                f"Cannot save this model as .skops ({exc}); nothing saved, and "
                f"{str(fallback)!r} already exists (use --force, or -o NAME.joblib)."
            ) from None
        persistence.save(pipe, fallback, overwrite=force)
        raise CLIError(
            f"Cannot save this model as .skops ({exc}); saved it as {str(fallback)!r} "
            "instead (use -o NAME.joblib for such models)."
        ) from None


# ---------------------------------------------------------------------------- score

_SCORE_EPILOG = """\
**Examples**

```
skcpcae score model.skops incoming/ -o results/
skcpcae score model.skops a.png b.png -o results/ --heatmaps
```

Writes `results/scores.csv` with the columns path, anomaly_score (higher = more anomalous),
decision (ok / defect) and threshold; with `--heatmaps` also `results/heatmaps/<name>.png`:
the anomaly map over the image (over the aligned image when the model registers parts).
All heatmaps of one run share one colour scale (0 to `--vmax`, default: the largest map
value of the run), so colours compare across images. Images are resized to the size the
model was fitted on.
"""


@app.command(epilog=_SCORE_EPILOG)
def score(
    model: Annotated[Path, typer.Argument(help="Model file written by `skcpcae fit`.", metavar="MODEL")],
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Folder(s) and/or image files to score.", metavar="DIR_OR_FILES...",
                       show_default=False),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Output folder.")] = Path(
        "results"
    ),
    heatmaps: Annotated[
        bool, typer.Option("--heatmaps", help="Also write one overlay PNG per image.")
    ] = False,
    sigma: Annotated[
        float, typer.Option("--sigma", help="Gaussian smoothing of the maps, in pixels "
                            "(default: image size / 64, at least 1; 0 = none).")
    ] = None,
    vmax: Annotated[
        float, typer.Option("--vmax", help="Map value shown as the hottest colour.")
    ] = None,
    trust: Annotated[
        list[str],
        typer.Option("--trust", metavar="TYPE",
                     help="A type to trust in a .skops model file (repeatable)."),
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle",
                           help="Read a .joblib (pickle) model file: loading it runs code "
                           "chosen by whoever wrote it; only for files you trust.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images read and scored at a time.")
    ] = 32,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also read sub-folders.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite existing result files.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", metavar="SIZE",
                          help="Memory the run may use, e.g. 8G (default: what the system "
                          "has available); the run is refused before loading images when "
                          "the estimate exceeds it. 'off' skips the check.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.")] = False,
):
    """Score images with a fitted model: a CSV of anomaly scores and ok/defect decisions."""
    with _errors(debug):
        _check_number("--sigma", sigma, low=0, high=MAX_SIGMA)
        _check_number("--vmax", vmax, low=0, low_open=True)
        limit = _parse_memory_limit(memory_limit)
        paths = _expand_inputs(inputs, recursive=recursive, role="input")
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise CLIError(f"Output {str(out_dir)!r} exists and is not a folder.")
        csv_path = out_dir / "scores.csv"
        _check_new_file(csv_path, force)
        pipe = _load_model(model, trust, allow_pickle)
        source = None
        names = []
        if heatmaps:
            source = _map_source(pipe)
            if source is None:
                raise CLIError(
                    "Heatmaps are unavailable for this model: none of its steps makes an "
                    "anomaly map (models of the 'paper', 'aligned', 'union' and 'best' presets do). Rerun "
                    "without --heatmaps."
                )
            names = _heatmap_names(paths)
            existing = [n for n in names if (out_dir / "heatmaps" / n).exists()]
            if existing and not force:
                raise CLIError(
                    f"{str(out_dir / 'heatmaps' / existing[0])!r} already exists "
                    f"({len(existing)} heatmap file(s) would be overwritten); use --force to "
                    "overwrite them."
                )
        if vmax is not None and not vmax > 0:
            raise CLIError(f"--vmax must be positive; got {vmax}.")
        _prepare_dir(out_dir)
        size_hw, color = _fitted_layout(pipe)
        reads_files = _reads_files(pipe)
        if size_hw is not None:
            _check_score_memory(pipe, batch_size, size_hw + ((3,) if color == "rgb" else ()),
                                limit)
        _set_verbose(pipe, 0)
        final = _steps(pipe)[-1][1]
        threshold = _threshold(final)

        from tqdm.auto import tqdm

        scores, decisions = [], []
        # maps and base images of all inputs wait in memory-mapped files until the run-wide
        # colour scale is known (bounded memory for large folders)
        tmp_dir = (tempfile.TemporaryDirectory(dir=out_dir, prefix=".skcpcae-") if heatmaps
                   else contextlib.nullcontext())
        with tmp_dir as tmp:
            maps_mm = base_mm = None
            with tqdm(total=len(paths), desc="Scoring", unit="img", disable=quiet,
                      file=sys.stderr) as bar:
                for start in range(0, len(paths), batch_size):
                    chunk = paths[start:start + batch_size]
                    X = chunk if reads_files else _load(chunk, size=size_hw, color=color)
                    try:
                        Xt, final, base, maps = _run_model(pipe, X, map_source=source)
                        s = _anomaly_scores(final, Xt)
                        pred = np.asarray(final.predict(Xt))
                    except ValueError as exc:
                        raise CLIError(f"Cannot score these images: {exc}") from None
                    scores.extend(s.tolist())
                    decisions.extend(np.where(pred == -1, "defect", "ok").tolist())
                    if heatmaps:
                        if maps_mm is None:
                            h, w = maps.shape[1:3]
                            sig = sigma if sigma is not None else max(1.0, min(h, w) / 64)
                            maps_mm = np.lib.format.open_memmap(
                                os.path.join(tmp, "maps.npy"), mode="w+",
                                dtype=np.float32, shape=(len(paths), h, w))
                            base_mm = np.lib.format.open_memmap(
                                os.path.join(tmp, "base.npy"), mode="w+",
                                dtype=np.uint8, shape=(len(paths),) + base.shape[1:])
                        maps_mm[start:start + len(chunk)] = _smooth(maps, sig)
                        base_mm[start:start + len(chunk)] = np.rint(
                            np.clip(base, 0, 1) * 255).astype(np.uint8)
                    bar.update(len(chunk))
            if heatmaps:
                from .datasets import save_image
                from .plotting import overlay_heatmap

                if vmax is None:
                    vmax = max(float(np.max(m)) for m in maps_mm) or 1.0
                heat_dir = _prepare_dir(out_dir / "heatmaps")
                for i, name in enumerate(tqdm(names, desc="Heatmaps", unit="img",
                                              disable=quiet, file=sys.stderr)):
                    rgb = overlay_heatmap(base_mm[i], maps_mm[i], alpha=0.5, vmin=0.0,
                                          vmax=vmax)
                    save_image(heat_dir / name, rgb)
                del maps_mm, base_mm

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        header = ["path", "anomaly_score", "decision", "threshold"]
        if heatmaps:
            header.append("heatmap")
        writer.writerow(header)
        for i, p in enumerate(paths):
            row = [p, repr(float(scores[i])), decisions[i],
                   "" if threshold is None else repr(threshold)]
            if heatmaps:
                row.append(str(Path("heatmaps") / names[i]))
            writer.writerow(row)
        _write_atomic(csv_path, buf.getvalue())
        n_defect = decisions.count("defect")
        _echo(f"Scored {len(paths)} image(s): {n_defect} defect, {len(paths) - n_defect} ok"
              + (f" (threshold {threshold:.6g})" if threshold is not None else "")
              + f". Wrote {str(csv_path)!r}"
              + (f" and {len(names)} heatmap(s) in {str(out_dir / 'heatmaps')!r} "
                 f"(colour scale 0 to {vmax:.4g})" if heatmaps else "") + ".", quiet)


# ---------------------------------------------------------------------------- evaluate

_EVALUATE_EPILOG = """\
**Examples**

```
skcpcae evaluate model.skops --good test/good --defect test/crack -o report/
skcpcae evaluate model.skops --good ok/ --defect crack/ --defect scratch/ -o report/
skcpcae evaluate model.skops --mvtec mvtec_ad --category bottle -o report/
```

Prints AUROC and average precision (defective = positive) and the confusion counts at the
model's threshold; writes `report/metrics.json`, `report/roc.png` and `report/pr.png` (the
plots need matplotlib: `pip install "skcpcae[plot]"`).
"""


@app.command(epilog=_EVALUATE_EPILOG)
def evaluate(
    model: Annotated[Path, typer.Argument(help="Model file written by `skcpcae fit`.", metavar="MODEL")],
    good: Annotated[
        list[Path], typer.Option("--good", metavar="DIR", help="Folder of good test images (repeatable).")
    ] = None,
    defect: Annotated[
        list[Path],
        typer.Option("--defect", metavar="DIR", help="Folder of defective test images (repeatable)."),
    ] = None,
    mvtec: Annotated[
        Path, typer.Option("--mvtec", metavar="ROOT", help="Root of a dataset in the MVTec AD layout.")
    ] = None,
    category: Annotated[
        str, typer.Option("--category", metavar="NAME", help="MVTec AD category (with --mvtec).")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Report folder.")] = Path(
        "report"
    ),
    trust: Annotated[
        list[str],
        typer.Option("--trust", metavar="TYPE",
                     help="A type to trust in a .skops model file (repeatable)."),
    ] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle",
                           help="Read a .joblib (pickle) model file: loading it runs code "
                           "chosen by whoever wrote it; only for files you trust.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite existing report files.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.")] = False,
):
    """Evaluate a fitted model on labelled images: AUROC, AP, confusion at the threshold."""
    with _errors(debug):
        from .metrics import evaluate as evaluate_report

        use_folders = bool(good or defect)
        if use_folders == (mvtec is not None):
            raise CLIError(
                "Give either --good DIR and --defect DIR (repeatable), or --mvtec ROOT "
                "--category NAME."
            )
        if use_folders and not (good and defect):
            raise CLIError("Give both --good and --defect folders (AUROC needs both classes).")
        if mvtec is not None and not category:
            raise CLIError("--mvtec needs --category NAME (e.g. --category bottle).")
        out_dir = Path(output)
        files = {k: out_dir / f"{k}.{ext}" for k, ext in
                 (("metrics", "json"), ("roc", "png"), ("pr", "png"))}
        for path in files.values():
            _check_new_file(path, force)
        pipe = _load_model(model, trust, allow_pickle)
        size_hw, color = _fitted_layout(pipe)
        reads_files = _reads_files(pipe)
        verbose = 0 if quiet else 1
        if use_folders:
            good_paths = _expand_inputs(good, role="good-image")
            defect_paths = _expand_inputs(defect, role="defect-image")
            paths = good_paths + defect_paths
            X = paths if reads_files else _load(paths, size=size_hw, color=color,
                                                verbose=verbose)
            y = np.r_[np.zeros(len(good_paths), int), np.ones(len(defect_paths), int)]
            data = {"good": [str(g) for g in good], "defect": [str(d) for d in defect]}
        else:
            from .datasets import load_mvtec_ad

            try:
                bunch = load_mvtec_ad(mvtec, category, size=size_hw, color=color,
                                      verbose=verbose)
            except (OSError, ValueError) as exc:
                raise CLIError(f"Cannot read the MVTec AD data: {exc}") from None
            X = bunch.paths_test if reads_files else bunch.X_test
            y = bunch.y_test
            data = {"mvtec": str(mvtec), "category": category}
        _set_verbose(pipe, 0)
        try:
            Xt, final, _, _ = _run_model(pipe, X)
            report = evaluate_report(final, Xt, y)
            s = _anomaly_scores(final, Xt)
        except ValueError as exc:
            raise CLIError(f"Cannot evaluate on these images: {exc}") from None
        threshold = _threshold(final)
        report = {"model": str(model), "data": data, "threshold": threshold, **report}

        typer.echo(f"{report['n_samples']} images ({report['n_anomalous']} defective)")
        typer.echo(f"AUROC              {report['auroc']:.4f}")
        typer.echo(f"average precision  {report['average_precision']:.4f}")
        if "tp" in report:
            t = f"{threshold:.6g}" if threshold is not None else "the model's"
            typer.echo(
                f"at threshold {t}: {report['tp']} defects found, {report['fn']} missed, "
                f"{report['fp']} false alarms, {report['tn']} good passed "
                f"(recall {report['recall']:.3f}, false-alarm rate "
                f"{report['false_alarm_rate']:.3f}, precision {report['precision']:.3f})"
            )

        _prepare_dir(out_dir)
        _write_atomic(files["metrics"], json.dumps(report, indent=2) + "\n")
        written = [files["metrics"]]
        try:
            written += _save_curves(y, s, files["roc"], files["pr"])
        except ImportError as exc:
            typer.echo(f"warning: no plots: {exc}", err=True)
        typer.echo("Wrote " + ", ".join(repr(str(p)) for p in written) + ".")


def _save_curves(y, s, roc_path, pr_path):
    """ROC and PR figures as two PNGs (no pyplot: backend-independent)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            'matplotlib is not installed; pip install "skcpcae[plot]" for roc.png / pr.png.'
        ) from None
    from .plotting import plot_roc_pr

    fig_roc = Figure(figsize=(5, 4.5), layout="constrained")
    fig_pr = Figure(figsize=(5, 4.5), layout="constrained")
    plot_roc_pr(y, s, ax=(fig_roc.subplots(), fig_pr.subplots()))
    for fig, path in ((fig_roc, roc_path), (fig_pr, pr_path)):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        _write_atomic(path, buf.getvalue())
    return [roc_path, pr_path]


# ---------------------------------------------------------------------------- demo, benchmark

_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True,
                 "help_option_names": []}


def _call_main(module_name, args, debug):
    import importlib

    with _errors(debug):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            typer.echo(f"Error: {module_name} is not available in this installation ({exc}).",
                       err=True)
            raise typer.Exit(1) from None
        result = module.main(list(args))
    # an int is an exit status; anything else (the benchmark returns its rows) is success
    rc = result if isinstance(result, int) and not isinstance(result, bool) else 0
    raise typer.Exit(rc)


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def demo(ctx: typer.Context):
    """Run the paper's pipeline, the deep-feature comparator and the best preset on ELPV solar
    cells (needs `pip install "skcpcae[elpv]"`). Arguments go to the demo
    (`skcpcae demo --help`)."""
    _call_main("skcpcae._demo", ctx.args, False)


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def benchmark(ctx: typer.Context):
    """Compare detectors on ELPV / MVTec-layout folders (AUROC, AP, time, memory).
    Arguments go to the benchmark (`skcpcae benchmark --help`)."""
    _call_main("skcpcae._benchmark", ctx.args, False)


def main(argv=None):
    """Entry point of the ``skcpcae`` console script."""
    return app(args=argv, prog_name="skcpcae")


if __name__ == "__main__":  # pragma: no cover
    main()
