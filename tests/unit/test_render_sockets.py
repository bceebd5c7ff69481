"""Socket renderers: the fast JSON equals to_dict(Socket), tables read well, bad input."""

from __future__ import annotations

import io
import json

import pytest

from portscope.cli import Env, main
from portscope.models import Proto, TcpState, to_dict
from portscope.render.sockets import (
    SocketJson,
    render_listen,
    render_ls,
    render_summary,
    write_sockets_json,
)
from portscope.sockets import row_to_socket, scope_words, summarize
from portscope.sockets._diag_codec import Row
from portscope.sockets._owners import OwnerMap, ProcessInfo

S = TcpState
NGINX = ProcessInfo("nginx", "www-data", ("nginx: master", "-g", 'daemon "off";'), 1700000000.5)
WORKER = ProcessInfo("nginx", "www-data", None, None)
ROWS: list[Row] = [
    Row(Proto.TCP, 4, S.LISTEN, "0.0.0.0", 80, None, None, 0, 511, 0, 100, None, None),
    Row(Proto.TCP, 6, S.LISTEN, "::", 443, None, None, 2, 4096, 0, 101, None, False),
    Row(Proto.TCP, 6, S.LISTEN, "::1", 8080, None, None, 0, 128, 1000, 102, "lo", True),
    Row(Proto.UDP, 4, S.UNCONN, "127.0.0.53", 53, None, None, 0, 0, 101, 103, None, None),
    Row(Proto.TCP, 4, S.ESTABLISHED, "10.0.0.5", 22, "192.0.2.7", 50000, 0, 36, 0, 104, None,
     None),
    Row(Proto.TCP, 4, S.TIME_WAIT, "127.0.0.1", 41000, "127.0.0.1", 80, 0, 0, None, None, None,
     None),
    Row(Proto.TCP, 6, S.ESTABLISHED, "fe80::1%eth0", 22, "fe80::2", 1234, 0, 0, 0, 105, "eth0",
     None),
]  # fmt: skip
OWNERS = OwnerMap.from_holders(
    {100: [(10, 6), (11, 6)], 101: [(10, 7)], 104: [(99, 3)], 105: [(12, 4)]},
    {10: NGINX, 11: WORKER, 12: ProcessInfo("sshd", None, ("sshd",), None)},
)


def fake_service(r: Row) -> str | None:
    port = min(r.local_port, r.remote_port or 1 << 20)
    return {80: "http", 443: "https", 22: "ssh", 53: "domain"}.get(port)


@pytest.mark.parametrize("owners", [None, OWNERS])
def test_fast_json_is_exactly_to_dict_plus_service(owners: OwnerMap | None) -> None:
    lines = SocketJson(owners, fake_service).lines(ROWS)
    for line, r in zip(lines, ROWS, strict=True):
        want = to_dict(row_to_socket(r, owners))
        want["service"] = fake_service(r)
        assert json.loads(line) == want
        assert "\n" not in line


def test_shared_socket_lists_every_owner_and_exited_ones_vanish() -> None:
    line = json.loads(SocketJson(OWNERS, None).lines(ROWS[:1])[0])
    assert [(o["pid"], o["fd"]) for o in line["owners"]] == [(10, 6), (11, 6)]
    assert line["owners"][0]["cmdline"] == ["nginx: master", "-g", 'daemon "off";']
    ssh = json.loads(SocketJson(OWNERS, None).lines([ROWS[4]])[0])
    assert ssh["owners"] == []  # pid 99 exited after the scan
    assert json.loads(SocketJson(None, None).lines([ROWS[5]])[0])["owners"] is None


def test_whole_document_shape() -> None:
    out = io.StringIO()
    notes = ["a note"]
    n = write_sockets_json(
        [ROWS[:3], ROWS[3:]],
        out,
        backend="netlink",
        notes=notes,
        formatter=SocketJson(None, None, extra=lambda r: {"scope": "x"}),
        owners_complete=lambda: None,
    )
    doc = json.loads(out.getvalue())
    assert n == len(ROWS) == len(doc["sockets"])
    assert doc["backend"] == "netlink" and doc["notes"] == notes
    assert doc["owners_complete"] is None
    assert all(s["scope"] == "x" for s in doc["sockets"])
    assert out.getvalue().count("\n") == len(ROWS) + 2  # header, one line per socket, end


def test_empty_document_is_valid_json() -> None:
    out = io.StringIO()
    write_sockets_json([], out, backend="procfs", notes=[], formatter=SocketJson(None, None))
    assert json.loads(out.getvalue())["sockets"] == []


