"""Where the registry's sources live, and the compiled cache that makes loading fast.

The sources (curated table, ``/etc/services``, ``nmap-services``, the imported IANA CSV)
are parsed and merged once, then stored in the cache directory as two ``marshal`` files
keyed on each source's path, size and modification time:

* ``registry-v1.index``: the best service name per (port, transport) and the nmap
  frequency order, all that ``service_name`` and ``top_ports`` need;
* ``registry-v1.data``: every merged entry, by port, for ``lookup``.

A process loads each file at most once; a stale key (a source changed) rebuilds both.
When the cache directory cannot be written the merged registry lives in memory only.
"""

from __future__ import annotations

import contextlib
import marshal
import os
from dataclasses import dataclass
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
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "portscope"


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


@dataclass(slots=True)
class Compiled:
    """The merged registry in its compact form (tuples, dicts: what marshal stores).

    Attributes:
        key: ``source_key`` of the sources it was built from.
        names: ``port * 4 + PROTO_INDEX[proto]`` -> the preferred service name.
        top: proto -> ports by nmap open-frequency, most common first (empty without nmap).
        stats: source -> (entries, detail text or None).
        by_port: port -> merged entries of that single port; ``None`` until loaded.
        ranges: merged entries that span several ports; ``None`` until loaded.
    """

    key: tuple[Any, ...]
    names: dict[int, str]
    top: dict[str, tuple[int, ...]]
    stats: dict[str, tuple[int, str | None]]
    by_port: dict[int, tuple[Entry, ...]] | None = None
    ranges: tuple[Entry, ...] | None = None


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
    return Compiled(key, names, top, stats, by_port, ranges)


def _write_atomic(path: Path, data: bytes) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _cache_files(directory: Path) -> tuple[Path, Path]:
    return directory / f"registry-v{FORMAT}.index", directory / f"registry-v{FORMAT}.data"


def save(compiled: Compiled, directory: Path) -> bool:
    """Write the compiled registry to the cache; False when the directory is not writable."""
    index_path, data_path = _cache_files(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(data_path, marshal.dumps((compiled.key, compiled.by_port, compiled.ranges)))
        _write_atomic(
            index_path,
            marshal.dumps((compiled.key, compiled.names, compiled.top, compiled.stats)),
        )
    except OSError:
        return False
    return True


def load_index(directory: Path, key: tuple[Any, ...]) -> Compiled | None:
    """The cached index when it matches ``key``, else ``None``."""
    index_path, _ = _cache_files(directory)
    try:
        cached_key, names, top, stats = marshal.loads(index_path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if cached_key != key:
        return None
    return Compiled(key, names, top, stats)


def load_data(directory: Path, compiled: Compiled) -> bool:
    """Fill ``by_port`` and ``ranges`` from the cache when it matches; False otherwise."""
    _, data_path = _cache_files(directory)
    try:
        cached_key, by_port, ranges = marshal.loads(data_path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return False
    if cached_key != compiled.key:
        return False
    compiled.by_port, compiled.ranges = by_port, ranges
    return True


class Store:
    """The process's registry: loaded lazily, at most once per part, rebuilt when stale."""

    def __init__(self) -> None:
        self._compiled: Compiled | None = None

    def reset(self) -> None:
        """Forget what was loaded (after an import, or when tests change the sources)."""
        self._compiled = None

    def index(self) -> Compiled:
        """Names and top ports; the data part may still be unloaded."""
        if self._compiled is None:
            paths = source_paths()
            key = source_key(paths)
            directory = cache_dir()
            compiled = load_index(directory, key)
            if compiled is None:
                compiled = build(paths)
                save(compiled, directory)
            self._compiled = compiled
        return self._compiled

    def data(self) -> tuple[dict[int, tuple[Entry, ...]], tuple[Entry, ...]]:
        """Entries by port and range entries, loading or rebuilding them once."""
        compiled = self.index()
        stale = compiled.by_port is None or compiled.ranges is None
        if stale and not load_data(cache_dir(), compiled):
            fresh = build(source_paths())
            save(fresh, cache_dir())
            self._compiled = compiled = fresh
        assert compiled.by_port is not None and compiled.ranges is not None
        return compiled.by_port, compiled.ranges


STORE = Store()
