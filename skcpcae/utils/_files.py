# SPDX-License-Identifier: BSD-3-Clause
"""Output files that survive concurrent runs, full disks and interruptions.

* :func:`claim_output` claims a folder (or one file) for the whole run: an exclusive
  create of a lock file, held with ``flock`` where the system has it, so that a second run
  on the same output is refused at once, and a lock left by a killed run (``kill -9``, a
  power cut) is taken over instead of blocking every later run;
* :func:`append_atomic` appends one block of bytes to a file in one ``write`` and undoes a
  partial append (a full disk) by truncating the file back, so that the file holds whole
  blocks only;
* :func:`is_disk_full` recognises the errors of a full disk or an exhausted quota.
"""

import contextlib
import datetime
import errno
import os
import socket

try:  # POSIX; on Windows the lock is the exclusive create alone
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ["OutputInUseError", "append_atomic", "claim_output", "is_disk_full"]

#: Name of the lock file that claims an output folder.
LOCK_NAME = ".skcpcae.lock"


class OutputInUseError(RuntimeError):
    """Another run holds the output folder (or file) this run wants to write."""


def is_disk_full(exc):
    """Whether ``exc`` is a full disk (``ENOSPC``) or an exhausted quota (``EDQUOT``)."""
    codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    return isinstance(exc, OSError) and exc.errno in codes


def _lock_path(target):
    target = os.fspath(target)
    if os.path.isdir(target):
        return os.path.join(target, LOCK_NAME)
    folder, name = os.path.split(os.path.abspath(target))
    return os.path.join(folder, f".{name}.lock")


def _holder(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " ".join(fh.read().split()) or "unknown"
    except OSError:
        return "unknown"


def _busy(target, lock):
    return OutputInUseError(
        f"{os.fspath(target)!r} is in use by another skcpcae run ({_holder(lock)}); wait "
        "for it to finish or choose another output. (Should no run be active, delete "
        f"{lock!r}.)"
    )


@contextlib.contextmanager
def claim_output(target):
    """Claim the folder (or file) ``target`` for the duration of the ``with`` block.

    The lock file (``target/.skcpcae.lock`` for a folder, ``.NAME.lock`` beside a file) is
    created exclusively and holds the process id, host and start time; it is removed when
    the block ends, on every exit path (exceptions and ``KeyboardInterrupt`` included).
    Writing the lock file is also the first write of a run: a folder that cannot be
    written fails here, before any work.

    Raises
    ------
    OutputInUseError
        When another run holds the claim.
    OSError
        When the lock file cannot be written (read-only folder, full disk).
    """
    lock = _lock_path(target)
    info = (f"pid {os.getpid()} on {socket.gethostname()}, since "
            f"{datetime.datetime.now().isoformat(timespec='seconds')}\n").encode()
    fd = None
    for _ in range(10):
        if fcntl is None:  # pragma: no cover - Windows: the exclusive create is the lock
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                raise _busy(target, lock) from None
            break
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _busy(target, lock) from None
        # the holder may have removed the file between our open and our lock: then we hold
        # a lock on a deleted file; start again on the current one
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        fd = None
    if fd is None:  # pragma: no cover - ten lost races in a row
        raise _busy(target, lock)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, info)
        os.fsync(fd)
    except BaseException:
        _release(fd, lock)
        raise
    try:
        yield lock
    finally:
        _release(fd, lock)


def _release(fd, lock):
    try:
        if os.path.samestat(os.fstat(fd), os.stat(lock)):
            os.unlink(lock)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_atomic(path, data):
    """Append ``data`` (bytes) to ``path`` entirely or not at all.

    The bytes go out in one ``write`` call on a file opened for appending, then ``fsync``;
    when the write fails (a full disk), the file is truncated back to its former size and
    the error is raised.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        complete = False
        try:
            view = memoryview(data)
            while view:
                written = _write(fd, view)
                view = view[written:]
            complete = True
            os.fsync(fd)
        except BaseException as exc:
            # A Ctrl-C or SIGTERM that lands in fsync, after the whole batch was written,
            # keeps it: readers already see it whole, and rolling it back would lose rows
            # that were scored. A failed write (or a failed fsync: the disk) is undone.
            if not complete or isinstance(exc, OSError):
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _write(fd, data):
    """``os.write`` (one place for tests to simulate a full disk)."""
    return os.write(fd, data)
