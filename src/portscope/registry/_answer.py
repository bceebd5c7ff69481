"""A lookup's answer on plain tuples: the query, the entries, the port facts, the text.

The typed API (``lookup``, ``port_facts``, ``render.registry``) wraps these functions, and
``portscope lookup`` calls them directly from the compiled cache's tuples: building the
``Service``/``PortFacts`` dataclasses, and importing ``dataclasses``, ``typing``,
``pathlib`` and argparse, would cost that command more than three times its own work.
So this module imports nothing beyond ``os`` and the cache (the errors only to raise
one), and both paths share one implementation of parsing, ranking and formatting.

Shapes (all tuples, as the cache stores them):

* a query: ``(kind, text, port, port_end, name, proto)``, fields as in ``Query``;
* an entry: ``Entry`` (``registry._sources``);
* kernel settings: ``(ephemeral (first, last), reserved ports, unprivileged_start,
  from_kernel)``, fields as in ``KernelPorts``;
* port facts: ``(port, range, privileged, ephemeral, reserved)``, as in ``PortFacts``.
"""

from __future__ import annotations

import os

from portscope.registry._store import PORTS, PROTO_INDEX, PROTOS, SOURCE_ORDER, STORE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from portscope.registry._sources import Entry

    RawQuery = tuple[str, str, int | None, int | None, str | None, str | None]
    Kernel = tuple[tuple[int, int], frozenset[int], int, bool]
    Facts = tuple[int, str, bool, bool, bool]

_PROTO_WORDS = ", ".join(PROTOS)
_NAME_PUNCTUATION = str.maketrans("", "", "_.+*:- ")
_SOURCE_RANK = {s: i for i, s in enumerate(SOURCE_ORDER)}
_SOURCE_BONUS = {"curated": 8, "iana": 4, "system": 2, "nmap": 0}
SYSCTL_DIR = "/proc/sys/net/ipv4"
# Linux defaults, used where /proc/sys cannot be read (other platforms, sandboxes).
DEFAULT_KERNEL: Kernel = ((32768, 60999), frozenset(), 1024, False)
RANGE_WORDS = {
    "system": "System port (RFC 6335: 0-1023, assigned by IANA with IETF review)",
    "user": "User port (RFC 6335: 1024-49151, registered with IANA)",
    "dynamic": "Dynamic/private port (RFC 6335: 49152-65535, never assigned)",
}
_RANGE_ORDER = list(RANGE_WORDS)

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


def _is_number(text: str) -> bool:
    # the regular expression ^[+-]?\d+$ (\d: Unicode decimal digits, as isdecimal)
    return (text[1:] if text[:1] in ("+", "-") else text).isdecimal()


def _port(text: str, whole: str) -> int:
    if not _is_number(text):
        raise _invalid_port(f"{whole!r}: {text!r} is not a port number (0-65535)")
    value = int(text)
    if not 0 <= value <= 65535:
        raise _invalid_port(f"{value} is not a port: ports are 0-65535")
    return value


def parse_query(query: str | int, proto: str | None = None) -> RawQuery:
    """Parse a lookup query; ``registry.parse_query`` documents the syntax and errors."""
    wanted = check_proto(proto) if proto is not None else None
    if isinstance(query, int) and not isinstance(query, bool):
        return ("port", str(query), _port(str(query), str(query)), None, None, wanted)
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
    first, dash, last = body.partition("-")
    if dash and first.isdecimal() and last.isdecimal():  # ^(\d+)-(\d+)$
        lo, hi = _port(first, text), _port(last, text)
        if lo > hi:
            raise _invalid_port(f"{text!r}: a range goes from low to high ({hi}-{lo}?)")
        if lo == hi:
            return ("port", text, lo, None, None, wanted)
        return ("range", text, lo, hi, None, wanted)
    if _is_number(body) or (body[:1] == "-" and body[1:2].isdigit()):
        return ("port", text, _port(body, text), None, None, wanted)
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
    return (e[0], PROTO_INDEX[e[2]], _SOURCE_RANK[e[6]], e[3])


def _one_port_order(e: Entry) -> tuple[int, int, int, str]:
    return (PROTO_INDEX[e[2]], _SOURCE_RANK[e[6]], e[0], e[3])


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
    found += (e for e in ranges if e[0] <= hi and lo <= (e[1] or e[0]))
    if proto is not None:
        found = [e for e in found if e[2] == proto]
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
            # ties keep the entries' order: by port, as stored; range entries last
            order = (port if port >= 0 else PORTS, item)
            scored.append((-total, -(e[8] or 0.0), e[0], PROTO_INDEX[e[2]], order, e))
    scored.sort(key=lambda t: t[:5])
    return [t[5] for t in scored]


