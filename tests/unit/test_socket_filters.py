"""Socket-table filters: parsing user input and matching rows."""

from __future__ import annotations

import ipaddress

import pytest

from portscope.errors import InvalidFilter, InvalidPort
from portscope.models import Proto, TcpState
from portscope.sockets import SocketFilter, sort_rows, summarize
from portscope.sockets._diag_codec import Row
from portscope.sockets._filters import (
    ALL_STATES,
    DEFAULT_STATES,
    kernel_state_mask,
    parse_network,
    parse_pid,
    parse_port,
    parse_sort,
    parse_state,
    parse_states,
    parse_user,
)

S = TcpState


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("established", S.ESTABLISHED),
        ("ESTABLISHED", S.ESTABLISHED),
        ("estab", S.ESTABLISHED),
        ("time-wait", S.TIME_WAIT),
        ("TIME_WAIT", S.TIME_WAIT),
        ("Time-Wait", S.TIME_WAIT),
        ("listen", S.LISTEN),
        ("listening", S.LISTEN),
        ("syn-recv", S.SYN_RECV),
        ("fin_wait_1", S.FIN_WAIT_1),
        ("closed", S.CLOSE),
        ("unconn", S.UNCONN),
    ],
)
def test_state_names_any_case_and_spelling(text: str, state: TcpState) -> None:
    assert parse_state(text) == {state}


def test_ss_state_groups() -> None:
    # man 8 ss, STATE-FILTER: connected = all but listening and closed
    assert parse_state("connected") == ALL_STATES - {S.LISTEN, S.CLOSE, S.UNCONN}
    assert S.TIME_WAIT in parse_state("connected")
    assert parse_state("synchronized") == parse_state("connected") - {S.SYN_SENT}
    assert parse_state("bucket") == {S.TIME_WAIT, S.SYN_RECV}
    assert parse_state("big") == ALL_STATES - {S.TIME_WAIT, S.SYN_RECV}
    assert parse_state("all") == ALL_STATES


def test_default_is_what_ss_shows_without_a() -> None:
    assert S.ESTABLISHED in DEFAULT_STATES
    assert not DEFAULT_STATES & {S.LISTEN, S.TIME_WAIT, S.SYN_RECV, S.UNCONN, S.CLOSE}


def test_state_lists() -> None:
    assert parse_states("established,time-wait") == {S.ESTABLISHED, S.TIME_WAIT}
    assert parse_states([S.LISTEN, "unconn"]) == {S.LISTEN, S.UNCONN}


