"""Port <-> service knowledge (placeholder until issue 3 lands: /etc/services only)."""

from __future__ import annotations

import socket
from functools import lru_cache


@lru_cache(maxsize=4096)
def service_name(port: int, proto: str = "tcp") -> str | None:
    """The service name of ``port`` for ``proto`` (``tcp``/``udp``), or ``None``."""
    try:
        return socket.getservbyport(port, proto)
    except OSError:
        return None
