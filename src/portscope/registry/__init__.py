"""Port <-> service knowledge: what a port means, on which transport, in which range.

Sources, merged with provenance: portscope's curated table, ``/etc/services``, nmap's
``nmap-services`` and the IANA registry CSV once imported (``update_registry``). Loaded
lazily from a compiled cache, once per process. The update machinery is imported only
when one of its names is used, so ``portscope lookup`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from portscope.registry._update import (
        IANA_CSV_URL,
        SourceInfo,
        registry_sources,
        update_registry,
    )

_LAZY = {"IANA_CSV_URL", "SourceInfo", "registry_sources", "update_registry"}

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


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'portscope.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module("portscope.registry._update"), name)
    globals()[name] = value
    return value
