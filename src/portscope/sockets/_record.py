"""The socket record: one field list (``Row``) that every other shape is derived from.

``Row`` is what the backends produce and the CLI streams; its annotations are the one
field list. From it come, generated at first use:

* the JSON object of a socket (``json_fields``, schema ``portscope.sockets/2``, written by
  ``render.sockets.SocketJson`` and, fused with the decoder, by
  ``_diag_codec.decode_chunk_json``): one key per field, in order, except that a pair
  ``X_address``/``X_port`` becomes ``"X": {"address": ..., "port": ...}`` (``null`` when
  the address is ``None``);
* ``Socket`` objects (``row_to_socket``): fields passed by name, pairs as ``Endpoint``.

Adding a field (the network namespace is next) is one line in ``Row``, plus its value in
each backend; ``Socket`` declares it too (a typed public class), and a test fails until it
does. JSON kinds come from the annotation: ``int``, ``bool``, ``str`` (JSON-escaped),
enums (their value), each optionally ``| None`` (``null``). Addresses are written raw
(``inet_ntop`` text) unless they carry an IPv6 scope (``fe80::1%eth0``), whose interface
name can hold any byte but ``/`` and NUL: then they are escaped like any string.
"""

from __future__ import annotations

import json
import linecache
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from portscope.models import Proto, TcpState

if TYPE_CHECKING:
    from portscope.models import Netns, Owner, Socket

#: The schema of every socket JSON document (docs/sockets.md).
SCHEMA: Final = "portscope.sockets/2"


class Row(NamedTuple):
    """One socket as the backends produce it: a tuple with named fields.

    A NamedTuple, not a dataclass: the decoder makes 200,000 of them per dump
    (``tuple.__new__(Row, ...)``) and attribute reads cost what ``r[N]`` does
    (docs/sockets.md, "The record").

    Attributes:
        proto: TCP or UDP.
        family: 4 or 6.
        state: the socket's state.
        local_address: ``inet_ntop`` text; a scoped link-local one ends in ``%iface``.
        local_port: 0-65535.
        remote_address: the peer's address, or ``None`` without a peer.
        remote_port: the peer's port, or ``None`` without a peer.
        recv_q: bytes waiting to be read; for LISTEN, connections waiting for accept.
        send_q: bytes not acknowledged; for LISTEN, the backlog; ``None`` when unknown
            (procfs listeners, psutil).
        uid: the socket's owner uid, or ``None``.
        inode: the socket inode, or ``None`` when no file holds it.
        interface: the device it is bound to (SO_BINDTODEVICE), or ``None``.
        v6only: IPV6_V6ONLY of IPv6 listeners and unconnected sockets, ``None`` when
            not reported.
        cookie: the kernel's socket cookie (``idiag_cookie``, 64 bits; ``ss -e`` prints
            it as ``sk:HEX``), which names one socket for its lifetime (``SOCK_DESTROY``
            is matched by it); ``None`` when the backend cannot tell (procfs, psutil).
            Defaults to ``None`` so that backends without it need not name it.
        netns: the network namespace the socket lives in, or ``None`` when namespaces
            were not asked for (the caller's own). Its JSON is ``{"inode": N, "name":
            ... | null, "containers": [...] | null}`` (``models.Netns``).
    """

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
    cookie: int | None = None
    netns: Netns | None = None


ROW_FIELDS: Final = Row._fields


class JsonKey(NamedTuple):
    """One key of the socket JSON object, as derived from ``Row``.

    Attributes:
        name: the JSON key.
        fields: the ``Row`` fields it is made of (two for an endpoint).
        kind: ``enum``, ``int``, ``bool``, ``str`` or ``endpoint``.
        nullable: whether it can be ``null``.
    """

    name: str
    fields: tuple[str, ...]
    kind: str
    nullable: bool


_KINDS: Final = {
    "Proto": "enum",
    "TcpState": "enum",
    "int": "int",
    "bool": "bool",
    "str": "str",
    "Netns": "object",
}


