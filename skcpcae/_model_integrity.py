# SPDX-License-Identifier: BSD-3-Clause
"""Integrity of a model file, checked by :mod:`skcpcae.persistence` before anything in it is
built: what kind of file it is (from its first bytes), the SHA-256 recorded at save time,
and the bounds of its zip members and ``.npy`` headers."""

import hashlib


class ModelIntegrityError(ValueError):
    """A model file is damaged or was edited: its checksum, a size or a shape is wrong.

    Nothing was built from the file.
    """

    __module__ = "skcpcae.persistence"  # public there (re-exported), as before


_DIGEST_TAG = b"skcpcae-sha256="
# a joblib file's last line: b"\nskcpcae-sha256=<64 hex digits>\n"
_TRAILER_LEN = 1 + len(_DIGEST_TAG) + 64 + 1
_CHUNK = 1 << 20
# first bytes of the files joblib writes compressed (zlib, gzip, bz2, lzma, xz, lz4)
_COMPRESSED_MAGIC = (b"\x78", b"\x1f\x8b", b"BZh", b"\x5d\x00\x00", b"\xfd7zXZ",
                     b"\x04\x22\x4d\x18", b"ZF")



def _sha256_stream(fh, n_bytes):
    """SHA-256 of the next ``n_bytes`` of ``fh``, read in chunks."""
    digest = hashlib.sha256()
    left = n_bytes
    while left > 0:
        chunk = fh.read(min(_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest(), n_bytes - left


def _zip_digest(zf):
    """SHA-256 over a zip archive's members (name, size, content), in name order.

    Reads each member in chunks and refuses one that holds more bytes than its header
    declares; returns the hex digest.
    """
    digest = hashlib.sha256()
    for info in sorted(zf.infolist(), key=lambda i: i.filename):
        name = info.filename.encode("utf-8")
        digest.update(len(name).to_bytes(8, "little") + name)
        digest.update(info.file_size.to_bytes(8, "little"))
        read = 0
        with zf.open(info) as member:
            while True:
                chunk = member.read(_CHUNK)
                if not chunk:
                    break
                read += len(chunk)
                if read > info.file_size:
                    raise ModelIntegrityError(
                        f"member {info.filename!r} holds more bytes than its header declares"
                    )
                digest.update(chunk)
        if read != info.file_size:
            raise ModelIntegrityError(
                f"member {info.filename!r} holds {read} bytes, its header declares "
                f"{info.file_size}"
            )
    return digest.hexdigest()


def _sniff(path):
    """The kind of a file from its first bytes: "zip", "pickle", "compressed" or None."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"  # protocol 2-5: what joblib.dump writes
    if any(head.startswith(magic) for magic in _COMPRESSED_MAGIC):
        return "compressed"
    return None


def _describe(kind):
    return {"pickle": "a pickle (joblib) file",
            "compressed": "a compressed joblib file (a pickle)",
            "zip": "a zip archive that is not a skops file"}.get(kind, "not a model file")


def _check_npy_header(zf, info):
    """The shape and dtype a ``.npy`` member declares must match the bytes it holds."""
    from numpy.lib import format as npy

    with zf.open(info) as member:
        try:
            version = npy.read_magic(member)
            read_header = (npy.read_array_header_1_0 if version == (1, 0)
                           else npy.read_array_header_2_0)
            shape, _, dtype = read_header(member, max_header_size=10000)
        except Exception as exc:  # a header numpy cannot parse
            raise ModelIntegrityError(
                f"member {info.filename!r} is not a valid .npy array ({exc})"
            ) from None
        offset = member.tell()
    if dtype.hasobject:
        raise ModelIntegrityError(f"member {info.filename!r} is an object array (pickled)")
    n_values = 1
    for dim in shape:
        n_values *= int(dim)
    if n_values * dtype.itemsize != info.file_size - offset:
        raise ModelIntegrityError(
            f"member {info.filename!r} declares an array of shape {shape} ({dtype}, "
            f"{n_values * dtype.itemsize} bytes) but holds {info.file_size - offset} bytes"
        )


def _check_digest(path, recorded, digest):
    if not recorded.startswith(_DIGEST_TAG):
        raise ModelIntegrityError(
            f"{path} records no checksum: it was not written by this version of "
            "skcpcae.persistence.save (or the record was removed); nothing was loaded. "
            "Re-save the model with skcpcae.persistence.save."
        )
    if recorded[len(_DIGEST_TAG):].decode("ascii", "replace") != digest:
        raise ModelIntegrityError(
            f"{path} is damaged or was modified: the SHA-256 of its content does not match "
            "the one recorded when it was saved; nothing was loaded. Use an intact copy or "
            "refit the model."
        )

