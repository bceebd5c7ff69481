"""Socket-table filters: parsing user input (states, ports, CIDRs, users) and matching rows.

State names and groups follow ``ss`` (``man 8 ss``, STATE-FILTER, and ``misc/ss.c``):
RFC 9293 / kernel names in any case with ``-`` or ``_``, plus the groups ``all``,
``connected``, ``synchronized``, ``bucket`` and ``big``. What can be done by the kernel
(states, transports, families) is pushed into the dump request; the rest is matched here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from portscope.errors import InvalidFilter
from portscope.models import KERNEL_STATE_NUMBERS, Proto, TcpState

if TYPE_CHECKING:
    import ipaddress
    from typing import TypeAlias

    from portscope.sockets._diag_codec import Row

    IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
    from portscope.sockets._owners import OwnerMap

S = TcpState
#: Every state a dump can report (``BOUND-INACTIVE`` only when asked for by name).
ALL_STATES: Final = frozenset(
    {S.ESTABLISHED, S.SYN_SENT, S.SYN_RECV, S.FIN_WAIT_1, S.FIN_WAIT_2, S.TIME_WAIT,
     S.CLOSE, S.CLOSE_WAIT, S.LAST_ACK, S.LISTEN, S.CLOSING, S.UNCONN}
)  # fmt: skip
#: Listening: TCP LISTEN and bound, unconnected UDP (``ss -l``).
LISTENING_STATES: Final = frozenset({S.LISTEN, S.UNCONN, S.CLOSE})
#: What ``ss`` shows without ``-a``/``-l`` (``SS_CONN`` in ss.c): no listeners, no
#: TIME-WAIT or SYN-RECV minisockets.
DEFAULT_STATES: Final = ALL_STATES - {S.LISTEN, S.CLOSE, S.UNCONN, S.TIME_WAIT, S.SYN_RECV}
STATE_GROUPS: Final[dict[str, frozenset[TcpState]]] = {
    "all": ALL_STATES,
    "connected": ALL_STATES - {S.LISTEN, S.CLOSE, S.UNCONN},
    "synchronized": ALL_STATES - {S.LISTEN, S.CLOSE, S.UNCONN, S.SYN_SENT},
    "bucket": frozenset({S.TIME_WAIT, S.SYN_RECV}),
    "big": ALL_STATES - {S.TIME_WAIT, S.SYN_RECV},
}
_STATE_ALIASES: Final = {
    "estab": S.ESTABLISHED,
    "syn-received": S.SYN_RECV,
    "closed": S.CLOSE,
    "listening": S.LISTEN,
    "timewait": S.TIME_WAIT,
    "time_wait": S.TIME_WAIT,
}
SORT_KEYS: Final = (
    "port", "local", "remote", "rport", "state", "proto", "recv-q", "send-q", "uid",
    "inode", "pid", "process",
)  # fmt: skip


def parse_state(text: str) -> frozenset[TcpState]:
    """Parse one state name or group (``established``, ``TIME_WAIT``, ``connected`` ...).

    Args:
        text: a name as RFC 9293, the kernel or ``ss`` spells it, any case, ``-`` or ``_``.

    Returns:
        The states it names.

    Raises:
        InvalidFilter: for an unknown name.
    """
    key = text.strip().lower().replace("_", "-")
    if key in STATE_GROUPS:
        return STATE_GROUPS[key]
    if key in _STATE_ALIASES:
        return frozenset({_STATE_ALIASES[key]})
    for state in TcpState:
        if state.value.lower() == key:
            return frozenset({state})
    names = ", ".join(s.value.lower() for s in TcpState)
    groups = ", ".join(STATE_GROUPS)
    raise InvalidFilter(f"unknown state {text!r}; accepted: {names}; groups: {groups}")


def parse_states(text: str | Iterable[str | TcpState]) -> frozenset[TcpState]:
    """Parse ``STATE[,STATE...]`` (or an iterable of names/states) into a set of states.

    Raises:
        InvalidFilter: for an unknown or empty name.
    """
    parts: Iterable[str | TcpState] = text.split(",") if isinstance(text, str) else text
    states: set[TcpState] = set()
    for part in parts:
        if isinstance(part, TcpState):
            states.add(part)
        else:
            states |= parse_state(part)
    if not states:
        raise InvalidFilter(f"empty state list {text!r}; accepted: names like 'established'")
    return frozenset(states)


def parse_port(text: str | int) -> int:
    """Parse a port number (0-65535) or a service name (``http``, ``redis``).

    ``portscope._ports.parse_port`` with port 0 allowed (a socket table shows it): names
    come from portscope's registry, so every command knows the same ones.

    Raises:
        InvalidPort: for a number out of range or an unknown name.
    """
    from portscope._ports import parse_port as parse

    return parse(text, allow_zero=True)


def parse_process(text: str) -> str:
    """Check a ``--process`` pattern (see ``process_matcher``).

    Raises:
        InvalidFilter: for an empty pattern.
    """
    pattern = text.strip()
    if not pattern or pattern == "=":
        raise InvalidFilter(
            f"empty process name {text!r}; accepted: NAME (part of the name), a glob "
            "like 'python*', or =NAME (exactly)"
        )
    return pattern


def process_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of process names (``comm``) against ``--process`` patterns, as pgrep users
    expect: ``python`` matches any name containing it (``python3``); a pattern with ``*``,
    ``?`` or ``[`` is a shell glob over the whole name (``python3.1?``); ``=python3``
    matches that name exactly. Case matters, as in ``pgrep``.
    """
    import fnmatch

    exact: set[str] = set()
    parts: list[str] = []
    globs: list[str] = []
    for pattern in patterns:
        if pattern.startswith("="):
            exact.add(pattern[1:])
        elif any(c in pattern for c in "*?["):
            globs.append(pattern)
        else:
            parts.append(pattern)
    cache: dict[str, bool] = {}

    def matches(name: str) -> bool:
        hit = cache.get(name)
        if hit is None:
            hit = cache[name] = (
                name in exact
                or any(p in name for p in parts)
                or any(fnmatch.fnmatchcase(name, g) for g in globs)
            )
        return hit

    return matches


