"""Where the registry's sources live, and the compiled cache that makes loading fast.

The sources (curated table, ``/etc/services``, ``nmap-services``, the imported IANA CSV)
are parsed and merged once, then stored in the cache directory as three ``marshal`` files,
each keyed on every source's path, size and modification time:

* ``registry-v2.index``: the best service name per (port, transport), the nmap frequency
  order and source statistics: all that ``service_name`` and ``top_ports`` need;
* ``registry-v2.data``: every merged entry, as one small blob per port behind a table of
  offsets (``Data``), for ``lookup``: one port costs a few small reads, not the file;
* ``registry-v2.text``: one search line per entry, for name queries.

A process loads each part at most once, when first needed; a stale key (a source
changed) rebuilds them all. When the cache directory cannot be written the merged
registry lives in memory only.
"""

from __future__ import annotations

import marshal
import os
import sys

# `portscope lookup` imports this module on its fast path: nothing here may pull in
# pathlib, typing or the source parsers at import time (they load on a cache miss).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from portscope.registry._sources import Entry

FORMAT = 2
PROTOS = ("tcp", "udp", "sctp", "dccp")
SOURCE_ORDER = ("curated", "iana", "system", "nmap")  # priority, highest first
IANA_FILE = "service-names-port-numbers.csv"
IANA_META = "service-names-port-numbers.json"
_NMAP_PATHS = (
    "/usr/share/nmap/nmap-services",
    "/usr/local/share/nmap/nmap-services",
    "/opt/homebrew/share/nmap/nmap-services",
)
# Registered ranges wider than this are not painted onto every port by service_name
# (Kubernetes' NodePort range would otherwise name thousands of unrelated sockets).
_MAX_NAMED_SPAN = 100
_CURATED_FILE = os.path.join(os.path.dirname(__file__), "_curated.py")

# (port, end, proto) -> position in PROTOS; the names index key is port * 4 + position.
PROTO_INDEX = {p: i for i, p in enumerate(PROTOS)}


