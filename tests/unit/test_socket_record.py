"""The socket record: one field list (``Row``) drives the codec, the JSON and ``Socket``."""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
from typing import Any, NamedTuple

import pytest

from portscope.models import Netns, Proto, Socket, TcpState, to_dict
from portscope.render.sockets import SocketJson
from portscope.sockets import ROW_FIELDS, SCHEMA, Row, _record, row_to_socket
from portscope.sockets._diag_codec import IfNames, decode_chunk, decode_chunk_json
from portscope.sockets._owners import OwnerMap, ProcessInfo

S = TcpState


def expected_keys() -> list[str]:
    """The socket object's keys, derived from the field list alone."""
    keys: list[str] = []
    for name in ROW_FIELDS:
        if name.endswith("_port") and name[:-5] + "_address" in ROW_FIELDS:
            continue
        keys.append(name[:-8] if name.endswith("_address") else name)
    return keys


ROW = Row(Proto.TCP, 6, S.ESTABLISHED,
          "fe80::1%eth0", 22, "fe80::2", 1234, 0, 36, 0, 105, "eth0", None)  # fmt: skip


def test_json_keys_come_from_the_field_list() -> None:
    line = json.loads(SocketJson(None, None).lines([ROW])[0])
    assert list(line) == [*expected_keys(), "owners", "service"]
    assert [k.name for k in _record.json_keys()] == expected_keys()


def test_socket_declares_every_field_of_the_record_in_order() -> None:
    # Socket is the typed public face of Row: a new Row field must be declared there too
    names = [f.name for f in dataclasses.fields(Socket)]
    assert names == [*expected_keys(), "owners"]
    assert list(to_dict(row_to_socket(ROW))) == names


def test_to_dict_of_socket_equals_the_json_writer() -> None:
    line = json.loads(SocketJson(None, None).lines([ROW])[0])
    assert to_dict(row_to_socket(ROW)) == {k: v for k, v in line.items() if k != "service"}


