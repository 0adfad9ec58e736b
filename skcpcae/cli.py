# SPDX-License-Identifier: BSD-3-Clause
"""The ``skcpcae`` command line: ``fit``, ``score``, ``evaluate``, ``info``, ``demo``,
``benchmark``.

Exit codes: 0 success; 1 unexpected error; 2 bad usage or bad input (unreadable or empty
folder, bad ``--set``, a file that is not a model, an output that exists without ``--force``).
Errors are one line on stderr; ``--debug`` shows the traceback instead.

Heavy modules (torch, the pipeline stages, matplotlib) are imported inside the commands, so
``skcpcae --help`` answers at once.
"""

import ast
import contextlib
import io
import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

__all__ = ["app", "main"]

#: Model file written by ``skcpcae fit`` when ``-o`` is not given.
# Options that several commands share, declared once.
TrustOption = Annotated[
    list[str],
    typer.Option("--trust", metavar="TYPE",
                 help="A type to trust in a .skops model file (repeatable)."),
]
AllowPickleOption = Annotated[
    bool, typer.Option("--allow-pickle",
                       help="Read a .joblib (pickle) model file: loading it runs code "
                       "chosen by whoever wrote it; only for files you trust.")
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the traceback on errors.")]

#: ``skcpcae fit``'s preset when neither --preset nor a config file names one.
DEFAULT_PRESET = "best"
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


class _OneLineUsageErrors(typer.core.TyperGroup):
    """Options click refuses while parsing (``--batch-size 0``, ``--sigma abc``, an unknown
    option) get the one line of every other refusal, exit code 2, not a boxed usage text."""

    def invoke(self, ctx):
        from typer._click import exceptions

        try:
            return super().invoke(ctx)
        except exceptions.UsageError as exc:
            if isinstance(exc, exceptions.NoArgsIsHelpError):  # prints the help
                raise
            where = (exc.ctx or ctx).command_path
            message = " ".join(exc.format_message().split()).rstrip(".")
            typer.echo(f"Error: {message} (`{where} -h` for help).", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_OneLineUsageErrors,
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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` (temporary files, locks) runs."""


@contextmanager
def _signals_as_interrupts():
    """SIGTERM (and SIGHUP) raise :class:`_Terminated` in the main thread while the block runs."""
    import signal

    def handler(signum, frame):
        raise _Terminated(signum)

    installed = {}
    try:
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None:
                try:
                    installed[sig] = signal.signal(sig, handler)
                except ValueError:  # not the main thread: leave the signals alone
                    pass
        yield
    finally:
        for sig, previous in installed.items():
            signal.signal(sig, previous)


@contextmanager
def _errors(debug):
    """Turn exceptions into one-line messages and exit codes (tracebacks with --debug)."""
    from .utils._files import is_disk_full

    debug = debug or _STATE["debug"]
    with warnings.catch_warnings(), _signals_as_interrupts():
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
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, _Terminated)
            typer.echo("Terminated." if terminated else "Interrupted.", err=True)
            raise typer.Exit(143 if terminated else 130) from None
        except OSError as exc:
            if debug or not is_disk_full(exc):
                if debug:
                    raise
                typer.echo(
                    f"Unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for "
                    "the traceback)",
                    err=True,
                )
                raise typer.Exit(1) from None
            where = f" while writing {exc.filename!r}" if exc.filename else ""
            typer.echo(f"Error: the disk is full{where} ({exc.strerror or exc}); free some "
                       "space and rerun.", err=True)
            raise typer.Exit(2) from None
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


def _check_fit_memory(preset, n_images, shape, limit, batch_size=None):
    """Refuse a fit whose estimated peak memory exceeds the budget, saying what would fit
    (``batch_size``: the embedders' batch, by default theirs)."""
    from ._memory import estimate_fit, max_fit_images, max_fit_shape, memory_budget

    budget = memory_budget(limit)
    need = estimate_fit(preset, n_images, shape, batch_size=batch_size)
    if budget is None or need <= budget:
        return
    h, w = shape[:2]
    fits = []
    n_max = max_fit_images(preset, shape, budget, batch_size=batch_size)
    if n_max >= 1:
        fits.append(f"at most {n_max} images of {h}x{w}")
    hw = max_fit_shape(preset, n_images, shape, budget, batch_size=batch_size)
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
    from ._memory import (
        embed_batch_size,
        estimate_score,
        max_score_batch,
        memory_budget,
        preset_of,
        training_size,
    )

    budget = memory_budget(limit)
    preset = preset_of(model)
    sizes = dict(n_train=training_size(model), embed_batch=embed_batch_size(model))
    need = estimate_score(preset, batch_size, shape, **sizes)
    if budget is None or need <= budget:
        return
    h, w = shape[:2]
    fit = max_score_batch(preset, shape, budget, **sizes)
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
                subs = [] if recursive else sorted(
                    d.name for d in src.iterdir() if d.is_dir() and not d.name.startswith("."))
                hint = ""
                if subs and list_images(src, recursive=True):
                    shown = ", ".join(repr(d) for d in subs[:3])
                    hint = (f" Its sub-folders ({shown}{', ...' if len(subs) > 3 else ''}) "
                            "hold images: add -r / --recursive to read them.")
                raise CLIError(
                    f"The {role} folder {str(src)!r} holds no image files (.png, .jpg, .bmp, "
                    ".tif, ...)." + hint
                )
            paths.extend(found)
        elif src.is_file():
            paths.append(str(src))
        elif src.is_symlink():
            raise CLIError(f"The {role} file {str(src)!r} is a broken symbolic link (to "
                           f"{os.readlink(src)!r}, which does not exist).")
        else:
            raise CLIError(f"No such {role} folder or file: {str(src)!r}.")
    if not paths:
        raise CLIError(f"No {role} images given.")
    return paths


def _load(paths, *, size, color, verbose=0, keep_aspect=False, max_pixels=None):
    from .datasets import MAX_PIXELS, load_images

    try:
        return load_images(paths, size=size, color=color, verbose=verbose,
                           keep_aspect=keep_aspect,
                           max_pixels=MAX_PIXELS if max_pixels is None else max_pixels)
    except (OSError, ValueError, TypeError) as exc:
        raise CLIError(f"Cannot read the images: {exc}") from None


def _image_sizes(paths, max_pixels=None):
    """``{(height, width): [paths]}`` from the files' headers (no image decoded), refusing a
    file over the pixel budget by name."""
    from .datasets import MAX_PIXELS
    from .datasets._io import _check_pixels, _read_header

    budget = MAX_PIXELS if max_pixels is None else max_pixels
    sizes = {}
    for path in paths:
        header = _read_header(path)
        if header is None:  # a format Pillow cannot read without decoding: OpenCV decodes it
            hw = tuple(_load([path], size=None, color="auto", max_pixels=budget).shape[1:3])
        else:
            try:
                _check_pixels(path, header[0], header[1], budget)
            except ValueError as exc:
                raise CLIError(str(exc)) from None
            hw = header[:2]
        sizes.setdefault(hw, []).append(path)
    return sizes


def _common_size(sizes, keep_aspect, role="good"):
    """The one size of the images, the largest with ``keep_aspect``, else a refusal that
    lists the sizes found."""
    if len(sizes) == 1:
        return next(iter(sizes))
    largest = (max(h for h, _ in sizes), max(w for _, w in sizes))
    if keep_aspect:
        return largest
    ranked = sorted(sizes.items(), key=lambda kv: -len(kv[1]))
    listed = "; ".join(
        f"{h}x{w}: {len(files)} file(s), e.g. {files[0]!r}" for (h, w), files in ranked[:4]
    ) + ("; ..." if len(ranked) > 4 else "")
    common = ranked[0][0]
    raise CLIError(
        f"The {role} images have {len(sizes)} different sizes (height x width): {listed}. "
        f"Give --size HxW to resize them all (e.g. --size {common[0]}x{common[1]}, the most "
        f"common), or --keep-aspect to pad them to {largest[0]}x{largest[1]} without "
        "distortion (with --size: scale each to fit inside, then pad)."
    )


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


def _reads_files(model):
    """Whether the model starts with an ImageReader (it takes file paths, not arrays)."""
    from .datasets import ImageReader

    return isinstance(_steps(model)[0][1], ImageReader)


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
                     "residual-map embeddings), deep-feature (the CNN-feature comparator). "
                     "Default: the config file's, else best."),
    ] = None,
    config: Annotated[
        Path,
        typer.Option("--config", metavar="FILE",
                     help="TOML (or YAML) file with the preset and [params] step__param "
                     "overrides; --preset and --set win over it. Stored in the model "
                     "(`skcpcae info`)."),
    ] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", metavar="STEP__PARAM=VALUE",
                     help="Override a pipeline parameter (repeatable)."),
    ] = None,
    size: Annotated[
        str,
        typer.Option("--size", metavar="HxW",
                     help="Resize every image to HEIGHTxWIDTH. Default: the images' own size "
                     "(images of different sizes are refused, with the sizes listed)."),
    ] = None,
    keep_aspect: Annotated[
        bool, typer.Option("--keep-aspect",
                           help="Keep aspect ratios: pad images of different sizes to the "
                           "largest height and width (with --size: scale each to fit inside "
                           "HxW, then pad), with black.")
    ] = False,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", min=1, metavar="N",
                          help="Largest image accepted, in pixels (height x width; default "
                          "100 million), checked from the file header before decoding.")
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
    debug: DebugOption = False,
):
    """Fit an anomaly detector on images of good parts and save it."""
    with _errors(debug), contextlib.ExitStack() as claims:
        from ._fit_record import fit_record
        from ._memory import embed_batch_size
        from ._pipelines import PRESETS, make_preset

        fit_config = _read_config(config)
        if preset is None:
            # the preset ranked first by benchmarks/run.py on ELPV (README, "Which preset")
            preset = (fit_config or {}).get("preset") or DEFAULT_PRESET
        if preset not in PRESETS:
            raise CLIError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        params = {**(fit_config or {}).get("params", {}), **_parse_set(set_)}
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
        claims.enter_context(_claim_model_file(output))  # a second fit onto it: exit 2
        sizes = _image_sizes(paths, max_pixels)  # headers only: no image decoded yet
        if size_hw is None:
            size_hw = _common_size(sizes, keep_aspect)
        _check_fit_memory(preset, len(paths), size_hw + ((3,) if color == "rgb" else ()),
                          limit, batch_size=embed_batch_size(pipe))
        X = _load(paths, size=size_hw, color=color, verbose=0 if quiet else 1,
                  keep_aspect=keep_aspect, max_pixels=max_pixels)
        _set_verbose(pipe, 0 if quiet else 1)
        _echo(f"Fitting preset {preset!r} on {len(X)} images of {size_hw[0]}x{size_hw[1]} "
              "pixels...", quiet)
        try:
            pipe.fit(X)
        except ValueError as exc:
            raise CLIError(f"Fitting failed: {exc}") from None
        _set_verbose(pipe, 0)
        pipe.fit_record_ = fit_record(X, preset=preset, params=params, config=fit_config,
                                      paths=paths, source_sizes=sizes, command="skcpcae fit")

        _save_model(pipe, output, force)
        claims.close()
        from .inspection import decision_threshold

        t = decision_threshold(pipe)
        _echo(f"Saved {str(output)!r}" + (f" (threshold on the anomaly score: {t:.6g})"
                                          if t is not None else "") + ".", quiet)


@contextmanager
def _claim_model_file(output):
    """Claim the model file for the run (a lock beside it); in a folder that cannot be
    written, the lock lives in the system temp folder and the model will be saved elsewhere."""
    import hashlib

    from .utils._files import OutputInUseError, claim_output

    stack = contextlib.ExitStack()
    try:
        stack.enter_context(claim_output(output))
    except OutputInUseError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        warnings.warn(
            f"Cannot write in {str(output.parent)!r} ({exc.strerror or exc}); the fitted "
            "model will be saved in a temporary file instead (its path is printed at the "
            "end).",
            UserWarning,
            stacklevel=3,
        )
        key = hashlib.sha1(str(output.resolve()).encode()).hexdigest()[:16]
        try:
            stack.enter_context(
                claim_output(Path(tempfile.gettempdir()) / f"skcpcae-{key}{output.suffix}"))
        except OutputInUseError:
            raise CLIError(
                f"{str(output)!r} is being written by another skcpcae run.") from None
    with stack:
        yield


def _save_model(pipe, output, force):
    """Save with skcpcae.persistence, never losing a finished fit: a .skops that cannot hold
    the model falls back to .joblib, a file that cannot be written (read-only folder, full
    disk, ...) to a temporary file beside it or in the system temp folder; in both cases
    the path is printed and the command exits with code 2."""
    from . import persistence

    try:
        persistence.save(pipe, output, overwrite=force)
        return output
    except FileExistsError:
        if not output.exists():
            raise
        saved = _save_elsewhere(pipe, output)
        raise CLIError(
            f"{str(output)!r} appeared during the fit (another run?) and was not overwritten; "
            f"the fitted model was saved as {str(saved)!r} instead."
        ) from None
    except TypeError as exc:
        if output.suffix.lower() != ".skops":
            raise
        reason = f"Cannot save this model as .skops ({exc})"
        fallback = output.with_suffix(".joblib")
    except OSError as exc:
        saved = _save_elsewhere(pipe, output)
        raise CLIError(
            f"Cannot write {str(output)!r} ({exc.strerror or exc}); the fitted model was "
            f"saved as {str(saved)!r} instead: move it where it belongs."
        ) from None
    if fallback.exists() and not force:
        saved = _save_elsewhere(pipe, fallback)
        raise CLIError(
            f"{reason}; {str(fallback)!r} already exists, so the model was saved as "
            f"{str(saved)!r} instead (use -o NAME.joblib for such models)" + _PICKLE_HINT
        ) from None
    try:
        persistence.save(pipe, fallback, overwrite=force)
    except OSError as exc:
        saved = _save_elsewhere(pipe, fallback)
        raise CLIError(
            f"{reason}, and {str(fallback)!r} cannot be written ({exc.strerror or exc}); the "
            f"model was saved as {str(saved)!r} instead" + _PICKLE_HINT
        ) from None
    raise CLIError(
        f"{reason}; saved it as {str(fallback)!r} instead (use -o NAME.joblib for such "
        "models)" + _PICKLE_HINT
    ) from None

#: A .joblib model is pickle: loading it back runs whatever code it names.
_PICKLE_HINT = (": a .joblib file is pickle, so score, evaluate and info load it only with "
                "--allow-pickle (use it only for files you trust).")


def _save_elsewhere(pipe, target):
    """Save to a new temporary file beside ``target``, else in the system temp folder."""
    from . import persistence

    errors = []
    for folder in (target.parent, Path(tempfile.gettempdir())):
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{target.stem}-unsaved-",
                                       suffix=target.suffix)
            os.close(fd)
            persistence.save(pipe, tmp, overwrite=True)
            return Path(tmp)
        except OSError as exc:
            errors.append(f"{str(folder)!r}: {exc.strerror or exc}")
            if tmp is not None and os.path.exists(tmp):
                with contextlib.suppress(OSError):
                    os.remove(tmp)
    raise CLIError("The fitted model could not be saved anywhere (" + "; ".join(errors)
                   + "); free some disk space and refit.")


# ---------------------------------------------------------------------------- score

_SCORE_EPILOG = """\
**Examples**

```
skcpcae score model.skops incoming/ -o results/
skcpcae score model.skops a.png b.png -o results/ --heatmaps
skcpcae score model.skops incoming/ -o strict/ --alpha 0.01
```

Writes `results/scores.csv` with the columns path, anomaly_score (higher = more anomalous),
decision (ok / defect), threshold and error (why an image could not be read; its other cells
are then empty); for a model ending in the KDE threshold (every preset) also
normalized_score (0 = a typical good part, 1 = the threshold, above 1 = defect, the same
scale for every preset) and normality_pvalue (the share of good parts expected to score at
least as high). `--alpha A` (the expected false-alarm rate on good parts) or `--threshold T`
(on the anomaly score) move the operating point for this run without refitting: the
threshold is read off the KDE stored in the model, and the model file is not changed. With `--heatmaps` also `results/heatmaps/<name>.png`: the anomaly map over
the image (over the aligned image when the model registers parts). Images are read, scored
and written one batch at a time (memory does not grow with the number of images): the rows
and heatmaps of every finished batch are on disk, and after an interruption `--resume`
scores only the images still missing. Heatmap colours run from 0 to `--vmax` (one scale
for every image: set it to compare images), by default to each image's own largest map
value. Each heatmap is a figure a person can read alone: the image, the map with a colour bar
in the model's units, the file name, score, threshold and decision. `--locations` (implied by
`--heatmaps`, `--save-maps`, `--save-masks`) adds the columns map_max, map_max_row,
map_max_col, map_threshold, defect_area, defect_fraction, n_regions and boxes (JSON
`[[row, col, height, width], ...]`) and writes `locations.jsonl`, one line per image with the
regions in full; `--save-maps npy|tiff` and `--save-masks` write `maps/<name>.npy|tiff` and
`maps/<name>_mask.png`. Pixels are defective above `--map-threshold` (map units; default: the
model's threshold when its score averages its map, as for the best preset). Images are
resized to the size the model was fitted on; files over `--max-pixels`
(default 100 megapixels) are refused from their header. The output folder is claimed for
the run: a second run into it is refused (exit 2).
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
        float, typer.Option("--vmax", help="Map value shown as the hottest colour, the same "
                            "for every image of the run (default: each image's own range).")
    ] = None,
    locations: Annotated[
        bool, typer.Option("--locations", help="Compute the anomaly maps (also without "
                           "--heatmaps) and write where the defect is: location columns in "
                           "the scores file and one JSON line per image in locations.jsonl.")
    ] = False,
    map_threshold: Annotated[
        float, typer.Option("--map-threshold", metavar="T",
                            help="Map value above which a pixel is defective, in the map's "
                            "units (default: the model's threshold when its score is an "
                            "average of its map, as for the best preset; else none).")
    ] = None,
    save_maps: Annotated[
        str, typer.Option("--save-maps", metavar="npy|tiff",
                          help="Also save each raw anomaly map (float32) in maps/.")
    ] = None,
    save_masks: Annotated[
        bool, typer.Option("--save-masks", help="Also save each binary defect mask (map above "
                           "the map threshold) as maps/<name>_mask.png.")
    ] = False,
    alpha: Annotated[
        float, typer.Option("--alpha", metavar="A",
                            help="Move the operating point without refitting: the expected "
                            "false-alarm rate on good parts, in (0, 1), read off the "
                            "model's stored KDE (default: the model's own).")
    ] = None,
    threshold: Annotated[
        float, typer.Option("--threshold", metavar="T",
                            help="A fixed threshold on the anomaly score instead of the "
                            "model's (not with --alpha); the model file is not changed.")
    ] = None,
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Images read and scored at a time.")
    ] = 32,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also read sub-folders.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite existing result files.")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run into the same -o: "
                           "score only the images not in its scores file yet.")
    ] = False,
    on_error: Annotated[
        str, typer.Option("--on-error", metavar="skip|fail",
                          help="An unreadable image: 'skip' writes a row with its error and "
                          "goes on; 'fail' stops the run (rows written so far are kept).")
    ] = "skip",
    output_format: Annotated[
        str, typer.Option("--format", metavar="csv|parquet",
                          help="scores.csv, or scores.parquet (a folder of one Parquet file "
                          "per batch; needs pyarrow).")
    ] = "csv",
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", min=1, metavar="N",
                          help="Largest image accepted, in pixels (height x width), checked "
                          "from the file header before decoding.")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
    memory_limit: Annotated[
        str, typer.Option("--memory-limit", metavar="SIZE",
                          help="Memory the run may use, e.g. 8G (default: what the system "
                          "has available); the run is refused before loading images when "
                          "the estimate exceeds it. 'off' skips the check.")
    ] = None,
    debug: DebugOption = False,
):
    """Score images with a fitted model: a CSV of anomaly scores and ok/defect decisions."""
    if Path(model).suffix.lower() == ".onnx":  # exported model: the light runtime, no torch
        with _errors(debug):
            from .runtime._cli import score_onnx

            score_onnx(model, inputs, output, batch_size=batch_size, recursive=recursive,
                       force=force, quiet=quiet, error=CLIError)
        return
    with _errors(debug):
        _check_number("--sigma", sigma, low=0, high=MAX_SIGMA)
        _check_number("--vmax", vmax, low=0, low_open=True)
        limit = _parse_memory_limit(memory_limit)
        if on_error not in ("skip", "fail"):
            raise CLIError(f"--on-error must be skip or fail; got {on_error!r}.")
        if output_format not in ("csv", "parquet"):
            raise CLIError(f"--format must be csv or parquet; got {output_format!r}.")
        if resume and force:
            raise CLIError("Give --resume (continue a run) or --force (start afresh), not both.")
        paths = _expand_inputs(inputs, recursive=recursive, role="input")
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise CLIError(f"Output {str(out_dir)!r} exists and is not a folder.")
        csv_path = out_dir / f"scores.{output_format}"
        if csv_path.exists() and not (force or resume):
            raise CLIError(
                f"{str(csv_path)!r} already exists; use --resume to continue the run that "
                "wrote it, or --force to overwrite it."
            )
        _check_number("--alpha", alpha, low=0, high=1, low_open=True)
        _check_number("--threshold", threshold)
        if alpha is not None and threshold is not None:
            raise CLIError("Give --alpha or --threshold, not both: a threshold overrides alpha.")
        pipe = _load_model(model, trust, allow_pickle)
        if alpha is not None or threshold is not None:
            _move_operating_point(pipe, alpha, threshold)
        source = None
        names = []
        if save_maps is not None and save_maps not in ("npy", "tiff"):
            raise CLIError(f"--save-maps must be npy or tiff; got {save_maps!r}.")
        _check_number("--map-threshold", map_threshold)
        want_maps = heatmaps or locations or save_maps is not None or save_masks
        if want_maps:
            from .inspection import map_source

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
        if vmax is not None and not vmax > 0:
            raise CLIError(f"--vmax must be positive; got {vmax}.")
        _prepare_dir(out_dir)
        size_hw, color = _fitted_layout(pipe)
        if size_hw is not None:
            _check_score_memory(pipe, batch_size, size_hw + ((3,) if color == "rgb" else ()),
                                limit)
        _set_verbose(pipe, 0)
        from ._scoring import score_files
        from .datasets import MAX_PIXELS
        from .utils._files import OutputInUseError, is_disk_full

        heat_dir = out_dir / "heatmaps" if heatmaps else None
        score_batch = None  # score_files' own: no maps
        if want_maps:
            score_batch = _heatmap_score_batch(
                source, dict(zip(paths, names, strict=False)), heat_dir, sigma=sigma,
                vmax=vmax, out_dir=out_dir, map_threshold=map_threshold, save_maps=save_maps,
                save_masks=save_masks)
        try:
            summary = score_files(
                pipe, paths, csv_path, batch_size=batch_size, resume=resume,
                overwrite=force, on_error=on_error, verbose=0 if quiet else 1,
                max_pixels=MAX_PIXELS if max_pixels is None else max_pixels,
                score_batch=score_batch,
            )
        except OutputInUseError as exc:
            raise CLIError(str(exc)) from None
        except (FileExistsError, ImportError) as exc:
            raise CLIError(str(exc)) from None
        except KeyboardInterrupt:
            typer.echo(f"The rows of the finished batches are kept in {str(csv_path)!r}; "
                       "rerun with --resume to score the rest.", err=True)
            raise
        except ValueError as exc:  # --on-error fail
            raise CLIError(f"{exc} (rows of the finished batches are kept in "
                           f"{str(csv_path)!r}; rerun with --resume)") from None
        except OSError as exc:
            if is_disk_full(exc):
                raise CLIError(
                    f"The disk is full ({exc.strerror or exc}) while writing in "
                    f"{str(out_dir)!r}; the rows of the finished batches are kept: free some "
                    "space and rerun with --resume."
                ) from None
            raise CLIError(f"Cannot write the results in {str(out_dir)!r}: "
                           f"{exc.strerror or exc}.") from None
        moved = (f", --alpha {alpha:g}" if alpha is not None else
                 f", --threshold {threshold:g}" if threshold is not None else "")
        threshold = summary.threshold
        if summary.n_scored == 0 and summary.n_errors:
            raise CLIError(
                f"None of the {summary.n_errors} image(s) could be scored; the errors are in "
                f"{str(csv_path)!r}."
            )
        done = summary.n_scored + summary.n_errors
        _echo(f"Scored {summary.n_scored} image(s): {summary.n_defect} defect, "
              f"{summary.n_scored - summary.n_defect} ok"
              + (f" (threshold {threshold:.6g}{moved})" if threshold is not None else "")
              + (f"; {summary.n_errors} could not be read (see the error column)"
                 if summary.n_errors else "")
              + (f"; {summary.n_skipped} already in the output (--resume)"
                 if summary.n_skipped else "")
              + f". Wrote {str(csv_path)!r}"
              + (f" and {done - summary.n_errors} heatmap(s) in {str(heat_dir)!r}"
                 if heatmaps else "") + ".", quiet)


def _move_operating_point(pipe, alpha, threshold):
    """``--alpha`` / ``--threshold``: :func:`skcpcae.outlier.set_operating_point` on the
    loaded model (its stored KDE; nothing is refitted, the file is not changed)."""
    from .outlier import set_operating_point

    try:
        set_operating_point(pipe, alpha=alpha, threshold=threshold)
    except TypeError:
        raise CLIError(
            "--alpha and --threshold need a model whose last step is a "
            "KDEThresholdClassifier (every preset fitted by `skcpcae fit`); this model ends "
            f"in {type(_steps(pipe)[-1][1]).__name__}."
        ) from None
    except ValueError as exc:
        raise CLIError(f"--alpha / --threshold: {exc}") from None


def _heatmap_score_batch(source, names, heat_dir, *, sigma, vmax, out_dir=None,
                         map_threshold=None, save_maps=None, save_masks=False):
    """The batch scorer of ``skcpcae score`` with anomaly maps (``skcpcae.inspect_images``):
    scores, decisions, threshold, the location columns of ``skcpcae.location_summary``, one
    line per image in ``out_dir/locations.jsonl`` and, as asked, one heatmap figure per image
    in ``heat_dir``, the raw map and the defect mask in ``out_dir/maps``, each written as soon
    as its batch is scored.

    Colours: ``vmax`` when given (one scale for every image), else each image's own range.
    The map threshold: ``map_threshold`` when given, else the model's ``map_threshold`` (known
    when its score averages its map), else none (no area, regions or mask).
    """
    from ._scoring import readable_columns
    from .inspection import final_estimator, inspect_images, location_summary

    state = {"warned": False}

    def score_batch(model, X, paths):
        res = inspect_images(model, X, sigma="auto" if sigma is None else sigma)
        threshold = res.threshold
        pred = res.prediction
        m_threshold = map_threshold if map_threshold is not None else res.map_threshold
        if m_threshold is None and save_masks and not state["warned"]:
            warnings.warn("no map threshold is known for this model's maps: give "
                          "--map-threshold for defect areas, regions and masks.", UserWarning,
                          stacklevel=2)
            state["warned"] = True
        columns = {
            "anomaly_score": [float(v) for v in res.anomaly_score],
            "decision": (["defect" if p == -1 else "ok" for p in pred] if pred is not None
                         else [""] * len(paths)),
            "threshold": [threshold] * len(paths),
            **readable_columns(final_estimator(model), res.anomaly_score),
        }
        rows = [location_summary(m, m_threshold) for m in res.anomaly_maps]
        for key in ("map_max", "map_max_row", "map_max_col", "map_threshold", "defect_area",
                    "defect_fraction", "n_regions"):
            columns[key] = [r.get(key) for r in rows]
        columns["boxes"] = [
            None if "regions" not in r else json.dumps(
                [[g["row"], g["col"], g["height"], g["width"]] for g in r["regions"]])
            for r in rows
        ]
        stems = [names[p][:-4] for p in paths]
        if heat_dir is not None:
            heat_dir.mkdir(exist_ok=True)
            columns["heatmap"] = []
            for i, path in enumerate(paths):
                data = _heatmap_png(res.images[i], res.anomaly_maps[i], name=Path(path).name,
                                    score=float(res.anomaly_score[i]), threshold=threshold,
                                    decision=columns["decision"][i] or None,
                                    map_threshold=m_threshold, vmax=vmax, units=res.map_source)
                _write_atomic(heat_dir / names[path], data)
                columns["heatmap"].append(str(Path("heatmaps") / names[path]))
        if save_maps or (save_masks and m_threshold is not None):
            map_dir = out_dir / "maps"
            map_dir.mkdir(exist_ok=True)
        if save_maps:
            columns["map"] = []
            for stem, amap in zip(stems, res.anomaly_maps, strict=True):
                _write_atomic(map_dir / f"{stem}.{save_maps}", _map_bytes(amap, save_maps))
                columns["map"].append(str(Path("maps") / f"{stem}.{save_maps}"))
        if save_masks:
            columns["mask"] = []
            for stem, amap in zip(stems, res.anomaly_maps, strict=True):
                if m_threshold is None:
                    columns["mask"].append(None)
                    continue
                from .datasets import save_image
                from .inspection import defect_mask

                save_image(map_dir / f"{stem}_mask.png", defect_mask(amap, m_threshold))
                columns["mask"].append(str(Path("maps") / f"{stem}_mask.png"))
        if out_dir is not None:
            lines = []
            for i, (path, r) in enumerate(zip(paths, rows, strict=True)):
                lines.append(json.dumps({
                    "path": str(path), "anomaly_score": columns["anomaly_score"][i],
                    "decision": columns["decision"][i], "threshold": threshold,
                    "map_source": res.map_source, **r}))
            with open(out_dir / "locations.jsonl", "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        return columns

    return score_batch


def _heatmap_png(image, amap, *, name, score, threshold, decision, map_threshold, vmax, units):
    """PNG bytes of :func:`skcpcae.plotting.plot_inspection` (no pyplot); without matplotlib,
    the plain overlay of :func:`skcpcae.plotting.overlay_heatmap`."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        from .datasets import save_image
        from .plotting import overlay_heatmap

        rgb = overlay_heatmap(image, amap, alpha=0.5, vmin=0.0,
                              vmax=vmax if vmax is not None else (float(np.max(amap)) or 1.0))
        with tempfile.TemporaryDirectory() as tmp:
            path = save_image(Path(tmp) / "h.png", rgb)
            return Path(path).read_bytes()
    from .plotting import plot_inspection

    fig = Figure(figsize=(9, 4.2), layout="constrained")
    axes = plot_inspection(image, amap, name=name, score=score, threshold=threshold,
                           decision=decision, map_threshold=map_threshold,
                           vmin=None if vmax is None else 0.0, vmax=vmax,
                           units=units or "anomaly map", axes=fig.subplots(1, 2))
    title = fig.texts[0].get_text() if fig.texts else str(name)
    lo, hi = axes[1].images[-1].get_clim()
    buf = io.BytesIO()  # what the figure says, also as PNG text (searchable, testable)
    fig.savefig(buf, format="png", dpi=100,
                metadata={"Title": title, "Description": f"colour bar: {units}, from "
                          f"{lo:.6g} to {hi:.6g}"})
    return buf.getvalue()


def _map_bytes(amap, fmt):
    amap = np.asarray(amap, dtype=np.float32)
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, amap)
        return buf.getvalue()
    import cv2

    ok, data = cv2.imencode(".tiff", amap)
    if not ok:  # pragma: no cover
        raise OSError("OpenCV could not encode the map as TIFF.")
    return data.tobytes()


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
    masks: Annotated[
        Path, typer.Option("--masks", metavar="DIR",
                           help="Folder of defect masks for --defect images (<name>_mask.png "
                           "or <name>.png, nonzero = defect): adds pixel AUROC and AUPRO.")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Report folder.")] = Path(
        "report"
    ),
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite existing report files.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars.")
    ] = False,
    debug: DebugOption = False,
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
        if masks is not None and not use_folders:
            raise CLIError("--masks goes with --good/--defect folders (the MVTec AD layout "
                           "has its masks in ground_truth/).")
        if masks is not None and not Path(masks).is_dir():
            raise CLIError(f"No such masks folder: {str(masks)!r}.")
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
            masks_test = None
            if masks is not None:
                masks_test = _read_masks(masks, good_paths, defect_paths,
                                         size_hw or _first_size(X))
                data["masks"] = str(masks)
        else:
            from .datasets import load_mvtec_ad

            try:
                bunch = load_mvtec_ad(mvtec, category, size=size_hw, color=color,
                                      verbose=verbose)
            except (OSError, ValueError) as exc:
                raise CLIError(f"Cannot read the MVTec AD data: {exc}") from None
            X = bunch.paths_test if reads_files else bunch.X_test
            y = bunch.y_test
            masks_test = bunch.masks_test
            data = {"mvtec": str(mvtec), "category": category}
        _set_verbose(pipe, 0)
        from .inspection import final_estimator, inspect_images, map_source

        pixel = masks_test is not None
        if pixel and map_source(pipe, "model") is None:
            typer.echo("warning: the model makes no anomaly map; the pixel metrics use "
                       "occlusion maps (64 extra scorings per image: slow).", err=True)
        try:
            res = inspect_images(pipe, X, maps=pixel)
            report = evaluate_report(final_estimator(pipe), res.final_input, y)
            s = res.anomaly_score
        except ValueError as exc:
            raise CLIError(f"Cannot evaluate on these images: {exc}") from None
        threshold = res.threshold
        report = {"model": str(model), "data": data, "threshold": threshold, **report}
        if pixel:
            from .metrics import aupro, pixel_auroc

            if res.anomaly_maps.shape != masks_test.shape:
                raise CLIError(f"The anomaly maps are {res.anomaly_maps.shape[1:]} but the "
                               f"masks {masks_test.shape[1:]} (height x width).")
            if not masks_test.any():
                raise CLIError("The masks mark no defect pixel: pixel metrics need some.")
            report.update(pixel_auroc=pixel_auroc(masks_test, res.anomaly_maps),
                          aupro=aupro(masks_test, res.anomaly_maps, max_fpr=0.3),
                          aupro_max_fpr=0.3, map_source=res.map_source)

        typer.echo(f"{report['n_samples']} images ({report['n_anomalous']} defective)")
        typer.echo(f"AUROC              {report['auroc']:.4f}")
        typer.echo(f"average precision  {report['average_precision']:.4f}")
        if "aupro" in report:
            typer.echo(f"pixel AUROC        {report['pixel_auroc']:.4f}")
            typer.echo(f"AUPRO (FPR <= 0.3) {report['aupro']:.4f}")
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
            written += _save_curves(y, s, files["roc"], files["pr"], threshold=threshold)
        except ImportError as exc:
            typer.echo(f"warning: no plots: {exc}", err=True)
        typer.echo("Wrote " + ", ".join(repr(str(p)) for p in written) + ".")


def _first_size(X):
    return tuple(np.shape(X)[1:3])


def _read_masks(folder, good_paths, defect_paths, size_hw):
    """Masks of the evaluated images: all False for good ones, read from ``folder`` for
    defective ones (``<stem>_mask.<ext>`` or ``<stem>.<ext>``, nonzero = defect)."""
    from .datasets import list_images, load_images

    found = {}
    for p in list_images(folder):
        stem = Path(p).stem
        found.setdefault(stem[:-5] if stem.endswith("_mask") else stem, p)
    h, w = size_hw
    out = np.zeros((len(good_paths) + len(defect_paths), h, w), bool)
    missing = [p for p in defect_paths if Path(p).stem not in found]
    if missing:
        raise CLIError(f"No mask in {str(folder)!r} for {len(missing)} defect image(s), e.g. "
                       f"{missing[0]!r} (expected {Path(missing[0]).stem}_mask.png).")
    for i, p in enumerate(defect_paths):
        try:
            m = load_images([found[Path(p).stem]], color="gray")[0] > 0
        except (OSError, ValueError) as exc:
            raise CLIError(f"Cannot read the mask of {p!r}: {exc}") from None
        if m.shape != (h, w):  # resized as its image was, without blurring the edge
            import cv2

            m = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        out[len(good_paths) + i] = m
    return out


def _save_curves(y, s, roc_path, pr_path, threshold=None):
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
    plot_roc_pr(y, s, ax=(fig_roc.subplots(), fig_pr.subplots()), threshold=threshold)
    for fig, path in ((fig_roc, roc_path), (fig_pr, pr_path)):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        _write_atomic(path, buf.getvalue())
    return [roc_path, pr_path]


# ---------------------------------------------------------------------------- info

def _read_config(path):
    """``skcpcae fit --config FILE`` → :func:`skcpcae._fit_record.read_fit_config`, or None."""
    if path is None:
        return None
    from ._fit_record import read_fit_config

    try:
        return read_fit_config(path)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


_INFO_EPILOG = """\
**Examples**

```
skcpcae info model.skops
skcpcae info model.skops --json
```

Prints the pipeline's steps, its threshold and the record `skcpcae fit` stored in the model:
preset, `--set` / config-file overrides, the configuration file (name, SHA-256; the full
text with `--json`), the training images (number, size, the files' own sizes, folders), the
library versions and the date of the fit.
"""


@app.command(epilog=_INFO_EPILOG)
def info(
    model: Annotated[Path, typer.Argument(help="Model file written by `skcpcae fit`.",
                                          metavar="MODEL", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the description as one JSON object.")
    ] = False,
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    debug: DebugOption = False,
):
    """Show what a model file holds: pipeline, threshold, training data, versions."""
    with _errors(debug):
        from ._fit_record import describe_model, format_model_description

        pipe = _load_model(model, trusted=trust, allow_pickle=allow_pickle)
        from .inspection import decision_threshold

        desc = describe_model(pipe, path=model, threshold=decision_threshold(pipe))
        if as_json:
            typer.echo(json.dumps(desc, indent=2, default=str))
        else:
            for line in format_model_description(desc):
                typer.echo(line)


@app.command("export")
def export_model(
    model: Annotated[Path, typer.Argument(help="Model file written by `skcpcae fit`.",
                                          metavar="MODEL", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE.onnx",
                                         help="The ONNX file to write.")] = Path("model.onnx"),
    sample: Annotated[Path, typer.Option("--sample", metavar="DIR",
                                         help="Folder (or image) of images for the parity "
                                         "check, e.g. some training images.")] = None,
    rtol: Annotated[float, typer.Option("--rtol", help="Largest accepted relative score "
                                        "difference.")] = 1e-4,
    input_dtype: Annotated[str, typer.Option("--input-dtype", metavar="float32|uint8",
                                             help="Input of the graph.")] = "float32",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset.")] = 17,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite the output.")] = False,
    trust: TrustOption = None,
    allow_pickle: AllowPickleOption = False,
    debug: DebugOption = False,
):
    """Export a fitted model to ONNX, checked to score the --sample images as the model does
    (exit 2 without writing when it does not)."""
    with _errors(debug):
        _check_new_file(output, force)
        if sample is None:
            raise CLIError("--sample DIR is required: the export is checked on those images.")
        pipe = _load_model(model, trust, allow_pickle)
        from .export._cli import export_pipeline

        export_pipeline(pipe, output, _expand_inputs([sample], role="sample"), rtol=rtol,
                        input_dtype=input_dtype, opset=opset, error=CLIError,
                        layout=_fitted_layout(pipe))


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
