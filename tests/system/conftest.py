"""Fixtures for system tests: the scan lab (network namespaces with known ground truth).

``lab`` (LAN: veth) and ``wan_lab`` (WAN: 20 ms +- 5 ms each way, 0.5 % loss each way) are
session-scoped :class:`lab.Lab` objects, built once and torn down at the end of the session
even when tests fail. Both skip with a reason when not root or when ``ip``/``nft`` are missing.
See ``tests/lab/__init__.py`` and ``docs/lab.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import lab as labmod  # noqa: E402  (needs the sys.path entry above)


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the scan lab needs root (network namespaces); CI runs as root"
    if missing := labmod.missing_tools():
        return f"the scan lab needs {', '.join(missing)} (scripts/install-test-deps)"
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[labmod.Lab]:
    """The LAN lab: scanner and target namespaces joined by a veth pair."""
    if reason := _skip_reason():
        pytest.skip(reason)
    with labmod.running(wan=False) as lb:
        yield lb


@pytest.fixture(scope="session")
def wan_lab() -> Iterator[labmod.Lab]:
    """The WAN lab: the same hosts joined by the userspace delay/loss stage (lab.wan)."""
    if reason := _skip_reason():
        pytest.skip(reason)
    with labmod.running(wan=True) as lb:
        yield lb
