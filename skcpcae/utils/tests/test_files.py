"""append_atomic: a batch is appended whole or not at all, and an interrupt keeps a whole one."""

import os

import pytest

from skcpcae.utils import _files


def test_interrupt_during_fsync_keeps_the_whole_batch(tmp_path, monkeypatch):
    path = tmp_path / "scores.csv"
    _files.append_atomic(path, b"path,score\n")

    def interrupted(fd):
        raise KeyboardInterrupt  # SIGTERM is raised as one by the command line

    monkeypatch.setattr(_files.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _files.append_atomic(path, b"a.png,1\nb.png,2\n")
    assert path.read_bytes() == b"path,score\na.png,1\nb.png,2\n"


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_failed_write_or_disk_error_is_undone(tmp_path, monkeypatch, where):
    path = tmp_path / "scores.csv"
    _files.append_atomic(path, b"path,score\n")
    calls = []

    def failing_write(fd, data):
        if calls:
            raise KeyboardInterrupt  # interrupted half way through the batch
        calls.append(1)
        return os.write(fd, bytes(data[:5]))

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    if where == "write":
        monkeypatch.setattr(_files, "_write", failing_write)
        error = KeyboardInterrupt
    else:
        monkeypatch.setattr(_files.os, "fsync", failing_fsync)
        error = OSError
    with pytest.raises(error):
        _files.append_atomic(path, b"a.png,1\nb.png,2\n")
    assert path.read_bytes() == b"path,score\n"
