"""``explain``: find what a word names and say what it means here, with evidence."""

from __future__ import annotations

import difflib
import errno as _errno
import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from portscope.errors import InvalidInput
from portscope.explain import _words as w

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from portscope.models import Socket

#: The kinds of things ``explain`` knows, in the order an ambiguous word is taken.
KINDS: Final = (
    "state",
    "port-state",
    "error",
    "reason",
    "term",
    "verdict",
    "finding",
)
_TABLES: Final[dict[str, Mapping[str, w.Words]]] = {
    "state": w.STATES,
    "port-state": w.PORT_STATES,
    "error": w.ERRORS,
    "reason": w.REASONS,
    "term": w.TERMS,
    "verdict": w.VERDICTS,
    "finding": w.FINDINGS,
}
_MAX_LISTED: Final = 8


@dataclass(frozen=True, slots=True)
class Setting:
    """A kernel setting quoted by an explanation, as this machine has it.

    Attributes:
        name: ``net.ipv4.tcp_fin_timeout``, or the constant's name (``TCP_TIMEWAIT_LEN``).
        value: the value here (text, as /proc/sys has it); the default when unreadable.
        default: the kernel's default, ``""`` when it depends on memory or build.
        unit: ``s``, ``tries`` ... or ``""``.
        constant: a compile-time constant, not a sysctl.
        source: where the kernel defines it.
    """

    name: str
    value: str
    default: str
    unit: str
    constant: bool
    source: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """What one thing means, on this machine.

    Attributes:
        kind: ``state``, ``port-state``, ``error``, ``reason``, ``term``, ``verdict``,
            ``finding``, ``port`` or ``socket``.
        subject: the thing as portscope names it (``TIME-WAIT``, ``8080/tcp``).
        title: one line.
        text: paragraphs (``\\n\\n`` between them), kernel values filled in.
        source: the RFC, man page or kernel source the words rest on.
        facts: (label, value) pairs read from this host now; values may hold process
            names and command lines (untrusted: text output escapes them).
        settings: the kernel settings the text quotes, with their values here.
        see: portscope commands that answer more.
        also: other kinds the same word names (``open`` is a scan state and a verdict).
        notes: partial-privilege and similar notes about the facts.
    """

    kind: str
    subject: str
    title: str
    text: str
    source: str
    facts: tuple[tuple[str, str], ...] = ()
    settings: tuple[Setting, ...] = ()
    see: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def read_setting(tunable: w.Tunable, proc_sys: str = "/proc/sys") -> Setting:
    """This machine's value of ``tunable`` (the default when it cannot be read)."""
    value = tunable.default
    if tunable.path is not None:
        try:
            with open(os.path.join(proc_sys, tunable.path), encoding="ascii") as f:
                value = " ".join(f.read().split())
        except (OSError, UnicodeDecodeError):
            pass
    name = tunable.path.replace("/", ".") if tunable.path else tunable.name.upper()
    return Setting(name, value, tunable.default, tunable.unit, tunable.path is None, tunable.source)


_PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")


def fill(words: w.Words) -> tuple[str, tuple[Setting, ...]]:
    """The entry's text with every ``{tunable}`` replaced by its value here, and those
    settings. Placeholders are plain names, so braces in the words are never format
    fields beyond them."""
    settings: dict[str, Setting] = {}

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in settings:
            settings[key] = read_setting(w.TUNABLES[key])
        return display(settings[key])

    text = _PLACEHOLDER.sub(value, words.text)
    return text, tuple(settings.values())


def short(words: w.Words) -> str:
    """The entry's one- or two-sentence form, kernel values filled in."""
    return _PLACEHOLDER.sub(lambda m: display(read_setting(w.TUNABLES[m.group(1)])), words.short)


def display(setting: Setting) -> str:
    """A setting's value as a sentence quotes it: a port range as ``32768-60999``."""
    if setting.name.endswith("ip_local_port_range"):
        return "-".join(setting.value.split())
    return setting.value


def _key(text: str) -> str:
    return " ".join(text.strip().split()).lower()


def _index() -> dict[str, list[tuple[str, str]]]:
    """lower-case word -> [(kind, key in that kind's table)], in ``KINDS`` order."""
    found: dict[str, list[tuple[str, str]]] = {}
    for kind in KINDS:
        for key in _TABLES[kind]:
            found.setdefault(key.lower(), []).append((kind, key))
    for alias, target in w.ALIASES.items():
        for kind in KINDS:
            if target in _TABLES[kind]:
                found.setdefault(alias, []).append((kind, target))
    for name in w.ERRORS:  # "Connection refused" and friends, as strerror prints them
        code = getattr(_errno, name, None)
        if code is not None:
            found.setdefault(_key(os.strerror(code)), []).append(("error", name))
    for key in list(w.STATES):  # TIME_WAIT, time wait
        for spelling in (key.replace("-", "_"), key.replace("-", " ")):
            found.setdefault(spelling.lower(), []).append(("state", key))
    return found


def closest(thing: str, limit: int = 5) -> list[str]:
    """The known words closest to ``thing`` (for the "did you mean" line)."""
    index = _index()
    keys = difflib.get_close_matches(_key(thing), list(index), n=limit * 2, cutoff=0.6)
    out: dict[str, str] = {}
    for key in keys:
        name = index[key][0][1]
        out.setdefault(name.lower(), name)
    return list(out.values())[:limit]


_TUPLE = re.compile(r"^(?P<a>\S+?:\d+)\s*(?:-|->|<->|,|\s)\s*(?P<b>\S+:\d+)$")


