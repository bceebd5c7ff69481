"""``top_ports`` against nmap's own ``--top-ports`` selection.

nmap prints the ports it chose in the XML ``scaninfo`` element; the scan itself targets
127.0.0.1 only (loopback), one try per port, bounded by a timeout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from portscope import top_ports
from portscope.registry._store import STORE

pytestmark = pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap not installed")
_SCANINFO = re.compile(r'<scaninfo [^>]*services="([^"]+)"')


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PORTSCOPE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PORTSCOPE_NMAP_SERVICES", raising=False)
    STORE.reset()
    yield
    STORE.reset()


def _nmap_top(n: int, scan_type: str) -> set[int]:
    out = subprocess.run(
        ["nmap", "-n", scan_type, "--top-ports", str(n), "--max-retries", "0", "-T5",
         "-oX", "-", "127.0.0.1"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    match = _SCANINFO.search(out)
    assert match, out[:500]
    ports: set[int] = set()
    for part in match.group(1).split(","):
        lo, _, hi = part.partition("-")
        ports.update(range(int(lo), int(hi or lo) + 1))
    return ports


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_top_tcp_ports_equal_nmaps(n: int) -> None:
    ours = top_ports(n, "tcp")
    assert len(ours) == n
    assert set(ours) == _nmap_top(n, "-sT")


@pytest.mark.root  # nmap -sU needs raw sockets
def test_top_udp_ports_equal_nmaps() -> None:
    assert set(top_ports(100, "udp")) == _nmap_top(100, "-sU")
