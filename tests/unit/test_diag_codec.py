"""The inet_diag codec on dumps captured from a real kernel (tests/fixtures/sockets)."""

from __future__ import annotations

import errno
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from portscope.errors import BackendUnavailable, PermissionDenied
from portscope.models import Proto, TcpState
from portscope.sockets._diag_codec import ROW_FIELDS, Row, decode_chunk

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sockets"
DUMPS = {
    (Proto.TCP, 4): "dump-tcp4.bin",
    (Proto.TCP, 6): "dump-tcp6.bin",
    (Proto.UDP, 4): "dump-udp4.bin",
    (Proto.UDP, 6): "dump-udp6.bin",
}


def decode_all(proto: Proto, family: int, data: bytes | None = None) -> list[Row]:
    data = data if data is not None else (FIXTURES / DUMPS[(proto, family)]).read_bytes()
    rows: list[Row] = []
    assert decode_chunk(data, family, proto, rows, set()) is True  # ends with NLMSG_DONE
    return rows


def all_rows() -> list[Row]:
    return [r for (proto, fam) in DUMPS for r in decode_all(proto, fam)]


def expected() -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "expected.json").read_text())  # type: ignore[no-any-return]


def find(rows: list[Row], want: dict[str, Any]) -> dict[str, Any]:
    hits = [
        dict(zip(ROW_FIELDS, r, strict=True))
        for r in rows
        if r.proto.value == want["proto"]
        and r.family == want["family"]
        and [r.local_address, r.local_port] == want["local"]
        and r.state.value == want["state"]
    ]
    assert len(hits) == 1, (want, hits)
    return hits[0]


@pytest.mark.parametrize(
    "want", expected(), ids=lambda w: f"{w['proto']}{w['family']}-{w['state']}"
)
def test_every_captured_socket_decodes_to_its_known_values(want: dict[str, Any]) -> None:
    row = find(all_rows(), want)
    assert row["inode"] == want["inode"]
    remote = want.get("remote")
    assert [row["remote_address"], row["remote_port"]] == (remote or [None, None])
    for key in ("recv_q", "send_q", "v6only", "interface"):
        if key in want:
            assert row[key] == want[key], key
    if "uid" in want:
        assert row["uid"] == want["uid"]
    else:
        assert row["uid"] == 0  # captured as root


def test_listener_queues_are_accept_queue_and_backlog() -> None:
    rows = decode_all(Proto.TCP, 6)
    queued = [r for r in rows if r.state is TcpState.LISTEN and r.local_address == "::1"]
    assert len(queued) == 1
    assert (queued[0].recv_q, queued[0].send_q) == (1, 5)  # one connection waiting, listen(5)


def test_v4_mapped_peer_is_shown_as_ss_shows_it() -> None:
    rows = decode_all(Proto.TCP, 6)
    mapped = [r for r in rows if r.local_address.startswith("::ffff:")]
    assert len(mapped) == 1
    assert mapped[0].local_address == "::ffff:127.0.0.1"
    assert mapped[0].remote_address == "::ffff:127.0.0.1"


def test_v6only_is_reported_only_for_ipv6_listeners_and_unconnected() -> None:
    for r in all_rows():
        if r.family == 4 or r.state not in (TcpState.LISTEN, TcpState.UNCONN):
            assert r.v6only is None
        else:
            assert isinstance(r.v6only, bool)


def test_time_wait_has_no_inode_and_no_uid() -> None:
    tw = [r for r in decode_all(Proto.TCP, 4) if r.state is TcpState.TIME_WAIT]
    assert len(tw) == 1
    assert tw[0].uid is None and tw[0].inode is None


def test_udp_states_are_unconn_and_established() -> None:
    states = {r.state for r in decode_all(Proto.UDP, 4)}
    assert states == {TcpState.UNCONN, TcpState.ESTABLISHED}


def split_messages(data: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(data):
        (length,) = struct.unpack_from("=I", data, off)
        out.append(data[off : off + length])
        off += (length + 3) & ~3
    return out


def test_multi_part_dump_decodes_like_one_buffer_and_drops_repeats() -> None:
    data = (FIXTURES / DUMPS[(Proto.TCP, 4)]).read_bytes()
    messages = split_messages(data)
    rows: list[Row] = []
    seen: set[int] = set()
    done = False
    # every message in its own recv, and the first three received twice (a re-walk)
    for chunk in messages[:3] + messages:
        done = decode_chunk(chunk, 4, Proto.TCP, rows, seen)
    assert done
    assert rows == decode_all(Proto.TCP, 4)


def nlmsg_error(code: int) -> bytes:
    return struct.pack("=IHHII i 16x", 36, 2, 0, 1, 0, code)


def test_netlink_error_eperm_is_permission_denied() -> None:
    with pytest.raises(PermissionDenied) as info:
        decode_chunk(nlmsg_error(-errno.EPERM), 4, Proto.TCP, [], set())
    assert info.value.errno == errno.EPERM


def test_other_netlink_errors_are_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable) as info:
        decode_chunk(nlmsg_error(-errno.ENOENT), 4, Proto.UDP, [], set())
    assert info.value.errno == errno.ENOENT


def test_ack_ends_the_dump() -> None:
    assert decode_chunk(nlmsg_error(0), 4, Proto.TCP, [], set()) is True


def test_empty_chunk_is_not_the_end() -> None:
    assert decode_chunk(b"", 4, Proto.TCP, [], set()) is False


# --- the request and the kernel-side port filter --------------------------------------

import itertools  # noqa: E402
import socket  # noqa: E402

