"""``portscope explain``: coverage of every word portscope prints, kernel values read from
this machine, and explanations of real sockets, states and ports on loopback."""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope.diagnose.audit import RULES
from portscope.diagnose.why_bind import BindCause
from portscope.diagnose.why_connect import ConnectVerdict
from portscope.errors import InvalidInput
from portscope.explain import _words as w, about, explain, quiz
from portscope.models import PortState, TcpState
from portscope.scanner import _errors

SCANNER = Path(__file__).resolve().parents[2] / "src" / "portscope" / "scanner"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portscope", *args], capture_output=True, text=True, timeout=60
    )


def _reasons_printed() -> set[str]:
    """Every reason word the scanner can print: the errno and ICMP tables, and every
    literal reason an ``Answer`` is built with in the scanner's sources."""
    found = {reason for _, reason in _errors._BY_ERRNO.values()}
    found |= set(_errors.ICMP4_UNREACH.values()) | set(_errors.ICMP6_UNREACH.values())
    for path in SCANNER.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'Answer\(\s*PortState\.\w+,\s*"([a-z][a-z0-9-]*)"', text))
        found |= set(re.findall(r'state, reason = PortState\.\w+, "([a-z][a-z0-9-]*)"', text))
        found |= set(re.findall(r'PortState\.\w+, "([a-z][a-z0-9-]*)"\)', text))
    return found


