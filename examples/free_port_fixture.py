"""A pytest fixture that hands a test a bound TCP socket on a free port: no race.

"Find a free port, then start the server on it" loses the port when another process takes
it in between. ``free_ports(hold=True)`` keeps the socket bound; ``release()`` hands it over,
so the server listens on the very socket that reserved the port. Copy into a conftest.py.
Written only against portscope's public API.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import portscope


@pytest.fixture
def bound_socket() -> Iterator[socket.socket]:
    with portscope.free_ports(1, hold=True) as held:
        sock = held.release(held.ports[0])
    with sock:
        yield sock


def test_server_on_a_held_port(bound_socket: socket.socket) -> None:
    bound_socket.listen()
    port = bound_socket.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        conn, _ = bound_socket.accept()
        conn.close()
    assert portscope.who(port).held
