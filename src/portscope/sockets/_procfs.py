"""Fallback backend: ``/proc/net/{tcp,tcp6,udp,udp6}`` (``man 5 proc``).

Each line (kernel ``tcp4_seq_show``/``udp4_format_sock`` and their IPv6 twins)::

    sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode

Addresses are the raw 32-bit words printed in host byte order. Less than netlink gives:
for LISTEN sockets ``tx_queue`` is 0 whatever the backlog, and there is no bound interface
and no IPV6_V6ONLY. Unknown is shown as unknown: ``send_q`` of a listener, ``interface`` and
``v6only`` are ``None`` (a ``[::]`` listener may be dual-stack or IPv6-only), with a note.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Collection, Iterable, Iterator

from portscope.errors import BackendError, BackendUnavailable
from portscope.models import Proto, TcpState
from portscope.sockets._diag_codec import Row
from portscope.sockets._filters import ALL_STATES, SocketFilter
from portscope.sockets._owners import OwnerMap

_FILES = {
    (Proto.TCP, 4): "tcp",
    (Proto.TCP, 6): "tcp6",
    (Proto.UDP, 4): "udp",
    (Proto.UDP, 6): "udp6",
}
_ORDER = sys.byteorder
#: hex text -> address text; process-wide (the same in every namespace), emptied when full
ADDRS_MAX = 1 << 16
_ADDRS: dict[str, str] = {}
NOTE = (
    "procfs backend: /proc/net gives no listen backlog, IPV6_V6ONLY or bound interface; "
    "they are shown as unknown ('?'), and a [::] listener may also accept IPv4"
)
_STATES = {
    proto: {n: TcpState.from_kernel(n, proto) for n in range(1, 14)}
    for proto in (Proto.TCP, Proto.UDP)
}


def _address(hexa: str) -> str:
    text = _ADDRS.get(hexa)
    if text is None:
        if len(hexa) == 8:
            text = socket.inet_ntop(socket.AF_INET, int(hexa, 16).to_bytes(4, _ORDER))
        else:
            raw = b"".join(int(hexa[i : i + 8], 16).to_bytes(4, _ORDER) for i in range(0, 32, 8))
            text = socket.inet_ntop(socket.AF_INET6, raw)
        if len(_ADDRS) >= ADDRS_MAX:
            _ADDRS.clear()
        _ADDRS[hexa] = text
    return text


def parse_lines(
    lines: Iterable[bytes | str],
    family: int,
    proto: Proto,
    states: frozenset[TcpState] | None = None,
    seen: set[tuple[str, str]] | None = None,
) -> list[Row]:
    """Parse the lines of one ``/proc/net`` socket file into rows.

    Args:
        lines: the file's lines, the header line included or not.
        family: 4 or 6.
        proto: TCP or UDP.
        states: keep only these states (``None``: all).
        seen: (local, remote) keys already parsed, to drop lines read twice.

    Returns:
        The rows. Lines of fewer than ten fields (the header, blank lines) are skipped.

    Raises:
        BackendError: a line of ten fields or more that is not a socket line (a state,
            address, port or number out of shape), with its line number as ``offset``.
    """
    table = _STATES[proto]
    keep = ALL_STATES if states is None else states
    seen = set() if seen is None else seen
    rows: list[Row] = []
    width = 8 if family == 4 else 32  # hex digits of an address
    number = 0
    text = ""
    try:
        for number, line in enumerate(lines, 1):  # noqa: B007 (read in the handler)
            text = line.decode("ascii", "replace") if isinstance(line, bytes) else line
            fields = text.split()
            if len(fields) < 10 or fields[0] == "sl":
                continue
            local, remote, st, queues, uid_text, inode_text = (
                fields[1], fields[2], fields[3], fields[4], fields[7], fields[9]
            )  # fmt: skip
            state = table[int(st, 16)]
            if state not in keep:
                continue
            key = (local, remote)
            if key in seen:
                continue
            seen.add(key)
            lhex, _, lport_hex = local.partition(":")
            rhex, _, rport_hex = remote.partition(":")
            tx, _, rx = queues.partition(":")
            lport = int(lport_hex, 16)
            rport = int(rport_hex, 16)
            if len(lhex) != width or len(rhex) != width or lport > 0xFFFF or rport > 0xFFFF:
                raise ValueError("address or port out of shape")
            if lport < 0 or rport < 0 or inode_text.startswith("-") or uid_text.startswith("-"):
                raise ValueError("a negative number")
            raddr: str | None = _address(rhex)
            rport_v: int | None = rport
            if rport == 0 and int(rhex, 16) == 0:
                raddr = rport_v = None
            inode: int | None = int(inode_text) or None
            uid: int | None = int(uid_text)
            if inode is None and state in (TcpState.TIME_WAIT, TcpState.SYN_RECV):
                uid = None
            # a listener's tx_queue is 0, not its backlog (tcp4_seq_show prints
            # sk_ack_backlog as rx_queue only): unknown
            send_q: int | None = None if state is TcpState.LISTEN else int(tx, 16)
            rows.append(
                Row(proto, family, state, _address(lhex), lport, raddr, rport_v,
                    int(rx, 16), send_q, uid, inode, None, None)
            )  # fmt: skip
    except (KeyError, ValueError, OverflowError) as err:
        # the kernel writes these files; anything else is data we do not understand
        raise BackendError(
            f"malformed /proc/net line {number}: {text[:120]!r} ({err})", offset=number
        ) from err
    return rows


class ProcfsBackend:
    """Linux ``/proc/net`` files: no netlink needed, less detail, slower on big tables."""

    name = "procfs"

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self.notes: list[str] = [NOTE]
        try:
            with open(f"{proc}/net/tcp", "rb"):
                pass
        except OSError as err:
            raise BackendUnavailable(
                f"{proc}/net/tcp cannot be read: {err.strerror}", errno=err.errno
            ) from err

    def batches(
        self,
        protos: tuple[Proto, ...],
        families: tuple[int, ...],
        states: frozenset[TcpState] | None,
        where: SocketFilter | None = None,
    ) -> Iterator[list[Row]]:
        for proto in protos:
            for family in families:
                path = f"{self._proc}/net/{_FILES[(proto, family)]}"
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue  # no IPv6 on this kernel
                except OSError as err:
                    raise BackendUnavailable(
                        f"{path} cannot be read: {err.strerror}", errno=err.errno
                    ) from err
                rows = parse_lines(data.splitlines(), family, proto, states)
                if rows:
                    yield rows

    def owner_map(self, wanted: Collection[int] | None = None) -> OwnerMap:
        return OwnerMap.scan(wanted, self._proc)