def json_keys() -> tuple[JsonKey, ...]:
    """The keys of a socket's JSON object that come from ``Row``, in order."""
    keys: list[JsonKey] = []
    for name in ROW_FIELDS:
        hint = Row.__annotations__[name]
        annotation = str(getattr(hint, "__forward_arg__", hint))
        base, _, none = annotation.partition(" | ")
        if name.endswith("_port") and f"{name[:-5]}_address" in ROW_FIELDS:
            continue
        if name.endswith("_address") and f"{name[:-8]}_port" in ROW_FIELDS:
            keys.append(JsonKey(name[:-8], (name, f"{name[:-8]}_port"), "endpoint", bool(none)))
            continue
        keys.append(JsonKey(name, (name,), _KINDS[base], bool(none)))
    return tuple(keys)


def json_string(text: str) -> str:
    """``text`` as a JSON string: exact (UTF-8, control characters escaped); a lone
    surrogate (an interface name that is not UTF-8) as a ``\\udcXX`` escape."""
    out = json.dumps(text, ensure_ascii=False)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        out = json.dumps(text)
    return out


def cached_string(text: str, cache: dict[str, str]) -> str:
    """``json_string`` through ``cache`` (text -> JSON), for names seen many times."""
    try:
        return cache[text]
    except KeyError:
        value = cache[text] = json_string(text)
        return value


#: id -> (object, its JSON): the objects are kept alive, so an id is never reused while
#: cached; emptied when full. A namespace's record is one object shared by its rows.
_OBJECTS: dict[int, tuple[object, str]] = {}
OBJECTS_MAX: Final = 4096


def object_json(obj: object) -> str:
    """The compact JSON of a frozen dataclass field value (``models.to_dict``), cached
    by identity: every row of a namespace shares one ``Netns``."""
    try:
        return _OBJECTS[id(obj)][1]
    except KeyError:
        pass
    from portscope.models import to_dict

    text = json_string_of(to_dict(obj))
    if len(_OBJECTS) >= OBJECTS_MAX:
        _OBJECTS.clear()
    _OBJECTS[id(obj)] = (obj, text)
    return text


def json_string_of(data: Any) -> str:
    """Compact JSON of plain data, exact (UTF-8; a lone surrogate escaped)."""
    out = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        out = json.dumps(data, separators=(",", ":"))
    return out


def _address_json(address: str, cache: dict[str, str]) -> str:
    """A scoped address as JSON (the quotes are the caller's): escaped like any string."""
    return cached_string(address, cache)[1:-1]


def _prefix_fields() -> tuple[str, ...]:
    """The leading enum/int fields, whose JSON is cached per combination of values."""
    lead: list[str] = []
    for key in json_keys():
        if key.kind not in ("enum", "int") or key.nullable:
            break
        lead.append(key.name)
    return tuple(lead)


def _value_expr(
    key: JsonKey,
    before: list[str],
    never_none: frozenset[str],
    constants: frozenset[str] = frozenset(),
) -> str:
    """The f-string field writing the value of ``key`` (its fields are local names);
    statements it needs first go to ``before``.

    The f-string expressions name their string constants (``_J_NULL`` ...): an f-string
    expression may not hold quotes of its own before Python 3.12.
    """
    if key.kind == "endpoint":
        address, port = key.fields
        text = f"_a_{key.name}"
        # inet_ntop text needs no escaping; a scope (``%iface``) may need any
        before.append(
            f"{text} = {address} if '%' not in {address} else _address_json({address}, _strings)"
        )
        made = f'{{{{"address":"{{{text}}}","port":{{{port}}}}}}}'
        if not key.nullable:
            return made
        before[-1:] = [
            f"if {address} is None:",
            f"    _e_{key.name} = 'null'",
            "else:",
            f"    {before[-1]}",
            f"    _e_{key.name} = f'{made}'",
        ]
        return f"{{_e_{key.name}}}"
    (name,) = key.fields
    if name in constants:
        return f"{{_c_{name}}}"
    nullable = key.nullable and name not in never_none
    if key.kind == "str":
        value = f"_cached_string({name}, _strings)"
    elif key.kind == "bool":
        value = f"(_J_TRUE if {name} else _J_FALSE)"
    elif key.kind == "enum":
        value = f"_J_QUOTE + {name}.value + _J_QUOTE"
    elif key.kind == "object":
        value = f"_object_json({name})"
    else:
        value = name
    return f"{{_J_NULL if {name} is None else {value}}}" if nullable else f"{{{value}}}"


