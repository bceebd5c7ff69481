"""Dynamic completion values: what ``portscope completion --values KIND`` prints.

Lean on purpose (no argparse, no typing at run time): the shell runs it at every Tab press.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import TextIO

#: Kinds of values, in the order ``--help`` lists them.
VALUE_KINDS = ("ports", "netns", "services", "commands")


def values(kind: str) -> Iterator[str]:
    """The words ``kind`` (one of ``VALUE_KINDS``) completes with, now, on this machine.

    ``ports``: local ports of TCP listeners and unbound-peer UDP sockets (sock_diag,
    ``linux/inet_diag.h``; needs no privilege). ``netns``: ``all``, ``host`` and the names in
    ``/run/netns`` (``ip netns``). ``services``: the registry's service names.
    ``commands``: portscope's commands. Nothing fails: a source that cannot be read gives
    no words.
    """
    if kind == "ports":
        yield from _listening_ports()
    elif kind == "netns":
        yield from ("all", "host")
        yield from _netns_names()
    elif kind == "services":
        from portscope.registry._store import STORE

        yield from sorted(set(STORE.index()[0].values()))
    elif kind == "commands":
        from portscope.cli import COMMANDS

        yield from COMMANDS


def _listening_ports() -> Iterator[str]:
    """Local ports of TCP LISTEN and UDP sockets: one ``SOCK_DIAG_BY_FAMILY`` dump per
    transport and family, states filtered by the kernel (``linux/inet_diag.h``), decoded
    to the port alone. Not through ``portscope.sockets``: importing the typed table costs
    more than a Tab press may take (``sockets._netlink`` is the full implementation)."""
    import socket
    import struct

    # nlmsghdr + inet_diag_req_v2: len, type SOCK_DIAG_BY_FAMILY (20), flags
    # NLM_F_REQUEST|NLM_F_DUMP, seq, pid; family, protocol, ext, pad, states; sockid (48)
    request = struct.Struct("=IHHII BBBxI 48x")
    header = struct.Struct("=IH").unpack_from
    sport = struct.Struct("!H").unpack_from  # inet_diag_msg.id.idiag_sport, network order
    ports: set[int] = set()
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
    except (OSError, AttributeError):  # completion never fails loudly: no words
        return
    with sock:
        sock.settimeout(1.0)
        for family in (socket.AF_INET, socket.AF_INET6):
            for proto, states in ((socket.IPPROTO_TCP, 1 << 10), (socket.IPPROTO_UDP, 1 << 7)):
                try:
                    sock.send(request.pack(request.size, 20, 0x301, 1, 0, family, proto, 0, states))
                    done = False
                    while not done:
                        chunk = sock.recv(1 << 17)
                        off, done = 0, not chunk
                        while off + 16 <= len(chunk):
                            length, kind = header(chunk, off)
                            if length < 16 or kind in (2, 3):  # NLMSG_ERROR, NLMSG_DONE
                                done = True
                                break
                            if off + 22 <= len(chunk):
                                ports.add(sport(chunk, off + 20)[0])
                            off += (length + 3) & ~3
                except OSError:
                    continue
    yield from (str(p) for p in sorted(ports))


def _netns_names() -> Iterator[str]:
    import os

    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    yield from sorted(n for n in names if n.isprintable() and not n.startswith("."))


def quick(args_in: list[str], stdout: TextIO) -> int | None:
    """``completion --values KIND`` without argparse (the Tab path); ``None`` otherwise."""
    if len(args_in) != 2 or args_in[0] != "--values" or args_in[1] not in VALUE_KINDS:
        return None
    stdout.write("".join(value + "\n" for value in values(args_in[1])))
    return 0
