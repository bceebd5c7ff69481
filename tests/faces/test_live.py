"""render.live: the rows, filters, groups and details both live faces show."""

from __future__ import annotations

from dataclasses import replace

from faces.data import KERNEL, LISTENERS, PG, conn, owner, source, table
from portscope.models import Container, Netns, Socket, SocketTable, TcpState
from portscope.render.live import (
    describe,
    filter_rows,
    group_by_process,
    make_rows,
    shown,
    snapshot_of,
    sort_rows,
)


def test_listen_view_cells_are_the_listening_view_columns() -> None:
    snap = source("listen")
    assert snap.total == len(LISTENERS)
    by_port = {r.sock.local.port: r for r in snap.rows}
    assert by_port[5432].cells[:8] == (
        "tcp", "5432", "127.0.0.1", "loopback only", "postgresql",
        f"postgres[{PG}]", "postgres", "0/128",
    )  # fmt: skip
    assert by_port[443].cells[2] == "[::]"
    assert by_port[443].scope_class == "all"
    assert by_port[8080].scope_class == "one"
    assert by_port[53].cells[0] == "udp" and by_port[53].cells[7] == "0"


def test_snapshot_rows_start_sorted_by_port() -> None:
    assert [r.sock.local.port for r in source("listen").rows] == [22, 53, 443, 5432, 8080, 9000]


def test_connection_view_holds_every_socket_with_a_peer_and_time_wait() -> None:
    snap = source("connections")
    assert {r.sock.state for r in snap.rows} == {TcpState.ESTABLISHED, TcpState.TIME_WAIT}
    assert snap.total == 4


def test_a_number_filters_ports_exactly_and_words_must_all_match() -> None:
    rows = source("listen").rows
    assert [r.sock.local.port for r in filter_rows(rows, "443")] == [443]
    assert filter_rows(rows, "44") == []  # not a substring of 443
    assert [r.sock.local.port for r in filter_rows(rows, "nginx")] == [443, 8080]
    assert [r.sock.local.port for r in filter_rows(rows, "NGINX 192.0.2")] == [8080]
    assert [r.sock.local.port for r in filter_rows(rows, "loopback")] == [53, 5432, 9000]
    assert [r.sock.local.port for r in filter_rows(rows, "unconn")] == [53]
    conns = source("connections").rows
    assert {r.sock.local.port for r in filter_rows(conns, "5432")} == {5432, 41000}
    assert [r.sock.local.port for r in filter_rows(conns, "time-wait")] == [44321]


def test_sort_by_any_column_numbers_as_numbers() -> None:
    rows = source("listen").rows
    assert [r.sock.local.port for r in sort_rows(rows, "Port", reverse=True)][:2] == [9000, 8080]
    assert sort_rows(rows, "Process")[0].cells[5] == "-"
    by_address = [r.sock.local.address for r in sort_rows(rows, "Address")]
    assert by_address[0] == "0.0.0.0" and by_address[-1] == "::"


def test_group_by_process_counts_sockets_and_ports() -> None:
    groups = group_by_process(source("listen").rows, "listen")
    nginx = next(g for g in groups if g.process.startswith("nginx["))
    assert (nginx.count, nginx.ports, nginx.user) == (2, (443, 8080), "www-data")
    assert groups[0] is nginx  # the largest group first


def test_large_tables_aggregate_and_a_filter_brings_rows_back() -> None:
    many = tuple(conn(20_000 + i, f"10.0.0.{i % 7}", 443) for i in range(300))
    snap = snapshot_of(SocketTable(many, "fixed", True), "connections", aggregate_above=100)
    assert snap.rows == () and snap.aggregates is not None
    assert snap.aggregates.total == 300
    assert snap.aggregates.by_state == (("ESTABLISHED", 300),)
    assert snap.aggregates.by_remote[0] == ("10.0.0.0", 43)
    rows, counts = shown(snap, "20005", aggregate_above=100)
    assert counts is None and [r.sock.local.port for r in rows] == [20005]
    rows, counts = shown(snap, "10.0.0.1", aggregate_above=100)
    assert counts is None and len(rows) == 43
    rows, counts = shown(snap, "443", aggregate_above=100)
    assert rows == [] and counts is not None and counts.total == 300


