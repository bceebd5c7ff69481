"""``explain --quiz``: questions drawn from this host's sockets and the registry."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from portscope.errors import InvalidInput
from portscope.explain import _words as w
from portscope.explain._explain import owner_names, short
from portscope.models import TcpState

if TYPE_CHECKING:
    from portscope.models import Socket

#: The most questions one quiz asks.
MAX_QUESTIONS: Final = 50


@dataclass(frozen=True, slots=True)
class Question:
    """One quiz question.

    Attributes:
        kind: what it tests (``owner``, ``reach``, ``ephemeral``, ``state``, ``range``,
            ``service``).
        text: the question; may quote a process name (untrusted: text output escapes it).
        choices: the possible answers, 2-4 of them.
        answer: index of the right one in ``choices``.
        explanation: why it is right, in a sentence or two.
    """

    kind: str
    text: str
    choices: tuple[str, ...]
    answer: int
    explanation: str


@dataclass
class _Host:
    listeners: list[Socket]
    connections: list[Socket]
    time_wait: list[Socket]
    ephemeral: tuple[int, int]


def _read_host() -> _Host:
    from portscope.errors import PortscopeError
    from portscope.registry import kernel_ports
    from portscope.sockets import list_sockets

    try:
        table = list_sockets(owners=True)
        sockets = list(table.sockets)
    except PortscopeError:
        sockets = []
    return _Host(
        listeners=[s for s in sockets if s.state is TcpState.LISTEN],
        connections=[s for s in sockets if s.state is TcpState.ESTABLISHED and s.remote],
        time_wait=[s for s in sockets if s.state is TcpState.TIME_WAIT],
        ephemeral=kernel_ports().ephemeral,
    )


def _shuffled(rng: random.Random, right: str, wrong: list[str]) -> tuple[tuple[str, ...], int]:
    options = [right, *dict.fromkeys(x for x in wrong if x != right)][:4]
    rng.shuffle(options)
    return tuple(options), options.index(right)


def _owner(rng: random.Random, host: _Host) -> Question | None:
    owned = [s for s in host.listeners if s.owners]
    if len(owned) < 1:
        return None
    sock = rng.choice(owned)
    right = sock.owners[0].name if sock.owners else ""
    others = sorted({o.name for s in host.listeners for o in s.owners or () if o.name != right})
    decoys = [*others, "sshd", "nginx", "postgres", "systemd-resolve", "cupsd"]
    choices, answer = _shuffled(rng, right, rng.sample(decoys, min(len(decoys), 6)))
    return Question(
        "owner",
        f"Which process listens on TCP port {sock.local.port} ({sock.local}) here?",
        choices,
        answer,
        f"{', '.join(owner_names(sock))} holds the listening socket; "
        f"'portscope who {sock.local.port}' shows it.",
    )


def _reach(rng: random.Random, host: _Host) -> Question:
    from portscope.sockets import bind_scope

    if host.listeners:
        sock = rng.choice(host.listeners)
        scope = bind_scope(sock)
        local = scope.startswith("loopback")
        where = str(sock.local)
    else:
        local = rng.random() < 0.5
        where = "127.0.0.1:3306" if local else "0.0.0.0:3306"
        scope = "loopback only" if local else "all interfaces (IPv4)"
    right = "no: only this machine" if local else "yes, unless a firewall drops it"
    wrong = ["no: only this machine", "yes, unless a firewall drops it", "only over IPv6"]
    choices, answer = _shuffled(rng, right, wrong)
    why = short(w.TERMS["loopback" if local else "wildcard"])
    return Question(
        "reach", f"Can another machine connect to {where}?", choices, answer, f"{scope}: {why}"
    )


def _ephemeral(rng: random.Random, host: _Host) -> Question:
    lo, hi = host.ephemeral
    listening = {s.local.port for s in host.listeners}
    clients = [s for s in host.connections if s.local.port not in listening and s.remote]
    if clients:
        sock = rng.choice(clients)
        local, remote = str(sock.local), str(sock.remote)
    else:
        port = rng.randint(lo, hi)
        local, remote = f"127.0.0.1:{port}", "127.0.0.1:5432"
    right = f"{local} (this host's end)"
    wrong = [f"{remote} (the other end)", "both: each kernel picks one at random"]
    choices, answer = _shuffled(rng, right, wrong)
    return Question(
        "ephemeral",
        f"In the connection {local} -> {remote}, which end's port was picked by the kernel?",
        choices,
        answer,
        f"The connecting side's kernel picks an ephemeral port from {lo}-{hi} "
        "(ip_local_port_range); the server's port is the one it listens on.",
    )


def _state(rng: random.Random, host: _Host) -> Question:
    subject = (
        f"the TIME-WAIT socket {rng.choice(host.time_wait).local}"
        if host.time_wait
        else "a socket in TIME-WAIT"
    )
    right = "late packets of the closed connection to die out"
    wrong = [
        "the program to call close()",
        "the peer's SYN-ACK",
        "the program to call accept()",
    ]
    choices, answer = _shuffled(rng, right, wrong)
    return Question(
        "state", f"What does {subject} wait for?", choices, answer, short(w.STATES["TIME-WAIT"])
    )


def _close_wait(rng: random.Random, host: _Host) -> Question:
    right = "the program here has not called close()"
    wrong = [
        "the kernel's 60 s timer",
        "the peer has not acknowledged our FIN",
        "a firewall drops the FIN",
    ]
    choices, answer = _shuffled(rng, right, wrong)
    return Question(
        "state",
        "700 sockets sit in CLOSE-WAIT. What is the usual cause?",
        choices,
        answer,
        short(w.STATES["CLOSE-WAIT"]),
    )


def _range(rng: random.Random, host: _Host, port: int | None = None) -> Question:
    if port is None:
        ports = [s.local.port for s in host.listeners] or [22, 443, 5432, 8080, 50000]
        port = rng.choice(ports)
    name = "system" if port < 1024 else "user" if port < 49152 else "dynamic"
    labels = {
        "system": "system (0-1023)",
        "user": "user (1024-49151)",
        "dynamic": "dynamic (49152-65535)",
    }
    choices, answer = _shuffled(rng, labels[name], list(labels.values()))
    return Question(
        "range",
        f"In which RFC 6335 range is port {port}?",
        choices,
        answer,
        short(w.TERMS[name]),
    )


def _service(rng: random.Random, host: _Host) -> Question | None:
    from portscope.registry import service_name

    known = [(p, service_name(p)) for p in (22, 25, 53, 80, 110, 143, 443, 3306, 5432, 6379)]
    port, name = rng.choice(known)
    if name is None:
        return None
    wrong = [n for _, n in known if n and n != name]
    choices, answer = _shuffled(rng, name, rng.sample(wrong, 3))
    return Question(
        "service",
        f"Which service is registered on TCP port {port}?",
        choices,
        answer,
        f"The registry names {name} on {port}/tcp ('portscope lookup {port}'); what runs "
        "there may differ.",
    )


_MAKERS: Final[tuple[Callable[[random.Random, _Host], Question | None], ...]] = (
    _owner,
    _reach,
    _ephemeral,
    _state,
    _close_wait,
    _range,
    _service,
)


def quiz(count: int = 5, seed: int | None = None) -> list[Question]:
    """``count`` questions drawn from this host's sockets and the registry.

    Args:
        count: 1-50 questions.
        seed: the same seed on the same host state gives the same quiz.

    Returns:
        The questions, each with its choices, the right answer and why.

    Raises:
        InvalidInput: ``count`` outside 1-50.
    """
    if not 1 <= count <= MAX_QUESTIONS:
        raise InvalidInput(f"--count {count}: ask for 1 to {MAX_QUESTIONS} questions")
    rng = random.Random(seed)
    host = _read_host()
    host.listeners.sort(key=lambda s: (s.local.port, s.local.address))
    host.connections.sort(key=lambda s: (s.local.port, s.local.address))
    host.time_wait.sort(key=lambda s: (s.local.port, s.local.address))
    questions: list[Question] = []
    seen: set[str] = set()
    for _ in range(count * 20):
        if len(questions) == count:
            break
        made = rng.choice(_MAKERS)(rng, host)
        if made is None or made.text in seen:
            continue
        seen.add(made.text)
        questions.append(made)
    while len(questions) < count:  # a quiet host: ranges of any port are always new
        made = _range(rng, host, rng.randint(1, 65535))
        if made.text not in seen:
            seen.add(made.text)
            questions.append(made)
    return questions
