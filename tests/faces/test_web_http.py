"""``portscope serve``'s security rules and pages, checked with plain HTTP requests
against the real server (a subprocess on loopback)."""

from __future__ import annotations

import http.client
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from faces.conftest import Listener, Served, Stored
from portscope.cli import Env, main
from portscope.sockets import SocketFilter, list_sockets


def request(
    served: Served,
    path: str,
    *,
    method: str = "GET",
    host: str | None = None,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    address: str = "127.0.0.1",
) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection(address, served.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{served.port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        data = body.encode() if body is not None else None
        if data is not None:
            conn.putheader("Content-Type", "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def tok(served: Served, path: str) -> str:
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}token={served.token}"


def test_binds_both_loopbacks_on_a_random_port(served: Served, served_kill: Served) -> None:
    table = list_sockets(states=["listen"], owners=True, where=SocketFilter(pids={served.proc.pid}))
    bound = sorted((s.local.address, s.local.port) for s in table.sockets)
    assert bound == [("127.0.0.1", served.port), ("::1", served.port)]
    assert served.port != served_kill.port  # random, not a fixed default
    assert served.lines[1] == f"portscope serve: http://[::1]:{served.port}/?token={served.token}"
    assert len(served.token) >= 32


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1.evil.example",
        "evil.example",
        "localhost.evil.example:{port}",
        "192.0.2.1:{port}",
        "",
    ],
)
def test_a_foreign_host_header_is_refused(served: Served, host: str) -> None:
    status, body, _ = request(served, tok(served, "/"), host=host.format(port=served.port))
    assert status == 421, body
    assert "DNS rebinding" in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}",
                                  "127.1.2.3", "LOCALHOST"])  # fmt: skip
def test_loopback_host_headers_are_accepted(served: Served, host: str) -> None:
    status, body, headers = request(
        served, tok(served, "/scans"), host=host.format(port=served.port)
    )
    assert status == 200, body
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"


def test_answers_on_ipv6_loopback_too(served: Served) -> None:
    status, _, _ = request(served, tok(served, "/scans"), address="::1",
                           host=f"[::1]:{served.port}")  # fmt: skip
    assert status == 200


@pytest.mark.parametrize(
    "path", ["/", "/ports", "/events/host", "/static/app.js", "/port/22", "/nope"]
)
def test_no_token_or_a_wrong_one_is_403(served: Served, path: str) -> None:
    assert request(served, path)[0] == 403
    assert request(served, f"{path}?token=wrong")[0] == 403
    assert request(served, f"{path}?token={served.token[:-1]}")[0] == 403


def test_get_kill_is_405_and_read_only_post_is_403(served: Served) -> None:
    assert request(served, tok(served, "/kill"))[0] == 405
    status, body, _ = request(served, tok(served, "/kill"), method="POST",
                              body="csrf=x&port=1&pid=1")  # fmt: skip
    assert status == 403 and "--allow-kill" in body


def test_cross_origin_requests_are_refused(served_kill: Served) -> None:
    status, _, _ = request(
        served_kill,
        tok(served_kill, "/kill"),
        method="POST",
        body="csrf=x&port=1&pid=1",
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403


def _kill_form(page: str, pid: int) -> dict[str, str]:
    form = re.search(rf'name="pid" value="{pid}".*?</form>', page, re.S)
    start = page.rfind("<form", 0, form.start()) if form else -1
    assert form and start >= 0, "no kill form"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page[start : form.end()]))
    return fields


def test_kill_needs_the_csrf_token(served_kill: Served, listener: Listener) -> None:
    status, page, _ = request(served_kill, tok(served_kill, f"/port/{listener.port}"))
    assert status == 200
    fields = _kill_form(page, listener.pid)
    assert fields["csrf"] and fields["port"] == str(listener.port)
    bad = f"csrf=nope&port={listener.port}&pid={listener.pid}"
    status, body, _ = request(served_kill, tok(served_kill, "/kill"), method="POST", body=bad)
    assert status == 403 and "CSRF" in body
    assert listener.proc.poll() is None


@pytest.mark.root
def test_kill_post_frees_the_port(served_kill: Served, listener: Listener) -> None:
    _, page, _ = request(served_kill, tok(served_kill, f"/port/{listener.port}"))
    fields = _kill_form(page, listener.pid)
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    status, result, _ = request(served_kill, tok(served_kill, "/kill"), method="POST", body=body)
    assert status == 200, result
    assert "terminated" in result and "is free now" in result
    assert listener.proc.wait(timeout=5) == -15


