# SPDX-License-Identifier: BSD-3-Clause
"""Writing a file atomically: a reader sees the old file or the new one, never a part.

The data go to a hidden temporary file in the target's folder, which is flushed, given the
permissions a plain ``open(path, "w")`` would give (the umask's, not ``mkstemp``'s ``0o600``)
and moved over the target with :func:`os.replace` (or hard-linked, refusing to clobber a file
that appeared meanwhile). On any error, ``KeyboardInterrupt`` included, the temporary file is
removed and the target is left as it was.
"""

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path, data, *, overwrite=True, fsync=True):
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The target file; its folder must exist.
    data : str, bytes or callable
        Text (written as UTF-8, newlines untranslated), bytes, or a function called with the
        temporary file opened ``"w+b"`` that writes into it.
    overwrite : bool, default=True
        Replace an existing ``path``. False: raise ``FileExistsError`` when ``path`` exists,
        also when it appears while writing.
    fsync : bool, default=True
        ``os.fsync`` the data before the move (durable across a power cut).

    Returns
    -------
    path : pathlib.Path
    """
    from ..utils._system import default_file_mode

    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as fh:
            if callable(data):
                data(fh)
            elif isinstance(data, str):
                fh.write(data.encode("utf-8"))
            elif isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
            else:
                raise TypeError(
                    f"data must be str, bytes or a callable, got {type(data).__name__}."
                )
            fh.flush()
            os.fchmod(fh.fileno(), default_file_mode())
            if fsync:
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _link_no_clobber(tmp, path):
    try:  # link fails if the target appeared meanwhile: no silent clobbering
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.") from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.") from None
        os.replace(tmp, path)