def test_detail_of_a_listener_names_owner_registry_range_and_scope() -> None:
    row = next(r for r in source("listen").rows if r.sock.local.port == 5432)
    detail = dict(describe(row, kernel=KERNEL))
    assert detail["Owner"] == f"postgres pid {PG} fd 3, user postgres"
    assert detail["Command"] == "/usr/sbin/postgres"
    assert detail["Registry"].startswith("postgresql")
    assert detail["Range"] == (
        "user (1024-49151, RFC 6335); outside this kernel's ephemeral range 32768-60999"
    )
    assert detail["Scope"] == "loopback only"
    assert "5-tuple" not in detail


def test_detail_of_connections_explains_the_five_tuple() -> None:
    rows = {r.sock.local.port: r for r in source("connections").rows}
    listening = [5432, 22]
    inbound = dict(describe(rows[5432], listening, KERNEL))["5-tuple"]
    assert inbound.startswith("(tcp, 127.0.0.1:5432, 127.0.0.1:41000)")
    assert "inbound: accepted on this host's listener on port 5432" in inbound
    outbound = dict(describe(rows[41000], listening, KERNEL))["5-tuple"]
    assert "outbound: this host connected from ephemeral port 41000 to port 5432" in outbound


def test_untrusted_text_stays_exact_in_rows() -> None:
    row = next(r for r in source("listen").rows if r.sock.local.port == 9000)
    assert row.cells[5] == "[link=http://x][90000003]"
    detail = dict(describe(row, kernel=KERNEL))
    assert detail["Command"] == "<script>alert(1)</script> [/]"


def test_make_rows_with_a_control_character_in_a_name_keeps_it_exact() -> None:
    sock = replace(LISTENERS[0], owners=owner(1, "a\x1b[2Jb"))
    (row,) = make_rows([sock], "listen")
    assert row.cells[5] == "a\x1b[2Jb[1]"  # the faces escape it where they draw


def test_table_fixture_is_consistent() -> None:
    assert len(table().sockets) == 10


# -- network namespaces (Socket.netns, issue 9) ---------------------------------------


def _in_namespaces() -> list[Socket]:
    web = Netns(4026532393, "ps12-web")
    redis = Netns(4026532513, None, (Container("docker", "54d10f54" + "0" * 56, "redis"),))
    bare = Netns(4026532999)
    return [
        replace(LISTENERS[0], netns=Netns(4026531833, "host")),
        replace(LISTENERS[1], netns=web),
        replace(LISTENERS[2], netns=redis),
        replace(LISTENERS[3], netns=bare),
    ]


def test_netns_cell_is_the_name_else_the_container_else_the_inode() -> None:
    rows = {r.sock.local.port: r for r in make_rows(_in_namespaces(), "listen")}
    assert [rows[p].cell("Netns", "listen") for p in (5432, 22, 8080, 443)] == [
        "host", "ps12-web", "docker:redis", "net:[4026532999]",
    ]  # fmt: skip
    assert make_rows(LISTENERS[:1], "listen")[0].cell("Netns", "listen") == ""  # no -N


def test_filter_matches_the_namespace_and_its_container() -> None:
    rows = make_rows(_in_namespaces(), "listen")
    words = (("ps12-web", 22), ("redis", 8080), ("54d10f54", 8080),
             ("net:[4026532999]", 443), ("4026532393", 22), ("docker", 8080))  # fmt: skip
    for word, port in words:
        assert [r.sock.local.port for r in filter_rows(rows, word)] == [port], word
    snap = snapshot_of(SocketTable(tuple(_in_namespaces()), "fixed", True), "listen",
                       aggregate_above=2)  # fmt: skip
    picked, counts = shown(snap, "redis", aggregate_above=2)  # the socket-level filter too
    assert counts is None and [r.sock.local.port for r in picked] == [8080]


def test_detail_names_the_namespace_and_its_containers() -> None:
    rows = {r.sock.local.port: r for r in make_rows(_in_namespaces(), "listen")}
    detail = dict(describe(rows[8080], kernel=KERNEL))
    assert detail["Netns"] == "net:[4026532513]"
    assert detail["Containers"] == "docker:redis"
    assert dict(describe(rows[22], kernel=KERNEL))["Netns"] == "ps12-web (net:[4026532393])"
    assert "Netns" not in dict(describe(make_rows(LISTENERS[:1], "listen")[0], kernel=KERNEL))
