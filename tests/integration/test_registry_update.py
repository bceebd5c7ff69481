"""``registry update --url`` validates the URL before any network I/O; ``registry sources
--json`` is an object. No network: the only server is on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portscope import InvalidInput, update_registry
from portscope.cli import Env, main
from portscope.registry._store import STORE

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "cache"
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(directory))
    monkeypatch.setenv("PORTSCOPE_SERVICES_FILE", str(FIXTURES / "services"))
    monkeypatch.setenv("PORTSCOPE_NMAP_SERVICES", str(FIXTURES / "nmap-services"))
    STORE.reset()
    yield directory
    STORE.reset()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to open a URL, recorded and refused (a validation must come first)."""
    calls: list[object] = []

    def refuse(request: object, *args: object, **kwargs: object) -> object:
        calls.append(getattr(request, "full_url", request))
        raise AssertionError(f"network I/O attempted: {calls[-1]}")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    return calls


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), Env(stdout=out, stderr=err)), out.getvalue(), err.getvalue()


BAD_URLS = [
    ("", "URL '': not an http:// or https:// URL"),
    ("   ", "not an http:// or https:// URL"),
    ("http://[::1:1/x", "not a valid URL"),
    ("http://127.0.0.1:abc/x", "bad port 'abc'"),
    ("http://127.0.0.1:99999/x", "port '99999' is out of range; accepted: 1-65535"),
    ("http://127.0.0.1:0/x", "port '0' is out of range; accepted: 1-65535"),
    ("http://127.0.0.1:٨٠/x", "bad port '٨٠'"),
    ("http://127.0.0.1:000000080/x", "out of range"),
    ("http:///x.csv", "no host"),
    ("https://:443/x.csv", "no host"),
    ("http://127.0.0.1/a b.csv", "spaces or control characters"),
    ("http://127.0.0.1/x\n.csv", "spaces or control characters"),
    ("ftp://127.0.0.1/x", "not an http:// or https:// URL"),
    ("127.0.0.1/x.csv", "not an http:// or https:// URL"),
]


@pytest.mark.parametrize(("url", "needle"), BAD_URLS)
def test_cli_bad_url_one_line_exit_2_before_any_network(
    cache: Path, no_network: list[object], url: str, needle: str
) -> None:
    status, out, err = _cli("registry", "update", "--url", url)
    assert (status, out) == (2, "")
    assert err.startswith("portscope: error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "Traceback" not in err
    assert no_network == []
    assert not (cache / "service-names-port-numbers.csv").exists()


@pytest.mark.parametrize(("url", "needle"), BAD_URLS)
def test_api_bad_url_is_invalid_input(no_network: list[object], url: str, needle: str) -> None:
    with pytest.raises(InvalidInput):
        update_registry(url=url)
    assert no_network == []


class _Csv(ThreadingHTTPServer):
    def __init__(self, body: bytes, trickle_s: float = 0.0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not trickle_s:
                    self.wfile.write(body)
                    return
                for i in range(min(len(body), 100)):  # a slow server: a byte at a time
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(trickle_s)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.mark.parametrize("spelling", ["http://127.0.0.1:{port}/x.csv", "HTTP://127.0.0.1:{port}"])
def test_a_valid_loopback_url_still_downloads(cache: Path, spelling: str) -> None:
    server = _Csv((FIXTURES / "iana-quirks.csv").read_bytes())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        url = spelling.format(port=server.server_address[1])
        status, out, err = _cli("registry", "update", "--url", url, "--timeout", "5")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert (status, err) == (0, "")
    assert out.startswith(f"IANA registry imported from {url}: ")


def test_sources_json_is_an_object(cache: Path) -> None:
    status, out, err = _cli("registry", "sources", "--json")
    doc = json.loads(out)
    assert (status, err) == (0, "")
    assert isinstance(doc, dict)
    assert doc["schema"] == "portscope.registry-sources/1"
    assert [s["name"] for s in doc["sources"]] == ["curated", "iana", "system", "nmap"]
    assert doc["sources"][0]["loaded"] is True


def test_update_json_is_an_object_with_a_schema(cache: Path) -> None:
    status, out, _ = _cli(
        "registry", "update", "--from", str(FIXTURES / "iana-quirks.csv"), "--json"
    )
    doc = json.loads(out)
    assert status == 0 and isinstance(doc, dict)
    assert doc["schema"] == "portscope.registry-update/1"
    assert doc["name"] == "iana" and doc["changed"] is True


@pytest.mark.parametrize("timeout", ["inf", "nan", "1e9", "-1"])
def test_cli_bad_timeout_exit_2_before_any_network(
    cache: Path, no_network: list[object], timeout: str
) -> None:
    status, out, err = _cli(
        "registry", "update", "--url", "http://127.0.0.1/x", "--timeout", timeout
    )
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert "expected seconds above 0 and at most 3,600" in err and no_network == []


def test_timeout_is_a_deadline_for_the_whole_download(cache: Path) -> None:
    # every read answers within the timeout, but the whole would take 20 s
    server = _Csv((FIXTURES / "iana-quirks.csv").read_bytes(), trickle_s=0.2)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x.csv"
        started = time.monotonic()
        status, out, err = _cli("registry", "update", "--url", url, "--timeout", "1")
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert (status, out) == (1, "")
    assert "deadline" in err and err.count("\n") == 1, err
    assert took < 3.0
    assert not (cache / "service-names-port-numbers.csv").exists()
