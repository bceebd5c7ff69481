"""Queries over the merged registry: by port, port range, port/transport or name."""

from __future__ import annotations

from dataclasses import dataclass

from portscope.errors import InvalidPortSpec
from portscope.models import Proto, Service
from portscope.registry import _answer
from portscope.registry._layout import PROTO_INDEX, Entry
from portscope.registry._store import STORE


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed lookup query.

    Attributes:
        kind: ``port``, ``range`` or ``name``.
        text: the query as given.
        port: the port, or first port of a range; ``None`` for names.
        port_end: last port of a range, else ``None``.
        name: the lower-case search text for names, else ``None``.
        proto: the transport asked for, or ``None`` for all.
    """

    kind: str
    text: str
    port: int | None = None
    port_end: int | None = None
    name: str | None = None
    proto: Proto | None = None


def parse_proto(value: Proto | str | None) -> Proto | None:
    """A transport from ``tcp``/``udp``/``sctp``/``dccp`` (any case) or ``None``.

    Raises:
        InvalidPort: any other transport name.
    """
    if value is None or isinstance(value, Proto):
        return value
    return Proto(_answer.check_proto(value))


def parse_query(query: str | int, proto: Proto | str | None = None) -> Query:
    """Parse a lookup query.

    Accepted: a port (``443``), a range (``8000-8100``), a port or range with a transport
    in either order (``udp/53``, ``53/udp``), a service name or words of a description
    (``https``, ``postgres``, ``message queue``), optionally with a transport
    (``dns/udp``).

    Args:
        query: the query.
        proto: restrict to this transport; must agree with one given in ``query``.

    Returns:
        The parsed query.

    Raises:
        InvalidPort: a port outside 0-65535, a port or range that is not ASCII digits
            (``+443``, ``٤٤٣``, more than 5 digits), a range with a missing end (``80-``)
            or reversed, an empty port or transport around ``/``, an unknown transport,
            or a transport that contradicts ``proto`` (messages of ``portscope._ports``).
        InvalidInput: an empty query or one with characters no service name has.
    """
    kind, text, port, port_end, name, wanted = _answer.parse_query(query, proto)
    return Query(kind, text, port, port_end, name, Proto(wanted) if wanted else None)


def to_service(e: Entry) -> Service:
    """A registry entry as the public ``Service``."""
    return Service(
        port=e.port,
        proto=Proto(e.proto),
        name=e.name,
        aliases=e.aliases,
        description=e.description,
        source=e.source,
        notes=e.notes,
        port_end=e.port_end,
        frequency=e.frequency,
    )


def lookup(query: str | int, proto: Proto | str | None = None) -> list[Service]:
    """What the registry knows about a port, a port range or a service name.

    Sources are merged (see ``registry_sources``); each ``Service`` keeps the source of
    its name in ``source``. A port answers with every service registered on it, per
    transport, best source first (curated, IANA, /etc/services, nmap), including
    registered ranges that cover it (``x11`` 6000-6063). A name is a ranked search over
    names, aliases and descriptions: exact name, exact alias, name prefix, substring,
    whole word in the description, then any substring of it; curated entries and then
    nmap's open-frequency break ties.

    Args:
        query: ``443``, ``"443"``, ``"8000-8100"``, ``"udp/53"``, ``"53/udp"``,
            ``"https"``, ``"postgres"``, ``"message broker"``.
        proto: only this transport (``tcp``, ``udp``, ``sctp``, ``dccp``), or all.

    Returns:
        Matching services, best first for names, by port and transport otherwise; empty
        when nothing is registered.

    Raises:
        InvalidPort: a port outside 0-65535 or a malformed ``port/transport``.
        InvalidInput: an empty or malformed query.
    """
    return [to_service(e) for e in _answer.entries(_answer.parse_query(query, proto))]


def service_name(port: int, proto: Proto | str = "tcp") -> str | None:
    """The preferred short name of the service on ``port``/``proto``, or ``None``.

    Curated names win, then IANA's, /etc/services' and nmap's. Registered ranges up to
    100 ports wide name each of their ports (``x11`` for 6000-6063); wider ones do not.
    One dictionary lookup after the registry index is loaded once per process, so it is
    cheap to call for every row of a socket table.

    Args:
        port: the port number.
        proto: ``tcp``, ``udp``, ``sctp`` or ``dccp`` (str or ``Proto``).

    Returns:
        The name, or ``None`` when no source names the port or the arguments are not a
        port and transport.
    """
    i = PROTO_INDEX.get(proto)
    if i is None or not isinstance(port, int):
        return None
    return STORE.index()[0].get(port * 4 + i)


def top_ports(n: int, proto: Proto | str = Proto.TCP) -> list[int]:
    """The ``n`` most commonly open ports for a transport, most common first.

    The order is nmap's open-frequency from ``nmap-services`` (what ``nmap --top-ports``
    uses). Without nmap-services (or for ports it does not list) the curated table's
    ports follow, ascending, then every other port from 1 up: so any ``n`` up to 65535
    gives ``n`` distinct ports. Port 0 is never included.

    Args:
        n: how many ports, 1-65535.
        proto: ``tcp``, ``udp`` or ``sctp``.

    Returns:
        ``n`` distinct ports.

    Raises:
        InvalidPortSpec: ``n`` outside 1-65535.
        InvalidPort: an unknown transport.
    """
    wanted = parse_proto(proto)
    assert wanted is not None
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 65535:
        raise InvalidPortSpec(f"top ports: {n!r} is not a count: expected 1-65535")
    ordered = [p for p in STORE.index()[1].get(wanted.value, ()) if p != 0]
    if len(ordered) >= n:
        return ordered[:n]
    from portscope.registry._curated import curated_entries

    seen = set(ordered)
    curated = sorted(
        {e.port for e in curated_entries() if e.proto == wanted.value and e.port_end is None}
    )
    for p in curated:
        if p not in seen and p != 0:
            ordered.append(p)
            seen.add(p)
    p = 1
    while len(ordered) < n:
        if p not in seen:
            ordered.append(p)
        p += 1
    return ordered[:n]
