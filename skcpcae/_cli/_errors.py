# SPDX-License-Identifier: BSD-3-Clause
"""Errors and signals of the command line: one-line messages, exit codes, Ctrl-C / SIGTERM."""

import warnings
from contextlib import contextmanager

import typer

#: ``skcpcae --debug``: tracebacks for every command (set by the root callback).
_STATE = {"debug": False}


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
    from ..utils._files import is_disk_full

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