def entries(query: RawQuery) -> list[Entry]:
    """Every entry a parsed query matches, in ``lookup``'s order."""
    kind, _, port, port_end, name, proto = query
    if kind == "name":
        assert name is not None
        return search(name, proto)
    assert port is not None
    return at_ports(port, port if port_end is None else port_end, proto)


def service_json(e: Entry) -> dict[str, Any]:
    """An entry as ``to_dict`` of its ``Service`` gives it (the same keys, in order)."""
    return {
        "port": e[0],
        "proto": e[2],
        "name": e[3],
        "aliases": list(e[4]),
        "description": e[5],
        "source": e[6],
        "notes": e[7],
        "port_end": e[1],
        "frequency": e[8],
    }


# -- port facts ------------------------------------------------------------------------


def range_of(port: int) -> str:
    """The RFC 6335 (section 6) range of a port 0-65535: ``system``, ``user``, ``dynamic``."""
    if port <= 1023:
        return "system"
    if port <= 49151:
        return "user"
    return "dynamic"


def parse_port_list(text: str) -> frozenset[int]:
    """Parse the kernel's ``ip_local_reserved_ports`` syntax: ``8080,9000-9010``."""
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ports.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(ports)


def _read_text(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read_kernel(sysctl_dir: str | os.PathLike[str] = SYSCTL_DIR) -> Kernel:
    """This machine's port settings, ``DEFAULT_KERNEL`` when unreadable (``kernel_ports``)."""
    try:
        lo, hi = (
            int(v) for v in _read_text(os.path.join(sysctl_dir, "ip_local_port_range")).split()
        )
        reserved = parse_port_list(_read_text(os.path.join(sysctl_dir, "ip_local_reserved_ports")))
        start = int(_read_text(os.path.join(sysctl_dir, "ip_unprivileged_port_start")))
    except (OSError, ValueError):
        return DEFAULT_KERNEL
    return ((lo, hi), reserved, start, True)


def facts_of(port: int, kernel: Kernel) -> Facts:
    """(port, range, privileged, ephemeral, reserved) of a port 0-65535 (``port_facts``)."""
    (lo, hi), reserved, start, _ = kernel
    is_reserved = port in reserved
    return (port, range_of(port), port < start, lo <= port <= hi and not is_reserved, is_reserved)


# -- the answer as text and as a JSON document -----------------------------------------


def _group(found: Sequence[Entry]) -> list[tuple[Entry, list[str]]]:
    """Rows: entries that differ only by transport share one row (``tcp,udp``)."""
    rows: list[tuple[Entry, list[str]]] = []
    where: dict[tuple[Any, ...], int] = {}
    for e in found:
        key = (e[0], e[1], e[3], e[4], e[5], e[6], e[7])
        if key in where:
            rows[where[key]][1].append(e[2])
        else:
            where[key] = len(rows)
            rows.append((e, [e[2]]))
    return rows


def _freq_text(frequency: float | None) -> str:
    if frequency is None or frequency == 0:
        return "-"
    pct = frequency * 100
    return f"{pct:.1f}%" if pct >= 0.1 else "<0.1%"


def _service_lines(found: Sequence[Entry]) -> list[str]:
    rows = _group(found)
    cells = [
        (
            f"{e[0]}-{e[1]}" if e[1] is not None else str(e[0]),
            ",".join(protos),
            e[3] + (f" ({', '.join(e[4])})" if e[4] else ""),
            e[6],
            _freq_text(e[8]),
            e[5] or "-",
        )
        for e, protos in rows
    ]
    header = ("PORT", "PROTO", "SERVICE", "SOURCE", "FREQ", "DESCRIPTION")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(5)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=False)).rstrip()]
    for (e, _), c in zip(rows, cells, strict=True):
        out.append("  ".join(v.ljust(w) for v, w in zip(c, [*widths, 0], strict=False)).rstrip())
        if e[7]:
            out.append(" " * (sum(widths) + 10) + f"! {e[7]}")
    return out


