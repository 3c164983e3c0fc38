"""A zip's end record, read before zipfile opens the archive.

zipfile reads the whole central directory into memory and builds an object
for every member (about 560 bytes each) before anything can be checked: a
hostile zip of millions of tiny members cost gigabytes before the first
check ran. The directory's size, as the end record claims it, is read here
from the last bytes of the file, the way zipfile finds it, so a caller can
refuse the archive first.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_END = struct.Struct("<4s4H2LH")  # signature, disks, counts, size, offset, comment length
_END_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")  # the zip64 end record's locator
_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")  # the zip64 end record
_END64_SIGNATURE = b"PK\x06\x06"
_TAIL = 1 << 16  # as zipfile: a comment is at most 64 KiB


def central_directory_size(fh: BinaryIO) -> int | None:
    """The bytes the central directory claims, as zipfile reads the figure
    (the zip64 end record's when there is one, else the classic record's);
    None when there is no end record (zipfile then refuses the file itself).
    Reads at most the last 64 KiB and the zip64 records."""
    end = fh.seek(0, 2)
    tail_size = min(end, _END.size + _TAIL)
    fh.seek(end - tail_size)
    tail = fh.read(tail_size)
    # as zipfile: a record at the very end with no comment first, else the last
    # signature in the tail (a comment may hold the signature's bytes)
    if tail[-_END.size :][:4] == _END_SIGNATURE and tail[-2:] == b"\0\0":
        at = len(tail) - _END.size
    else:
        at = tail.rfind(_END_SIGNATURE)
        if at < 0 or len(tail) - at < _END.size:
            return None
    size = _END.unpack_from(tail, at)[5]
    record = end - tail_size + at
    if record < _LOCATOR.size + _END64.size:
        return size
    fh.seek(record - _LOCATOR.size - _END64.size)
    found = fh.read(_END64.size + _LOCATOR.size)
    if found[_END64.size :][:4] != _LOCATOR_SIGNATURE or found[:4] != _END64_SIGNATURE:
        return size
    return int(_END64.unpack_from(found)[8])