def test_every_state_scan_state_reason_errno_verdict_and_rule_is_explained() -> None:
    assert {s.value for s in TcpState} <= set(w.STATES)
    assert {s.value for s in PortState} <= set(w.PORT_STATES)
    reasons = _reasons_printed()
    assert {"syn-ack", "conn-refused", "no-response", "udp-response", "port-unreach"} <= reasons
    assert reasons <= set(w.REASONS), sorted(reasons - set(w.REASONS))
    errnos = {errno.errorcode[e] for e in _errors._BY_ERRNO if e}
    asked = {"EADDRINUSE", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH"}
    asked |= {"EACCES", "EADDRNOTAVAIL", "EMFILE"}
    assert errnos | asked <= set(w.ERRORS), sorted((errnos | asked) - set(w.ERRORS))
    verdicts = {v.value for v in ConnectVerdict} | {v.value for v in BindCause}
    assert verdicts <= set(w.VERDICTS), sorted(verdicts - set(w.VERDICTS))
    assert set(RULES) <= set(w.FINDINGS), sorted(set(RULES) - set(w.FINDINGS))
    for table in (w.STATES, w.PORT_STATES, w.REASONS, w.ERRORS, w.VERDICTS, w.FINDINGS):
        for key, words in table.items():
            assert words.title and words.text and words.short and words.source, key


def test_every_quoted_kernel_value_is_this_machines() -> None:
    """Each ``{tunable}`` is filled with what /proc/sys says here, read by the test."""
    placeholders: set[str] = set()
    tables = {
        "state": w.STATES,
        "port-state": w.PORT_STATES,
        "reason": w.REASONS,
        "error": w.ERRORS,
        "verdict": w.VERDICTS,
        "finding": w.FINDINGS,
        "term": w.TERMS,
    }
    for kind, table in tables.items():
        for key, words in table.items():
            used = set(re.findall(r"\{([a-z0-9_]+)\}", words.text + words.short))
            assert used <= set(w.TUNABLES), (key, used - set(w.TUNABLES))
            placeholders |= used
            shown = explain(key, live=False, kind=kind).text
            for name in used:
                tunable = w.TUNABLES[name]
                if tunable.path is None:
                    expected = tunable.default
                else:
                    raw = Path("/proc/sys", tunable.path).read_text().split()
                    expected = "-".join(raw)
                if shown is not None and name in re.findall(r"\{([a-z0-9_]+)\}", words.text):
                    assert expected in shown, (key, name, expected)
    assert {"tcp_fin_timeout", "tcp_syn_retries", "somaxconn"} <= placeholders


def test_time_wait_says_sixty_seconds_and_not_fin_timeout() -> None:
    found = explain("time_wait", live=False)
    assert found.kind == "state" and found.subject == "TIME-WAIT"
    assert "fixed 60 s" in found.text
    assert "tcp_fin_timeout does not change it" in found.text
    names = {s.name: s for s in found.settings}
    assert names["TCP_TIMEWAIT_LEN"].constant and names["TCP_TIMEWAIT_LEN"].value == "60"
    tw_reuse = Path("/proc/sys/net/ipv4/tcp_tw_reuse").read_text().strip()
    assert names["net.ipv4.tcp_tw_reuse"].value == tw_reuse


@pytest.mark.parametrize(
    ("thing", "kind", "subject"),
    [
        ("Connection refused", "error", "ECONNREFUSED"),
        ("address already in use", "error", "EADDRINUSE"),
        ("ETIMEDOUT", "error", "ETIMEDOUT"),
        ("open|filtered", "port-state", "open|filtered"),
        ("filtered", "port-state", "filtered"),
        ("admin-prohibited", "reason", "admin-prohibited"),
        ("5-tuple", "term", "5-tuple"),
        ("five-tuple", "term", "5-tuple"),
        ("SO_REUSEPORT", "term", "so_reuseport"),
        ("ephemeral port", "term", "ephemeral"),
        ("syn-recv", "state", "SYN-RECV"),
        ("UNCONN", "state", "UNCONN"),
        ("datastore-exposed", "finding", "datastore-exposed"),
        ("accept-queue-full", "verdict", "accept-queue-full"),
    ],
)
def test_words_are_found_in_any_spelling(thing: str, kind: str, subject: str) -> None:
    found = explain(thing, live=False)
    assert (found.kind, found.subject) == (kind, subject)


def test_an_ambiguous_word_says_its_other_meanings_and_kind_picks_one() -> None:
    found = explain("open", live=False)
    assert found.kind == "port-state" and "verdict" in found.also
    assert explain("open", live=False, kind="verdict").title.startswith("open (why connect)")
    with pytest.raises(InvalidInput, match="not a term"):
        explain("open", live=False, kind="term")


def test_unknown_words_exit_2_with_the_closest_matches() -> None:
    result = _run("explain", "TIME-WIAT")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("portscope: error:")
    assert "closest: TIME-WAIT" in lines[0]
    for bad in (["explain"], ["explain", "70000"], ["explain", "--quiz", "--count", "0"]):
        result = _run(*bad)
        assert result.returncode == 2, bad
        assert result.stderr.count("portscope: error:") == 1, bad


@pytest.fixture
def netns() -> Iterator[str]:
    """This test's thread moved into a new, empty network namespace (lo up), so live
    counts see only the test's own sockets, whatever else runs on the host."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a network namespace (ip netns add)")
    from tests.lab import joined_netns

    with joined_netns(f"ps15-explain-{os.getpid()}") as name:
        yield name


def _run_in(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", name, sys.executable, "-m", "portscope", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def server(netns: str) -> Iterator[socket.socket]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv
    srv.close()


def _comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


def test_explain_port_names_the_holder_and_who_can_reach_it(server: socket.socket) -> None:
    port = server.getsockname()[1]
    found = explain(str(port))
    assert found.kind == "port" and found.subject == str(port)
    assert "only programs on this machine can reach it (loopback)" in found.text
    assert ("tcp listens", f"{_comm()}[{os.getpid()}], loopback only") in found.facts
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    assert f"({ranges[0]}-{ranges[1]})" in found.text
    https = explain("443/tcp", live=False)
    assert "system range" in https.text and "https" in https.title


def test_explain_a_connection_tells_client_from_server(server: socket.socket) -> None:
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        c_local = f"127.0.0.1:{client.getsockname()[1]}"
        s_local = f"127.0.0.1:{server.getsockname()[1]}"
        found = explain(f"{c_local}-{s_local}")
        assert found.kind == "socket"
        assert len(found.facts) == 2, found.facts
        assert f"This host is the client: it connected from {c_local} to {s_local}" in found.text
        assert "the kernel picked it for this connection" in found.text
        assert f"This host is the server: {server.getsockname()[1]} is a listening port" in (
            found.text
        )
        assert all(f"[{os.getpid()}]" in value for _, value in found.facts)
    finally:
        client.close()
        accepted.close()


def _wait_for(predicate, seconds: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_close_wait_pile_is_counted_by_its_process(server: socket.socket) -> None:
    clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
    accepted = [server.accept()[0] for _ in clients]
    for c in clients:
        c.close()  # the peer closes; we do not: CLOSE-WAIT here
    me = f"{_comm()}[{os.getpid()}]"
    try:

        def mine() -> int:
            facts = dict(explain("CLOSE-WAIT").facts)
            return int(facts.get(me, "0 socket(s)").split()[0])

        assert _wait_for(lambda: mine() >= 3)
        assert mine() == 3
        found = explain("CLOSE-WAIT")
        assert "the program here has not" in found.title
    finally:
        for a in accepted:
            a.close()


def test_time_wait_pile_names_who_made_it(server: socket.socket) -> None:
    port = server.getsockname()[1]
    # client closes first: TIME-WAIT on the client side (its ephemeral port)
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    client.close()
    accepted.recv(1)
    accepted.close()
    # server closes first: TIME-WAIT on the server side (the listening port)
    client2 = socket.create_connection(server.getsockname())
    accepted2, _ = server.accept()
    accepted2.close()
    client2.recv(1)
    client2.close()
    me = f"{_comm()}[{os.getpid()}]"

    def labels() -> set[str]:
        return {k for k, _ in explain("TIME-WAIT").facts}

    assert _wait_for(lambda: f"client side, to 127.0.0.1:{port}" in labels())
    assert f"server side of :{port} ({me} listens)" in labels()


def test_explain_json_keeps_exact_values_and_text_escapes_them(netns: str) -> None:
    hostile = "evil\x1b]0;pwned\x07"
    code = (
        "import ctypes, socket, sys, time\n"
        "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(s.getsockname()[1], flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", code, hostile],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        text = _run_in(netns, "explain", port)
        assert "\x1b" not in text.stdout and "\x07" not in text.stdout
        assert "evil\\x1b]0;pwned\\x07" in text.stdout
        doc = json.loads(_run_in(netns, "explain", port, "--json").stdout)
        assert doc["schema"] == "portscope.explain/1"
        assert any(hostile[:15] in f["value"] for f in doc["facts"]), doc["facts"]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_explain_flag_on_ls_describes_only_what_is_shown(server: socket.socket, netns: str) -> None:
    port = server.getsockname()[1]
    result = _run_in(netns, "ls", "-l", "-t", "--sport", str(port), "--explain")
    assert result.returncode == 0
    block = result.stdout.split("What you are looking at:", 1)[1]
    assert "LISTEN" in block and "ESTABLISHED" not in block and "TIME-WAIT" not in block
    assert "recv-q" in block
    quiet = _run_in(netns, "ls", "-l", "-t", "--sport", str(port), "--explain", "--json")
    assert "What you are looking at" not in quiet.stdout
    json.loads(quiet.stdout)


def test_about_lines_follow_the_table() -> None:
    lines = dict(about(states=["LISTEN"], scopes=["loopback only", "all interfaces (IPv4)"]))
    assert set(lines) == {"LISTEN", "loopback only", "all interfaces"}
    assert "this machine only" in lines["loopback only"]


def test_quiz_is_deterministic_with_a_seed_and_answers_are_valid(server: socket.socket) -> None:
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    first = quiz(8, seed=42)
    again = quiz(8, seed=42)
    assert first == again
    assert len(first) == 8 and len({q.text for q in first}) == 8
    for q in first:
        assert 2 <= len(q.choices) <= 4 and 0 <= q.answer < len(q.choices)
        assert len(set(q.choices)) == len(q.choices)
        assert q.explanation
    doc = json.loads(_run("explain", "--quiz", "--count", "3", "--seed", "7", "--json").stdout)
    assert doc["schema"] == "portscope.quiz/1" and len(doc["questions"]) == 3
    printed = _run("explain", "--quiz", "--count", "2", "--seed", "7")
    assert printed.returncode == 0 and printed.stdout.count("answer: ") == 2
    with pytest.raises(InvalidInput):
        quiz(0)
    client.close()
    accepted.close()