def cache_home() -> str:
    """``cache_dir`` as a string, without pathlib (the fast path's)."""
    explicit = os.environ.get("PORTSCOPE_CACHE_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "portscope")
    home = os.path.expanduser("~")
    if home[:1] == "~":  # no $HOME and no passwd entry: a private temp dir
        return os.path.join(os.environ.get("TMPDIR", "/tmp"), f"portscope-{os.getuid()}")
    return os.path.join(home, ".cache", "portscope")


def cache_dir() -> Path:
    """The directory for the imported IANA CSV and the compiled cache.

    ``$PORTSCOPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/portscope``, else
    ``~/.cache/portscope`` (XDG Base Directory specification).
    """
    from pathlib import Path

    return Path(cache_home())


def source_files() -> dict[str, str | None]:
    """``source_paths`` as strings, without pathlib (the fast path's)."""
    system = os.environ.get("PORTSCOPE_SERVICES_FILE", "/etc/services")
    nmap_env = os.environ.get("PORTSCOPE_NMAP_SERVICES")
    if nmap_env is not None:
        nmap = nmap_env or None
    else:
        nmap = next((p for p in _NMAP_PATHS if os.path.exists(p)), None)
    return {
        "curated": None,
        "iana": os.path.join(cache_home(), IANA_FILE),
        "system": system or None,
        "nmap": nmap,
    }


def source_paths() -> dict[str, Path | None]:
    """The file behind each source, ``None`` when absent (curated is built in).

    ``$PORTSCOPE_SERVICES_FILE`` and ``$PORTSCOPE_NMAP_SERVICES`` override the system and
    nmap files (an empty value turns the source off).
    """
    from pathlib import Path

    return {name: Path(f) if f else None for name, f in source_files().items()}


def _stamp(path: str | os.PathLike[str] | None) -> tuple[str, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    # normpath: the same key whether the path came as a string or as a Path
    return (os.path.normpath(path), st.st_mtime_ns, st.st_size)


def source_key(paths: Mapping[str, str | os.PathLike[str] | None]) -> tuple[Any, ...]:
    """What the compiled cache depends on: format, byte order, curated table, each source."""
    stamps = (_stamp(paths[s]) for s in SOURCE_ORDER[1:])
    return (FORMAT, sys.byteorder, _stamp(_CURATED_FILE), *stamps)


_PORTS = 65536
_WORD = 4  # the data part's offsets: unsigned 32-bit, native byte order (in the key)


def pack_data(
    key: tuple[Any, ...], by_port: dict[int, tuple[Entry, ...]], ranges: tuple[Entry, ...]
) -> bytes:
    """The data part: header length, ``marshal`` header (key, range entries), a table of
    65537 offsets and each port's entries as one ``marshal`` blob, in port order.

    Port ``p``'s blob is bytes ``table[p]`` to ``table[p + 1]`` of the blob area (empty
    when nothing is registered on it alone), so one port is two small reads.
    """
    header = marshal.dumps((key, ranges))
    offsets = [0] * (_PORTS + 1)
    blobs: list[bytes] = []
    size = 0
    for port in range(_PORTS):
        offsets[port] = size
        entries = by_port.get(port)
        if entries:
            blob = marshal.dumps(entries)
            blobs.append(blob)
            size += len(blob)
    offsets[_PORTS] = size
    table = b"".join(n.to_bytes(_WORD, sys.byteorder) for n in offsets)
    return len(header).to_bytes(_WORD, sys.byteorder) + header + table + b"".join(blobs)


class Data:
    """The data part in memory (``pack_data``'s layout): range entries, entries by port."""

    __slots__ = ("_base", "_buffer", "_table", "key", "ranges")

    def __init__(self, buffer: bytes) -> None:
        """Parse the header.

        Raises:
            ValueError, EOFError, TypeError: not a whole data part.
        """
        view = memoryview(buffer)
        size = int.from_bytes(view[:_WORD], sys.byteorder)
        self.key, self.ranges = marshal.loads(view[_WORD : _WORD + size])
        self._table = view[_WORD + size : _WORD + size + (_PORTS + 1) * _WORD].cast("I")
        self._base = _WORD + size + (_PORTS + 1) * _WORD
        if len(self._table) != _PORTS + 1 or self._base + self._table[_PORTS] != len(buffer):
            raise ValueError("truncated registry data")
        self._buffer = view

    def at(self, port: int) -> tuple[Entry, ...]:
        """The merged entries of one port (not counting ranges); ``()`` when none."""
        lo, hi = self._table[port], self._table[port + 1]
        if lo == hi:
            return ()
        entries: tuple[Entry, ...] = marshal.loads(self._buffer[self._base + lo : self._base + hi])
        return entries

    def between(self, lo: int, hi: int) -> list[Entry]:
        """The single-port entries of ports ``lo``-``hi``, by port."""
        found: list[Entry] = []
        table, base, buffer = self._table, self._base, self._buffer
        for port in range(lo, hi + 1):
            start, end = table[port], table[port + 1]
            if start != end:
                found += marshal.loads(buffer[base + start : base + end])
        return found


def read_port(path: str, port: int, key: tuple[Any, ...]) -> tuple[Any, Any] | None:
    """(entries of ``port``, range entries) from a data part file, reading only those.

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
        size = int.from_bytes(head[:_WORD], order)
        if len(head) < _WORD + size:
            head = os.pread(fd, _WORD + size, 0)
        cached_key, ranges = marshal.loads(memoryview(head)[_WORD : _WORD + size])
        if cached_key != key:
            return None
        at = _WORD + size + port * _WORD
        pair = head[at : at + 2 * _WORD]
        if len(pair) < 2 * _WORD:
            pair = os.pread(fd, 2 * _WORD, at)
        lo, hi = int.from_bytes(pair[:_WORD], order), int.from_bytes(pair[_WORD:], order)
        entries = ()
        if hi > lo:
            base = _WORD + size + (_PORTS + 1) * _WORD
            blob = os.pread(fd, hi - lo, base + lo)
            entries = marshal.loads(blob)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        os.close(fd)
    return entries, ranges


class Compiled:
    """The merged registry in its compact form (tuples, dicts: what marshal stores).

    Three parts, cached in three files so each command loads only what it needs.

    Attributes:
        key: ``source_key`` of the sources it was built from.
        index: (names, top, stats): ``port * 4 + PROTO_INDEX[proto]`` -> preferred name;
            proto -> ports by nmap open-frequency, most common first (empty without
            nmap); source -> (entries, detail text or None).
        data: ``pack_data`` of the entries: what lookups by port read.
        text: ``search_text`` of the entries for name search.
    """

    __slots__ = ("data", "index", "key", "text")

    def __init__(
        self,
        key: tuple[Any, ...],
        index: tuple[dict[int, str], dict[str, tuple[int, ...]], dict[str, tuple[int, str | None]]],
        data: bytes,
        text: tuple[bytes, bytes],
    ) -> None:
        self.key = key
        self.index = index
        self.data = data
        self.text = text


def read_sources(paths: dict[str, Path | None]) -> tuple[dict[str, list[Entry]], dict[str, Any]]:
    """Parse every present source. Unreadable optional files count as absent.

    Returns:
        source -> entries, and source -> (entries, detail) statistics.
    """
    from portscope.errors import RegistryError
    from portscope.registry._curated import curated_entries
    from portscope.registry._sources import read_iana_csv, read_services_file

    found: dict[str, list[Entry]] = {"curated": curated_entries()}
    stats: dict[str, tuple[int, str | None]] = {"curated": (len(found["curated"]), None)}
    iana = paths["iana"]
    if iana is not None and iana.exists():
        try:
            entries, st = read_iana_csv(iana)
        except RegistryError as err:
            found["iana"] = []
            stats["iana"] = (0, f"unreadable: {err}")
        else:
            found["iana"] = entries
            stats["iana"] = (
                len(entries),
                f"{st.rows} rows: {st.entries} assigned, {st.reserved} reserved, "
                f"{st.unassigned} unassigned, {st.no_port} names without port, "
                f"{st.other} other",
            )
    for name, freq in (("system", False), ("nmap", True)):
        path = paths[name]
        if path is None:
            continue
        try:
            found[name] = read_services_file(path, source=name, frequency_column=freq)
        except RegistryError as err:
            stats[name] = (0, f"unreadable: {err}")
            continue
        stats[name] = (len(found[name]), None)
    return found, stats


def merge(
    found: dict[str, list[Entry]],
) -> tuple[
    dict[int, str], dict[str, tuple[int, ...]], dict[int, tuple[Entry, ...]], tuple[Entry, ...]
]:
    """Merge the sources' entries: one entry per (port span, transport, service).

    Entries naming the same service at the same ports and transport (by name or alias,
    any case) become one: name, description and note come from the highest-priority
    source (curated, iana, system, nmap), aliases are joined, and ``frequency`` is
    nmap's open-frequency of that port and transport. nmap's ``unknown`` rows give only
    the frequency.

    Returns:
        (names index, top ports per transport, entries by single port, range entries).
    """
    records: list[list[Any]] = []
    index: dict[tuple[int, int | None, str, str], list[Any]] = {}
    freq: dict[tuple[int, str], float] = {}
    for source in SOURCE_ORDER:
        for e in found.get(source, ()):
            port, end, proto, name, aliases, description, _, notes, frequency = e
            if frequency is not None and end is None:
                freq[(port, proto)] = max(frequency, freq.get((port, proto), 0.0))
            if source == "nmap" and name == "unknown":
                continue
            keys = [(port, end, proto, n.lower()) for n in (name, *aliases)]
            rec = next((index[k] for k in keys if k in index), None)
            if rec is None:
                rec = [port, end, proto, name, [], description, source, notes, None]
                records.append(rec)
            else:
                if rec[5] is None:
                    rec[5] = description
                if rec[7] is None:
                    rec[7] = notes
            known = {rec[3].lower(), *(a.lower() for a in rec[4])}
            for n in (name, *aliases):
                if n.lower() not in known:
                    rec[4].append(n)
                    known.add(n.lower())
            for k in keys:
                index.setdefault(k, rec)
    by_port: dict[int, list[Entry]] = {}
    ranges: list[Entry] = []
    names: dict[int, str] = {}
    range_names: dict[int, str] = {}
    for rec in records:
        port, end, proto = rec[0], rec[1], rec[2]
        entry: Entry = (
            port,
            end,
            proto,
            rec[3],
            tuple(rec[4]),
            rec[5],
            rec[6],
            rec[7],
            freq.get((port, proto)) if end is None else None,
        )
        if end is None:
            by_port.setdefault(port, []).append(entry)
            names.setdefault(port * 4 + PROTO_INDEX[proto], rec[3])
        else:
            ranges.append(entry)
            if end - port < _MAX_NAMED_SPAN:
                for p in range(port, end + 1):
                    range_names.setdefault(p * 4 + PROTO_INDEX[proto], rec[3])
    for slot, name in range_names.items():
        names.setdefault(slot, name)
    top = {
        proto: tuple(
            p
            for (p, pr), _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0][0]))
            if pr == proto
        )
        for proto in ("tcp", "udp", "sctp")
    }
    return names, top, {p: tuple(v) for p, v in by_port.items()}, tuple(ranges)


def build(paths: dict[str, Path | None]) -> Compiled:
    """Parse and merge every source into a ``Compiled`` registry (no cache involved)."""
    key = source_key(paths)
    found, stats = read_sources(paths)
    names, top, by_port, ranges = merge(found)
    data = pack_data(key, by_port, ranges)
    return Compiled(key, (names, top, stats), data, search_text(by_port, ranges))


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (a temporary file, then ``os.replace``).

    Args:
        path: the file; its directory is created when missing.
        data: the new content.
        durable: ``fsync`` before the rename, so a crash leaves the old or new file.

    Raises:
        OSError: the directory cannot be written.
    """
    import contextlib
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


PARTS = ("index", "data", "text")


def _part_file(directory: str | os.PathLike[str], part: str) -> str:
    return os.path.join(directory, f"registry-v{FORMAT}.{part}")


def search_text(
    by_port: dict[int, tuple[Entry, ...]], ranges: tuple[Entry, ...]
) -> tuple[bytes, bytes]:
    """One lower-case line per entry (``name aliases<TAB>description``), for name search.

    Name search scans the text with ``bytes.find`` (C speed; UTF-8 matches only whole
    characters) and scores only the entries of the lines holding the first query word.

    Returns:
        (the lines in UTF-8, one per ``\\n``; for line ``n``, items ``2n`` and ``2n + 1``
        of the second value as native 32-bit integers: the port of the line's entry, or
        -1 for a range entry, and the entry's position in that port's tuple or in the
        range entries).
    """
    refs = [(p, i, e) for p in sorted(by_port) for i, e in enumerate(by_port[p])]
    refs += [(-1, i, e) for i, e in enumerate(ranges)]
    # a word never holds whitespace, so a newline in a description may become a space
    lines = [f"{e[3]} {' '.join(e[4])}\t{e[5] or ''}".lower().replace("\n", " ") for *_, e in refs]
    numbers = b"".join(
        n.to_bytes(_WORD, sys.byteorder, signed=True) for p, i, _ in refs for n in (p, i)
    )
    return "\n".join(lines).encode(), numbers


def save(compiled: Compiled, directory: str | os.PathLike[str]) -> bool:
    """Write the compiled registry to the cache; False when the directory is not writable."""
    import contextlib
    from pathlib import Path

    try:
        for part in PARTS:
            value = getattr(compiled, part)
            data = value if part == "data" else marshal.dumps((compiled.key, value))
            write_atomic(Path(_part_file(directory, part)), data)
    except OSError:
        return False
    for old in range(1, FORMAT):  # earlier formats' files are dead weight now
        for part in PARTS:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, f"registry-v{old}.{part}"))
    return True


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
        content = _read(_part_file(directory, part))
        if part == "data":
            data = Data(content)
            return data if data.key == key else None
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
            compiled = build(source_paths())
            save(compiled, directory)
            self._key = compiled.key
            self._parts = {p: getattr(compiled, p) for p in PARTS}
            self._parts["data"] = Data(compiled.data)
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

    def one_port(self, port: int) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
        """(the entries of ``port``, every range entry): what a lookup of one port needs.

        The first time, reads only those from the cache file (``portscope lookup PORT``
        asks once); after that, loads the data part, as a process asking more will.
        """
        data: Data | None = self._parts.get("data")
        if data is None and not self._read_one:
            self._read_one = True
            if self._key is None:
                self._key = source_key(source_files())
            found = read_port(_part_file(cache_home(), "data"), port, self._key)
            if found is not None:
                return found
        if data is None:
            data = self.data()
        return data.at(port), data.ranges

    def text(self) -> tuple[bytes, bytes]:
        """The search lines and their entries' references (see ``search_text``)."""
        self.data()
        text: Any = self._part("text")
        return text  # type: ignore[no-any-return]


STORE = Store()
