# SPDX-License-Identifier: BSD-3-Clause
"""Output files of the command line: refusing to overwrite, creating folders, atomic writes."""

from pathlib import Path

from .._components.atomic import write_atomic
from ._errors import CLIError


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


def _write_atomic(path, data):
    """Write ``data`` (str or bytes) to ``path`` through a temporary file and os.replace."""
    return write_atomic(path, data, fsync=False)
