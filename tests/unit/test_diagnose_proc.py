"""portscope._proc, the one reader of /proc facts, over a fake /proc tree and the real one."""

from __future__ import annotations

import os
from pathlib import Path

from portscope import _proc

# comm with a space and a ")" (a process may name itself so): fields count after the last ")"
STAT = "4242 (evil) name) S 77 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 0 0\n"


def fake_proc(tmp_path: Path) -> Path:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "stat").write_text(STAT)
    (tmp_path / "4242" / "status").write_text("Name:\tx\nCapEff:\t0000000000000400\n")
    (tmp_path / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    sys_ipv4 = tmp_path / "sys" / "net" / "ipv4"
    sys_ipv4.mkdir(parents=True)
    (sys_ipv4 / "ip_local_port_range").write_text("32768\t60999\n")
    (sys_ipv4 / "ip_unprivileged_port_start").write_text("1024\n")
    (sys_ipv4 / "ip_local_reserved_ports").write_text("8080,9000-9001\n")
    (sys_ipv4 / "tcp_tw_reuse").write_text("garbage\n")
    return tmp_path


def test_start_ticks_state_parent_and_time(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    assert _proc.start_ticks(4242, proc) == 123456
    assert _proc.process_state(4242, proc) == "S"
    assert _proc.parent_pid(4242, proc) == 77
    hz = _proc.clock_ticks_per_s()
    assert _proc.start_time(4242, proc) == round(1_700_000_000 + 123456 / hz, 2)
    assert _proc.start_ticks(1, proc) is None and _proc.start_time(1, proc) is None


def test_name_and_uid_of_a_process() -> None:
    me = os.getpid()
    assert _proc.process_uid(me) == os.getuid()
    assert _proc.process_name(me) == Path(f"/proc/{me}/comm").read_text().rstrip("\n")
    assert _proc.process_name(2**22 + 1) is None and _proc.process_uid(2**22 + 1) is None


def test_sysctls(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    assert _proc.ip_local_port_range(proc) == (32768, 60999)
    assert _proc.ip_unprivileged_port_start(proc) == 1024
    assert _proc.ip_local_reserved_ports(proc) == "8080,9000-9001"
    assert _proc.sysctl_int("net/ipv4/ip_unprivileged_port_start", 0, proc) == 1024
    assert _proc.sysctl_int("net.ipv4.tcp_tw_reuse", -1, proc) == -1  # not an integer
    assert _proc.sysctl_int("net.ipv4.no_such", 7, proc) == 7


def test_capabilities(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    mask = _proc.cap_effective(4242, proc)
    assert mask == 1 << _proc.CAP_NET_BIND_SERVICE
    assert _proc.cap_effective("self", proc) is None  # unreadable: None, not an error


def test_the_real_proc_agrees_with_the_socket_owner_reader() -> None:
    # Both readers of a start time must give the same value for the same process.
    from portscope.sockets._owners import read_process

    info = read_process(os.getpid())
    assert info is not None and info.start_time == _proc.start_time(os.getpid())
    assert _proc.start_ticks(os.getpid()) is not None
