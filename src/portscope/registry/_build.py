"""Building the compiled registry: parse every source, merge, write the cache files.

Runs only when the cache is missing or stale (a source changed); ``_store`` reads what
this writes, so that ``portscope lookup`` never loads the parsers. Both share the layout
of ``_layout``; this module never imports ``_store`` (no import cycle).
"""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path
from typing import Any

from portscope.errors import RegistryError
from portscope.registry._curated import curated_entries
from portscope.registry._layout import (
    FORMAT,
    PARTS,
    PORTS,
    PROTO_INDEX,
    SOURCE_ORDER,
    WORD,
    Entry,
    part_file,
    plain,
    source_key,
)
from portscope.registry._sources import read_iana_csv, read_services_file

# Registered ranges wider than this are not painted onto every port by service_name
# (Kubernetes' NodePort range would otherwise name thousands of unrelated sockets).
_MAX_NAMED_SPAN = 100


class Compiled:
    """The merged registry in its compact form: the three parts of the cache.

    Three parts, cached in three files so each command loads only what it needs.

    Attributes:
        key: ``source_key`` of the sources it was built from.
        index: (names, top, stats): ``port * 4 + PROTO_INDEX[proto]`` -> preferred name;
            proto -> ports by nmap open-frequency, most common first (empty without
            nmap); source -> (entries, detail text or None).
        data: ``pack_data`` of the entries: what lookups by port read.
        text: ``pack_text`` of the entries: what name search scans.
    """

    __slots__ = ("data", "index", "key", "text")

    def __init__(
        self,
        key: tuple[Any, ...],
        index: tuple[dict[int, str], dict[str, tuple[int, ...]], dict[str, tuple[int, str | None]]],
        data: bytes,
        text: bytes,
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


def _unseen(names: tuple[str, ...], seen: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` not in ``seen`` nor earlier in ``names``, any case, in order."""
    known = {n.lower() for n in seen}
    out: list[str] = []
    for n in names:
        if n.lower() not in known:
            out.append(n)
            known.add(n.lower())
    return tuple(out)


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
    records: list[Entry] = []
    index: dict[tuple[int, int | None, str, str], int] = {}  # -> position in records
    freq: dict[tuple[int, str], float] = {}
    for source in SOURCE_ORDER:
        for e in found.get(source, ()):
            if e.frequency is not None and e.port_end is None:
                freq[(e.port, e.proto)] = max(e.frequency, freq.get((e.port, e.proto), 0.0))
            if source == "nmap" and e.name == "unknown":
                continue
            names = (e.name, *e.aliases)
            keys = [(e.port, e.port_end, e.proto, n.lower()) for n in names]
            at = next((index[k] for k in keys if k in index), None)
            if at is None:
                at = len(records)
                aliases = _unseen(e.aliases, (e.name,))
                records.append(e._replace(aliases=aliases, source=source, frequency=None))
            else:
                rec = records[at]
                added = _unseen(names, (rec.name, *rec.aliases))
                if added or rec.description is None or rec.notes is None:
                    records[at] = rec._replace(
                        aliases=rec.aliases + tuple(added),
                        description=e.description if rec.description is None else rec.description,
                        notes=e.notes if rec.notes is None else rec.notes,
                    )
            for k in keys:
                index.setdefault(k, at)
    by_port: dict[int, list[Entry]] = {}
    ranges: list[Entry] = []
    names_index: dict[int, str] = {}
    range_names: dict[int, str] = {}
    for rec in records:
        port, end, proto = rec.port, rec.port_end, rec.proto
        if end is None:
            entry = rec._replace(frequency=freq.get((port, proto)))
            by_port.setdefault(port, []).append(entry)
            names_index.setdefault(port * 4 + PROTO_INDEX[proto], rec.name)
        else:
            ranges.append(rec)
            if end - port < _MAX_NAMED_SPAN:
                for p in range(port, end + 1):
                    range_names.setdefault(p * 4 + PROTO_INDEX[proto], rec.name)
    for slot, name in range_names.items():
        names_index.setdefault(slot, name)
    top = {
        proto: tuple(
            p
            for (p, pr), _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0][0]))
            if pr == proto
        )
        for proto in ("tcp", "udp", "sctp")
    }
    return names_index, top, {p: tuple(v) for p, v in by_port.items()}, tuple(ranges)


def build(paths: dict[str, Path | None]) -> Compiled:
    """Parse and merge every source into a ``Compiled`` registry (no cache involved)."""
    key = source_key(paths)
    found, stats = read_sources(paths)
    names, top, by_port, ranges = merge(found)
    data = pack_data(key, by_port, ranges)
    return Compiled(key, (names, top, stats), data, pack_text(key, by_port, ranges))


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


def pack_data(
    key: tuple[Any, ...], by_port: dict[int, tuple[Entry, ...]], ranges: tuple[Entry, ...]
) -> bytes:
    """The data part: header length, ``marshal`` header (key, range entries), a table of
    65537 offsets and each port's entries as one ``marshal`` blob, in port order.

    Port ``p``'s blob is bytes ``table[p]`` to ``table[p + 1]`` of the blob area (empty
    when nothing is registered on it alone), so one port is two small reads.
    """
    header = marshal.dumps((key, plain(ranges)))
    offsets = [0] * (PORTS + 1)
    blobs: list[bytes] = []
    size = 0
    for port in range(PORTS):
        offsets[port] = size
        entries = by_port.get(port)
        if entries:
            blob = marshal.dumps(plain(entries))
            blobs.append(blob)
            size += len(blob)
    offsets[PORTS] = size
    table = b"".join(n.to_bytes(WORD, sys.byteorder) for n in offsets)
    return len(header).to_bytes(WORD, sys.byteorder) + header + table + b"".join(blobs)


def pack_text(
    key: tuple[Any, ...], by_port: dict[int, tuple[Entry, ...]], ranges: tuple[Entry, ...]
) -> bytes:
    """The text part (layout: ``_store.Text``): lower-case lines of the entries for name
    search, which scans them with ``bytes.find`` (C speed; a UTF-8 needle matches only
    whole characters) and scores only the entries of lines holding the first word.
    """
    refs = [(p, i, e) for p in sorted(by_port) for i, e in enumerate(by_port[p])]
    refs += [(-1, i, e) for i, e in enumerate(ranges)]
    groups: dict[bytes, list[tuple[int, int]]] = {}  # line -> its entries, first seen first
    for p, i, e in refs:
        # a query word never holds whitespace: a newline in a description may be a space
        line = f"{e.name} {' '.join(e.aliases)}\t{e.description or ''}".lower().replace("\n", " ")
        groups.setdefault(line.encode(), []).append((p, i))
    starts: list[int] = []
    firsts = [0]
    offset = 0
    for encoded, members in groups.items():
        starts.append(offset)
        offset += len(encoded) + 1
        firsts.append(firsts[-1] + len(members))
    numbers = b"".join(n.to_bytes(WORD, sys.byteorder) for n in (*starts, *firsts))
    numbers += b"".join(
        n.to_bytes(WORD, sys.byteorder, signed=True)
        for members in groups.values()
        for p, i in members
        for n in (p, i)
    )
    text = b"\n".join(groups)
    header = marshal.dumps((key, len(text), len(groups), len(refs)))
    return len(header).to_bytes(WORD, sys.byteorder) + header + text + numbers


def save(compiled: Compiled, directory: str | os.PathLike[str]) -> bool:
    """Write the compiled registry to the cache; False when the directory is not writable."""
    import contextlib
    from pathlib import Path

    try:
        for part in PARTS:
            value = getattr(compiled, part)
            data = marshal.dumps((compiled.key, value)) if part == "index" else value
            write_atomic(Path(part_file(directory, part)), data)
    except OSError:
        return False
    for old in range(1, FORMAT):  # earlier formats' files are dead weight now
        for part in PARTS:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, f"registry-v{old}.{part}"))
    return True
