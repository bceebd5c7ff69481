"""The route and source address the kernel would use for a destination (sends nothing).

``route_to`` asks ``ip route get`` (iproute2, ip-route(8)); ``source_address`` connects a
UDP socket, which only picks a route and a source (udp(7)). ``why connect`` reports both.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from portscope.diagnose._common import family_of


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the kernel would do with a packet to one address (``ip route get``).

    Attributes:
        kind: ``unicast``, ``local`` (an address of this host), ``unreachable``,
            ``prohibit``, ``blackhole``, or ``error`` when no route exists.
        interface: outgoing device, or ``None``.
        gateway: next hop (``via``), or ``None``.
        source: preferred source (``src``), or ``None``.
        raw: the command's output, or the error.
    """

    kind: str
    interface: str | None
    gateway: str | None
    source: str | None
    raw: str


def parse_route_get(output: str) -> RouteInfo:
    """Parse one line of ``ip route get ADDR`` output (iproute2, ip-route(8)).

    Args:
        output: the command's stdout, or its error text.

    Returns:
        The route; ``kind`` is ``error`` for an error message.
    """
    # iproute2 continues the line with "\" and a "cache" section: keep the route part.
    text = " ".join(output.split("\\", 1)[0].split())
    words = text.split()
    if not words:
        return RouteInfo("error", None, None, None, output.strip())
    kinds = ("local", "unreachable", "prohibit", "blackhole", "broadcast", "multicast")
    kind = words[0] if words[0] in kinds else "unicast"

    def after(key: str) -> str | None:
        if key in words:
            i = words.index(key)
            if i + 1 < len(words):
                return words[i + 1]
        return None

    if (
        "RTNETLINK" in text
        or "Error" in text
        or ("unreachable" in text.lower() and kind == "unicast")
    ):
        kind = "error"
    return RouteInfo(kind, after("dev"), after("via"), after("src"), text)


def route_to(address: str) -> RouteInfo | None:
    """Ask the kernel for the route to ``address`` with ``ip route get`` (sends nothing).

    Args:
        address: an IPv4 or IPv6 address.

    Returns:
        The route, or ``None`` when ``ip`` is not installed.
    """
    import shutil
    import subprocess

    ip = shutil.which("ip")
    if ip is None:
        return None
    cmd = [ip, "-6" if family_of(address) == 6 else "-4", "-o", "route", "get", address]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=2.0, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return RouteInfo("error", None, None, None, str(err))
    return parse_route_get(done.stdout if done.returncode == 0 else done.stderr or "error")


def source_address(address: str, port: int) -> tuple[str | None, int | None]:
    """The source address the kernel picks for ``address`` (a connected UDP socket's
    ``getsockname()``; connecting a UDP socket sends no packet, udp(7)).

    Args:
        address: the destination address.
        port: the destination port.

    Returns:
        (source address, None), or (None, errno) when there is no route.
    """
    fam = socket.AF_INET6 if family_of(address) == 6 else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((address, port))
        except OSError as err:
            return None, err.errno
        return str(sock.getsockname()[0]), None
