"""Where the registry's sources live, and the compiled cache that makes loading fast.

The sources (curated table, ``/etc/services``, ``nmap-services``, the imported IANA CSV)
are parsed and merged once, then stored in the cache directory as three ``marshal`` files,
each keyed on every source's path, size and modification time:

* ``registry-v1.index``: the best service name per (port, transport), the nmap frequency
  order and source statistics: all that ``service_name`` and ``top_ports`` need;
* ``registry-v1.data``: every merged entry, as one small blob per port, for ``lookup``;
* ``registry-v1.text``: one search line per entry, for name queries.

A process loads each part at most once, when first needed; a stale key (a source
changed) rebuilds them all. When the cache directory cannot be written the merged
registry lives in memory only.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from pathlib import Path
from typing import Any

from portscope.errors import RegistryError
from portscope.registry._sources import (
    PROTOS,
    Entry,
    read_iana_csv,
    read_services_file,
)

FORMAT = 1
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
_CURATED_FILE = Path(__file__).with_name("_curated.py")

# (port, end, proto) -> position in PROTOS; the names index key is port * 4 + position.
PROTO_INDEX = {p: i for i, p in enumerate(PROTOS)}


def cache_dir() -> Path:
    """The directory for the imported IANA CSV and the compiled cache.

    ``$PORTSCOPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/portscope``, else
    ``~/.cache/portscope`` (XDG Base Directory specification).
    """
    explicit = os.environ.get("PORTSCOPE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "portscope"
    try:
        return Path.home() / ".cache" / "portscope"
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry: a private temp dir
        return Path(os.environ.get("TMPDIR", "/tmp")) / f"portscope-{os.getuid()}"


def source_paths() -> dict[str, Path | None]:
    """The file behind each source, ``None`` when absent (curated is built in).

    ``$PORTSCOPE_SERVICES_FILE`` and ``$PORTSCOPE_NMAP_SERVICES`` override the system and
    nmap files (an empty value turns the source off).
    """
    system = os.environ.get("PORTSCOPE_SERVICES_FILE", "/etc/services")
    nmap_env = os.environ.get("PORTSCOPE_NMAP_SERVICES")
    if nmap_env is not None:
        nmap = nmap_env or None
    else:
        nmap = next((p for p in _NMAP_PATHS if os.path.exists(p)), None)
    return {
        "curated": None,
        "iana": cache_dir() / IANA_FILE,
        "system": Path(system) if system else None,
        "nmap": Path(nmap) if nmap else None,
    }


def _stamp(path: Path | None) -> tuple[str, int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def source_key(paths: dict[str, Path | None]) -> tuple[Any, ...]:
    """What the compiled cache depends on: format, curated table, each source file."""
    return (FORMAT, _stamp(_CURATED_FILE), *(_stamp(paths[s]) for s in SOURCE_ORDER[1:]))


class Compiled:
    """The merged registry in its compact form (tuples, dicts: what marshal stores).

    Three parts, cached in three files so each command loads only what it needs.

    Attributes:
        key: ``source_key`` of the sources it was built from.
        index: (names, top, stats): ``port * 4 + PROTO_INDEX[proto]`` -> preferred name;
            proto -> ports by nmap open-frequency, most common first (empty without
            nmap); source -> (entries, detail text or None).
        data: (by_port, ranges): port -> the merged entries of that single port as a
            ``marshal`` blob (decoded only when that port is asked for: loading stays
            well under a millisecond), and the entries that span several ports.
        text: ``search_text`` of the entries for name search.
    """

    __slots__ = ("data", "index", "key", "text")

    def __init__(
        self,
        key: tuple[Any, ...],
        index: tuple[dict[int, str], dict[str, tuple[int, ...]], dict[str, tuple[int, str | None]]],
        data: tuple[dict[int, bytes], tuple[Entry, ...]],
        text: tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]],
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
    from portscope.registry._curated import curated_entries

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
    blobs = {p: marshal.dumps(entries) for p, entries in by_port.items()}
    return Compiled(key, (names, top, stats), (blobs, ranges), search_text(by_port, ranges))


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (a temporary file, then ``os.replace``).

    Args:
        path: the file; its directory is created when missing.
        data: the new content.
        durable: ``fsync`` before the rename, so a crash leaves the old or new file.

    Raises:
        OSError: the directory cannot be written.
    """
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