def test_a_reused_pid_is_not_signalled(served_kill: Served, listener: Listener) -> None:
    _, page, _ = request(served_kill, tok(served_kill, f"/port/{listener.port}"))
    fields = _kill_form(page, listener.pid)
    fields["ticks"] = str(int(fields["ticks"]) + 1)  # the page saw "another" process
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    status, result, _ = request(served_kill, tok(served_kill, "/kill"), method="POST", body=body)
    assert status == 200 and "pid reused" in result
    time.sleep(0.2)
    assert listener.proc.poll() is None


def test_hostile_names_are_escaped_in_html(served: Served, hostile: list[Listener]) -> None:
    from markupsafe import escape

    status, home, _ = request(served, tok(served, "/"))
    assert status == 200
    for proc in hostile:
        assert f"{escape(proc.comm)}[{proc.pid}]" in home  # the name (comm), as text
    script = hostile[-1]
    _, page, _ = request(served, tok(served, f"/port/{script.port}"))
    assert f">{escape(script.name)} -c " in page  # the command line, as text
    for text in (home, page):
        assert "<script>alert" not in text


def test_pages_answer_and_bad_input_is_a_page_not_a_traceback(
    served: Served, missing_db: str
) -> None:
    for path in ("/", "/ports", "/connections", "/port/22", "/lookup?q=postgres", "/scans"):
        status, page, _ = request(served, tok(served, path))
        assert status == 200, path
        assert "<nav>" in page
    status, page, _ = request(served, tok(served, "/port/70000"))
    assert status == 400 and "give 1-65535" in page
    status, page, _ = request(served, tok(served, "/lookup?q=99999"))
    assert status == 200 and 'class="error"' in page
    _, page, _ = request(served, tok(served, "/lookup?q=postgres"))
    assert ">5432<" in page
    missing = f"no history store at {missing_db} (&#39;portscope snapshot&#39; starts one)"
    for path in ("/scans", "/scans?a=1&b=2", "/port/22"):
        _, page, _ = request(served, tok(served, path))
        assert missing in page, path


def test_non_loopback_bind_is_refused() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["serve", "--host", "0.0.0.0"], Env(out, err)) == 2
    assert err.getvalue().count("\n") == 1 and "not a loopback address" in err.getvalue()
    err = io.StringIO()
    assert main(["serve", "--port", "70000"], Env(out, err)) == 2
    assert "give 1-65535" in err.getvalue()


@pytest.mark.parametrize("command, module", [("top", "textual"), ("serve", "uvicorn")])
def test_a_missing_extra_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, command: str, module: str
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    out, err = io.StringIO(), io.StringIO()
    assert main([command], Env(out, err, stdout_isatty=True)) == 2
    extra = "tui" if command == "top" else "web"
    assert err.getvalue() == (
        f"portscope: error: portscope {command} needs the {extra} extra: "
        f"pip install 'portscope[{extra}]'\n"
    )


# -- the history store (issue 11) -----------------------------------------------------


def rows_of(page: str, table: str) -> list[str]:
    """The body rows of the table with id ``table``: cells' text (tags removed, entities
    kept) joined by `` | ``."""
    body = page.split(f'id="{table}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        " | ".join(
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        )
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_port_page_shows_the_timeline_from_the_store(stored: Stored) -> None:
    status, page, _ = request(stored.served, tok(stored.served, f"/port/{stored.port}"))
    assert status == 200
    assert f"from the history store {stored.db}" in page
    (entry,) = rows_of(page, "timeline")
    # the first snapshot that has the port: 'after' (2), not 'before' (1)
    assert "snapshot 2 (after)" in entry and "present" in entry
    assert f"tcp 127.0.0.1:{stored.port} {stored.name}[" in entry
    _, page, _ = request(stored.served, tok(stored.served, "/port/9"))
    assert "port 9 was never seen in a snapshot or a saved watch" in page


def test_scans_page_lists_scans_and_listings_and_opens_one(stored: Stored) -> None:
    s = stored.served
    _, page, _ = request(s, tok(s, "/scans"))
    scans, listings = rows_of(page, "scans"), rows_of(page, "listings")
    assert [r.split()[0] for r in scans] == ["4", "3"]  # newest first
    assert "tuesday" in scans[0] and "nmap" in scans[0] and "import" in scans[0]
    assert [r.split()[0] for r in listings] == ["2", "1"] and "after" in listings[0]
    _, page, _ = request(s, tok(s, "/scans?id=monday"))
    ports = rows_of(page, "scan-ports")
    assert len(ports) == 1 and "127.0.0.1:8081" in ports[0] and "open" in ports[0]
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page  # the report's service: text
    assert "<script>alert" not in page
    assert "closed" in rows_of(page, "scan-hosts")[0]  # the unlisted ports' state
    _, page, _ = request(s, tok(s, "/scans?id=after"))
    assert any(f"127.0.0.1:{stored.port} {stored.name}[" in r
               for r in rows_of(page, "snapshot-listeners"))  # fmt: skip


