"""``portscope lookup``: human text, JSON schema, exit statuses, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portscope import kernel_ports, lookup, update_registry
from portscope.cli import Env, main
from portscope.registry._curated import curated_entries
from portscope.registry._store import STORE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"
SERVICE_KEYS = {
    "port", "proto", "name", "aliases", "description", "source", "notes", "port_end",
    "frequency",
}  # fmt: skip


@pytest.fixture(autouse=True)
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(cache))
    monkeypatch.setenv("PORTSCOPE_SERVICES_FILE", str(FIXTURES / "services"))
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", str(FIXTURES / "nmap-services"))
    STORE.reset()
    update_registry(from_file=FIXTURES / "iana-quirks.csv")
    yield cache
    STORE.reset()


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["lookup", *argv], Env(stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def test_port_human() -> None:
    status, out, err = run("443")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("443: System port (RFC 6335: 0-1023")
    assert "privileged here" in lines[1]
    header = next(line for line in lines if line.startswith("PORT"))
    assert header.split() == ["PORT", "PROTO", "SERVICE", "SOURCE", "FREQ", "DESCRIPTION"]
    # curated https is the same on TCP and UDP: one row
    assert any(line.split()[:4] == ["443", "tcp,udp", "https", "curated"] for line in lines)


def test_tcp_and_udp_shown_apart_when_they_differ() -> None:
    _, out, _ = run("1")
    rows = [line.split()[:4] for line in out.splitlines() if line.startswith("1 ")]
    assert ["1", "tcp", "tcpmux", "curated"] in rows
    assert ["1", "udp", "alpha", "iana"] in rows
    # alpha differs by transport (the system file gives TCP aliases): two rows
    assert ["1", "tcp", "alpha", "(alf,"] in rows
    assert any("alpha (alf, al)  iana" in line for line in out.splitlines())


def test_security_note_is_shown() -> None:
    _, out, _ = run("23")
    assert any(line.strip().startswith("! Plaintext") for line in out.splitlines())


def test_dynamic_port_and_kernel_facts() -> None:
    k = kernel_ports()
    status, out, _ = run("51000")
    assert status == 0  # a port always has a range
    assert out.startswith("51000: Dynamic/private port (RFC 6335: 49152-65535")
    lo, hi = k.ephemeral
    if k.is_ephemeral(51000):
        assert "ephemeral here: the kernel may pick it" in out
    elif 51000 in k.reserved:
        assert "reserved here" in out
    else:
        assert "not ephemeral here" in out
    assert f"{lo}-{hi}" in out
    assert "no service registered in any loaded source" in out


def test_json_port_schema() -> None:
    status, out, _ = run("53/udp", "--json")
    assert status == 0
    doc = json.loads(out)
    assert set(doc) == {
        "schema", "query", "kind", "proto", "transports", "port", "port_end", "name", "facts",
        "total", "services",
    }  # fmt: skip
    assert doc["transports"] == ["udp"]
    assert (doc["query"], doc["kind"], doc["proto"], doc["port"]) == ("53/udp", "port", "udp", 53)
    k = kernel_ports()
    assert doc["facts"] == {
        "range": "system",
        "privileged": k.unprivileged_start > 53,
        "ephemeral": False,
        "reserved": 53 in k.reserved,
        "ephemeral_range": list(k.ephemeral),
        "unprivileged_port_start": k.unprivileged_start,
        "from_kernel": k.from_kernel,
    }
    assert doc["total"] == len(doc["services"]) >= 2
    assert all(set(s) == SERVICE_KEYS for s in doc["services"])
    assert all(s["proto"] == "udp" for s in doc["services"])
    assert doc["services"][0]["name"] == "domain" and doc["services"][0]["source"] == "curated"
    highudp = next(s for s in doc["services"] if s["name"] == "highudp")
    assert highudp["frequency"] == pytest.approx(0.4) and highudp["source"] == "nmap"


def test_json_range() -> None:
    status, out, _ = run("--json", "1020-1030")
    doc = json.loads(out)
    assert status == 0 and doc["kind"] == "range" and doc["port_end"] == 1030
    assert doc["facts"]["ranges"] == ["system", "user"]
    k = kernel_ports()
    assert doc["facts"]["privileged"] == sum(p < k.unprivileged_start for p in range(1020, 1031))
    assert all(1020 <= s["port"] <= 1030 for s in doc["services"])


def test_name_search_and_limit() -> None:
    status, out, _ = run("alpha")
    assert status == 0
    assert out.splitlines()[1].split()[:3] == ["1", "tcp", "alpha"]
    status, out, _ = run("http", "--limit", "2")
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) <= 2 and "more (--limit 0 shows all)" in out.splitlines()[-1]
    doc = json.loads(run("http", "--limit", "2", "--json")[1])
    assert len(doc["services"]) == 2 and doc["total"] > 2 and doc["facts"] is None


def test_name_not_found_exits_1() -> None:
    status, out, err = run("no", "such", "thing")
    assert status == 1 and err == ""
    assert out.strip() == "no service named or described 'no such thing' in the registry"
    doc = json.loads(run("--json", "nosuchthing")[1])
    assert doc["services"] == [] and doc["total"] == 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["70000"], "port '70000' is out of range; accepted: 0-65535"),
        (["-1"], "port range '-1' is missing an end"),
        (["--", "-1"], "port range '-1' is missing an end"),
        (["tcp/"], "'tcp/' is not PORT/TRANSPORT"),
        (["53", "--proto", "xtp"], "'xtp' is not a transport"),
        (["53", "--limit", "-3"], "--limit: '-3' is not accepted"),
        (["53", "--limit", "x"], "expected a whole number from 0 to 1,000,000"),
        ([], "the following arguments are required: query"),
    ],
)
def test_bad_input_one_line_exit_2(argv: list[str], needle: str) -> None:
    status, out, err = run(*argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("portscope: error:")
    assert needle in err
    assert "Traceback" not in err


def test_lookup_does_not_import_rich(registry: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "portscope", "lookup", "443"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not {name.split(".")[0] for name in imported} & {"rich", "asyncio", "sqlite3", "csv"}
    assert "https" in out.stdout


# -- the fast path (no argparse, no models) answers exactly as the argparse path ------------


def _both_ways(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[bool, tuple[Any, ...]]:
    """(whether the fast path answered, and (status, stdout, stderr) of both ways)."""
    import portscope.cli.lookup as command

    fast = command.quick(list(argv), io.StringIO()) is not None
    quick_way = run(*argv)
    with monkeypatch.context() as m:
        m.setattr(command, "quick", lambda argv, stdout: None)
        argparse_way = run(*argv)
    return fast, (quick_way, argparse_way)


def _queries() -> list[str]:
    ports = sorted(
        {e.port for e in curated_entries()} | {1, 7, 23, 53, 4711, 6000, 6063, 6064, 51000}
    )
    names = sorted({e.name for e in curated_entries()})[::3]
    return [
        *map(str, ports),
        *(f"{p}/udp" for p in ports[::4]),
        *(f"tcp/{p}" for p in ports[1::4]),
        "0", "65535", "1020-1030", "6000-6010", "1-1024", "0-65535", "udp/50-60",
        *names, "http", "alpha", "message broker", "dns/udp", "web server", "x11",
        "nosuchthing", "sql", "POSTGRES", "al", "dce:rpc", "ftp-data",
    ]  # fmt: skip


def test_fast_path_answers_byte_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    queries = _queries()
    assert len(queries) > 150
    for query in queries:
        for extra in ([], ["--json"]):
            fast, (quick_way, argparse_way) = _both_ways([query, *extra], monkeypatch)
            assert fast, query
            assert quick_way == argparse_way, (query, extra)
            assert quick_way[2] == ""


@pytest.mark.parametrize(
    ("argv", "fast"),
    [
        (["443", "--json"], True),
        (["--json", "443"], True),
        (["--no-color", "message", "broker", "--json"], True),
        (["-P", "udp", "53"], True),
        (["53", "--proto", "UDP", "--limit", "1"], True),
        (["http", "--limit", "0"], True),
        (["http", "--limit", "٣"], False),  # ASCII digits only; argparse says so
        (["http", "--limit", "3", "--json"], True),
        (["udp/53", "--proto", "udp"], True),
        (["udp/53", "--proto", "tcp"], False),  # contradiction: argparse way reports it
        (["443", "--json", "80"], False),  # argparse: unrecognized arguments
        (["443", "--json", "--json"], False),
        (["--js", "443"], False),  # an abbreviation
        (["--limit=3", "http"], False),
        (["-P", "--json", "53"], False),
        (["--limit", "-3", "53"], False),
        (["--limit", "+3", "http"], False),
        (["--limit", "x", "53"], False),
        (["--", "-1"], False),
        (["-1"], False),
        (["70000"], False),
        (["tcp/"], False),
        (["53", "--proto", "xtp"], False),
        ([], False),
        (["443", "-P"], False),
        ([""], False),
        (["-t", "53"], True),
        (["53", "-u", "--json"], True),
        (["-t", "-u", "1"], True),
        (["--tcp", "--udp", "1", "--json"], True),
        (["-P", "udp", "-u", "53"], True),
        (["-tu", "1"], False),  # joined short options: argparse reads them
        (["udp/53", "-t"], False),  # contradiction: argparse way reports it
        (["sctp/1", "-t", "-u"], False),
        (["-t", "--proto", "udp", "53"], False),
        (["53", "-4"], False),
        (["-6", "53"], False),
        (["80-"], False),
    ],
)
def test_fast_path_takes_only_what_argparse_reads_the_same(
    argv: list[str], fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    took, (quick_way, argparse_way) = _both_ways(argv, monkeypatch)
    assert took is fast
    assert quick_way == argparse_way


def test_help_goes_the_argparse_way() -> None:
    import portscope.cli.lookup as command

    for argv in (["-h"], ["--help"], ["443", "-h"]):
        assert command.quick(argv, io.StringIO()) is None


def test_fast_path_imports_nothing_heavy(registry: Path) -> None:
    assert lookup(443)  # the compiled cache is written (a rebuild needs the parsers)
    # As the console script runs it (the wrapper imports re and sys first).
    code = "import re, sys; from portscope.cli import main; sys.exit(main(sys.argv[1:]))"
    heavy = {"argparse", "dataclasses", "typing", "pathlib", "inspect", "portscope.models"}
    for argv, allowed in ((["lookup", "443"], set()), (["lookup", "https"], set())):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code, *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
        assert not (imported & heavy) - allowed, sorted(imported & heavy)
        assert "json" not in imported
        assert "https" in out.stdout
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, "lookup", "443", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not imported & heavy, sorted(imported & heavy)
    assert json.loads(out.stdout)["port"] == 443


# -- defects of issue 8 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("80-", "port range '80-' is missing an end"),
        ("-80", "port range '-80' is missing an end"),
        ("80-90-100", "bad port '90-100'"),
        ("90-80", "reversed port range '90-80'; write it low-high: 80-90"),
        ("70000", "port '70000' is out of range; accepted: 0-65535"),
        ("٤٤٣", "bad port '٤٤٣'"),  # Arabic-Indic digits: int() reads them, ports are ASCII
        ("0000000000443", "out of range"),  # at most 5 digits
        ("+443", "bad port '+443'"),
        ("udp/80-", "missing an end"),
    ],
)
def test_bad_port_queries_exit_2_both_ways(
    query: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, (quick_way, argparse_way) = _both_ways([query], monkeypatch)
    assert not fast  # bad input goes the argparse way, which reports it
    assert quick_way == argparse_way
    status, out, err = quick_way
    assert (status, out) == (2, ""), (query, quick_way)
    assert err.startswith("portscope: error: ") and err.count("\n") == 1
    assert needle in err


def test_port_zero_is_reserved_not_privileged() -> None:
    status, out, err = run("0")
    assert (status, err) == (0, "")
    head = out.split("\n\n")[0]
    assert "binding needs root" not in head and "privileged here" not in head
    assert "reserved (RFC 6335)" in head
    assert "binding to port 0 asks the kernel for any free port" in head
    doc = json.loads(run("0", "--json")[1])
    assert doc["facts"]["privileged"] is False


@pytest.mark.parametrize(
    ("flags", "protos"),
    [
        (["-t"], {"tcp"}),
        (["--tcp"], {"tcp"}),
        (["-u"], {"udp"}),
        (["--udp"], {"udp"}),
        (["-t", "-u"], {"tcp", "udp"}),
        (["-tu"], {"tcp", "udp"}),
        (["-P", "udp", "-u"], {"udp"}),
    ],
)
def test_tcp_udp_flags(flags: list[str], protos: set[str]) -> None:
    status, out, err = run("1", *flags, "--json")
    assert (status, err) == (0, "")
    doc = json.loads(out)
    assert {s["proto"] for s in doc["services"]} == protos
    assert doc["transports"] == sorted(protos)
    status, text, _ = run("1", *flags)
    assert status == 0 and text.count("\n") > 3


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["53", "-4"], "-4/-6 do not apply to lookup"),
        (["-6", "53"], "-4/-6 do not apply to lookup"),
        (["53", "--ipv6"], "-4/-6 do not apply to lookup"),
        (["53", "-t", "--proto", "udp"], "-t/--tcp with --proto udp"),
        (["udp/53", "-t"], "asks for udp"),
    ],
)
def test_flags_that_do_not_apply_exit_2(argv: list[str], needle: str) -> None:
    status, out, err = run(*argv)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and needle in err, err


def test_json_is_an_object_with_a_schema() -> None:
    for argv in (["443"], ["http"], ["nosuchthing"], ["1-3"]):
        doc = json.loads(run(*argv, "--json")[1])
        assert isinstance(doc, dict) and doc["schema"] == "portscope.lookup/1"


def test_registry_text_from_an_imported_file_is_escaped() -> None:
    # 'registry update --from FILE' takes any CSV: its names and descriptions are untrusted.
    from portscope.registry._layout import Entry
    from portscope.render._lookup import service_lines

    hostile = Entry(
        47999,
        None,
        "tcp",
        "ev\x1bil",
        ("a\u202e",),
        "\x1b]52;c;aGk=\x07\r\n",
        "iana",
        "note\x9b",
        None,
    )
    lines = service_lines([hostile])
    text = "\n".join(lines)
    assert not any(c in text for c in "\x1b\x07\r\x9b\u202e")
    assert "\\x1b]52;c;aGk=\\x07\\x0d\\x0a" in lines[1]
    assert "ev\\x1bil (a\\u202e)" in lines[1]
    assert lines[2].endswith("! note\\x9b")