def parse_network(text: str) -> IPNetwork:
    """Parse an address or CIDR block (``10.0.0.0/8``, ``::1``, ``192.0.2.5``).

    Raises:
        InvalidFilter: for anything that is not an IPv4/IPv6 address or network.
    """
    import ipaddress

    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidFilter(
            f"bad address {text!r}; accepted: an IPv4/IPv6 address or CIDR like 10.0.0.0/8"
        ) from None


def parse_user(text: str | int) -> int:
    """Parse a user name or numeric uid into a uid.

    Raises:
        InvalidFilter: for a name with no account on this machine.
    """
    if isinstance(text, int) or text.strip().isdigit():
        return int(text)
    import pwd

    try:
        return pwd.getpwnam(text.strip()).pw_uid
    except KeyError:
        raise InvalidFilter(
            f"unknown user {text!r}; accepted: a user name or numeric uid"
        ) from None


def parse_sort(text: str) -> str:
    """Check a sort key (``port``, ``state``, ``remote``, ``recv-q`` ...).

    Raises:
        InvalidFilter: for an unknown key.
    """
    key = text.strip().lower().replace("_", "-")
    if key not in SORT_KEYS:
        raise InvalidFilter(f"unknown sort key {text!r}; accepted: {', '.join(SORT_KEYS)}")
    return key


def parse_pid(text: str | int) -> int:
    """Parse a process id.

    Raises:
        InvalidFilter: for anything but a positive integer.
    """
    if isinstance(text, int) or text.strip().isdigit():
        pid = int(text)
        if pid > 0:
            return pid
    raise InvalidFilter(f"bad pid {text!r}; accepted: a positive integer")


def kernel_state_mask(states: frozenset[TcpState] | None, proto: Proto) -> int:
    """The ``idiag_states`` bit mask asking the kernel for ``states`` of ``proto``.

    UDP sockets only take two states: 7 (TCP_CLOSE, shown as UNCONN) and 1 (ESTABLISHED).
    """
    if states is None:
        states = ALL_STATES
    mask = 0
    if proto is Proto.UDP:
        if states & {S.UNCONN, S.CLOSE}:
            mask |= 1 << 7
        if S.ESTABLISHED in states:
            mask |= 1 << 1
        return mask
    for state in states:
        if state is not S.UNCONN:
            mask |= 1 << KERNEL_STATE_NUMBERS[state]
    return mask


