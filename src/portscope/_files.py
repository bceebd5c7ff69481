"""Files named by the user: read with a size cap, written whole or not at all.

``-iL``, ``--exclude-file`` and ``registry update --from`` name any path, ``/dev/zero`` or
``/dev/urandom`` included: ``read_bounded`` reads at most a cap and refuses anything
larger, instead of filling memory. ``OutputFile`` (``scan -oX``) writes to a temporary
file beside the target and renames it over the target at the end (rename(2) is atomic on
one filesystem), so a failed write (ENOSPC, an unencodable name, Ctrl-C before the end)
leaves no partial file; a path that is not a regular file (``/dev/stdout``, a FIFO, a
terminal) is written directly, since renaming over it would replace the device.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import TextIO


class FileTooLarge(ValueError):
    """A file is larger than the cap its reader accepts."""


def read_bounded(path: str | os.PathLike[str], limit_bytes: int) -> bytes:
    """The bytes of ``path``, at most ``limit_bytes`` of them.

    Raises:
        OSError: as ``open`` and ``read`` raise it (missing file, a directory ...).
        FileTooLarge: the file holds more than ``limit_bytes`` bytes (an endless device
            like ``/dev/zero`` included); its message states the cap.
    """
    with open(path, "rb") as f:
        data = f.read(limit_bytes + 1)
    if len(data) > limit_bytes:
        raise FileTooLarge(f"larger than {size_text(limit_bytes)}, the most accepted")
    return data


def size_text(n: int) -> str:
    """``16 MiB``, ``512 KiB``, ``100 bytes``: a cap for messages."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1 << 10 and n % (1 << 10) == 0:
        return f"{n >> 10} KiB"
    return f"{n:,} bytes"


class OutputFile:
    """A text file that appears whole at ``commit()`` or not at all (``discard()``).

    Attributes:
        path: the file asked for.
        stream: where to write (UTF-8; characters UTF-8 cannot hold, such as the lone
            surrogates of an undecodable file name, are written as ``\\udcff`` escapes).

    Raises (constructor):
        OSError: the directory is not writable, the path is a directory ...
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._tmp: str | None = None
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            self.stream: TextIO = open(  # noqa: SIM115 (closed by commit/discard)
                path, "w", encoding="utf-8", errors="backslashreplace"
            )
            return
        directory, name = os.path.split(path)
        fd, self._tmp = tempfile.mkstemp(
            prefix=f".{name}.", suffix=".tmp", dir=directory or os.curdir
        )
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as open(path, "w") would create it
        self.stream = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")

    def commit(self) -> None:
        """Flush, close and rename over ``path``.

        Raises:
            OSError: the write or the rename failed (ENOSPC ...); nothing is left behind.
        """
        try:
            self.stream.close()
            if self._tmp is not None:
                os.replace(self._tmp, self.path)
                self._tmp = None
        finally:
            self.discard()

    def discard(self) -> None:
        """Close and remove the temporary file, leaving ``path`` as it was."""
        with contextlib.suppress(OSError):  # the write already failed; the file is dropped
            self.stream.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None
