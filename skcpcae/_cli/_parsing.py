# SPDX-License-Identifier: BSD-3-Clause
"""Parsing of option values the command line checks itself: ``--size``, numbers, ``--set``,
``--memory-limit``, ``--config``."""

import ast

from ._errors import CLIError

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


def _parse_memory_limit(text):
    if text is None:
        return None
    from .._memory import parse_memory

    try:
        return parse_memory(text)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


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


def _read_config(path):
    """``skcpcae fit --config FILE`` → :func:`skcpcae._fit_record.read_fit_config`, or None."""
    if path is None:
        return None
    from .._fit_record import read_fit_config

    try:
        return read_fit_config(path)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