def test_scans_page_diffs_like_portscope_diff(stored: Stored) -> None:
    s = stored.served
    _, page, _ = request(s, tok(s, "/scans?a=monday&b=tuesday"))
    assert rows_of(page, "diff") == [
        "state-changed | tcp | 127.0.0.1:8082 closed | 127.0.0.1:8082 open"
    ]
    out = subprocess.run(
        [sys.executable, "-m", "portscope", "diff", "monday", "tuesday", "--db", stored.db],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.stdout == "state-changed tcp 127.0.0.1:8082 closed -> open\n"
    _, page, _ = request(s, tok(s, "/scans?a=before&b=after"))
    # only the test's own listener counts: others on the host may come and go meanwhile
    added = [
        r
        for r in rows_of(page, "diff")
        if r.startswith("added") and f"127.0.0.1:{stored.port} " in r
    ]
    assert len(added) == 1 and f"127.0.0.1:{stored.port} {stored.name}[" in added[0]
    _, page, _ = request(s, tok(s, "/scans?a=monday&b=monday"))
    assert rows_of(page, "diff") == ["no change"]


def test_a_bad_reference_or_a_scan_against_a_listing_is_one_sentence(stored: Stored) -> None:
    s = stored.served
    for query, said in (
        ("a=nope&b=1", "no snapshot &#39;nope&#39;"),
        ("a=monday&b=after", "a scan compares with another scan only"),
        ("id=%3Cb%3E", "no snapshot &#39;&lt;b&gt;&#39;"),
    ):
        status, page, _ = request(s, tok(s, f"/scans?{query}"))
        assert status == 200 and f'id="scans-error">{said}' in page, query
        assert len(rows_of(page, "scans")) == 2  # the lists stay
    status, _, _ = request(s, "/scans?a=monday&b=tuesday")  # no token
    assert status == 403
    status, _, _ = request(s, tok(s, "/scans?a=1&b=2"), host="127.0.0.1.evil.example")
    assert status == 421


def test_a_store_error_is_one_line(tmp_path: Path) -> None:
    from portscope.web._history import port_timeline, scans_page

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not an SQLite database" * 100)
    for view in (scans_page(str(bad)), port_timeline(str(bad), 22)):
        assert view.value is None and view.error is not None
        assert "\n" not in view.error and str(bad) in view.error


# -- network namespaces (-N, issue 9) -------------------------------------------------


@pytest.mark.root
def test_serve_and_top_show_another_namespace_by_name(missing_db: str) -> None:
    import json
    import os
    import shutil

    from faces.conftest import _read_lines, start_serve, stop

    if shutil.which("ip") is None:
        pytest.skip("needs iproute2")
    name = f"ps12-ns{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        code = "import socket,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();" \
               "print(s.getsockname()[1],flush=True);time.sleep(60)"  # fmt: skip
        inside = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", code],
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        procs.append(inside)
        port = int(_read_lines(inside)[0])
        out = subprocess.run(
            [sys.executable, "-m", "portscope", "top", "--json", "-N", name],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        ((local, netns),) = [(s["local"], s["netns"]) for s in json.loads(out.stdout)["sockets"]]
        assert local == {"address": "127.0.0.1", "port": port} and netns["name"] == name
        served = start_serve("-N", name, "--db", missing_db)
        procs.append(served.proc)
        _, page, _ = request(served, tok(served, "/"))
        table = page.split('id="listeners"', 1)[1]
        assert "<th>Netns</th>" in table.split("</thead>", 1)[0]
        row = table.split(f'data-port="{port}"', 1)[1].split("</tr>", 1)[0]
        assert f'<td class="netns">{name}</td>' in row
        _, page, _ = request(served, tok(served, f"/port/{port}"))  # who, in that namespace
        holders = rows_of(page, "holders")
        assert len(holders) == 1 and f"127.0.0.1:{port}" in holders[0], holders
    finally:
        for proc in procs:
            stop(proc)
        subprocess.run(["ip", "netns", "del", name], check=False)
