"""The /proc/net parser on files captured with the codec fixtures (same sockets)."""

from __future__ import annotations

from pathlib import Path

from portscope.models import Proto, TcpState
from portscope.sockets._diag_codec import Row, decode_chunk
from portscope.sockets._procfs import parse_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sockets"
FILES = {
    (Proto.TCP, 4): "tcp",
    (Proto.TCP, 6): "tcp6",
    (Proto.UDP, 4): "udp",
    (Proto.UDP, 6): "udp6",
}


def procfs_rows(proto: Proto, family: int) -> list[Row]:
    text = (FIXTURES / f"proc-net-{FILES[(proto, family)]}.txt").read_text()
    return parse_lines(text.splitlines(), family, proto)


def netlink_rows(proto: Proto, family: int) -> list[Row]:
    rows: list[Row] = []
    data = (FIXTURES / f"dump-{proto.value}{family}.bin").read_bytes()
    decode_chunk(data, family, proto, rows, set())
    return rows


def comparable(row: Row) -> tuple[object, ...]:
    proto, fam, state, la, lp, ra, rp, rq, wq, uid, inode, _iface, _v6only = row
    # /proc/net has no backlog for listeners, no interface and no v6only
    return (proto, fam, state, la, lp, ra, rp, rq, wq if state is not TcpState.LISTEN else 0,
            uid, inode)  # fmt: skip


def test_procfs_and_netlink_agree_on_the_same_sockets() -> None:
    for proto, fam in FILES:
        assert sorted(map(comparable, procfs_rows(proto, fam)), key=repr) == sorted(
            map(comparable, netlink_rows(proto, fam)), key=repr
        ), (proto, fam)


def test_host_order_hex_addresses_decode() -> None:
    rows = procfs_rows(Proto.TCP, 6)
    assert {r[3] for r in rows} >= {"::", "::1", "::ffff:127.0.0.1"}


def test_state_filter_and_header_are_handled() -> None:
    rows = procfs_rows(Proto.TCP, 4)
    listen = parse_lines(
        (FIXTURES / "proc-net-tcp.txt").read_text().splitlines(),
        4,
        Proto.TCP,
        frozenset({TcpState.LISTEN}),
    )
    assert listen and all(r[2] is TcpState.LISTEN for r in listen)
    assert len(listen) < len(rows)


def test_lines_read_twice_are_kept_once() -> None:
    lines = (FIXTURES / "proc-net-udp.txt").read_text().splitlines()
    assert len(parse_lines(lines + lines[1:], 4, Proto.UDP)) == len(lines) - 1


def test_time_wait_line_has_no_inode_and_no_uid() -> None:
    tw = [r for r in procfs_rows(Proto.TCP, 4) if r[2] is TcpState.TIME_WAIT]
    assert len(tw) == 1 and tw[0][9] is None and tw[0][10] is None


def test_garbage_lines_are_skipped() -> None:
    assert parse_lines(["", "nonsense", "  0: zz:zz"], 4, Proto.TCP) == []
