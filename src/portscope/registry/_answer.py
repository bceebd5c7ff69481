"""A lookup's answer on lean records: the query, the entries, the port facts.

The typed API (``lookup``, ``port_facts``) wraps these functions, and ``portscope
lookup`` calls them directly on the compiled cache's entries: building the
``Service``/``PortFacts`` dataclasses, and importing ``dataclasses``, ``typing``,
``pathlib`` and argparse, would cost that command more than three times its own work.
So this module imports nothing beyond ``os``, the cache and the port parser (the errors
only to raise one), and both paths share one implementation of parsing and ranking. The
text and JSON shaping of the answer is ``render._lookup``'s.

Shapes:

* a query: ``(kind, text, port, port_end, name, proto)``, fields as in ``Query``;
* an entry: ``Entry`` (``registry._layout``), read by field name;
* kernel settings: ``(ephemeral (first, last), reserved ports, unprivileged_start,
  from_kernel)``, fields as in ``KernelPorts``;
* port facts: ``(port, range, privileged, ephemeral, reserved)``, as in ``PortFacts``.
"""

from __future__ import annotations

import os

from portscope import _ports
from portscope.registry._layout import PORTS, PROTO_INDEX, PROTOS, SOURCE_ORDER
from portscope.registry._store import STORE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from portscope.registry._layout import Entry

    RawQuery = tuple[str, str, int | None, int | None, str | None, str | None]
    Kernel = tuple[tuple[int, int], frozenset[int], int, bool]
    Facts = tuple[int, str, bool, bool, bool]

_PROTO_WORDS = ", ".join(PROTOS)
_NAME_PUNCTUATION = str.maketrans("", "", "_.+*:- ")
_SOURCE_RANK = {s: i for i, s in enumerate(SOURCE_ORDER)}
_SOURCE_BONUS = {"curated": 8, "iana": 4, "system": 2, "nmap": 0}
# Linux defaults, used where /proc/sys cannot be read (other platforms, sandboxes).
DEFAULT_KERNEL: Kernel = ((32768, 60999), frozenset(), 1024, False)

# -- queries ---------------------------------------------------------------------------


def _invalid_port(message: str) -> Exception:
    from portscope.errors import InvalidPort  # only bad input needs the error classes

    return InvalidPort(message)


def _invalid_input(message: str) -> Exception:
    from portscope.errors import InvalidInput

    return InvalidInput(message)


def check_proto(value: str) -> str:
    """A transport name (``tcp``, ``udp``, ``sctp``, ``dccp``, any case) in lower case.

    Raises:
        InvalidPort: any other transport name.
    """
    word = value.strip().lower()
    if word not in PROTOS:
        raise _invalid_port(f"{value!r} is not a transport: expected one of {_PROTO_WORDS}")
    return word


def _is_numeric(text: str) -> bool:
    """Digits (any script), signs, dashes and blanks only: meant as a port or a range.

    Such a query goes to the port parser, which accepts ASCII digits only and says what is
    wrong (``80-``, ``+443``, ``٤٤٣``) instead of searching for it as a name.
    """
    return any(c.isdecimal() for c in text) and all(
        c.isdecimal() or c in "+-" or c.isspace() for c in text
    )


def parse_query(query: str | int, proto: str | None = None) -> RawQuery:
    """Parse a lookup query; ``registry.parse_query`` documents the syntax and errors."""
    wanted = check_proto(proto) if proto is not None else None
    if isinstance(query, int) and not isinstance(query, bool):
        return ("port", str(query), _ports.check_port(query, allow_zero=True), None, None, wanted)
    text = str(query).strip()
    if not text:
        raise _invalid_input(
            "empty query: give a port (443), a range (8000-8100), "
            "port/transport (53/udp) or a service name (https)"
        )
    body = text
    if "/" in text:
        left, _, right = text.partition("/")
        left, right = left.strip(), right.strip()
        if not left or not right or "/" in right:
            raise _invalid_port(
                f"{text!r} is not PORT/TRANSPORT: expected e.g. 53/udp or udp/53 "
                f"(transports: {_PROTO_WORDS})"
            )
        if left.lower() in PROTOS:
            given, body = left, right
        elif right.lower() in PROTOS:
            given, body = right, left
        else:
            raise _invalid_port(
                f"{text!r}: neither {left!r} nor {right!r} is a transport ({_PROTO_WORDS})"
            )
        named = check_proto(given)
        if wanted is not None and named != wanted:
            raise _invalid_port(f"{text!r} asks for {named} but the transport given is {wanted}")
        wanted = named
    if _is_numeric(body):
        lo, hi = _ports.parse_port_range(body, allow_zero=True, names=False)
        if lo == hi:
            return ("port", text, lo, None, None, wanted)
        return ("range", text, lo, hi, None, wanted)
    body = " ".join(body.split())
    # ^[\w.+*:-]+(?: [\w.+*:-]+)*$, where \w is str.isalnum() or "_", on words one space apart
    letters = body.translate(_NAME_PUNCTUATION)
    if letters and not letters.isalnum():
        raise _invalid_input(
            f"{text!r} is not a port, range or service name: expected e.g. 443, "
            "8000-8100, 53/udp or https"
        )
    return ("name", text, None, None, body.lower(), wanted)


# -- entries ---------------------------------------------------------------------------


def _entry_order(e: Entry) -> tuple[int, int, int, str]:
    return (e.port, PROTO_INDEX[e.proto], _SOURCE_RANK[e.source], e.name)


def _one_port_order(e: Entry) -> tuple[int, int, int, str]:
    return (PROTO_INDEX[e.proto], _SOURCE_RANK[e.source], e.port, e.name)


