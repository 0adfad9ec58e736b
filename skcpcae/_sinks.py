# SPDX-License-Identifier: BSD-3-Clause
"""Where :func:`skcpcae._scoring.score_files` writes its rows: a CSV file or a Parquet folder.

Each sink appends a batch's rows whole or not at all, and reads back which paths a run
already scored (``resume``). Text cells are escaped so that a spreadsheet never reads them
as formulas.
"""

import csv
import io
import os
from pathlib import Path

import numpy as np

from ._components.atomic import write_atomic
from .utils._files import append_atomic

#: First characters that make a spreadsheet read a cell as a formula; such text cells are
#: written with a leading apostrophe (the apostrophe itself is doubled so the rule inverts).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _escape(text):
    """A text cell a spreadsheet shows as text (OWASP CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _unescape(text):
    return text[1:] if text.startswith("'") else text


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return _escape(str(value))


class _CsvSink:
    """A CSV file, appended one batch at a time; the header comes with the first batch."""

    def __init__(self, path):
        self.path = Path(path)
        self.columns = None

    def open(self, *, resume, overwrite):
        """Create (or reopen with ``resume``) the file; return the paths it holds."""
        path = self.path
        if path.is_dir():
            raise IsADirectoryError(f"{str(path)!r} is a folder; give a file name.")
        if path.exists() and resume:
            return self._read_done()
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already exists; resume the run that wrote it, or overwrite it."
            )
        _replace_with(path, b"")  # an empty file: proves the folder can be written
        return set()

    def _read_done(self):
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]  # a torn last line (a crash) is dropped
        if len(complete) != len(data):
            os.truncate(self.path, len(complete))
        if not complete:
            return set()
        reader = csv.reader(io.StringIO(complete.decode("utf-8")))
        header = next(reader)
        if "path" not in header:
            raise ValueError(f"Cannot resume {str(self.path)!r}: it has no 'path' column.")
        self.columns = header
        at = header.index("path")
        return {_unescape(row[at]) for row in reader if len(row) > at}

    def write(self, rows):
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if self.columns is None:
            self.columns = _columns(rows)
            writer.writerow(self.columns)
        else:
            extra = [c for c in _columns(rows) if c not in self.columns]
            if extra:
                raise ValueError(
                    f"Cannot append to {str(self.path)!r}: its columns are {self.columns}, "
                    f"the new rows also have {extra} (a run with other options wrote it)."
                )
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in self.columns])
        append_atomic(self.path, buf.getvalue().encode("utf-8"))


class _ParquetSink:
    """A folder of Parquet part files (a dataset), one written atomically per batch."""

    def __init__(self, path):
        self.path = Path(path)
        self.columns = None
        self.n_parts = 0

    def open(self, *, resume, overwrite):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                "Parquet output needs pyarrow: pip install 'skcpcae[parquet]' (or write a .csv)."
            ) from None
        path = self.path
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(
                f"{str(path)!r} exists and is not a folder (a Parquet output is a folder)."
            )
        parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
        if parts and resume:
            self.n_parts = len(parts)
            table = pq.read_table(parts[0])
            self.columns = table.column_names
            done = set()
            for part in parts:
                done.update(pq.read_table(part, columns=["path"]).column("path").to_pylist())
            return done
        if parts and not overwrite:
            raise FileExistsError(
                f"{str(path)!r} already holds results; resume the run that wrote it, or "
                "overwrite it."
            )
        for part in parts:
            part.unlink()
        path.mkdir(exist_ok=True)
        _replace_with(path / ".write-check", b"")
        (path / ".write-check").unlink()
        return set()

    def write(self, rows):
        if not rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.columns is None:
            self.columns = _columns(rows)
        table = pa.table({c: [_parquet_value(r.get(c)) for r in rows] for c in self.columns})
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf)
        _replace_with(self.path / f"part-{self.n_parts:06d}.parquet",
                      buf.getvalue().to_pybytes())
        self.n_parts += 1


def _parquet_value(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def _columns(rows):
    """``path``, the scorer's columns in order, ``error`` last."""
    names = list(dict.fromkeys(k for r in rows for k in r if k not in ("path", "error")))
    return ["path", *names, "error"]


def _replace_with(path, data):
    """Write ``data`` to ``path`` through a hidden temporary file and ``os.replace``."""
    write_atomic(path, data)
