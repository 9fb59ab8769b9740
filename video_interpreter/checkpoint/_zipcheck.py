"""Structural check of a ``.pth`` zip archive before torch reads it.

torch's reader trusts the local file headers (it takes each record's data offset from them)
and checks no CRC, so a flipped byte there can shift a tensor onto the wrong bytes without an
error. This check reads only headers and the small non-tensor records: every local header must
agree with its central-directory copy, its extra field must parse exactly, records must not
overlap, and the CRC of every record other than tensor data must match. Tensor bytes are
covered by the file's sha256 (``verify=``).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO

from ..errors import CheckpointError

__all__ = ["check_torch_zip"]

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # signature ... name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_ZIP64_MARK = 0xFFFFFFFF
_DATA_DESCRIPTOR_FLAG = 0x08
_UTF8_FLAG = 0x800
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"


def _problem(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: corrupt .pth archive: {what}")


def _check_descriptor(path: Path, where: str, raw: bytes, info: zipfile.ZipInfo) -> None:
    """The data descriptor after a record: optional signature, CRC, then 4- or 8-byte sizes."""
    body = raw[4:] if raw.startswith(_DESCRIPTOR_SIGNATURE) else raw
    for size_format in ("<III", "<IQQ"):
        if len(body) == struct.calcsize(size_format):
            values = struct.unpack(size_format, body)
            break
    else:
        raise _problem(path, f"{where}: damaged data descriptor ({len(raw)} bytes)")
    if values != (info.CRC, info.compress_size, info.file_size):
        raise _problem(path, f"{where}: data descriptor differs from the directory")


def _extra_fields_parse(extra: bytes) -> bool:
    position = 0
    while position < len(extra):
        if position + 4 > len(extra):
            return False
        (size,) = struct.unpack_from("<H", extra, position + 2)
        position += 4 + size
    return position == len(extra)


def check_torch_zip(path: Path) -> None:
    """Raise ``CheckpointError`` naming the problem if the archive's structure is damaged."""
    try:
        _check(path)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        # zipfile's and the OS's reactions to damaged directory records (bad versions,
        # offsets before the start of the file, ...).
        raise _problem(path, f"{exc} (the file is truncated or damaged)") from exc


def _check(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        infos = sorted(archive.infolist(), key=lambda info: info.header_offset)
        if not infos:
            raise _problem(path, "the archive has no records")
        if not any(info.filename.endswith("/data.pkl") for info in infos):
            raise _problem(path, "no data.pkl record: a zip archive, but not one torch.save wrote")
        handle = archive.fp  # the archive's own open file: no second open
        if handle is None:  # pragma: no cover - only after close()
            raise _problem(path, "the archive could not be read")
        for index, info in enumerate(infos):
            limit = infos[index + 1].header_offset if index + 1 < len(infos) else archive.start_dir
            _check_record(path, handle, info, limit)


def _check_record(path: Path, handle: IO[bytes], info: zipfile.ZipInfo, limit: int) -> None:
    read = handle.read
    handle.seek(info.header_offset)
    raw = read(_LOCAL.size)
    if len(raw) != _LOCAL.size:
        raise _problem(path, f"record {info.filename!r}: local header cut short")
    (
        signature,
        _version,
        flags,
        method,
        mod_time,
        mod_date,
        crc,
        compressed,
        uncompressed,
        name_length,
        extra_length,
    ) = _LOCAL.unpack(raw)
    name = read(name_length)
    extra = read(extra_length)
    where = f"record {info.filename!r} at byte {info.header_offset}"
    if signature != _LOCAL_SIGNATURE:
        raise _problem(path, f"{where}: bad local header signature {signature!r}")
    encoding = "utf-8" if info.flag_bits & _UTF8_FLAG else "cp437"
    if name != info.orig_filename.encode(encoding, "replace"):
        raise _problem(path, f"{where}: local name {name!r} differs from the directory's")
    if len(extra) != extra_length or not _extra_fields_parse(extra):
        raise _problem(path, f"{where}: damaged extra field in the local header")
    if method != info.compress_type or flags != info.flag_bits or _version != info.extract_version:
        raise _problem(path, f"{where}: local header flags or method differ from the directory's")
    dos_time = (info.date_time[3] << 11) | (info.date_time[4] << 5) | (info.date_time[5] // 2)
    dos_date = ((info.date_time[0] - 1980) << 9) | (info.date_time[1] << 5) | info.date_time[2]
    if (mod_time, mod_date) != (dos_time, dos_date):
        raise _problem(path, f"{where}: local header date differs from the directory's")
    # With a data descriptor the local copies are zero (or, from some writers, the values).
    deferred = bool(flags & _DATA_DESCRIPTOR_FLAG)
    for local, central in ((crc, info.CRC), (compressed, info.compress_size)):
        if local not in (central, _ZIP64_MARK) and not (deferred and local == 0):
            raise _problem(path, f"{where}: local CRC or size differs from the directory's")
    if uncompressed not in (info.file_size, _ZIP64_MARK) and not (deferred and uncompressed == 0):
        raise _problem(path, f"{where}: local size differs from the directory's")
    data_start = info.header_offset + _LOCAL.size + name_length + extra_length
    data_end = data_start + info.compress_size
    if data_end > limit:
        raise _problem(path, f"{where}: data runs into the next record")
    if deferred:
        handle.seek(data_end)
        _check_descriptor(path, where, read(limit - data_end), info)
    if method != zipfile.ZIP_STORED:
        raise _problem(path, f"{where}: compressed record (torch.save stores records as is)")
    if "/data/" in info.filename and not info.filename.endswith(".pkl"):
        return  # tensor bytes: covered by the file's sha256, not read here
    handle.seek(data_start)
    payload = read(info.compress_size)
    if len(payload) != info.compress_size:
        raise _problem(path, f"{where}: record cut short")
    # torch.save(compute_crc32=False) writes CRC 0: nothing to compare against then.
    if info.CRC != 0 and zlib.crc32(payload) != info.CRC:
        raise _problem(path, f"{where}: CRC mismatch (the record's bytes are damaged)")
