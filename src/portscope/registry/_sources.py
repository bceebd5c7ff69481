"""Parsers for the registry's sources: ``/etc/services``, ``nmap-services``, the IANA CSV.

Each parser turns text into ``Entry`` records (``_layout``; the cache stores them as tuples)
and never touches the merged registry. They are pure apart from reading the one file given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TextIO

from portscope.errors import RegistryError
from portscope.registry._layout import PROTOS, Entry

_PORT_PROTO = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?/([a-z]+)$")
_IANA_COLUMNS = ("Service Name", "Port Number", "Transport Protocol", "Description")


class IanaStats(NamedTuple):
    """What an IANA CSV held, row by row.

    Attributes:
        rows: data rows read (one per service, port range and transport).
        entries: rows that became registry entries (a row without transport counts for
            both TCP and UDP entries but once here).
        reserved: rows without a service name marked Reserved.
        unassigned: rows without a service name marked Unassigned.
        no_port: named rows without a port (service names for DNS-SD and the like).
        other: other skipped rows (De-registered, Removed, private use, unknown transport).
    """

    rows: int
    entries: int
    reserved: int
    unassigned: int
    no_port: int
    other: int


def one_line(text: str) -> str | None:
    """Collapse whitespace (IANA descriptions span lines); ``None`` for empty text."""
    joined = " ".join(text.split())
    return joined or None


def parse_services(
    lines: Iterable[str], *, source: str, frequency_column: bool = False
) -> Iterator[Entry]:
    """Parse the ``services(5)`` format: ``name port/proto [aliases ...] [# comment]``.

    ``nmap-services`` uses the same layout with the open-frequency (0.0-1.0) as the third
    column instead of aliases, and a comment that describes the service.

    Args:
        lines: the file's lines.
        source: the provenance put on each entry (``system`` or ``nmap``).
        frequency_column: True for ``nmap-services``.

    Yields:
        One entry per well-formed line; malformed lines are skipped, as libc does.
    """
    for raw in lines:
        text, _, comment = raw.partition("#")
        fields = text.split()
        if len(fields) < 2:
            continue
        m = _PORT_PROTO.match(fields[1].lower())
        if m is None:
            continue
        port = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else None
        proto = m.group(3)
        if port > 65535 or (end is not None and not port < end <= 65535) or proto not in PROTOS:
            continue
        frequency: float | None = None
        aliases: tuple[str, ...] = ()
        if frequency_column:
            try:
                frequency = float(fields[2]) if len(fields) > 2 else None
            except ValueError:
                frequency = None
        else:
            aliases = tuple(fields[2:])
        description = one_line(comment)
        yield Entry(port, end, proto, fields[0], aliases, description, source, None, frequency)


def read_services_file(path: Path, *, source: str, frequency_column: bool = False) -> list[Entry]:
    """Read and parse a ``services(5)``-style file.

    Raises:
        RegistryError: the file cannot be read.
    """
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return list(parse_services(f, source=source, frequency_column=frequency_column))
    except OSError as err:
        raise RegistryError(f"cannot read {path}: {err.strerror}", errno=err.errno) from err


def _port_span(text: str) -> tuple[int, int | None] | None:
    lo, sep, hi = text.strip().partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()):
        return None
    first, last = int(lo), int(hi) if sep else None
    if first > 65535 or (last is not None and not first <= last <= 65535):
        return None
    return first, (None if last == first else last)


def parse_iana_csv(stream: TextIO, *, name: str = "IANA CSV") -> tuple[list[Entry], IanaStats]:
    """Parse IANA's "Service Name and Transport Protocol Port Number Registry" CSV.

    The real file (https://www.iana.org/assignments/service-names-port-numbers/) has
    quoted descriptions spanning lines, port ranges (``6000-6063``), named rows without a
    port, rows without a name (Reserved, Unassigned), rows without a transport (taken here
    as TCP and UDP both) and the transports tcp, udp, sctp and dccp. Columns are found by
    their header names.

    Args:
        stream: the CSV text.
        name: how to call the input in error messages (a path).

    Returns:
        The entries (source ``iana``) and counts of what was read and skipped.

    Raises:
        RegistryError: not CSV, or the header lacks a needed column.
    """
    import csv

    try:
        reader = csv.reader(stream)
        header = [h.strip().lstrip("\ufeff") for h in next(reader, [])]
        missing = [c for c in _IANA_COLUMNS if c not in header]
        if missing:
            raise RegistryError(
                f"{name}: not an IANA service-names CSV (no column {missing[0]!r}; "
                "expected the header of service-names-port-numbers.csv)"
            )
        i_name, i_port, i_proto, i_desc = (header.index(c) for c in _IANA_COLUMNS)
        width = max(i_name, i_port, i_proto, i_desc) + 1
        entries: list[Entry] = []
        rows = used = reserved = unassigned = no_port = other = 0
        for row in reader:
            if not any(row):
                continue
            rows += 1
            row += [""] * (width - len(row))
            service = row[i_name].strip()
            description = one_line(row[i_desc])
            span = _port_span(row[i_port])
            proto = row[i_proto].strip().lower()
            if not service:
                kind = (description or "").lower()
                if kind == "reserved":
                    reserved += 1
                elif kind == "unassigned":
                    unassigned += 1
                else:
                    other += 1
                continue
            if span is None:
                if row[i_port].strip():
                    other += 1
                else:
                    no_port += 1
                continue
            protos = (proto,) if proto else ("tcp", "udp")
            if not set(protos) <= set(PROTOS):
                other += 1
                continue
            used += 1
            for p in protos:
                entries.append(
                    Entry(span[0], span[1], p, service, (), description, "iana", None, None)
                )
    except csv.Error as err:
        raise RegistryError(f"{name}: not valid CSV: {err}") from err
    except UnicodeDecodeError as err:
        raise RegistryError(f"{name}: not UTF-8 text ({err.reason})") from err
    stats = IanaStats(rows, used, reserved, unassigned, no_port, other)
    return entries, stats


def read_iana_csv(path: Path) -> tuple[list[Entry], IanaStats]:
    """Read and parse an IANA CSV file (see ``parse_iana_csv``).

    Raises:
        RegistryError: the file cannot be read or is not an IANA CSV.
    """
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return parse_iana_csv(f, name=str(path))
    except OSError as err:
        raise RegistryError(f"cannot read {path}: {err.strerror}", errno=err.errno) from err


def parse_iana_text(text: str, *, name: str = "IANA CSV") -> tuple[list[Entry], IanaStats]:
    """``parse_iana_csv`` over a string (tests, downloaded bytes already decoded)."""
    import io

    return parse_iana_csv(io.StringIO(text, newline=""), name=name)