def _part_file(directory: Path, part: str) -> Path:
    return directory / f"registry-v{FORMAT}.{part}"


def search_text(
    by_port: dict[int, tuple[Entry, ...]], ranges: tuple[Entry, ...]
) -> tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """One lower-case line per entry (``name aliases<TAB>description``), for name search.

    Name search scans the text with ``str.find`` (C speed) and scores only the lines
    holding the first query word.

    Returns:
        (text, start offset of each line, port of each line's entry or -1 for a range
        entry, the entry's position in that port's tuple or in ``ranges``).
    """
    refs = [(p, i, e) for p in sorted(by_port) for i, e in enumerate(by_port[p])]
    refs += [(-1, i, e) for i, e in enumerate(ranges)]
    lines = [f"{e[3]} {' '.join(e[4])}\t{e[5] or ''}".lower() for _, _, e in refs]
    starts: list[int] = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1
    return (
        "\n".join(lines),
        tuple(starts),
        tuple(r[0] for r in refs),
        tuple(r[1] for r in refs),
    )


def save(compiled: Compiled, directory: Path) -> bool:
    """Write the compiled registry to the cache; False when the directory is not writable."""
    try:
        for part in PARTS:
            value = getattr(compiled, part)
            write_atomic(_part_file(directory, part), marshal.dumps((compiled.key, value)))
    except OSError:
        return False
    return True


def load_part(directory: Path, part: str, key: tuple[Any, ...]) -> Any:
    """One cached part (``index``, ``data`` or ``text``) when built from ``key``, else None."""
    try:
        cached_key, value = marshal.loads(_part_file(directory, part).read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return value if cached_key == key else None


class Store:
    """The process's registry: each part loaded lazily, at most once; rebuilt when stale."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._parts: dict[str, Any] = {}

    def reset(self) -> None:
        """Forget what was loaded (after an import, or when tests change the sources)."""
        self._key = None
        self._parts = {}

    def _part(self, part: str) -> Any:
        value = self._parts.get(part)
        if value is not None:
            return value
        paths = source_paths()
        if self._key is None:
            self._key = source_key(paths)
        directory = cache_dir()
        value = load_part(directory, part, self._key)
        if value is None:
            compiled = build(paths)
            save(compiled, directory)
            self._key = compiled.key
            self._parts = {p: getattr(compiled, p) for p in PARTS}
            return self._parts[part]
        self._parts[part] = value
        return value

    def index(
        self,
    ) -> tuple[dict[int, str], dict[str, tuple[int, ...]], dict[str, tuple[int, str | None]]]:
        """(names, top ports, source stats): all ``service_name`` and ``top_ports`` need."""
        index: Any = self._part("index")
        return index  # type: ignore[no-any-return]

    def data(self) -> tuple[dict[int, bytes], tuple[Entry, ...]]:
        """(encoded entries by port, range entries): what a port lookup needs."""
        data: Any = self._part("data")
        return data  # type: ignore[no-any-return]

    def at(self, port: int) -> tuple[Entry, ...]:
        """The merged entries of one port (not counting ranges); ``()`` when none."""
        blob = self.data()[0].get(port)
        if blob is None:
            return ()
        entries: tuple[Entry, ...] = marshal.loads(blob)
        return entries

    def ports(self) -> list[int]:
        """Every port with at least one single-port entry, ascending."""
        return sorted(self.data()[0])

    def text(self) -> tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The search text, line starts and entry references (see ``search_text``)."""
        self.data()
        text: Any = self._part("text")
        return text  # type: ignore[no-any-return]


STORE = Store()
