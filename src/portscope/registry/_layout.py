"""What the registry's modules share: the entry record, the sources' places, the cache layout.

``_store`` reads the compiled cache and ``_build`` writes it; both import this module and
neither imports the other at module level (``_store`` calls ``_build`` only on a cache miss),
so there is no import cycle (``tests/unit/test_registry_layout.py`` walks the imports).

``portscope lookup`` imports this module on its fast path: nothing here may pull in
pathlib, typing or dataclasses at import time. ``Entry`` is a ``collections.namedtuple``
built from its annotated class body (``collections`` is already loaded by ``re``, which the
console script imports); mypy sees the same body as a ``typing.NamedTuple``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any, NamedTuple
else:
    from collections import namedtuple

    class _NamedTupleType(type):
        """``class X(NamedTuple)`` as ``typing.NamedTuple`` reads it (fields from the
        annotations, in order; methods and the docstring kept), without importing typing.
        No defaults: every field is given."""

        def __new__(mcs, name, bases, namespace):
            if not bases:
                return super().__new__(mcs, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", ()))
            cls = namedtuple(name, fields, module=namespace["__module__"])
            for key, value in namespace.items():
                if key not in ("__module__", "__qualname__", "__annotations__"):
                    setattr(cls, key, value)
            cls.__qualname__ = namespace["__qualname__"]
            return cls

    class NamedTuple(metaclass=_NamedTupleType):
        pass


class Entry(NamedTuple):
    """One registry entry: a service on a port (or port range) and transport, from a source.

    The one field list of the registry: the source parsers build entries, the merge joins
    them, the cache stores them (as plain tuples: ``marshal`` takes no subclasses; see
    ``plain`` and ``Entry._make``), lookups and the renderers read them by name. The public
    ``Service`` has the same fields (``registry._lookup.to_service``).

    Attributes:
        port: the port, or the first port of a range (0-65535).
        port_end: the last port of a registered range, else ``None``.
        proto: ``tcp``, ``udp``, ``sctp`` or ``dccp``.
        name: the service name as its source spells it.
        aliases: other names, merged from every source.
        description: one line, or ``None``.
        source: ``curated``, ``iana``, ``system`` or ``nmap`` (where the name comes from).
        notes: a security note (curated), or ``None``.
        frequency: nmap's open-frequency of the port and transport (0.0-1.0), or ``None``.
    """

    port: int
    port_end: int | None
    proto: str
    name: str
    aliases: tuple[str, ...]
    description: str | None
    source: str
    notes: str | None
    frequency: float | None


def plain(entries: tuple[Entry, ...] | list[Entry]) -> tuple[tuple[Any, ...], ...]:
    """Entries as plain tuples, as ``marshal`` stores them (it refuses tuple subclasses)."""
    return tuple(tuple(e) for e in entries)


FORMAT = 3
PROTOS = ("tcp", "udp", "sctp", "dccp")
# (port, end, proto) -> position in PROTOS; the names index key is port * 4 + position.
PROTO_INDEX = {p: i for i, p in enumerate(PROTOS)}
SOURCE_ORDER = ("curated", "iana", "system", "nmap")  # priority, highest first
IANA_FILE = "service-names-port-numbers.csv"
IANA_META = "service-names-port-numbers.json"
_NMAP_PATHS = (
    "/usr/share/nmap/nmap-services",
    "/usr/local/share/nmap/nmap-services",
    "/opt/homebrew/share/nmap/nmap-services",
)
_CURATED_FILE = os.path.join(os.path.dirname(__file__), "_curated.py")

# The binary parts (layouts in ``_store.Data`` and ``_store.Text``, written by ``_build``)
PORTS = 65536
WORD = 4  # the binary parts' integers: 32 bits, native byte order (in the key)
PARTS = ("index", "data", "text")


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
    """What the compiled cache depends on: format, byte order, the entry's fields (a new
    field rebuilds the cache by itself), curated table, each source."""
    stamps = (_stamp(paths[s]) for s in SOURCE_ORDER[1:])
    return (FORMAT, sys.byteorder, Entry._fields, _stamp(_CURATED_FILE), *stamps)


def part_file(directory: str | os.PathLike[str], part: str) -> str:
    """The cache file of one part (``index``, ``data``, ``text``) in ``directory``."""
    return os.path.join(directory, f"registry-v{FORMAT}.{part}")
