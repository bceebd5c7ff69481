"""Service identification by handshake: what really answers on a TCP port.

``identify_port(address, port)`` (and ``identify_async``, ``identify_many``) speaks the
protocols most likely for the port, then the rest, and returns an ``Identity``: the
service, the product and version where the service says them, facts (TLS certificate,
HTTP title, Redis authentication), the evidence bytes, and a ``Confidence``. Every probe
is written from the protocol's specification (cited in ``_probes`` and ``_match``),
bounded in bytes and time, and never authenticates. See docs/identify.md.
"""

from portscope.identify._engine import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    identify_async,
    identify_many,
    identify_port,
    probe_order,
)
from portscope.identify._local import listener_endpoints
from portscope.identify._probes import PROBES
from portscope.identify._types import Confidence, Evidence, Identity, TlsInfo
from portscope.identify._udp import identify_udp_answer

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT_S",
    "PROBES",
    "Confidence",
    "Evidence",
    "Identity",
    "TlsInfo",
    "identify_async",
    "identify_many",
    "identify_port",
    "identify_udp_answer",
    "listener_endpoints",
    "probe_order",
]
