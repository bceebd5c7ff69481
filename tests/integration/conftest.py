"""Fixtures shared by the integration tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def listeners(request: pytest.FixtureRequest) -> Iterator[list[int]]:
    """Loopback TCP listeners on ports the kernel picked, sorted; closed after the test.

    How many: ``@pytest.mark.parametrize("listeners", [N], indirect=True)``, 3 by default.
    """
    count = getattr(request, "param", 3)
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
            s.listen()
        yield sorted(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()