@pytest.mark.parametrize("text", ["bogus", "", "established,bogus", "fin-wait-3"])
def test_bad_state_names_the_value_and_the_accepted_ones(text: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_states(text)
    message = str(info.value)
    assert "established" in message
    assert "\n" not in message


def test_ports_numbers_and_names() -> None:
    assert parse_port("80") == 80
    assert parse_port("0") == 0
    assert parse_port("65535") == 65535
    assert parse_port("ssh") == 22
    assert parse_port(443) == 443


@pytest.mark.parametrize("text", ["70000", "-1", "65536", "no-such-service-x", "8o"])
def test_bad_ports(text: str) -> None:
    with pytest.raises(InvalidPort) as info:
        parse_port(text)
    assert repr(text) in str(info.value) and "0-65535" in str(info.value)


def test_networks() -> None:
    assert parse_network("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network("192.0.2.5") == ipaddress.ip_network("192.0.2.5/32")
    assert parse_network("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")  # not strict
    assert parse_network("2001:db8::/32").version == 6


@pytest.mark.parametrize("text", ["1.2.3.999/33", "1.2.3.4/33", "example", "::g"])
def test_bad_networks(text: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_network(text)
    assert repr(text) in str(info.value) and "CIDR" in str(info.value)


def test_users_pids_and_sort_keys() -> None:
    assert parse_user("root") == 0
    assert parse_user("0") == 0
    assert parse_user("12345") == 12345
    with pytest.raises(InvalidFilter):
        parse_user("no-such-user-xyz")
    assert parse_pid("1") == 1
    for bad in ("0", "-3", "abc"):
        with pytest.raises(InvalidFilter):
            parse_pid(bad)
    assert parse_sort("Recv_Q") == "recv-q"
    with pytest.raises(InvalidFilter) as info:
        parse_sort("colour")
    assert "port" in str(info.value)


def test_kernel_state_masks() -> None:
    # tcp_states.h: ESTABLISHED=1, TIME_WAIT=6, CLOSE=7, LISTEN=10
    assert kernel_state_mask(frozenset({S.LISTEN}), Proto.TCP) == 1 << 10
    assert kernel_state_mask(frozenset({S.LISTEN, S.UNCONN}), Proto.TCP) == 1 << 10
    assert kernel_state_mask(frozenset({S.LISTEN, S.UNCONN}), Proto.UDP) == 1 << 7
    assert kernel_state_mask(frozenset({S.ESTABLISHED}), Proto.UDP) == 1 << 1
    assert kernel_state_mask(frozenset({S.TIME_WAIT}), Proto.UDP) == 0
    assert kernel_state_mask(None, Proto.TCP) & (1 << 6)


def row(state: TcpState, la: str, lp: int, ra: str | None, rp: int | None, **kw: object) -> Row:
    proto = kw.get("proto", Proto.TCP)
    fam = 6 if ":" in la else 4
    uid = kw.get("uid", 1000)
    return Row(proto, fam, state, la, lp, ra, rp, kw.get("rq", 0), kw.get("wq", 0), uid,  # type: ignore[arg-type]
               kw.get("inode", 1), None, None)  # fmt: skip


ROWS = [
    row(S.LISTEN, "0.0.0.0", 22, None, None, rq=0, wq=128, uid=0, inode=10),
    row(S.ESTABLISHED, "10.0.0.5", 22, "192.0.2.7", 50000, rq=5, inode=11),
    row(S.ESTABLISHED, "10.0.0.5", 41000, "198.51.100.1", 443, wq=900, inode=12),
    row(S.TIME_WAIT, "::1", 8080, "::1", 41111, uid=None, inode=None),
    row(S.UNCONN, "127.0.0.53", 53, None, None, proto=Proto.UDP, uid=101, inode=13),
    row(S.ESTABLISHED, "::ffff:10.0.0.5", 8443, "::ffff:203.0.113.9", 1234, inode=14),
]


def keep(f: SocketFilter) -> list[int | None]:
    pred = f.predicate()
    return [r.inode for r in ROWS if pred(r)]


def test_port_filters() -> None:
    assert keep(SocketFilter(ports=frozenset({22}))) == [10, 11]
    assert keep(SocketFilter(sports=frozenset({22}))) == [10, 11]
    assert keep(SocketFilter(dports=frozenset({443}))) == [12]
    assert keep(SocketFilter(ports=frozenset({443, 53}))) == [12, 13]


def test_address_filter_matches_either_end_and_v4_mapped() -> None:
    net = (parse_network("10.0.0.0/8"),)
    assert keep(SocketFilter(networks=net)) == [11, 12, 14]
    assert keep(SocketFilter(networks=(parse_network("192.0.2.0/24"),))) == [11]
    assert keep(SocketFilter(networks=(parse_network("::1"),))) == [None]


def test_uid_and_state_filters() -> None:
    assert keep(SocketFilter(uids=frozenset({0, 101}))) == [10, 13]  # no owner map: socket uid
    assert keep(SocketFilter(states=frozenset({S.TIME_WAIT}))) == [None]


def test_conditions_combine_with_and() -> None:
    f = SocketFilter(ports=frozenset({22}), states=frozenset({S.ESTABLISHED}))
    assert keep(f) == [11]
    assert f.row_level and not f.needs_owners
    assert SocketFilter(pids=frozenset({1})).needs_owners


def test_sort_keys_order_rows() -> None:
    rows = list(ROWS)
    assert [r.local_port for r in sort_rows(rows, "port")] == [22, 22, 53, 8080, 8443, 41000]
    assert sort_rows(rows, "recv-q")[0].inode == 11
    assert sort_rows(rows, "send-q")[0].inode == 12
    assert [r.inode for r in sort_rows(rows, "local")][:2] == [10, 11]  # 0.0.0.0 < 10.0.0.5
    assert sort_rows(rows, "state")[0].state is S.ESTABLISHED


def test_summary_counts() -> None:
    s = summarize(ROWS)
    assert s["total"] == 6
    assert s["by_proto"]["tcp"]["total"] == 5
    assert s["by_proto"]["tcp"]["ipv6"] == 2
    assert s["by_proto"]["tcp"]["states"]["ESTABLISHED"] == 3
    assert s["by_proto"]["udp"]["states"] == {"UNCONN": 1}


def test_backends_that_cannot_run_here_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import portscope.sockets as sockets
    from portscope.errors import BackendUnavailable

    monkeypatch.setattr("sys.platform", "darwin")
    for name in ("netlink", "procfs"):
        with pytest.raises(BackendUnavailable) as info:
            sockets.list_sockets(backend=name)
        assert "Linux" in str(info.value)
    with pytest.raises(InvalidFilter) as bad:
        sockets.list_sockets(backend="bogus")
    assert "'bogus'" in str(bad.value) and "netlink" in str(bad.value)


def test_bad_list_sockets_arguments() -> None:
    from portscope.sockets import list_sockets

    with pytest.raises(InvalidFilter):
        list_sockets(states="bogus")
    with pytest.raises(InvalidFilter) as info:
        list_sockets(protos=["icmp"])
    assert "tcp, udp" in str(info.value)
    with pytest.raises(InvalidFilter):
        list_sockets(families=[5])


def test_ports_resolve_through_portscope_registry() -> None:
    # redis is in portscope's registry; getservbyname on a minimal /etc/services is not
    assert parse_port("redis") == 6379
    assert parse_port("http-alt") == 8080
    assert parse_port(" 0 ") == 0


@pytest.mark.parametrize(
    ("patterns", "name", "hit"),
    [
        (["python"], "python3", True),  # part of the name, as pgrep
        (["ython"], "python3", True),
        (["Python"], "python3", False),  # case matters, as pgrep
        (["python3.1?"], "python3.12", True),  # a glob over the whole name
        (["py*"], "python3", True),
        (["*thon"], "python3", False),
        (["[pq]ython3"], "python3", True),
        (["=python"], "python3", False),  # exactly
        (["=python3"], "python3", True),
        (["nginx", "=sshd"], "sshd", True),
    ],
)
def test_process_patterns(patterns: list[str], name: str, hit: bool) -> None:
    from portscope.sockets._filters import process_matcher

    assert process_matcher(patterns)(name) is hit


@pytest.mark.parametrize("text", ["", "  ", "="])
def test_empty_process_pattern_is_refused(text: str) -> None:
    from portscope.sockets._filters import parse_process

    with pytest.raises(InvalidFilter) as info:
        parse_process(text)
    assert "=NAME" in str(info.value)


def owner_map() -> object:
    from portscope.sockets._owners import OwnerMap, ProcessInfo, user_name

    # inode 10 (socket uid 0) is held by a process running as uid 101's user
    return OwnerMap.from_holders(
        {10: [(500, 3)], 11: [(501, 4)]},
        {500: ProcessInfo("nginx", user_name(101), None, None),
         501: ProcessInfo("python3", user_name(1000), None, None)},
    )  # fmt: skip


def test_user_filter_matches_the_socket_uid_or_a_holding_process_user() -> None:
    omap = owner_map()
    f = SocketFilter(uids=frozenset({101}))
    assert f.needs_owners
    pred = f.predicate(omap)  # type: ignore[arg-type]
    # 13: socket uid 101; 10: socket uid 0 but held by a process running as uid 101
    assert [r.inode for r in ROWS if pred(r)] == [10, 13]


def test_process_filter_matches_part_of_the_name() -> None:
    pred = SocketFilter(processes=frozenset({"python"})).predicate(owner_map())  # type: ignore[arg-type]
    assert [r.inode for r in ROWS if pred(r)] == [11]
    pred = SocketFilter(processes=frozenset({"=python"})).predicate(owner_map())  # type: ignore[arg-type]
    assert [r.inode for r in ROWS if pred(r)] == []


def test_unknown_queue_sizes_sort_last() -> None:
    rows = [ROWS[0]._replace(send_q=None), ROWS[2]]
    assert [r.send_q for r in sort_rows(rows, "send-q")] == [900, None]
