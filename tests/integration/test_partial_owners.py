"""Partial privilege gives partial results with a note, in every command (issue 18).

A listener runs as ``nobody``; portscope runs as root without CAP_SYS_PTRACE (as in many
containers), which opens another user's ``/proc/PID/fd`` but reads none of its links.
``audit`` used to show the listener with process ``-`` and no note, and the owner scan
took the unreadable links for "no sockets" (so ``ls -p`` said nothing either).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.root

LISTENER = "import socket, sys; s = socket.create_server(('0.0.0.0', 0)); print(s.getsockname()[1], flush=True); sys.stdin.read()"  # noqa: E501


@pytest.fixture
def nobodys_listener() -> Iterator[int]:
    if shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs setpriv and /usr/bin/python3 (util-linux, python3)")
    proc = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "/usr/bin/python3", "-c", LISTENER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def _without_ptrace(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--bounding-set=-sys_ptrace", sys.executable, "-m", "portscope", *argv],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_audit_says_owners_are_partial_in_text_and_json(nobodys_listener: int) -> None:
    port = nobodys_listener
    text = _without_ptrace("audit")
    assert text.returncode == 0, text.stderr
    assert f"0.0.0.0:{port}" in text.stdout  # an exposed listener, its process unseen
    assert "portscope: note: process owners are partial" in text.stderr
    doc = _without_ptrace("audit", "--json")
    notes = json.loads(doc.stdout)["notes"]
    assert any("process owners are partial" in n for n in notes)


def test_ls_says_owners_are_partial_when_links_are_unreadable(nobodys_listener: int) -> None:
    done = _without_ptrace("ls", "-l", "-p", "--port", str(nobodys_listener))
    assert done.returncode == 0, done.stderr
    assert "process owners are partial" in done.stderr
