"""The one parser for ports, port ranges, ``port/transport`` and service names.

Every command and API that takes a port goes through here, so ``who redis``,
``ls --port redis``, ``why connect localhost:http-alt`` and ``scan -p http`` accept the same
words, reject the same values with the same message, and agree about port 0.

Digits are ASCII only (``str.isdigit`` accepts ``²``, which ``int()`` then rejects) and at
most 5 of them, checked before ``int()`` (Python refuses to convert more than 4,300 digits).
Service names resolve through portscope's own registry (curated table, IANA, /etc/services,
nmap-services: ``portscope.registry``), not ``getservbyname``, so every face knows the same
names; a name must match a service name or alias exactly (any case).

Port 0 (RFC 6335 section 6: reserved) names no socket on the wire, but binding to it asks the
kernel for any free port, and ``lookup 0`` is a fair question: callers say ``allow_zero``.
"""

from __future__ import annotations

# ``portscope lookup``'s fast path parses ports here: no typing, models or error classes at
# import time (a valid port needs none of them).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from portscope.errors import InvalidPort
    from portscope.models import Proto

PORT_MAX = 65535
_MAX_DIGITS = 5
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.+*")
_TRANSPORTS = ("tcp", "udp", "sctp", "dccp")


def _invalid(message: str) -> InvalidPort:
    from portscope.errors import InvalidPort

    return InvalidPort(message)


def _short(text: str) -> str:
    """The value as it goes into an error message: repr, cut to 40 characters."""
    shown = repr(text)
    return shown if len(shown) <= 42 else shown[:40] + "...'"


def is_port_number(text: str) -> bool:
    """True when ``text`` is 1 to 5 ASCII digits (a candidate port number)."""
    return 0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()


def check_port(port: int, *, allow_zero: bool = False) -> int:
    """Return ``port`` when it is a port number: 1-65535, or 0-65535 with ``allow_zero``.

    Raises:
        InvalidPort: not an int (bools are refused), or out of range.
    """
    low = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= PORT_MAX:
        raise _invalid(f"port {port!r} is out of range; accepted: {low}-{PORT_MAX}")
    return port


def parse_proto(text: str, *, accepted: tuple[str, ...] = ("tcp", "udp")) -> Proto:
    """A transport name (any case) among ``accepted``.

    Raises:
        InvalidPort: any other word.
    """
    from portscope.models import Proto

    word = text.strip().lower()
    if word not in accepted:
        raise _invalid(f"unknown transport {_short(text)}; accepted: {', '.join(accepted)}")
    return Proto(word)


def port_by_name(name: str, proto: Proto | str | None = None) -> int | None:
    """The port of a service name or alias (exact, any case) from portscope's registry.

    Args:
        name: ``http``, ``redis``, ``http-alt`` ...
        proto: prefer this transport's registration; ``None`` tries TCP, then UDP.

    Returns:
        The port, or ``None`` when no source knows the name.
    """
    word = name.strip().lower()
    if not word or len(word) > 64 or not set(word) <= _NAME_CHARS:
        return None
    from portscope.registry import lookup

    wanted = [str(proto)] if proto is not None else ["tcp", "udp"]
    try:
        found = lookup(word)
    except ValueError:
        return None
    for transport in wanted:
        for service in found:
            if service.proto.value != transport:
                continue
            if service.name.lower() == word or word in (a.lower() for a in service.aliases):
                return service.port
    return None


def parse_port(
    text: str | int,
    *,
    allow_zero: bool = False,
    names: bool = True,
    proto: Proto | str | None = None,
) -> int:
    """A port number or a service name, as a number.

    Args:
        text: ``"443"``, ``443``, ``"https"``.
        allow_zero: accept 0 (bind: "any port"; lookup).
        names: accept service names (resolved through the registry).
        proto: the transport whose registration a name should use first.

    Returns:
        The port, 0-65535.

    Raises:
        InvalidPort: a number out of range, non-ASCII digits, more than 5 digits, an unknown
            or malformed name.
    """
    low = 0 if allow_zero else 1
    if isinstance(text, int):
        return check_port(text, allow_zero=allow_zero)
    token = text.strip()
    if is_port_number(token):
        port = int(token)
        if not low <= port <= PORT_MAX:
            raise _invalid(f"port {_short(token)} is out of range; accepted: {low}-{PORT_MAX}")
        return port
    if token.isascii() and token.isdigit():
        raise _invalid(f"port {_short(token)} is out of range; accepted: {low}-{PORT_MAX}")
    if names:
        port_or_none = port_by_name(token, proto)
        if port_or_none is not None and port_or_none >= low:
            return port_or_none
        raise _invalid(
            f"unknown port {_short(text)}; accepted: a number {low}-{PORT_MAX} "
            "or a service name like 'http'"
        )
    raise _invalid(f"bad port {_short(text)}; accepted: a number {low}-{PORT_MAX}")


def parse_port_range(
    text: str,
    *,
    allow_zero: bool = False,
    names: bool = True,
    open_ends: bool = False,
    proto: Proto | str | None = None,
) -> tuple[int, int]:
    """``PORT`` or ``LOW-HIGH`` (inclusive) as ``(low, high)``.

    Args:
        text: ``"8080"``, ``"8000-8100"``; with ``open_ends`` also ``"-1024"`` and
            ``"1024-"`` (nmap's ``-p`` syntax: the missing end is 1 or 65535).
        allow_zero: accept port 0.
        names: accept a service name for a single port.
        open_ends: accept a missing low or high end.
        proto: the transport whose registration a name should use first.

    Raises:
        InvalidPort: a bad end, a reversed range (``90-80``) or a missing end.
    """
    token = text.strip()
    lo_text, dash, hi_text = token.partition("-")
    if not dash or (not is_port_number(lo_text.strip()) and lo_text.strip()):
        # a single port or name (service names may contain '-', like http-alt)
        port = parse_port(token, allow_zero=allow_zero, names=names, proto=proto)
        return port, port
    low_default = 0 if allow_zero else 1
    if (not lo_text.strip() or not hi_text.strip()) and not open_ends:
        raise _invalid(
            f"port range {_short(text)} is missing an end; accepted: LOW-HIGH like 8000-8100"
        )
    lo = parse_port(lo_text, allow_zero=allow_zero, names=False) if lo_text.strip() else low_default
    hi = parse_port(hi_text, allow_zero=allow_zero, names=False) if hi_text.strip() else PORT_MAX
    if lo > hi:
        raise _invalid(f"reversed port range {_short(text)}; write it low-high: {hi}-{lo}")
    return lo, hi


def parse_port_proto(
    text: str,
    *,
    allow_zero: bool = False,
    names: bool = True,
    accepted: tuple[str, ...] = ("tcp", "udp"),
) -> tuple[int, Proto | None]:
    """``PORT``, ``PORT/udp``, ``udp/PORT`` or a service name (``dns/udp``).

    Returns:
        ``(port, transport)``; the transport is ``None`` when none was given.

    Raises:
        InvalidPort: a bad port or name, or an unknown transport.
    """
    token = text.strip()
    first, slash, second = token.partition("/")
    if not slash:
        return parse_port(token, allow_zero=allow_zero, names=names), None
    if not first.strip() or not second.strip():
        raise _invalid(f"{_short(text)}: give PORT/TRANSPORT like 53/udp")
    if first.strip().lower() in _TRANSPORTS and second.strip().lower() not in _TRANSPORTS:
        first, second = second, first
    proto = parse_proto(second, accepted=accepted)
    return parse_port(first, allow_zero=allow_zero, names=names, proto=proto), proto
