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
    proto, fam, state, la, lp, ra, rp, rq, wq, uid, inode, _iface, _v6only, _cookie = row
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
    assert {r.local_address for r in rows} >= {"::", "::1", "::ffff:127.0.0.1"}


def test_state_filter_and_header_are_handled() -> None:
    rows = procfs_rows(Proto.TCP, 4)
    listen = parse_lines(
        (FIXTURES / "proc-net-tcp.txt").read_text().splitlines(),
        4,
        Proto.TCP,
        frozenset({TcpState.LISTEN}),
    )
    assert listen and all(r.state is TcpState.LISTEN for r in listen)
    assert len(listen) < len(rows)


def test_lines_read_twice_are_kept_once() -> None:
    lines = (FIXTURES / "proc-net-udp.txt").read_text().splitlines()
    assert len(parse_lines(lines + lines[1:], 4, Proto.UDP)) == len(lines) - 1


def test_time_wait_line_has_no_inode_and_no_uid() -> None:
    tw = [r for r in procfs_rows(Proto.TCP, 4) if r.state is TcpState.TIME_WAIT]
    assert len(tw) == 1 and tw[0].uid is None and tw[0].inode is None


def test_garbage_lines_are_skipped() -> None:
    assert parse_lines(["", "nonsense", "  0: zz:zz"], 4, Proto.TCP) == []


# --- the owner map on a fake /proc tree -------------------------------------------------

import os  # noqa: E402

import pytest  # noqa: E402

from portscope.sockets._owners import OwnerMap  # noqa: E402


def fake_proc(root: Path) -> Path:
    (root / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")

    def process(pid: int, comm: str, fds: dict[int, str], cmdline: bytes = b"") -> None:
        base = root / str(pid)
        (base / "fd").mkdir(parents=True)
        (base / "comm").write_text(comm + "\n")
        (base / "cmdline").write_bytes(cmdline)
        # starttime (field 22) = 250 ticks after boot; comm with a space and a ')'
        (base / "stat").write_text(f"{pid} ({comm} x)) S " + " ".join(["0"] * 18) + " 250 0 0\n")
        for fd, target in fds.items():
            os.symlink(target, base / "fd" / str(fd))

    process(100, "nginx", {3: "socket:[555]", 4: "socket:[556]", 5: "/dev/null"},
            b"nginx: master\0-g\0daemon off;\0")  # fmt: skip
    process(101, "nginx", {7: "socket:[555]"})
    process(103, "secret", {3: "socket:[557]"})
    (root / "102").mkdir()  # exited: no fd directory any more
    (root / "self").mkdir()
    return root


def test_owner_scan_on_a_fake_proc(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    omap = OwnerMap.scan(proc=str(proc), threads=1)
    assert omap.holders(555) == [(100, 3), (101, 7)]  # shared: every owner
    assert omap.holders(556) == [(100, 4)]
    assert omap.holders(557) == [(103, 3)]
    assert omap.holders(999) == [] and omap.holders(None) == []
    assert omap.complete
    info = omap.process(100)
    assert info is not None and info.name == "nginx"
    assert info.cmdline == ("nginx: master", "-g", "daemon off;")
    clk = os.sysconf("SC_CLK_TCK")
    assert info.start_time == pytest.approx(1700000000 + 250 / clk, abs=0.01)
    assert omap.process(101) is not None and omap.process(101).cmdline is None  # type: ignore[union-attr]


def test_owner_scan_keeps_only_wanted_inodes(tmp_path: Path) -> None:
    omap = OwnerMap.scan({556}, proc=str(fake_proc(tmp_path)), threads=2)
    assert omap.holders(556) == [(100, 4)] and omap.holders(555) == []


def test_unreadable_processes_make_a_partial_map_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = fake_proc(tmp_path)
    real_open = os.open

    def guarded(path: str, flags: int, *args: object, **kw: object) -> int:
        if str(path).endswith("/103/fd"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", guarded)
    omap = OwnerMap.scan(proc=str(proc), threads=1)
    assert not omap.complete and omap.denied == 1
    assert omap.holders(557) == [] and omap.holders(555) == [(100, 3), (101, 7)]
    note = omap.note()
    assert note is not None and "1 process of other users" in note
    assert "CAP_SYS_PTRACE" in note


def test_a_process_that_exits_after_the_scan_is_dropped(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    omap = OwnerMap.scan(proc=str(proc), threads=1)
    for name in ("comm", "cmdline", "stat"):
        (proc / "101" / name).unlink()
    (proc / "101" / "fd" / "7").unlink()
    (proc / "101" / "fd").rmdir()
    (proc / "101").rmdir()
    assert omap.holders(555) == [(100, 3)]
    row = Row(Proto.TCP, 4, TcpState.LISTEN, "0.0.0.0", 80, None, None, 0, 0, 0, 555, None, None)
    assert [o.pid for o in omap.owners(row)] == [100]


def test_listener_backlog_and_v6only_are_unknown_not_zero() -> None:
    from portscope.sockets._procfs import NOTE

    listeners = [r for r in procfs_rows(Proto.TCP, 6) if r.state is TcpState.LISTEN]
    assert listeners and all(r.send_q is None and r.v6only is None for r in listeners)
    assert all(r.recv_q is not None for r in listeners)  # the accept queue is known
    assert "backlog" in NOTE and "IPV6_V6ONLY" in NOTE
