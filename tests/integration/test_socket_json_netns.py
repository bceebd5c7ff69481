"""Hostile interface names and renamed interfaces, for real, inside a fresh network namespace.

Each test runs a small program under ``unshare --net`` (a namespace that dies with it): a
veth interface with a name Linux allows but JSON must escape (``"``, ``\\``, a control
character, non-ASCII), a link-local listener on it, and portscope run in-process there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("ip") is None,
                       reason="needs unshare and ip (util-linux, iproute2)"),
]  # fmt: skip

HOSTILE = 'a"b\\\x01\u00e9'  # a " b \ ^A e-acute: 7 bytes in UTF-8, allowed by dev_valid_name

PROGRAM = r"""
import io, json, socket, subprocess, sys
from portscope.cli import Env, main
from portscope.sockets import list_sockets

name, renamed = sys.argv[1], sys.argv[2]

def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

ip("link", "set", "lo", "up")
ip("link", "add", "name", name, "type", "veth", "peer", "name", "peer0")
ip("link", "set", name, "up")
ip("link", "set", "peer0", "up")
ip("addr", "add", "fe80::1/64", "dev", name, "nodad")
index = socket.if_nametoindex(name)
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.bind(("fe80::1", 0, 0, index))
s.listen(4)
port = s.getsockname()[1]

def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), Env(stdout=out, stderr=err))
    return status, out.getvalue()

result = {"port": port, "documents": {}}
for label, argv in (
    ("fused", ["ls", "-l", "-n", "--json"]),
    ("fused-owners", ["ls", "-l", "-n", "-p", "--json"]),
    ("plain", ["ls", "-l", "--json"]),
    ("sorted", ["ls", "-l", "-n", "--json", "--sort", "port"]),
    ("listen", ["listen", "-n", "--json"]),
    ("procfs", ["ls", "-l", "-n", "--json", "--backend", "procfs"]),
):
    status, text = run(*argv)
    result["documents"][label] = {"status": status, "text": text}

def interface():
    found = [x for x in list_sockets(states="listen").sockets if x.local.port == port]
    return [x.interface for x in found], [x.local.address for x in found]

result["before"] = interface()
ip("link", "set", name, "down")
ip("link", "set", name, "name", renamed)
ip("link", "set", renamed, "up")
result["after"] = interface()
status, text = run("ls", "-l", "-n", "--json")
result["after_json"] = text
print(json.dumps(result))
"""


def run_in_netns(name: str, renamed: str) -> dict[str, object]:
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", PROGRAM, name, renamed],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def sockets_of(text: str, port: int) -> list[dict[str, object]]:
    doc = json.loads(text)  # every line, hence the whole document, is valid JSON
    assert doc["schema"] == "portscope.sockets/2"
    for line in text.splitlines()[1:-1]:
        json.loads(line.rstrip(","))
    return [s for s in doc["sockets"] if s["local"]["port"] == port]  # type: ignore[index]


def test_hostile_interface_name_is_valid_json_the_same_on_every_path() -> None:
    result = run_in_netns(HOSTILE, "renamed0")
    port = result["port"]
    assert isinstance(port, int)
    docs = result["documents"]
    assert isinstance(docs, dict)
    seen = {}
    for label, doc in docs.items():
        assert doc["status"] == 0, (label, doc)
        found = sockets_of(doc["text"], port)
        assert len(found) == 1, (label, found)
        seen[label] = found[0]
    for label in ("fused", "plain", "sorted", "listen", "fused-owners"):
        sock = seen[label]
        assert sock["local"] == {"address": f"fe80::1%{HOSTILE}", "port": port}, label
        assert sock["interface"] == HOSTILE, label
    # the same bytes on the fused and the plain path, service and extras aside
    fused, plain = dict(seen["fused"]), dict(seen["plain"])
    plain["service"] = None
    assert fused == plain
    assert seen["fused-owners"]["owners"] and seen["fused-owners"]["owners"][0]["fd"] >= 0
    assert seen["listen"]["scope"] == f"fe80::1 only, device {HOSTILE}"
    # procfs knows no bound device, no backlog: unknown, not made up
    assert seen["procfs"]["send_q"] is None and seen["procfs"]["interface"] is None


def test_renamed_interface_is_seen_by_its_new_name_in_the_same_process() -> None:
    result = run_in_netns("before0", "after0")
    assert result["before"] == [["before0"], ["fe80::1%before0"]]
    assert result["after"] == [["after0"], ["fe80::1%after0"]]
    port = result["port"]
    assert isinstance(port, int) and isinstance(result["after_json"], str)
    (sock,) = sockets_of(result["after_json"], port)
    assert sock["interface"] == "after0"
