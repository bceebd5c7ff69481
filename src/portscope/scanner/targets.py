"""Scan targets and port specifications, parsed and checked before any packet is sent.

Targets are host names, IPv4/IPv6 addresses, CIDR blocks, address ranges
(``198.18.0.1-20``, ``198.18.0.1-198.18.0.20``, nmap octet ranges ``198.18.0-1.1,5``) and
files of those (``-iL``). A ``TargetSet`` keeps them as integer intervals and iterates
them lazily, so a /16 is never a list of 65,536 objects. Port specifications follow nmap's
``-p`` syntax (``22,80,1000-2000``, ``-``, ``T:80,U:53``, service names).
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from portscope._ports import parse_port_range
from portscope.errors import InvalidPort, InvalidPortSpec, InvalidTarget, NetworkSafetyError
from portscope.models import Proto

__all__ = [
    "MAX_ADDRESSES",
    "MAX_PROBES",
    "PortSpec",
    "Target",
    "TargetSet",
    "check_size",
    "parse_ports",
    "parse_targets",
    "read_target_file",
    "top_ports",
]

MAX_ADDRESSES = 65_536
"""Largest target set scanned without ``yes=True`` (a /16)."""
MAX_PROBES = 10_000_000
"""Largest number of (address, port) probes scanned without ``yes=True``."""

_V4_MULTICAST = (0xE000_0000, 0xEFFF_FFFF)  # 224.0.0.0/4, RFC 5771
_V4_BROADCAST = 0xFFFF_FFFF  # 255.255.255.255, RFC 919 "limited broadcast"
_V6_MULTICAST = (0xFF << 120, (1 << 128) - 1)  # ff00::/8, RFC 4291 section 2.7
_OCTET = re.compile(r"^(\*|\d{1,3}(-\d{0,3})?(,\d{1,3}(-\d{0,3})?)*|-\d{1,3})$")


@dataclass(frozen=True, slots=True)
class Target:
    """One address to probe.

    Attributes:
        host: the target as the user wrote it (name, address, block or range).
        address: the address, as ``socket.inet_ntop`` prints it.
        family: 4 or 6.
    """

    host: str
    address: str
    family: int


@dataclass(frozen=True, slots=True)
class _Block:
    """Addresses ``start..end`` (integers, inclusive) of one family, from ``spec``."""

    spec: str
    family: int
    start: int
    end: int
    name: str | None = None  # the host name a resolved address came from

    @property
    def count(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class _OctetBlock:
    """An nmap octet range (``10.0.0-3.1,5``): the product of four octet lists."""

    spec: str
    octets: tuple[tuple[int, ...], ...]
    family: int = 4

    @property
    def count(self) -> int:
        n = 1
        for o in self.octets:
            n *= len(o)
        return n

    def values(self) -> Iterator[int]:
        for a, b, c, d in itertools.product(*self.octets):
            yield (a << 24) | (b << 16) | (c << 8) | d


@dataclass(frozen=True, slots=True)
class TargetSet:
    """Addresses to scan, iterated lazily in the order given, minus exclusions.

    Attributes:
        blocks: the parsed targets, each an interval or an octet range of addresses.
        excluded: merged, sorted ``(family, start, end)`` intervals never scanned.
    """

    blocks: tuple[_Block | _OctetBlock, ...]
    excluded: tuple[tuple[int, int, int], ...] = field(default=())

    def __iter__(self) -> Iterator[Target]:
        for block in self.blocks:
            host = block.spec
            if isinstance(block, _OctetBlock):
                values: Iterable[int] = block.values()
            else:
                values = range(block.start, block.end + 1)
            fam = block.family
            for value in values:
                if self._is_excluded(fam, value):
                    continue
                yield Target(host=host, address=_ntop(fam, value), family=fam)

    def __len__(self) -> int:
        """The number of addresses (an upper bound when exclusions cut octet ranges)."""
        total = 0
        for block in self.blocks:
            total += block.count
            if isinstance(block, _Block):
                total -= self._excluded_in(block)
        return total

    def _is_excluded(self, family: int, value: int) -> bool:
        if not self.excluded:
            return False
        i = bisect.bisect_right(self.excluded, (family, value, 1 << 129)) - 1
        if i < 0:
            return False
        fam, start, end = self.excluded[i]
        return fam == family and start <= value <= end

    def _excluded_in(self, block: _Block) -> int:
        n = 0
        for fam, start, end in self.excluded:
            if fam == block.family:
                lo, hi = max(start, block.start), min(end, block.end)
                if lo <= hi:
                    n += hi - lo + 1
        return n


@dataclass(frozen=True, slots=True)
class PortSpec:
    """Ports to probe per transport, as merged, sorted inclusive ``(first, last)`` ranges.

    Attributes:
        tcp: TCP port ranges.
        udp: UDP port ranges.
        text: the specification as given (for reports and nmap XML).
    """

    tcp: tuple[tuple[int, int], ...] = ()
    udp: tuple[tuple[int, int], ...] = ()
    text: str = ""

    @property
    def count(self) -> int:
        """Number of (port, transport) pairs."""
        return sum(b - a + 1 for a, b in self.tcp) + sum(b - a + 1 for a, b in self.udp)

    def ports(self, proto: Proto) -> Iterator[int]:
        """The ports of ``proto`` in ascending order."""
        for a, b in self.tcp if proto is Proto.TCP else self.udp if proto is Proto.UDP else ():
            yield from range(a, b + 1)

    def __iter__(self) -> Iterator[tuple[Proto, int]]:
        for port in self.ports(Proto.TCP):
            yield Proto.TCP, port
        for port in self.ports(Proto.UDP):
            yield Proto.UDP, port

    @staticmethod
    def ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
        """``((1, 3), (80, 80))`` -> ``"1-3,80"`` (nmap's ``services`` attribute)."""
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


# ---------------------------------------------------------------- ports


def parse_ports(text: str, *, default_proto: Proto = Proto.TCP) -> PortSpec:
    """Parse an nmap-style port specification.

    ``22,80,1000-2000``; ``-`` or ``1-`` (1-65535); ``-1024`` (1-1024); ``T:80,U:53``
    (a prefix applies until the next one); service names known to portscope's registry
    (``http``, ``ssh``, ``http-alt``). Same syntax as nmap's ``-p`` (nmap(1), "PORT SPECIFICATION").

    Args:
        text: the specification.
        default_proto: transport of items before any ``T:``/``U:`` prefix.

    Returns:
        The ports, merged and sorted per transport.

    Raises:
        InvalidPortSpec: an empty item, a number outside 1-65535 (ASCII digits only), a
            reversed range (``80-20``), an unknown prefix or service name. Items are parsed
            by ``portscope._ports`` (the one port parser); names resolve through the registry.
    """
    spec = text.strip()
    if not spec:
        raise InvalidPortSpec("empty port specification; expected e.g. 22,80,1000-2000 or -")
    proto = default_proto
    found: dict[Proto, list[tuple[int, int]]] = {Proto.TCP: [], Proto.UDP: []}
    for raw in spec.split(","):
        item = raw.strip()
        if len(item) > 2 and item[1] == ":":
            prefix, item = item[0].upper(), item[2:]
            if prefix not in "TU":
                raise InvalidPortSpec(
                    f"unknown protocol prefix {raw.strip()[:2]!r} in port spec {_shown(text)}; "
                    "accepted: T: (TCP), U: (UDP)"
                )
            proto = Proto.TCP if prefix == "T" else Proto.UDP
        if not item:
            raise InvalidPortSpec(
                f"empty item in port spec {_shown(text)}; expected e.g. 22,80,1000-2000"
            )
        found[proto].append(_port_item(item, proto, text))
    return PortSpec(tcp=_merge(found[Proto.TCP]), udp=_merge(found[Proto.UDP]), text=spec)


def _port_item(item: str, proto: Proto, text: str) -> tuple[int, int]:
    try:
        return parse_port_range(item, open_ends=True, proto=proto)
    except InvalidPort as err:
        raise InvalidPortSpec(f"{err} (in port spec {_shown(text)})") from None


def _shown(text: str) -> str:
    """A user's spec as it goes into a message: repr, cut to 60 characters."""
    shown = repr(text)
    return shown if len(shown) <= 62 else shown[:60] + "...'"


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def top_ports(n: int, proto: Proto = Proto.TCP) -> PortSpec:
    """The ``n`` most often open ports of ``proto``, from the registry's frequency data.

    Args:
        n: how many ports, 1-65535.
        proto: TCP or UDP.

    Raises:
        InvalidPortSpec: ``n`` out of range, or the registry has no frequency data.
    """
    if not 1 <= n <= 65535:
        raise InvalidPortSpec(f"--top-ports {n}: expected a count from 1 to 65535")
    from portscope import registry

    helper = getattr(registry, "top_ports", None)
    if helper is None:
        raise InvalidPortSpec(
            f"--top-ports {n}: the registry has no port frequency data in this build; "
            "use -p with a port list"
        )
    ports = [int(p) for p in helper(n, proto)]
    ranges = _merge([(p, p) for p in ports])
    text = f"top {n} {proto.value}"
    if proto is Proto.UDP:
        return PortSpec(udp=ranges, text=text)
    return PortSpec(tcp=ranges, text=text)


# ---------------------------------------------------------------- targets


def parse_targets(
    specs: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    family: int | None = None,
) -> TargetSet:
    """Parse targets (and exclusions), resolving host names now, before any probe.

    Accepted: host names (every A/AAAA answer), IPv4 and IPv6 addresses, CIDR blocks
    (``198.18.0.0/24``: every address of the block, network and broadcast address
    included, as nmap scans them: ``nmap -sL -n 127.0.0.0/30`` lists all four), ranges
    ``198.18.0.1-20`` and
    ``198.18.0.1-198.18.0.20``, nmap octet ranges (``198.18.0-1.1,5``).

    Args:
        specs: the target strings.
        exclude: targets never scanned, in the same syntax.
        family: 4 or 6 to keep only that family, or ``None`` for both.

    Returns:
        A lazily iterated target set.

    Raises:
        InvalidTarget: a malformed address, block or range, or a name that does not
            resolve (in the wanted family).
        NetworkSafetyError: a multicast or broadcast address is among the targets.
    """
    blocks: list[_Block | _OctetBlock] = []
    for raw in specs:
        blocks.extend(_parse_one(raw, family))
    if not blocks:
        raise InvalidTarget("no targets given; expected host names, addresses, CIDR blocks")
    for block in blocks:
        _check_safe(block)
    excluded: list[tuple[int, int, int]] = []
    for raw in exclude:
        for block in _parse_one(raw, None):
            if isinstance(block, _OctetBlock):
                excluded.extend((4, v, v) for v in block.values())
            else:
                excluded.append((block.family, block.start, block.end))
    return TargetSet(blocks=tuple(blocks), excluded=_merge_excluded(excluded))


MAX_TARGET_FILE_BYTES = 16 << 20  # 16 MiB: a million addresses, one a line


def read_target_file(path: str | Path) -> list[str]:
    """Read targets from a file (``-iL``): whitespace-separated, ``#`` starts a comment.

    At most ``MAX_TARGET_FILE_BYTES`` are read (``-iL /dev/zero`` is refused, not read
    forever).

    Raises:
        InvalidTarget: the file cannot be read, is larger than the cap, is not UTF-8 or
            holds no target.
    """
    from portscope._files import FileTooLarge, read_bounded

    try:
        text = read_bounded(path, MAX_TARGET_FILE_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError, FileTooLarge) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InvalidTarget(f"cannot read target file {str(path)!r}: {reason}") from err
    items = [w for line in text.splitlines() for w in line.split("#", 1)[0].split()]
    if not items:
        raise InvalidTarget(f"target file {str(path)!r} holds no targets")
    return items


def check_size(targets: TargetSet, ports: PortSpec, *, yes: bool = False) -> None:
    """Refuse a scan larger than ``MAX_ADDRESSES`` addresses or ``MAX_PROBES`` probes.

    Raises:
        NetworkSafetyError: the scan is over a bound and ``yes`` is false.
    """
    if yes:
        return
    n = len(targets)
    if n > MAX_ADDRESSES:
        raise NetworkSafetyError(
            f"{n:,} target addresses is over the limit of {MAX_ADDRESSES:,}; "
            "narrow the targets or pass --yes"
        )
    probes = n * ports.count
    if probes > MAX_PROBES:
        raise NetworkSafetyError(
            f"{probes:,} probes ({n:,} addresses x {ports.count:,} ports) is over the limit "
            f"of {MAX_PROBES:,}; narrow the scan or pass --yes"
        )


def _parse_one(raw: str, family: int | None) -> list[_Block | _OctetBlock]:
    spec = raw.strip()
    if not spec:
        raise InvalidTarget("empty target; expected a host name, address, CIDR block or range")
    if "/" in spec:
        return _keep(_parse_cidr(spec), family, spec)
    if "-" in spec and not _looks_like_name(spec):
        return _keep([_parse_range(spec)], family, spec)
    if _OCTET_FORM.match(spec):
        return _keep([_parse_octets(spec)], family, spec)
    try:
        addr = ipaddress.ip_address(spec.split("%", 1)[0])
    except ValueError:
        if ":" in spec or _looks_numeric(spec):
            raise InvalidTarget(
                f"invalid address {spec!r}; expected IPv4 like 198.18.0.1 or IPv6 like 2001:db8::1"
            ) from None
        return _resolve(spec, family)
    _check_routable(spec, addr.version, addr.is_link_local)
    return _keep([_Block(spec, addr.version, int(addr), int(addr))], family, spec)


_OCTET_FORM = re.compile(r"^[\d*,\-]+(\.[\d*,\-]+){3}$")


def _looks_numeric(spec: str) -> bool:
    return bool(re.fullmatch(r"[\d.]+", spec))


def _looks_like_name(spec: str) -> bool:
    # host names may hold '-' too; an address range starts with an address
    return not re.fullmatch(r"[\d.,*\-]+|[0-9A-Fa-f:.]+-[0-9A-Fa-f:.]+", spec)


def _keep(
    blocks: list[_Block | _OctetBlock], family: int | None, spec: str
) -> list[_Block | _OctetBlock]:
    kept = [b for b in blocks if family is None or b.family == family]
    if not kept:
        raise InvalidTarget(f"target {spec!r} has no IPv{family} address")
    return kept


def _parse_cidr(spec: str) -> list[_Block | _OctetBlock]:
    try:
        net = ipaddress.ip_network(spec, strict=False)
    except ValueError:
        raise InvalidTarget(
            f"invalid CIDR block {spec!r}; expected e.g. 198.18.0.0/24 or 2001:db8::/120"
        ) from None
    _check_routable(spec, net.version, net.is_link_local)
    # every address, as nmap: its target parser never leaves the network or broadcast
    # address of an explicit block out (nmap -sL -n 198.18.0.0/30 lists .0 to .3)
    return [_Block(spec, net.version, int(net.network_address), int(net.broadcast_address))]


def _parse_range(spec: str) -> _Block | _OctetBlock:
    first, _, last = spec.partition("-")
    try:
        lo = ipaddress.ip_address(first)
    except ValueError:
        if _OCTET_FORM.match(spec):
            return _parse_octets(spec)
        raise InvalidTarget(
            f"invalid address range {spec!r}; expected e.g. 198.18.0.1-20 or 198.18.0.1-198.18.0.20"
        ) from None
    try:
        hi = ipaddress.ip_address(last)
    except ValueError:
        if lo.version == 4 and last.isdigit():
            return _parse_octets(spec)
        raise InvalidTarget(
            f"invalid address range {spec!r}; expected e.g. 198.18.0.1-20 or 198.18.0.1-198.18.0.20"
        ) from None
    if hi.version != lo.version or int(hi) < int(lo):
        raise InvalidTarget(
            f"invalid address range {spec!r}: the last address must be of the same family "
            "and not below the first"
        )
    return _Block(spec, lo.version, int(lo), int(hi))


def _parse_octets(spec: str) -> _Block | _OctetBlock:
    parts = spec.split(".")
    octets: list[tuple[int, ...]] = []
    bad = InvalidTarget(
        f"invalid IPv4 address or octet range {spec!r}; octets are 0-255, e.g. "
        "198.18.0.1-20 or 198.18.0-1.1,5"
    )
    for part in parts:
        if not _OCTET.match(part):
            raise bad
        values: set[int] = set()
        for item in part.split(","):
            if item == "*":
                lo, hi = 0, 255
            elif "-" in item:
                a, _, b = item.partition("-")
                lo, hi = int(a or 0), int(b or 255)
            else:
                lo = hi = int(item)
            if not 0 <= lo <= hi <= 255:
                raise bad
            values.update(range(lo, hi + 1))
        octets.append(tuple(sorted(values)))
    if all(len(o) == 1 for o in octets[:3]) and octets[3] == tuple(
        range(octets[3][0], octets[3][-1] + 1)
    ):
        base = (octets[0][0] << 24) | (octets[1][0] << 16) | (octets[2][0] << 8)
        return _Block(spec, 4, base | octets[3][0], base | octets[3][-1])
    return _OctetBlock(spec, tuple(octets))


_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?")


def check_host_name(name: str) -> str:
    """``name`` when it can be a DNS host name (RFC 1123 section 2.1: letters, digits and
    ``-`` in labels of 1-63 characters, at most 253 in all; ``_`` is tolerated, a final
    ``.`` allowed), checked before any resolver sees it.

    Raises:
        InvalidTarget: anything else (control characters, spaces, empty labels ...).
    """
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidTarget(
            f"invalid host name {name!r}; expected letters, digits, '-' and '.' "
            "(labels of 1-63 characters, 253 in all)"
        )
    return name


def _check_routable(spec: str, version: int, link_local: bool) -> None:
    # connect() to fe80::/10 needs an interface (sin6_scope_id); without one the kernel
    # answers EINVAL for every port, which is no scan result.
    if "%" in spec or (version == 6 and link_local):
        raise InvalidTarget(
            f"{spec!r}: link-local IPv6 addresses and zone indexes (%eth0) are not "
            "supported; give a global, unique-local or loopback address"
        )


def _resolve(name: str, family: int | None) -> list[_Block | _OctetBlock]:
    check_host_name(name)
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family or 0, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(name, None, fam, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        reason = err.strerror if isinstance(err, socket.gaierror) else str(err)
        want = f" (IPv{family})" if family else ""
        raise InvalidTarget(f"cannot resolve host name {name!r}{want}: {reason}") from None
    blocks: list[_Block | _OctetBlock] = []
    seen: set[str] = set()
    for fam_found, _, _, _, sockaddr in infos:
        text = str(sockaddr[0])
        if text in seen or fam_found not in (socket.AF_INET, socket.AF_INET6):
            continue
        seen.add(text)
        addr = ipaddress.ip_address(text.split("%", 1)[0])
        blocks.append(_Block(name, addr.version, int(addr), int(addr), name=name))
    if not blocks:
        want = f"IPv{family}" if family else "usable"
        raise InvalidTarget(f"host name {name!r} has no {want} address")
    return blocks


def _check_safe(block: _Block | _OctetBlock) -> None:
    if isinstance(block, _OctetBlock):
        hits = any(224 <= o <= 239 for o in block.octets[0]) or all(
            o[-1] == 255 for o in block.octets
        )
    elif block.family == 4:
        m_lo, m_hi = _V4_MULTICAST
        hits = (block.start <= m_hi and block.end >= m_lo) or block.end == _V4_BROADCAST
    else:
        m_lo, m_hi = _V6_MULTICAST
        hits = block.start <= m_hi and block.end >= m_lo
    if isinstance(block, _Block) and block.start == 0:
        raise InvalidTarget(
            f"target {block.spec!r} includes the unspecified address 0.0.0.0 or ::; "
            "name a host instead"
        )
    if hits:
        raise NetworkSafetyError(
            f"target {block.spec!r} includes multicast or broadcast addresses; portscope "
            "probes unicast hosts only"
        )


def _merge_excluded(items: list[tuple[int, int, int]]) -> tuple[tuple[int, int, int], ...]:
    merged: list[tuple[int, int, int]] = []
    for fam, lo, hi in sorted(items):
        if merged and merged[-1][0] == fam and lo <= merged[-1][2] + 1:
            merged[-1] = (fam, merged[-1][1], max(merged[-1][2], hi))
        else:
            merged.append((fam, lo, hi))
    return tuple(merged)


def _ntop(family: int, value: int) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
