"""The real IANA registry file, and ``registry update`` against a local HTTP server.

The server listens on 127.0.0.1 only (this machine has no internet, and tests must not
reach it anyway); the "offline" case is a closed loopback port.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import IANA_CSV, require_iana_csv
from portscope import InvalidInput, RegistryError, lookup, registry_sources, update_registry
from portscope.cli import Env, main
from portscope.registry._sources import read_iana_csv
from portscope.registry._store import STORE

needs_iana = pytest.mark.usefixtures("iana_csv")


@pytest.fixture
def iana_csv() -> Path:
    """The shared CSV: fails in CI when missing, else skips loudly (``conftest``)."""
    return require_iana_csv()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "cache"
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(directory))
    STORE.reset()
    yield directory
    STORE.reset()


def _iana_rows() -> list[tuple[str, int, int, list[str]]]:
    """(name, first port, last port, transports) of every named row with a port, read
    with the csv module directly: an independent reading of the same file."""
    rows = []
    with IANA_CSV.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            name, port = row["Service Name"].strip(), row["Port Number"].strip()
            if not name or not port:
                continue
            lo, _, hi = port.partition("-")
            proto = row["Transport Protocol"].strip()
            rows.append((name, int(lo), int(hi or lo), [proto] if proto else ["tcp", "udp"]))
    return rows


@needs_iana
def test_real_file_parses() -> None:
    entries, stats = read_iana_csv(IANA_CSV)
    assert stats.rows > 14000
    assert stats.entries > 11000 and stats.reserved > 500 and stats.unassigned > 500
    assert stats.no_port > 500
    keyed = {(e.name, e.port, e.proto): e for e in entries}
    assert ("https", 443, "tcp") in keyed and ("https", 443, "sctp") in keyed
    assert keyed[("x11", 6000, "tcp")][1] == 6063
    assert {e.proto for e in entries} == {"tcp", "udp", "sctp", "dccp"}
    # quoted descriptions spanning lines arrive as one line
    assert all(e.description is None or "\n" not in e.description for e in entries)
    nexgen = keyed[("nexgen-aux", 6629, "tcp")][5]
    assert nexgen is not None and "interface to the Allied" in nexgen


@needs_iana
def test_every_iana_port_answers_after_import(cache: Path) -> None:
    info = update_registry(from_file=IANA_CSV)
    assert info.loaded and info.changed is True and info.entries > 11000
    assert (cache / "service-names-port-numbers.csv").read_bytes() == IANA_CSV.read_bytes()
    missing = []
    for name, lo, hi, protos in _iana_rows():
        for proto in protos:
            known = {
                n.lower()
                for s in lookup(lo, proto)
                if s.port <= lo <= (s.port_end or s.port)
                for n in (s.name, *s.aliases)
            }
            if name.lower() not in known:
                missing.append((name, lo, hi, proto))
    assert missing == []


@needs_iana
def test_import_replaces_and_sources_tell(cache: Path) -> None:
    update_registry(from_file=IANA_CSV)
    (iana,) = [s for s in registry_sources() if s.name == "iana"]
    assert iana.loaded and iana.url == str(IANA_CSV.resolve())
    assert iana.fetched is not None and iana.age_s is not None and iana.age_s < 60
    assert iana.detail is not None and "assigned" in iana.detail


def test_import_rejects_a_bad_file_and_keeps_the_old(cache: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("Service Name,Port Number,Transport Protocol,Description\nzeta,4999,tcp,Z\n")
    update_registry(from_file=good)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,port\nx,1\n")
    with pytest.raises(RegistryError, match=r"bad\.csv: not an IANA service-names CSV"):
        update_registry(from_file=bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("Service Name,Port Number,Transport Protocol,Description\n")
    with pytest.raises(RegistryError, match="no port assignments"):
        update_registry(from_file=empty)
    assert (cache / "service-names-port-numbers.csv").read_bytes() == good.read_bytes()
    assert [s.name for s in lookup(4999, "tcp") if s.source == "iana"] == ["zeta"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp files left


# -- download over HTTP from 127.0.0.1 ---------------------------------------------------


class _Server:
    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body = body
        self.status = status
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        self.last_modified = formatdate(1_700_000_000, usegmt=True)
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(dict(self.headers.items()))
                if server.status != 200:
                    self.send_error(server.status)
                    return
                if self.headers.get("If-None-Match") == server.etag:
                    self.send_response(304)
                    self.send_header("ETag", server.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(server.body)))
                self.send_header("ETag", server.etag)
                self.send_header("Last-Modified", server.last_modified)
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/service-names.csv"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _shared_or_fixture() -> bytes:
    if IANA_CSV.exists():
        return IANA_CSV.read_bytes()
    return (Path(__file__).resolve().parents[1] / "fixtures/registry/iana-quirks.csv").read_bytes()


def test_download_then_not_modified(cache: Path) -> None:
    body = _shared_or_fixture()
    with _Server(body) as server:
        first = update_registry(url=server.url, timeout_s=10)
        assert first.changed is True and first.loaded and first.url == server.url
        assert (cache / "service-names-port-numbers.csv").read_bytes() == body
        meta = json.loads((cache / "service-names-port-numbers.json").read_text())
        assert meta["etag"] == server.etag and meta["last_modified"] == server.last_modified
        mtime = (cache / "service-names-port-numbers.csv").stat().st_mtime_ns
        second = update_registry(url=server.url, timeout_s=10)
        assert second.changed is False and second.loaded
        assert server.requests[0].get("If-None-Match") is None
        assert server.requests[1]["If-None-Match"] == server.etag
        assert server.requests[1]["If-Modified-Since"] == server.last_modified
        assert (cache / "service-names-port-numbers.csv").stat().st_mtime_ns == mtime


def test_download_http_error_keeps_the_copy(cache: Path) -> None:
    body = _shared_or_fixture()
    with _Server(body) as ok:
        update_registry(url=ok.url, timeout_s=10)
    with _Server(body, status=404) as missing, pytest.raises(RegistryError, match="HTTP 404"):
        update_registry(url=missing.url, timeout_s=10)
    with _Server(b"<html>not a csv</html>") as wrong, pytest.raises(RegistryError):
        update_registry(url=wrong.url, timeout_s=10)
    assert (cache / "service-names-port-numbers.csv").read_bytes() == body


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the with block ends


def test_offline_is_one_clear_error(cache: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/service-names.csv"
    with pytest.raises(RegistryError) as info:
        update_registry(url=url, timeout_s=5)
    message = str(info.value)
    assert message.startswith(f"cannot download {url}: ")
    assert "Connection refused" in message and "--from FILE" in message
    assert not (cache / "service-names-port-numbers.csv").exists()


def test_only_http_urls() -> None:
    with pytest.raises(InvalidInput, match="not an http:// or https:// URL"):
        update_registry(url="file:///etc/passwd")


# -- the CLI -------------------------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), Env(stdout=out, stderr=err)), out.getvalue(), err.getvalue()


def test_cli_update_url_and_sources(cache: Path) -> None:
    with _Server(_shared_or_fixture()) as server:
        status, out, err = _cli("registry", "update", "--url", server.url)
        assert status == 0 and err == ""
        assert out.startswith(f"IANA registry imported from {server.url}: ")
        status, out, _ = _cli("registry", "update", "--url", server.url)
        assert status == 0 and out.startswith("IANA registry not modified")
        status, out, _ = _cli("registry", "update", "--url", server.url, "--json")
        assert status == 0 and json.loads(out)["changed"] is False
    status, out, _ = _cli("registry", "sources", "--json")
    doc = json.loads(out)["sources"]
    assert status == 0 and [s["name"] for s in doc] == ["curated", "iana", "system", "nmap"]
    assert set(doc[0]) == {
        "name", "path", "loaded", "entries", "mtime", "age_s", "detail", "url", "fetched",
        "changed",
    }  # fmt: skip
    assert doc[1]["loaded"] and doc[1]["entries"] > 0
    status, out, _ = _cli("registry", "sources")
    lines = out.splitlines()
    assert status == 0 and lines[0].split()[:3] == ["SOURCE", "LOADED", "ENTRIES"]
    assert any(line.split()[:2] == ["iana", "yes"] for line in lines)


@pytest.mark.parametrize(
    ("argv", "status", "needle"),
    [
        (["--from", "/nonexistent/x.csv"], 2, "cannot read /nonexistent/x.csv"),
        (["--from", "/etc/hostname"], 2, "not an IANA service-names CSV"),
        (["--url", "ftp://example.invalid/x"], 2, "not an http:// or https:// URL"),
        (["--from", "x", "--url", "http://127.0.0.1/"], 2, "not both"),
        (["--timeout", "0"], 2, "--timeout: '0' is not accepted"),
    ],
)
def test_cli_update_bad_input(cache: Path, argv: list[str], status: int, needle: str) -> None:
    code, out, err = _cli("registry", "update", *argv)
    assert code == status and out == ""
    assert err.count("\n") == 1 and needle in err


def test_cli_update_offline_exit_1(cache: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x.csv"
    code, out, err = _cli("registry", "update", "--url", url, "--timeout", "5")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "cannot download" in err and "--from FILE" in err


def test_cli_bad_action(cache: Path) -> None:
    code, _, err = _cli("registry", "upgrade")
    assert code == 2 and "invalid choice: 'upgrade'" in err