def _facts_lines(f: Facts, kernel: Kernel) -> list[str]:
    port, range_name, privileged, ephemeral, reserved = f
    (lo, hi), _, start, from_kernel = kernel
    src = "" if from_kernel else " (Linux default; /proc/sys not readable)"
    lines = [f"{port}: {RANGE_WORDS[range_name]}"]
    if privileged:
        lines.append(
            f"  privileged here: binding needs root or CAP_NET_BIND_SERVICE "
            f"(net.ipv4.ip_unprivileged_port_start = {start}){src}"
        )
    else:
        lines.append(
            f"  unprivileged here: any user may bind it "
            f"(net.ipv4.ip_unprivileged_port_start = {start}){src}"
        )
    if reserved:
        lines.append(
            "  reserved here: listed in net.ipv4.ip_local_reserved_ports, so the kernel "
            "never picks it as an ephemeral port"
        )
    elif ephemeral:
        lines.append(
            f"  ephemeral here: the kernel may pick it as a source port for outgoing "
            f"connections (net.ipv4.ip_local_port_range = {lo}-{hi}){src}"
        )
    else:
        lines.append(f"  not ephemeral here: outside net.ipv4.ip_local_port_range = {lo}-{hi}{src}")
    return lines


def _range_summary(facts: Sequence[Facts], kernel: Kernel) -> list[str]:
    (lo, hi), _, start, _ = kernel
    classes = sorted({f[1] for f in facts}, key=_RANGE_ORDER.index)
    eph = sum(f[3] for f in facts)
    priv = sum(f[2] for f in facts)
    return [
        f"{facts[0][0]}-{facts[-1][0]}: {len(facts)} ports; RFC 6335 {' + '.join(classes)}",
        f"  {priv} privileged here (below {start}), {eph} in this kernel's "
        f"ephemeral range {lo}-{hi}",
    ]


def answer_text(
    query: RawQuery,
    shown: Sequence[Entry],
    facts: Sequence[Facts],
    kernel: Kernel | None,
    total: int,
) -> str:
    """A lookup's answer as plain aligned text (``render.registry.write_lookup``).

    Args:
        query: the parsed query.
        shown: the entries to show (already limited).
        facts: every port's facts for a port or a range query; none for a name.
        kernel: the settings the facts come from (``None`` without facts).
        total: how many entries matched before the limit.

    Returns:
        The text, newline-terminated.
    """
    kind, name, proto = query[0], query[4], query[5]
    lines: list[str] = []
    if kind == "port" and facts and kernel is not None:
        lines += _facts_lines(facts[0], kernel)
    elif kind == "range" and facts and kernel is not None:
        lines += _range_summary(facts, kernel)
    if shown:
        if lines:
            lines.append("")
        lines += _service_lines(shown)
    elif kind == "name":
        lines.append(f"no service named or described {name!r} in the registry")
    else:
        lines.append(f"  no service registered{f'/{proto}' if proto else ''} in any loaded source")
    if total > len(shown):
        lines.append(f"... {total - len(shown)} more (--limit 0 shows all)")
    return "\n".join(lines) + "\n"


def answer_document(
    query: RawQuery,
    services: list[Any],
    facts: Sequence[Facts],
    kernel: Kernel | None,
    total: int,
) -> dict[str, Any]:
    """The ``lookup --json`` document (schema in docs/registry.md), JSON-ready.

    Args:
        query: the parsed query.
        services: the services shown, each as its JSON object.
        facts: as for ``answer_text``.
        kernel: as for ``answer_text``.
        total: how many services matched before the limit.
    """
    kind, text, port, port_end, name, proto = query
    doc_facts: dict[str, Any] | None = None
    if facts and kernel is not None:
        (lo, hi), _, start, from_kernel = kernel
        common = {
            "ephemeral_range": [lo, hi],
            "unprivileged_port_start": start,
            "from_kernel": from_kernel,
        }
        if kind == "port":
            _, range_name, privileged, ephemeral, reserved = facts[0]
            doc_facts = {
                "range": range_name,
                "privileged": privileged,
                "ephemeral": ephemeral,
                "reserved": reserved,
                **common,
            }
        else:
            doc_facts = {
                "ranges": sorted({f[1] for f in facts}, key=_RANGE_ORDER.index),
                "privileged": sum(f[2] for f in facts),
                "ephemeral": sum(f[3] for f in facts),
                "reserved": sum(f[4] for f in facts),
                **common,
            }
    return {
        "query": text,
        "kind": kind,
        "proto": proto,
        "port": port,
        "port_end": port_end,
        "name": name,
        "facts": doc_facts,
        "total": total,
        "services": services,
    }
