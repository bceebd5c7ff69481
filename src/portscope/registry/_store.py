"""Reading the compiled registry cache: each part loaded lazily, at most once per process.

The sources (curated table, ``/etc/services``, ``nmap-services``, the imported IANA CSV)
are parsed and merged once (``_build``), then stored in the cache directory as three
files, each keyed on every source's path, size and modification time:

* ``registry-v3.index`` (``marshal``): the best service name per (port, transport), the
  nmap frequency order and source statistics: all that ``service_name`` and
  ``top_ports`` need;
* ``registry-v3.data`` (``Data``): every merged entry, one small ``marshal`` blob per
  port behind a table of offsets, for lookups: one port costs three small reads;
* ``registry-v3.text`` (``Text``): one search line per entry, for name queries.

A process loads each part at most once, when first needed, in one ``read`` and without
copying it apart; a stale key (a source changed) rebuilds them all (``_build``, imported
only then: it imports ``_layout``, never this module). When the cache directory cannot be
written the merged registry lives in memory only. Where the sources and the cache live is
``_layout``'s.
"""

from __future__ import annotations

import marshal
import os
import sys

from portscope.registry._layout import (
    PORTS,
    WORD,
    Entry,
    cache_home,
    part_file,
    source_files,
    source_key,
    source_paths,
)

# `portscope lookup` imports this module on its fast path: nothing here may pull in
# pathlib, typing or the source parsers at import time (they load on a cache miss).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable
    from typing import Any

# Reading this many ports one by one costs about what reading the whole data part does.
_FEW_PORTS = 100


_make = Entry._make


def _entries(stored: tuple[tuple[Any, ...], ...]) -> tuple[Entry, ...]:
    """Entries as the cache stores them (plain tuples) as ``Entry`` records.

    Raises:
        TypeError: not a tuple of 9-tuples (a damaged cache).
    """
    return tuple(map(_make, stored))


def _header(view: memoryview) -> tuple[Any, int]:
    """(the ``marshal`` header, where the body starts) of a binary part."""
    size = int.from_bytes(view[:WORD], sys.byteorder)
    return marshal.loads(view[WORD : WORD + size]), WORD + size


class Data:
    """The data part in memory (``_build.pack_data``): range entries, entries by port.

    Layout: header size, ``marshal`` header (key, range entries), 65537 offsets (32-bit)
    into the blob area, then each port's entries as one ``marshal`` blob in port order:
    port ``p`` is bytes ``offsets[p]`` to ``offsets[p + 1]`` of the blob area.
    """

    __slots__ = ("_base", "_buffer", "_table", "key", "ranges")

    def __init__(self, buffer: bytes) -> None:
        """Parse the header.

        Raises:
            ValueError, EOFError, TypeError: not a whole data part.
        """
        view = memoryview(buffer)
        (self.key, ranges), table = _header(view)
        self.ranges: tuple[Entry, ...] = _entries(ranges)
        self._base = table + (PORTS + 1) * WORD
        self._table = view[table : self._base].cast("I")
        if len(self._table) != PORTS + 1 or self._base + self._table[PORTS] != len(buffer):
            raise ValueError("truncated registry data")
        self._buffer = view

    def at(self, port: int) -> tuple[Entry, ...]:
        """The merged entries of one port (not counting ranges); ``()`` when none."""
        lo, hi = self._table[port], self._table[port + 1]
        if lo == hi:
            return ()
        return _entries(marshal.loads(self._buffer[self._base + lo : self._base + hi]))

    def between(self, lo: int, hi: int) -> list[Entry]:
        """The single-port entries of ports ``lo``-``hi``, by port."""
        found: list[Entry] = []
        table, base, buffer = self._table, self._base, self._buffer
        for port in range(lo, hi + 1):
            start, end = table[port], table[port + 1]
            if start != end:
                found += map(_make, marshal.loads(buffer[base + start : base + end]))
        return found


def read_ports(
    path: str, ports: Iterable[int], key: tuple[Any, ...]
) -> tuple[dict[int, tuple[Entry, ...]], tuple[Entry, ...]] | None:
    """(entries by port, range entries) from a data part file, reading only those.

    Two small reads per port, instead of the whole part (a megabyte with IANA's).

    Returns:
        ``None`` when the file is missing, unreadable, damaged or not built from ``key``.
    """
    order = sys.byteorder
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        head = os.pread(fd, 16384, 0)
        size = int.from_bytes(head[:WORD], order)
        if len(head) < WORD + size:
            head = os.pread(fd, WORD + size, 0)
        cached_key, ranges = marshal.loads(memoryview(head)[WORD : WORD + size])
        if cached_key != key:
            return None
        base = WORD + size + (PORTS + 1) * WORD
        found: dict[int, tuple[Entry, ...]] = {}
        for port in ports:
            at = WORD + size + port * WORD
            pair = head[at : at + 2 * WORD]
            if len(pair) < 2 * WORD:
                pair = os.pread(fd, 2 * WORD, at)
            lo, hi = int.from_bytes(pair[:WORD], order), int.from_bytes(pair[WORD:], order)
            found[port] = (
                _entries(marshal.loads(os.pread(fd, hi - lo, base + lo))) if hi > lo else ()
            )
        return found, _entries(ranges)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        os.close(fd)


