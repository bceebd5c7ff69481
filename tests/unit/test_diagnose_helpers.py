"""Hand-made sockets for the diagnose unit tests."""

from __future__ import annotations

from portscope.models import Endpoint, Owner, Proto, Socket, TcpState


def owner(pid: int = 100, name: str = "srv", user: str | None = "alice") -> Owner:
    return Owner(pid, name, user, (name, "--flag"), 1_700_000_000.0, 3)


def sock(
    local: str,
    port: int,
    state: TcpState = TcpState.LISTEN,
    *,
    proto: Proto = Proto.TCP,
    remote: tuple[str, int] | None = None,
    owners: tuple[Owner, ...] | None = (),
    uid: int | None = 1000,
    v6only: bool | None = None,
    interface: str | None = None,
) -> Socket:
    return Socket(
        proto=proto,
        family=6 if ":" in local else 4,
        state=state,
        local=Endpoint(local, port),
        remote=Endpoint(*remote) if remote else None,
        recv_q=0,
        send_q=0,
        uid=uid,
        inode=None if state is TcpState.TIME_WAIT else 1,
        interface=interface,
        v6only=v6only,
        owners=owners,
    )
