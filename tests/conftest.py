"""Shared test setup: the root marker and paths to shared reference data."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout holds reference data (the IANA registry CSV);
# PORTSCOPE_SHARED_DATA points elsewhere (a worktree deeper in the tree).
SHARED_DATA = Path(os.environ.get("PORTSCOPE_SHARED_DATA") or REPO.parent / "shared" / "data")
IANA_CSV = SHARED_DATA / "service-names-port-numbers.csv"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces / raw sockets); CI runs as root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def in_ci() -> bool:
    """True under CI (``CI=true``, as GitHub Actions, GitLab and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


_MISSING_DATA: list[str] = []


def require_iana_csv() -> Path:
    """The shared IANA CSV, for tests that check the real registry file.

    Missing: the test fails in CI (the data is part of the test set-up there), and is
    skipped elsewhere, with the path in the reason and a loud line at the end of the run
    (a silent skip hid these tests before issue 18).
    """
    if IANA_CSV.exists():
        return IANA_CSV
    message = f"IANA registry CSV missing at {IANA_CSV}: the real-registry tests did not run"
    if in_ci():
        pytest.fail(message + " (CI=true: reference data must be present)", pytrace=False)
    _MISSING_DATA.append(message)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _MISSING_DATA:
        terminalreporter.section("reference data missing", sep="!", red=True, bold=True)
        terminalreporter.line(
            f"{len(_MISSING_DATA)} test(s) skipped: {_MISSING_DATA[0]} "
            "(put the CSV in ../shared/data; in CI these tests fail)",
            red=True,
            bold=True,
        )


# No test sends a DNS query off the machine (issue 18: test_why resolved a '.invalid'
# name with the real resolver). Host names other than localhost's fail here as a
# resolver that knows nothing would fail (EAI_NONAME); tests that need a name mock it.
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_real_getaddrinfo = socket.getaddrinfo


def _no_dns_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is None or name.lower() in _LOCAL_NAMES or _is_address(name):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known ({name}: no DNS in tests)")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0].strip("[]"))
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns_getaddrinfo)


def pytest_sessionstart(session: pytest.Session) -> None:
    """In a fresh network namespace (``unshare -n``) loopback is down: every test needs
    it, so bring it up (root only; the namespace is the run's own, nothing else sees it)."""
    import fcntl
    import struct

    try:  # SIOCGIFFLAGS in this process's namespace (/sys may show the host's)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            reply = fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))
        up = struct.unpack_from("16sH", reply)[1] & 0x1  # IFF_UP
    except OSError:
        return
    if not up and os.geteuid() == 0:
        import subprocess

        subprocess.run(["ip", "link", "set", "lo", "up"], check=False, timeout=10)
