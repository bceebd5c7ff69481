"""Identification against real servers started here (tests/lab/real_servers.py): each one
must be named ``confirmed`` with the right product, from its protocol, not its port.

The servers start once for this module, in parallel, on 127.0.0.1 free ports in temporary
directories, and are stopped by PID when the module ends (so no other test meets them on a
port it expects closed). A server whose program is missing is skipped with the reason
(scripts/install-test-deps installs them).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.lab.real_servers import SERVERS, Missing, Running

from portscope.identify import Confidence, Identity, identify_many

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Debian server packages")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Running | str]]:
    """name -> the running server, or the reason it could not start."""
    out: dict[str, Running | str] = {}

    def start(name: str) -> tuple[str, Running | str]:
        try:
            return name, SERVERS[name]()
        except Missing as err:
            return name, str(err)
        except Exception as err:  # a server that fails to start fails its own test
            return name, f"FAILED: {err}"

    with ThreadPoolExecutor(max_workers=6) as pool:
        for name, run in pool.map(start, SERVERS):
            out[name] = run
    try:
        yield out
    finally:
        for run in out.values():
            if isinstance(run, Running):
                run.stop()


@pytest.fixture(scope="module")
def identities(servers: dict[str, Running | str]) -> dict[str, Identity]:
    """Every running server identified in one go (as ``scan -sV`` would)."""
    running = {n: r for n, r in servers.items() if isinstance(r, Running)}
    found = asyncio.run(
        identify_many([("127.0.0.1", r.port) for r in running.values()], timeout_s=10)
    )
    return dict(zip(running, found, strict=True))


def _server(servers: dict[str, Running | str], name: str) -> Running:
    run = servers[name]
    if isinstance(run, str):
        if run.startswith("FAILED"):
            pytest.fail(f"{name}: {run}")
        pytest.skip(run)
    return run


@pytest.mark.parametrize("name", list(SERVERS))
def test_each_server_is_confirmed_with_its_product(
    name: str, servers: dict[str, Running | str], identities: dict[str, Identity]
) -> None:
    run = _server(servers, name)
    ident = identities[name]
    expect = run.expect
    assert ident.confidence is Confidence.CONFIRMED, ident
    assert ident.service == expect["service"], ident
    assert ident.product == expect["product"], ident
    if expect.get("version"):
        assert ident.version == expect["version"], ident
    if expect.get("version_prefix"):
        assert ident.version and ident.version.startswith(str(expect["version_prefix"]))
    assert (ident.tls is not None) == bool(expect.get("tls")), ident
    assert ident.evidence and ident.evidence[0].data, ident
    if "not" in expect:  # an unusual port: the name comes from the protocol, not the port
        from portscope.registry import service_name

        registered = service_name(run.port, "tcp")
        assert ident.service != expect["not"]
        assert registered is None or registered != ident.service, (run.port, registered)


def test_tls_certificate_facts(
    servers: dict[str, Running | str], identities: dict[str, Identity]
) -> None:
    _server(servers, "nginx-tls")
    tls = identities["nginx-tls"].tls
    assert tls is not None
    assert tls.version.startswith("TLSv1.")
    assert tls.alpn == "http/1.1"
    assert tls.subject == "CN=portscope.test,O=portscope tests"
    assert tls.self_signed
    assert tls.sans == ("DNS:portscope.test", "IP:127.0.0.1")
    assert tls.not_before is not None and tls.not_after is not None
    assert (tls.not_after - tls.not_before).days == 30


def test_facts_that_matter(
    servers: dict[str, Running | str], identities: dict[str, Identity]
) -> None:
    for name in ("redis", "postgresql", "nginx-http", "mosquitto", "smtp", "ftp"):
        _server(servers, name)
    assert identities["redis"].facts["auth"].startswith("none")
    assert identities["postgresql"].facts["sqlstate"] == "28000"  # refused before any auth
    assert identities["nginx-http"].facts["title"] == "portscope identify test"
    assert identities["mosquitto"].facts["connack"] == "accepted"
    assert "8BITMIME" in identities["smtp"].facts["extensions"]
    assert identities["ftp"].facts["system"].startswith("UNIX")


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portscope", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_scan_sv_names_what_answers_json_and_xml(
    servers: dict[str, Running | str], tmp_path: object
) -> None:
    web, ssh = _server(servers, "http-on-6379"), _server(servers, "ssh-on-https-alt")
    redis = _server(servers, "redis")
    ports = f"{web.port},{ssh.port},{redis.port}"
    xml = os.path.join(str(tmp_path), "scan.xml")
    proc = _cli("scan", "127.0.0.1", "-p", ports, "-sV", "--json", "-oX", xml)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    by_port = {x["port"]: x["identity"] for x in lines if x["type"] == "port"}
    assert by_port[web.port]["service"] == "http"
    assert by_port[web.port]["product"] == "nginx"
    assert by_port[ssh.port]["service"] == "ssh"
    assert by_port[redis.port]["label"] == "redis"
    assert by_port[redis.port]["evidence"][0]["data"] == "+PONG"
    assert [x["type"] for x in lines][-2:] == ["host", "summary"]
    services = {
        int(p.get("portid", 0)): p.find("service") for p in ET.parse(xml).getroot().iter("port")
    }
    svc = services[ssh.port]
    assert svc is not None
    assert (svc.get("name"), svc.get("product"), svc.get("method"), svc.get("conf")) == (
        "ssh", "OpenSSH", "probed", "10"
    )  # fmt: skip


def test_scan_sv_human_table(servers: dict[str, Running | str]) -> None:
    run = _server(servers, "nginx-tls")
    proc = _cli("scan", "127.0.0.1", "-p", str(run.port), "-sV", "--version-timeout", "5")
    assert proc.returncode == 0, proc.stderr
    assert "ssl/http" in proc.stdout and "confirmed" in proc.stdout
    assert "CN=portscope.test" in proc.stdout
    assert "service identification: 1 open TCP port(s): 1 confirmed" in proc.stdout


def test_probe_identify(servers: dict[str, Running | str]) -> None:
    run = _server(servers, "memcached")
    proc = _cli("probe", "127.0.0.1", str(run.port), "--identify", "--json")
    assert proc.returncode == 0, proc.stderr
    ident = json.loads(proc.stdout)["results"][0]["identity"]
    assert (ident["service"], ident["product"]) == ("memcached", "memcached")


def test_who_identify_says_what_the_listener_speaks(servers: dict[str, Running | str]) -> None:
    run = _server(servers, "mariadb")
    proc = _cli("who", str(run.port), "--identify", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [(i["service"], i["product"]) for i in doc["identities"]] == [("mysql", "MariaDB")]


def test_audit_confirms_with_identification(
    servers: dict[str, Running | str], identities: dict[str, Identity]
) -> None:
    from portscope.diagnose.audit import audit_sockets
    from portscope.models import Endpoint, Proto, Socket, TcpState

    redis, web = _server(servers, "redis"), _server(servers, "http-on-6379")

    def listener(port: int) -> Socket:
        return Socket(
            Proto.TCP, 4, TcpState.LISTEN, Endpoint("0.0.0.0", port), None, 0, 128, 1000, 1
        )

    found = audit_sockets(
        [listener(redis.port), listener(web.port)],
        service_hints={redis.port: "redis"},
        service_name=lambda port, proto: None,
        identities={redis.port: identities["redis"], web.port: identities["http-on-6379"]},
    )
    rules = {(f.rule, f.socket.local.port): f for f in found}
    no_auth = rules[("no-auth", redis.port)]
    assert no_auth.title.startswith("Redis answered PING without authentication")
    assert no_auth.severity.value == "high"
    assert no_auth.confirmed_by == "redis probe: +PONG"
    if web.port == 6379:  # the default Redis port speaking HTTP is not Redis
        assert ("datastore-exposed", web.port) not in rules
        mismatch = rules[("service-mismatch", web.port)]
        assert "speaks http" in mismatch.title and "not Redis" in mismatch.title
