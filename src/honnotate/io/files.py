"""File primitives shared by the readers and writers: atomic writes and the format error.

Every writer in :mod:`honnotate.io` goes through :func:`atomic_write_bytes`: the bytes are
written to a hidden temporary file in the destination folder, then moved over the destination
with :func:`os.replace` (atomic on POSIX and Windows within one file system). A process that is
killed mid-write therefore leaves either the previous file or the new one, never a truncated
file; the readers ignore hidden files, so a stray ``.<name>.*.tmp`` is never taken for data.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["CaptureFormatError", "atomic_write_bytes", "atomic_write_text"]


class CaptureFormatError(ValueError):
    """A capture file exists but its content is malformed; the message names the file."""


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder + os.replace).

    Args:
        path: destination file; its parent folders are created.
        data: the complete file content.
        durable: fsync the temporary file before the rename, so that the new content also
            survives a power loss (not only a killed process). Costs a disk flush per file.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str, *, durable: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)