def at_ports(lo: int, hi: int, proto: str | None) -> list[Entry]:
    """Entries on ports ``lo``-``hi`` (ranges that overlap included), ``lookup``'s order.

    One port: by transport, then source priority. A range: by port, transport, source.
    """
    if lo == hi:
        here, ranges = STORE.one_port(lo)
        found = list(here)
    else:
        data = STORE.data()
        found, ranges = data.between(lo, hi), data.ranges
    found += (e for e in ranges if e.port <= hi and lo <= (e.port_end or e.port))
    if proto is not None:
        found = [e for e in found if e.proto == proto]
    found.sort(key=_one_port_order if lo == hi else _entry_order)
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


def _line_at(starts: Sequence[int], offset: int) -> int:
    """The line holding ``offset``: the last one starting at or before it (bisect)."""
    lo, hi = 0, len(starts)
    while lo < hi:
        mid = (lo + hi) // 2
        if starts[mid] <= offset:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def search(text: str, proto: str | None) -> list[Entry]:
    """Entries whose name, aliases or description hold every word of ``text``, best first.

    Args:
        text: lower-case words, one space apart (``parse_query``'s ``name``).
        proto: only this transport, or all.
    """
    lines = STORE.text()
    blob, start, end, starts = lines.buffer, lines.start, lines.end, lines.starts
    firsts, refs = lines.firsts, lines.refs
    words = text.split()
    first = words[0].encode()
    candidates: list[int] = []
    i = blob.find(first, start, end)
    while i >= 0:
        line = _line_at(starts, i - start)
        candidates.append(line)
        if line + 1 >= len(starts):
            break
        i = blob.find(first, start + starts[line + 1], end)
    members = [r for n in candidates for r in range(firsts[n], firsts[n + 1])]
    by_port, ranges = STORE.entries_of({p for p in (refs[2 * r] for r in members) if p >= 0})
    if STORE.text() is not lines:  # the cache was rebuilt meanwhile (a source changed)
        return search(text, proto)
    scored: list[tuple[int, float, int, int, tuple[int, int], Entry]] = []
    for r in members:
        port, item = refs[2 * r], refs[2 * r + 1]
        e = ranges[item] if port < 0 else by_port[port][item]
        if proto is not None and e.proto != proto:
            continue
        name = e.name.lower()
        aliases = tuple(a.lower() for a in e.aliases)
        description = (e.description or "").lower()
        total = 0
        for w in words:
            s = _score_word(w, name, aliases, description)
            if s == 0:
                break
            total += s
        else:
            total += _SOURCE_BONUS[e.source]
            # ties keep the entries' order: by port, as stored; range entries last
            order = (port if port >= 0 else PORTS, item)
            scored.append((-total, -(e.frequency or 0.0), e.port, PROTO_INDEX[e.proto], order, e))
    scored.sort(key=lambda t: t[:5])
    return [t[5] for t in scored]


def entries(query: RawQuery, transports: Collection[str] | None = None) -> list[Entry]:
    """Every entry a parsed query matches, in ``lookup``'s order.

    Args:
        query: the parsed query.
        transports: only these transports (``-t -u``: TCP and UDP), or all.
    """
    kind, _, port, port_end, name, proto = query
    if kind == "name":
        assert name is not None
        found = search(name, proto)
    else:
        assert port is not None
        found = at_ports(port, port if port_end is None else port_end, proto)
    if transports is not None:
        found = [e for e in found if e.proto in transports]
    return found


# -- port facts ------------------------------------------------------------------------


def range_of(port: int) -> str:
    """The RFC 6335 (section 6) range of a port 0-65535: ``system``, ``user``, ``dynamic``."""
    if port <= 1023:
        return "system"
    if port <= 49151:
        return "user"
    return "dynamic"


def parse_port_list(text: str) -> frozenset[int]:
    """Parse the kernel's ``ip_local_reserved_ports`` syntax: ``8080,9000-9010``.

    Raises:
        InvalidPort: a part that is not a port or a range (``_ports.parse_port_range``).
    """
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        if part.strip():
            lo, hi = _ports.parse_port_range(part, allow_zero=True, names=False)
            ports.update(range(lo, hi + 1))
    return frozenset(ports)


def read_kernel(proc: str | os.PathLike[str] = "/proc") -> Kernel:
    """This machine's port settings, ``DEFAULT_KERNEL`` when unreadable (``kernel_ports``).

    The three ``net.ipv4`` sysctls come through ``portscope._proc``, the one reader of
    ``/proc`` (ip-sysctl.rst); ``proc`` is the procfs root (a seam for tests).
    """
    from portscope import _proc

    ephemeral = _proc.ip_local_port_range(proc)
    reserved_text = _proc.ip_local_reserved_ports(proc)
    start = _proc.ip_unprivileged_port_start(proc)
    if ephemeral is None or reserved_text is None or start is None:
        return DEFAULT_KERNEL
    try:
        reserved = parse_port_list(reserved_text)
    except ValueError:
        return DEFAULT_KERNEL
    return (ephemeral, reserved, start, True)


def facts_of(port: int, kernel: Kernel) -> Facts:
    """(port, range, privileged, ephemeral, reserved) of a port 0-65535 (``port_facts``).

    Port 0 is not privileged: binding to it asks the kernel for any free port.
    """
    (lo, hi), reserved, start, _ = kernel
    is_reserved = port in reserved
    privileged = 0 < port < start
    return (port, range_of(port), privileged, lo <= port <= hi and not is_reserved, is_reserved)
