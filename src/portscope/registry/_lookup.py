"""Queries over the merged registry: by port, port range, port/transport or name."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from portscope.errors import InvalidInput, InvalidPort, InvalidPortSpec
from portscope.models import Proto, Service
from portscope.registry._sources import PROTOS, Entry
from portscope.registry._store import PROTO_INDEX, SOURCE_ORDER, STORE

_PROTO_WORDS = ", ".join(PROTOS)
_NUMBER = re.compile(r"^[+-]?\d+$")
_SPAN = re.compile(r"^(\d+)-(\d+)$")
_NAME = re.compile(r"^[\w.+*:-]+(?: [\w.+*:-]+)*$")
_SOURCE_RANK = {s: i for i, s in enumerate(SOURCE_ORDER)}
_SOURCE_BONUS = {"curated": 8, "iana": 4, "system": 2, "nmap": 0}


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
    try:
        return Proto(value.strip().lower())
    except ValueError:
        raise InvalidPort(f"{value!r} is not a transport: expected one of {_PROTO_WORDS}") from None


def _port(text: str, whole: str) -> int:
    if not _NUMBER.match(text):
        raise InvalidPort(f"{whole!r}: {text!r} is not a port number (0-65535)")
    value = int(text)
    if not 0 <= value <= 65535:
        raise InvalidPort(f"{value} is not a port: ports are 0-65535")
    return value


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
        InvalidPort: a port outside 0-65535, an empty port or transport around ``/``, an
            unknown transport, or a transport that contradicts ``proto``.
        InvalidInput: an empty query or one with characters no service name has.
    """
    wanted = parse_proto(proto)
    if isinstance(query, int) and not isinstance(query, bool):
        return Query("port", str(query), port=_port(str(query), str(query)), proto=wanted)
    text = str(query).strip()
    if not text:
        raise InvalidInput(
            "empty query: give a port (443), a range (8000-8100), "
            "port/transport (53/udp) or a service name (https)"
        )
    body = text
    if "/" in text:
        left, _, right = text.partition("/")
        left, right = left.strip(), right.strip()
        if not left or not right or "/" in right:
            raise InvalidPort(
                f"{text!r} is not PORT/TRANSPORT: expected e.g. 53/udp or udp/53 "
                f"(transports: {_PROTO_WORDS})"
            )
        if left.lower() in PROTOS:
            given, body = left, right
        elif right.lower() in PROTOS:
            given, body = right, left
        else:
            raise InvalidPort(
                f"{text!r}: neither {left!r} nor {right!r} is a transport ({_PROTO_WORDS})"
            )
        named = parse_proto(given)
        if wanted is not None and named is not wanted:
            raise InvalidPort(f"{text!r} asks for {named} but the transport given is {wanted}")
        wanted = named
    span = _SPAN.match(body)
    if span:
        lo, hi = _port(span.group(1), text), _port(span.group(2), text)
        if lo > hi:
            raise InvalidPort(f"{text!r}: a range goes from low to high ({hi}-{lo}?)")
        if lo == hi:
            return Query("port", text, port=lo, proto=wanted)
        return Query("range", text, port=lo, port_end=hi, proto=wanted)
    if _NUMBER.match(body) or (body[:1] == "-" and body[1:2].isdigit()):
        return Query("port", text, port=_port(body, text), proto=wanted)
    body = " ".join(body.split())
    if not _NAME.match(body):
        raise InvalidInput(
            f"{text!r} is not a port, range or service name: expected e.g. 443, "
            "8000-8100, 53/udp or https"
        )
    return Query("name", text, name=body.lower(), proto=wanted)


def to_service(e: Entry) -> Service:
    """A registry entry as the public ``Service``."""
    return Service(
        port=e[0],
        proto=Proto(e[2]),
        name=e[3],
        aliases=e[4],
        description=e[5],
        source=e[6],
        notes=e[7],
        port_end=e[1],
        frequency=e[8],
    )


def _entry_order(e: Entry) -> tuple[int, int, int, str]:
    return (e[0], PROTO_INDEX[e[2]], _SOURCE_RANK[e[6]], e[3])


def _at_ports(lo: int, hi: int, proto: str | None) -> list[Entry]:
    by_port, ranges = STORE.data()
    ports = range(lo, hi + 1) if hi - lo < len(by_port) else sorted(by_port)
    found: list[Entry] = []
    for p in ports:
        if lo <= p <= hi and p in by_port:
            found += STORE.at(p)
    found += (e for e in ranges if e[0] <= hi and lo <= (e[1] or e[0]))
    if proto is not None:
        found = [e for e in found if e[2] == proto]
    if lo == hi:
        found.sort(key=lambda e: (PROTO_INDEX[e[2]], _SOURCE_RANK[e[6]], e[0], e[3]))
    else:
        found.sort(key=_entry_order)
    return found


def _word_in(word: str, text: str) -> bool:
    i = text.find(word)
    while i >= 0:
        before = text[i - 1] if i else " "
        after = text[i + len(word)] if i + len(word) < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return True
        i = text.find(word, i + 1)
    return False


def _score_word(word: str, name: str, aliases: tuple[str, ...], description: str) -> int:
    if name == word:
        return 100
    if word in aliases:
        return 90
    if name.startswith(word):
        return 70
    if any(a.startswith(word) for a in aliases):
        return 60
    if word in name:
        return 50
    if any(word in a for a in aliases):
        return 45
    if word in description:
        return 30 if _word_in(word, description) else 15
    return 0


def _search(text: str, proto: str | None) -> list[Entry]:
    blob, starts, ref_ports, ref_items = STORE.text()
    ranges = STORE.data()[1]
    words = text.split()
    first = words[0]
    candidates: list[int] = []
    i = blob.find(first)
    while i >= 0:
        line = bisect_right(starts, i) - 1
        candidates.append(line)
        if line + 1 >= len(starts):
            break
        i = blob.find(first, starts[line + 1])
    scored: list[tuple[int, float, int, int, Entry]] = []
    for line in candidates:
        port = ref_ports[line]
        e = ranges[ref_items[line]] if port < 0 else STORE.at(port)[ref_items[line]]
        if proto is not None and e[2] != proto:
            continue
        name = e[3].lower()
        aliases = tuple(a.lower() for a in e[4])
        description = (e[5] or "").lower()
        total = 0
        for w in words:
            s = _score_word(w, name, aliases, description)
            if s == 0:
                break
            total += s
        else:
            total += _SOURCE_BONUS[e[6]]
            scored.append((-total, -(e[8] or 0.0), e[0], PROTO_INDEX[e[2]], e))
    scored.sort(key=lambda t: t[:4])
    return [t[4] for t in scored]


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
    q = parse_query(query, proto)
    wanted = q.proto.value if q.proto is not None else None
    if q.kind == "name":
        assert q.name is not None
        return [to_service(e) for e in _search(q.name, wanted)]
    assert q.port is not None
    hi = q.port if q.port_end is None else q.port_end
    return [to_service(e) for e in _at_ports(q.port, hi, wanted)]


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
    curated = sorted({e[0] for e in curated_entries() if e[2] == wanted.value and e[1] is None})
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