from portscope.sockets._netlink import port_filter, request  # noqa: E402


def test_request_layout_matches_inet_diag_req_v2() -> None:
    raw = request(socket.AF_INET6, socket.IPPROTO_UDP, 1 << 7)
    # nlmsghdr (16) + inet_diag_req_v2 (8 + inet_diag_sockid 48)
    assert len(raw) == 72
    length, kind, flags = struct.unpack_from("=IHH", raw)
    assert (length, kind) == (72, 20) and flags == 0x301  # REQUEST | DUMP
    family, proto, ext, states = struct.unpack_from("=BBBxI", raw, 16)
    assert (family, proto, ext, states) == (socket.AF_INET6, socket.IPPROTO_UDP, 0, 1 << 7)
    with_bc = request(socket.AF_INET, socket.IPPROTO_TCP, 2, bytecode=b"\0" * 8)
    assert len(with_bc) == 72 + 4 + 8
    assert struct.unpack_from("=I", with_bc)[0] == len(with_bc)
    assert struct.unpack_from("=HH", with_bc, 72) == (12, 1)  # INET_DIAG_REQ_BYTECODE


def run_bytecode(program: bytes, sport: int, dport: int) -> bool:
    """inet_diag_bc_run (net/ipv4/inet_diag.c) for the port ops, in Python."""
    off, left = 0, len(program)
    while left > 0:
        code, yes, no = struct.unpack_from("=BBH", program, off)
        if code == 1:  # JMP
            ok = False
        else:
            port = struct.unpack_from("=BBH", program, off + 4)[2]
            value = sport if code in (2, 3) else dport
            ok = value >= port if code in (2, 4) else value <= port
        step = yes if ok else no
        off, left = off + step, left - step
    return left == 0


def audit(program: bytes) -> None:
    """The kernel's inet_diag_bc_audit rules for these ops."""
    off, left = 0, len(program)
    boundaries = set()
    while left > 0:
        boundaries.add(off)
        code, yes, no = struct.unpack_from("=BBH", program, off)
        min_len = 4 if code == 1 else 8
        assert min_len <= yes <= left + 4 and yes % 4 == 0
        assert min_len <= no <= left + 4 and no % 4 == 0
        off, left = off + yes, left - yes
    off = 0
    while off < len(program):
        code, yes, no = struct.unpack_from("=BBH", program, off)
        target = off + no
        assert target in boundaries or target >= len(program), (off, no)
        off += yes


@pytest.mark.parametrize(
    "clauses",
    [
        [[("s", 22)]],
        [[("d", 443)]],
        [[("s", 22), ("s", 80), ("s", 65535)]],
        [[("s", 80)], [("d", 1234), ("d", 0)]],
        [[("s", 53), ("d", 53)]],
    ],
)
def test_port_filter_program_means_what_it_says(clauses: list[list[tuple[str, int]]]) -> None:
    program = port_filter(clauses)
    audit(program)
    ports = [0, 1, 22, 53, 80, 443, 1234, 65535]
    for sport, dport in itertools.product(ports, ports):
        want = all(
            any((sport if side == "s" else dport) == port for side, port in clause)
            for clause in clauses
        )
        assert run_bytecode(program, sport, dport) is want, (sport, dport)


def test_no_clause_no_program() -> None:
    assert port_filter([]) == b""


@pytest.mark.parametrize(("proto", "family"), list(DUMPS))
def test_fused_json_decoder_writes_exactly_the_renderer_json(proto: Proto, family: int) -> None:
    from portscope.render.sockets import SocketJson
    from portscope.sockets._diag_codec import decode_chunk_json

    data = (FIXTURES / DUMPS[(proto, family)]).read_bytes()
    lines: list[str] = []
    assert decode_chunk_json(data, family, proto, lines, set()) is True
    assert lines == SocketJson(None, None).lines(decode_all(proto, family))
    seen: set[int] = set()
    twice: list[str] = []
    for message in split_messages(data) * 2:
        decode_chunk_json(message, family, proto, twice, seen)
    assert twice == SocketJson(None, None).lines(decode_all(proto, family))


def test_fused_json_decoder_writes_the_owners_as_the_renderer_does() -> None:
    from portscope.render.sockets import SocketJson
    from portscope.sockets._diag_codec import decode_chunk_json
    from portscope.sockets._owners import OwnerMap, ProcessInfo

    rows = decode_all(Proto.TCP, 4) + decode_all(Proto.TCP, 6)
    inodes = [r.inode for r in rows if r.inode is not None]
    holders = {inodes[0]: [(10, 3)], inodes[1]: [(10, 4), (11, 4)], inodes[2]: [(99, 5)]}
    infos = {10: ProcessInfo("nginx", "www", ("nginx", "-g", 'x "y"'), 1.5), 11: ProcessInfo(
        "nginx", None, None, None)}  # fmt: skip
    omap = OwnerMap.from_holders(holders, infos)
    everything: list[str] = []
    for family in (4, 6):
        data = (FIXTURES / DUMPS[(Proto.TCP, family)]).read_bytes()
        fast = SocketJson(omap, None)
        lines: list[str] = []
        decode_chunk_json(data, family, Proto.TCP, lines, set(), fast.owners_json())
        assert lines == SocketJson(omap, None).lines(decode_all(Proto.TCP, family))
        everything += lines
    owners = [json.loads(line)["owners"] for line in everything]
    assert [[o["pid"] for o in x] for x in owners if x] == [[10], [10, 11]]
    assert all(x == [] for x in owners if x is not None and not x)