def explain(thing: str, *, live: bool = True, kind: str | None = None) -> Explanation:
    """Explain ``thing``: a port (``8080``, ``53/udp``), a socket or connection
    (``127.0.0.1:45680``, ``[::1]:22``, ``10.0.0.5:51234-10.0.0.9:443``), a TCP state
    (``TIME-WAIT``), a scan state or reason (``open|filtered``, ``admin-prohibited``),
    an error (``EADDRINUSE``, ``"Connection refused"``), a ``why`` verdict, an ``audit``
    rule, or a term (``5-tuple``, ``backlog``, ``SO_REUSEPORT``).

    Args:
        thing: the word or value, any case.
        live: add what this host shows now (sockets, holders, owners); False gives the
            words and kernel settings only.
        kind: take the word as this kind (one of ``KINDS``) when it names several
            (``open`` is a scan state and a ``why connect`` verdict).

    Returns:
        The explanation.

    Raises:
        InvalidInput: an empty or unknown thing (the message lists the closest words).
        InvalidPort: a port outside 0-65535.

    Reads /proc and the socket table; owners of other users' sockets need root
    (``notes`` says when they were not visible).
    """
    text = " ".join(thing.split())
    if not text:
        raise InvalidInput("explain what? give a port, a socket, a state, an error or a term")
    if len(text) > 200:
        raise InvalidInput(f"{text[:40]!r}... is too long to explain (at most 200 characters)")
    pair = _TUPLE.match(text)
    if pair and _is_endpoint(pair["a"]) and _is_endpoint(pair["b"]):
        from portscope.explain._live import explain_socket

        return explain_socket(pair["a"], pair["b"], live=live)
    if _is_endpoint(text):
        from portscope.explain._live import explain_socket

        return explain_socket(text, None, live=live)
    if _looks_like_port(text):
        from portscope.explain._live import explain_port

        return explain_port(text, live=live)
    found = _index().get(_key(text))
    if not found:
        near = closest(text)
        hint = f"; closest: {', '.join(near)}" if near else ""
        raise InvalidInput(
            f"nothing to explain for {text!r}: give a port, ADDRESS:PORT, a TCP state, a "
            f"scan state or reason, an errno name or message, or a term{hint}"
        )
    if kind is not None:
        if kind not in KINDS:
            raise InvalidInput(f"kind {kind!r}: use one of {', '.join(KINDS)}")
        chosen = [(k, key) for k, key in found if k == kind]
        if not chosen:
            names = ", ".join(dict.fromkeys(k for k, _ in found))
            raise InvalidInput(f"{text!r} is not a {kind}; it is a {names}")
        found = chosen + [f for f in found if f[0] != kind]
    kind, key = found[0]
    words = _TABLES[kind][key]
    body, settings = fill(words)
    facts: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()
    if live and kind == "state":
        from portscope.explain._live import state_facts

        facts, notes = state_facts(key)
    also = tuple(dict.fromkeys(k for k, _ in found[1:] if k != kind))
    return Explanation(
        kind=kind,
        subject=key,
        title=words.title,
        text=body,
        source=words.source,
        facts=facts,
        settings=settings,
        see=words.see,
        also=also,
        notes=notes,
    )


def _looks_like_port(text: str) -> bool:
    body = text.split("/", 1)[0]
    return body.isascii() and body.isdigit()


def _is_endpoint(text: str) -> bool:
    if text.startswith("["):
        return "]:" in text and text.rsplit(":", 1)[1].isdigit()
    head, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or ":" in head:
        return False
    return bool(re.fullmatch(r"[0-9.]+|[A-Za-z0-9.-]+", head)) and "." in head


def about(
    *,
    states: Iterable[str] = (),
    port_states: Iterable[str] = (),
    reasons: Iterable[str] = (),
    scopes: Iterable[str] = (),
    terms: Iterable[str] = (),
) -> list[tuple[str, str]]:
    """The "what you are looking at" lines for a table: one (name, sentence) per state,
    scan state, reason, bind scope and term that appears in it, in that order, each once.

    Args:
        states: TCP states shown (``LISTEN`` ...).
        port_states: scan states shown (``open|filtered`` ...).
        reasons: scan reasons shown.
        scopes: bind scopes in the listening view's words ("all interfaces (IPv4)",
            "loopback only", "192.0.2.2 only").
        terms: terms the table uses (``recv-q``, ``backlog``, ``ephemeral`` ...).

    Returns:
        (name, one or two sentences); unknown names are skipped.
    """
    lines: dict[str, str] = {}
    for table, names in (
        (w.STATES, states),
        (w.PORT_STATES, port_states),
        (w.REASONS, reasons),
    ):
        for name in names:
            if name in table and name not in lines:
                lines[name] = short(table[name])
    for scope in scopes:
        label, term = _scope_term(scope)
        if label not in lines:
            lines[label] = short(w.TERMS[term])
    for term in terms:
        key = w.ALIASES.get(term, term)
        if key in w.TERMS and term not in lines:
            lines[term] = short(w.TERMS[key])
    return list(lines.items())


def _scope_term(scope: str) -> tuple[str, str]:
    if scope.startswith("all interfaces"):
        return "all interfaces", "wildcard"
    if scope.startswith("loopback"):
        return "loopback only", "loopback"
    return "one address only", "scope"


def count_by(items: Iterable[str], limit: int = _MAX_LISTED) -> list[tuple[str, int]]:
    """The ``limit`` most common items with their counts, most first, then by name."""
    counts = Counter(items)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def owner_names(sock: Socket) -> list[str]:
    """``name[pid]`` of each owner of ``sock`` (empty when none is visible)."""
    return [f"{o.name}[{o.pid}]" for o in sock.owners or ()]
