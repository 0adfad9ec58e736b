# SPDX-License-Identifier: BSD-3-Clause
"""One way to deprecate a name: a ``FutureWarning`` that says what replaces it and when it goes.

Deprecations last one release: a name deprecated in 0.N is removed in 0.(N+1). Parameters
follow scikit-learn's pattern (``sklearn.utils.deprecation``): the old parameter stays in
``__init__`` with the default ``"deprecated"`` so that ``get_params``, ``set_params`` and
``clone`` keep working, and ``fit`` warns when it was set and maps it onto the new one.
"""

import warnings

from .._version import __version__

__all__ = [
    "DEPRECATED",
    "init_default",
    "removal_version",
    "removed_attribute",
    "rename_in_state",
    "resolve_renamed",
    "warn_deprecated",
]

#: Default of a deprecated parameter: tells "left alone" from any value a user can give.
DEPRECATED = "deprecated"


def removal_version():
    """The release in which what is deprecated now is removed: ``0.(N+1)`` for ``0.N.x``."""
    major, minor = (int(part) for part in __version__.split(".")[:2])
    return f"{major}.{minor + 1}"


def warn_deprecated(old, new, *, stacklevel=3):
    """Emit the ``FutureWarning`` "``old`` is deprecated ...; use ``new``".

    Parameters
    ----------
    old : str
        What is deprecated, as the user wrote it (``"ECCRegistrar.last_warps_"``,
        ``"layers"``).
    new : str
        What to use instead.
    stacklevel : int, default=3
        Passed to :func:`warnings.warn`; the default points at the caller of the function
        that calls this one.
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in skcpcae {removal_version()}; use {new} "
        "instead.",
        FutureWarning,
        stacklevel=stacklevel,
    )


def resolve_renamed(estimator, old, new, *, default=None, stacklevel=4):
    """The value of a renamed parameter, warning when its old name was set.

    Parameters
    ----------
    estimator : estimator
        The estimator holding both parameters, as ``__init__`` stored them.
    old, new : str
        The deprecated parameter's name and the one that replaces it.
    default : object, default=None
        The new parameter's default: when both are set, the old one wins only while the new
        one is left at its default (so code written for the old name keeps its meaning).
    stacklevel : int, default=4
        Passed to :func:`warn_deprecated`; the default points at the caller of ``fit``.

    Returns
    -------
    value : object
        The value to use for ``new``.
    """
    old_value = getattr(estimator, old)
    new_value = getattr(estimator, new)
    if isinstance(old_value, str) and old_value == DEPRECATED:
        return new_value
    name = type(estimator).__name__
    if new_value is not default and not _same(new_value, default):
        raise ValueError(
            f"{name} got both {old}={old_value!r} (deprecated) and {new}={new_value!r}; "
            f"set {new} only."
        )
    warn_deprecated(f"{name}({old}=...)", f"{new}=...", stacklevel=stacklevel)
    return old_value


def _same(a, b):
    try:
        return bool(a == b)
    except Exception:  # arrays and other objects without a plain equality
        return False


def removed_attribute(name, replacement):
    """A property that raises ``AttributeError`` naming what replaces ``name``.

    For attributes that cannot survive a deprecation period (a record of the latest
    ``transform``, which a transform must no longer write): ``hasattr`` is False, and reading
    it says where the information went.
    """

    def getter(self):
        raise AttributeError(
            f"{type(self).__name__}.{name} is no longer set: transform does not write to "
            f"the estimator. Use {replacement}."
        )

    return property(getter, doc=f"Removed: use {replacement}.")


def init_default(estimator, name):
    """The default of parameter ``name`` in ``estimator``'s ``__init__`` signature."""
    import inspect

    return inspect.signature(type(estimator).__init__).parameters[name].default


def rename_in_state(state, old, new):
    """Map a renamed parameter in a pickled ``__dict__`` saved before the rename.

    A model file written before ``old`` was renamed ``new`` holds ``old`` with its value and
    no ``new``: the value moves to ``new`` and ``old`` gets the ``"deprecated"`` default, so
    the loaded estimator has the parameters of its class (``get_params``, ``clone``) and
    means what it meant, without a warning (the user did not write ``old``).
    """
    if new not in state and old in state:
        state = dict(state)
        state[new] = state[old]
        state[old] = DEPRECATED
    return state
