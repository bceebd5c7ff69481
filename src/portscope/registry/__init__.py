"""Port <-> service knowledge: what a port means, on which transport, in which range.

Sources, merged with provenance: portscope's curated table, ``/etc/services``, nmap's
``nmap-services`` and the IANA registry CSV once imported (``update_registry``). Loaded
lazily from a compiled cache, once per process.
"""

from __future__ import annotations

from portscope.registry._lookup import (
    Query,
    lookup,
    parse_proto,
    parse_query,
    service_name,
    top_ports,
)
from portscope.registry._ranges import (
    KernelPorts,
    PortFacts,
    kernel_ports,
    port_facts,
    port_range,
)
from portscope.registry._update import (
    IANA_CSV_URL,
    SourceInfo,
    registry_sources,
    update_registry,
)

__all__ = [
    "IANA_CSV_URL",
    "KernelPorts",
    "PortFacts",
    "Query",
    "SourceInfo",
    "kernel_ports",
    "lookup",
    "parse_proto",
    "parse_query",
    "port_facts",
    "port_range",
    "registry_sources",
    "service_name",
    "top_ports",
    "update_registry",
]