@dataclass(frozen=True, slots=True)
class SocketFilter:
    """What to keep from a socket table. ``None`` means "no condition".

    Attributes:
        protos: transports.
        families: 4 and/or 6.
        states: states (kernel-side where the backend can).
        ports: local or remote port in this set.
        sports: local port in this set.
        dports: remote port in this set.
        networks: local or remote address inside one of these networks.
        uids: the socket's uid (as the kernel records it: who created it) or the user of a
            process holding it in this set (a server started as root that runs as
            ``www-data`` matches both); needs the owner scan.
        pids: held by one of these processes (needs the owner scan).
        processes: held by a process whose name (``comm``) matches one of these patterns
            (``process_matcher``: part of the name, a glob, or ``=NAME`` exactly); needs
            the owner scan.
    """

    protos: frozenset[Proto] | None = None
    families: frozenset[int] | None = None
    states: frozenset[TcpState] | None = None
    ports: frozenset[int] | None = None
    sports: frozenset[int] | None = None
    dports: frozenset[int] | None = None
    networks: tuple[IPNetwork, ...] | None = None
    uids: frozenset[int] | None = None
    pids: frozenset[int] | None = None
    processes: frozenset[str] | None = None

    @property
    def needs_owners(self) -> bool:
        """True when matching needs the process owners of each socket."""
        return self.pids is not None or self.processes is not None or self.uids is not None

    @property
    def row_level(self) -> bool:
        """True when some condition must be checked on each row (not only by the kernel)."""
        return any(
            v is not None
            for v in (self.ports, self.sports, self.dports, self.networks, self.uids,
                      self.pids, self.processes)
        )  # fmt: skip

    def predicate(self, owners: OwnerMap | None = None) -> Callable[[Row], bool]:
        """A function telling whether a row passes every row-level condition.

        Args:
            owners: the owner map, needed when filtering by pid or process name.
        """
        checks: list[Callable[[Row], bool]] = []
        if self.states is not None:
            states = self.states
            checks.append(lambda r: r.state in states)
        if self.ports is not None:
            ports = self.ports
            checks.append(lambda r: r.local_port in ports or r.remote_port in ports)
        if self.sports is not None:
            sports = self.sports
            checks.append(lambda r: r.local_port in sports)
        if self.dports is not None:
            dports = self.dports
            checks.append(lambda r: r.remote_port in dports)
        if self.networks is not None:
            inside = _address_matcher(self.networks)
            checks.append(
                lambda r: (
                    inside(r.local_address)
                    or (r.remote_address is not None and inside(r.remote_address))
                )
            )
        if self.uids is not None:
            checks.append(_user_check(self.uids, owners))
        if (self.pids is not None or self.processes is not None) and owners is not None:
            pids, omap = self.pids, owners
            named = None if self.processes is None else process_matcher(self.processes)

            def owned(r: Row) -> bool:
                for pid in omap.pids(r):
                    if pids is not None and pid in pids:
                        return True
                    if named is not None:
                        info = omap.process(pid)
                        if info is not None and named(info.name):
                            return True
                return False

            checks.append(owned)
        if not checks:
            return lambda r: True
        if len(checks) == 1:
            return checks[0]
        return lambda r: all(check(r) for check in checks)


def _user_check(uids: frozenset[int], owners: OwnerMap | None) -> Callable[[Row], bool]:
    """The socket's uid, or a holding process's user, is one of ``uids``."""
    if owners is None:
        return lambda r: r.uid in uids
    from portscope.sockets._owners import user_name

    names = {user_name(uid) for uid in uids} | {str(uid) for uid in uids}
    omap = owners

    def check(r: Row) -> bool:
        if r.uid in uids:
            return True
        for pid in omap.pids(r):
            info = omap.process(pid)
            if info is not None and info.user in names:
                return True
        return False

    return check


def _address_matcher(networks: tuple[IPNetwork, ...]) -> Callable[[str], bool]:
    import ipaddress

    cache: dict[str, bool] = {}

    def inside(address: str) -> bool:
        hit = cache.get(address)
        if hit is None:
            try:
                ip = ipaddress.ip_address(address.partition("%")[0])
            except ValueError:
                hit = False
            else:
                mapped = getattr(ip, "ipv4_mapped", None)
                hit = any(ip in n or (mapped is not None and mapped in n) for n in networks)
            cache[address] = hit
        return hit

    return inside


def current_uid() -> int:
    """The effective uid of this process (a seam for tests)."""
    return os.geteuid()