@pytest.mark.parametrize(
    ("family", "address", "v6only", "iface", "words"),
    [
        (4, "0.0.0.0", None, None, "all interfaces (IPv4)"),
        (6, "::", False, None, "all interfaces (IPv4+IPv6)"),
        (6, "::", True, None, "all interfaces (IPv6 only)"),
        (4, "127.0.0.1", None, None, "loopback only"),
        (4, "127.0.0.53", None, None, "loopback only"),
        (6, "::1", True, None, "loopback only"),
        (6, "::ffff:127.0.0.1", None, None, "loopback only"),
        (4, "192.0.2.5", None, None, "192.0.2.5 only"),
        (6, "fe80::1%eth0", None, "eth0", "fe80::1 only, device eth0"),
        (4, "0.0.0.0", None, "lo", "all interfaces (IPv4), device lo"),
    ],
)
def test_bind_scope_in_words(
    family: int, address: str, v6only: bool | None, iface: str | None, words: str
) -> None:
    assert scope_words(family, address, v6only, iface) == words


def env() -> tuple[Env, io.StringIO]:
    out = io.StringIO()
    return Env(stdout=out, stderr=io.StringIO(), width=132), out


NAMED = [Row(*r) for r in ROWS]


def test_listen_table_reads_well() -> None:
    e, out = env()
    rows = NAMED[:4]
    e.show(render_listen(rows, owners=OWNERS, service=fake_service))
    lines = out.getvalue().splitlines()
    header = lines[0].split()
    assert header == ["Proto", "Port", "Address", "Scope", "Service", "Process", "User", "Queue"]
    body = "\n".join(lines[2:])
    row80 = next(line for line in lines if " 80 " in line)
    assert "all interfaces (IPv4)" in row80 and "http" in row80
    assert "nginx[10],nginx[11]" in row80 and "www-data" in row80 and "0/511" in row80
    row443 = next(line for line in lines if " 443 " in line)
    assert "all interfaces (IPv4+IPv6)" in row443 and "[::]" in row443 and "2/4096" in row443
    assert "loopback only, device lo" in body
    row53 = next(line for line in lines if " 53 " in line)
    assert row53.split()[0] == "udp" and row53.rstrip().endswith("0")


def test_ls_table_columns_and_peers() -> None:
    e, out = env()
    e.show(render_ls(NAMED, owners=None, service=None))
    text = out.getvalue()
    assert text.splitlines()[0].split() == ["Proto", "State", "Recv-Q", "Send-Q", "Local", "Peer"]
    assert "0.0.0.0:80" in text and "[::]:443" in text and "*" in text
    assert "192.0.2.7:50000" in text and "TIME-WAIT" in text
    assert "[fe80::1%eth0]:22" in text


def test_big_tables_use_the_plain_formatter_with_the_same_columns() -> None:
    e, out = env()
    many = [NAMED[4]] * 6000
    e.show(render_ls(many, owners=OWNERS, service=fake_service))
    lines = out.getvalue().splitlines()
    assert len(lines) == 6002
    assert lines[0].split() == [
        "Proto", "State", "Recv-Q", "Send-Q", "Local", "Peer", "Service", "Process", "User"
    ]  # fmt: skip
    assert lines[2].split()[:7] == ["tcp", "ESTABLISHED", "0", "36", "10.0.0.5:22",
                                    "192.0.2.7:50000", "ssh"]  # fmt: skip


def test_summary_table() -> None:
    e, out = env()
    e.show(render_summary(summarize(ROWS)))
    text = out.getvalue()
    assert "listen 3" in text and "established 2" in text and "unconn 1" in text


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "bad"),
    [
        (["ls", "--state", "bogus"], "'bogus'"),
        (["ls", "--port", "70000"], "'70000'"),
        (["ls", "--sport", "99999"], "'99999'"),
        (["ls", "--addr", "1.2.3.999/33"], "'1.2.3.999/33'"),
        (["ls", "--sort", "colour"], "'colour'"),
        (["ls", "--user", "no-such-user-xyz"], "'no-such-user-xyz'"),
        (["ls", "--pid", "x"], "'x'"),
        (["ls", "--process", "="], "'='"),
        (["ls", "--port", "no-such-service-x"], "'no-such-service-x'"),
        (["ls", "--backend", "nope"], "'nope'"),
        (["listen", "--bogus"], "--bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv: list[str], bad: str) -> None:
    status, out, err = run(*argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("portscope: error: ")
    assert bad in err
    assert "Traceback" not in err