def json_statements(
    indent: str,
    never_none: frozenset[str] = frozenset(),
    tail: str = "",
    constants: frozenset[str] = frozenset(),
) -> str:
    """Statements that set ``_json`` to a socket's JSON object without its closing ``}``
    (or with ``tail``, f-string text written after the fields, in the same string).

    The ``Row`` fields must be local names; ``_prefixes`` (a dict) and ``_strings`` (a
    dict, JSON of strings) must be defined. Used by the plain writer and the fused
    decoder alike, so both write the same bytes.

    Args:
        indent: the indentation of the statements.
        never_none: nullable fields that the caller always sets (the netlink decoder's
            queue sizes): their test for ``None`` is left out.
        tail: f-string source appended to the object (the fused decoder's owners).
        constants: fields whose JSON text the caller computed once, in the local
            ``_c_FIELD`` (the fused decoder's ``netns``: one per dump).
    """
    keys = json_keys()
    lead = _prefix_fields()
    rest = keys[len(lead) :]
    unused: list[str] = []
    prefix_parts = "".join(
        f'"{k.name}":{_value_expr(k, unused, frozenset())},' for k in keys[: len(lead)]
    )
    key_tuple = "(" + "".join(f"{name}, " for name in lead) + ")"
    lines = [
        f"_p = _prefixes.get({key_tuple})",
        "if _p is None:",
        f"    _p = _prefixes[{key_tuple}] = f'{{{{{prefix_parts}'",
    ]
    body = ",".join(f'"{k.name}":{_value_expr(k, lines, never_none, constants)}' for k in rest)
    lines.append(f"_json = f'{{_p}}{body}{tail}'")
    return "".join(f"{indent}{line}\n" for line in lines)


def compile_source(source: str, name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Compile generated code, registered with ``linecache`` so tracebacks show it."""
    filename = f"<portscope generated {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace


def generated_globals() -> dict[str, Any]:
    """The names the generated JSON statements use."""
    return {
        "_address_json": _address_json,
        "_object_json": object_json,
        "_cached_string": cached_string,
        "_J_NULL": "null",
        "_J_TRUE": "true",
        "_J_FALSE": "false",
        "_J_QUOTE": '"',
    }


#: writes the fields part of a socket's JSON object (no closing brace)
RowJson = Callable[[Row, dict[tuple[Any, ...], str], dict[str, str]], str]


@cache
def row_json() -> RowJson:
    """The function ``(row, prefixes, strings) -> JSON of the row's fields`` (generated).

    ``prefixes`` and ``strings`` are caches the caller keeps (one per document).
    """
    source = (
        "def row_json(_row, _prefixes, _strings):\n"
        f"    ({', '.join(ROW_FIELDS)},) = _row\n" + json_statements("    ") + "    return _json\n"
    )
    fn: RowJson = compile_source(source, "row_json", generated_globals())["row_json"]
    return fn


MakeSocket = Callable[[Row, "tuple[Owner, ...] | None"], "Socket"]


@cache
def socket_maker() -> MakeSocket:
    """The function ``(row, owners) -> Socket`` (generated from ``Row``)."""
    from portscope.models import Endpoint, Socket

    args = []
    for key in json_keys():
        if key.kind == "endpoint":
            address, port = key.fields
            made = f"_Endpoint({address}, {port})"
            if key.nullable:
                made = f"None if {address} is None or {port} is None else {made}"
            args.append(f"{key.name}={made}")
        else:
            args.append(f"{key.name}={key.name}")
    source = (
        "def make_socket(_row, _owners):\n"
        f"    ({', '.join(ROW_FIELDS)},) = _row\n"
        f"    return _Socket({', '.join(args)}, owners=_owners)\n"
    )
    namespace = {"_Endpoint": Endpoint, "_Socket": Socket}
    fn: MakeSocket = compile_source(source, "make_socket", namespace)["make_socket"]
    return fn
