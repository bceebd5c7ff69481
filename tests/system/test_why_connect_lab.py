"""why connect from the lab's scanner namespace: every verdict a remote host can give.

Runs ``portscope why connect --json`` inside the scanner namespace (no default route) against
the target namespace (198.18.0.0/15 only), whose ground truth is known (``tests/lab``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.root


def why(lab: Any, target: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = lab.exec(
        [sys.executable, "-m", "portscope", "why", "connect", target, "--json", *extra],
        timeout_s=60,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_open_with_route_and_source(lab: Any) -> None:
    port = min(p for p in lab.open_tcp if p > 1024)
    status, d = why(lab, f"{lab.target_v4}:{port}")
    assert status == 0 and d["verdict"] == "open"
    assert d["source"] == lab.scanner_v4 and d["local"] is False
    assert d["interface"] and d["gateway"] is None  # on-link
    routed = why(lab, f"{lab.targets_v4_28[0]}:{port}")[1]
    assert routed["verdict"] == "open" and routed["gateway"] == lab.target_v4


def test_refused_remote(lab: Any) -> None:
    port = next(p for p in range(4400, 4500) if lab.expected("tcp", p) == "closed")
    status, d = why(lab, f"{lab.target_v4}:{port}")
    assert status == 1 and d["verdict"] == "refused" and d["listeners"] == []
    assert d["probe"]["reason"] == "conn-refused"


def test_dropped_is_filtered(lab: Any) -> None:
    port = sorted(lab.dropped_tcp)[0]
    status, d = why(lab, f"{lab.target_v4}:{port}", "--timeout", "1")
    assert status == 1 and d["verdict"] == "filtered"
    assert "firewall" in d["explanation"]


def test_admin_prohibited_is_a_firewall_reject(lab: Any) -> None:
    port = sorted(lab.unreachable_tcp)[0]
    status, d = why(lab, f"{lab.target_v4}:{port}", "--timeout", "2")
    assert status == 1 and d["verdict"] == "firewall-reject"
    assert "prohibited" in d["probe"]["reason"]


def test_no_route_is_unreachable(lab: Any) -> None:
    # 198.19.0.0/16 is in the benchmarking block but routed nowhere from the scanner
    # namespace, which has no default route: connect() fails at once with ENETUNREACH.
    status, d = why(lab, "198.19.0.1:80", "--timeout", "1")
    assert status == 1 and d["verdict"] == "unreachable"
    route = next(s for s in d["steps"] if s["name"] == "route")
    assert route["ok"] is False and d["source"] is None