class Text:
    """The text part in memory (``_build.pack_text``): the lines name search scans.

    Layout: header size, ``marshal`` header (key, lines' size in bytes, line count,
    entry count), the lines in UTF-8 (``name aliases<TAB>description``, lower case, one
    per ``\\n``; entries with the same line, as IANA's TCP and UDP twins, share it), where
    each line starts (32-bit, from the first line), where each line's entries start in
    the entry references (32-bit, one more than lines), then two 32-bit integers per
    entry: its port (-1 for a range entry) and its position in that port's entries or in
    the range entries. Entries are in port order, range entries last.

    Attributes:
        buffer: the whole part; the lines are ``buffer[start:end]`` (not copied out).
        starts: where each line starts, from ``start``.
        firsts: line ``n``'s entries are ``firsts[n]`` to ``firsts[n + 1]`` (exclusive).
        refs: the two integers of each entry.
    """

    __slots__ = ("buffer", "end", "firsts", "key", "refs", "start", "starts")

    def __init__(self, buffer: bytes) -> None:
        """Parse the header.

        Raises:
            ValueError, EOFError, TypeError: not a whole text part.
        """
        view = memoryview(buffer)
        (self.key, size, lines, entries), self.start = _header(view)
        self.end = self.start + size
        at = self.end + lines * WORD
        self.starts = view[self.end : at].cast("I")
        self.firsts = view[at : at + (lines + 1) * WORD].cast("I")
        self.refs = view[at + (lines + 1) * WORD :].cast("i")
        if len(self.firsts) != lines + 1 or len(self.refs) != 2 * entries:
            raise ValueError("truncated registry text")
        self.buffer = buffer


def _read(path: str) -> bytes:
    """The whole file, in one ``read`` for a regular file (no buffering layers)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # a regular file reads short only at its end
        if len(data) > size:  # it grew since fstat: read on to the end
            chunks = [data]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data


def load_part(directory: str | os.PathLike[str], part: str, key: tuple[Any, ...]) -> Any:
    """One cached part (``index``, ``data`` or ``text``) when built from ``key``, else None."""
    try:
        content = _read(part_file(directory, part))
        if part != "index":
            binary = Data(content) if part == "data" else Text(content)
            return binary if binary.key == key else None
        cached_key, value = marshal.loads(content)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return value if cached_key == key else None


class Store:
    """The process's registry: each part loaded lazily, at most once; rebuilt when stale."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._parts: dict[str, Any] = {}
        self._read_one = False

    def reset(self) -> None:
        """Forget what was loaded (after an import, or when tests change the sources)."""
        self._key = None
        self._parts = {}
        self._read_one = False

    def _part(self, part: str) -> Any:
        value = self._parts.get(part)
        if value is not None:
            return value
        if self._key is None:
            self._key = source_key(source_files())
        directory = cache_home()
        value = load_part(directory, part, self._key)
        if value is None:
            from portscope.registry._build import build, save

            compiled = build(source_paths())
            save(compiled, directory)
            self._key = compiled.key
            self._parts = {
                "index": compiled.index,
                "data": Data(compiled.data),
                "text": Text(compiled.text),
            }
            return self._parts[part]
        self._parts[part] = value
        return value

    def index(
        self,
    ) -> tuple[dict[int, str], dict[str, tuple[int, ...]], dict[str, tuple[int, str | None]]]:
        """(names, top ports, source stats): all ``service_name`` and ``top_ports`` need."""
        index: Any = self._part("index")
        return index  # type: ignore[no-any-return]

    def data(self) -> Data:
        """Every entry, by port, and the range entries: what lookups by port need."""
        data: Data = self._part("data")
        return data

    def _few(self, ports: Collection[int]) -> tuple[Any, Any] | None:
        """``read_ports`` the first time a process asks (a command asks once), if few."""
        if "data" in self._parts or self._read_one or len(ports) > _FEW_PORTS:
            return None
        self._read_one = True
        if self._key is None:
            self._key = source_key(source_files())
        return read_ports(part_file(cache_home(), "data"), ports, self._key)

    def one_port(self, port: int) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
        """(the entries of ``port``, every range entry): what a lookup of one port needs.

        The first time, reads only those from the cache file (``portscope lookup PORT``
        asks once); after that, loads the data part, as a process asking more will.
        """
        found = self._few((port,))
        if found is not None:
            return found[0][port], found[1]
        data = self.data()
        return data.at(port), data.ranges

    def entries_of(
        self, ports: Collection[int]
    ) -> tuple[dict[int, tuple[Entry, ...]], tuple[Entry, ...]]:
        """(the entries of each of ``ports``, every range entry), read as ``one_port``."""
        found = self._few(ports)
        if found is not None:
            return found
        data = self.data()
        return {p: data.at(p) for p in ports}, data.ranges

    def text(self) -> Text:
        """The search lines and their entries' references."""
        text: Text = self._part("text")
        return text


STORE = Store()
