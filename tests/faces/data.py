"""Fixed socket tables for the faces' tests (no kernel read): deterministic rows."""

from __future__ import annotations

from portscope.models import Endpoint, Owner, Proto, Socket, SocketTable, TcpState
from portscope.registry._ranges import KernelPorts
from portscope.render.live import Snapshot, View, snapshot_of

KERNEL = KernelPorts((32768, 60999), frozenset(), 1024, True)
# pids above any pid_max (2^22): /proc/PID/cgroup never exists for them
PG, SSHD, HOSTILE, NGINX = 90_000_001, 90_000_002, 90_000_003, 90_000_004


def owner(pid: int, name: str, user: str = "root", *argv: str) -> tuple[Owner, ...]:
    return (Owner(pid, name, user, argv or (f"/usr/sbin/{name}",), None, 3),)


def listener(
    port: int, address: str = "0.0.0.0", *, own: tuple[Owner, ...] = (), proto: Proto = Proto.TCP
) -> Socket:
    family = 6 if ":" in address else 4
    state = TcpState.LISTEN if proto is Proto.TCP else TcpState.UNCONN
    return Socket(
        proto, family, state, Endpoint(address, port), None, 0, 128, 0, 1000 + port, owners=own
    )


def conn(
    lport: int,
    raddr: str,
    rport: int,
    state: TcpState = TcpState.ESTABLISHED,
    own: tuple[Owner, ...] = (),
) -> Socket:
    return Socket(
        Proto.TCP,
        4,
        state,
        Endpoint("127.0.0.1", lport),
        Endpoint(raddr, rport),
        0,
        0,
        0,
        50_000 + lport,
        owners=own,
    )


LISTENERS = (
    listener(5432, "127.0.0.1", own=owner(PG, "postgres", "postgres")),
    listener(22, own=owner(SSHD, "sshd")),
    listener(8080, "192.0.2.10", own=owner(NGINX, "nginx", "www-data")),
    listener(443, "::", own=owner(NGINX, "nginx", "www-data")),
    listener(
        9000,
        "127.0.0.1",
        own=owner(HOSTILE, "[link=http://x]", "root", "<script>alert(1)</script>", "[/]"),
    ),
    listener(53, "127.0.0.53", proto=Proto.UDP),
)
CONNECTIONS = (
    conn(5432, "127.0.0.1", 41000, own=owner(PG, "postgres", "postgres")),
    conn(41000, "127.0.0.1", 5432, own=owner(SSHD, "psql")),
    conn(22, "127.0.0.1", 50022, own=owner(SSHD, "sshd")),
    conn(44321, "127.0.0.2", 80, TcpState.TIME_WAIT),
)


def table() -> SocketTable:
    return SocketTable(LISTENERS + CONNECTIONS, "fixed", True)


def source(view: View) -> Snapshot:
    return snapshot_of(table(), view)