def test_a_new_field_is_one_line_in_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the network-namespace field did (and the next one will): add it to Row,
    and JSON follows."""

    class Wider(NamedTuple):
        proto: Proto
        family: int
        state: TcpState
        local_address: str
        local_port: int
        remote_address: str | None
        remote_port: int | None
        recv_q: int | None
        send_q: int | None
        uid: int | None
        inode: int | None
        interface: str | None
        v6only: bool | None
        cookie: int | None
        netns: Netns | None
        label: str | None

    monkeypatch.setattr(_record, "Row", Wider)
    monkeypatch.setattr(_record, "ROW_FIELDS", Wider._fields)
    _record.row_json.cache_clear()
    try:
        text = _record.row_json()(Wider(*ROW, 'ns "blue"'), {}, {}) + "}"  # type: ignore[arg-type]
    finally:
        _record.row_json.cache_clear()
    data = json.loads(text)
    assert list(data)[-1] == "label" and data["label"] == 'ns "blue"'


# -- the fused decoder against the plain writer, on synthetic netlink bytes --------------

_MSG4 = struct.Struct("=IHHII BBBB HH 4s12x 4s12x I Q IIIII")
_MSG6 = struct.Struct("=IHHII BBBB HH 16s 16s I Q IIIII")


def message(family: int, state: int, sport: int, dport: int, src: str, dst: str | None,
            *, ifindex: int = 0, cookie: int, rq: int = 0, wq: int = 0, uid: int = 1000,
            inode: int = 0, v6only: bool | None = None) -> bytes:  # fmt: skip
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    size = 4 if family == 4 else 16
    raw_src = socket.inet_pton(af, src)
    raw_dst = socket.inet_pton(af, dst) if dst else bytes(size)
    layout = _MSG4 if family == 4 else _MSG6
    attr = b""
    if v6only is not None:
        attr = struct.pack("=HHB3x", 5, 11, int(v6only))  # INET_DIAG_SKV6ONLY
    length = layout.size + len(attr)
    body = layout.pack(length, 20, 2, 1, 0, af, state, 0, 0,
                       socket.htons(sport), socket.htons(dport), raw_src, raw_dst,
                       ifindex, cookie, 0, rq, wq, uid, inode)  # fmt: skip
    return body + attr


DONE = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)
HOSTILE = ['a"b', "back\\slash", "ctl\x01\x1f", "\u00e9t\u00e9", "bidi\u202e", "sur\udcff", "%x"]


def hostile_dump() -> tuple[bytes, IfNames]:
    names = IfNames()
    parts = []
    cookie = 1
    for i, name in enumerate(HOSTILE, start=2):
        names[i] = name
        parts.append(message(6, 10, 8000 + i, 0, "fe80::1", None, ifindex=i, cookie=cookie,
                             inode=500 + i, wq=128, v6only=bool(i % 2)))  # fmt: skip
        parts.append(message(6, 1, 22, 40000 + i, "fe80::1", "fe80::2", ifindex=i,
                             cookie=cookie + 1, inode=600 + i))  # fmt: skip
        cookie += 2
    parts.append(message(6, 10, 443, 0, "::", None, cookie=cookie, inode=9, v6only=False))
    parts.append(message(6, 6, 443, 50000, "::1", "::1", cookie=cookie + 1, uid=0))
    return b"".join(parts) + DONE, names


@pytest.mark.parametrize("with_owners", [False, True])
def test_fused_json_is_byte_identical_to_the_plain_writer_on_hostile_names(
    with_owners: bool,
) -> None:
    data, names = hostile_dump()
    rows: list[Row] = []
    assert decode_chunk(data, 6, Proto.TCP, rows, set(), names) is True
    omap = None
    if with_owners:
        holders = {502: [(10, 3)], 603: [(10, 4), (11, 4)], 9: [(12, 5)]}
        infos = {10: ProcessInfo('n"x\\', "u\x01", ("a\udcff", "\u202e"), 1.5),
                 11: ProcessInfo("w", None, None, None)}  # fmt: skip
        omap = OwnerMap.from_holders(holders, infos)
    plain = SocketJson(omap, None)
    fused_writer = SocketJson(omap, None)
    lines: list[str] = []
    assert decode_chunk_json(data, 6, Proto.TCP, lines, set(), fused_writer.owners_json(), names)
    assert lines == plain.lines(rows)
    assert len(lines) == 2 * len(HOSTILE) + 2
    for line, row in zip(lines, rows, strict=True):
        obj = json.loads(line)
        line.encode("utf-8")  # writable as UTF-8 (a lone surrogate stays escaped)
        assert obj["local"]["address"] == row.local_address
        assert obj["interface"] == row.interface
    scoped = [json.loads(x)["local"]["address"] for x in lines[: 2 * len(HOSTILE) : 2]]
    assert scoped == [f"fe80::1%{n}" for n in HOSTILE]


def test_unknown_values_are_null() -> None:
    row = Row(Proto.TCP, 6, S.LISTEN, "::", 80, None, None, 0, None, 0, 5, None, None)
    obj = json.loads(SocketJson(None, None).lines([row])[0])
    assert obj["send_q"] is None and obj["v6only"] is None and obj["remote"] is None


def test_schema_name() -> None:
    assert SCHEMA == "portscope.sockets/2"


def test_generated_code_shows_in_tracebacks() -> None:
    import linecache

    _record.row_json()
    lines: Any = linecache.getlines("<portscope generated row_json>")
    assert any("_json" in line for line in lines)


def test_a_socket_table_is_written_as_the_cli_document() -> None:
    import io

    from portscope.models import Owner, SocketTable
    from portscope.render.sockets import socket_row, write_table_json

    owner = Owner(7, 'x"y', None, ("a", "\u202e"), 1.5, 3)
    rows = [ROW, Row(Proto.UDP, 4, S.UNCONN, "0.0.0.0", 53, None, None, None, None,
                     None, None, None, None)]  # fmt: skip
    first = dataclasses.replace(row_to_socket(rows[0]), owners=(owner,))
    second = dataclasses.replace(row_to_socket(rows[1]), owners=())
    table = SocketTable((first, second), "psutil", owners_complete=False, notes=("n",))
    assert [socket_row(s) for s in table.sockets] == rows
    out = io.StringIO()
    assert write_table_json(table, out) == 2
    doc = json.loads(out.getvalue())
    assert doc["schema"] == SCHEMA and doc["backend"] == "psutil" and doc["notes"] == ["n"]
    assert doc["owners_complete"] is False
    assert doc["sockets"] == [{**to_dict(s), "service": None} for s in table.sockets]
