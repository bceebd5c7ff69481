"""``portscope lookup``: human text, JSON schema, exit statuses, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope import kernel_ports, update_registry
from portscope.cli import Env, main
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
        "query", "kind", "proto", "port", "port_end", "name", "facts", "total", "services",
    }  # fmt: skip
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
        (["70000"], "70000 is not a port: ports are 0-65535"),
        (["-1"], "-1 is not a port: ports are 0-65535"),
        (["--", "-1"], "-1 is not a port"),
        (["tcp/"], "'tcp/' is not PORT/TRANSPORT"),
        (["53", "--proto", "xtp"], "'xtp' is not a transport"),
        (["53", "--limit", "-3"], "--limit -3"),
        (["53", "--limit", "x"], "invalid int value"),
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
