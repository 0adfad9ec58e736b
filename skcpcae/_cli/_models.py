# SPDX-License-Identifier: BSD-3-Clause
"""Model files of the command line: load (trusted types, pickle refusal), claim, save without
ever losing a finished fit, and move a loaded model's operating point."""

import contextlib
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

from .._steps import named_steps
from ._errors import CLIError


def _load_model(path, trusted=None, allow_pickle=False):
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"No such model file: {str(path)!r}.")
    from .. import persistence

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
    final = named_steps(model)[-1][1]
    if not (hasattr(final, "score_samples") or hasattr(final, "decision_function")):
        raise CLIError(
            f"{str(path)!r} does not hold an anomaly detector (its last step, "
            f"{type(final).__name__}, has neither score_samples nor decision_function)."
        )
    return model


@contextmanager
def _claim_model_file(output):
    """Claim the model file for the run (a lock beside it); in a folder that cannot be
    written, the lock lives in the system temp folder and the model will be saved elsewhere."""
    import hashlib

    from ..utils._files import OutputInUseError, claim_output

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
    from .. import persistence

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
    from .. import persistence

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


def _move_operating_point(pipe, alpha, threshold):
    """``--alpha`` / ``--threshold``: :func:`skcpcae.outlier.set_operating_point` on the
    loaded model (its stored KDE; nothing is refitted, the file is not changed)."""
    from ..outlier import set_operating_point

    try:
        set_operating_point(pipe, alpha=alpha, threshold=threshold)
    except TypeError:
        raise CLIError(
            "--alpha and --threshold need a model whose last step is a "
            "KDEThresholdClassifier (every preset fitted by `skcpcae fit`); this model ends "
            f"in {type(named_steps(pipe)[-1][1]).__name__}."
        ) from None
    except ValueError as exc:
        raise CLIError(f"--alpha / --threshold: {exc}") from None
