# SPDX-License-Identifier: BSD-3-Clause
"""What the operating system allows: the file mode the user's umask gives, available memory.

Plain functions shared by the writers (persistence, the command line, ``save_image``) and
by the memory checks (model loading, the command line's estimate).
"""

import os

__all__ = ["available_memory", "default_file_mode"]


def _umask():
    """The process umask, read without changing it where the kernel reports it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable way, briefly process-wide
    os.umask(mask)
    return mask


def default_file_mode():
    """The permissions a plain ``open(path, "w")`` gives: ``0o666`` less the umask.

    :func:`tempfile.mkstemp` creates ``0o600`` files; writers that go through a temporary
    file ``chmod`` it to this before moving it into place, so outputs follow the user's
    umask like any other file they create.
    """
    return 0o666 & ~_umask()


def _read_int(path):
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory():
    """Bytes of memory this process can still use, or None when it cannot be told.

    The smaller of the kernel's ``MemAvailable`` (``/proc/meminfo``; psutil elsewhere) and
    the room left under a cgroup v2 memory limit (containers), if any.
    """
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        try:
            import psutil
        except ImportError:
            pass
        else:
            candidates.append(int(psutil.virtual_memory().available))
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        current = _read_int("/sys/fs/cgroup/memory.current") or 0
        candidates.append(max(0, limit - current))
    return min(candidates) if candidates else None

