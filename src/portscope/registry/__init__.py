"""Port <-> service knowledge: what a port means, on which transport, in which range.

Sources, merged with provenance: portscope's curated table, ``/etc/services``, nmap's
``nmap-services`` and the IANA registry CSV once imported (``update_registry``). Loaded
lazily from a compiled cache, once per process. The update machinery is imported only
when one of its names is used, so ``portscope lookup`` starts fast.
"""

from __future__ import annotations

# Names load on first use (PEP 562): `portscope lookup` imports only the lean modules it
# needs (``_store``, ``_answer``), not the dataclasses and models of the typed API.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

# public name -> the private module that defines it
_LAZY = {
    "IANA_CSV_URL": "_update",
    "KernelPorts": "_ranges",
    "PortFacts": "_ranges",
    "Query": "_lookup",
    "SourceInfo": "_update",
    "kernel_ports": "_ranges",
    "lookup": "_lookup",
    "parse_proto": "_lookup",
    "parse_query": "_lookup",
    "port_facts": "_ranges",
    "port_range": "_ranges",
    "registry_sources": "_update",
    "service_name": "_lookup",
    "top_ports": "_lookup",
    "update_registry": "_update",
}

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
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'portscope.registry' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(f"portscope.registry.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
