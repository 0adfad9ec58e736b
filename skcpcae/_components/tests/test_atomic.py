import os
import stat

import pytest

from skcpcae._components.atomic import write_atomic


def _leftovers(folder):
    return [p for p in os.listdir(folder) if p.endswith(".tmp")]


def test_write_atomic_text_bytes_and_callable(tmp_path):
    p = tmp_path / "a.txt"
    write_atomic(p, "é\r\n")
    assert p.read_bytes() == "é\r\n".encode()
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    write_atomic(p, lambda fh: fh.write(b"cb"), fsync=False)
    assert p.read_bytes() == b"cb"
    assert not _leftovers(tmp_path)


def test_write_atomic_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "m", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m").st_mode) == 0o640


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "keep.txt"
    p.write_text("old")

    def boom(fh):
        fh.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(p, boom)
    assert p.read_text() == "old" and not _leftovers(tmp_path)
    with pytest.raises(TypeError, match="str, bytes or a callable"):
        write_atomic(p, 3)
    assert p.read_text() == "old" and not _leftovers(tmp_path)


def test_no_overwrite_refuses_an_existing_file(tmp_path):
    p = tmp_path / "x"
    write_atomic(p, b"1", overwrite=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_atomic(p, b"2", overwrite=False)
    assert p.read_bytes() == b"1" and not _leftovers(tmp_path)
